r"""Which questions of a model's pool get an adaptive round's samples.

A verified arm's accuracy at n is pass@n averaged over the questions. Far out (n well past the
pools), a question solved several times already contributes about 1 whatever more samples
show; what is uncertain is the chance of the questions solved rarely or never. Kazdan et al.
2025 ("Efficient prediction of pass@k scaling in large language models", arXiv 2510.05197)
spend the samples there: the next sample goes to the question with the fewest successes, and
for a fixed budget the allocation minimizing the variance of the pass@k estimate gives
question i a share proportional to

.. math:: \sqrt{p_i (1 - p_i)^{2k - 1}}

(their Theorem 1). :func:`allocate_blocks` averages :math:`p_i (1 - p_i)^{2k - 1}` over each
question's posterior under the beta-binomial fitted to the model's counts,
:math:`\mathrm{Beta}(a + c_i, b + n_i - c_i)`, before the square root, with ``k`` the pool size
the round's decision asks about. A point estimate would not do far out: at large k every
plugged-in rate but the smallest makes the share vanish, and all samples would go to the one
unsolved question with the largest pool; averaged, the shares fall with each question's
successes first (the fewest successes first, as Kazdan et al. advise) and then with its
pool, so the unsolved questions with the smallest pools come first. Pools never shrink: the shares are water-filled over the current pools.

Only samples already seen decide which question grows, so each question's likelihood stays
that of a pool of its size fixed in advance and the beta-binomial fit of the grown pools is
unbiased (:mod:`fitting.blocks`). Pool sizes are rounded onto a geometric grid of blocks so
that one round needs few profiler calls (questions growing to the same size share one).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
from scipy.special import betaln

from fitting import schema as S
from fitting.betabinom import BetaBinomial
from fitting.importer import read_input
from profiling.tasks import Problem, Task

__all__ = [
    "question_pools",
    "allocate_blocks",
    "samples_to_reach",
    "open_share",
    "QuestionSubset",
    "GRID_RATIO",
]

#: the strategy whose pools an adaptive run grows
POOL = "pool"
#: pool sizes (in blocks) a round grows a question to: a geometric grid of this ratio
GRID_RATIO = 1.25


def question_pools(folder, strategy: str = POOL) -> dict[str, pd.DataFrame]:
    """Model -> its questions' pools (``n``, ``c``: samples and correct ones), indexed by question id.

    Only rows of ``strategy`` count (the grown pools; a run's single-sample strategies beside
    them, such as greedy, are other options and no part of a pool)."""
    samples, counts = read_input(folder)
    samples, counts = (_of_strategy(t, strategy) for t in (samples, counts))
    out: dict[str, pd.DataFrame] = {}
    if samples is not None:
        g = samples.assign(_c=samples[S.CORRECT].astype(float)).groupby([S.MODEL, S.QUESTION_ID])["_c"]
        table = pd.DataFrame({"n": g.size(), "c": g.sum()})
        out.update({m: t.droplevel(0) for m, t in table.groupby(level=0)})
    if counts is not None:
        g = counts.groupby([S.MODEL, S.QUESTION_ID])
        table = pd.DataFrame({"n": g[S.N_SAMPLES].sum(), "c": g[S.N_CORRECT].sum()})
        out.update({m: t.droplevel(0) for m, t in table.groupby(level=0)})
    return out


def _of_strategy(table: pd.DataFrame | None, strategy: str) -> pd.DataFrame | None:
    """The rows of ``strategy`` (a table without a strategy column is taken whole); None when none."""
    if table is None or S.STRATEGY not in table:
        return table
    kept = table[table[S.STRATEGY].astype(str) == strategy]
    return kept if len(kept) else None


def _weights(n: np.ndarray, c: np.ndarray, k: float) -> np.ndarray:
    """Theorem 1's shares, sqrt of p (1-p)^(2k-1) averaged over each question's posterior
    Beta(a + c, b + n - c) (a ratio of Beta functions), scaled to max 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = BetaBinomial().fit(n, c) if c.sum() > 0 and len(n) > 1 else None
    a, b = (fit.params_["a"], fit.params_["b"]) if fit is not None and fit.converged_ else (0.5, 0.5)
    alpha, beta = a + c, b + n - c
    log_w = 0.5 * (betaln(alpha + 1, beta + 2 * max(k, 1.0) - 1) - betaln(alpha, beta))
    return np.exp(log_w - log_w.max())


def samples_to_reach(n, c, size: float, k: float) -> float:
    """Samples the allocation adds before the largest pool holds ``size`` (the pools water-filled
    with Theorem 1's shares at pool size ``k`` until the largest share is ``size``): what
    bringing the model's candidates within the planner's extrapolation limit costs.

    >>> samples_to_reach([8, 8], [0, 8], size=32, k=64)
    24.0
    """
    n, c = np.asarray(n, dtype=float), np.asarray(c, dtype=float)
    w = _weights(n, c, k)
    return float(np.maximum(n, size * w).sum() - n.sum())


