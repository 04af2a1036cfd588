r"""Per-difficulty allocation: one option per difficulty bin under an average per-query budget.

Given bins ``b`` with weights :math:`w_b` (the share of queries of that difficulty) and, per
bin, options with predicted accuracy :math:`a_{b,o}` and cost :math:`c_{b,o}` (costs differ by
bin: harder questions produce longer chains), choose :math:`o_b` to

.. math:: \max \sum_b w_b\, a_{b,o_b} \quad \text{s.t.} \quad \sum_b w_b\, c_{b,o_b} \le B,

a multiple-choice knapsack. Three solvers, compared in the tests and the benchmark:

:func:`allocate_exact`
    Exact: a dynamic programme over bins that keeps the Pareto front (cost down, accuracy
    up) of partial allocations. A partial allocation that another one beats on both cost
    and accuracy can never be part of a better completion, so pruning it loses nothing;
    partial sums that cannot fit the budget with the cheapest remaining choices are dropped.
:func:`allocate_lagrangian`
    The Lagrangian relaxation: every bin's options reduced to their upper convex hull, hull
    edges taken greedily by accuracy gained per unit cost while the budget lasts. Gives a
    feasible allocation and the LP upper bound (the next edge taken fractionally); fast,
    but may leave budget unused.
:func:`allocate_optuna`
    An Optuna TPE study with one integer per bin (the index on that bin's cost-sorted Pareto
    front) and the budget as a constraint.

:func:`compare_with_single` measures what allocation buys: the best single option used for
every bin at the same average budget, and the compute the allocation needs to match its
accuracy (Snell et al. 2024 report about 4x less than best-of-N).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..constants import ACCURACY_TOL, ARM, KNOB_VALUE, SOURCE, STRATEGY, within_budget
from ..space import OptionSpace
from ._study import open_storage, quiet_optuna
from .budget import Budget, objective_column, pareto_indices

__all__ = [
    "Allocation",
    "InfeasibleBudget",
    "bin_tables",
    "allocate_exact",
    "allocate_lagrangian",
    "allocate_optuna",
    "allocate_brute_force",
    "allocation_frontier",
    "best_single",
    "compare_with_single",
]


Tables = Mapping[str, pd.DataFrame]
"""Each difficulty bin's option table."""
Weights = Mapping[str, float]
"""Each difficulty bin's share of the queries."""


class InfeasibleBudget(ValueError):
    """No allocation fits the budget; the message gives the cheapest one's cost."""


@dataclass
class Allocation:
    """One option per bin. ``choice[bin]`` is that option's row (arm, x, accuracy, costs)."""

    choice: dict[str, pd.Series]
    weights: dict[str, float]
    cost_key: str
    objective: str
    accuracy: float
    cost: float
    method: str
    seconds: float = 0.0
    evaluations: int = 0
    bound: float | None = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """One row per bin: weight, option, accuracy, cost."""
        rows = []
        for b, r in self.choice.items():
            rows.append(
                {
                    "difficulty": b,
                    "weight": self.weights[b],
                    ARM: r[ARM],
                    KNOB_VALUE: r[KNOB_VALUE],
                    self.objective: r[self.objective],
                    self.cost_key: r[self.cost_key],
                    SOURCE: r.get(SOURCE, ""),
                }
            )
        return pd.DataFrame(rows)


def bin_tables(
    space: OptionSpace, weights: Weights, per_query: Budget | None = None
) -> dict[str, pd.DataFrame]:
    """Each bin's option table (every option of the space for that bin), with options over a
    per-query limit (latency, memory, ...) removed."""
    out = {}
    for b in weights:
        t = space.table({b: 1.0})
        if per_query is not None and per_query.limits:
            t = t[per_query.feasible(t)]
        out[b] = t.reset_index(drop=True)
    return out


def _prepare(tables, weights, cost_key, objective):
    bins = list(weights)
    data = []
    for b in bins:
        t = tables[b]
        if t.empty:
            raise InfeasibleBudget(f"difficulty {b}: no option is available")
        c = t[cost_key].to_numpy(float)
        a = t[objective].to_numpy(float)
        idx = pareto_indices(c, a)
        data.append((b, idx, weights[b] * c[idx], weights[b] * a[idx]))
    return bins, data


