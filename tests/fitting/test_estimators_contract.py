"""Every fitted model shares one contract (fitting/_estimator.py): fit returns self, a clear
error before fitting, convergence checked and warned about, a report for people and a JSON-safe
summary. One suite runs every estimator through it; the family law gets its own checks."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from fitting import (
    LAWS,
    BetaBinomial,
    ConvergenceWarning,
    FamilyLaw,
    FittedEstimator,
    JointPowerLaw,
    NotFittedError,
)

K = 2.0 ** np.arange(0, 8)
SIZES = {"s": 1e6, "m": 4e6, "l": 1.6e7, "xl": 6.4e7}
TRUTH = {"E": 0.05, "A": 30.0, "alpha": 0.3, "B": 0.2, "beta": 0.5}


def _family_data(truth=TRUTH, ks=(1.0, 2, 4, 8, 16)):
    P, k = (a.ravel() for a in np.meshgrid(list(SIZES.values()), ks, indexing="ij"))
    err = truth["E"] + truth["A"] * P ** -truth["alpha"] + truth["B"] * k ** -truth["beta"]
    groups = np.repeat(list(SIZES), len(ks))
    return np.column_stack([P, k]), 1.0 - err, groups


def _fitted(name):
    """(unfitted estimator, fit arguments) with clean data from known parameters."""
    if name in LAWS:
        law = LAWS[name]()
        params = {"ceiling": 0.9, "scale": 0.5, "alpha": 0.4, "rate": 0.05, "a": 1.5, "b": 0.5}
        params.update(midpoint=2.0, slope=1.5)
        truth = [params[p] for p in law.param_names]
        return law, (K, law.formula(K, *truth))
    if name == "joint_power_law":
        X, acc, _ = _family_data()
        return JointPowerLaw(), (X, 1.0 - acc)
    if name == "beta_binomial":
        rng = np.random.default_rng(0)
        return BetaBinomial(), (np.full(400, 16), rng.binomial(16, rng.beta(0.6, 2.0, 400)))
    X, acc, groups = _family_data()
    return FamilyLaw(), (X, acc, groups)


ESTIMATORS = [*sorted(LAWS), "joint_power_law", "beta_binomial", "family_power_law"]


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_estimator_keeps_the_contract(name):
    est, args = _fitted(name)
    assert isinstance(est, FittedEstimator) and est.name == name
    with pytest.raises(NotFittedError, match=rf"not fitted yet: call {type(est).fit_call.split('(')[0]}\("):
        est.summary()
    assert repr(est).endswith("(unfitted)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # clean data must converge
        assert est.fit(*args) is est
    assert est.converged_ and set(est.params_) == set(est.param_names)
    summary = est.summary()
    json.dumps(summary, allow_nan=False)
    assert summary["law"] == name and summary["converged"] is True and summary["params"] == est.params_
    report = est.report()
    assert report.startswith(f"{type(est).__name__}: {est.formula_text}") and "converged: yes" in report
    assert all(p in repr(est) for p in est.param_names)


def test_family_law_recovers_known_parameters_and_predicts_unseen_sizes_exactly():
    X, acc, groups = _family_data()
    fam = FamilyLaw().fit(X, acc, groups)
    for k, v in TRUTH.items():
        assert fam.params_[k] == pytest.approx(v, rel=0.02), (k, fam.params_)
    assert fam.loo_rmse_inside_ < 1e-3 and fam.loo_rmse_ < 0.02
    new = np.column_stack([np.full(3, 8e6), [1.0, 4.0, 16.0]])
    want = 1 - (TRUTH["E"] + TRUTH["A"] * 8e6 ** -TRUTH["alpha"] + TRUTH["B"] * new[:, 1] ** -TRUTH["beta"])
    np.testing.assert_allclose(fam.predict(new), want, atol=2e-3)
    again = FamilyLaw.from_state(json.loads(json.dumps(fam.state())))
    np.testing.assert_allclose(again.predict(new), fam.predict(new))
    assert again.converged_ and again.loo_rmse_ == fam.loo_rmse_


def test_family_law_that_does_not_converge_says_so_with_a_warning():
    """The family fit never runs inside warnings.simplefilter('ignore') nor leaves its
    convergence unchecked: a failed joint fit warns and says why."""
    X, acc, groups = _family_data()
    with pytest.warns(
        ConvergenceWarning, match="FamilyLaw fit did not converge: joint fit: L-BFGS-B stopped"
    ):
        fam = FamilyLaw(max_iter=1).fit(X, acc, groups)
    assert not fam.converged_ and "joint fit" in fam.convergence_message_
    assert "converged: NO" in fam.report()


def test_family_law_lists_degenerate_leave_one_out_refits_without_hiding_them():
    # three sizes: leaving an end out leaves two, where the size exponent runs to its bound
    X, acc, groups = _family_data()
    keep = groups != "xl"
    rng = np.random.default_rng(3)
    fam = FamilyLaw().fit(X[keep], np.clip(acc[keep] + rng.normal(0, 0.01, keep.sum()), 0, 1), groups[keep])
    assert fam.converged_  # the joint fit is fine
    assert all(n.startswith("refit without ") for n in fam.loo_notes_)
    assert all(f"leave-one-out {n}" in fam.report() for n in fam.loo_notes_)
    assert fam.summary()["loo_notes"] == fam.loo_notes_


def test_family_law_needs_three_sizes_and_one_size_per_model():
    X, acc, groups = _family_data()
    two = np.isin(groups, ["s", "m"])
    with pytest.raises(ValueError, match="at least 3 model sizes"):
        FamilyLaw().fit(X[two], acc[two], groups[two])
    mixed = groups.copy()
    mixed[0] = "m"
    with pytest.raises(ValueError, match="model 'm' has several sizes"):
        FamilyLaw().fit(X, acc, mixed)
