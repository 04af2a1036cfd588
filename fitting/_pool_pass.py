"""The pass@K of a pool of K samples per question that holds the observed ones: how every
population model of :mod:`fitting.coverage` and :mod:`fitting.population` joins its forecast
to the measured pass@k.

Why this construction. Inside a question's pool the measured pass@k is the unbiased estimate
of Chen et al. (2021): the chance that a random k-subset of the pool holds a correct sample.
At k = n that is 1 if the pool holds one, else 0. The posterior mean of the question's TRUE
pass@k, 1 - E[(1 - p)^k | c of n], is another estimate of the same quantity, and the two differ
where they meet (a question solved once in 100 samples: 1 measured, about 0.6 posterior), so a
forecast that switches from one to the other right past the pool jumps, down as often as up.
Here the forecast beyond the pool conditions on what was measured: the K samples are the n
observed ones and K - n fresh ones, so a solved question counts 1 and an unsolved one its
posterior chance to be solved by the K - n fresh samples. That is the expected value of what K
samples per question would measure given the data (the quantity the backtest of
:mod:`fitting.forecast` scores), equal to the measured pass@k inside the pools, continuous at
their ends and non-decreasing in K, with no envelope or clipping; far beyond the pools it
meets the posterior mean of the true pass@K (the K - n and K fresh samples differ little).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from .estimators import pass_at_k

__all__ = ["count_groups", "pool_pass", "smallest_k"]


def count_groups(n, c, k):
    """The distinct (n, c, K) of the questions and how many questions share each."""
    groups = pd.DataFrame({"n": n, "c": c, "k": k}).value_counts().reset_index()
    return tuple(groups[col].to_numpy(float) for col in ("n", "c", "k", "count"))


def pool_pass(n, c, k, unsolved_miss: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    r"""pass@K of each question's pool of K samples, given its measured ``c`` correct of ``n``
    (arrays of one length; the result has a leading axis per row of ``unsolved_miss``).

    Inside the pool (K <= n) it is the unbiased pass@K (Chen et al. 2021): the chance that a
    random K-subset of the pool holds a correct sample (the largest whole K is used). Beyond
    it, the pool is the ``n`` observed samples and K - n fresh ones: 1 if a correct sample
    was already seen, else :math:`1 - E[(1 - p)^{K - n} \mid 0 \text{ of } n]`, which
    ``unsolved_miss(K - n)`` gives (a model's posterior; rows for grid points or draws).
    At K = n both sides are 1 when c > 0 and 0 when c = 0, and each is non-decreasing in K:
    the measured and forecast parts join continuously and never fall.
    """
    fresh = np.maximum(k - n, 0.0)
    q = 1.0 - np.where(c > 0, 0.0, np.atleast_2d(unsolved_miss(fresh)))
    covered = np.flatnonzero(k <= n)
    if len(covered):
        q[:, covered] = [pass_at_k(int(n[i]), int(c[i]), int(k[i])) for i in covered]
    return q


def smallest_k(curve: Callable[[float], float], target: float, k_cap: float) -> float:
    """The smallest whole K in [1, ``k_cap``] at which the non-decreasing ``curve`` reaches
    ``target`` (inf where it does not), by bisection over whole numbers."""
    hi = math.floor(k_cap)
    if not curve(hi) >= target:
        return math.inf
    lo = 0  # pass@0 = 0 < target
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if curve(mid) < target else (lo, mid)
    return float(hi)
