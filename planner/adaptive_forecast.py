r"""Forecast-targeted adaptive profiling: spend a sample budget where it narrows pass@K.

``ttc profile ... --adaptive --forecast-at K --budget-samples N`` runs rounds into one run
folder, like the planning mode of :mod:`planner.adaptive_profiling` (same ``adaptive.json``
state written before each round, same resume, the rounds and why it stopped in ``run.json``),
but each round grows the pools of single *questions*, not of whole models:

1. **seed round**: every question of every model gets the same whole number of blocks, about
   1/:data:`SEED_SHARE` of the budget (at least one block);
2. **allocate**: each model gets an equal share of the budget (every model has the same
   questions, so its mean samples per question equal a uniform run's); each round spends about
   1/:data:`ROUNDS` of that share in blocks, given by :func:`allocate` to the questions whose
   next block is expected to narrow the model's pass@K interval most;
3. **stop** when every model's share is spent, when no question's next block would narrow the
   interval (every one solved far beyond need, or its recorded pool used up), or after
   ``max_rounds`` rounds.

**The rule.** The interval of :meth:`fitting.coverage.BetaBinomialPosterior.forecast` is, per
posterior grid point, a normal over questions whose variance is
:math:`\sum_i \mathrm{Var}[(1 - p_i)^K \mid c_i \text{ of } n_i] / Q^2`. A block of ``b`` more
samples of question i is worth the expected drop of its term, which is the variance of its
posterior mean over the block's outcome y (beta-binomial predictive):

.. math:: g_i = \mathrm{Var}_y\, E[(1 - p_i)^K \mid c_i + y \text{ of } n_i + b],

with :math:`p_i \sim \mathrm{Beta}(a + c_i, b_0 + n_i - c_i)` and (a, b0) the posterior means
of the model's fit (a plug-in). Blocks go to the largest gains; within a round a question's
j-th extra block is scored as if the earlier ones failed (the likeliest outcome for the
questions that matter). This is Kazdan et al. (2025, arXiv 2510.05197) made concrete for the
forecast: they give each next sample to the question with the fewest successes, and their
Theorem 1 allocates samples in proportion to :math:`\sqrt{p(1-p)^{2k-1}}` for known rates,
which vanishes for any rate well above 1/k. The gain behaves the same way: for K far beyond
the pools a solved question's :math:`(1 - p)^K` is near 0 with or without more samples (gain
~0), so the blocks go to the unsolved questions, the least-sampled first; for K near the pools
the solved-once questions count too. With no success in a model's data there is no fit and
the rule is fewest successes, then fewest samples, first. The plug-in ignores how more data
also narrow the posterior of (a, b) itself; that part is shared by all questions.

**Why the estimators stay valid on these pools.** Which question gets the next block is a
function of the counts already seen (and of a seed), never of the rates. Question i's samples
are independent Bernoulli(p_i) draws, so the probability of the whole record (every block's
outcome and every allocation decision) factors as
:math:`\prod_i p_i^{c_i}(1 - p_i)^{n_i - c_i} \times \prod_t P(\text{decision}_t \mid
\text{data before } t)`; the second factor does not involve any p_i. The likelihood of
(a, b) is therefore :math:`\prod_i B(a + c_i, b + n_i - c_i) / B(a, b)` times a constant: that
of fixed pools of the final sizes (the likelihood principle). The beta-binomial fit, its
posterior and the per-question posteriors of the forecast are unchanged; only estimators that
are not likelihood-based (a per-k average over the questions whose pool reaches k) would be
biased. ``tests/planner/test_adaptive_forecast.py`` checks this on known rates.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import betaln, gammaln

from fitting import ConvergenceWarning
from fitting import schema as S
from fitting.counts import counts_from_samples
from fitting.coverage import BetaBinomialPosterior
from fitting.importer import read_input
from profiling.runner import profile as run_profile
from profiling.runner import select_problems
from profiling.storage import read_run, write_run
from profiling.tasks import Problem, Task

from ._adaptive_state import notify, open_state, start_round, write_state
from .adaptive_profiling import spent

__all__ = [
    "ForecastResult",
    "allocate",
    "block_gain",
    "profile_forecast",
    "round_samples",
    "seed_blocks",
    "SEED_SHARE",
    "ROUNDS",
]

#: the seed round spends about 1/SEED_SHARE of the budget, the same blocks for every question
SEED_SHARE = 4
#: each later round spends about 1/ROUNDS of a model's share
ROUNDS = 8
#: most extra blocks one question gets in one round (later rounds may give more)
MAX_BLOCKS_PER_ROUND = 64
_LEVEL = 0.9


@dataclass
class ForecastResult:
    """What a forecast-targeted adaptive run did: rounds, samples spent, why it stopped, and
    each model's pass@K forecast and interval width at the end."""

    out: Path
    rounds: list[dict] = field(default_factory=list)
    samples: int = 0
    stopped: str = ""
    widths: dict[str, float] = field(default_factory=dict)
    estimates: dict[str, float] = field(default_factory=dict)


