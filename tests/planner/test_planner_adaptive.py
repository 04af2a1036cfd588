"""Adaptive policies replayed offline from sample pools: replays against exact estimators, the
stopping rule's edge cases, the probe route and the budget. Fixtures: tests/planner/planner_fixtures.py."""

from __future__ import annotations

import numpy as np
import planner_fixtures as F
import pytest

from fitting import schema as S
from fitting.estimators import majority_at_k
from planner.costs import ModelSpec
from planner.search import PoolReplay, adaptive_policies, split_questions


@pytest.fixture(scope="module")
def samples():
    return F.samples_table(n_questions=16, pool=16)


@pytest.fixture(scope="module")
def replay(samples):
    spec = ModelSpec.from_catalog("llama-3.1-8b")
    return PoolReplay(samples, {m: spec for m in F.MODELS}, reps=200, seed=0)


def test_split_is_seeded_disjoint_and_stratified():
    qs = [f"q{i}" for i in range(40)]
    diff = {q: str(i % 4) for i, q in enumerate(qs)}
    a, b = split_questions(qs, diff, seed=3)
    assert a.isdisjoint(b) and a | b == set(qs)
    assert (a, b) == split_questions(qs, diff, seed=3) != split_questions(qs, diff, seed=4)
    for label in "0123":
        assert sum(diff[q] == label for q in a) == 5


def test_replayed_majority_matches_the_exact_estimator(samples, replay):
    model = "lab-m"
    g = samples[samples[S.MODEL] == model]
    qs = replay.questions
    for n in (1, 3, 8):
        exact = np.mean([majority_at_k(r[S.ANSWER].tolist(), "A", n) for _, r in g.groupby(S.QUESTION_ID)])
        mc = replay.fixed(qs, model, n)[:, 0].mean()
        assert mc == pytest.approx(exact, abs=0.02)


def test_full_pool_costs_are_the_measured_sums(samples, replay):
    g = samples[samples[S.MODEL] == "lab-s"]
    per_q = g.groupby(S.QUESTION_ID).agg(p=(S.PROMPT_TOKENS, "min"), c=(S.COMPLETION_TOKENS, "sum"))
    got = replay.fixed(list(per_q.index), "lab-s", 16)[:, 1]
    np.testing.assert_allclose(got, (per_q["p"] + per_q["c"]).to_numpy(float))


def test_early_stop_edge_cases_reduce_to_fixed_majority(replay):
    qs = replay.questions
    np.testing.assert_allclose(
        replay.early_stop(qs, "lab-l", votes=1, n_max=16), replay.fixed(qs, "lab-l", 1)
    )
    np.testing.assert_allclose(
        replay.early_stop(qs, "lab-l", votes=17, n_max=16), replay.fixed(qs, "lab-l", 16)
    )
    mid = replay.early_stop(qs, "lab-l", votes=3, n_max=16)
    assert (
        replay.fixed(qs, "lab-l", 1)[:, 1].mean()
        < mid[:, 1].mean()
        < replay.fixed(qs, "lab-l", 16)[:, 1].mean()
    )


def test_probe_route_that_always_stops_is_majority_of_the_probes(replay):
    qs = replay.questions
    route = {lv: ("lab-m", 1) for lv in range(0, 5)}
    np.testing.assert_allclose(replay.probe_route(qs, "lab-m", 4, route), replay.fixed(qs, "lab-m", 4))
    other = replay.probe_route(qs, "lab-s", 2, {lv: ("lab-l", 5) for lv in range(3)})
    np.testing.assert_allclose(other[:, 0], replay.fixed(qs, "lab-l", 5)[:, 0])
    np.testing.assert_allclose(
        other[:, 1], replay.fixed(qs, "lab-l", 5)[:, 1] + replay.fixed(qs, "lab-s", 2)[:, 1]
    )


def test_policies_are_chosen_within_budget_on_train_and_reported_on_test(replay):
    out = adaptive_policies(replay, 150.0, "tokens", seed=1)
    assert set(out["policy"]) == {"fixed", "early_stop", "probe", "oracle_bins"}
    assert (out["train_cost"] <= 150.0 + 1e-9).all()
    assert out["test_accuracy"].between(0, 1).all()
    with pytest.raises(ValueError, match="budget on"):
        adaptive_policies(replay, 1.0, "usd")
