"""The batched fit engine against scipy: same objective, same optimum, same verdicts.

:func:`fitting._batchfit.least_squares_batch` must minimize exactly what
``scipy.optimize.least_squares`` minimizes (robust losses, ``f_scale``, bounds), so each
problem of a batch is checked against a ``least_squares`` run on it alone; the law-level
wrappers (:func:`fit_laws`, :func:`refit_laws`) against ``Law.fit``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import approx_fprime, least_squares

from fitting._batchfit import RefitTask, fit_laws, least_squares_batch, refit_laws, robust_loss
from fitting._fitutil import bound_hits, inside_bounds
from fitting.laws import ConvergenceWarning, ExpDecay, ExpPowerLaw, Logistic, PowerLaw

K = 2.0 ** np.arange(0, 8)  # 1..128
LAWS = {
    PowerLaw: (0.9, 0.5, 0.4),
    ExpDecay: (0.85, 0.6, 0.03),
    Logistic: (0.8, 2.5, 1.2),
    ExpPowerLaw: (1.5, 0.5),
}
LOSSES = ("linear", "soft_l1", "huber", "cauchy", "arctan")


@pytest.mark.parametrize("loss", LOSSES)
def test_robust_loss_derivatives_match_finite_differences(loss):
    z = np.array([0.0, 0.3, 0.99, 1.01, 4.0, 50.0])
    rho, d1, d2 = robust_loss(loss, z)
    h = 1e-6
    num1 = (robust_loss(loss, z + h)[0] - robust_loss(loss, np.maximum(z - h, 0))[0]) / (
        z + h - np.maximum(z - h, 0)
    )
    num2 = (robust_loss(loss, z + h)[1] - robust_loss(loss, np.maximum(z - h, 0))[1]) / (
        z + h - np.maximum(z - h, 0)
    )
    np.testing.assert_allclose(d1, num1, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(d2, num2, rtol=1e-3, atol=1e-5)
    assert rho[0] == 0.0 and d1[0] == 1.0  # every loss is least squares near zero


def _problems(cls, truth, n_prob, rng):
    """Noisy curves around a known law, with outliers, on the rescaled u = x / geomean(x)."""
    u = K / np.exp(np.mean(np.log(K)))
    scaled = cls.rescale(dict(zip(cls.param_names, truth, strict=True)), np.exp(np.mean(np.log(K))))
    theta = np.array([scaled[p] for p in cls.param_names])
    y = cls.formula(u, *theta) + rng.normal(0, 0.01, (n_prob, len(u)))
    y[:, 3] += rng.choice([0.0, 0.08], size=n_prob)  # an outlier in some curves
    sw = np.sqrt(rng.uniform(0.5, 2.0, len(u)))
    start = theta * rng.uniform(0.8, 1.2, (n_prob, len(theta)))
    return u, y, sw, start


@pytest.mark.parametrize("cls", list(LAWS), ids=lambda c: c.__name__)
@pytest.mark.parametrize("loss", ["linear", "soft_l1", "cauchy"])
def test_each_problem_of_a_batch_reaches_the_least_squares_optimum(cls, loss):
    rng = np.random.default_rng(1)
    u, y, sw, start = _problems(cls, LAWS[cls], 12, rng)
    bounds = cls()._bounds(y[0])
    lo, hi = (np.array([bounds[p][i] for p in cls.param_names]) for i in (0, 1))
    start = np.stack([inside_bounds(s, lo, hi) for s in start])
    f_scale = 0.02
    res = least_squares_batch(cls.formula, cls.jacobian, u, y, sw, start, lo, hi, loss=loss, f_scale=f_scale)
    assert res.converged.all()
    for b in range(len(y)):
        ref = least_squares(
            lambda t, b=b: sw * (cls.formula(u, *t) - y[b]), start[b], jac=lambda t: sw[:, None] * cls.jacobian(u, *t),
            bounds=(lo, hi), loss=loss, f_scale=f_scale, method="trf", x_scale="jac", ftol=1e-12, xtol=1e-12,
            gtol=1e-12,
        )  # fmt: skip
        assert res.cost[b] <= ref.cost * (1 + 1e-6) + 1e-15, (b, res.theta[b], ref.x)
        np.testing.assert_allclose(res.theta[b], ref.x, rtol=2e-3, atol=1e-5)
        np.testing.assert_allclose(res.fun[b], ref.fun, atol=1e-6)


def test_bounds_are_respected_and_an_optimum_on_a_bound_is_reached_exactly():
    u = K / 8.0
    y = np.stack([0.9 - 0.05 * np.log(K), 0.2 + 0.05 * np.log(K)])  # falling, rising
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array([1.0, np.inf, 10.0])
    start = np.full((2, 3), 0.5)
    res = least_squares_batch(PowerLaw.formula, PowerLaw.jacobian, u, y, np.ones(len(u)), start, lo, hi)
    assert res.converged.all()
    assert np.all(res.theta >= lo) and np.all(res.theta <= hi)
    # a rising law fits a falling curve best when flat (scale or alpha exactly 0): at the mean
    np.testing.assert_allclose(PowerLaw.formula(u, *res.theta[0]), y[0].mean(), atol=1e-6)
    assert res.theta[0, 1] == 0.0 or res.theta[0, 2] == 0.0
    _, bad = bound_hits(res.theta, lo, hi, PowerLaw.param_names, (), ("ceiling",))
    assert bad.any(axis=(1, 2)).tolist() == [True, False]


def test_problems_with_different_lengths_share_a_batch_through_zero_weights():
    x_long, x_short = K, K[:5]
    y_long, y_short = PowerLaw.formula(x_long, 0.9, 0.5, 0.4), PowerLaw.formula(x_short, 0.7, 0.4, 0.6)
    tasks = [
        RefitTask(PowerLaw(loss="linear"), x_long, y_long[None], None, np.array([0.8, 0.4, 0.5]), 1.0),
        RefitTask(PowerLaw(loss="linear"), x_short, y_short[None], None, np.array([0.8, 0.4, 0.5]), 1.0),
    ]
    together = refit_laws(tasks)
    alone = [refit_laws([t])[0] for t in tasks]
    for a, b, truth in zip(together, alone, [(0.9, 0.5, 0.4), (0.7, 0.4, 0.6)], strict=True):
        assert a.ok.all() and b.ok.all()
        np.testing.assert_allclose(a.params[0], truth, rtol=1e-6)
        np.testing.assert_allclose(a.params, b.params, rtol=1e-9)


@pytest.mark.parametrize("cls", list(LAWS), ids=lambda c: c.__name__)
def test_refit_laws_matches_warm_started_law_fit_row_by_row(cls):
    rng = np.random.default_rng(3)
    truth = LAWS[cls]
    y = cls.formula(K, *truth) + rng.normal(0, 0.004, (40, len(K)))
    w = rng.uniform(1.0, 3.0, len(K))
    point = cls().fit(K, y.mean(axis=0), w)  # a noisy mean: a realistic f_scale_
    start = np.array([point.params_[p] for p in cls.param_names])
    res = refit_laws([RefitTask(point, K, y, w, start, point.f_scale_)])[0]
    assert res.solved.all()
    for b in range(len(y)):
        rep = point.clone().set_params(warm_start=True)
        rep.params_, rep.f_scale_ = dict(point.params_), point.f_scale_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            rep.fit(K, y[b], w)
        assert res.ok[b] == rep.converged_
        np.testing.assert_allclose(
            res.params[b], [rep.params_[p] for p in cls.param_names], rtol=2e-3, atol=1e-4
        )


@pytest.mark.parametrize("cls", list(LAWS), ids=lambda c: c.__name__)
def test_fit_laws_matches_law_fit_and_recovers_known_parameters(cls):
    rng = np.random.default_rng(4)
    truth = LAWS[cls]
    clean = cls.formula(K, *truth)
    noisy = np.clip(clean + rng.normal(0, 0.003, len(K)), 0, 1)
    w = rng.uniform(1.0, 3.0, len(K))
    exact, robust, plain = fit_laws(
        [(cls(), K, clean, None), (cls(), K, noisy, w), (cls(loss="linear"), K, noisy, w)]
    )
    assert exact.converged_
    np.testing.assert_allclose(list(exact.params_.values()), truth, rtol=1e-5)
    for law, loss in ((robust, "soft_l1"), (plain, "linear")):
        ref = cls(loss=loss).fit(K, noisy, w)
        assert law.converged_ and ref.converged_
        got, want = np.array(list(law.params_.values())), np.array(list(ref.params_.values()))
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-4)
        assert law.f_scale_ == pytest.approx(ref.f_scale_, rel=1e-3)
        assert law.aic_ == pytest.approx(ref.aic_, abs=1e-3)


def test_fit_laws_gives_the_same_verdict_as_law_fit_on_degenerate_data():
    falling = 0.9 - 0.05 * np.log(K)
    with pytest.warns(ConvergenceWarning, match="stuck at its"):
        (law,) = fit_laws([(PowerLaw(), K, falling, None)])
    assert law.converged_ is False and "NO" in law.report()


def test_fit_laws_rejects_bad_input_like_law_fit():
    with pytest.raises(ValueError, match="must be positive"):
        fit_laws([(PowerLaw(), np.array([0.0, 1, 2, 3]), np.ones(4), None)])
    with pytest.raises(ValueError, match="3 parameters but got only 2"):
        fit_laws([(PowerLaw(), np.array([1.0, 2]), np.ones(2), None)])


def test_jacobians_of_a_batch_are_the_per_curve_jacobians():
    for cls, truth in LAWS.items():
        params = np.array(truth) * np.array([[1.0], [1.1], [0.9]])  # 3 parameter sets
        x = np.broadcast_to(K, (3, len(K)))
        jac = cls.jacobian(x, *params.T[:, :, None])
        assert jac.shape == (3, len(K), len(truth))
        for b in range(3):
            np.testing.assert_allclose(jac[b], cls.jacobian(K, *params[b]), rtol=1e-12)
            num = approx_fprime(params[b], lambda t, cls=cls: cls.formula(K[2:3], *t)[0], 1e-7)
            np.testing.assert_allclose(jac[b, 2], num, rtol=1e-5, atol=1e-7)


def test_law_solver_setting_selects_the_batched_fit_and_survives_cloning():
    rng = np.random.default_rng(6)
    y = np.clip(PowerLaw.formula(K, 0.9, 0.5, 0.4) + rng.normal(0, 0.003, len(K)), 0, 1)
    fast = PowerLaw(solver="batched")
    assert fast.clone().get_params()["solver"] == "batched"
    assert fast.fit(K, y) is fast and fast.converged_
    ref = PowerLaw().fit(K, y)
    np.testing.assert_allclose(list(fast.params_.values()), list(ref.params_.values()), rtol=2e-3)
    with pytest.raises(ValueError, match="solver must be 'scipy' or 'batched'"):
        PowerLaw(solver="fast").fit(K, y)

