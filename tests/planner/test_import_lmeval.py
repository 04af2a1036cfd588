"""`ttc import` of lm-evaluation-harness output, end to end on the committed real output (see
tests/data/evallogs/README.md): imported, checked against lm-eval's own per-doc metrics and the
tokenizer, then fitted, forecast and planned on. Needs neither lm_eval nor inspect_ai. Bad input:
one line, exit 2, no output folder left."""

from __future__ import annotations

import json
import subprocess
import sys

from evallog_checks import (
    DATA,
    LAB_L,
    ROOT,
    import_fit_forecast_recommend,
    lmeval_agrees,
    lmeval_tokens_agree,
    one,
    ttc,
)

from fitting import schema as S

RUN = DATA / "lm-eval" / "profiling__lab__checkpoints__lab-l"


def test_committed_lm_eval_output_round_trips(tmp_path):
    out = tmp_path / "lm"
    import_fit_forecast_recommend(DATA / "lm-eval", out, "--tokenizer", LAB_L)
    table = S.read_samples(out)
    assert lmeval_agrees(table, one(RUN, "samples_*"), one(RUN, "results_*")) >= 8
    lmeval_tokens_agree(table, one(RUN, "samples_*"), LAB_L / "tokenizer.json")


def test_without_a_tokenizer_the_import_says_the_tokens_are_empty(tmp_path):
    r = ttc("import", DATA / "lm-eval", "--out", tmp_path / "lm")
    assert r.exit_code == 0, r.output
    assert "no --tokenizer: prompt_tokens and completion_tokens left empty" in r.output
    assert S.read_samples(tmp_path / "lm")[S.COMPLETION_TOKENS].isna().all()


def test_a_tokenizer_that_does_not_load_is_one_line(tmp_path):
    r = ttc("import", DATA / "lm-eval", "--out", tmp_path / "out", "--tokenizer", tmp_path / "nothing")
    assert r.exit_code == 2 and "--tokenizer" in r.output and "cannot load a tokenizer" in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_reading_inspect_logs_without_inspect_ai_says_what_to_install(tmp_path):
    """Without inspect_ai the .eval import is one line naming the extra to install (lm-eval's
    output needs nothing: plain JSON)."""
    code = "import sys; sys.modules['inspect_ai'] = None\nfrom planner.cli import main; main()"
    args = ["import", str(next((DATA / "inspect").glob("*.eval"))), "--out", str(tmp_path / "out")]
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert (
        r.stderr.strip()
        == "error: reading Inspect AI logs needs inspect_ai: pip install 'ttc-planner[evals]'"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "import", str(DATA / "lm-eval"), "--out", str(tmp_path / "lm")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_the_readme_commands_give_the_numbers_the_readme_shows(tmp_path):
    """docs/importing-data.md, evaluation logs: `ttc import <lm-eval output> ... && ttc forecast S --at 1000`."""
    r = ttc("import", DATA / "lm-eval", "--tokenizer", LAB_L, "--out", tmp_path / "lm")
    assert (
        r.exit_code == 0 and "imported 80 samples of 10 questions (1 model(s), 1 strategy(ies))" in r.output
    )
    r = ttc("forecast", tmp_path / "lm", "--at", "1000", "--json")
    rows = {f["metric"]: f for f in json.loads(r.output)}
    shown = {"pass@k": (0.962, 0.857, 1.000), "majority@k": (1.000, 0.000, 1.000)}
    for metric, (estimate, lo, hi) in shown.items():
        got = rows[metric]
        assert (round(got["estimate"], 3), round(got["lo"], 3), round(got["hi"], 3)) == (estimate, lo, hi)
