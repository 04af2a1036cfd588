"""All-k estimators: expected accuracy at every k <= n from ONE pool of n samples per question.

"Sample once, estimate every k" (docs/design.md): a parallel strategy run with k samples is a
uniformly random k-subset, drawn without replacement, of a larger pool, so its expected
accuracy at every k is a function of the pool alone.

===================  =====================================================  ===========
function             what a k-subset does                                   estimator
===================  =====================================================  ===========
:func:`pass_at_k`    correct if any sample is (coverage, oracle verifier)   unbiased, closed form
:func:`majority_at_k`  the most frequent answer (ties uniform, None abstains)  exact, combinatorial
:func:`majority_estimate`  the same, any pool size                         exact or Monte Carlo
:func:`best_of_k`    the highest-scored sample (ties uniform)               exact, closed form
:func:`weighted_vote_at_k`  the answer with the largest summed weight       exact or Monte Carlo
===================  =====================================================  ===========

All functions accept ``k`` as an int (returning a float) or an array of ints (returning
an array); asking for many k at once is the fast path. Binomials are handled in log space
(or with power-of-two scaling), so pools of hundreds of samples never overflow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from functools import lru_cache

import numpy as np
from scipy.special import gammaln

from ._combin import check_k, comb_ratio, is_missing
from ._majority import EXACT_WORK_LIMIT, MAX_EXACT_POOL, exact_work, majority_all_k, majority_monte_carlo
from ._vote import VoteEstimate, weighted_vote_at_k

#: above this many (question, k) terms pass_at_k switches from log1p sums to log-gamma
_CUMSUM_LIMIT = 20_000_000
#: best-of-k caches a (n+1) x n table of binomial ratios for pools up to this size
_RATIO_TABLE_MAX_N = 2048

__all__ = [
    "pass_at_k",
    "majority_at_k",
    "majority_estimate",
    "majority_curve",
    "best_of_k",
    "best_of_curve",
    "weighted_vote_at_k",
    "VoteEstimate",
    "MAX_EXACT_POOL",
]


def pass_at_k(n, c, k) -> np.ndarray | float:
    r"""Unbiased pass@k of Chen et al. (2021), vectorized over questions and k.

    .. math:: \mathrm{pass@}k = 1 - \binom{n - c}{k} \Big/ \binom{n}{k}

    the probability that a uniformly random k-subset of a pool of n samples, c of them
    correct, holds at least one correct sample (an unbiased estimate of the question's
    true pass@k). Computed as ``-expm1`` of a log-gamma difference: no huge binomials.

    Parameters
    ----------
    n, c : int or array of int
        Pool sizes and correct counts, broadcast against each other (one per question).
    k : int or array of int
        Samples drawn, 1 <= k <= n for every question.

    Returns
    -------
    float or ndarray
        Shape ``broadcast(n, c).shape`` for a scalar k, else ``broadcast(n, c).shape +
        k.shape`` (entry ``[..., j]`` is for ``k[j]``).

    Examples
    --------
    >>> round(float(pass_at_k(10, 3, 2)), 6)  # 1 - C(7,2)/C(10,2) = 1 - 21/45
    0.533333
    >>> pass_at_k([4, 4], [0, 1], [1, 2, 4]).round(3).tolist()
    [[0.0, 0.0, 0.0], [0.25, 0.5, 1.0]]
    """
    n_arr, c_arr = np.broadcast_arrays(_as_int_array(n, "n"), _as_int_array(c, "c"))
    if n_arr.size and n_arr.min() < 1:
        raise ValueError(f"pass_at_k: pool sizes n must be >= 1, got {n_arr.min()}")
    if c_arr.size and (c_arr.min() < 0 or np.any(c_arr > n_arr)):
        raise ValueError("pass_at_k: correct counts c must satisfy 0 <= c <= n")
    n_min = int(n_arr.min()) if n_arr.size else 1
    k_arr, _ = check_k(k, n_min, "pass_at_k")
    shape = n_arr.shape
    nn = n_arr.reshape(-1, 1).astype(float)
    cc = c_arr.reshape(-1, 1).astype(float)
    kk = k_arr.reshape(1, -1).astype(float)
    k_top = int(k_arr.max()) if k_arr.size else 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if nn.shape[0] * k_top <= _CUMSUM_LIMIT:
            # log C(n-c,k)/C(n,k) = sum_{i<k} log1p(-c/(n-i)): every term keeps full relative
            # precision, so a tiny pass@k (c/n small) is not lost to cancellation
            steps = np.log1p(-cc / (nn - np.arange(k_top)[None, :]))
            cum = np.concatenate((np.zeros((nn.shape[0], 1)), np.cumsum(steps, axis=1)), axis=1)
            log_miss = np.take_along_axis(
                cum, np.broadcast_to(k_arr.reshape(1, -1), (nn.shape[0], kk.shape[1])), 1
            )
        else:
            ff = np.maximum(nn - cc, kk)
            log_miss = gammaln(ff + 1) - gammaln(ff - kk + 1) - gammaln(nn + 1) + gammaln(nn - kk + 1)
    certain = (nn - cc) < kk
    log_miss = np.minimum(np.where(certain, 0.0, log_miss), 0.0)
    out = np.where(certain, 1.0, np.where(cc == 0, 0.0, -np.expm1(log_miss))) + 0.0  # + 0.0: no -0.0
    out = out.reshape(shape + k_arr.shape)
    return float(out) if out.ndim == 0 else out


def majority_at_k(answers: Sequence[Hashable | None], correct_answer: Hashable, k) -> np.ndarray | float:
    r"""Exact expected accuracy of majority vote over a random k-subset of one question's pool.

    A k-subset is drawn uniformly without replacement; the answer drawn most often wins;
    ties among the leading answers are broken uniformly at random; ``None`` abstains (does
    not vote); a subset of abstentions only is wrong. With :math:`c_0` copies of the
    correct answer, :math:`c_j` of wrong answer j and a abstentions,

    .. math:: \mathrm{maj@}k = \sum_{x \ge 1} \frac{\binom{c_0}{x}}{\binom{n}{k}}
              \sum_{\substack{i_j \le x,\ r \\ x + \sum_j i_j + r = k}}
              \binom{a}{r} \prod_j \binom{c_j}{i_j} \cdot \frac{1}{1 + \#\{j : i_j = x\}}

    evaluated for every k at once with truncated binomial polynomials and Gauss-Legendre
    integration of the tie weight :math:`1/(1+t) = \int_0^1 u^t du` (see
    :mod:`fitting._majority`). Exact up to float rounding (no resampling); pools of up to
    :data:`MAX_EXACT_POOL` samples (:func:`majority_estimate` takes any pool size).

    Parameters
    ----------
    answers : sequence of hashable or None
        The pool's extracted answers; None (or NaN, pandas NA) where none could be extracted.
    correct_answer : hashable
        The reference answer (compared with ``==``).
    k : int or array of int
        Subset sizes, 1 <= k <= len(answers).

    Returns
    -------
    float or ndarray
        The expected accuracy at each k (same shape as k).

    Examples
    --------
    >>> round(majority_at_k(["a", "b", "a", None], "a", 1), 6)  # one draw: a wins w.p. 2/4
    0.5
    >>> majority_at_k(["a", "b"], "a", [1, 2]).round(6).tolist()  # k=2: a one-one tie, a coin flip
    [0.5, 0.5]
    """
    n = len(answers)
    if n == 0:
        raise ValueError("majority_at_k: the pool of answers is empty")
    k_arr, scalar = check_k(k, n, "majority_at_k")
    curve = _majority_pool(answers, correct_answer)
    out = curve[k_arr - 1]
    return float(out) if scalar else out


def _majority_pool(answers: Sequence[Hashable | None], correct_answer: Hashable) -> np.ndarray:
    counts = Counter(None if is_missing(a) else a for a in answers)
    n_abstain = counts.pop(None, 0)
    c0 = 0 if is_missing(correct_answer) else counts.pop(correct_answer, 0)
    return majority_all_k(c0, np.fromiter(counts.values(), dtype=np.int64, count=len(counts)), n_abstain)


def majority_estimate(
    answers: Sequence[Hashable | None],
    correct_answer: Hashable,
    k,
    *,
    method: str = "auto",
    n_draws: int = 2000,
    seed: int | None = 0,
) -> VoteEstimate:
    """Majority@k for a pool of any size: exact where affordable, else seeded Monte Carlo.

    ``method="auto"`` runs the exact estimator of :func:`majority_at_k` when the pool has
    at most :data:`MAX_EXACT_POOL` samples and its work estimate is at most
    ``EXACT_WORK_LIMIT`` (about a second), otherwise the unbiased Monte Carlo estimator
    (each draw the answer counts of a uniformly random k-subset, drawn from the counts
    without replacement; ties valued at their exact expectation), with its standard error.
    ``"exact"`` and ``"mc"`` force one of them. The result says which (``exact``).

    Examples
    --------
    >>> est = majority_estimate(["a"] * 3000 + ["b"] * 2000, "a", [1, 101], seed=1)
    >>> bool(est.exact.any()), round(float(est.mean[0]), 1), float(est.mean[1]) > 0.9
    (False, 0.6, True)
    """
    if method not in ("auto", "exact", "mc"):
        raise ValueError(f"majority_estimate: method must be 'auto', 'exact' or 'mc', got {method!r}")
    n = len(answers)
    if n == 0:
        raise ValueError("majority_estimate: the pool of answers is empty")
    k_arr, scalar = check_k(k, n, "majority_estimate")
    counts = Counter(None if is_missing(a) else a for a in answers)
    n_abstain = counts.pop(None, 0)
    c0 = 0 if is_missing(correct_answer) else counts.pop(correct_answer, 0)
    rivals = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    exact = method == "exact" or (
        method == "auto" and n <= MAX_EXACT_POOL and exact_work(c0, rivals, n_abstain) <= EXACT_WORK_LIMIT
    )
    ks = k_arr.ravel()
    if exact:
        mean, se, drawn = majority_all_k(c0, rivals, n_abstain)[ks - 1], np.zeros(len(ks)), 0
    else:
        mean, se = majority_monte_carlo(c0, rivals, n_abstain, ks, n_draws, np.random.default_rng(seed))
        drawn = n_draws
    if scalar:
        return VoteEstimate(int(ks[0]), float(mean[0]), float(se[0]), exact, drawn, seed)
    shape = k_arr.shape
    return VoteEstimate(k_arr, mean.reshape(shape), se.reshape(shape), np.full(shape, exact), drawn, seed)


def majority_curve(pools: Iterable[tuple[Sequence[Hashable | None], Hashable]], k=None) -> np.ndarray:
    """Exact majority@k for many questions: one row per question, one column per k.

    Parameters
    ----------
    pools : iterable of (answers, correct_answer)
        One pool per question, as in :func:`majority_at_k`.
    k : array of int or None
        The k values (columns); default ``1..min pool size``.

    Returns
    -------
    ndarray of shape (n_questions, n_k)

    Examples
    --------
    >>> majority_curve([(["a", "a", "b"], "a"), (["b", None, "c"], "c")]).round(4).tolist()
    [[0.6667, 0.6667, 1.0], [0.3333, 0.5, 0.5]]
    """
    curves = [_majority_pool(answers, correct) for answers, correct in pools]
    return _select_k(curves, k, "majority_curve")


def best_of_k(scores, correct, k) -> np.ndarray | float:
    r"""Exact expected correctness of the highest-scored sample of a random k-subset.

    Ties in score are broken uniformly at random. Closed form: sort the distinct scores
    :math:`s_1 < \dots < s_G`; with :math:`N_{\le g}` samples scoring at most
    :math:`s_g`, the top score of a random k-subset is :math:`s_g` with probability

    .. math:: P_g(k) = \Big[\binom{N_{\le g}}{k} - \binom{N_{< g}}{k}\Big] \Big/ \binom{n}{k},

    and the chosen sample is then uniform among the level's :math:`m_g` samples, of which
    :math:`r_g` are correct: :math:`\mathrm{best@}k = \sum_g P_g(k)\, r_g / m_g`.
    Ratios of binomials are computed in log space (stable for any n). NaN scores rank
    below every finite score (a sample without a score is chosen only if the subset holds
    nothing else).

    Parameters
    ----------
    scores : array of float, shape (n,)
        Reward-model score or mean log-prob of each sample (higher is better).
    correct : array of bool, shape (n,)
    k : int or array of int

    Examples
    --------
    >>> best_of_k([0.9, 0.1, 0.5], [False, True, True], [1, 2, 3]).round(4).tolist()
    [0.6667, 0.3333, 0.0]
    >>> best_of_k([1.0, 1.0], [True, False], 2)  # a tie at the top: a coin flip
    0.5
    """
    s, corr = _check_scored(scores, correct, "best_of_k")
    k_arr, scalar = check_k(k, len(s), "best_of_k")
    out = best_of_levels(s, corr, k_arr.ravel()).reshape(k_arr.shape)
    return float(out) if scalar else out


def best_of_curve(pools: Iterable[tuple[Sequence[float], Sequence[bool]]], k=None) -> np.ndarray:
    """:func:`best_of_k` for many questions: pools of (scores, correct); rows questions, columns k.

    ``k`` defaults to ``1..min pool size``.

    Examples
    --------
    >>> best_of_curve([([0.2, 0.7], [True, False]), ([0.3, 0.1], [True, False])]).tolist()
    [[0.5, 0.0], [0.5, 1.0]]
    """
    curves = []
    for scores, correct in pools:
        s, corr = _check_scored(scores, correct, "best_of_curve")
        curves.append(best_of_levels(s, corr, np.arange(1, len(s) + 1)))
    return _select_k(curves, k, "best_of_curve")


def best_of_levels(scores: np.ndarray, correct: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """best@k at every k in ``ks`` for validated arrays (the closed form of :func:`best_of_k`)."""
    levels, inverse = np.unique(np.where(np.isnan(scores), -np.inf, scores), return_inverse=True)
    m = np.bincount(inverse, minlength=len(levels)).astype(float)
    r = np.bincount(inverse, weights=correct.astype(float), minlength=len(levels))
    n_le = np.cumsum(m).astype(np.int64)
    n_lt = n_le - m.astype(np.int64)
    n = len(scores)
    if n <= _RATIO_TABLE_MAX_N:  # one table per pool size, shared by every question of that size
        table = _ratio_table(n)[:, ks - 1]
        p_top = table[n_le] - table[n_lt]  # (levels, k)
    else:
        kk = ks.astype(float)[None, :]
        p_top = comb_ratio(n_le[:, None], n, kk) - comb_ratio(n_lt[:, None], n, kk)
    return np.clip((r / m) @ p_top, 0.0, 1.0)


@lru_cache(maxsize=8)
def _ratio_table(n: int) -> np.ndarray:
    """``table[m, k - 1] = C(m, k) / C(n, k)`` for m = 0..n, k = 1..n (read-only)."""
    table = comb_ratio(np.arange(n + 1)[:, None], n, np.arange(1, n + 1)[None, :])
    table.setflags(write=False)
    return table


def _check_scored(scores, correct, where: str) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    corr = np.asarray(correct)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"{where}: scores must be a non-empty 1-D array, got shape {s.shape}")
    if corr.shape != s.shape:
        raise ValueError(f"{where}: correct has shape {corr.shape} but scores has {s.shape}")
    if corr.dtype != bool:
        if not np.all(np.isin(corr, [0, 1])):
            raise ValueError(f"{where}: correct must hold booleans, got {corr[~np.isin(corr, [0, 1])][0]!r}")
        corr = corr.astype(bool)
    if np.any(np.isinf(s)):
        raise ValueError(f"{where}: scores must be finite (NaN allowed for a missing score)")
    return s, corr


def _select_k(curves: list[np.ndarray], k, where: str) -> np.ndarray:
    if not curves:
        return np.zeros((0, 0 if k is None else np.size(k)))
    n_min = min(len(c) for c in curves)
    if n_min == 0:
        raise ValueError(f"{where}: a pool is empty")
    if k is None:
        k_arr = np.arange(1, n_min + 1)
    else:
        k_arr, _ = check_k(k, n_min, f"{where} (smallest pool)")
        k_arr = np.atleast_1d(k_arr)
    return np.stack([c[k_arr - 1] for c in curves])


def _as_int_array(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"pass_at_k: {name} must hold integers, got {values!r}")
    return arr.astype(np.int64)
