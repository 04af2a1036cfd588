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
from tolerance import close_to

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
            lambda t, b=b: sw * (cls.formula(u, *t) - y[b]),
            start[b],
            jac=lambda t: sw[:, None] * cls.jacobian(u, *t),
            bounds=(lo, hi),
            loss=loss,
            f_scale=f_scale,
            method="trf",
            x_scale="jac",
            ftol=1e-12,
            xtol=1e-12,
            gtol=1e-12,
        )
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


# A real bootstrap replicate (lab-m majority@k at difficulty 3 of examples/samples.jsonl, seed 0,
# replicate 1) on which projected steps from the point estimate settle on alpha = 0 (a flat law,
# a search bound) while least_squares, staying inside the box, finds an interior optimum with a
# 17 % lower cost.
REPLICATE_X = np.arange(1.0, 17.0)
REPLICATE_Y = np.array(
    [
        0.2875,
        0.2875,
        0.331131,
        0.347019,
        0.35223,
        0.353122,
        0.349473,
        0.343512,
        0.337448,
        0.331827,
        0.326401,
        0.320371,
        0.313178,
        0.305556,
        0.3,
        0.3,
    ]
)
REPLICATE_W = np.array(
    [
        75.851852,
        75.3615,
        69.864955,
        67.50174,
        66.052091,
        65.024486,
        64.481827,
        64.213356,
        64.04003,
        63.938404,
        63.844196,
        63.679386,
        63.435137,
        63.228179,
        62.993848,
        62.5,
    ]
)
REPLICATE_START = np.array([0.239609, 0.084683, 0.268542])  # the point fit (ceiling, scale, alpha)
REPLICATE_F_SCALE = 0.00208413


def test_a_row_left_on_a_bound_by_projected_steps_finds_the_interior_optimum_least_squares_finds():
    law = PowerLaw()
    x_ref = law._x_ref(REPLICATE_X)
    u = REPLICATE_X / x_ref
    scaled = law.rescale(dict(zip(law.param_names, REPLICATE_START, strict=True)), x_ref)
    start = np.array([scaled[p] for p in law.param_names])
    bounds = law._bounds(REPLICATE_Y)
    lo, hi = (np.array([bounds[p][i] for p in law.param_names]) for i in (0, 1))
    sw = np.sqrt(REPLICATE_W / REPLICATE_W.mean())
    runs = {
        steps: least_squares_batch(
            PowerLaw.formula,
            PowerLaw.jacobian,
            u,
            REPLICATE_Y,
            sw,
            start[None],
            lo,
            hi,
            loss="soft_l1",
            f_scale=REPLICATE_F_SCALE,
            max_iter=2000,
            bound_steps=steps,
        )
        for steps in ("project", "interior")
    }
    assert runs["project"].theta[0, 2] == 0.0  # alpha on its lower bound
    assert runs["interior"].cost[0] < 0.9 * runs["project"].cost[0]
    assert np.all(runs["interior"].theta > lo) and np.all(runs["interior"].theta < hi)

    point = PowerLaw().set_params(warm_start=True)
    point.params_ = dict(zip(law.param_names, REPLICATE_START, strict=True))
    point.f_scale_ = REPLICATE_F_SCALE
    (res,) = refit_laws(
        [RefitTask(point, REPLICATE_X, REPLICATE_Y[None], REPLICATE_W, REPLICATE_START, REPLICATE_F_SCALE)]
    )
    ref = point.fit(REPLICATE_X, REPLICATE_Y, REPLICATE_W)  # least_squares from the same start
    assert res.ok[0] and ref.converged_
    np.testing.assert_allclose(res.params[0], [ref.params_[p] for p in law.param_names], rtol=1e-3)
    assert res.params[0, 2] == pytest.approx(2.733, abs=0.01)


def test_interior_steps_stay_strictly_inside_the_bounds():
    u = K / 8.0
    y = np.stack([0.9 - 0.05 * np.log(K), 0.2 + 0.05 * np.log(K)])  # the first one's optimum is on a bound
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array([1.0, np.inf, 10.0])
    res = least_squares_batch(
        PowerLaw.formula,
        PowerLaw.jacobian,
        u,
        y,
        np.ones(len(u)),
        np.full((2, 3), 0.5),
        lo,
        hi,
        bound_steps="interior",
        max_iter=500,
    )
    assert np.all(res.theta > lo) and np.all(res.theta < hi)
    # it approaches the flat law (the bound) and gets within a hair of its cost
    flat = 0.5 * np.sum((y[0] - y[0].mean()) ** 2)
    assert res.cost[0] <= flat * (1 + 1e-3)
    with pytest.raises(ValueError, match="bound_steps must be one of"):
        least_squares_batch(
            PowerLaw.formula, PowerLaw.jacobian, u, y, 1.0, np.full((2, 3), 0.5), lo, hi, bound_steps="clip"
        )


def test_a_problem_that_cannot_start_is_reported_not_converged():
    u = K / 8.0
    y = np.stack([PowerLaw.formula(u, 0.9, 0.5, 0.4), np.full(len(u), np.nan)])
    res = least_squares_batch(
        PowerLaw.formula,
        PowerLaw.jacobian,
        u,
        y,
        1.0,
        np.full((2, 3), 0.5),
        np.zeros(3),
        np.array([1.0, np.inf, 10.0]),
    )
    assert res.converged.tolist() == [True, False]
    np.testing.assert_allclose(res.theta[0], [0.9, 0.5, 0.4], rtol=1e-6)


def test_rows_out_of_iterations_are_refitted_by_least_squares():
    """A budget too small to converge: refit_laws says which rows are unsolved, and fit_laws
    hands those fits to least_squares, so the result is exactly the scipy path's."""
    rng = np.random.default_rng(8)
    y = np.clip(PowerLaw.formula(K, 0.9, 0.5, 0.4) + rng.normal(0, 0.01, (6, len(K))), 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        point = PowerLaw(max_nfev=2).fit(K, y.mean(axis=0))
        start = np.array([point.params_[p] for p in point.param_names]) * 1.5
        (res,) = refit_laws([RefitTask(point, K, y, None, start, 0.01)])
        assert not res.solved.any()
        (fast,) = fit_laws([(PowerLaw(max_nfev=2), K, y[0], None)])
        slow = PowerLaw(max_nfev=2).fit(K, y[0])
    assert fast.params_ == close_to(slow.params_) and fast.converged_ == slow.converged_  # two code paths
    assert fast.convergence_message_ == slow.convergence_message_


def test_a_batch_of_many_laws_and_lengths_equals_each_fit_alone():
    rng = np.random.default_rng(9)
    problems = []
    for cls, truth in LAWS.items():
        for n in (5, 8):
            x = K[:n]
            problems.append((cls, x, np.clip(cls.formula(x, *truth) + rng.normal(0, 0.005, n), 0, 1)))
    together = fit_laws([(cls(), x, y, None) for cls, x, y in problems])
    for (cls, x, y), law in zip(problems, together, strict=True):
        (alone,) = fit_laws([(cls(), x, y, None)])
        assert law.converged_ == alone.converged_
        np.testing.assert_allclose(
            list(law.params_.values()), list(alone.params_.values()), rtol=1e-7, atol=1e-10
        )