def population(n: np.ndarray, c: np.ndarray) -> BetaBinomialPosterior | None:
    """The forecast's beta-binomial posterior of a model's counts (None without a fit: fewer
    than 2 questions or no success)."""
    if len(n) < 2 or c.sum() == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BetaBinomialPosterior().fit(n, c)


def block_gain(n, c, k: float, block: int, a: float, b: float) -> np.ndarray:
    """Expected drop of each question's posterior variance of :math:`(1 - p)^K` from ``block``
    more samples (module docstring), with rates ~ Beta(a + c, b + n - c)."""
    alpha = a + np.asarray(c, float)[None, :]
    beta = b + (np.asarray(n, float) - np.asarray(c, float))[None, :]
    y = np.arange(block + 1, dtype=float)[:, None]
    log_pmf = (
        gammaln(block + 1.0)
        - gammaln(y + 1.0)
        - gammaln(block - y + 1.0)
        + betaln(alpha + y, beta + block - y)
        - betaln(alpha, beta)
    )
    after = np.exp(betaln(alpha + y, beta + block - y + k) - betaln(alpha + y, beta + block - y))
    now = np.exp(betaln(alpha, beta + k) - betaln(alpha, beta))[0]
    return np.maximum((np.exp(log_pmf) * after**2).sum(axis=0) - now**2, 0.0)


def allocate(n, c, k: float, block: int, samples: int, limit=None) -> np.ndarray:
    """Extra blocks of ``block`` samples for each question, about ``samples`` in all, where they
    narrow the pass@``k`` interval most (module docstring). ``limit``: each question's largest
    pool (a recorded pool's size; None: no limit). Questions whose gain is 0 get nothing."""
    n, c = np.asarray(n, np.int64), np.asarray(c, np.int64)
    total = int(samples) // block
    limit = np.full(len(n), np.iinfo(np.int64).max) if limit is None else np.asarray(limit, np.int64)
    if total <= 0 or len(n) == 0:
        return np.zeros(len(n), np.int64)
    reps = min(total, MAX_BLOCKS_PER_ROUND)
    extra = np.arange(reps)[:, None] * block  # the j-th extra block, the earlier ones failed
    model = population(n, c)
    if model is None:  # no fit: fewest successes, then fewest samples, first
        gains = 1.0 / ((1.0 + c) * (1.0 + n + extra))
    else:
        a, b0 = model.params_["a"], model.params_["b"]
        gains = np.stack([block_gain(n + e, c, k, block, a, b0) for e in extra[:, 0]])
    gains = np.where(n + extra + block <= limit, gains, 0.0).ravel()
    order = np.argsort(-gains, kind="stable")[:total]
    chosen = order[gains[order] > 0]
    return np.bincount(chosen % len(n), minlength=len(n)).astype(np.int64)


