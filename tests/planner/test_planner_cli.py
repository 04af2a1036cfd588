"""`ttc recommend` and `ttc evaluate` end to end (typer CliRunner) on a profile folder built from
the synthetic fixtures (tests/planner/planner_fixtures.py) with a run.json holding catalog configs."""

from __future__ import annotations

import json

import planner_fixtures as F
import pytest
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from planner.profile import CACHE_DIR, load_profile
from planner.recommend import build_space
from planner.space import CostModel
from profiling.storage import write_shard

DESIGN_KEYS = {
    "request",
    "choice",
    "expected_accuracy",
    "accuracy_interval",
    "source",
    "cost",
    "binding_constraint",
    "runners_up",
}
CONFIGS = {
    "lab-s": "qwen2.5-0.5b",
    "lab-m": "qwen2.5-1.5b",
    "lab-l": "qwen2.5-7b",
    "lab-moe": "qwen3-30b-a3b",
}


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile")
    samples = F.samples_table(n_questions=24, pool=16)
    write_shard(folder, samples)
    F.write_fixture_run(folder, CONFIGS)
    return folder


def run(*args):
    args = list(args)
    if args[0] in ("recommend", "evaluate") and "--n-boot" not in args:
        args += ["--n-boot", "30"]  # fewer bootstrap replicates: the tests check plumbing, not intervals
    return CliRunner().invoke(app, args, env={"COLUMNS": "220"})


