"""Populations of per-question success rates on a grid (fitting.population): the spline basis,
known populations recovered, forecasts inside and far beyond the pools, intervals, k_needed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import betaln, expit

from fitting import NotFittedError, pass_at_k
from fitting._values import question_counts
from fitting.betabinom import BetaBinomial
from fitting.coverage import TAIL_GRID, BetaBinomialPosterior, shared_tail_prior, tail_evidence
from fitting.forecast import forecast
from fitting.population import GModel, LogitNormal, natural_spline_basis


def logit_normal_pools(mu, sigma, questions, n, seed):
    rng = np.random.default_rng(seed)
    p = expit(rng.normal(mu, sigma, size=questions))
    return p, rng.binomial(n, p)


def beta_pools(a, b, questions, n, seed):
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, size=questions)
    return p, rng.binomial(n, p)


def test_natural_spline_basis_interpolates_the_knots_and_is_linear_beyond_them():
    knots = np.array([-3.0, -1.0, 0.5, 2.0])
    np.testing.assert_allclose(natural_spline_basis(knots, knots), np.eye(4), atol=1e-12)
    left = natural_spline_basis(np.array([-9.0, -7.0, -5.0]), knots)
    right = natural_spline_basis(np.array([3.0, 5.0, 7.0]), knots)
    np.testing.assert_allclose(np.diff(left, 2, axis=0), 0.0, atol=1e-12)  # straight lines
    np.testing.assert_allclose(np.diff(right, 2, axis=0), 0.0, atol=1e-12)
    inner = natural_spline_basis(np.linspace(-3, 2, 11), knots)
    np.testing.assert_allclose(inner.sum(axis=1), 1.0, atol=1e-12)  # the constants are in the span


def test_logit_normal_recovers_known_parameters_and_far_coverage():
    p, c = logit_normal_pools(-5.0, 1.5, 3000, 100, 0)
    model = LogitNormal().fit(np.full(3000, 100), c)
    assert model.params_["mu"] == pytest.approx(-5.0, abs=0.15)
    assert model.params_["sigma"] == pytest.approx(1.5, abs=0.15)
    truth = float(np.mean(1 - (1 - p) ** 10_000))  # the questions' true pass@10,000: 100x out
    f = model.forecast(10_000)
    assert f.estimate == pytest.approx(truth, abs=0.02) and f.lo <= truth <= f.hi


def test_logit_normal_intervals_cover_the_realized_pass_at_n_of_known_populations():
    hits, errors = 0, []
    for seed in range(12):
        p, c_full = logit_normal_pools(-6.0, 2.0, 128, 5000, seed)
        rng = np.random.default_rng([seed, 1])
        sub = rng.hypergeometric(c_full, 5000 - c_full, 50)  # a 1% subsample, as the benchmark
        f = LogitNormal().fit(np.full(128, 50), sub).forecast(5000)
        measured = float(np.mean(c_full > 0))
        hits += f.lo <= measured <= f.hi
        errors.append(f.estimate - measured)
    assert hits >= 9  # nominal 90%: 10.8 of 12
    assert np.mean(np.abs(errors)) < 0.06 and abs(np.mean(errors)) < 0.04


@pytest.mark.parametrize("carrier", ["flat", "beta"])
def test_gmodel_forecasts_a_beta_population_100x_beyond_its_pools(carrier):
    errors = []
    for seed in range(3):
        p, c = beta_pools(0.4, 3.0, 1000, 20, seed)
        truth = float(np.mean(1 - (1 - p) ** 2000))
        f = GModel(carrier=carrier).fit(np.full(1000, 20), c).forecast(2000)
        errors.append(f.estimate - truth)
        assert f.lo <= f.estimate <= f.hi
    assert np.mean(np.abs(errors)) < 0.04


def test_gmodel_recovers_a_population_of_rates_it_can_see():
    """With pools that resolve every rate, g is the rates' distribution: its pass@k for a new
    question matches the beta's closed form."""
    p, c = beta_pools(0.8, 4.0, 3000, 400, 0)
    model = GModel(df=6).fit(np.full(3000, 400), c)
    k = np.array([1.0, 10.0, 100.0])
    truth = 1 - np.exp(betaln(0.8, 4.0 + k) - betaln(0.8, 4.0))
    np.testing.assert_allclose(model.predict(k), truth, atol=0.015)
    assert model.predict(0.0) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("cls", [GModel, LogitNormal])
