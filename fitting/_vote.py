"""Weighted majority vote over a random k-subset: exact enumeration or seeded Monte Carlo."""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from ._combin import check_k, is_missing

__all__ = ["VoteEstimate", "weighted_vote_at_k", "MAX_ENUMERATED_SUBSETS", "TIE_RTOL"]

#: ``method="auto"`` enumerates every k-subset when there are at most this many.
MAX_ENUMERATED_SUBSETS = 200_000
#: ``method="exact"`` refuses to enumerate more subsets than this (memory and time).
_HARD_ENUMERATION_CAP = 20_000_000
#: Totals within ``TIE_RTOL * sum(|weights|)`` of the leader count as tied (float sums
#: of the same weights in a different order must not break a tie).
TIE_RTOL = 1e-12
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class VoteEstimate:
    """What :func:`weighted_vote_at_k` returns.

    Attributes
    ----------
    k : int or ndarray of int
        The subset sizes asked for.
    mean : float or ndarray
        Expected accuracy at each k (exact where ``exact``; else the Monte Carlo mean).
    se : float or ndarray
        Monte Carlo standard error of ``mean`` (0 where exact).
    exact : bool or ndarray of bool
        Whether each value came from enumerating every k-subset.
    n_draws : int
        Monte Carlo draws per k (0 if every k was exact).
    seed : int or None
        Seed of the Monte Carlo generator.
    """

    k: int | np.ndarray
    mean: float | np.ndarray
    se: float | np.ndarray
    exact: bool | np.ndarray
    n_draws: int
    seed: int | None

    def __float__(self) -> float:
        return float(self.mean)


def weighted_vote_at_k(
    answers: Sequence[Hashable | None],
    weights,
    correct_answer: Hashable,
    k,
    *,
    method: str = "auto",
    n_draws: int = 2000,
    seed: int | None = 0,
    max_subsets: int = MAX_ENUMERATED_SUBSETS,
) -> VoteEstimate:
    r"""Expected accuracy of weighted majority vote over a uniformly random k-subset.

    Each answer's total is the sum of the weights (reward-model score, probability, ...)
    of its samples in the subset; the answer with the largest total wins; ties (totals
    within :data:`TIE_RTOL` of the pool's total absolute weight) are broken uniformly at
    random; ``None`` abstains; only answers drawn at least once compete; a subset of
    abstentions only is wrong. The tie-break enters as its expectation (correct w.p.
    1 / number tied), so no randomness is spent on it.

    .. math:: \mathrm{wv@}k = \binom{n}{k}^{-1} \sum_{|S| = k}
              \frac{[\mathrm{correct} \in \arg\max_a W_a(S)]}{|\arg\max_a W_a(S)|},
              \qquad W_a(S) = \sum_{i \in S,\ \mathrm{ans}_i = a} w_i

    Parameters
    ----------
    answers : sequence of hashable or None
    weights : array of float, shape (n,)
        Finite weights (any sign; a negative weight lowers its answer's total).
    correct_answer : hashable
    k : int or array of int
        1 <= k <= n.
    method : {"auto", "exact", "mc"}
        "auto" enumerates every k-subset when :math:`\binom{n}{k}` <= ``max_subsets`` and
        uses Monte Carlo otherwise; "exact" always enumerates (ValueError beyond 2e7
        subsets); "mc" always samples.
    n_draws : int
        Monte Carlo k-subsets per k. One uniformly random permutation of the pool per draw
        serves every k (its first k samples are a uniform k-subset), so the estimates at
        different k share draws; each k's standard error is valid on its own.
    seed : int or None
        Seed of the ``numpy.random.Generator`` used for Monte Carlo.
    max_subsets : int
        Enumeration threshold of "auto".

    Returns
    -------
    VoteEstimate
        ``mean``, ``se`` (0 where exact), ``exact`` flags; floats for a scalar k.

    Examples
    --------
    >>> est = weighted_vote_at_k(["a", "b", "b"], [0.9, 0.3, 0.4], "a", [1, 2, 3])
    >>> est.mean.round(4).tolist(), bool(est.exact.all())   # k=3: 0.9 > 0.7
    ([0.3333, 0.6667, 1.0], True)
    """
    if method not in ("auto", "exact", "mc"):
        raise ValueError(f"weighted_vote_at_k: method must be 'auto', 'exact' or 'mc', got {method!r}")
    n = len(answers)
    if n == 0:
        raise ValueError("weighted_vote_at_k: the pool of answers is empty")
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"weighted_vote_at_k: weights has shape {w.shape}, answers has {n} entries")
    if not np.all(np.isfinite(w)):
        raise ValueError("weighted_vote_at_k: weights must be finite")
    if n_draws < 2:
        raise ValueError(f"weighted_vote_at_k: n_draws must be >= 2, got {n_draws}")
    k_arr, scalar = check_k(k, n, "weighted_vote_at_k")
    ks = k_arr.ravel()

    labels, n_labels, target = _encode(answers, correct_answer)
    if target < 0:  # the correct answer never occurs in the pool: every subset votes wrong, exactly
        zeros = np.zeros(k_arr.shape)
        if scalar:
            return VoteEstimate(int(ks[0]), 0.0, 0.0, True, 0, seed)
        return VoteEstimate(k_arr, zeros, zeros.copy(), np.ones(k_arr.shape, dtype=bool), 0, seed)
    onehot = np.zeros((n, n_labels + 1))
    onehot[np.arange(n), labels] = 1.0  # column n_labels holds abstentions (never compete)
    tol = TIE_RTOL * float(np.abs(w).sum())
    mean = np.zeros(len(ks))
    se = np.zeros(len(ks))
    exact = np.zeros(len(ks), dtype=bool)
    mc_ks = []
    for j, kk in enumerate(ks):
        n_sub = math.comb(n, int(kk))
        if method == "exact" or (method == "auto" and n_sub <= max_subsets):
            if n_sub > _HARD_ENUMERATION_CAP:
                raise ValueError(
                    f"weighted_vote_at_k: C({n}, {kk}) = {n_sub} subsets is too many to enumerate; "
                    "use method='auto' or 'mc'"
                )
            mean[j] = _enumerate(onehot, w, target, n_labels, int(kk), tol)
            exact[j] = True
        else:
            mc_ks.append(j)
    if mc_ks:
        rng = np.random.default_rng(seed)
        m, s = _monte_carlo(onehot, w, target, n_labels, ks[mc_ks], n_draws, tol, rng)
        mean[mc_ks], se[mc_ks] = m, s
    drawn = n_draws if mc_ks else 0
    if scalar:
        return VoteEstimate(int(ks[0]), float(mean[0]), float(se[0]), bool(exact[0]), drawn, seed)
    shape = k_arr.shape
    return VoteEstimate(k_arr, mean.reshape(shape), se.reshape(shape), exact.reshape(shape), drawn, seed)


