"""Law selection scores extrapolation the way it is used: fitted on the low end of a log range,
scored on the far end, over several cuts."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from fitting.laws import ConvergenceWarning, ExpDecay, ExpPowerLaw, PowerLaw
from fitting.select import fit_curve

K = 2.0 ** np.arange(0, 11)  # 1..1024: a log range of 10 doublings


def _fit(cls, x, y):
    law = cls()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return law.fit(x, y)


def test_far_end_error_is_the_mean_rmse_over_the_cuts_recomputed_by_hand():
    y = PowerLaw.formula(K, 0.9, 0.5, 0.4) + np.random.default_rng(0).normal(0, 0.002, len(K))
    law, table = fit_curve(K, y, cuts=(0.25, 0.4, 0.55), far=0.15)
    # cuts at 2**2.5, 2**4, 2**5.5: low ends of 3 (too few for 3 parameters), 5 and 6 points;
    # far end: x >= 2**8.5, i.e. 512 and 1024
    far = K >= 2**8.5
    errors = [
        math.sqrt(np.mean((_fit(ExpDecay, K[:m], y[:m]).predict(K[far]) - y[far]) ** 2)) for m in (5, 6)
    ]
    row = table.set_index("law").loc["exp_decay"]
    assert row["extrapolation_error"] == pytest.approx(np.mean(errors), rel=1e-6)
    ratios = [np.exp(np.mean(np.log(K[far]))) / K[m - 1] for m in (5, 6)]
    assert row["extrapolation_ratio"] == pytest.approx(np.exp(np.mean(np.log(ratios))), rel=1e-9)
    assert law.name == "power_law"


def test_every_candidate_is_scored_on_the_same_cuts():
    y = ExpPowerLaw.formula(K, 1.5, 0.4)
    _, table = fit_curve(K, y)
    ratios = table["extrapolation_ratio"].to_numpy()
    assert np.allclose(ratios, ratios[0])  # the 2-parameter law gets no extra, harder cut


@pytest.mark.parametrize("seed", [0, 1])
def test_coverage_of_a_finite_question_set_is_not_left_to_a_top_quarter_holdout(seed):
    """Coverage far out, in miniature: pass@k of 128 questions (p ~ Beta(0.25, 8)) on every
    k <= 1000. The old top-25% holdout (k 751-1000, a sliver of the log range) lets every law
    look alike and AIC picked logistic, which saturates early (-8 points at k = 100,000); scored
    on the far end from three low-end cuts, the selected law stays within 5 points."""
    p = np.random.default_rng(seed).beta(0.25, 8.0, size=128)
    k = np.arange(1.0, 1001.0)
    y = np.mean(1.0 - (1.0 - p[:, None]) ** k[None, :], axis=0)
    truth = float(np.mean(1.0 - (1.0 - p) ** 100_000))
    law, table = fit_curve(k, y)
    assert abs(float(law.predict(100_000.0)) - truth) < 0.05, table[["law", "extrapolation_error", "aic"]]
    old, _ = fit_curve(k, y, cuts=None)
    assert old.name == "logistic" and float(old.predict(100_000.0)) - truth < -0.05  # what it did before


def test_short_curves_fall_back_to_the_holdout_scheme():
    x = np.arange(1.0, 7.0)  # log range too short for any cut to leave 4 points
    y = PowerLaw.formula(x, 0.9, 0.5, 0.5)
    _, table = fit_curve(x, y, laws=["power_law", "exp_power_law"])
    assert table["extrapolation_error"].isna().all() or table["extrapolation_error"].notna().all()
    by_hand, _ = fit_curve(x, y, laws=["power_law", "exp_power_law"], cuts=None)
    assert by_hand.name == table.loc[0, "law"]


def test_bad_cuts_are_refused():
    with pytest.raises(ValueError, match="cuts must lie in"):
        fit_curve(K, PowerLaw.formula(K, 0.9, 0.5, 0.4), cuts=(0.0, 0.5))