def seed_blocks(share: float, block: int, questions: int) -> int:
    """Blocks per question of the seed round: about 1/:data:`SEED_SHARE` of a model's
    ``share`` of the budget, at least one."""
    return max(1, int(share // (SEED_SHARE * block * max(questions, 1))))


def round_samples(share: float, left: float, block: int) -> int:
    """Samples a later round gives a model: about 1/:data:`ROUNDS` of its ``share``, at least
    one block, at most what is ``left``."""
    return int(min(left, max(block, share / ROUNDS)))


class _Subset(Task):
    """``task`` restricted to the questions ``ids`` (the rest of it unchanged)."""

    def __init__(self, task: Task, ids: Sequence[str]) -> None:
        self.base, self.ids = task, frozenset(ids)
        self.name, self.answer_trigger = task.name, task.answer_trigger
        self.step_delimiter, self.supports_direct = task.step_delimiter, task.supports_direct

    def problems(self, split="eval", per_level=None, limit=None) -> Iterator[Problem]:
        chosen = self.base.problems(split=split, per_level=per_level, limit=limit)
        return (p for p in chosen if p.id in self.ids)

    def format_prompt(self, problem, cot=True):
        return self.base.format_prompt(problem, cot)

    def extract_answer(self, completion):
        return self.base.extract_answer(completion)

    def is_correct(self, answer, problem):
        return self.base.is_correct(answer, problem)

    def normalize(self, answer):
        return self.base.normalize(answer)

    def check_steps(self, completion, problem):
        return self.base.check_steps(completion, problem)

    def __getattr__(self, name: str) -> Any:
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


def profile_forecast(
    models: Sequence[str],
    task: Task,
    out: str | Path,
    *,
    forecast_at: int,
    budget_samples: int,
    block: int = 4,
    pool_knobs: str = "",
    max_rounds: int = 50,
    seed: int = 0,
    runner: Callable[..., Any] = run_profile,
    runner_kwargs: dict | None = None,
    on_round: Callable[[dict], Any] | None = None,
) -> ForecastResult:
    """Profile ``models`` on ``task`` into ``out``, growing the pools of the questions that
    narrow each model's pass@``forecast_at`` interval most (module docstring). ``runner_kwargs``
    go to :func:`profiling.runner.profile`; ``pool_knobs`` (``",temperature=0.7"``) are the
    pool's other knobs."""
    for name, value in (("--forecast-at", forecast_at), ("--budget-samples", budget_samples)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if block < 1:
        raise ValueError(f"--block must be an integer >= 1, got {block!r}")
    out, kwargs = Path(out), dict(runner_kwargs or {})
    chosen = select_problems(
        task,
        per_level=kwargs.get("per_level"),
        limit=kwargs.get("limit"),
        split=kwargs.get("split", "eval"),
        shard=kwargs.get("shard", (0, 1)),
    )
    ids = [p.id for p in chosen]
    settings = {
        "goal": "forecast",
        "forecast_at": int(forecast_at),
        "models": list(models),
        "block": int(block),
        "pool_knobs": pool_knobs,
        "budget_samples": int(budget_samples),
        "seed": int(seed),
    }
    state = open_state(out, settings, may_change=("budget_samples",))
    rounds = state["rounds"]
    run = _Rounds(out, task, ids, block, pool_knobs, seed, runner, kwargs)
    for i, r in enumerate(rounds):  # finish a round a killed run left unfinished
        if not r.get("done"):
            run.execute(r, _have(rounds[:i]), state)
    if not rounds:
        per_q = seed_blocks(budget_samples / len(models), block, len(ids))
        first = {"round": 0, "grow": {m: dict.fromkeys(ids, per_q) for m in models}}
        first["why"] = f"seed: {per_q * block} samples per question"
        run.execute(first, {}, state, start=True)
        notify(on_round, first)
    share = budget_samples / len(models)
    result = ForecastResult(out)
    while True:
        counts = _question_counts(out)
        fits = {m: _interval(counts.get(m), forecast_at) for m in models}
        result.estimates = {m: f[0] for m, f in fits.items() if f is not None}
        result.widths = {m: f[2] - f[1] for m, f in fits.items() if f is not None}
        grow, why = _next_round(counts, models, state, share, forecast_at, block)
        stop = None
        if len(rounds) >= max_rounds:
            stop = f"{max_rounds} rounds"
        elif not grow:
            stop = why
        if stop is not None:
            state["stopped"], state["widths"] = stop, result.widths
            write_state(out, state)
            _record_in_run(out, state)
            result.rounds, result.stopped, result.samples = rounds, stop, spent(out)[0]
            return result
        widths = ", ".join(f"{m} {w:.3f}" for m, w in sorted(result.widths.items()))
        r = {
            "round": len(rounds),
            "grow": grow,
            "why": why + (f"; interval widths {widths}" if widths else ""),
        }
        run.execute(r, _have(rounds), state, start=True)
        notify(on_round, r)


class _Rounds:
    """Runs a recorded round: each model's questions grown block by block (block ``j`` of the
    questions that need it in one profiler call), then the pools that did not grow as asked
    (a recorded pool used up) capped for the rounds after."""

    def __init__(self, out, task, ids, block, knobs, seed, runner, kwargs) -> None:
        self.out, self.task, self.ids, self.block, self.knobs = out, task, ids, block, knobs
        self.seed, self.runner, self.kwargs = seed, runner, kwargs

    def execute(self, r: dict, have: dict, state: dict, *, start: bool = False) -> None:
        if start:
            start_round(self.out, state, r)
        for model, want in sorted(r["grow"].items()):
            now = have.get(model, {})
            stops = range(min((now.get(q, 0) for q in want), default=0), max(want.values(), default=0))
            for j in stops:
                qids = [q for q, stop in want.items() if now.get(q, 0) <= j < stop]
                if qids:
                    spec = f"pool:n={self.block},block={j}{self.knobs}"
                    self.runner(
                        [model], _Subset(self.task, qids), [spec], self.out, seed=self.seed, **self.kwargs
                    )
        r["done"] = True
        counts = _question_counts(self.out)
        capped = state.setdefault("capped", {})
        for model, want in r["grow"].items():
            n = counts[model]["n"] if model in counts else {}
            short = [q for q, stop in want.items() if n.get(q, 0) < stop * self.block]
            capped[model] = sorted(set(capped.get(model, [])) | set(short))
        write_state(self.out, state)


def _have(rounds: list[dict]) -> dict[str, dict[str, int]]:
    """Model -> question -> blocks asked for by ``rounds``."""
    out: dict[str, dict[str, int]] = {}
    for r in rounds:
        for model, want in r["grow"].items():
            mine = out.setdefault(model, {})
            for q, stop in want.items():
                mine[q] = max(mine.get(q, 0), int(stop))
    return out


def _question_counts(out: Path) -> dict[str, Any]:
    """Model -> per-question samples ``n`` and successes ``c`` in the run folder (a DataFrame
    indexed by question id)."""
    if not out.is_dir() or not (S.counts_paths(out) or S.has_samples(out)):
        return {}
    samples, counts = read_input(out)
    parts = [t for t in (counts, None if samples is None else counts_from_samples(samples)) if t is not None]
    rows = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    rows = rows.assign(**{S.QUESTION_ID: rows[S.QUESTION_ID].astype(str)})
    grouped = rows.groupby([S.MODEL, S.QUESTION_ID])[[S.N_SAMPLES, S.N_CORRECT]].sum()
    grouped.columns = ["n", "c"]
    return {str(m): g.droplevel(0).astype(np.int64) for m, g in grouped.groupby(level=0)}


def _interval(table, k: int) -> tuple[float, float, float] | None:
    """A model's pass@k forecast (estimate, lo, hi) at 90%, or None without a fit."""
    if table is None:
        return None
    model = population(table["n"].to_numpy(), table["c"].to_numpy())
    if model is None:
        return None
    f = model.forecast(k, _LEVEL)
    return (f.estimate, f.lo, f.hi) if math.isfinite(f.estimate) else None


def _next_round(counts: dict, models, state: dict, share: float, k: int, block: int) -> tuple[dict, str]:
    """The next round's pools (model -> question -> blocks) and why; empty with the reason
    to stop when nothing is left to grow."""
    have = _have(state["rounds"])
    grow: dict[str, dict[str, int]] = {}
    funded, why = False, []
    for model in models:
        table = counts.get(model)
        if table is None or table.empty:
            continue
        left = share - int(table["n"].sum())
        if left < block:
            continue
        funded = True
        capped = set(state.get("capped", {}).get(model, []))
        limit = np.where(table.index.isin(list(capped)), table["n"], np.iinfo(np.int64).max)
        spend = round_samples(share, left, block)
        extra = allocate(table["n"], table["c"], k, block, spend, limit)
        mine = have.get(model, {})
        grown = {q: mine.get(q, 0) + int(e) for q, e in zip(table.index, extra, strict=True) if e > 0}
        if grown:
            grow[model] = grown
            why.append(f"{model}: {int(extra.sum()) * block} samples to {len(grown)} questions")
    if grow:
        return grow, "; ".join(why)
    if not funded:
        return {}, "profiling budget spent"
    return {}, f"no question's next block would narrow the pass@{k} interval (solved, or its pool used up)"


def _record_in_run(out: Path, state: dict) -> None:
    """The rounds (samples each gave to each model) and why the run stopped, in ``run.json``."""
    meta = read_run(out)
    if meta is None:
        return
    block, rounds = state["settings"]["block"], []
    for i, r in enumerate(state["rounds"]):
        seen = _have(state["rounds"][:i])
        added = {
            m: block * sum(stop - seen.get(m, {}).get(q, 0) for q, stop in want.items())
            for m, want in r["grow"].items()
        }
        rounds.append({"round": r["round"], "why": r.get("why", ""), "samples": added})
    meta["adaptive"] = {"rounds": rounds, "stopped": state.get("stopped"), "settings": state["settings"]}
    write_run(out, meta)
