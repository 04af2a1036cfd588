"""What to measure next on a real lab profile with an arm that has no compute knob (greedy):
its "more questions" action is a ``ttc profile`` command with the run's own greedy spec (the
planner used to fail with a KeyError there, so `ttc recommend`, the report and the demo
crashed on the demo's own profile)."""

from __future__ import annotations

import shlex

import pytest
import typer

from planner import measure_next
from planner.cli import app
from planner.costs import lab_checkpoint_dirs
from planner.profile import load_profile
from planner.recommend import plan
from planner.report.data import default_budgets, planning_context
from profiling.runner import profile

pytestmark = pytest.mark.skipif(
    not {"lab-s", "lab-l"} <= {p.name for p in lab_checkpoint_dirs()}, reason="lab checkpoints missing"
)


def test_a_greedy_arm_gets_a_runnable_more_questions_action(tmp_path):
    out = tmp_path / "lab"
    strategies = ["greedy", "pool:n=8,temperature=1.0"]
    profile(["lab-s", "lab-l"], "lab-arith", strategies, out, per_level=4, progress=False, max_new_tokens=128)
    prof = load_profile(out, n_boot=20)
    budget = default_budgets(planning_context(prof, gpu="h100"), 8)[0]  # greedy is all that fits
    rec = plan(prof, {"flops": budget}, hardware="h100", n_boot=20)
    assert rec.choice["strategy"] == "greedy"
    block = measure_next(prof, rec)
    greedy = [a for a in block["actions"] if a["strategy"] == "greedy"]
    assert greedy and greedy[0]["kind"] == "more questions"
    args = shlex.split(greedy[0]["command"])
    assert args[args.index("--strategy") + 1] == "greedy:cot=true" and "--questions" in args
    command = typer.main.get_command(app).commands["profile"]
    command.make_context("profile", args[2:])  # a command line ttc profile parses