def test_recommend_json_is_the_design_object_and_respects_the_budget(profile_dir):
    r = run(
        "recommend", "--profile", str(profile_dir), "--budget-flops", "2e13", "--difficulty", "2", "--json"
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert set(d) == DESIGN_KEYS | {"serving", "measure_next"}
    assert set(d["measure_next"]) == {
        "p_best",
        "expected_regret_points",
        "p_best_beyond_reach",
        "actions",
        "method",
    }
    assert d["serving"]["tp_source"] == "auto" and d["serving"]["concurrency"] == 64
    assert d["request"] == {"budget": {"flops": 2e13}, "difficulty": "2", "hardware": "h100"}
    assert set(d["choice"]) == {"model", "architecture", "strategy", "knobs"}
    assert d["choice"]["architecture"] == ("moe" if d["choice"]["model"] == "lab-moe" else "dense")
    lo, hi = d["accuracy_interval"]
    assert lo <= d["expected_accuracy"] <= hi
    assert d["source"] in ("measured", "fitted", "extrapolated")
    assert set(d["cost"]) == {"flops", "effective_flops", "tokens", "latency_s", "usd", "kv_bytes"}
    assert d["cost"]["flops"] <= 2e13
    assert 2 <= len(d["runners_up"]) <= 3 and all(x["why_not"] for x in d["runners_up"])
    assert d["binding_constraint"] in ("flops", "none")


def test_runner_ups_fit_the_budget_but_at_most_one_with_its_overrun(profile_dir):
    d = json.loads(
        run("recommend", str(profile_dir), "--budget-flops", "2e13", "--difficulty", "2", "--json").output
    )
    within = [r for r in d["runners_up"] if r["cost"]["flops"] <= 2e13 * (1 + 1e-9)]
    over = [r for r in d["runners_up"] if r not in within]
    assert len(within) >= 2 and len(over) <= 1
    arms = [(r["choice"]["model"], r["choice"]["strategy"], json.dumps(r["choice"]["knobs"])) for r in within]
    assert len(set(arms)) == len(arms)
    for r in over:  # the over-budget one says by how much, and is more accurate than the choice
        assert r["why_not"].startswith("over budget: ") and "x the flops limit" in r["why_not"]
        assert r["expected_accuracy"] > d["expected_accuracy"]
        assert f"{r['cost']['flops'] / 2e13:.2g}x" in r["why_not"]
    # no runner-up is dozens of times over budget when a smaller overrun buys the same gain
    prof = load_profile(profile_dir, n_boot=30)
    space = build_space(prof, CostModel(prof.specs))
    table = space.table({"2": 1.0})
    better = table[(table["accuracy"] > d["expected_accuracy"] + 1e-3) & (table["flops"] > 2e13)]
    if over and len(better):
        assert over[0]["cost"]["flops"] == pytest.approx(better["flops"].min(), rel=1e-5)


def test_recommend_fits_100_columns_and_explains_itself(profile_dir):
    r = CliRunner().invoke(
        app,
        ["recommend", str(profile_dir), "--budget-flops", "2e13", "--latency-s", "5", "--n-boot", "30"],
        env={"COLUMNS": "100"},
    )
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    assert "…" not in r.output and "..." not in r.output  # nothing cut
    for text in ("choice", "accuracy", "cost per query", "binding", "runner-ups", "why not"):
        assert text in r.output
    d = json.loads(
        run("recommend", str(profile_dir), "--budget-flops", "2e13", "--latency-s", "5", "--json").output
    )
    knobs = " ".join(f"{k}={v}" for k, v in d["choice"]["knobs"].items())
    flat = " ".join(r.output.split())
    assert (
        f"{d['choice']['model']} ({d['choice']['architecture']}) {d['choice']['strategy']} {knobs}".strip()
        in flat
    )
    assert f"{d['expected_accuracy']:.3f}" in flat and f"{d['cost']['flops']:.3g}" in flat


def test_bad_requests_get_clear_messages(profile_dir):
    r = run("recommend", "--profile", str(profile_dir), "--budget-flops", "1")
    assert r.exit_code == 2 and "the cheapest option is" in r.output
    r = run("recommend", "--profile", str(profile_dir), "--budget-flops", "1e13", "--gpu", "h900")
    assert r.exit_code == 2 and "unknown GPU 'h900'" in r.output and "H100" in r.output
    r = run("recommend", "--profile", str(profile_dir), "--budget-flops", "1e13", "--difficulty", "9")
    assert r.exit_code == 2 and "unknown difficulty '9'" in r.output
    r = run("recommend", "--profile", str(profile_dir))
    assert r.exit_code == 2 and "give at least one budget" in r.output
    r = run("recommend", "--profile", str(profile_dir), "--budget-flops", "1e13", "--model", "gpt-9")
    assert r.exit_code == 2 and "unknown model 'gpt-9'" in r.output and "lab-m" in r.output
    r = run(
        "recommend", "--profile", str(profile_dir), "--budget-usd", "1", "--latency-s", "1", "--api", "o1"
    )
    assert r.exit_code == 2 and "needs an accelerator: --gpu" in r.output
    r = run(
        "recommend", "--profile", str(profile_dir), "--budget-flops", "1e14", "--model", "lab-s", "--json"
    )
    assert json.loads(r.output)["choice"]["model"] == "lab-s"
    r = run("recommend", "--profile", str(profile_dir / "nope"), "--budget-flops", "1e13")
    assert r.exit_code == 2 and "no such samples folder" in r.output


def test_mix_adds_an_allocation_with_one_option_per_bin(profile_dir):
    r = run(
        "recommend",
        "--profile",
        str(profile_dir),
        "--budget-flops",
        "2e13",
        "--mix",
        "1:0.2,2:0.5,3:0.3",
        "--json",
    )
    assert r.exit_code == 0, r.output
    a = json.loads(r.output)["allocation"]
    assert [b["difficulty"] for b in a["bins"]] == ["1", "2", "3"]
    assert a["average_cost"] <= 2e13 * (1 + 1e-9)
    assert a["expected_accuracy"] >= a["best_single_accuracy"] - 1e-9
    assert a["optuna_gap"] >= -1e-9
    assert set(a["best_single_option"]) == {"model", "architecture", "strategy", "knobs"}
    diff = a["difference"]
    assert diff["accuracy"] == pytest.approx(a["expected_accuracy"] - a["best_single_accuracy"], abs=2e-6)
    assert diff["within_noise"] == (abs(diff["accuracy"]) <= diff["se"])
    r = CliRunner().invoke(
        app,
        [
            "recommend",
            str(profile_dir),
            "--budget-flops",
            "2e13",
            "--mix",
            "1:0.2,2:0.5,3:0.3",
            "--n-boot",
            "30",
        ],
        env={"COLUMNS": "100"},
    )
    flat = " ".join(r.output.split())
    assert "|" not in flat.split("per-difficulty allocation")[1]  # no internal arm keys
    assert ("within noise" in flat) == diff["within_noise"] and "SE " in flat
    assert "less flops than that option" in flat or "more flops than that option" in flat


def test_auto_difficulty_recommends_an_adaptive_policy(profile_dir):
    r = run(
        "recommend", "--profile", str(profile_dir), "--budget-tokens", "300", "--difficulty", "auto", "--json"
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert set(d) == DESIGN_KEYS | {"policy"}
    assert set(d["choice"]) == {"model", "architecture", "strategy", "knobs"}  # the usual structure
    assert d["choice"]["strategy"] in ("majority", "early_stop", "probe")
    assert d["choice"]["model"] in CONFIGS and isinstance(d["choice"]["knobs"], dict)
    assert {row["policy"] for row in d["policy"]["table"]} >= {"fixed", "early_stop"}
    for r in d["runners_up"]:
        assert "on the planning half" in r["why_not"] and "SE " in r["why_not"]
    r = CliRunner().invoke(
        app,
        ["recommend", str(profile_dir), "--budget-tokens", "300", "--difficulty", "auto", "--n-boot", "30"],
        env={"COLUMNS": "100"},
    )
    flat = " ".join(r.output.split())
    assert "policy" in flat and "held-out" in flat and "training accuracy" not in flat
    assert max(len(line) for line in r.output.splitlines()) <= 100


def test_pareto_objective_returns_a_monotone_front(profile_dir):
    r = run(
        "recommend",
        "--profile",
        str(profile_dir),
        "--budget-flops",
        "5e13",
        "--objective",
        "pareto",
        "--json",
    )
    assert r.exit_code == 0, r.output
    front = json.loads(r.output)["pareto"]
    flops = [p["cost"]["flops"] for p in front]
    acc = [p["expected_accuracy"] for p in front]
    assert flops == sorted(flops) and acc == sorted(acc) and len(front) >= 3


def test_optuna_with_journal_storage_matches_the_enumerator(profile_dir, tmp_path):
    base = [
        "recommend",
        "--profile",
        str(profile_dir),
        "--budget-flops",
        "2e13",
        "--difficulty",
        "3",
        "--json",
    ]
    exact = json.loads(run(*base, "--method", "exhaustive").output)
    r = run(*base, "--storage", f"journal:{tmp_path / 'j.log'}", "--trials", "80")
    assert r.exit_code == 0, r.output
    found = json.loads(r.output)
    assert exact["expected_accuracy"] - found["expected_accuracy"] <= 0.005


def test_evaluate_reports_realized_accuracy_and_regret_with_intervals(profile_dir):
    r = run("evaluate", "--profile", str(profile_dir), "--json", "--splits", "5")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["n_splits"] == 5 and len(d["budgets"]) == 6
    for row in d["budgets"]:
        acc, regret = row["realized_accuracy"], row["regret"]
        assert 0 <= acc["lo"] <= acc["mean"] <= acc["hi"] <= 1
        assert regret["lo"] <= regret["mean"] <= regret["hi"] and regret["n_splits"] == 5
    r = CliRunner().invoke(
        app, ["evaluate", str(profile_dir), "--splits", "5", "--n-boot", "30"], env={"COLUMNS": "100"}
    )
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 100
    assert "…" not in r.output
    flat = " ".join(r.output.split())
    assert "5 random half splits" in flat and ("within noise" in flat or "above its SE" in flat)
    # a baseline cell names the model it picked
    models = {m for row in d["budgets"] for m in row["baseline_models"].values() if m}
    assert models and any(f" {m}" in flat for m in models)


def test_curves_are_cached_and_a_new_shard_invalidates_the_cache(profile_dir, tmp_path):
    import shutil

    folder = tmp_path / "p"
    shutil.copytree(profile_dir, folder)
    first = load_profile(folder, n_boot=30)
    groups = sorted((folder / CACHE_DIR / "curves").glob("*.json"))
    assert len(groups) == first.curves.groupby(list(S.GROUP_KEYS)).ngroups
    assert len(S.shard_paths(folder)) == 1  # the cache is never read as a shard
    extra = F.samples_table(n_questions=2, pool=16, difficulties=("4",), seed=9)
    write_shard(folder, extra.assign(**{S.QUESTION_ID: extra[S.QUESTION_ID] + "-new"}))
    prof = load_profile(folder, n_boot=30)
    assert "4" in set(prof.curves[S.DIFFICULTY])
    # only the new groups were estimated; the others came from the cache
    assert prof.cache.by_kind["curves", "hits"] == len(groups)
    assert len(sorted((folder / CACHE_DIR / "curves").glob("*.json"))) > len(groups)


def test_extra_model_of_a_profiled_family_is_predicted_and_labelled_extrapolated(profile_dir):
    from planner.costs import ModelSpec
    from planner.profile import load_profile
    from planner.recommend import build_space
    from planner.space import CostModel, ExtraModel

    r = run(
        "recommend",
        "--profile",
        str(profile_dir),
        "--budget-flops",
        "5e14",
        "--extra-model",
        "lab-xl=qwen2.5-14b",
        "--json",
    )
    assert r.exit_code == 0, r.output
    prof = load_profile(profile_dir, n_boot=30)
    spec = ModelSpec.from_catalog("qwen2.5-14b")
    extra = [ExtraModel("lab-xl", "lab", float(spec.params_active))]
    space = build_space(prof, CostModel({**prof.specs, "lab-xl": spec}), extra_models=extra)
    tab = space.table(space.target("2"))
    assert set(tab.loc[tab["model"] == "lab-xl", "source"]) == {"extrapolated"}
    r = run(
        "recommend",
        "--profile",
        str(profile_dir),
        "--budget-flops",
        "5e14",
        "--extra-model",
        "other-7b=qwen2.5-7b",
    )
    assert r.exit_code == 2 and "family 'other' has no profiled model" in r.output


def test_config_file_gives_the_request_and_flags_override_it(profile_dir, tmp_path):
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(
        f'profile = "{profile_dir}"\ndifficulty = "2"\nn-boot = 30\n[budget]\nflops = 2e13\n'
    )
    from_file = run("recommend", "--config", str(plan_file), "--json")
    assert from_file.exit_code == 0, from_file.output
    positional = run("recommend", str(profile_dir), "--budget-flops", "2e13", "--difficulty", "2", "--json")
    assert json.loads(from_file.output) == json.loads(positional.output)  # the same request either way
    over = run("recommend", "--config", str(plan_file), "--risk", "conservative", "--json")
    assert json.loads(over.output)["request"]["risk"] == "conservative"
    assert json.loads(over.output)["request"]["difficulty"] == "2"  # the rest of the file still applies


def test_one_choice_check_gives_one_message_in_every_command(profile_dir, tmp_path):
    rec = run("recommend", str(profile_dir), "--budget-flops", "2e13", "--risk", "bold")
    rep = CliRunner().invoke(
        app, ["report", str(profile_dir), "--risk", "bold", "--out", str(tmp_path / "r.html")]
    )
    want = "risk must be one of expected, conservative; got 'bold'"
    assert rec.exit_code == rep.exit_code == 2 and want in rec.output and want in rep.output
    both = run("recommend", str(profile_dir), "--profile", str(tmp_path), "--budget-flops", "2e13")
    assert both.exit_code == 2 and "give the samples folder once" in both.output


def test_the_planner_cache_is_written_atomically_and_durably(profile_dir, tmp_path, monkeypatch):
    import shutil

    from common import atomic

    synced = []
    monkeypatch.setattr(atomic, "_fsync_dir", lambda folder: synced.append(folder))
    folder = tmp_path / "p"
    shutil.copytree(profile_dir, folder, ignore=shutil.ignore_patterns(CACHE_DIR))
    load_profile(folder, n_boot=30)
    assert synced and {p.parent for p in synced} == {folder / CACHE_DIR}
    assert not list((folder / CACHE_DIR).rglob("_tmp-*"))
