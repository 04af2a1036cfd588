"""The round trip with the real tools: lm-eval (repeats 8) and Inspect AI (--epochs 8) run here on
lab-l, offline, as tests/data/evallogs/README.md says (on 3 questions); their logs import through
`ttc import`, agree with the tools' own metrics and the tokenizer, and fit, forecast and plan.
Needs the evals extra (lm_eval, inspect_ai)."""

from __future__ import annotations

import os
import subprocess
import sys

from evallog_checks import (
    DATA,
    LAB_L,
    MAX_TOKENS,
    ROOT,
    import_fit_forecast_recommend,
    inspect_agrees,
    lmeval_agrees,
    lmeval_tokens_agree,
    one,
)
from inspect_ai.log import read_eval_log

from fitting import schema as S


def test_the_real_tools_round_trip_on_the_lab(tmp_path):
    """lm-eval (repeats 8) and Inspect AI (--epochs 8) run here on lab-l, offline, as the README of
    tests/data/evallogs says (on 3 questions); their logs import, agree with the tools' own
    metrics and the tokenizer, and fit, forecast and plan."""
    logs = tmp_path / "logs"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        ["bash", str(DATA / "run_tools.sh"), str(logs), "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lm_run = one(logs / "lm-eval", "*")
    import_fit_forecast_recommend(logs / "lm-eval", tmp_path / "lm", "--tokenizer", LAB_L)
    table = S.read_samples(tmp_path / "lm")
    assert len(table) == 3 * 8
    lmeval_agrees(table, one(lm_run, "samples_*"), one(lm_run, "results_*"))
    lmeval_tokens_agree(table, one(lm_run, "samples_*"), LAB_L / "tokenizer.json")
    log = one(logs / "inspect", "*.eval")
    import_fit_forecast_recommend(logs / "inspect", tmp_path / "inspect")
    table = S.read_samples(tmp_path / "inspect")
    assert len(table) == 3 * 8
    inspect_agrees(table, read_eval_log(str(log)), LAB_L / "tokenizer.json", MAX_TOKENS)
