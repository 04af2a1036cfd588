"""Multi-objective mode: the Pareto front of accuracy against one cost.

:func:`pareto_exhaustive` is the exact front of the enumerated options; :func:`pareto_optuna`
an NSGA-II study (Optuna 5) maximizing accuracy and minimizing ``log10(cost)``, the budgets
as constraints (``trial.set_constraint``), whose front is read off the feasible options it
evaluated. :func:`hypervolume_2d` compares two fronts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..space import OptionSpace
from ._study import Evaluator, default_study_name, open_storage, quiet_optuna, study_table, trial_fn
from .budget import Budget, objective_column, pareto_front, rank
from .single import SearchResult

__all__ = ["pareto_exhaustive", "pareto_optuna", "hypervolume_2d"]


def pareto_exhaustive(
    space: OptionSpace,
    target: Mapping[str, float],
    budget: Budget,
    cost_key: str | None = None,
    risk: str = "expected",
) -> SearchResult:
    """The exact Pareto front (accuracy up, ``cost_key`` down) of the feasible options."""
    objective = objective_column(risk)
    cost_key = cost_key or budget.primary()
    t0 = time.perf_counter()
    table = space.table(target)
    feas = table[budget.feasible(table)]
    front = pareto_front(feas, objective, cost_key)
    res = SearchResult(
        rank(feas, objective, cost_key),
        "exhaustive",
        len(table),
        time.perf_counter() - t0,
        objective,
        budget,
    )
    res.pareto = front
    return res


def pareto_optuna(
    space: OptionSpace,
    target: Mapping[str, float],
    budget: Budget,
    cost_key: str | None = None,
    risk: str = "expected",
    *,
    n_trials: int = 600,
    population_size: int = 40,
    seed: int = 0,
    storage: str | None = None,
    study_name: str | None = None,
) -> SearchResult:
    """NSGA-II study maximizing accuracy and minimizing ``log10(cost_key)``, budgets as constraints.

    Returns the Pareto front of the feasible options the study evaluated (``pareto``).
    """
    optuna = quiet_optuna()
    objective = objective_column(risk)
    cost_key = cost_key or budget.primary()
    t0 = time.perf_counter()
    arms = [a for a in space.arms(target) if len(space.grid(a, target))]
    ev = Evaluator(space, target, arms)
    name = study_name or default_study_name(space, target, budget, objective, f"pareto-{cost_key}", arms)
    sampler = optuna.samplers.NSGAIISampler(population_size=population_size, seed=seed)
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(storage),
        sampler=sampler,
        directions=["maximize", "minimize"],
        load_if_exists=True,
    )
    worst = (-1.0, 400.0)

    def values(row):
        if row is None:
            return worst
        return float(row[objective]), math.log10(max(float(row[cost_key]), 1e-300))

    run = trial_fn(ev, budget, values)

    study.optimize(run, n_trials=n_trials)
    table = study_table(study, ev)
    feas = table[budget.feasible(table)] if len(table) else table
    res = SearchResult(
        rank(feas, objective, cost_key),
        "optuna-nsga2",
        len(ev.cache),
        time.perf_counter() - t0,
        objective,
        budget,
        study=study,
    )
    res.evaluated = table
    res.pareto = pareto_front(feas, objective, cost_key) if len(feas) else feas
    return res


def hypervolume_2d(front: pd.DataFrame, objective: str, cost_key: str, ref_cost: float) -> float:
    """Area dominated by a (cost up-is-worse, accuracy up-is-better) front, in ``log10(cost)`` x
    accuracy, against the reference point (``ref_cost``, accuracy 0)."""
    if front.empty:
        return 0.0
    f = front.sort_values(cost_key)
    c = np.log10(f[cost_key].to_numpy(float))
    a = f[objective].to_numpy(float)
    edges = np.append(c, math.log10(ref_cost))
    best = np.maximum.accumulate(a)
    return float(np.sum(np.diff(edges) * best))
