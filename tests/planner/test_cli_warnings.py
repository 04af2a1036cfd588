"""Warnings raised while a ``ttc`` command runs reach stderr through the CLI's one boundary
(``planner.cli._errors.ErrorBoundary``) as one clean line each, ``warning: ...``, never as
Python's ``file.py:198: DataWarning`` followed by a line of source; ``--debug`` keeps Python's
form for whoever debugs."""

from __future__ import annotations

import warnings

from typer.testing import CliRunner

from fitting.importer import import_file
from planner.cli import app

SPEC = "unknown=params:1e9,layers:16,kv_heads:8,head_dim:64"


def no_answers_folder(tmp_path):
    """Six questions, pools of 4, no extracted answers: majority@k cannot be estimated, which
    the curves step says with a DataWarning."""
    lines = ["question_id,correct,prompt_tokens,completion_tokens"]
    lines += [f"q{q},{int((q + j) % 3 == 0)},10,20" for q in range(6) for j in range(4)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    import_file(tmp_path / "s.csv", tmp_path / "S")
    return tmp_path / "S"


def test_a_data_warning_is_one_clean_line(tmp_path):
    folder = no_answers_folder(tmp_path)
    r = CliRunner().invoke(app, ["recommend", str(folder), "--budget-tokens", "1000", "--model-spec", SPEC])
    lines = r.stderr.splitlines()
    assert "warning: majority@k and weighted@k need extracted answers; none in this data" in lines
    assert "DataWarning" not in r.stderr and ".py:" not in r.stderr


def test_debug_keeps_pythons_form_and_the_printer_is_restored_after_the_command(tmp_path):
    folder = no_answers_folder(tmp_path)
    before = warnings.showwarning
    r = CliRunner().invoke(
        app, ["recommend", str(folder), "--budget-tokens", "1000", "--model-spec", SPEC, "--debug"]
    )
    assert "DataWarning: majority@k and weighted@k need extracted answers" in r.stderr
    assert warnings.showwarning is before
