"""Bootstrap over questions, the saturation point N* and compute-to-target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fitting.laws import ExpDecay, ExpPowerLaw, Logistic, PowerLaw, UnreachableTargetWarning
from fitting.uncertainty import (
    bootstrap_questions,
    compute_to_target,
    question_weights,
    saturation_point,
    saturation_points,
)

K = 2.0 ** np.arange(0, 7)  # 1..64


def _brute_force_saturation(law, epsilon, x_min, doublings=40, points=600_000):
    """The last x on a dense log grid where a doubling still gains >= epsilon."""
    x = x_min * np.exp2(np.linspace(0, doublings, points))
    gain = law.predict(2 * x) - law.predict(x)
    above = np.flatnonzero(gain >= epsilon)
    return x_min if len(above) == 0 else x[above[-1]]


@pytest.mark.parametrize(
    ("law", "x_min"),
    [
        (PowerLaw().with_params({"ceiling": 0.9, "scale": 0.5, "alpha": 0.4}), 1.0),
        (ExpDecay().with_params({"ceiling": 0.85, "scale": 0.6, "rate": 0.02}), 1.0),
        (Logistic().with_params({"ceiling": 0.8, "midpoint": 2.5, "slope": 1.2}), 1e-3),
        (ExpPowerLaw().with_params({"a": 1.5, "b": 0.5}), 0.01),
    ],
    ids=["power", "exp_decay", "logistic", "exp_power"],
)
def test_saturation_point_matches_a_brute_force_scan(law, x_min):
    eps = 0.005
    n_star = saturation_point(law, eps, x_min=x_min)
    brute = _brute_force_saturation(law, eps, x_min)
    assert n_star == pytest.approx(brute, rel=1e-4)  # the scan's resolution is 4.6e-5
    assert law.predict(2 * n_star) - law.predict(n_star) == pytest.approx(eps, abs=1e-9)


def test_saturation_point_of_a_power_law_has_a_closed_form():
    c, s, a = 0.9, 0.5, 0.4
    law = PowerLaw().with_params({"ceiling": c, "scale": s, "alpha": a})
    # gain(x) = s x^-a (1 - 2^-a) is decreasing, so N* = (s (1 - 2^-a) / eps)^(1/a)
    assert saturation_point(law, 0.005) == pytest.approx((s * (1 - 2**-a) / 0.005) ** (1 / a), rel=1e-9)


def test_saturation_ignores_slow_gains_before_an_s_curve_takes_off():
    law = Logistic().with_params({"ceiling": 0.8, "midpoint": 2.5, "slope": 1.2})
    x_min = 1e-3
    assert law.predict(2 * x_min) - law.predict(x_min) < 0.005  # flat at first
    assert saturation_point(law, 0.005, x_min=x_min) > 100  # yet saturates only after the rise


def test_saturation_edge_cases():
    flat = PowerLaw().with_params({"ceiling": 0.9, "scale": 0.001, "alpha": 0.5})
    assert saturation_point(flat, 0.005, x_min=1.0) == 1.0  # never gains epsilon per doubling
    slow = PowerLaw().with_params({"ceiling": 0.9, "scale": 0.5, "alpha": 0.01})
    assert saturation_point(slow, 1e-4, x_min=1.0, max_doublings=10) == np.inf


def test_compute_to_target_is_the_inverse_and_inf_above_the_ceiling():
    law = PowerLaw().with_params({"ceiling": 0.9, "scale": 0.5, "alpha": 0.4})
    assert compute_to_target(law, float(law.predict(50.0))) == pytest.approx(50.0)
    with pytest.warns(UnreachableTargetWarning):
        assert compute_to_target(law, 0.95) == np.inf


def _population(rng, n_questions, a=0.6, b=2.0):
    p = rng.beta(a, b, size=n_questions)
    return 1.0 - (1.0 - p[:, None]) ** K  # each question's expected pass@k


def test_bootstrap_spread_matches_the_spread_over_fresh_question_sets():
    """Resampling questions must reproduce the sampling spread of a new eval set of the same size."""
    rng = np.random.default_rng(0)
    fresh = []
    for _ in range(30):
        m = _population(rng, 300)
        fresh.append(ExpPowerLaw().fit(K, m.mean(0), question_weights(m)).params_["b"])
    res = bootstrap_questions("exp_power_law", _population(rng, 300), K, n_boot=200, rng=1)
    ratio = res.param_samples["b"].std() / np.std(fresh, ddof=1)
    assert 0.5 < ratio < 2.0, ratio
    assert res.n_failed == 0


def test_bootstrap_result_contents_and_seeding():
    m = _population(np.random.default_rng(2), 200)
    frame = pd.DataFrame(m, columns=K)  # columns are the compute values
    res = bootstrap_questions(PowerLaw(), frame, n_boot=100, targets=[0.8, 0.999], rng=3)
    assert list(res.params.columns) == ["estimate", "lo", "hi"]
    assert (res.params["lo"] <= res.params["estimate"] + 1e-12).all()
    assert (res.params["estimate"] <= res.params["hi"] + 1e-12).all()
    band = res.prediction
    assert ((band["lo"] <= band["estimate"] + 1e-9) & (band["estimate"] <= band["hi"] + 1e-9)).all()
    assert band["x"].max() == pytest.approx(16 * K.max())
    sat = res.saturation
    assert sat.lo <= sat.estimate <= sat.hi and np.isfinite(sat.estimate)
    assert sat.estimate == pytest.approx(saturation_point(res.law, 0.005, x_min=1.0))
    tt = res.to_target.set_index("target")
    assert tt.loc[0.8, "lo"] <= tt.loc[0.8, "estimate"] <= tt.loc[0.8, "hi"]
    again = bootstrap_questions(PowerLaw(), frame, n_boot=100, targets=[0.8, 0.999], rng=3)
    pd.testing.assert_frame_equal(res.params, again.params)
    other = bootstrap_questions(PowerLaw(), frame, n_boot=100, rng=4)
    assert not np.allclose(res.param_samples["alpha"], other.param_samples["alpha"])


def test_identical_questions_give_zero_width_intervals():
    row = 1.0 - 0.7 * K**-0.5
    m = np.tile(row, (50, 1))  # every resample of questions is the same curve
    res = bootstrap_questions("power_law", m, K, n_boot=20, epsilon=None)
    np.testing.assert_allclose(res.params["lo"], res.params["hi"], rtol=1e-6, atol=1e-9)
    assert res.saturation is None


def test_bootstrap_input_errors():
    with pytest.raises(ValueError, match="2-D"):
        bootstrap_questions("power_law", np.ones(5), K[:5])
    with pytest.raises(ValueError, match="columns"):
        bootstrap_questions("power_law", np.ones((5, 3)), K)


# ---- the batched bootstrap against the per-replicate least_squares path ----------------------

TRUTH = {
    PowerLaw: {"ceiling": 0.9, "scale": 0.5, "alpha": 0.4},
    ExpDecay: {"ceiling": 0.85, "scale": 0.6, "rate": 0.05},
    Logistic: {"ceiling": 0.8, "midpoint": 2.0, "slope": 1.5},
    ExpPowerLaw: {"a": 1.5, "b": 0.5},
}


def _questions_around(cls, params, n_questions=300, seed=0):
    """Per-question curves whose mean follows a known law: the law plus zero-mean question
    effects correlated across compute (as real questions are) and independent noise."""
    rng = np.random.default_rng(seed)
    f = cls.formula(K, *params.values())
    effect = rng.normal(0, 0.6, (n_questions, 1)) * f * (1 - f)
    return f + effect + rng.normal(0, 0.05, (n_questions, len(K)))


def _mc_band(reference: np.ndarray, q: float) -> tuple[float, float]:
    """Where the q-quantile of another bootstrap of the same size lands with ~99.7 % probability:
    the reference replicates' quantiles at q +- 3 standard errors of a sample quantile's rank."""
    sd = np.sqrt(q * (1 - q) / len(reference))
    lo = np.quantile(reference, max(q - 3 * sd, 0.0), method="lower")
    hi = np.quantile(reference, min(q + 3 * sd, 1.0), method="higher")
    return float(lo), float(hi)


@pytest.mark.parametrize("cls", list(TRUTH), ids=lambda c: c.__name__)
def test_batched_bootstrap_equals_the_per_replicate_path_and_recovers_the_truth(cls):
    truth = TRUTH[cls]
    m = _questions_around(cls, truth)
    kwargs = dict(n_boot=120, targets=[0.5], rng=7)
    ref = bootstrap_questions(cls(), m, K, method="scipy", **kwargs)
    new = bootstrap_questions(cls(), m, K, method="batched", **kwargs)
    # same replicates, same optimum: every replicate's parameters agree
    assert new.n_failed == ref.n_failed == 0
    np.testing.assert_allclose(new.param_samples, ref.param_samples, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(new.params.to_numpy(), ref.params.to_numpy(), rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(new.prediction.to_numpy(), ref.prediction.to_numpy(), rtol=1e-3, atol=1e-4)
    assert new.saturation.estimate == pytest.approx(
        ref.saturation.estimate, rel=1e-4
    )  # point fits: fit_laws vs Law.fit
    assert (new.saturation.lo, new.saturation.hi) == pytest.approx(
        (ref.saturation.lo, ref.saturation.hi), rel=1e-2
    )
    pd.testing.assert_frame_equal(new.to_target, ref.to_target, rtol=1e-2)
    # and the truth is recovered: within 3 bootstrap standard deviations of the estimate
    sd = new.param_samples.std()
    for name, value in truth.items():
        assert abs(new.params.loc[name, "estimate"] - value) <= 3 * sd[name], (name, new.params)


def test_batched_bootstrap_intervals_are_within_monte_carlo_error_of_a_fresh_scipy_bootstrap():
    """Different seeds: the two paths' interval ends differ by no more than resampling does."""
    m = _questions_around(PowerLaw, TRUTH[PowerLaw], seed=1)
    ref = bootstrap_questions(PowerLaw(), m, K, n_boot=200, rng=11, method="scipy")
    new = bootstrap_questions(PowerLaw(), m, K, n_boot=200, rng=12, method="batched")
    for name in PowerLaw.param_names:
        samples = ref.param_samples[name].to_numpy()
        lo_band, hi_band = _mc_band(samples, 0.05), _mc_band(samples, 0.95)
        assert lo_band[0] <= new.params.loc[name, "lo"] <= lo_band[1], name
        assert hi_band[0] <= new.params.loc[name, "hi"] <= hi_band[1], name