def test_forecast_inside_the_pools_is_the_measured_unbiased_pass_at_k(cls):
    _, c = beta_pools(0.5, 2.0, 100, 64, 1)
    f = cls().fit(np.full(100, 64), c).forecast(16)
    measured = float(pass_at_k(64, c, 16).mean())
    assert f.estimate == pytest.approx(measured, abs=1e-12)
    assert f.lo == pytest.approx(measured, abs=1e-5) and f.hi == pytest.approx(measured, abs=1e-5)


@pytest.mark.parametrize("cls", [GModel, LogitNormal])
def test_k_needed_is_where_the_forecast_reaches_the_target(cls):
    _, c = beta_pools(0.4, 3.0, 300, 16, 2)
    model = cls().fit(np.full(300, 16), c)
    need = model.k_needed(0.8)
    assert need.lo <= need.estimate <= need.hi
    assert model.forecast(need.estimate).estimate == pytest.approx(0.8, abs=0.01)
    assert model.k_needed(0.8, k_cap=10.0).estimate == np.inf  # not reached by the cap


def test_with_counts_conditions_the_same_population_on_other_questions():
    _, c = beta_pools(0.5, 3.0, 200, 30, 3)
    model = GModel().fit(np.full(200, 30), c)
    same = model.with_counts(np.full(200, 30), c)
    assert same.forecast(3000).estimate == pytest.approx(model.forecast(3000).estimate, abs=1e-12)
    assert same.loglik(np.full(200, 30), c) == pytest.approx(model.loglik_, abs=1e-9)
    solved = model.with_counts([30, 30], [30, 30]).forecast(3000)
    unsolved = model.with_counts([30, 30], [0, 0]).forecast(3000)
    assert solved.estimate > 0.999 and unsolved.estimate < solved.estimate


def test_no_correct_sample_forecasts_nothing_beyond_the_pools_and_says_why():
    model = LogitNormal().fit(np.full(5, 50), np.zeros(5))
    f = model.forecast(5000)
    assert np.isnan(f.estimate) and np.isnan(f.lo) and "no correct sample" in model.notes_[0]


def test_bad_counts_and_unfitted_use_raise_clear_errors():
    with pytest.raises(ValueError, match="0 <= c <= n"):
        GModel().fit([10, 10], [11, 2])
    with pytest.raises(ValueError, match="at least 2 questions"):
        LogitNormal().fit([10], [1])
    with pytest.raises(ValueError, match="carrier 'flat' or 'beta'"):
        GModel(carrier="gamma").fit([10, 10], [1, 2])
    with pytest.raises(NotFittedError, match="fit\\(n, c\\)"):
        GModel().forecast(10)


COUNT_MODELS = [BetaBinomial, BetaBinomialPosterior, GModel, LogitNormal]


@pytest.mark.parametrize("model", COUNT_MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    ("n", "c", "message"),
    [
        ([10, 10], [11, 2], ": n must be positive integers and 0 <= c <= n (integers)"),
        ([10, 10], [-1, 2], ": n must be positive integers and 0 <= c <= n (integers)"),
        ([10, 10], [1.5, 2], ": n must be positive integers and 0 <= c <= n (integers)"),
        ([0, 10], [0, 2], ": n must be positive integers and 0 <= c <= n (integers)"),
        (10, [1], " needs counts for at least 2 questions"),
    ],
)
def test_every_count_model_checks_its_counts_with_the_same_message(model, n, c, message):
    """BetaBinomial, its posterior and the g-models take (n, c) through one check; its message
    names the model."""
    with pytest.raises(ValueError) as err:
        model().fit(n, c)
    assert str(err.value) == model.__name__ + message


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-2, 40), st.integers(-3, 45)), min_size=1, max_size=8))
def test_question_counts_accepts_exactly_integer_c_in_0_to_n_for_2_or_more_questions(pairs):
    n, c = (np.array(v, dtype=float) for v in zip(*pairs, strict=True))
    valid = len(pairs) >= 2 and all(1 <= ni and 0 <= ci <= ni for ni, ci in pairs)
    if valid:
        got = question_counts("M", n, c)
        assert all(np.array_equal(a, b) for a, b in zip(got, (n, c), strict=True))
    else:
        with pytest.raises(ValueError, match="^M"):
            question_counts("M", n, c)


def test_one_pool_size_stands_for_every_question():
    n, c = question_counts("M", 16, [0, 3, 16])
    assert n.tolist() == [16.0, 16.0, 16.0] and c.tolist() == [0.0, 3.0, 16.0]


