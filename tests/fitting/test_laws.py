"""Scaling laws: recovery of known parameters, exact inverses, honest failure, reports.

One conformance suite runs every one-variable law through the same checks (docs/design.md, "Conventions").
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import approx_fprime

from fitting.betabinom import BetaBinomial, beta_pass_at_k
from fitting.joint import JointPowerLaw
from fitting.laws import (
    LAWS,
    ConvergenceWarning,
    ExpDecay,
    ExpPowerLaw,
    Logistic,
    NotFittedError,
    PowerLaw,
    UnreachableTargetWarning,
    binomial_weights,
    get_law,
)

K = 2.0 ** np.arange(0, 9)  # samples 1..256
N_QUESTIONS = 5000

# True parameters, and the recovery tolerance for each: about 4 standard deviations of the
# estimate over 30 seeds with binomial noise on 5,000 questions (measured: e.g. PowerLaw
# alpha sd 0.019, ExpDecay rate sd 0.0015, Logistic slope sd 0.024).
CASES = {
    PowerLaw: ({"ceiling": 0.9, "scale": 0.5, "alpha": 0.4}, {"ceiling": 0.04, "scale": 0.04, "alpha": 0.08}),
    ExpDecay: (
        {"ceiling": 0.85, "scale": 0.6, "rate": 0.05},
        {"ceiling": 0.01, "scale": 0.02, "rate": 0.008},
    ),
    ExpPowerLaw: ({"a": 1.5, "b": 0.5}, {"a": 0.1, "b": 0.025}),
    Logistic: (
        {"ceiling": 0.8, "midpoint": 2.0, "slope": 1.5},
        {"ceiling": 0.015, "midpoint": 0.08, "slope": 0.1},
    ),
}
#: every registered law, so that a new law cannot skip the suite (its case must be added above)
ALL = [LAWS[name] for name in sorted(LAWS)]


def test_every_registered_law_has_a_case():
    missing = [cls.__name__ for cls in ALL if cls not in CASES]
    assert not missing, f"add a (truth, tolerance) case to CASES for {missing}"


def _case(cls):
    if cls not in CASES:
        pytest.fail(f"{cls.__name__} is registered in LAWS but has no case in CASES")
    return CASES[cls]


def _noisy(cls, params, seed=0, n_q=N_QUESTIONS):
    rng = np.random.default_rng(seed)
    mean = cls.formula(K, *params.values())
    return rng.binomial(n_q, mean) / n_q


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_recovers_known_parameters_from_binomial_noise(cls):
    truth, tol = _case(cls)
    y = _noisy(cls, truth)
    law = cls().fit(K, y, sample_weight=binomial_weights(y, N_QUESTIONS))
    assert law.converged_, law.report()
    for name, value in truth.items():
        assert law.params_[name] == pytest.approx(value, abs=tol[name]), (name, law.params_)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_fit_is_exact_on_clean_data_and_independent_of_the_compute_unit(cls):
    truth, _ = _case(cls)
    y = cls.formula(K, *truth.values())
    law = cls().fit(K, y)
    assert law.rmse_ < 1e-9
    # the same curve with compute in FLOPs (x 1e15): the same predictions
    flops = cls().fit(K * 1e15, y)
    np.testing.assert_allclose(flops.predict(K * 1e15), law.predict(K), atol=1e-8)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_inverse_of_predict_is_identity(cls):
    truth, _ = _case(cls)
    law = cls().with_params(truth)
    x = np.array([1.0, 3.0, 17.5, 100.0, 200.0])
    np.testing.assert_allclose(law.inverse(law.predict(x)), x, rtol=1e-9)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_inverse_above_the_ceiling_is_inf_with_a_reason(cls):
    truth, _ = _case(cls)
    law = cls().with_params(truth)
    ceiling = law.asymptote()
    with pytest.warns(UnreachableTargetWarning, match="ceiling"):
        out = law.inverse([ceiling - 0.01, ceiling + 1e-9 if ceiling < 1 else 1.0])
    assert np.isfinite(out[0]) and out[1] == np.inf


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_analytic_jacobian_matches_finite_differences(cls):
    truth, _ = _case(cls)
    theta = np.array(list(truth.values()))
    x = np.array([0.5, 1.0, 2.0, 7.0])
    jac = cls.jacobian(x, *theta)
    for i in range(len(x)):
        num = approx_fprime(theta, lambda t, i=i: cls.formula(x[i : i + 1], *t)[0], 1e-7)
        np.testing.assert_allclose(jac[i], num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_guess_from_log_space_line_fit_is_near_the_truth(cls):
    truth, tol = _case(cls)
    guess = cls().guess(K, cls.formula(K, *truth.values()))
    # a starting point, not a fit: within 10x the recovery tolerance (or 50 %)
    for name, value in truth.items():
        assert abs(guess[name] - value) <= max(10 * tol[name], 0.5 * abs(value)), (name, guess)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_estimator_contract(cls):
    law = cls(n_starts=3)
    with pytest.raises(NotFittedError):
        law.predict(K)
    truth, _ = _case(cls)
    assert law.fit(K, cls.formula(K, *truth.values())) is law
    assert set(law.params_) == set(cls.param_names)
    assert law.clone().get_params() == law.get_params() and not hasattr(law.clone(), "params_")
    summary = law.summary()
    json.dumps(summary, allow_nan=False)  # strict JSON
    assert summary["law"] == cls.name and summary["converged"] is True
    assert cls.name in LAWS and isinstance(get_law(cls.name), cls)
    assert "math::" in cls.__doc__


def test_robust_loss_resists_an_outlier_that_pulls_least_squares():
    truth, _ = CASES[PowerLaw]
    y = PowerLaw.formula(K, *truth.values())
    y[4] -= 0.15  # one corrupted point
    robust = PowerLaw().fit(K, y)
    plain = PowerLaw(loss="linear").fit(K, y)
    assert abs(robust.params_["alpha"] - 0.4) < 0.01
    assert abs(plain.params_["alpha"] - 0.4) > 3 * abs(robust.params_["alpha"] - 0.4)


def test_decreasing_data_raise_convergence_warning_and_are_flagged():
    y = 0.9 - 0.05 * np.log(K)  # accuracy falling with compute: no saturating power law fits
    with pytest.warns(ConvergenceWarning, match="stuck at its"):
        law = PowerLaw().fit(K, y)
    assert law.converged_ is False
    assert "NO" in law.report() and "at a bound" in law.report()


def test_optimizer_budget_exhausted_is_reported_not_silent():
    truth, _ = CASES[Logistic]
    y = _noisy(Logistic, truth)
    with pytest.warns(ConvergenceWarning, match="least_squares stopped"):
        law = Logistic(max_nfev=1, loss="linear").fit(K, y)
    assert law.converged_ is False


def test_ceiling_at_one_is_a_physical_bound_reported_but_not_a_failure():
    y = 1.0 - 0.6 * K**-0.3  # coverage heading to 1
    law = PowerLaw().fit(K, y)
    assert law.converged_
    assert ("ceiling", "upper", 1.0) in law.at_bounds_
    assert "at a bound: ceiling" in law.report()


def test_user_bounds_only_on_rescaling_invariant_parameters():
    y = PowerLaw.formula(K, 0.9, 0.5, 0.4)
    law = PowerLaw(bounds={"ceiling": (0.0, 0.85)}).fit(K, y)
    assert law.params_["ceiling"] == pytest.approx(0.85)
    assert law.converged_  # hitting a bound the user set is reported, not a failure
    with pytest.raises(ValueError, match="not supported"):
        PowerLaw(bounds={"scale": (0.0, 1.0)}).fit(K, y)


def test_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="positive"):
        PowerLaw().fit(np.array([0.0, 1, 2, 3]), np.array([0.1, 0.2, 0.3, 0.4]))
    with pytest.raises(ValueError, match=r"y\[1\]"):
        PowerLaw().fit(K[:4], [0.1, np.nan, 0.3, 0.4])
    with pytest.raises(ValueError, match="3 parameters"):
        PowerLaw().fit(K[:2], [0.1, 0.2])


def test_binomial_weights_are_inverse_variance():
    np.testing.assert_allclose(binomial_weights([0.5, 0.2], 100), [100 / 0.25, 100 / 0.16])
    assert np.isfinite(binomial_weights([0.0, 1.0], 10)).all()


# ---- BetaBinomial ---------------------------------------------------------------------------


def test_beta_binomial_recovers_shape_from_simulated_counts():
    rng = np.random.default_rng(1)
    a, b, n_q, n = 0.4, 1.5, 4000, 16
    counts = rng.binomial(n, rng.beta(a, b, size=n_q))
    law = BetaBinomial().fit(np.full(n_q, n), counts)
    assert law.converged_
    # tolerance: ~4 sd of the MLE at this size (measured sd about 0.01 for a, 0.05 for b)
    assert law.params_["a"] == pytest.approx(a, abs=0.04)
    assert law.params_["b"] == pytest.approx(b, abs=0.2)


def test_beta_binomial_pass_at_k_matches_monte_carlo():
    a, b = 0.3, 2.0
    law = BetaBinomial()
    law.params_ = {"a": a, "b": b}
    rng = np.random.default_rng(2)
    n_mc = 400_000
    p = rng.beta(a, b, size=n_mc)
    for k in (1, 4, 64, 1000):
        mc = np.mean(rng.binomial(k, p) > 0)
        se = np.sqrt(mc * (1 - mc) / n_mc)
        assert abs(float(law.predict(k)) - mc) < 4 * se + 1e-12, k
    assert float(beta_pass_at_k(1, a, b)) == pytest.approx(a / (a + b))


def test_beta_binomial_inverse_and_failure():
    law = BetaBinomial()
    law.params_ = {"a": 0.5, "b": 2.0}
    k = np.array([1.0, 7.0, 300.0])
    np.testing.assert_allclose(law.inverse(law.predict(k)), k, rtol=1e-8)
    with pytest.warns(ConvergenceWarning, match="not identifiable"):
        bad = BetaBinomial().fit(8, np.zeros(20))
    assert bad.converged_ is False
    with pytest.raises(ValueError, match="0 <= c <= n"):
        BetaBinomial().fit(4, [5, 1])


# ---- JointPowerLaw (synthetic, lab-like; the real-data check is tests/fitting/test_chinchilla.py) ----


def test_joint_power_law_recovers_error_surface_over_size_and_samples():
    rng = np.random.default_rng(3)
    size = np.repeat([2e5, 5e5, 1e6, 3e6, 1e7], 9)
    k = np.tile(2.0 ** np.arange(9), 5)
    truth = {"E": 0.03, "A": 40.0, "B": 0.3, "alpha": 0.35, "beta": 0.6}
    err = truth["E"] + truth["A"] * size ** -truth["alpha"] + truth["B"] * k ** -truth["beta"]
    noisy = err * np.exp(rng.normal(0, 0.01, err.shape))  # 1 % multiplicative noise
    law = JointPowerLaw().fit(np.column_stack([size, k]), noisy)
    assert law.converged_, law.report()
    # tolerances about 2.5 sd over seeds 0-4 (E, A and alpha trade off: E sd ~0.008, alpha ~0.01)
    assert law.params_["alpha"] == pytest.approx(0.35, abs=0.03)
    assert law.params_["beta"] == pytest.approx(0.6, abs=0.03)
    assert law.params_["E"] == pytest.approx(0.03, abs=0.02)
    assert law.params_["A"] == pytest.approx(40.0, rel=0.3)
    assert law.params_["B"] == pytest.approx(0.3, rel=0.25)
    # an unprofiled size: prediction within 3 % of the truth
    X_new = np.array([[3e7, 16.0]])
    true_new = truth["E"] + truth["A"] * 3e7**-0.35 + truth["B"] * 16**-0.6
    assert float(law.predict(X_new)[0]) == pytest.approx(true_new, rel=0.03)
    # samples needed at a size to reach an error, and an unreachable one
    x2 = law.inverse(law.predict(X_new), 3e7)
    assert x2[0] == pytest.approx(16.0, rel=1e-6)
    with pytest.warns(UnreachableTargetWarning):
        assert float(law.inverse(0.01, 3e7)) == np.inf
    json.dumps(law.summary(), allow_nan=False)


def test_joint_power_law_linear_space_handles_zero_error():
    X = np.column_stack([np.repeat([1e5, 1e6, 1e7], 6), np.tile(2.0 ** np.arange(6), 3)])
    clean = 0.02 + 20 * X[:, 0] ** -0.3 + 0.5 * X[:, 1] ** -0.8
    y = clean.copy()
    y[-1] = 0.0  # a measured error of exactly 0 (all questions solved): an outlier in linear space
    with pytest.raises(ValueError, match="space='linear'"):
        JointPowerLaw().fit(X, y)
    law = JointPowerLaw(space="linear", loss="huber", delta=0.01).fit(X, y)
    assert law.converged_
    np.testing.assert_allclose(law.predict(X[:-1]), clean[:-1], atol=0.005)
