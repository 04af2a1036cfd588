"""Law selection: the true family wins on clean data; extrapolation error is reported."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from tolerance import close_to

from fitting.laws import ConvergenceWarning, ExpDecay, ExpPowerLaw, Logistic, PowerLaw, get_law
from fitting.select import DEFAULT_LAWS, fit_curve, fit_curve_many

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
    # the winner's row, from its predictions by hand: rmse, AIC (unit weights), verdicts
    winner = table.loc[0]
    resid = law.predict(K) - y
    assert winner["law"] == law.name and winner["selected"] and winner["message"] == "ok"
    assert winner["rmse"] == pytest.approx(math.sqrt(np.mean(resid**2)), rel=1e-6)
    assert winner["aic"] == pytest.approx(
        len(K) * math.log(np.mean(resid**2)) + 2 * len(winner["params"]), rel=1e-6
    )
    assert winner["converged"] and winner["holdout_converged"]
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


def _noisy_curves(n_curves: int, seed: int) -> list[tuple]:
    """Curves from every true family with noise and binomial-like weights, two lengths."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_curves):
        cls, params = TRUE[i % len(TRUE)]
        x = K[: 7 + i % 4]
        y = np.clip(cls.formula(x, *params) + rng.normal(0, 0.01, len(x)), 0, 1)
        out.append((x, y, rng.uniform(50, 100, len(x))))
    return out


def test_fit_curve_many_is_fit_curve_of_each_curve():
    curves = _noisy_curves(6, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        many = fit_curve_many(curves)
        one = [fit_curve(x, y, sample_weight=w) for x, y, w in curves]
    for (law_a, table_a), (law_b, table_b) in zip(one, many, strict=True):
        assert law_a.name == law_b.name and law_b.params_ == close_to(law_a.params_)  # two code paths
        pd.testing.assert_frame_equal(table_a, table_b)


def test_selection_with_the_batched_solver_picks_the_same_laws_with_the_same_scores():
    """The batched solver runs every fit of every curve in one solve per law class; on these
    well-posed curves it reaches least_squares' optima, so the tables agree."""
    curves = _noisy_curves(8, seed=1)
    batched = [get_law(name).set_params(solver="batched") for name in DEFAULT_LAWS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = fit_curve_many(curves)
        new = fit_curve_many(curves, batched)
    for (law_a, table_a), (law_b, table_b) in zip(ref, new, strict=True):
        assert law_b.name == law_a.name and law_b.solver == "batched"
        np.testing.assert_allclose(
            list(law_b.params_.values()), list(law_a.params_.values()), rtol=2e-3, atol=1e-4
        )
        assert table_b["law"].tolist() == table_a["law"].tolist()
        assert table_b["converged"].tolist() == table_a["converged"].tolist()
        scored = table_a["converged"].to_numpy(bool)
        np.testing.assert_allclose(
            table_b.loc[scored, "extrapolation_error"],
            table_a.loc[scored, "extrapolation_error"],
            rtol=1e-2,
            atol=1e-5,
        )