def _encode(answers, correct_answer) -> tuple[np.ndarray, int, int]:
    """Integer labels 0..A-1 for answers, A for None; the correct answer's label (-1 if absent)."""
    codes: dict[Hashable, int] = {}
    raw = [-1 if is_missing(a) else codes.setdefault(a, len(codes)) for a in answers]
    n_labels = len(codes)
    labels = np.array([n_labels if r < 0 else r for r in raw], dtype=np.int64)
    target = -1 if is_missing(correct_answer) else codes.get(correct_answer, -1)
    return labels, n_labels, target


def _vote_value(totals: np.ndarray, present: np.ndarray, target: int, tol: float) -> np.ndarray:
    """Expected correctness of each subset (rows) from per-answer totals and presence."""
    if target < 0:
        return np.zeros(totals.shape[0])
    masked = np.where(present, totals, -np.inf)
    best = masked.max(axis=1, keepdims=True)
    tied = present & (masked >= best - tol)
    n_tied = tied.sum(axis=1)
    return np.where(n_tied > 0, tied[:, target] / np.maximum(n_tied, 1), 0.0)


def _enumerate(onehot, w, target, n_labels, k, tol) -> float:
    """Average vote value over every k-subset, enumerating the smaller of subset and complement."""
    n = len(w)
    vote_w = onehot[:, :n_labels] * w[:, None]
    vote_c = onehot[:, :n_labels]
    side = min(k, n - k)
    flip = side < k  # enumerate the (n - k)-subsets left out: totals = pool totals - left-out totals
    all_w, all_c = vote_w.sum(axis=0), vote_c.sum(axis=0)
    if side == 0:
        return float(_vote_value(all_w[None, :], all_c[None, :] > 0.5, target, tol)[0])
    total, count = 0.0, 0
    combos = itertools.combinations(range(n), side)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // (side * max(n_labels, 1)))
    while True:
        flat = np.fromiter(
            itertools.chain.from_iterable(itertools.islice(combos, rows_per_chunk)), dtype=np.int64
        )
        if flat.size == 0:
            break
        idx = flat.reshape(-1, side)
        tw, tc = vote_w[idx].sum(axis=1), vote_c[idx].sum(axis=1)  # (subsets, answers)
        if flip:
            tw, tc = all_w - tw, all_c - tc
        total += float(_vote_value(tw, tc > 0.5, target, tol).sum())
        count += idx.shape[0]
    return total / count


def _monte_carlo(onehot, w, target, n_labels, ks, n_draws, tol, rng) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error at each k from ``n_draws`` random permutations (prefixes)."""
    n = len(w)
    vote_w = onehot[:, :n_labels] * w[:, None]
    vote_c = onehot[:, :n_labels]
    chunk = max(1, _CHUNK_ELEMENTS // max(n * max(n_labels, 1), 1))
    sums = np.zeros(len(ks))
    sq = np.zeros(len(ks))
    done = 0
    while done < n_draws:
        m = min(chunk, n_draws - done)
        perm = np.argsort(rng.random((m, n)), axis=1)  # (m, n): a uniform random order per draw
        cum_w = np.cumsum(vote_w[perm], axis=1)[:, ks - 1, :]  # (m, n_k, A): totals of the first k
        cum_c = np.cumsum(vote_c[perm], axis=1)[:, ks - 1, :] > 0
        value = _vote_value(cum_w.reshape(-1, n_labels), cum_c.reshape(-1, n_labels), target, tol).reshape(
            m, len(ks)
        )
        sums += value.sum(axis=0)
        sq += (value**2).sum(axis=0)
        done += m
    mean = sums / n_draws
    var = np.maximum(sq / n_draws - mean**2, 0.0) * n_draws / (n_draws - 1)
    return mean, np.sqrt(var / n_draws)
