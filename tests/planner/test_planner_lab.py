"""The planner on a REAL lab profile: `ttc profile` runs the trained lab-s checkpoint on a few
lab-arith questions (greedy, a pool of 6, two budget-forcing configs), then `ttc recommend`
and `ttc evaluate` run on the folder. Skipped when the lab checkpoints are not trained."""

from __future__ import annotations

import json

import pytest
from lab_runs import profile_args
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from planner.costs import lab_checkpoint_dirs

pytestmark = pytest.mark.skipif(
    "lab-s" not in {p.name for p in lab_checkpoint_dirs()}, reason="lab-s checkpoint not trained yet"
)


@pytest.fixture(scope="module")
def lab_profile(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    r = CliRunner().invoke(app, profile_args(out, "greedy", "pool:n=6", "budget:tokens=8|16"))
    assert r.exit_code == 0, r.output
    return out


def run(*args):
    return CliRunner().invoke(app, [*args, "--n-boot", "20"], env={"COLUMNS": "200"})


def test_recommend_on_a_real_profile_prices_the_lab_model_from_run_json(lab_profile):
    r = run("recommend", "--profile", str(lab_profile), "--budget-tokens", "400", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["choice"]["model"] == "lab-s" and d["choice"]["architecture"] == "dense"
    assert d["cost"]["tokens"] <= 400
    spec_flops_per_token = 2 * 0.1e6  # lab-s has ~0.1M parameters: FLOPs per token are ~2e5, not ~1e10
    assert d["cost"]["flops"] / d["cost"]["tokens"] < 50 * spec_flops_per_token
    strategies = {d["choice"]["strategy"], *(x["choice"]["strategy"] for x in d["runners_up"])}
    assert strategies <= {"greedy", "majority", "best_of", "budget"}


def test_optuna_matches_the_enumerator_on_a_real_profile(lab_profile):
    base = ["recommend", "--profile", str(lab_profile), "--budget-tokens", "250", "--json"]
    exact = json.loads(run(*base, "--method", "exhaustive").output)
    found = json.loads(run(*base, "--method", "optuna").output)
    assert exact["expected_accuracy"] - found["expected_accuracy"] <= 0.005


def test_evaluate_on_a_real_profile(lab_profile):
    r = run("evaluate", "--profile", str(lab_profile), "--budget-key", "tokens", "--splits", "5", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["budgets"]
    fits = [row for row in rows if row["choice"] != "nothing fits"]
    assert fits and all(0 <= row["realized_accuracy"]["mean"] <= 1 for row in fits)
    assert all(row["budget"]["tokens"] > 0 and row["regret"]["n_splits"] == 5 for row in fits)


def test_auto_policy_on_a_real_profile(lab_profile):
    r = run(
        "recommend", "--profile", str(lab_profile), "--budget-tokens", "300", "--difficulty", "auto", "--json"
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["choice"]["strategy"] in ("majority", "early_stop", "probe") and d["choice"]["model"] == "lab-s"
    samples = S.read_samples(lab_profile)
    assert set(samples[S.MODEL]) == {"lab-s"}
