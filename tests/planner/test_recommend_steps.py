"""plan() as a pipeline of named steps: the request given as a PlanRequest or as a budget
with settings is the same plan, each step's refusal is one PlanError naming what would work,
and no function of the module is longer than 80 lines.

Fixture: tests/planner/planner_fixtures.py's synthetic samples (no model was run)."""

from __future__ import annotations

import ast
import inspect

import planner_fixtures as F
import pytest

from planner import recommend
from planner.costs import ModelSpec
from planner.profile import profile_from_tables
from planner.recommend import PlanError, plan
from planner.request import PlanRequest


@pytest.fixture(scope="module")
def vote_profile():
    samples = F.samples_table(n_questions=8, pool=8)
    catalog = {
        "lab-s": "qwen2.5-0.5b",
        "lab-m": "qwen2.5-1.5b",
        "lab-l": "qwen2.5-7b",
        "lab-moe": "qwen3-30b-a3b",
    }
    specs = {m: ModelSpec.from_catalog(c) for m, c in catalog.items()}
    return profile_from_tables(samples, specs, n_boot=0)


def test_a_request_and_a_budget_with_settings_give_the_same_plan(vote_profile):
    settings = {"difficulty": "2", "hardware": "h100", "objective": "pareto"}
    from_budget = plan(vote_profile, {"flops": 1e14}, **settings).to_json()
    request = PlanRequest({"flops": 1e14}, difficulty="1", hardware="h100")
    from_request = plan(vote_profile, request, difficulty="2", objective="pareto").to_json()
    assert from_budget == from_request
    assert from_budget["request"]["difficulty"] == "2" and from_budget["pareto"]
    # on a GPU the memory of one replica is a limit the request did not state
    assert from_budget["serving"]["memory_bytes_per_gpu"] > 0


@pytest.mark.parametrize(
    ("budget", "settings", "message"),
    [
        ({"effective_flops": 1e14}, {"api": "o3-mini"}, r"effective_flops \(Kinetics\) needs a GPU"),
        ({"flops": 1e14}, {"hardware": "h999"}, r"unknown GPU 'h999'"),
        ({"flops": 1e14}, {"models": ("lab-x",)}, r"lab-x"),
        ({"flops": 1.0}, {}, r"no option fits the budget \(flops <= 1: the cheapest option is lab-s"),
        ({"usd": 1e-9}, {"difficulty": "auto"}, r"--difficulty auto .* flops or tokens budget, got 'usd'"),
    ],
)
def test_each_step_refuses_in_one_line(vote_profile, budget, settings, message):
    with pytest.raises(PlanError, match=message) as err:
        plan(vote_profile, budget, **settings)
    assert "\n" not in str(err.value)


def test_no_function_of_the_recommendation_is_over_80_lines():
    tree = ast.parse(inspect.getsource(recommend))
    long = {
        n.name: n.end_lineno - n.lineno + 1
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.end_lineno - n.lineno + 1 > 80
    }
    assert long == {}
