"""Law selection: the true family wins on clean data; extrapolation error is reported."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from fitting.laws import ConvergenceWarning, ExpDecay, ExpPowerLaw, Logistic, PowerLaw
from fitting.select import DEFAULT_LAWS, fit_curve

K = 2.0 ** np.arange(0, 10)  # 1..512

TRUE = [
    (PowerLaw, (0.9, 0.5, 0.4)),
    (ExpDecay, (0.85, 0.6, 0.02)),
    (Logistic, (0.8, 2.5, 1.2)),
    (ExpPowerLaw, (1.5, 0.5)),
]


@pytest.mark.parametrize(("cls", "params"), TRUE, ids=lambda v: getattr(v, "__name__", ""))
def test_selection_picks_the_true_family_on_clean_data(cls, params):
    y = cls.formula(K, *params)
    law, table = fit_curve(K, y)
    assert law.name == cls.name, table[["law", "extrapolation_error", "aic", "converged"]]
    assert table.loc[0, "law"] == cls.name and table.loc[0, "selected"]
    assert table["selected"].sum() == 1
    # the winner is refit on all points: it reproduces the curve
    np.testing.assert_allclose(law.predict(K), y, atol=1e-6)


def test_table_reports_extrapolation_error_as_held_out_rmse():
    y = PowerLaw.formula(K, 0.9, 0.5, 0.4) + np.random.default_rng(0).normal(0, 0.003, len(K))
    law, table = fit_curve(K, y, holdout_frac=0.3, cuts=None)  # cuts=None: the top-30% holdout scheme
    assert list(table.columns) == [
        "law", "params", "rmse", "aic", "extrapolation_error", "extrapolation_ratio", "converged",
        "holdout_converged", "selected", "message",
    ]  # fmt: skip
    assert set(table["law"]) == set(DEFAULT_LAWS)
    assert table["extrapolation_error"].notna().all()
    # recompute one candidate's extrapolation error by hand: fit on the 7 lowest k, RMSE on the top 3
    row = table.set_index("law").loc["exp_decay"]
    low = ExpDecay()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        low.fit(K[:7], y[:7])
    expected = math.sqrt(np.mean((low.predict(K[7:]) - y[7:]) ** 2))
    assert row["extrapolation_error"] == pytest.approx(expected, rel=1e-6)
    assert row["extrapolation_error"] > table.set_index("law").loc["power_law", "extrapolation_error"]
    assert isinstance(table.loc[0, "params"], dict)


def test_too_few_points_to_hold_out_fall_back_to_aic():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    y = PowerLaw.formula(x, 0.9, 0.5, 0.4)
    law, table = fit_curve(x, y, laws=["power_law", "exp_power_law"], holdout_frac=0.25)
    pl = table.set_index("law").loc["power_law"]
    assert math.isnan(pl["extrapolation_error"]) and "not scored" in pl["message"]
    assert law.name == "power_law"  # exact fit: lowest AIC


def test_order_of_points_does_not_matter_and_laws_can_be_instances():
    y = ExpDecay.formula(K, 0.85, 0.6, 0.02)
    perm = np.random.default_rng(1).permutation(len(K))
    law, table = fit_curve(K[perm], y[perm], laws=[PowerLaw(n_starts=2), ExpDecay])
    assert law.name == "exp_decay"
    assert isinstance(table, pd.DataFrame) and len(table) == 2


def test_no_converged_candidate_warns_and_still_returns_the_table():
    y = 0.9 - 0.05 * np.log(K)  # falling accuracy: no saturating law fits
    with pytest.warns(ConvergenceWarning, match="no candidate law converged"):
        law, table = fit_curve(K, y, laws=["power_law"])
    assert not table.loc[0, "converged"] and "stuck" in table.loc[0, "message"]
    assert law.converged_ is False


def test_laws_that_cannot_take_zero_compute_are_skipped_with_a_reason():
    x = np.arange(0.0, 12.0)
    y = ExpDecay.formula(x, 0.85, 0.6, 0.2)
    law, table = fit_curve(x, y)
    assert law.name == "exp_decay"
    skipped = table.set_index("law").loc["power_law"]
    assert not skipped["converged"] and skipped["message"].startswith("not applicable")
    with pytest.raises(ValueError, match="no candidate law applies"):
        fit_curve(x, y, laws=["power_law"])
