"""Log-space binomial coefficients and input checks shared by the all-k estimators."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.special import gammaln

LN2 = float(np.log(2.0))


def log_comb(n, k) -> np.ndarray:
    """:math:`\\log \\binom{n}{k}` elementwise (broadcast), ``-inf`` where ``k < 0`` or ``k > n``."""
    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    ok = (k >= 0) & (k <= n)
    kk = np.where(ok, k, 0.0)
    nn = np.where(ok, n, 0.0)
    with np.errstate(invalid="ignore"):
        out = gammaln(nn + 1.0) - gammaln(kk + 1.0) - gammaln(nn - kk + 1.0)
    return np.where(ok, out, -np.inf)


def comb_ratio(m, n, k) -> np.ndarray:
    """:math:`\\binom{m}{k} / \\binom{n}{k}` elementwise for ``m <= n`` (0 where ``m < k``).

    The probability that a uniformly random k-subset of n items falls inside a given
    set of m items; computed in log space so it never overflows.
    """
    m = np.asarray(m, dtype=float)
    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    inside = m >= k
    mm = np.where(inside, m, k)
    with np.errstate(invalid="ignore"):
        log_r = gammaln(mm + 1.0) - gammaln(mm - k + 1.0) - gammaln(n + 1.0) + gammaln(n - k + 1.0)
    return np.where(inside, np.exp(np.minimum(log_r, 0.0)), 0.0)


@lru_cache(maxsize=512)
def gauss_legendre_01(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]: exact for polynomials of degree <= 2 n - 1."""
    t, w = np.polynomial.legendre.leggauss(n_nodes)
    return (t + 1.0) / 2.0, w / 2.0


def check_k(k, n: int, where: str) -> tuple[np.ndarray, bool]:
    """``k`` as an int64 array and whether it was a scalar; ValueError unless 1 <= k <= n."""
    arr = np.asarray(k)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{where}: k must be an integer or an array of integers, got {k!r}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 1 or arr.max() > n):
        bad = arr[(arr < 1) | (arr > n)].ravel()[0]
        raise ValueError(f"{where}: k must be in [1, n] = [1, {n}] (the pool size), got k = {bad}")
    return arr, arr.ndim == 0


def is_missing(answer) -> bool:
    """True for an abstention: None, pandas NA or a float NaN."""
    return answer is None or answer is pd.NA or (isinstance(answer, float) and answer != answer)
