"""Exact majority@k for every k at once, from the answer counts of one pool.

Setting. A pool of n samples holds the correct answer ``c0`` times, wrong answer j
``c_j`` times and ``a`` abstentions (no answer). A k-subset is drawn uniformly without
replacement; the answer drawn most often wins, ties among the leading answers are broken
uniformly at random, abstentions never vote, and a subset of abstentions only is wrong.

Counting. If the correct answer is drawn x >= 1 times, it wins when no rival is drawn
more than x times, and with probability 1 / (1 + t) when t rivals are drawn exactly x
times. Write 1 / (1 + t) = \\int_0^1 u^t du and mark a rival's x-th draw with u: rival j
contributes the truncated binomial polynomial

.. math:: T_{j,x}(z, u) = \\sum_{i < x} \\binom{c_j}{i} z^i + u \\binom{c_j}{x} z^x,

abstentions contribute :math:`(1 + z)^a`, and

.. math:: \\mathrm{maj@}k = \\sum_{x \\ge 1} \\frac{\\binom{c_0}{x}}{\\binom{n}{k}}
          \\int_0^1 [z^{k-x}] \\Big( (1+z)^a \\prod_j T_{j,x}(z, u) \\Big) du .

The coefficient of :math:`z^{k-x}` counts the winning (weighted) subsets for every k in one
product. The integrand is a polynomial in u of degree :math:`m_x = \\#\\{j : c_j \\ge x\\}`, so
Gauss-Legendre with :math:`\\lceil (m_x + 1)/2 \\rceil` nodes integrates it exactly.

Batching. One row per (x, node), rows ordered by x, so "rows with x > i" is a suffix:
multiplying every row by rival j's truncated polynomial is one scaled, shifted add per
power i <= min(c_j, X) over that suffix (plus the u-marked term on the block x = i).
Rivals drawn once at most (count 1) are folded into the initial rows in closed form,
abstentions are applied at the end to the u-integrated rows with one Toeplitz matrix
product, and the draws x above every rival's count (the correct answer wins outright)
are a hypergeometric tail. Every term is positive, so float64 keeps full relative
precision; a power-of-two scale is tracked separately so pools up to
:data:`MAX_EXACT_POOL` samples neither overflow nor underflow.
"""

from __future__ import annotations

import numpy as np

from ._combin import LN2, gauss_legendre_01, log_comb

#: Largest pool for which the exact majority estimator is guaranteed free of overflow and
#: underflow (stored values are kept at most 2**500; true counts lie in [1, 2**n]).
MAX_EXACT_POOL = 1500

_TOP_LOG2 = 500


def _renormalize(e: np.ndarray, log2_scale: float) -> tuple[np.ndarray, float]:
    """Scale ``e`` by a power of two (exact) so its maximum is about 2**500."""
    top = float(e.max()) if e.size else 0.0
    if top <= 0.0:
        return e, log2_scale
    shift = int(np.frexp(top)[1]) - _TOP_LOG2
    if shift:
        np.ldexp(e, -shift, out=e)
    return e, log2_scale + shift


def _scaled(log_values: np.ndarray) -> tuple[np.ndarray, int]:
    """``exp(log_values)`` divided by a power of two ``2**e`` that keeps it below 2**500."""
    finite = log_values[np.isfinite(log_values)]
    top = float(finite.max()) / LN2 if finite.size else 0.0
    e = max(0, int(np.ceil(top)) - _TOP_LOG2)
    return np.exp(log_values - e * LN2), e


def majority_all_k(c0: int, rivals, n_abstain: int) -> np.ndarray:
    """Exact majority-vote accuracy for k = 1..n from answer counts.

    Parameters
    ----------
    c0 : int
        How often the correct answer occurs in the pool.
    rivals : array of int
        How often each wrong answer occurs (zeros are ignored).
    n_abstain : int
        Samples without an answer.

    Returns
    -------
    ndarray of shape (n,)
        Entry k - 1 is the probability that majority vote over a uniformly random
        k-subset (without replacement, ties broken uniformly) is correct.
    """
    rivals = np.sort(np.asarray(rivals, dtype=np.int64))
    rivals = rivals[rivals > 0]
    c0, a = int(c0), int(n_abstain)
    n = c0 + int(rivals.sum()) + a
    out = np.zeros(n)
    if c0 == 0 or n == 0:
        return out
    if n > MAX_EXACT_POOL:
        raise ValueError(
            f"exact majority@k supports pools of up to {MAX_EXACT_POOL} samples, got {n}; "
            "use fitting.majority_estimate (exact where affordable, else Monte Carlo) for larger pools"
        )
    ks = np.arange(1, n + 1)
    log_cn = log_comb(n, ks)
    m_max = int(rivals[-1]) if rivals.size else 0
    x_max = min(c0, m_max)
    if c0 > m_max:  # x > every rival count: the correct answer wins outright (hypergeometric tail)
        xs = np.arange(m_max + 1, c0 + 1)
        log_t = log_comb(c0, xs)[:, None] + log_comb(n - c0, ks[None, :] - xs[:, None]) - log_cn[None, :]
        out += np.exp(log_t).sum(axis=0)
    if x_max == 0:
        return out
    out += _contested(c0, rivals, a, n, x_max, ks, log_cn)
    return np.minimum(out, 1.0)


