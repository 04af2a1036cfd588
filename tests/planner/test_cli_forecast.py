"""`ttc forecast` on hostile input: flags it cannot honour are one line with exit 2 (table and
--json alike), --json is strict JSON with a reason beside every null, a flat majority law with a
--target is no traceback; and planning spends the budget once predictions past the profiled range
no longer fall below the last measurement (counts' coverage forecasts and laws alike)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fitting import PowerLaw
from fitting.importer import import_file
from planner.cli import app
from planner.profile import load_profile
from planner.recommend import plan
from planner.space.predict import CurvePredictor

C_CSV = (
    "question_id,n_samples,n_correct,prompt_tokens,completion_tokens,model\n"
    "q1,100,3,100,200,mA\nq2,100,0,100,200,mA\nq3,100,50,100,200,mA\nq4,100,1,100,200,mA\n"
)
SPEC = "params:1e9,layers:16,kv_heads:8,head_dim:64"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("forecast-cli")
    (base / "c.csv").write_text(C_CSV)
    import_file(base / "c.csv", base / "F")
    majority = {"q0": "0 3 1 42 0 1 2 42", "q1": "3 0 3 1 0 0 2 3", "q2": "1 3 0 3 42 2 0 3"}
    rows = [f"{q},{int(a == '42')},{a}" for q, s in majority.items() for a in s.split()]
    (base / "m.csv").write_text("question_id,correct,answer\n" + "\n".join(rows) + "\n")
    return base


def ttc(args: list[str]):
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--at", "1.5"], "--at must be a whole number of samples per question, got 1.5"),
        (["--at", "200", "--n-boot", "-5"], "--n-boot must be >= 0"),
        (["--at", "200", "--backtest-reps", "-1"], "--backtest-reps must be >= 0"),
        (["--at", "200", "--metric", "majority@k"], "nothing to forecast"),
        (["--at", "200", "--metric", "majority@k", "--json"], "nothing to forecast"),
    ],
    ids=["fractional-at", "negative-n-boot", "negative-backtest-reps", "nothing-table", "nothing-json"],
)
def test_what_forecast_cannot_honour_is_one_line_and_exit_2(folder, extra, message):
    r = ttc(["forecast", str(folder / "c.csv"), *extra])
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert r.stdout == ""


def _strict(text: str):
    def refuse(name):
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_forecast_json_is_strict_and_says_why_a_number_is_missing(folder):
    r = ttc(["forecast", str(folder / "F"), "--at", "100", "--at", "101", "--target", "0.99999", "--json"])
    assert r.exit_code == 0, r.output
    recs = _strict(r.stdout)
    assert [rec["estimate"] >= 0.75 for rec in recs] == [True, True]
    for rec in recs:
        nulls = [key for key in ("k_needed", "k_needed_lo", "k_needed_hi") if rec[key] is None]
        assert not nulls or rec["k_needed_note"].startswith(", ".join(nulls))


def test_a_target_on_a_flat_majority_law_is_no_traceback(folder):
    r = ttc(
        [
            "forecast",
            str(folder / "m.csv"),
            "--at",
            "64",
            "--target",
            "0.6",
            "--metric",
            "majority@k",
            "--json",
        ]
    )
    assert r.exit_code == 0 and r.exception is None, r.output
    (rec,) = _strict(r.stdout)
    assert rec["k_needed"] is None and "not reached by the law" in rec["k_needed_note"]


def test_planning_from_counts_spends_the_budget_past_the_pool(folder):
    """The pool holds 100 samples per question (pass@100 = 0.75 measured). With a budget that pays
    for about 170, the plan went back to n = 100 (58% of the budget) because the forecast at 141
    fell to 0.698; it now takes the largest n of its grid that fits, forecast at least 0.75."""
    prof = load_profile(folder / "F", model_specs={"mA": SPEC}, n_boot=0, use_cache=False)
    rec = plan(prof, {"flops": 7e13}, verifier="exact", method="exhaustive").to_json()
    assert rec["choice"]["knobs"]["n"] == 141 and rec["cost"]["flops"] <= 7e13
    assert rec["expected_accuracy"] >= 0.75 and rec["source"] == "extrapolated"


def test_a_law_extrapolated_by_the_planner_continues_the_last_measured_point():
    """The last measured point lies 0.03 above the fitted law: the prediction just past it was
    the law's, 0.03 lower than measured, so the planner saw more samples as worse."""
    law = PowerLaw().with_params({"ceiling": 0.9, "scale": 0.5, "alpha": 0.5})
    x = np.array([1.0, 2.0, 4.0, 8.0])
    y = law.predict(x) + np.array([0.0, 0.0, 0.0, 0.03])
    pred = CurvePredictor(x, y, y - 0.02, y + 0.02, law=law, extrapolation_error=0.01)
    pr = pred.predict([8, 9, 16, 32])
    assert pr.source.tolist() == ["measured", "extrapolated", "extrapolated", "extrapolated"]
    np.testing.assert_allclose(pr.accuracy[1:], law.predict(np.array([9, 16, 32.0])) + 0.03, atol=1e-12)
    assert np.all(np.diff(pr.accuracy) > 0) and np.all(pr.lo <= pr.accuracy) and np.all(pr.accuracy <= pr.hi)
