"""Budgets, ranking and Pareto fronts: what every search agrees on.

A :class:`Budget` holds per-query limits on cost keys (:data:`planner.constants.BUDGET_KEYS`);
an option is feasible when every cost is at most its limit (up to
:data:`~planner.constants.BUDGET_RTOL`). Options are ranked by the objective column of the
risk (:data:`~planner.constants.RISKS`), ties going to the less speculative source, then to
the cheaper option, then by arm key and knob value (:func:`rank`). :func:`pareto_front` is
the one non-dominated filter (accuracy up, cost down) of the searches and the allocator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..constants import (
    ACCURACY_TOL,
    ARM,
    BUDGET_KEYS,
    KNOB_VALUE,
    RISKS,
    SOURCE,
    SOURCE_RANK,
    SOURCES,
    check_choice,
    within_budget,
)

__all__ = [
    "Budget",
    "binding_constraint",
    "objective_column",
    "pareto_front",
    "pareto_indices",
    "rank",
]

_HINT = {
    "latency_s": " (roofline latency needs an accelerator: --gpu)",
    "usd": " (dollars need --gpu or --api)",
}


@dataclass(frozen=True)
class Budget:
    """Per-query limits on cost keys, e.g. ``Budget({"flops": 1e13, "latency_s": 5})``."""

    limits: Mapping[str, float]

    def __post_init__(self) -> None:
        for k, v in self.limits.items():
            if k not in BUDGET_KEYS:
                raise ValueError(f"unknown budget {k!r}; valid: {', '.join(BUDGET_KEYS)}")
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"budget {k} must be a positive number, got {v!r}")

    def excess(self, costs: Mapping[str, float]) -> dict[str, float]:
        """``(cost - limit) / limit`` per limit (<= 0 is within budget); a missing cost is an error."""
        out = {}
        for k, lim in self.limits.items():
            c = costs.get(k)
            if c is None or not math.isfinite(float(c)):
                raise ValueError(
                    f"budget on {k!r} but the cost model gives no {k} for this option{_HINT.get(k, '')}"
                )
            out[k] = (float(c) - lim) / lim
        return out

    def feasible(self, table: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of an option table within every limit."""
        mask = np.ones(len(table), dtype=bool)
        for k, lim in self.limits.items():
            if k not in table:
                raise ValueError(
                    f"budget on {k!r} but the cost model gives no {k} (columns: {list(table.columns)})"
                )
            vals = table[k].to_numpy(float)
            if np.any(~np.isfinite(vals)):
                raise ValueError(
                    f"budget on {k!r} but the cost model gives no {k} for some options{_HINT.get(k, '')}"
                )
            mask &= within_budget(vals, lim)
        return mask

    def without(self, key: str) -> Budget | None:
        """The other limits (None when ``key`` was the only one)."""
        rest = {k: v for k, v in self.limits.items() if k != key}
        return Budget(rest) if rest else None

    def primary(self) -> str:
        """The first limit given (the cost used for tie-breaks and Pareto fronts)."""
        return next(iter(self.limits))

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.limits.items()}


def objective_column(risk: str) -> str:
    """The option-table column a risk attitude maximizes (``accuracy`` or ``accuracy_lo``)."""
    return RISKS[check_choice("risk", risk, RISKS)]


def rank(table: pd.DataFrame, objective: str, cost_key: str) -> pd.DataFrame:
    """Options best first: objective (ties within :data:`~planner.constants.ACCURACY_TOL`),
    then the less speculative source, the cheaper ``cost_key``, the arm key, the knob value."""
    t = table.copy()
    if SOURCE_RANK not in t:
        t[SOURCE_RANK] = t[SOURCE].map(SOURCES.index)
    digits = round(-math.log10(ACCURACY_TOL))
    t["_obj"] = t[objective].round(digits)
    t = t.sort_values(
        ["_obj", SOURCE_RANK, cost_key, ARM, KNOB_VALUE], ascending=[False, True, True, True, True]
    )
    return t.drop(columns="_obj").reset_index(drop=True)


def pareto_indices(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Positions of the non-dominated points (cost down, accuracy up), sorted by cost: each is
    more accurate, by more than :data:`~planner.constants.ACCURACY_TOL`, than every cheaper
    point. Ties in cost keep the more accurate one; exact ties keep the first given.

    Examples
    --------
    >>> pareto_indices(np.array([3.0, 1.0, 2.0, 2.0]), np.array([0.9, 0.5, 0.5, 0.7])).tolist()
    [1, 3, 0]
    """
    cost, acc = np.asarray(cost, dtype=float), np.asarray(acc, dtype=float)
    order = np.lexsort((-acc, cost))  # stable: exact ties keep their given order
    a = acc[order]
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(a)[:-1]])
    return order[a > best_before + ACCURACY_TOL]


def pareto_front(table: pd.DataFrame, objective: str, cost_key: str) -> pd.DataFrame:
    """The non-dominated options of a table (:func:`pareto_indices` on its :func:`rank` order,
    so that ties go to the less speculative, then the lexically first option), by cost."""
    t = rank(table, objective, cost_key)
    keep = pareto_indices(t[cost_key].to_numpy(float), t[objective].to_numpy(float))
    return t.iloc[keep].reset_index(drop=True)


def binding_constraint(
    evaluated: pd.DataFrame, best: pd.Series | None, budget: Budget, objective: str
) -> str:
    """The limit that keeps a better option out: the one whose removal (alone) lets the most
    accurate evaluated option in. ``"none"`` if the best option overall is affordable;
    ``"several"`` if no single limit's removal helps but removing all does."""
    if best is None:
        return "infeasible"
    better = evaluated[evaluated[objective] > best[objective] + ACCURACY_TOL]
    if better.empty:
        return "none"
    gains = {}
    for k in budget.limits:
        others = budget.without(k)
        ok = others.feasible(better) if others is not None else np.ones(len(better), dtype=bool)
        if ok.any():
            gains[k] = float(better.loc[ok, objective].max())
    return max(gains, key=gains.get) if gains else "several"
