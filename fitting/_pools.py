"""Pool sizes: the k grid of a curve and the uneven-pool policy, with the notes they leave.

* :func:`k_grid`: every k up to :data:`DENSE_K_MAX`, then :data:`K_PER_DECADE` log-spaced k
  per decade, so pools of any size (millions of samples) give curves of a few hundred points;
* the uneven-pool policies (:data:`POOL_POLICIES`): "common" stops a group's curves at its
  smallest pool, "available" runs to the largest and averages each k over the questions whose
  pool is at least k;
* :class:`DataWarning`: what a curves call left out (no answers) or cut short (uneven pools),
  said once per kind and call.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import schema as S
from .estimators import pass_at_k

__all__ = ["DataWarning", "k_grid", "pass_at_k_table", "POOL_POLICIES", "DENSE_K_MAX", "K_PER_DECADE"]

#: uneven pools: "common" = every k <= the smallest pool, all questions at every k;
#: "available" = every k <= the largest pool, each k averaged over the questions with n_i >= k
POOL_POLICIES = ("common", "available")
#: every k up to this is on a curve; beyond it k is log-spaced (:func:`k_grid`)
DENSE_K_MAX = 512
#: log-spaced k values per decade beyond :data:`DENSE_K_MAX`
K_PER_DECADE = 32


class DataWarning(UserWarning):
    """The data lack what an estimator needs (answers, rewards) or a curve was cut short by an
    uneven pool: the curve was not produced, or is shorter, and the message says why."""


def k_grid(k_max: int, dense: int = DENSE_K_MAX, per_decade: int = K_PER_DECADE) -> np.ndarray:
    """The k values of a curve: every k up to ``dense``, then ``per_decade`` log-spaced
    integers per decade up to ``k_max`` (always included).

    Examples
    --------
    >>> k_grid(5).tolist()
    [1, 2, 3, 4, 5]
    >>> k_grid(10_000, dense=4, per_decade=2).tolist()
    [1, 2, 3, 4, 12, 37, 114, 350, 1069, 3270, 10000]
    """
    k_max = int(k_max)
    if k_max < 1:
        raise ValueError(f"k_grid: k_max must be >= 1, got {k_max}")
    low = np.arange(1, min(dense, k_max) + 1)
    if k_max <= dense:
        return low
    n_log = int(np.ceil(per_decade * np.log10(k_max / dense)))
    high = np.round(np.logspace(np.log10(dense), np.log10(k_max), n_log + 1)).astype(np.int64)
    return np.unique(np.concatenate([low, high[high > dense], [k_max]]))


def pass_at_k_table(n, c, ks) -> np.ndarray:
    """Unbiased pass@k of each question (rows) at each k (columns); NaN where k > n_i.

    Questions are grouped by pool size, so uneven pools cost one :func:`pass_at_k` call per
    distinct size.

    Examples
    --------
    >>> pass_at_k_table([2, 4], [1, 1], [1, 2, 3]).round(3).tolist()
    [[0.5, 1.0, nan], [0.25, 0.5, 0.75]]
    """
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    ks = np.asarray(ks, dtype=np.int64)
    out = np.full((len(n), len(ks)), np.nan)
    for size in np.unique(n):
        rows = np.flatnonzero(n == size)
        cols = np.flatnonzero(ks <= size)
        if cols.size:
            out[np.ix_(rows, cols)] = pass_at_k(n[rows], c[rows], ks[cols]).reshape(len(rows), len(cols))
    return out


class Notes:
    """What a curves call left out or cut short, emitted as one :class:`DataWarning` per kind."""

    def __init__(self) -> None:
        self.no_answers: list[str] = []
        self.cut: list[str] = []
        self.thin: list[str] = []

    def emit(self, n_groups: int, stacklevel: int = 3) -> None:
        if self.no_answers:
            where = "this data" if len(self.no_answers) == n_groups else _few(self.no_answers)
            warnings.warn(
                f"majority@k and weighted@k need extracted answers; none in {where}", DataWarning, stacklevel
            )
        if self.cut:
            warnings.warn(
                f"uneven pools: pool curves stop at the smallest pool of their group ({_few(self.cut)}); "
                "pool_policy='available' (ttc fit --pools available) extends them with the questions "
                "whose pools are large enough",
                DataWarning,
                stacklevel,
            )
        if self.thin:
            warnings.warn(
                f"uneven pools: beyond the smallest pool, fewer questions back each k ({_few(self.thin)}); "
                "see n_questions per k",
                DataWarning,
                stacklevel,
            )


def _few(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


def label(base: dict) -> str:
    parts = [str(base[S.MODEL]), str(base[S.STRATEGY])]
    if str(base[S.DIFFICULTY]) != "all":
        parts.append(f"difficulty {base[S.DIFFICULTY]}")
    return "/".join(parts)


def pool_ks(sizes: np.ndarray, policy: str, base: dict, notes: Notes) -> np.ndarray:
    """The k grid of a pool group under the uneven-pool policy (notes what was cut or thinned)."""
    n_min, n_max = int(sizes.min()), int(sizes.max())
    if n_min < n_max:
        larger = int(np.count_nonzero(sizes > n_min))
        what = f"{label(base)}: pools of {n_min}-{n_max} samples"
        if policy == "common":
            notes.cut.append(f"{what}, cut at k = {n_min}; {larger} of {len(sizes)} questions have more")
        else:
            notes.thin.append(f"{what}, k > {n_min} backed by {larger} of {len(sizes)} questions or fewer")
    return k_grid(n_min if policy == "common" else n_max)
