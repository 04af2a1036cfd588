"""The report's "What to measure next" section: at every report budget it is the block
``ttc recommend`` prints for the mix's choice there (same P(best), regret and actions), and each
action is a command line that ``ttc profile`` parses. Data: the synthetic fixture of
tests/planner/report_fixtures.py (no model is run)."""

from __future__ import annotations

import shlex

import pytest
import report_fixtures as F
import typer

from planner import what_to_measure as W
from planner.cli import app
from planner.profile import load_profile
from planner.recommend import plan
from planner.report import build_report
from planner.report.data import default_budgets, planning_context
from planner.report.measure import measure_next_blocks
from planner.split_engine import HeldOut
from planner.what_to_measure import measure_next

N_BOOT = 10  # the fixture's fits; measure_next raises it to its own floor of replicates


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    profile_dir = F.write_profile(tmp_path_factory.mktemp("fixture-profile"))
    out = tmp_path_factory.mktemp("report") / "report.html"
    return profile_dir, build_report(profile_dir, out, gpu="h100", n_boot=N_BOOT, png=False)


def test_the_section_is_in_the_html_and_markdown_before_the_provenance(built):
    _, files = built
    keys = [s.key for s in files.content.sections]
    assert keys.index("measure_next") == keys.index("provenance") - 1
    page, md = files.html.read_text(), files.markdown.read_text()
    assert "What to measure next" in page and "What to measure next" in md
    assert page.index("What to measure next") < page.index("Provenance")


def test_each_budget_is_what_ttc_recommend_says_to_measure_next(built):
    """Known answer: plan() at the same budget and measure_next with the same seed and replicates
    give the same numbers (equal to 1e-9: the same option space and bootstrap draw)."""
    profile_dir, files = built
    prof = load_profile(profile_dir, n_boot=N_BOOT)
    grid = files.content.frames["budget_grid"]
    sure = files.content.frames["measure_next"]
    budgets = sorted(grid["budget"].unique())
    assert len(sure) == len(budgets) == len(files.content.measure_next)
    for i in (0, len(budgets) - 1):
        rec = plan(prof, {"flops": budgets[i]}, hardware="h100", method="exhaustive", n_boot=N_BOOT)
        want = measure_next(prof, rec)
        _, got = files.content.measure_next[i]
        assert got["p_best"] == pytest.approx(want["p_best"], abs=1e-9)
        assert got["expected_regret_points"] == pytest.approx(want["expected_regret_points"], abs=1e-9)
        assert [a["command"] for a in got["actions"]] == [a["command"] for a in want["actions"]]
        assert sure["P(choice is best)"].iloc[i] == f"{want['p_best']:.2f}"


def test_every_action_is_a_ttc_profile_command_line_that_parses(built):
    profile_dir, files = built
    actions = files.content.frames["measure_next_actions"]
    assert len(actions), "the fixture's choices are uncertain: some profiling lowers the regret"
    profile_cmd = typer.main.get_command(app).commands["profile"]
    for cmd in actions["command"]:
        args = shlex.split(cmd)
        assert args[:2] == ["ttc", "profile"] and args[args.index("--out") + 1] == str(profile_dir)
        ctx = profile_cmd.make_context("profile", args[2:])  # parses and type-checks every option
        assert ctx.params["strategy"] and ctx.params["out"] is not None
    every = {a["command"] for _, b in files.content.measure_next if b for a in b["actions"]}
    assert set(actions["command"]) == every  # one row per distinct command over the budgets


def test_the_bootstrap_and_configs_are_computed_once_for_every_budget(built, monkeypatch):
    """The report's budgets share one option space and target, so the joint question bootstrap
    and the arms' profiled configs (the section's cost, neither depends on the budget) are
    computed once, not once per budget, and the blocks are the report's."""
    profile_dir, files = built
    ctx = planning_context(load_profile(profile_dir, n_boot=N_BOOT), gpu="h100")
    budgets = default_budgets(ctx)
    calls = {"replicates": 0, "arms_from_curves": 0}

    def counted(owner, name):
        real = getattr(owner, name)

        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)

    counted(HeldOut, "replicates")  # the joint question bootstrap
    counted(W, "arms_from_curves")  # the arms' profiled configs (the commands)
    blocks = measure_next_blocks(ctx, budgets, n_boot=N_BOOT)
    assert sum(b is not None for b in blocks) >= 2  # sharing is exercised
    assert calls == {"replicates": 1, "arms_from_curves": 1}
    for got, (_, want) in zip(blocks, files.content.measure_next, strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            assert got["p_best"] == pytest.approx(want["p_best"], abs=1e-9)
            assert [a["command"] for a in got["actions"]] == [a["command"] for a in want["actions"]]