def open_share(n, c, k: float, open_) -> float:
    """The share of Theorem 1's weight at pool size ``k`` held by the questions that may still
    grow: near 0 when the questions that decide pass@k there can take no more samples."""
    w = _weights(np.asarray(n, dtype=float), np.asarray(c, dtype=float), k)
    return float(w[np.asarray(open_, bool)].sum() / w.sum())


def _grid(lo: float, hi: float) -> np.ndarray:
    """Block counts from ``lo`` to at least ``hi`` on the geometric grid (integers, increasing)."""
    top = max(hi, lo + 1.0)
    steps = int(np.ceil(np.log(top / max(lo, 1.0)) / np.log(GRID_RATIO))) + 2
    return np.unique(np.ceil(max(lo, 1.0) * GRID_RATIO ** np.arange(steps)).astype(np.int64))


def allocate_blocks(n, c, add: int, block: int, k: float, open_=None) -> np.ndarray:
    """Blocks each question's pool grows to (never fewer than it has), adding at most ``add``
    blocks in all: Theorem 1's shares at pool size ``k``, water-filled over the current pools
    and rounded down onto the grid, then questions raised a grid step at a time (furthest
    below their share first) while the blocks last, and the last blocks one each. ``open_`` (bool per question, default
    all): the questions that may grow (a replayed pool that ran out may not).

    Examples
    --------
    >>> n = np.array([8, 8, 8, 8]); c = np.array([0, 0, 6, 8])
    >>> allocate_blocks(n, c, add=6, block=4, k=64).tolist()  # the unsolved questions grow
    [5, 5, 2, 2]
    """
    n, c = np.asarray(n, dtype=float), np.asarray(c, dtype=float)
    have = np.floor(n / block).astype(np.int64)
    open_ = np.ones(len(n), bool) if open_ is None else np.asarray(open_, bool)
    if add <= 0 or not open_.any():
        return have
    w = np.where(open_, _weights(n, c, k), 0.0)
    total = have[open_].sum() + add
    lo, hi = 0.0, float(total) / max(w.max(), 1e-300)
    for _ in range(100):  # bisection for the water level: sum of max(have, level * w) = total
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.maximum(have, mid * w)[open_].sum() < total else (lo, mid)
    share = np.where(open_, np.maximum(have, lo * w), have)
    stop = have.copy()
    for i in np.flatnonzero(share >= have + 1):
        grid = _grid(have[i], share[i])
        stop[i] = max(have[i], int(grid[grid <= share[i]].max(initial=have[i])))
    left = add - int((stop - have).sum())
    for i in np.argsort(-(share - stop) / np.maximum(share, 1.0), kind="stable"):
        if not open_[i] or share[i] <= stop[i]:
            continue
        step = int(_grid(stop[i], stop[i] + 1)[1]) if stop[i] >= 1 else 1
        if step - stop[i] <= left:
            left -= step - stop[i]
            stop[i] = step
    for i in np.argsort(-(share - stop), kind="stable")[: max(left, 0)]:  # the last blocks, one each
        if open_[i] and share[i] > stop[i]:
            stop[i] += 1
    return stop


class QuestionSubset(Task):
    """``task`` restricted to the questions ``ids`` (the same name, prompts and checks), so a
    profiler call grows only their pools."""

    def __init__(self, task: Task, ids: Iterable[str]) -> None:
        self._task, self._ids = task, frozenset(str(i) for i in ids)
        self.name = task.name
        for attr in ("answer_trigger", "step_delimiter", "supports_direct"):
            setattr(self, attr, getattr(task, attr))

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_task", "_ids"):
            raise AttributeError(name)
        return getattr(self._task, name)

    def problems(
        self, split: str = "eval", per_level: int | None = None, limit: int | None = None
    ) -> Iterator[Problem]:
        for p in self._task.problems(split=split, per_level=per_level, limit=limit):
            if str(p.id) in self._ids:
                yield p

    def format_prompt(self, problem: Problem, cot: bool = True) -> str:
        return self._task.format_prompt(problem, cot)

    def extract_answer(self, completion: str) -> str | None:
        return self._task.extract_answer(completion)

    def is_correct(self, answer: str | None, problem: Problem) -> bool:
        return self._task.is_correct(answer, problem)

    def normalize(self, answer: str) -> str:
        return self._task.normalize(answer)

    def check_steps(self, completion: str, problem: Problem) -> list[bool] | None:
        return self._task.check_steps(completion, problem)
