"""Per-difficulty allocation: the exact DP against brute force on random small instances, the
Lagrangian bound, Optuna's gap, and the comparison with a single option.
Fixtures: tests/planner/planner_fixtures.py (synthetic curves) and random tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.search import Budget, InfeasibleBudget
from planner.search import allocate as alloc


def _random_tables(rng, n_bins, n_opts):
    tables, weights = {}, {}
    for b in range(n_bins):
        cost = rng.uniform(1, 100, n_opts)
        acc = np.clip(0.2 * b + 0.5 * np.log1p(cost) / np.log(101) + rng.normal(0, 0.08, n_opts), 0, 1)
        tables[str(b)] = pd.DataFrame(
            {
                "arm": [f"a{i}" for i in range(n_opts)],
                "knob_value": 1.0,
                "accuracy": acc,
                "accuracy_lo": acc - 0.05,
                "flops": cost,
            }
        )
        weights[str(b)] = rng.uniform(0.2, 1)
    total = sum(weights.values())
    return tables, {b: w / total for b, w in weights.items()}


@pytest.mark.parametrize("seed", range(12))
def test_exact_dp_matches_brute_force_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    tables, weights = _random_tables(rng, n_bins=int(rng.integers(2, 5)), n_opts=int(rng.integers(2, 7)))
    for budget in (10.0, 30.0, 60.0, 120.0):
        try:
            brute = alloc.allocate_brute_force(tables, weights, budget)
        except InfeasibleBudget:
            with pytest.raises(InfeasibleBudget, match="cheapest allocation"):
                alloc.allocate_exact(tables, weights, budget)
            continue
        exact = alloc.allocate_exact(tables, weights, budget)
        assert exact.accuracy == pytest.approx(brute.accuracy, abs=1e-12)
        assert exact.cost <= budget * (1 + 1e-12)
        lag = alloc.allocate_lagrangian(tables, weights, budget)
        assert lag.cost <= budget * (1 + 1e-12)
        assert lag.accuracy <= exact.accuracy + 1e-12 <= lag.bound + 2e-12


def test_exact_frontier_points_are_achievable_and_monotone():
    rng = np.random.default_rng(5)
    tables, weights = _random_tables(rng, 3, 5)
    front = alloc.allocation_frontier(tables, weights)
    assert np.all(np.diff(front["cost"]) > 0) and np.all(np.diff(front["accuracy"]) > 0)
    for c, a in front.sample(5, random_state=0).itertuples(index=False):
        assert alloc.allocate_brute_force(tables, weights, c * (1 + 1e-9)).accuracy == pytest.approx(a)


@pytest.fixture(scope="module")
def lab(space):
    weights = {"1": 0.2, "2": 0.5, "3": 0.3}
    return space, weights, alloc.bin_tables(space, weights, Budget({"latency_s": 1.0}))


def test_per_query_limits_filter_every_bin(lab):
    _, _, tables = lab
    assert all((t["latency_s"] <= 1.0).all() for t in tables.values())


def test_optuna_allocation_is_close_to_the_exact_optimum_and_reports_its_gap(lab):
    _, weights, tables = lab
    for budget in (8e8, 3e9):
        exact = alloc.allocate_exact(tables, weights, budget)
        tpe = alloc.allocate_optuna(tables, weights, budget, n_trials=250, seed=0)
        assert tpe.cost <= budget * (1 + 1e-9)
        assert 0 <= exact.accuracy - tpe.accuracy <= 0.01


def test_allocation_never_loses_to_the_best_single_option(lab):
    _, weights, tables = lab
    for budget in (5e8, 2e9, 8e9):
        cmp = alloc.compare_with_single(tables, weights, budget)
        assert cmp["allocation_accuracy"] >= cmp["single_accuracy"] - 1e-12
        assert cmp["cost_to_match"] <= cmp["single_cost"] * (1 + 1e-12)
        assert cmp["compute_ratio"] >= 1.0
    single = alloc.best_single(tables, weights, 2e9, strategies=("majority",))
    assert {r["strategy"] for r in single.choice.values()} == {"majority"}
    assert len({(r["arm"], r["knob_value"]) for r in single.choice.values()}) == 1


def test_infeasible_budget_names_the_cheapest_allocation(lab):
    _, weights, tables = lab
    with pytest.raises(InfeasibleBudget, match=r"below the cheapest allocation \(\d"):
        alloc.allocate_exact(tables, weights, 1.0)


def test_one_tolerance_and_one_pareto_filter_for_every_search():
    """Ties within ACCURACY_TOL and costs within BUDGET_RTOL of a limit are treated alike by the
    Pareto front, the allocation frontier and every solver (they had their own tolerances)."""
    from planner.constants import ACCURACY_TOL
    from planner.search import pareto_front

    t = pd.DataFrame(
        {
            "arm": ["a", "b", "c"],
            "knob_value": 1.0,
            "accuracy": [0.5, 0.5 + ACCURACY_TOL / 10, 0.6],
            "accuracy_lo": [0.4, 0.4, 0.5],
            "flops": [1.0, 2.0, 3.0],
            "source": "measured",
        }
    )
    assert pareto_front(t, "accuracy", "flops")["arm"].tolist() == ["a", "c"]
    assert alloc.allocation_frontier({"1": t}, {"1": 1.0}, "flops")["cost"].tolist() == [1.0, 3.0]
    limit = 3.0 / (1 + 5e-13)  # the dearest option is over it only by floating-point noise
    assert Budget({"flops": limit}).feasible(t).all()
    for solver in (
        alloc.allocate_exact,
        alloc.allocate_lagrangian,
        alloc.allocate_brute_force,
        alloc.best_single,
    ):
        assert solver({"1": t}, {"1": 1.0}, limit, "flops").accuracy == 0.6, solver.__name__
