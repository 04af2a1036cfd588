"""The distribution of one chain's generated length, so that costs use each sample's own length.

Attention FLOPs, KV reads and KV memory grow with a sequence's own length, so a pool whose
samples are half 100 and half 10,000 tokens long costs more than one whose samples all have
the mean 5,050 tokens: the decode attention FLOPs of a chain of ``L`` tokens after a context
``C`` are ``a (C L + L (L + 1) / 2)``, whose expectation needs ``E[L^2]``, not ``E[L]^2``
(:func:`planner.costs.flops.decode_flops`). A parallel pool finishes when its longest sample
does, ``E[max of n lengths]``; its KV peak is set by the lengths still running together.

:class:`TokenLengths` holds the distribution as weighted atoms (lengths and probabilities):

* :meth:`TokenLengths.from_samples` — the measured per-sample lengths themselves (exact);
* :meth:`TokenLengths.from_moments` — sufficient statistics (mean, mean of squares, max): two
  atoms ``{a, max}`` matching all three exactly, so every cost term of degree <= 2 in ``L``
  (linear FLOPs, attention FLOPs, KV reads, KV bytes held) and the longest sample are exact;
  only sliding-window caps and ``E[max of n]`` depend on the two-point shape (an assumption);
* :meth:`TokenLengths.constant` — every chain has the same length (the old scalar ``G``).

Every cost is the atom-weighted expectation of the cost at each atom's length, except the
peak KV (:func:`planner.costs.estimate.kv_peak_bytes`) and the number of decode steps (the
longest chain), which use :meth:`survival` and :meth:`expected_max`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

__all__ = ["TokenLengths", "expected_max_many", "expected_max_flat"]


@dataclass(frozen=True, eq=False)
class TokenLengths:
    """Generated tokens of one chain as weighted atoms (module docstring).

    Attributes
    ----------
    values : distinct lengths, ascending (tokens; fractional only for :meth:`from_moments`).
    weights : their probabilities (sum to 1).
    count : samples behind the distribution (None when unknown).
    kind : ``"samples"``, ``"moments"`` or ``"constant"``.

    Examples
    --------
    >>> d = TokenLengths.from_samples([100, 10_000])
    >>> d.mean, d.mean_sq, d.max
    (5050.0, 50005000.0, 10000.0)
    >>> d.expected_max(2)  # a pool of both samples waits for the long one
    10000.0
    """

    values: np.ndarray
    weights: np.ndarray
    count: int | None = None
    kind: str = "samples"

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=float)
        w = np.asarray(self.weights, dtype=float)
        if v.ndim != 1 or v.shape != w.shape or v.size == 0:
            raise ValueError("TokenLengths needs as many weights as lengths, and at least one")
        if not (np.all(np.isfinite(v)) and np.all(v >= 0)):
            raise ValueError("token lengths must be finite and >= 0")
        if np.any(w < 0) or not math.isclose(float(w.sum()), 1.0, rel_tol=1e-9):
            raise ValueError("TokenLengths weights must be >= 0 and sum to 1")
        if np.any(np.diff(v) <= 0):
            raise ValueError("TokenLengths values must be distinct and ascending")
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "weights", w)

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def constant(cls, tokens: float) -> TokenLengths:
        """Every chain has ``tokens`` tokens."""
        return cls(np.array([float(tokens)]), np.array([1.0]), None, "constant")

    @classmethod
    def from_samples(cls, lengths: Sequence[float] | np.ndarray) -> TokenLengths:
        """The empirical distribution of measured per-sample generated token counts."""
        x = np.asarray(lengths, dtype=float).ravel()
        if x.size == 0:
            raise ValueError("TokenLengths.from_samples needs at least one length")
        if not (np.all(np.isfinite(x)) and np.all(x >= 0)):
            bad = x[~(np.isfinite(x) & (x >= 0))][0]
            raise ValueError(f"token lengths must be finite numbers >= 0, got {bad!r}")
        values, counts = np.unique(x, return_counts=True)
        return cls(values, counts / x.size, int(x.size), "samples")

    @classmethod
    def from_moments(
        cls, mean: float, mean_sq: float, max: float, *, count: int | None = None
    ) -> TokenLengths:
        """Two atoms ``{a, max}`` with the given mean, mean of squares and maximum (exact for
        every cost of degree <= 2 in the length; module docstring).

        With ``var = mean_sq - mean^2``: ``a = mean - var / (max - mean)`` at probability
        ``(max - mean)^2 / ((max - mean)^2 + var)``. Lengths >= 0 need
        ``var <= mean (max - mean)`` (Bhatia and Davis 2000), which any real sample meets.

        Examples
        --------
        >>> d = TokenLengths.from_moments(5050.0, 50_005_000.0, 10_000.0)
        >>> [float(v) for v in d.values], [float(w) for w in d.weights]
        ([100.0, 10000.0], [0.5, 0.5])
        """
        mean, mean_sq, top = float(mean), float(mean_sq), float(max)
        if not (math.isfinite(mean) and math.isfinite(mean_sq) and math.isfinite(top)) or mean < 0:
            raise ValueError(f"length moments must be finite, mean >= 0; got mean={mean}, mean_sq={mean_sq}")
        var = mean_sq - mean * mean
        tol = 1e-9 * _larger(mean_sq, 1.0)
        if var < -tol:
            raise ValueError(f"mean of squares {mean_sq:g} is below mean^2 {mean * mean:g}")
        if top < mean - tol:
            raise ValueError(f"max length {top:g} is below the mean {mean:g}")
        if var <= tol or top - mean <= tol:
            if var > tol:
                raise ValueError(
                    f"max length {top:g} equals the mean but the lengths vary (mean_sq {mean_sq:g})"
                )
            out = cls.constant(mean)
            return cls(out.values, out.weights, count, "moments")
        if var > mean * (top - mean) * (1 + 1e-9):
            raise ValueError(
                f"lengths >= 0 with mean {mean:g} and max {top:g} have variance <= {mean * (top - mean):g}, got {var:g}"
            )
        gap = top - mean
        low = _larger(mean - var / gap, 0.0)
        p_top = var / (gap * gap + var)
        if low >= top:  # pragma: no cover - excluded by the checks above
            return cls(np.array([top]), np.array([1.0]), count, "moments")
        return cls(np.array([low, top]), np.array([1.0 - p_top, p_top]), count, "moments")

    @classmethod
    def coerce(cls, lengths: float | Sequence[float] | np.ndarray | TokenLengths) -> TokenLengths:
        """A :class:`TokenLengths` from itself, one number (constant) or a sequence of samples."""
        if isinstance(lengths, TokenLengths):
            return lengths
        if np.ndim(lengths) == 0:
            return cls.constant(float(lengths))  # type: ignore[arg-type]
        return cls.from_samples(lengths)  # type: ignore[arg-type]

    # ---- statistics ----------------------------------------------------------------------------
    @property
    def mean(self) -> float:
        """``E[L]``, tokens."""
        return float(self.weights @ self.values)

    @property
    def mean_sq(self) -> float:
        """``E[L^2]``, tokens squared."""
        return float(self.weights @ (self.values * self.values))

    @property
    def max(self) -> float:
        """The longest chain, tokens."""
        return float(self.values[-1])

    @property
    def is_constant(self) -> bool:
        """True when every chain has the same length."""
        return self.values.size == 1

    def survival(self) -> np.ndarray:
        """``P(L >= v)`` at each atom ``v`` (the share of chains still running at that length)."""
        before = np.concatenate([[0.0], np.cumsum(self.weights)[:-1]])
        return np.clip(1.0 - before, 0.0, 1.0)

    def expected_max(self, n: int) -> float:
        """``E[max of n chains' lengths]``: without replacement from the samples when they are
        the measured ones and ``n <= count`` (a pool of all of them waits for the longest), else
        from ``n`` independent draws of the distribution.

        Examples
        --------
        >>> TokenLengths.from_samples([100, 10_000]).expected_max(1)
        5050.0
        """
        return float(expected_max_many([self], n)[0])

    def scaled(self, factor: float) -> TokenLengths:
        """Every length multiplied by ``factor`` (> 0), same weights, count and kind.

        Examples
        --------
        >>> TokenLengths.from_samples([100, 300]).scaled(0.5).mean
        100.0
        """
        factor = float(factor)
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"scale factor must be a positive number, got {factor!r}")
        return TokenLengths(self.values * factor, self.weights, self.count, self.kind)

    def describe(self) -> str:
        """Short text, e.g. ``32 samples: mean 5,050, rms 7,071, max 10,000``."""
        if self.is_constant:
            return f"{self.max:,.0f} tokens each"
        rms = math.sqrt(self.mean_sq)
        head = f"{self.count} samples" if self.count else self.kind
        return f"{head}: mean {self.mean:,.0f}, rms {rms:,.0f}, max {self.max:,.0f} tokens"

    def summary(self) -> dict[str, object]:
        """JSON-safe statistics."""
        return {
            "kind": self.kind,
            "count": self.count,
            "mean": self.mean,
            "mean_sq": self.mean_sq,
            "max": self.max,
            "atoms": int(self.values.size),
        }


def expected_max_many(dists: Sequence[TokenLengths], n: int) -> np.ndarray:
    """:meth:`TokenLengths.expected_max` of each distribution in ``dists`` at once (one numpy
    pass over all their atoms): without replacement from the measured samples when
    ``n <= count``, else from ``n`` independent draws.

    Examples
    --------
    >>> expected_max_many([TokenLengths.from_samples([100, 10_000]), TokenLengths.constant(7)], 2).tolist()
    [10000.0, 7.0]
    """
    if not dists:
        return np.zeros(0)
    sizes = np.array([d.values.size for d in dists])
    counts = np.array([d.count if d.kind == "samples" and d.count is not None else 0 for d in dists])
    values = np.concatenate([d.values for d in dists])
    weights = np.concatenate([d.weights for d in dists])
    return expected_max_flat(values, weights, sizes, counts, n)


def expected_max_flat(values, weights, sizes, counts, n: int) -> np.ndarray:
    """:func:`expected_max_many` on distributions given flat: their atoms' ``values`` and
    ``weights`` one after another (ascending within each), ``sizes`` atoms each, ``counts``
    measured samples each (0: not samples, draw independently)."""
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    n = int(n)
    sizes = np.asarray(sizes)
    if not sizes.size:
        return np.zeros(0)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    if n == 1:
        return np.add.reduceat(weights * values, starts)
    cum = np.cumsum(weights)
    cum = cum - np.repeat(cum[starts] - weights[starts], sizes)  # restart at each distribution
    counts = np.asarray(counts)
    m = np.repeat(counts, sizes).astype(float)
    below = np.rint(cum * m)  # samples <= each atom
    # without replacement: P(max <= v_j) = C(below_j, n) / C(m, n)
    log_c = _log_comb(below, n) - _log_comb(np.maximum(m, n), n)
    hyper = np.where(below >= n, np.exp(np.minimum(log_c, 0.0)), 0.0)
    cdf = np.where(np.repeat(counts >= n, sizes), hyper, np.clip(cum, 0.0, 1.0) ** n)
    cdf[starts + sizes - 1] = 1.0
    prev = np.concatenate([[0.0], cdf[:-1]])
    prev[starts] = 0.0
    return np.add.reduceat((cdf - prev) * values, starts)


def _larger(a: float, b: float) -> float:
    return a if a >= b else b


def _log_comb(n: np.ndarray, k: int) -> np.ndarray:
    """``log C(n, k)`` elementwise (``-inf`` where ``n < k``)."""
    n = np.asarray(n, dtype=float)
    ok = n >= k
    out = np.full(n.shape, -np.inf)
    out[ok] = gammaln(n[ok] + 1) - gammaln(k + 1) - gammaln(n[ok] - k + 1)
    return out