def _result(tables, weights, bins, picks, cost_key, objective, method, t0, **kw) -> Allocation:
    choice = {b: tables[b].iloc[int(i)] for b, i in zip(bins, picks, strict=True)}
    acc = float(sum(weights[b] * choice[b][objective] for b in bins))
    cost = float(sum(weights[b] * choice[b][cost_key] for b in bins))
    return Allocation(
        choice, dict(weights), cost_key, objective, acc, cost, method, time.perf_counter() - t0, **kw
    )


def _cheapest(data) -> float:
    return float(sum(c.min() for _, _, c, _ in data))


def _prepare_within(tables, weights, budget: float, cost_key: str, objective: str):
    """:func:`_prepare`'s bins and fronts and the cheapest allocation's cost, or
    :class:`InfeasibleBudget` when even that exceeds ``budget``."""
    bins, data = _prepare(tables, weights, cost_key, objective)
    cheapest = _cheapest(data)
    if not within_budget(cheapest, budget):
        raise InfeasibleBudget(
            f"average {cost_key} budget {budget:.3g} is below the cheapest allocation ({cheapest:.3g} per query)"
        )
    return bins, data, cheapest


def _merge_fronts(data, budget: float | None):
    """Pareto DP. Returns final (cost, acc) arrays and per-stage back-pointers."""
    rem_min = np.cumsum([c.min() for _, _, c, _ in data][::-1])[::-1].tolist() + [0.0]
    fc, fa = np.zeros(1), np.zeros(1)
    backs = []
    for s, (_, _, oc, oa) in enumerate(data):
        C = (fc[:, None] + oc[None, :]).ravel()
        A = (fa[:, None] + oa[None, :]).ravel()
        parent = np.repeat(np.arange(len(fc)), len(oc))
        opt = np.tile(np.arange(len(oc)), len(fc))
        if budget is not None:
            ok = within_budget(C + rem_min[s + 1], budget)
            C, A, parent, opt = C[ok], A[ok], parent[ok], opt[ok]
            if len(C) == 0:
                return C, A, backs
        keep = pareto_indices(C, A)
        fc, fa = C[keep], A[keep]
        backs.append((parent[keep], opt[keep]))
    return fc, fa, backs


def _backtrack(backs, data, j: int) -> list[int]:
    picks = []
    for s in range(len(backs) - 1, -1, -1):
        parent, opt = backs[s]
        picks.append(int(data[s][1][opt[j]]))
        j = int(parent[j])
    return picks[::-1]


def allocate_exact(
    tables: Tables, weights: Weights, budget: float, cost_key: str = "flops", risk: str = "expected"
) -> Allocation:
    """The optimal allocation (Pareto-front dynamic programme; exact, no discretization)."""
    objective = objective_column(risk)
    t0 = time.perf_counter()
    bins, data, cheapest = _prepare_within(tables, weights, budget, cost_key, objective)
    fc, fa, backs = _merge_fronts(data, budget)
    j = int(np.argmax(fa))  # fronts are sorted by cost, so ties go to the cheaper allocation
    picks = _backtrack(backs, data, j)
    n_partial = sum(len(p) for p, _ in backs)
    return _result(tables, weights, bins, picks, cost_key, objective, "exact-dp", t0, evaluations=n_partial)


def allocation_frontier(
    tables: Tables,
    weights: Weights,
    cost_key: str = "flops",
    risk: str = "expected",
) -> pd.DataFrame:
    """Every Pareto-optimal allocation: columns ``cost`` and ``accuracy`` (average per query)."""
    objective = objective_column(risk)
    _, data = _prepare(tables, weights, cost_key, objective)
    fc, fa, _ = _merge_fronts(data, None)
    return pd.DataFrame({"cost": fc, "accuracy": fa})


