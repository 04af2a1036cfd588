"""All-k estimators against brute-force enumeration of every k-subset, closed forms and Monte Carlo."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import hypergeom

from fitting import (
    VoteEstimate,
    best_of_curve,
    best_of_k,
    majority_at_k,
    majority_curve,
    pass_at_k,
    weighted_vote_at_k,
)
from fitting._majority import MAX_EXACT_POOL, majority_all_k

# ---- brute force: average over every k-subset ---------------------------------------------------


def subsets(n, k):
    return itertools.combinations(range(n), k)


def brute_pass(correct, k):
    vals = [any(correct[i] for i in s) for s in subsets(len(correct), k)]
    return sum(vals) / len(vals)


def brute_majority(answers, ref, k):
    total, count = 0.0, 0
    for s in subsets(len(answers), k):
        count += 1
        votes = Counter(answers[i] for i in s if answers[i] is not None)
        if not votes:
            continue  # all abstain: wrong
        top = max(votes.values())
        leaders = [a for a, v in votes.items() if v == top]
        if ref in leaders:
            total += 1.0 / len(leaders)
    return total / count


def brute_best_of(scores, correct, k):
    total, count = 0.0, 0
    for s in subsets(len(scores), k):
        count += 1
        top = max(scores[i] for i in s)
        tied = [i for i in s if scores[i] == top]
        total += sum(correct[i] for i in tied) / len(tied)
    return total / count


def brute_weighted(answers, weights, ref, k):
    total, count = 0.0, 0
    for s in subsets(len(answers), k):
        count += 1
        sums: dict = {}
        for i in s:
            if answers[i] is not None:
                sums[answers[i]] = sums.get(answers[i], 0.0) + weights[i]
        if not sums:
            continue
        top = max(sums.values())
        leaders = [a for a, v in sums.items() if v == top]
        if ref in leaders:
            total += 1.0 / len(leaders)
    return total / count


def mc_majority(answers, ref, ks, draws, seed, chunk=500):
    """Monte Carlo majority@k: the first k of a random permutation; mean and standard error."""
    rng = np.random.default_rng(seed)
    labels = {a: j for j, a in enumerate(sorted({a for a in answers if a is not None}))}
    onehot = np.zeros((len(answers), len(labels)))
    for i, a in enumerate(answers):
        if a is not None:
            onehot[i, labels[a]] = 1.0
    target = labels.get(ref, -1)
    values = []
    for _ in range(draws // chunk):
        ranks = np.argsort(np.argsort(rng.random((chunk, len(answers))), axis=1), axis=1)
        per_k = []
        for k in ks:
            counts = (ranks < k).astype(float) @ onehot  # (chunk, answers): votes of the first k
            top = counts.max(axis=1, keepdims=True)
            tied = (counts == top) & (top > 0)
            per_k.append(tied[:, target] / np.maximum(tied.sum(axis=1), 1))
        values.append(np.stack(per_k, axis=1))
    value = np.concatenate(values)
    return value.mean(axis=0), value.std(axis=0, ddof=1) / np.sqrt(len(value))


pools = st.lists(st.sampled_from(["r", "a", "b", "c", None]), min_size=1, max_size=9)

# ---- pass@k ------------------------------------------------------------------------------------


def test_pass_at_k_matches_brute_force_on_every_small_pool():
    for n in range(1, 8):
        for c in range(n + 1):
            correct = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(brute_pass(correct, k), abs=1e-12)


def test_pass_at_k_shapes_broadcast_questions_then_k():
    out = pass_at_k(np.array([10, 20, 30]), np.array([0, 5, 30]), np.array([1, 2, 5, 10]))
    assert out.shape == (3, 4)
    assert np.all(out[0] == 0.0) and np.all(out[2] == 1.0)
    assert isinstance(pass_at_k(10, 5, 3), float)
    assert pass_at_k(10, [1, 2], 3).shape == (2,)


def test_pass_at_k_is_stable_for_huge_pools():
    # one correct sample of n: pass@k = k / n exactly
    n = 100_000
    k = np.array([1, 10, 5_000, 99_999, 100_000])
    np.testing.assert_allclose(pass_at_k(n, 1, k), k / n, rtol=1e-9)
    # (1 - c/n)^k regime: pass@k close to 1 - (1 - p)^k with small relative error in the miss
    assert 0.0 <= pass_at_k(n, 2, 50_000) <= 1.0


@pytest.mark.parametrize(
    ("n", "c", "k", "msg"),
    [
        (5, 6, 1, "0 <= c <= n"),
        (5, 2, 6, r"k must be in \[1, n\]"),
        (5, 2, 0, "k must be"),
        (0, 0, 1, ">= 1"),
    ],
)
def test_pass_at_k_rejects_bad_input(n, c, k, msg):
    with pytest.raises(ValueError, match=msg):
        pass_at_k(n, c, k)


# ---- majority@k -----------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(pools)
def test_majority_at_k_matches_brute_force_with_ties_and_abstentions(answers):
    ks = np.arange(1, len(answers) + 1)
    exact = majority_at_k(answers, "r", ks)
    brute = [brute_majority(answers, "r", int(k)) for k in ks]
    np.testing.assert_allclose(exact, brute, atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    "answers",
    [
        ["r", "a", "a", "b", "b", "c", "c", "r", None, "r"],  # three rivals that can tie
        ["r", "r", "a", "b", "c", "d", "e", "f", None, None],  # many singletons tying at x = 1
        ["r", "r", "r", "a", "a", "a", "b", "b", "b", "c", "c"],  # three-way and four-way ties
        ["r"] * 6 + [None] * 5,  # no rival at all
    ],
)
def test_majority_at_k_matches_brute_force_on_tie_heavy_pools(answers):
    ks = np.arange(1, len(answers) + 1)
    np.testing.assert_allclose(
        majority_at_k(answers, "r", ks), [brute_majority(answers, "r", int(k)) for k in ks], atol=1e-9, rtol=0
    )


def test_majority_at_k_edge_cases():
    assert majority_at_k([None, None, None], "r", 2) == 0.0  # all abstain: wrong
    assert majority_at_k(["a", "b"], "r", 2) == 0.0  # the correct answer is never drawn
    assert majority_at_k(["r"], "r", 1) == pytest.approx(1.0)  # n = 1
    assert majority_at_k(["a"], "r", 1) == 0.0
    assert majority_at_k(["r", "a", None], None, [1, 2, 3]).tolist() == [0.0, 0.0, 0.0]  # None never wins
    # k = n: the whole pool votes; r and a tie 2-2 -> a coin flip
    assert majority_at_k(["r", "a", "r", "a", None], "r", 5) == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(ValueError, match="k must be in"):
        majority_at_k(["r", "a"], "r", 3)
    with pytest.raises(ValueError, match="empty"):
        majority_at_k([], "r", 1)


def test_majority_at_k_matches_hypergeometric_closed_form_at_n_512():
    # correct vs one rival, no abstentions: win iff X > k/2, a coin flip at X = k/2, X ~ Hypergeom
    c0, c1 = 250, 262
    n = c0 + c1
    k = np.arange(1, n + 1)
    x = hypergeom(n, c0, k)
    expected = x.sf(np.floor(k / 2)) + np.where(k % 2 == 0, 0.5 * x.pmf(k // 2), 0.0)
    got = majority_at_k(["r"] * c0 + ["a"] * c1, "r", k)
    np.testing.assert_allclose(got, expected, atol=1e-9, rtol=0)


def test_majority_at_k_with_abstentions_matches_double_sum_at_large_n():
    # correct, one rival, abstentions: sum over (x, y) of C(c0,x) C(c1,y) C(a,k-x-y)/C(n,k) * win(x, y)
    c0, c1, a = 150, 170, 192
    n = c0 + c1 + a
    x = np.arange(c0 + 1)[:, None]
    y = np.arange(c1 + 1)[None, :]
    win = np.where(x > y, 1.0, np.where((x == y) & (x > 0), 0.5, 0.0))
    got = majority_at_k(["r"] * c0 + ["a"] * c1 + [None] * a, "r", [1, 2, 3, 100, 255, 256, 400, 511, 512])
    for j, k in enumerate([1, 2, 3, 100, 255, 256, 400, 511, 512]):
        r = k - x - y
        pmf = hypergeom(n, c0 + c1, k).pmf(x + y) * hypergeom(c0 + c1, c0, x + y).pmf(x) * (r >= 0)
        # P(x correct, y rival) = P(x + y answered) * P(x of those correct | x + y)
        assert got[j] == pytest.approx(float((pmf * win).sum()), abs=1e-9)


def test_majority_at_k_large_pool_matches_monte_carlo_within_its_error():
    rng = np.random.default_rng(7)
    n = 512
    probs = np.array([0.26, 0.2, 0.2, 0.12, 0.1, 0.12])  # r, a, b, c, many singletons, abstain
    kinds = rng.choice(6, size=n, p=probs)
    answers = [["r", "a", "b", "c", f"s{i}", None][t] for i, t in enumerate(kinds)]
    ks = np.array([1, 2, 5, 16, 64, 200, 511, 512])
    exact = majority_at_k(answers, "r", ks)
    assert np.all(np.isfinite(exact)) and np.all((exact >= 0) & (exact <= 1))
    mean, se = mc_majority(answers, "r", ks, draws=5_000, seed=1)
    assert np.all(np.abs(exact - mean) <= 4.5 * se + 1e-12), (exact, mean, se)


def test_majority_pool_limit_is_a_clear_error():
    with pytest.raises(ValueError, match="up to"):
        majority_all_k(MAX_EXACT_POOL, [1], 0)


def test_majority_curve_matches_per_question_calls():
    pools_ = [(["r", "a", "r", None], "r"), (["x", "y", "y", "x", "y"], "x"), ([None, "q", "q"], "q")]
    curve = majority_curve(pools_)
    assert curve.shape == (3, 3)  # k = 1..smallest pool
    for row, (answers, ref) in zip(curve, pools_, strict=True):
        np.testing.assert_allclose(row, majority_at_k(answers, ref, [1, 2, 3]), atol=1e-12)
    np.testing.assert_allclose(majority_curve(pools_, k=[2]), curve[:, [1]])
    with pytest.raises(ValueError, match="smallest pool"):
        majority_curve(pools_, k=[4])


# ---- best-of-k -------------------------------------------------------------------------------------

scored = st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.booleans()), min_size=1, max_size=9)


@settings(max_examples=150, deadline=None)
@given(scored)
def test_best_of_k_matches_brute_force_with_score_ties(pool):
    scores = [s for s, _ in pool]
    correct = [c for _, c in pool]
    ks = np.arange(1, len(pool) + 1)
    np.testing.assert_allclose(
        best_of_k(scores, correct, ks),
        [brute_best_of(scores, correct, int(k)) for k in ks],
        atol=1e-9,
        rtol=0,
    )


def test_best_of_k_edge_cases_and_missing_scores():
    assert best_of_k([0.3], [True], 1) == pytest.approx(1.0)
    assert best_of_k([0.3, 0.9, 0.1], [True, False, True], 3) == pytest.approx(0.0)  # k = n: the top one
    # NaN ranks below every score: it is chosen only when drawn alone
    got = best_of_k([np.nan, 0.2, 0.1], [True, False, False], [1, 2, 3])
    brute = [brute_best_of([-np.inf, 0.2, 0.1], [True, False, False], k) for k in (1, 2, 3)]
    np.testing.assert_allclose(got, brute, atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        best_of_k([0.1, 0.2], [True], 1)
    with pytest.raises(ValueError, match="finite"):
        best_of_k([np.inf, 0.2], [True, False], 1)


def test_best_of_k_large_pool_matches_monte_carlo_within_its_error():
    rng = np.random.default_rng(3)
    n = 512
    correct = rng.random(n) < 0.3
    scores = np.round(rng.normal(correct * 0.8, 1.0), 1)  # coarse scores: many ties
    ks = np.array([1, 2, 8, 64, 300, 512])
    exact = best_of_k(scores, correct, ks)
    assert np.all(np.isfinite(exact))
    draws = 20_000
    perm = np.argsort(rng.random((draws, n)), axis=1)
    for j, k in enumerate(ks):
        sub = perm[:, :k]
        s = scores[sub]
        tied = s == s.max(axis=1, keepdims=True)
        value = (tied & correct[sub]).sum(axis=1) / tied.sum(axis=1)
        se = value.std(ddof=1) / np.sqrt(draws)
        assert abs(exact[j] - value.mean()) <= 4.5 * se + 1e-12


def test_best_of_curve_rows_are_questions():
    pools_ = [([0.2, 0.7, 0.7], [True, False, True]), ([0.1, 0.3], [False, True])]
    curve = best_of_curve(pools_)
    assert curve.shape == (2, 2)
    np.testing.assert_allclose(curve[0], best_of_k(*pools_[0], [1, 2]))


# ---- weighted vote -------------------------------------------------------------------------------

weighted_pools = st.lists(
    st.tuples(st.sampled_from(["r", "a", "b", None]), st.sampled_from([0.25, 0.5, 1.0, 2.0])),
    min_size=1,
    max_size=8,
)


@settings(max_examples=120, deadline=None)
@given(weighted_pools)
def test_weighted_vote_exact_matches_brute_force_with_ties(pool):
    answers = [a for a, _ in pool]
    weights = [w for _, w in pool]  # dyadic weights: sums are exact, so ties are real ties
    ks = np.arange(1, len(pool) + 1)
    est = weighted_vote_at_k(answers, weights, "r", ks, method="exact")
    assert isinstance(est, VoteEstimate) and est.exact.all() and np.all(est.se == 0)
    brute = [brute_weighted(answers, weights, "r", int(k)) for k in ks]
    np.testing.assert_allclose(est.mean, brute, atol=1e-9, rtol=0)


def test_weighted_vote_with_equal_weights_is_majority_vote():
    answers = ["r", "a", "a", "r", "b", None, "r", "b", "a"]
    ks = np.arange(1, len(answers) + 1)
    est = weighted_vote_at_k(answers, np.ones(len(answers)), "r", ks)
    np.testing.assert_allclose(est.mean, majority_at_k(answers, "r", ks), atol=1e-9)


def test_weighted_vote_monte_carlo_is_seeded_and_within_its_error_of_exact():
    rng = np.random.default_rng(5)
    answers = list(rng.choice(["r", "a", "b", "c"], size=20, p=[0.35, 0.3, 0.2, 0.15]))
    answers[3] = None
    weights = rng.uniform(0.1, 1.0, 20)
    ks = np.array([2, 5, 10, 15])
    exact = weighted_vote_at_k(answers, weights, "r", ks, method="exact")
    mc = weighted_vote_at_k(answers, weights, "r", ks, method="mc", n_draws=4000, seed=11)
    again = weighted_vote_at_k(answers, weights, "r", ks, method="mc", n_draws=4000, seed=11)
    assert not mc.exact.any() and np.all(mc.se > 0) and mc.n_draws == 4000
    np.testing.assert_array_equal(mc.mean, again.mean)
    assert np.all(np.abs(mc.mean - exact.mean) <= 4.5 * mc.se)


def test_weighted_vote_auto_enumerates_only_small_subset_counts():
    answers = ["r", "a"] * 15  # n = 30: C(30, 2) = 435 subsets, C(30, 10) = 3e7
    est = weighted_vote_at_k(answers, np.linspace(0.1, 1, 30), "r", [1, 2, 10, 29, 30], n_draws=200)
    assert est.exact.tolist() == [True, True, False, True, True]
    assert est.se[2] > 0 and est.se[0] == 0
    scalar = weighted_vote_at_k(answers, np.ones(30), "r", 1)
    assert isinstance(scalar.mean, float) and float(scalar) == pytest.approx(0.5)


def test_weighted_vote_rejects_bad_input():
    with pytest.raises(ValueError, match="method"):
        weighted_vote_at_k(["r"], [1.0], "r", 1, method="bogus")
    with pytest.raises(ValueError, match="shape"):
        weighted_vote_at_k(["r", "a"], [1.0], "r", 1)
    with pytest.raises(ValueError, match="finite"):
        weighted_vote_at_k(["r", "a"], [1.0, np.nan], "r", 1)
    with pytest.raises(ValueError, match="too many"):
        weighted_vote_at_k(["r"] * 40, np.ones(40), "r", 20, method="exact")
    assert weighted_vote_at_k([None, None], [1.0, 2.0], "r", 2).mean == 0.0


def test_best_of_k_cached_table_and_direct_formula_agree(monkeypatch):
    rng = np.random.default_rng(2)
    scores, correct = np.round(rng.normal(size=300), 1), rng.random(300) < 0.4
    ks = np.array([1, 3, 50, 299, 300])
    cached = best_of_k(scores, correct, ks)
    monkeypatch.setattr("fitting.estimators._RATIO_TABLE_MAX_N", 0)
    np.testing.assert_allclose(best_of_k(scores, correct, ks), cached, atol=1e-12)


def test_nan_and_pandas_na_abstain_like_none():
    import pandas as pd

    ks = [1, 2, 3, 4]
    with_none = majority_at_k(["r", None, "a", None], "r", ks)
    np.testing.assert_allclose(majority_at_k(["r", np.nan, "a", pd.NA], "r", ks), with_none)
    est = weighted_vote_at_k(["r", float("nan"), "a", pd.NA], [1.0, 5.0, 0.5, 5.0], "r", ks)
    np.testing.assert_allclose(
        est.mean, weighted_vote_at_k(["r", None, "a", None], [1.0, 5.0, 0.5, 5.0], "r", ks).mean
    )