def test_saturation_points_of_many_laws_equal_one_at_a_time():
    rng = np.random.default_rng(5)
    for cls, truth in TRUTH.items():
        theta = np.array(list(truth.values())) * rng.uniform(0.7, 1.3, (25, len(truth)))
        theta[:, 0] = np.minimum(theta[:, 0], 0.99) if cls is not ExpPowerLaw else theta[:, 0]
        many = saturation_points(cls(), theta, 0.005, 1.0)
        one = [
            saturation_point(cls().with_params(dict(zip(cls.param_names, row, strict=True))), 0.005, 1.0)
            for row in theta
        ]
        np.testing.assert_allclose(many, one, rtol=1e-10)
        law = cls().with_params(dict(zip(cls.param_names, theta[0], strict=True)))
        assert many[0] == pytest.approx(_brute_force_saturation(law, 0.005, 1.0), rel=1e-4)


def test_bootstrap_method_must_be_known():
    with pytest.raises(ValueError, match="method must be one of"):
        bootstrap_questions("power_law", np.ones((5, len(K))), K, method="fast")


def test_batched_and_per_replicate_bootstraps_agree_on_the_lab():
    """examples/samples.jsonl is a real lab-m profile (10 questions per level, k = 1..16).

    With so few questions some replicates are near-degenerate, and least_squares sometimes
    stops on a plateau of the loss (its gradient test) at a much higher cost. So: replicate
    by replicate the batched solve is never worse; where both reach the same optimum the
    parameters agree; and where they agree on nearly every replicate, the interval ends are
    within Monte-Carlo error of each other.
    """
    from fitting import binomial_weights, fit_curve
    from fitting._batchfit import robust_loss
    from fitting.curves import curves_from_samples, per_question_curves
    from fitting.importer import read_records

    samples = read_records(Path(__file__).resolve().parents[2] / "examples" / "samples.jsonl").samples
    curves = curves_from_samples(samples, metrics=["pass@k"], n_boot=0)
    per_q = per_question_curves(samples, metrics=["pass@k"])
    n_boot, compared, agreeing = 100, 0, 0
    for key, m in per_q.items():
        if m.shape[1] < 4:  # the one-point strategies (greedy, budget)
            continue
        rows = curves[(curves["strategy"] == key[1]) & (curves["difficulty"] == key[3])].sort_values("k")
        x, y = rows["k"].to_numpy(float), rows["accuracy"].to_numpy(float)
        law, _ = fit_curve(x, y, sample_weight=binomial_weights(y, m.shape[0]))
        w = binomial_weights(m.to_numpy().mean(axis=0), m.shape[0])
        ref = bootstrap_questions(law, m.to_numpy(), x, n_boot=n_boot, sample_weight=w, rng=0, method="scipy")
        new = bootstrap_questions(
            law, m.to_numpy(), x, n_boot=n_boot, sample_weight=w, rng=0, method="batched"
        )
        q = m.shape[0]
        y_boot = np.random.default_rng(0).multinomial(q, np.full(q, 1.0 / q), size=n_boot) @ m.to_numpy() / q
        sw, f_scale = np.sqrt(w / w.mean()), new.law.f_scale_

        def cost(params, yb, x=x, sw=sw, f_scale=f_scale, law=law):
            r = sw * (law.formula(x, *params) - yb)
            return 0.5 * f_scale**2 * robust_loss(law.loss, (r / f_scale) ** 2)[0].sum()

        both = ref.param_samples.index.intersection(new.param_samples.index)
        same = 0
        for i in both:
            a, b = ref.param_samples.loc[i].to_numpy(), new.param_samples.loc[i].to_numpy()
            c_ref, c_new = cost(a, y_boot[i]), cost(b, y_boot[i])
            assert c_new <= c_ref * (1 + 1e-5) + 1e-12, (key, i, a, b)  # never worse
            if c_new >= c_ref * (1 - 1e-5) - 1e-12:  # the same optimum: the same parameters
                np.testing.assert_allclose(b, a, rtol=1e-2, atol=1e-3)
                same += 1
        compared += len(both)
        agreeing += same
        assert abs(new.n_failed - ref.n_failed) <= 0.03 * n_boot, key
        if same >= 0.97 * n_boot:
            for name in law.param_names:
                values = ref.param_samples[name].to_numpy()
                for end, q_end in (("lo", 0.05), ("hi", 0.95)):
                    # optimizer precision (one path reaches a bound of 1, the other stops 1e-9 short)
                    band, tol = _mc_band(values, q_end), 1e-3 * values.std() + 1e-6
                    assert band[0] - tol <= new.params.loc[name, end] <= band[1] + tol, (key, name, end)
    assert agreeing >= 0.9 * compared, (agreeing, compared)