def _contested(c0, rivals, a, n, x_max, ks, log_cn) -> np.ndarray:
    """The part of majority@k from draws x = 1..x_max of the correct answer (rivals can tie)."""
    xs = np.arange(1, x_max + 1)
    n_ge = rivals.size - np.searchsorted(rivals, xs, side="left")  # m_x: rivals that can reach x
    n_nodes = (n_ge + 2) // 2  # ceil((m_x + 1) / 2) Gauss-Legendre nodes per x
    off = np.concatenate(([0], np.cumsum(n_nodes)))  # block of x: rows off[x-1]:off[x]
    n_rows = int(off[-1])
    u = np.empty(n_rows)
    w = np.empty(n_rows)
    for x in range(1, x_max + 1):
        u[off[x - 1] : off[x]], w[off[x - 1] : off[x]] = gauss_legendre_01(int(n_nodes[x - 1]))

    singles = int(np.count_nonzero(rivals == 1))
    others = rivals[rivals >= 2]
    width = singles + int(np.minimum(others, x_max).sum()) + 1
    e = np.zeros((n_rows, width))
    # Rivals seen once at most: (1 + z)^s for rows x >= 2, (1 + u z)^s for rows x = 1.
    i = np.arange(singles + 1)
    log_b = log_comb(singles, i)
    with np.errstate(divide="ignore"):
        log_rows = np.where(np.arange(n_rows)[:, None] < off[1], np.log(u)[:, None] * i[None, :], 0.0)
    e[:, : singles + 1], e2 = _scaled(log_b[None, :] + log_rows)
    log2_scale = float(e2)
    degree = singles

    for c in others:  # ascending counts keep the running degree small
        top = min(int(c), x_max)
        kern, ek = _scaled(log_comb(int(c), np.arange(top + 1)))
        new = np.zeros_like(e)
        d1 = degree + 1
        src = e[:, :d1]
        for p in range(top + 1):
            if p < x_max:  # rows with x > p: the plain term C(c, p) z^p
                s = off[p]
                new[s:, p : p + d1] += kern[p] * src[s:]
            if p >= 1:  # rows with x = p: the tie term u C(c, p) z^p
                lo, hi = off[p - 1], off[p]
                new[lo:hi, p : p + d1] += (kern[p] * u[lo:hi])[:, None] * src[lo:hi]
        e, log2_scale = _renormalize(new, log2_scale + ek)
        degree += top

    # Integrate over u (weights), one row per x, then multiply by (1 + z)^a.
    r = np.add.reduceat(e * w[:, None], off[:-1], axis=0)  # (x_max, width)
    if a:
        b, eb = _scaled(log_comb(a, np.arange(a + 1)))
        padded = np.concatenate((np.zeros(width - 1), b, np.zeros(width - 1)))
        toe = np.lib.stride_tricks.sliding_window_view(padded, width + a)[::-1]  # toe[i, j] = b[j - i]
        r = r @ toe
        log2_scale += eb
    # Gather G[x, k - x] and combine with C(c0, x) / C(n, k) in log space.
    s = ks[None, :] - xs[:, None]
    valid = (s >= 0) & (s < r.shape[1])
    g = np.where(valid, np.take_along_axis(r, np.clip(s, 0, r.shape[1] - 1), axis=1), 0.0)
    with np.errstate(divide="ignore"):
        log_terms = np.log(g) + log_comb(c0, xs)[:, None] - log_cn[None, :] + log2_scale * LN2
    return np.exp(log_terms).sum(axis=0)


#: ``majority_auto`` runs the exact method when its work estimate is at most this (about a
#: second on one core of the project's 2-core machine), else Monte Carlo.
EXACT_WORK_LIMIT = 2e8


def exact_work(c0: int, rivals, n_abstain: int) -> float:
    """A work estimate of :func:`majority_all_k` (rows x width x multiply-adds, ~1-7 ns each).

    Measured on the project's 2-core machine: 4e6 took 0.04 s, 2.7e8 1.5 s, 1.5e9 10 s.
    """
    r = np.sort(np.asarray(rivals, dtype=np.int64))
    r = r[r > 0]
    x_max = min(int(c0), int(r[-1]) if r.size else 0)
    if x_max == 0:
        return 0.0
    xs = np.arange(1, x_max + 1)
    rows = float(((r.size - np.searchsorted(r, xs, side="left") + 2) // 2).sum())
    others = np.minimum(r[r >= 2], x_max)
    width = float(np.count_nonzero(r == 1) + others.sum() + 1)
    return rows * width * float((others + 1).sum())


def majority_monte_carlo(
    c0: int, rivals, n_abstain: int, ks, n_draws: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Majority-vote accuracy at each k by seeded Monte Carlo: mean and standard error.

    Each draw is the answer counts of a uniformly random k-subset (multivariate
    hypergeometric, without replacement, drawn directly from the counts); the value of a
    draw is its exact expected correctness under uniform tie-breaking (1 / number tied when
    the correct answer is among the leaders), so the mean is an unbiased estimate of
    majority@k with no pool-size limit.
    """
    rivals = np.asarray(rivals, dtype=np.int64)
    rivals = rivals[rivals > 0]
    colors = np.concatenate(([int(c0)], rivals, [int(n_abstain)]))
    ks = np.asarray(ks, dtype=np.int64)
    mean = np.zeros(len(ks))
    se = np.zeros(len(ks))
    if c0 == 0:
        return mean, se
    for j, k in enumerate(ks):
        draw = rng.multivariate_hypergeometric(colors, int(k), size=n_draws)  # (n_draws, answers + 1)
        x = draw[:, 0]
        top = draw[:, 1:-1].max(axis=1, initial=0)
        ties = (draw[:, 1:-1] == x[:, None]).sum(axis=1)
        value = np.where(x > top, 1.0, np.where((x == top) & (x > 0), 1.0 / (1.0 + ties), 0.0))
        mean[j] = value.mean()
        se[j] = value.std(ddof=1) / np.sqrt(n_draws)
    return mean, se