def test_summary_and_report_name_the_model():
    _, c = beta_pools(0.5, 3.0, 100, 20, 4)
    model = LogitNormal().fit(np.full(100, 20), c)
    summary = model.summary()
    assert summary["law"] == "logit_normal" and set(summary["params"]) == {"mu", "sigma"}
    assert "LogitNormal" in model.report() and "mu" in model.report()


@pytest.mark.parametrize(("method", "label"), [("gmodel", "g_model"), ("logitnormal", "logit_normal")])
def test_forecast_records_use_the_chosen_population_method(method, label):
    import pandas as pd

    p, c = beta_pools(0.5, 4.0, 150, 20, 5)
    counts = pd.DataFrame({"question_id": range(150), "n_samples": 20, "n_correct": c})
    inside, far = forecast(counts=counts, at=[10, 2000], method=method, backtest_reps=1)
    assert inside["method"] == "measured" and far["method"] == label
    assert far["lo"] <= far["estimate"] <= far["hi"] and far["extrapolation_error"] is not None


# ---- one beta tail exponent shared by several curves (fitting.coverage.shared_tail_prior) ----------


def test_a_shared_tail_prior_from_no_other_curve_changes_nothing():
    _, c = beta_pools(0.4, 6.0, 128, 20, 6)
    plain = BetaBinomialPosterior().fit(np.full(128, 20), c).forecast(2000)
    shared = BetaBinomialPosterior(log_a_prior=shared_tail_prior([])).fit(np.full(128, 20), c).forecast(2000)
    assert shared.estimate == pytest.approx(plain.estimate, abs=1e-12)


def test_tail_evidence_peaks_near_the_true_tail_exponent():
    _, c = beta_pools(0.3, 20.0, 3000, 50, 7)
    assert np.exp(TAIL_GRID[np.argmax(tail_evidence(np.full(3000, 50), c))]) == pytest.approx(0.3, rel=0.25)


def test_curves_sharing_a_tail_forecast_a_sparse_curve_better_than_its_own_counts():
    """Five curves with one tail exponent a = 0.3 and different mean rates: the other curves'
    evidence about a makes the forecast of a sparse curve's pass@(100 n) more accurate."""
    plain_err, shared_err = [], []
    for seed in range(4):
        evidence = []
        for j, b in enumerate((10.0, 30.0, 60.0, 100.0)):
            _, c = beta_pools(0.3, b, 128, 200, [seed, j])
            evidence.append(tail_evidence(np.full(128, 200), c))
        p, c = beta_pools(0.3, 40.0, 128, 20, [seed, 9])
        truth = float(np.mean(1 - (1 - p) ** 2000))
        plain = BetaBinomialPosterior().fit(np.full(128, 20), c).forecast(2000)
        shared = BetaBinomialPosterior(log_a_prior=shared_tail_prior(evidence)).fit(np.full(128, 20), c)
        plain_err.append(abs(plain.estimate - truth))
        shared_err.append(abs(shared.forecast(2000).estimate - truth))
    assert np.mean(shared_err) < np.mean(plain_err) and np.mean(shared_err) < 0.06


def test_pooled_forecast_records_share_the_tail_across_curves():
    import pandas as pd

    frames = []
    for j, b in enumerate((10.0, 40.0)):
        _, c = beta_pools(0.4, b, 100, 20, 20 + j)
        frames.append(
            pd.DataFrame({"model": f"m{j}", "question_id": range(100), "n_samples": 20, "n_correct": c})
        )
    records = forecast(counts=pd.concat(frames), at=[2000], method="pooled", backtest_reps=0)
    assert [r["model"] for r in records] == ["m0", "m1"]
    assert all(r["method"] == "beta_binomial_posterior_shared_tail" for r in records)
    assert all(r["lo"] <= r["estimate"] <= r["hi"] for r in records)


def test_the_hierarchical_tail_prior_is_narrow_when_curves_agree_and_wide_when_they_disagree():
    def bump(center):  # the evidence of a curve that pins log a near log(center)
        return -0.5 * ((TAIL_GRID - np.log(center)) / 0.3) ** 2

    def spread(log_prior):
        w = np.exp(log_prior(TAIL_GRID))
        w /= w.sum()
        mean = float(w @ TAIL_GRID)
        return mean, float(np.sqrt(w @ (TAIL_GRID - mean) ** 2))

    agree_mean, agree_sd = spread(shared_tail_prior([bump(0.3)] * 5))
    _, disagree_sd = spread(shared_tail_prior([bump(x) for x in (0.01, 0.05, 0.3, 1.5, 8.0)]))
    assert np.exp(agree_mean) == pytest.approx(0.3, rel=0.2)
    assert agree_sd < 0.6 < 1.2 < disagree_sd
