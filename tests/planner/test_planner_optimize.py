"""Search: the exhaustive enumerator against a brute-force loop, Optuna against the enumerator,
constraints, risk, Pareto fronts and a study shared by two worker processes.
Fixtures: tests/planner/planner_fixtures.py (synthetic curves from known probabilities)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from planner.search import (
    Budget,
    hypervolume_2d,
    pareto_exhaustive,
    pareto_optuna,
    search,
    search_exhaustive,
    search_optuna,
)

ROOT = Path(__file__).resolve().parents[2]


def test_exhaustive_pick_is_the_most_accurate_affordable_option_by_brute_force(space):
    target = space.target("2")
    table = space.table(target)
    for flops in (3e8, 1e9, 4e9, 3e10):
        res = search_exhaustive(space, target, Budget({"flops": flops}))
        best = max(
            (r for r in table.itertuples() if r.flops <= flops),
            key=lambda r: (r.accuracy, -r.source_rank, -r.flops),
        )
        assert res.best["accuracy"] == pytest.approx(best.accuracy)
        assert res.best["flops"] <= flops
        assert res.evaluations == len(table)


@pytest.mark.parametrize("difficulty", ["1", "3"])
def test_optuna_is_within_half_a_point_of_the_exhaustive_optimum(space, difficulty):
    target = space.target(difficulty)
    for flops in (5e8, 2e9, 1e10):
        budget = Budget({"flops": flops, "latency_s": 0.5})
        exact = search_exhaustive(space, target, budget)
        found = search_optuna(space, target, budget, n_trials=40, seed=1)
        assert found.best["flops"] <= flops and found.best["latency_s"] <= 0.5
        assert exact.best["accuracy"] - found.best["accuracy"] <= 0.005
        assert found.evaluations < exact.evaluations


def test_optuna_with_the_same_seed_gives_the_same_answer(space):
    target, budget = space.target("2"), Budget({"flops": 2e9})
    a = search_optuna(space, target, budget, n_trials=60, seed=3)
    b = search_optuna(space, target, budget, n_trials=60, seed=3)
    assert (a.best["arm"], a.best["knob_value"]) == (b.best["arm"], b.best["knob_value"])


def test_conservative_risk_maximizes_the_lower_bound(space):
    target, budget = space.target("3"), Budget({"flops": 5e9})
    res = search_exhaustive(space, target, budget, risk="conservative")
    feasible = space.table(target)
    feasible = feasible[feasible["flops"] <= 5e9]
    assert res.best["accuracy_lo"] == pytest.approx(feasible["accuracy_lo"].max())


def test_binding_constraint_names_the_limit_that_keeps_better_options_out(space):
    target = space.target("2")
    assert search_exhaustive(space, target, Budget({"flops": 1e9, "usd": 1.0})).binding == "flops"
    assert search_exhaustive(space, target, Budget({"flops": 1e15, "usd": 5e-4})).binding == "usd"
    assert search_exhaustive(space, target, Budget({"flops": 1e15})).binding == "none"
    res = search_exhaustive(space, target, Budget({"flops": 1.0}))
    assert res.best is None and res.binding == "infeasible"
    with pytest.raises(ValueError, match="unknown budget 'watts'"):
        Budget({"watts": 3.0})


def test_auto_enumerates_small_spaces_and_runs_optuna_when_asked(space):
    target, budget = space.target("1"), Budget({"tokens": 200})
    assert search(space, target, budget).method == "exhaustive"
    assert search(space, target, budget, method="optuna", n_trials=30).method == "optuna"


def test_pareto_front_is_non_dominated_and_nsga2_covers_most_of_it(space):
    target, budget = space.target("2"), Budget({"flops": 2e10})
    exact = pareto_exhaustive(space, target, budget)
    front = exact.pareto
    table = space.table(target)
    table = table[table["flops"] <= 2e10]
    for r in front.itertuples():  # nothing is cheaper-or-equal and strictly more accurate
        dominated = (table["flops"] <= r.flops) & (table["accuracy"] > r.accuracy + 1e-12)
        assert not dominated.any()
    assert np.all(np.diff(front["flops"]) > 0) and np.all(np.diff(front["accuracy"]) > 0)
    approx = pareto_optuna(space, target, budget, n_trials=400, seed=0)
    ref = 2e10 * 1.01
    ratio = hypervolume_2d(approx.pareto, "accuracy", "flops", ref) / hypervolume_2d(
        front, "accuracy", "flops", ref
    )
    assert 0.95 <= ratio <= 1.0 + 1e-9


def test_two_worker_processes_share_one_journal_study(space, tmp_path):
    journal = tmp_path / "study.journal"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests" / "planner")!r}]
        import planner_fixtures as F
        from planner.search import Budget, search_optuna
        from planner.space import OptionSpace
        space = OptionSpace.from_curves(F.curves_table(n_questions=30, pool=16), F.toy_coster(),
                                        architectures=F.ARCH, fit_if_missing=False)
        res = search_optuna(space, space.target("2"), Budget({{"flops": 2e9}}), n_trials=12,
                            seed=int(sys.argv[1]), storage="journal:{journal}", study_name="shared")
        print(len(res.study.trials))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for seed in (0, 1)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    import optuna

    from planner.search import open_storage

    study = optuna.load_study(study_name="shared", storage=open_storage(f"journal:{journal}"))
    assert len(study.trials) == 24
    assert max(int(o.strip()) for o, _ in outs) == 24  # the later worker saw the other's trials
    values = {t.user_attrs["arm"] for t in study.trials}
    assert len(values) > 1
