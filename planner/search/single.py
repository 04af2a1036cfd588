"""Search the option space: an exhaustive enumerator and an Optuna study over the same grid.

Both maximize the predicted accuracy (``risk="expected"``) or its lower interval end
(``risk="conservative"``) of one option, subject to per-query budgets on any cost key
(``flops``, ``tokens``, ``usd``, ``latency_s``, ``kv_bytes``, ``memory_bytes``): an option is
feasible when every cost is at most its limit. Ties go to the less speculative source
(measured, then fitted, then extrapolated), then to the cheaper option.

The Optuna study (Optuna 5, TPE) chooses the arm with three categorical parameters: ``model``,
``strategy`` and ``variant:<strategy>`` (the fixed knobs, e.g. the temperature), so what it
learns about a model or a variant carries over to the arms sharing it. The knob value of a
trial is found along the arm's affordable frontier: every cost grows with the knob, so a
binary search finds the largest value within budget, and a few values below it are checked
too (accuracy need not grow with the knob). Each budget is a constraint
``(cost - limit) / limit <= 0`` set with ``trial.set_constraint`` (``constraints_func`` is
deprecated). A first design made the knob a free ``position`` parameter; on spaces of ~8,000
options it missed the optimum by up to 8 accuracy points in 200 trials, because the
sampler rarely hit the narrow affordable band of the right arm (benchmarks/optimizer.py). With ``storage``
(an RDB URL such as ``sqlite:///study.db``, or ``journal:PATH`` for several processes on
one machine) several workers share one study and each reads every worker's trials.

The multi-objective mode (NSGA-II, the Pareto front of accuracy against one cost) is in
:mod:`planner.search.pareto`; budgets and ranking in :mod:`planner.search.budget`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..constants import ACCURACY_TOL, ARM, KNOB_VALUE, METHODS, check_choice
from ..space import OptionSpace
from ._study import Evaluator, default_study_name, open_storage, quiet_optuna, study_table
from .budget import Budget, binding_constraint, objective_column, rank

__all__ = ["SearchResult", "search", "search_exhaustive", "search_optuna", "ENUMERATE_MAX_OPTIONS"]
#: spaces up to this many options are enumerated by ``method="auto"``. Measured with
#: benchmarks/optimizer.py (H100 cost model, 2-core CPU, one query): the lab profile's 188
#: options took 0.31 s to enumerate and 0.43 s with Optuna, its 540-option fine grid 0.71 s
#: versus 0.58 s; synthetic spaces of 1,824 / 8,448 / 16,896 options 1.3 / 6.0 / 8.1 s versus
#: 0.56 / 1.3 / 1.4 s; Optuna found the exhaustive optimum in all 105 (space, budget, seed) runs.
ENUMERATE_MAX_OPTIONS = 500


@dataclass
class SearchResult:
    """What a search returns. ``ranked`` holds the feasible options it evaluated, best first."""

    ranked: pd.DataFrame
    method: str
    evaluations: int
    seconds: float
    objective: str
    budget: Budget
    binding: str = "none"
    evaluated: pd.DataFrame | None = None
    study: object = None
    pareto: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> pd.Series | None:
        return None if self.ranked.empty else self.ranked.iloc[0]


def search_exhaustive(
    space: OptionSpace, target: Mapping[str, float], budget: Budget, risk: str = "expected"
) -> SearchResult:
    """Evaluate every option of the grid and return the feasible ones, best first."""
    objective = objective_column(risk)
    t0 = time.perf_counter()
    table = space.table(target)
    mask = budget.feasible(table) if len(table) else np.zeros(0, dtype=bool)
    ranked = rank(table[mask], objective, budget.primary())
    seconds = time.perf_counter() - t0
    best = None if ranked.empty else ranked.iloc[0]
    binding = binding_constraint(table, best, budget, objective)
    return SearchResult(ranked, "exhaustive", len(table), seconds, objective, budget, binding, table)


def _frontier(ev: Evaluator, key: str, budget: Budget, objective: str, scan: int) -> tuple[dict | None, int]:
    """Best option of one arm within budget: binary search for the largest affordable knob
    value (every cost grows with the knob), then the values just below it and ``scan``
    log-spaced values under it (accuracy need not grow with the knob)."""

    def fits(i: int) -> bool:
        return all(v <= 0 for v in budget.excess(ev(key, i)).values())

    lo, hi = 0, len(ev.grids[key]) - 1
    if not fits(lo):
        return None, -1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    cand = {lo, lo - 1, lo - 2, *np.unique(np.round(np.geomspace(1, lo + 1, scan)) - 1).astype(int).tolist()}
    cand = sorted(i for i in cand if 0 <= i <= lo)
    rows = [(ev(key, i), i) for i in cand]
    rows = [(r, i) for r, i in rows if all(v <= 0 for v in budget.excess(r).values())]
    r, i = max(rows, key=lambda t: (round(t[0][objective] / ACCURACY_TOL), -t[0][budget.primary()]))
    return r, i


def search_optuna(
    space: OptionSpace,
    target: Mapping[str, float],
    budget: Budget,
    risk: str = "expected",
    *,
    n_trials: int = 60,
    seed: int = 0,
    storage: str | None = None,
    study_name: str | None = None,
    scan: int = 8,
) -> SearchResult:
    """Optuna TPE study over the arms (model, strategy, variant), each trial's knob value found
    by a search along the arm's affordable frontier.

    Each trial picks an arm with three categorical parameters (what the sampler learns about
    a model or a variant carries over to the arms that share it); its knob value is the best
    of :func:`_frontier` (a binary search for the largest value within every budget, plus a
    few values below it), and its constraints are the budgets' excess at that value (all
    positive when even the smallest value is over budget). When there are at most
    ``n_trials / 2`` arms, each is enqueued once before the sampler's own trials. The result
    ranks every feasible
    option evaluated; with ``storage``, the best option of every worker's trials is included.
    """
    optuna = quiet_optuna()
    objective = objective_column(risk)
    t0 = time.perf_counter()
    arms = [a for a in space.arms(target) if len(space.grid(a, target))]
    if not arms:
        raise ValueError("no option is available for this difficulty")
    ev = Evaluator(space, target, arms)
    name = study_name or default_study_name(space, target, budget, objective, "single", arms)
    sampler = optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, n_startup_trials=min(10, n_trials)
    )
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(storage),
        sampler=sampler,
        direction="maximize",
        load_if_exists=True,
    )

    def run(trial) -> float:
        key = ev.suggest_arm(trial)
        row, i = (None, -1) if key is None else _frontier(ev, key, budget, objective, scan)
        if row is None:
            smallest = budget.excess(ev(key, 0)) if key is not None else dict.fromkeys(budget.limits, 1.0)
            for k, v in smallest.items():
                trial.set_constraint(k, max(v, 1e-9))
            trial.set_user_attr("arm", key)
            trial.set_user_attr("index", 0 if key is not None else -1)
            return -1.0
        for k, v in budget.excess(row).items():
            trial.set_constraint(k, v)
        trial.set_user_attr("arm", key)
        trial.set_user_attr("index", i)
        return float(row[objective])

    if len(arms) <= n_trials // 2 and not study.trials:
        # few arms: cover each once first (a sampler can miss a lone variant, e.g. the only
        # affordable model's direct-answer greedy); the rest of the trials are the sampler's
        for key in ev.arms:
            study.enqueue_trial(ev.arm_params(key))
    study.optimize(run, n_trials=n_trials)
    table = study_table(study, ev)
    if len(ev.cache):
        table = pd.concat([table, ev.table()], ignore_index=True).drop_duplicates([ARM, KNOB_VALUE])
    mask = budget.feasible(table) if len(table) else np.zeros(0, dtype=bool)
    ranked = rank(table[mask], objective, budget.primary()) if len(table) else table
    best = None if ranked.empty else ranked.iloc[0]
    binding = binding_constraint(table, best, budget, objective) if len(table) else "infeasible"
    seconds = time.perf_counter() - t0
    return SearchResult(ranked, "optuna", len(ev.cache), seconds, objective, budget, binding, table, study)


def search(
    space: OptionSpace,
    target: Mapping[str, float],
    budget: Budget,
    risk: str = "expected",
    *,
    method: str = "auto",
    **optuna_kwargs,
) -> SearchResult:
    """``method="auto"`` enumerates spaces up to :data:`ENUMERATE_MAX_OPTIONS` options (and
    always when a storage is not given and the space is small), else runs Optuna;
    ``"exhaustive"`` or ``"optuna"`` force one."""
    check_choice("method", method, METHODS)
    if method == "auto":
        use_optuna = optuna_kwargs.get("storage") is not None or space.size(target) > ENUMERATE_MAX_OPTIONS
        method = "optuna" if use_optuna else "exhaustive"
    if method == "exhaustive":
        return search_exhaustive(space, target, budget, risk)
    return search_optuna(space, target, budget, risk, **optuna_kwargs)
