"""Forecasts at the edges: laws that stopped flat, targets beyond a law's reach, pools past
numpy's hypergeometric limit, and strict JSON records that say why a number is missing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fitting.forecast import MAX_EXACT_SUBSAMPLE, _subsample, forecast
from fitting.laws import ExpDecay, ExpPowerLaw, Logistic, PowerLaw


@pytest.mark.parametrize(
    ("law", "params", "flat"),
    [
        (ExpPowerLaw, {"a": 0.5, "b": 0.0}, float(np.exp(-0.5))),
        (PowerLaw, {"ceiling": 0.9, "scale": 0.3, "alpha": 0.0}, 0.6),
        (ExpDecay, {"ceiling": 0.9, "scale": 0.3, "rate": 0.0}, 0.6),
        (Logistic, {"ceiling": 0.9, "midpoint": 1.0, "slope": 0.0}, 0.45),
    ],
)
def test_a_law_fitted_flat_inverts_to_at_once_or_never(law, params, flat):
    """A fit that stopped at a zero exponent is a constant: a target at or below it is met at
    once (k = 0), one above it never (inf); b = 0 raised ZeroDivisionError."""
    fitted = law().with_params(params)
    np.testing.assert_allclose(fitted.predict([1.0, 1e6]), flat)
    got = fitted.inverse(np.array([flat - 0.05, flat + 0.02]))
    assert got.tolist() == [0.0, np.inf]


def _majority_samples() -> pd.DataFrame:
    """Three questions of 8 sampled answers, '42' right (the reproduction of the traceback)."""
    answers = {"q0": "0 3 1 42 0 1 2 42", "q1": "3 0 3 1 0 0 2 3", "q2": "1 3 0 3 42 2 0 3"}
    rows = [
        {"question_id": q, "sample_idx": i, "answer": a, "correct": a == "42", "reference": "42"}
        for q, s in answers.items()
        for i, a in enumerate(s.split())
    ]
    return pd.DataFrame(rows)


def test_a_target_beyond_a_flat_majority_law_is_null_with_its_reason():
    recs = forecast(_majority_samples(), at=[64], target=0.6, metrics=["majority@k"], n_boot=20)
    (rec,) = recs
    assert rec["metric"] == "majority@k" and rec["k_needed"] is None
    assert rec["k_needed_note"].startswith("k_needed") and "not reached by the law" in rec["k_needed_note"]
    json.dumps(recs, allow_nan=False)  # strict JSON


def test_records_that_cannot_forecast_say_why_for_the_target_too():
    counts = pd.DataFrame({"question_id": ["a", "b"], "n_samples": 10, "n_correct": 0})
    recs = forecast(counts=counts, at=[5, 50], target=0.5)
    assert [r["estimate"] for r in recs] == [0.0, None]
    for r in recs:
        assert r["k_needed"] is None and "no correct sample" in r["k_needed_note"]
    json.dumps(recs, allow_nan=False)


def test_pools_past_numpys_hypergeometric_limit_are_backtested():
    """Pools of 2e9 samples: numpy refused them ('both ngood and nbad must be less than 1e9')."""
    counts = pd.DataFrame(
        {"question_id": ["a", "b", "c"], "n_samples": 2_000_000_000, "n_correct": [10, 0, 1000]}
    )
    (rec,) = forecast(counts=counts, at=[4_000_000_000], backtest_reps=2)
    assert rec["backtest_ratio"] == 2.0 and 0.0 <= rec["extrapolation_error"] <= 1.0


def test_pools_too_large_for_the_exact_subsampler_say_so():
    big = 10**15
    counts = pd.DataFrame({"question_id": ["a", "b", "c"], "n_samples": big, "n_correct": [10, 0, big // 2]})
    (rec,) = forecast(counts=counts, at=[2 * big], backtest_reps=2)
    assert rec["extrapolation_error"] is None and rec["estimate"] is not None
    assert "beyond the exact subsampler" in rec["note"] and f"{MAX_EXACT_SUBSAMPLE:.0e}" in rec["note"]


@pytest.mark.parametrize("rare", ["correct", "wrong"])
def test_the_large_pool_subsample_is_hypergeometric(rare):
    """1000 samples of the rarer kind in a pool of 2e9, 1.5e9 drawn: the count drawn has the
    hypergeometric mean 750 and variance 187.5 (a binomial draw would have variance 750)."""
    n_pool, few, m = 2_000_000_000, 1000, 1_500_000_000
    c = few if rare == "correct" else n_pool - few
    rng = np.random.default_rng(0)
    draws = np.array(
        [_subsample(rng, np.array([n_pool]), np.array([c]), np.array([m]))[0] for _ in range(400)],
        dtype=float,
    )
    rare_drawn = draws if rare == "correct" else m - draws
    assert rare_drawn.mean() == pytest.approx(750.0, abs=3.0)  # 4 standard errors (0.68 each)
    assert 187.5 * 0.7 < rare_drawn.var() < 187.5 * 1.3  # sampling spread of a variance from 400 draws: ~7%
