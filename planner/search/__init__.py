"""Which option to pick: budgets and ranking (:mod:`.budget`), the single-objective search,
exhaustive or Optuna (:mod:`.single`), Pareto fronts (:mod:`.pareto`), per-difficulty
allocation (:mod:`.allocate`) and adaptive policies replayed from pools (:mod:`.adaptive`).
The Optuna plumbing they share is private to this package (:mod:`._study`); Optuna itself is
imported only when a study runs."""

from __future__ import annotations

from ._study import open_storage
from .adaptive import ADAPTIVE_COST_KEYS, PoolReplay, adaptive_policies, describe_policy
from .allocate import (
    Allocation,
    InfeasibleBudget,
    allocate_brute_force,
    allocate_exact,
    allocate_lagrangian,
    allocate_optuna,
    allocation_frontier,
    best_single,
    bin_tables,
    compare_with_single,
)
from .budget import Budget, binding_constraint, objective_column, pareto_front, pareto_indices, rank
from .pareto import hypervolume_2d, pareto_exhaustive, pareto_optuna
from .question_split import split_questions
from .single import ENUMERATE_MAX_OPTIONS, SearchResult, search, search_exhaustive, search_optuna

__all__ = [
    "ADAPTIVE_COST_KEYS",
    "ENUMERATE_MAX_OPTIONS",
    "Allocation",
    "Budget",
    "InfeasibleBudget",
    "PoolReplay",
    "SearchResult",
    "adaptive_policies",
    "allocate_brute_force",
    "allocate_exact",
    "allocate_lagrangian",
    "allocate_optuna",
    "allocation_frontier",
    "best_single",
    "bin_tables",
    "binding_constraint",
    "compare_with_single",
    "describe_policy",
    "hypervolume_2d",
    "objective_column",
    "open_storage",
    "pareto_exhaustive",
    "pareto_front",
    "pareto_indices",
    "pareto_optuna",
    "rank",
    "search",
    "search_exhaustive",
    "search_optuna",
    "split_questions",
]
