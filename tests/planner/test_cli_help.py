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


def test_ttc_help_imports_nothing_heavy():
    code = "import sys; from planner.cli import app; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    loaded = {m.split(".")[0] for m in out.split()}
    assert not loaded & {"torch", "transformers", "pandas", "scipy", "optuna", "altair", "fitting", "ray"}


def test_options_are_grouped_in_help_panels():
    out = CliRunner().invoke(app, ["recommend", "--help"], terminal_width=200).output
    for panel in (
        "Budget (per query)",
        "What to plan for",
        "Pricing: hardware or API",
        "Models",
        "Search",
        "Output",
    ):
        assert panel in out, panel
    assert "--profile" not in out  # the old spelling still works but the argument is positional


@pytest.mark.parametrize(
    "argv", [["--help"], ["recommend", "--help"], ["fit", "--help"], ["report", "--help"]]
)
def test_flags_show_no_value_type_in_help(argv):
    out = CliRunner().invoke(app, argv, terminal_width=200).output
    assert "<bool>" not in out
    assert "--help" in out
    if argv[0] == "recommend":
        assert "<float>" in out  # options that take a value still say what they take