def _upper_hull(c: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Indices (into the Pareto-sorted arrays) of the upper concave hull, by increasing cost."""
    hull: list[int] = []
    for i in range(len(c)):
        while len(hull) >= 2:
            i1, i2 = hull[-2], hull[-1]
            # drop i2 if it lies on or below the segment i1 -> i
            if (a[i2] - a[i1]) * (c[i] - c[i1]) <= (a[i] - a[i1]) * (c[i2] - c[i1]):
                hull.pop()
            else:
                break
        hull.append(i)
    return np.array(hull, dtype=int)


def allocate_lagrangian(
    tables: Tables, weights: Weights, budget: float, cost_key: str = "flops", risk: str = "expected"
) -> Allocation:
    """Greedy on the bins' upper convex hulls (the Lagrangian / LP relaxation).

    ``bound`` is the LP upper bound on the optimum: the accuracy reached plus the next hull
    edge taken fractionally with the budget left.
    """
    objective = objective_column(risk)
    t0 = time.perf_counter()
    bins, data, cheapest = _prepare_within(tables, weights, budget, cost_key, objective)
    hulls = [_upper_hull(c, a) for _, _, c, a in data]
    pos = [0] * len(bins)
    edges = []
    for s, h in enumerate(hulls):
        _, _, c, a = data[s]
        for e in range(1, len(h)):
            slope = (a[h[e]] - a[h[e - 1]]) / (c[h[e]] - c[h[e - 1]])
            edges.append((slope, s, e))
    edges.sort(key=lambda t: -t[0])  # within a bin, slopes decrease along the hull
    spent = cheapest
    gained = sum(a[h[0]] for (_, _, _, a), h in zip(data, hulls, strict=True))
    bound = None
    for slope, s, e in edges:
        _, _, c, _ = data[s]
        step = c[hulls[s][e]] - c[hulls[s][e - 1]]
        if not within_budget(spent + step, budget):
            bound = gained + slope * (budget - spent)
            break
        spent += step
        gained += slope * step
        pos[s] = e
    picks = [int(data[s][1][hulls[s][pos[s]]]) for s in range(len(bins))]
    res = _result(
        tables, weights, bins, picks, cost_key, objective, "lagrangian-hull", t0, evaluations=len(edges)
    )
    res.bound = float(bound if bound is not None else res.accuracy)
    return res


def allocate_optuna(
    tables: Tables,
    weights: Weights,
    budget: float,
    cost_key: str = "flops",
    risk: str = "expected",
    *,
    n_trials: int = 300,
    seed: int = 0,
    storage: str | None = None,
) -> Allocation:
    """TPE over one integer per bin (the index on the bin's cost-sorted Pareto front), with
    ``(sum_b w_b c_b - B) / B <= 0`` as the constraint."""
    optuna = quiet_optuna()
    objective = objective_column(risk)
    t0 = time.perf_counter()
    bins, data = _prepare(tables, weights, cost_key, objective)

    def run(trial):
        ids = [trial.suggest_int(f"bin:{b}", 0, len(d[1]) - 1) for b, d in zip(bins, data, strict=True)]
        c = sum(d[2][i] for d, i in zip(data, ids, strict=True))
        trial.set_constraint(cost_key, (c - budget) / budget)
        return float(sum(d[3][i] for d, i in zip(data, ids, strict=True)))

    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(30, n_trials))
    study = optuna.create_study(direction="maximize", sampler=sampler, storage=open_storage(storage))
    study.optimize(run, n_trials=n_trials)
    feasible = [
        t for t in study.trials if t.state.name == "COMPLETE" and all(v <= 0 for v in t.constraints.values())
    ]
    if not feasible:
        raise InfeasibleBudget(f"Optuna found no allocation within the {cost_key} budget {budget:.3g}")
    best = max(feasible, key=lambda t: t.value)
    picks = [int(data[s][1][best.params[f"bin:{b}"]]) for s, b in enumerate(bins)]
    return _result(
        tables, weights, bins, picks, cost_key, objective, "optuna-tpe", t0, evaluations=len(study.trials)
    )


def allocate_brute_force(
    tables: Tables, weights: Weights, budget: float, cost_key: str = "flops", risk: str = "expected"
) -> Allocation:
    """Every combination of options (for tests on small instances)."""
    objective = objective_column(risk)
    t0 = time.perf_counter()
    bins = list(weights)
    cols = [(tables[b][cost_key].to_numpy(float), tables[b][objective].to_numpy(float)) for b in bins]
    best, best_key = None, None
    for combo in itertools.product(*(range(len(c)) for c, _ in cols)):
        cost = sum(weights[b] * cols[s][0][i] for s, (b, i) in enumerate(zip(bins, combo, strict=True)))
        if not within_budget(cost, budget):
            continue
        acc = sum(weights[b] * cols[s][1][i] for s, (b, i) in enumerate(zip(bins, combo, strict=True)))
        key = (round(acc / ACCURACY_TOL), -cost)
        if best_key is None or key > best_key:
            best, best_key = combo, key
    if best is None:
        raise InfeasibleBudget(f"no combination fits the {cost_key} budget {budget:.3g}")
    return _result(tables, weights, bins, list(best), cost_key, objective, "brute-force", t0)


def best_single(
    tables: Tables,
    weights: Weights,
    budget: float,
    cost_key: str = "flops",
    risk: str = "expected",
    strategies: tuple[str, ...] | None = None,
) -> Allocation | None:
    """The best single option (same arm and knob value) used for every bin at the same average
    budget; ``strategies`` restricts the arms (e.g. ``("majority",)``). None if none fits."""
    objective = objective_column(risk)
    t0 = time.perf_counter()
    bins = list(weights)
    merged = None
    for b in bins:
        t = tables[b]
        if strategies is not None:
            t = t[t[STRATEGY].isin(strategies)]
        t = t[[ARM, KNOB_VALUE, objective, cost_key]].rename(
            columns={objective: f"a:{b}", cost_key: f"c:{b}"}
        )
        t = t.assign(**{f"i:{b}": t.index})
        merged = t if merged is None else merged.merge(t, on=[ARM, KNOB_VALUE])
    if merged is None or merged.empty:
        return None
    acc = sum(weights[b] * merged[f"a:{b}"] for b in bins)
    cost = sum(weights[b] * merged[f"c:{b}"] for b in bins)
    ok = within_budget(cost, budget)
    if not ok.any():
        return None
    order = np.lexsort((cost[ok].to_numpy(), -(acc[ok] / ACCURACY_TOL).round().to_numpy()))
    row = merged[ok].iloc[order[0]]
    picks = [int(row[f"i:{b}"]) for b in bins]
    full = {b: tables[b] for b in bins}
    return _result(full, weights, bins, picks, cost_key, objective, "single-option", t0)


def compare_with_single(
    tables: Tables,
    weights: Weights,
    budget: float,
    cost_key: str = "flops",
    risk: str = "expected",
    strategies: tuple[str, ...] | None = None,
) -> dict[str, float | str | None]:
    """Allocation versus the best single option at the same average budget.

    Returns the accuracies of both, the single option's cost, the least average cost at
    which some allocation matches the single option's accuracy (from the exact frontier),
    and ``compute_ratio`` = single cost / that cost (how many times less compute allocation
    needs for equal accuracy).
    """
    alloc = allocate_exact(tables, weights, budget, cost_key, risk)
    single = best_single(tables, weights, budget, cost_key, risk, strategies)
    out: dict[str, float | str | None] = {
        "budget": budget,
        "allocation_accuracy": alloc.accuracy,
        "allocation_cost": alloc.cost,
        "single_option": None,
        "single_accuracy": None,
        "single_cost": None,
        "cost_to_match": None,
        "compute_ratio": None,
        "accuracy_gain": None,
    }
    if single is None:
        return out
    front = allocation_frontier(tables, weights, cost_key, risk)
    reach = front[front["accuracy"] >= single.accuracy - ACCURACY_TOL]
    match = float(reach["cost"].min()) if len(reach) else math.nan
    first = next(iter(single.choice.values()))
    out.update(
        single_option=f"{first[ARM]} x={first[KNOB_VALUE]:g}",
        single_accuracy=single.accuracy,
        single_cost=single.cost,
        cost_to_match=match,
        compute_ratio=single.cost / match if match > 0 else math.nan,
        accuracy_gain=alloc.accuracy - single.accuracy,
    )
    return out
