"""`ttc import` of Inspect AI logs, end to end on the committed real log (see
tests/data/evallogs/README.md): imported, checked against Inspect's own epoch reduction and the
tokenizer, then fitted, forecast and planned on. Bad input: one line, exit 2, no output left."""

from __future__ import annotations

import pytest
from evallog_checks import DATA, LAB_L, MAX_TOKENS, import_fit_forecast_recommend, inspect_agrees, ttc
from inspect_ai.log import read_eval_log

from fitting import schema as S

INSPECT_LOG = next((DATA / "inspect").glob("*.eval"))


def test_committed_inspect_log_round_trips(tmp_path):
    out = tmp_path / "inspect"
    import_fit_forecast_recommend(INSPECT_LOG, out)
    inspect_agrees(S.read_samples(out), read_eval_log(str(INSPECT_LOG)), LAB_L / "tokenizer.json", MAX_TOKENS)


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
