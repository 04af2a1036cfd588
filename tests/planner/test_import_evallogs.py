"""`ttc import` of lm-evaluation-harness and Inspect AI logs, end to end: the committed real logs
and logs both tools write here, offline, on a lab checkpoint (the round trip), each imported,
checked against the tool's own per-doc metrics and the tokenizer, then fitted, forecast and
planned on. Bad input: one line, exit 2, no output folder left."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from evallog_checks import DATA, LAB_L, ROOT, inspect_agrees, lmeval_agrees, lmeval_tokens_agree
from inspect_ai.log import read_eval_log
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app

LMEVAL_RUN = DATA / "lm-eval" / "profiling__lab__checkpoints__lab-l"
INSPECT_LOG = next((DATA / "inspect").glob("*.eval"))
MAX_TOKENS = 96  # run_tools.sh: max_gen_toks (lm-eval) and --max-tokens (Inspect)


@pytest.fixture(autouse=True)
def at_the_root(monkeypatch):
    """The tools name the lab model by its path from the repository root, as run_tools.sh runs them."""
    monkeypatch.chdir(ROOT)


def ttc(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _one(folder, prefix):
    (found,) = folder.glob(prefix)
    return found


def import_fit_forecast_recommend(log, out, *flags) -> None:
    """The commands a user runs on a log: each exits 0 and gives strict JSON where asked."""
    r = ttc("import", log, "--out", out, *flags)
    assert r.exit_code == 0, r.output
    r = ttc("fit", out, "--out", out / "fit")
    assert r.exit_code == 0, r.output
    r = ttc("forecast", out, "--at", "1000", "--json")
    assert r.exit_code == 0, r.output
    forecasts = json.loads(r.output, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert {f["metric"] for f in forecasts} == {"pass@k", "majority@k"}
    assert all(f["at"] == 1000 and f["k_max"] == 8 for f in forecasts)
    r = ttc("recommend", out, "--budget-tokens", "1000", "--json", "--n-boot", "30")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert plan["choice"]["model"] == "profiling/lab/checkpoints/lab-l"
    assert plan["cost"]["tokens"] <= 1000


def test_committed_lm_eval_output_round_trips(tmp_path):
    out = tmp_path / "lm"
    import_fit_forecast_recommend(DATA / "lm-eval", out, "--tokenizer", LAB_L)
    table = S.read_samples(out)
    assert lmeval_agrees(table, _one(LMEVAL_RUN, "samples_*"), _one(LMEVAL_RUN, "results_*")) >= 8
    lmeval_tokens_agree(table, _one(LMEVAL_RUN, "samples_*"), LAB_L / "tokenizer.json")


def test_committed_inspect_log_round_trips(tmp_path):
    out = tmp_path / "inspect"
    import_fit_forecast_recommend(INSPECT_LOG, out)
    inspect_agrees(S.read_samples(out), read_eval_log(str(INSPECT_LOG)), LAB_L / "tokenizer.json", MAX_TOKENS)


def test_without_a_tokenizer_the_import_says_the_tokens_are_empty(tmp_path):
    r = ttc("import", DATA / "lm-eval", "--out", tmp_path / "lm")
    assert r.exit_code == 0, r.output
    assert "no --tokenizer: prompt_tokens and completion_tokens left empty" in r.output
    assert S.read_samples(tmp_path / "lm")[S.COMPLETION_TOKENS].isna().all()


def test_the_real_tools_round_trip_on_the_lab(tmp_path):
    """lm-eval (repeats 8) and Inspect AI (--epochs 8) run here on lab-l, offline, as the README of
    tests/data/evallogs says (on 3 questions); their logs import, agree with the tools' own
    metrics and the tokenizer, and fit, forecast and plan."""
    logs = tmp_path / "logs"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        ["bash", str(DATA / "run_tools.sh"), str(logs), "3"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lm_run = _one(logs / "lm-eval", "*")
    import_fit_forecast_recommend(logs / "lm-eval", tmp_path / "lm", "--tokenizer", LAB_L)
    table = S.read_samples(tmp_path / "lm")
    assert len(table) == 3 * 8
    lmeval_agrees(table, _one(lm_run, "samples_*"), _one(lm_run, "results_*"))
    lmeval_tokens_agree(table, _one(lm_run, "samples_*"), LAB_L / "tokenizer.json")
    log = _one(logs / "inspect", "*.eval")
    import_fit_forecast_recommend(logs / "inspect", tmp_path / "inspect")
    table = S.read_samples(tmp_path / "inspect")
    assert len(table) == 3 * 8
    inspect_agrees(table, read_eval_log(str(log)), LAB_L / "tokenizer.json", MAX_TOKENS)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scorer", "match"], "--scorer 'match' is not in this log; its scorers: pattern"),
        (["--tokenizer", "gpt2"], "--tokenizer applies to lm-eval logs; "),
        (["--format", "csv"], "--format 'csv': expected one of auto, table, lm-eval, inspect"),
        (["--format", "lm-eval"], "not lm-eval output (expected a results folder"),
    ],
)
def test_bad_flags_are_one_line_and_leave_no_output(tmp_path, args, message):
    r = ttc("import", INSPECT_LOG, "--out", tmp_path / "out", *args)
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_truncated_log_is_one_line_and_leaves_no_output(tmp_path):
    cut = tmp_path / "cut.eval"
    cut.write_bytes(INSPECT_LOG.read_bytes()[:5000])
    r = ttc("import", cut, "--out", tmp_path / "out")
    assert r.exit_code == 2 and f"{cut}: not a readable Inspect AI log" in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_a_tokenizer_that_does_not_load_is_one_line(tmp_path):
    r = ttc("import", DATA / "lm-eval", "--out", tmp_path / "out", "--tokenizer", tmp_path / "nothing")
    assert r.exit_code == 2 and "--tokenizer" in r.output and "cannot load a tokenizer" in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_reading_inspect_logs_without_inspect_ai_says_what_to_install(tmp_path):
    """Without inspect_ai the .eval import is one line naming the extra to install (lm-eval's
    output needs nothing: plain JSON)."""
    code = (
        "import sys; sys.modules['inspect_ai'] = None\n"
        "from planner.cli import main; main()"
    )
    args = ["import", str(INSPECT_LOG), "--out", str(tmp_path / "out")]
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == "error: reading Inspect AI logs needs inspect_ai: pip install 'ttc-planner[evals]'"
    r = subprocess.run(
        [sys.executable, "-c", code, "import", str(DATA / "lm-eval"), "--out", str(tmp_path / "lm")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
