"""Estimators never invent what the data lack, and have no pool-size ceiling (minimal cases of both)."""

from __future__ import annotations

import json
import warnings
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fitting import (
    DataWarning,
    curves_from_samples,
    k_grid,
    majority_at_k,
    majority_estimate,
    weighted_vote_at_k,
)
from fitting import schema as S
from fitting.pipeline import fit_samples
from planner.cli import app


def rows_without_answers():
    """The smallest such table: one correct sample in four, no answer field."""
    return pd.DataFrame([{"question_id": "q1", "sample_idx": i, "correct": i == 0} for i in range(4)])


def test_majority_and_weighted_are_not_produced_without_answers_and_it_is_said_once():
    with pytest.warns(
        DataWarning, match="^majority@k and weighted@k need extracted answers; none in this data$"
    ):
        curves = curves_from_samples(rows_without_answers(), n_boot=0)
    assert set(curves[S.METRIC]) == {"pass@k"}  # before: majority@k == pass@k, labelled measured
    assert curves[S.ACCURACY].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_ttc_fit_prints_the_no_answers_note_once(tmp_path):
    path = tmp_path / "s.jsonl"
    rows = [{"question_id": f"q{q}", "sample_idx": i, "correct": i == q} for q in range(3) for i in range(4)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = CliRunner().invoke(app, ["fit", str(path), "--out", str(tmp_path / "fit"), "--n-boot", "0"])
    assert result.exit_code == 0, result.output
    assert result.output.count("majority@k and weighted@k need extracted answers; none in this data") == 1
    curves = pd.read_csv(tmp_path / "fit" / "curves.csv")
    assert set(curves[S.METRIC]) == {"pass@k"}


def test_some_missing_answers_still_abstain():
    answers = ["7", None, "3", None]
    df = pd.DataFrame(
        {
            "question_id": "q",
            "sample_idx": range(4),
            "correct": [True, False, False, False],
            "answer": answers,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # answers exist: no note
        curves = curves_from_samples(df.assign(reference="7"), metrics=["majority@k"], n_boot=0)
    np.testing.assert_allclose(curves[S.ACCURACY], majority_at_k(["7", None, "3", None], "7", [1, 2, 3, 4]))


def test_weighted_vote_with_a_question_that_has_no_correct_sample_and_no_answers():
    """Weighted vote must not fail on a pool >= 24 with rewards, one question with no correct sample and no answers."""
    rows = []
    for q in range(2):
        for i in range(24):
            rows.append(
                {
                    "question_id": f"q{q}",
                    "sample_idx": i,
                    "correct": q == 0 and i < 3,
                    "answer": "5" if q == 0 else None,
                    "reward": i / 24,
                }
            )
    curves = curves_from_samples(pd.DataFrame(rows), n_boot=20)  # q1 has no answer to vote on
    weighted = curves[curves[S.METRIC] == "weighted@k"]
    assert len(weighted) == 24
    # q0: every sample answers "5", the reference (a correct sample's answer): always right; q1: never
    np.testing.assert_allclose(weighted[S.ACCURACY], 0.5)
    est = weighted_vote_at_k([None] * 30, np.linspace(0, 1, 30), "x", [1, 15, 30], method="mc")
    assert est.mean.tolist() == [0.0, 0.0, 0.0] and bool(est.exact.all())


def test_majority_beyond_the_exact_limit_is_monte_carlo_within_its_error_of_brute_force():
    # small enough to enumerate, forced to Monte Carlo: unbiased within 4.5 standard errors
    answers = ["r"] * 4 + ["a"] * 3 + ["b"] * 2 + [None] * 3
    ks = np.array([1, 3, 5, 8, 12])
    exact = majority_at_k(answers, "r", ks)
    mc = majority_estimate(answers, "r", ks, method="mc", n_draws=4000, seed=2)
    assert not mc.exact.any() and mc.n_draws == 4000
    assert np.all(np.abs(mc.mean - exact) <= 4.5 * mc.se + 1e-12), (mc.mean, exact, mc.se)
    brute = [
        np.mean([_brute_majority([answers[i] for i in s], "r") for s in combinations(range(12), int(k))])
        for k in ks
    ]
    np.testing.assert_allclose(exact, brute, atol=1e-12)


def _brute_majority(subset, ref):
    counts = pd.Series([a for a in subset if a is not None]).value_counts()
    if counts.empty or ref not in counts:
        return 0.0
    top = counts.max()
    return float(counts[ref] == top) / int((counts == top).sum())


def test_a_pool_of_3000_answered_samples_gets_every_curve_without_a_ceiling():
    rng = np.random.default_rng(0)
    n = 3000  # the exact method stopped at 1,500 with "exact majority@k supports pools of up to 1500"
    rows = []
    for q in range(3):
        ans = rng.choice(["r", "a", "b", "c"], size=n, p=[0.4, 0.3, 0.2, 0.1])
        rows += [
            {
                "question_id": f"q{q}",
                "sample_idx": i,
                "answer": a,
                "reference": "r",
                "correct": a == "r",
                "logprob": float(rng.normal()),
            }
            for i, a in enumerate(ans)
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        curves = curves_from_samples(pd.DataFrame(rows), n_boot=0)
    maj = curves[curves[S.METRIC] == "majority@k"]
    assert maj[S.K].tolist() == k_grid(n).tolist() and maj[S.K].max() == n
    assert set(maj[S.ESTIMATOR]) == {"monte_carlo"} and (maj[S.MC_SE] > 0).any()
    assert maj[S.ACCURACY].iloc[-1] == pytest.approx(1.0)  # all 3000 drawn: "r" (40%) always leads
    assert maj[S.ACCURACY].iloc[0] == pytest.approx(0.4, abs=0.05)  # one draw: right w.p. 0.4
    best = curves[curves[S.METRIC] == "best_of@k"]
    assert best[S.K].max() == n and set(best[S.ESTIMATOR]) == {"exact"}


def test_k_grid_is_dense_then_log_spaced():
    g = k_grid(100_000)
    assert g[:512].tolist() == list(range(1, 513)) and g[-1] == 100_000
    assert np.all(np.diff(g) > 0) and len(g) < 512 + 32 * 3 + 3
    ratios = g[513:] / g[512:-1]
    assert ratios.max() < 10 ** (1 / 32) * 1.01  # at most one 32nd of a decade apart


def test_uneven_pools_of_one_to_ten_samples_warn_that_the_curve_stops_at_k1():
    rows = [
        {"question_id": f"q{q}", "sample_idx": i, "correct": (i + q) % 3 == 0}
        for q in range(10)
        for i in range(q + 1)
    ]
    with pytest.warns(DataWarning, match=r"pools of 1-10 samples, cut at k = 1; 9 of 10 questions have more"):
        common = curves_from_samples(pd.DataFrame(rows), n_boot=0, metrics=["pass@k"])
    assert common[S.K].tolist() == [1]
    with pytest.warns(DataWarning, match="fewer questions back each k"):
        available = curves_from_samples(
            pd.DataFrame(rows), n_boot=50, metrics=["pass@k"], pool_policy="available"
        )
    assert available[S.K].tolist() == list(range(1, 11))
    assert available[S.N_QUESTIONS].tolist() == list(range(10, 0, -1))
    assert set(available[S.POOL_POLICY]) == {"available"}
    # at k = 10 only the 10-sample question counts: its pass@10 is 1 (it has a correct sample)
    assert available[S.ACCURACY].iloc[-1] == 1.0 and available[S.ACCURACY_HI].notna().all()


def test_fit_samples_under_the_available_policy_bootstraps_on_the_k_every_question_covers():
    rng = np.random.default_rng(1)
    rows = []
    for q in range(60):
        n = 32 if q % 2 else 64
        p = rng.beta(0.5, 1.5)
        rows += [
            {"question_id": f"q{q}", "sample_idx": i, "correct": bool(rng.random() < p)} for i in range(n)
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        out = fit_samples(pd.DataFrame(rows), n_boot=30, metrics=["pass@k"], pool_policy="available")
    fit = out.fits[0]
    assert fit["k_max"] == 64 and fit["converged"] and fit["params_ci"] is not None
