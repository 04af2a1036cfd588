import subprocess
import sys

import pytest
from typer.testing import CliRunner

from planner.cli import app

COMMANDS = ["demo", "profile", "merge", "import", "fit", "costs", "recommend", "evaluate", "report"]


def test_top_level_help_lists_every_subcommand_with_one_line():
    out = CliRunner().invoke(app, ["--help"]).output
    for name in COMMANDS:
        assert f" {name} " in out, name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_subcommand_help_shows_a_runnable_example(name):
    result = CliRunner().invoke(app, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Example" in result.output
    assert f"ttc {name}" in result.output


def test_ttc_help_does_not_import_torch():
    code = "import sys; from planner.cli import app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
