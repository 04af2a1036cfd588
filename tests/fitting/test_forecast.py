"""Forecasts far beyond the data: the beta-binomial posterior against known answers, the
forecast records, and `ttc forecast`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import betaln
from typer.testing import CliRunner

from fitting import pass_at_k
from fitting.coverage import BetaBinomialPosterior
from fitting.forecast import RECORD_KEYS, forecast
from planner.cli import app

REAL = (
    Path(__file__).parents[1] / "data" / "monkeys_gsm8k_pythia_counts_slice.csv"
)  # see tests/data/README.md


def beta_pools(a, b, questions, n, seed):
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, size=questions)
    return p, rng.binomial(n, p)


def test_posterior_interval_covers_the_true_far_coverage_of_known_beta_populations():
    hits, errors = 0, []
    for seed in range(40):
        p, c = beta_pools(0.35, 4.0, 200, 20, seed)
        f = BetaBinomialPosterior().fit(np.full(200, 20), c).forecast(2000)  # 100x beyond the data
        truth = float(np.mean(1 - (1 - p) ** 2000))  # the questions' true pass@2000
        hits += f.lo <= truth <= f.hi
        errors.append(f.estimate - truth)
    assert hits >= 30  # nominal 90%: 36 of 40; measured 86-90% over 80 seeds
    assert abs(np.mean(errors)) < 0.03 and np.mean(np.abs(errors)) < 0.06


def test_posterior_concentrates_on_the_true_shape_with_many_questions():
    p, c = beta_pools(0.5, 3.0, 4000, 30, 0)
    model = BetaBinomialPosterior().fit(np.full(4000, 30), c)
    assert model.params_["a"] == pytest.approx(0.5, rel=0.1)
    assert model.params_["mu"] == pytest.approx(0.5 / 3.5, rel=0.05)
    # a new question's expected pass@k is the Beta's closed form at the true (a, b)
    k = np.array([1.0, 100.0, 10_000.0])
    np.testing.assert_allclose(
        model.predict(k), 1 - np.exp(betaln(0.5, 3.0 + k) - betaln(0.5, 3.0)), atol=0.02
    )


def test_forecast_inside_the_pools_is_the_measured_unbiased_pass_at_k():
    p, c = beta_pools(0.5, 2.0, 100, 64, 1)
    model = BetaBinomialPosterior().fit(np.full(100, 64), c)
    f = model.forecast(16)
    assert f.estimate == pytest.approx(float(pass_at_k(64, c, 16).mean()), abs=1e-12)
    assert f.lo <= f.estimate <= f.hi


def test_k_needed_inverts_the_forecast():
    p, c = beta_pools(0.4, 3.0, 300, 16, 2)
    model = BetaBinomialPosterior().fit(np.full(300, 16), c)
    need = model.k_needed(0.8)
    assert need.lo <= need.estimate <= need.hi
    assert model.forecast(need.estimate).estimate == pytest.approx(0.8, abs=2e-3)


def test_no_correct_sample_is_said_not_guessed():
    recs = forecast(
        counts=pd.DataFrame({"question_id": range(5), "n_samples": 50, "n_correct": 0}), at=[10, 1000]
    )
    inside, beyond = recs
    assert inside["method"] == "measured" and inside["estimate"] == 0.0
    assert beyond["estimate"] is None and "no correct sample" in beyond["note"]
    model = BetaBinomialPosterior().fit(np.full(5, 50), np.zeros(5))
    assert np.isnan(model.forecast(1000).estimate) and model.forecast(10).estimate == 0.0


def test_records_on_real_counts_say_how_far_they_went_and_their_backtest(tmp_path):
    counts = pd.read_csv(REAL)
    recs = forecast(
        counts=counts[counts["model"] == "Pythia_12B_300B"], at=[64, 12800], target=0.9, backtest_reps=3
    )
    assert [r["at"] for r in recs] == [64.0, 12800.0]
    target_keys = {"target", "k_needed", "k_needed_lo", "k_needed_hi", "k_needed_note"}
    for r in recs:
        assert set(RECORD_KEYS) | target_keys == set(r)
        assert r["k_max"] == 128 and r["lo"] <= r["estimate"] <= r["hi"]
    inside, far = recs
    assert inside["method"] == "measured" and inside["ratio"] == 0.5
    assert inside["estimate"] == pytest.approx(
        float(pass_at_k(128, counts[counts["model"] == "Pythia_12B_300B"]["n_correct"].to_numpy(), 64).mean())
    )
    assert far["method"] == "beta_binomial_posterior" and far["ratio"] == 100.0
    assert far["backtest_ratio"] == 16.0 and 0 <= far["extrapolation_error"] < 0.5  # 128 / 8 samples left
    assert far["k_needed_lo"] <= far["k_needed"] <= far["k_needed_hi"]


def test_law_forecasts_for_majority_from_samples():
    rng = np.random.default_rng(0)
    rows = []
    for q in range(40):
        p = rng.beta(2, 2)
        for i in range(32):
            ok = bool(rng.random() < p)
            rows.append(
                {
                    "question_id": f"q{q}",
                    "sample_idx": i,
                    "correct": ok,
                    "reference": "7",
                    "answer": "7" if ok else str(rng.integers(0, 4)),
                }
            )
    recs = forecast(pd.DataFrame(rows), at=[16, 256], metrics=["majority@k"], n_boot=30)
    inside, far = recs
    assert inside["metric"] == "majority@k" and inside["method"] == "measured"
    assert far["method"].startswith("law:") and far["ratio"] == 8.0
    assert 0.0 <= far["lo"] <= far["estimate"] <= far["hi"] <= 1.0
    assert far["extrapolation_error"] is not None and far["backtest_ratio"] > 1


def test_ttc_forecast_json_lists_the_promised_keys(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "forecast",
            str(REAL),
            "--at",
            "1000",
            "--at",
            "100000",
            "--target",
            "0.9",
            "--json",
            "--backtest-reps",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    recs = json.loads(result.output[result.output.index("[") :])
    assert len(recs) == 8  # 4 models x 2 K
    must = {"model", "strategy", "metric", "difficulty", "at", "estimate", "lo", "hi", "method", "k_max"}
    assert all(must | {"target", "k_needed"} <= set(r) for r in recs)
    huge = [r for r in recs if r["model"] == "Pythia_14M_2M" and r["at"] == 100000][0]
    # four curves: by default their tail exponents share a hierarchical prior; pools: 10,112-1,000,064
    assert huge["method"] == "measured+beta_binomial_posterior_shared_tail" and huge["ratio"] < 10


def test_ttc_forecast_table_and_bad_input(tmp_path):
    result = CliRunner().invoke(app, ["forecast", str(REAL), "--at", "12800", "--backtest-reps", "0"])
    assert result.exit_code == 0, result.output
    assert "Pythia_12B_300B" in result.output and "beta_binomial_posterior" in result.output
    result = CliRunner().invoke(app, ["forecast", str(REAL), "--at", "0"])
    assert result.exit_code == 2 and "--at must be >= 1" in result.output
