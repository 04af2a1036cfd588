"""What a deployment really runs, as the planner prices it: an exact-checker deployment (`verified`), options priced from each
question's own per-sample tokens, and the serving assumptions (batch of 64 sequences, automatic
tensor parallelism, effective-FLOPs budgets, missing prompt tokens, given-number model specs).

Fixtures: synthetic samples tables with KNOWN token counts (no model was run)."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pandas as pd
import planner_fixtures as F
import pytest
from typer.testing import CliRunner

from fitting import schema as S
from planner.catalog import get_hardware
from planner.cli import app
from planner.costs import DEFAULT_CONCURRENCY, ModelSpec, TokenLengths, Workload, estimate_cost
from planner.profile import profile_from_tables
from planner.recommend import PlanError, build_space, plan
from planner.space import CostModel
from profiling.storage import write_shard

SIZES = {"q-s": "qwen2.5-0.5b", "q-m": "qwen2.5-1.5b", "q-l": "qwen2.5-7b"}
H100 = get_hardware("h100")


def _specs(names=SIZES):
    return {m: ModelSpec.from_catalog(c) for m, c in names.items()}


def spread_samples(n_questions: int = 12, pool: int = 16, seed: int = 0, mean_tokens: float = 2_000.0):
    """Pools whose lengths spread widely within a question (lognormal, sigma 1) and whose prompts
    differ between questions; larger models are right more often."""
    rng = np.random.default_rng(seed)
    rows = []
    z = rng.normal(0.0, 1.0, n_questions)
    prompts = rng.integers(50, 600, n_questions)
    for skill, m in enumerate(SIZES):
        for q in range(n_questions):
            p = 1.0 / (1.0 + np.exp(-(skill - 1.0 + z[q])))
            ok = rng.random(pool) < p
            toks = np.maximum(rng.lognormal(np.log(mean_tokens) - 0.5, 1.0, pool).round(), 1)
            for j in range(pool):
                rows.append(
                    {
                        S.MODEL: m,
                        S.STRATEGY: "pool",
                        S.CONFIG: F.POOL_CONFIG,
                        S.QUESTION_ID: f"q{q}",
                        S.DIFFICULTY: "all",
                        S.SAMPLE_IDX: j,
                        S.ANSWER: "A" if ok[j] else f"W{j % 3}",
                        S.REFERENCE: "A",
                        S.CORRECT: bool(ok[j]),
                        S.PROMPT_TOKENS: int(prompts[q]),
                        S.COMPLETION_TOKENS: int(toks[j]),
                    }
                )
    return S.validate_samples(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def spread_profile():
    return profile_from_tables(spread_samples(), _specs(), n_boot=0, verifier="exact")


def realized(samples: pd.DataFrame, model: str, n: int, spec: ModelSpec, tp: int, field: str) -> float:
    """The per-query cost of a pool of ``n`` recomputed from the per-sample tokens: each question
    priced on its own with ``estimate_cost``, averaged over the questions."""
    rows = samples[samples[S.MODEL] == model]
    costs = []
    for _, g in rows.groupby(S.QUESTION_ID):
        lengths = TokenLengths.from_samples(g[S.COMPLETION_TOKENS].to_numpy(float))
        w = Workload.from_strategy(f"pool:n={n}", int(g[S.PROMPT_TOKENS].min()), lengths)
        costs.append(getattr(estimate_cost(spec, w, H100, concurrency=DEFAULT_CONCURRENCY, tp=tp), field))
    return float(np.mean(costs))


# ---- --verifier exact -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vote_profile():
    samples = F.samples_table(n_questions=12, pool=16)
    specs = {
        "lab-s": _specs()["q-s"],
        "lab-m": _specs()["q-m"],
        "lab-l": _specs()["q-l"],
        "lab-moe": ModelSpec.from_catalog("qwen3-30b-a3b"),
    }
    return profile_from_tables(samples, specs, n_boot=0, verifier="exact")


def test_verified_is_never_offered_without_the_flag(vote_profile):
    space = build_space(vote_profile, CostModel(vote_profile.specs, hardware=H100))
    strategies = set(space.table(space.target("2"))["strategy"])
    assert "verified" not in strategies and strategies
    assert any("--verifier exact" in n for n in space.notes)
    rec = plan(vote_profile, {"flops": 1e14}, difficulty="2")
    assert rec.choice["strategy"] != "verified" and "verifier" not in rec.choice


def test_verifier_exact_offers_best_of_n_with_the_checker_at_pass_at_n(vote_profile):
    rec = plan(vote_profile, {"flops": 1e14}, difficulty="2", verifier="exact")
    d = rec.to_json()
    assert d["choice"]["strategy"] == "verified" and d["choice"]["verifier"] == "exact"
    n = d["choice"]["knobs"]["n"]
    c = vote_profile.curves
    pass_at = c[(c[S.MODEL] == d["choice"]["model"]) & (c[S.METRIC] == "pass@k") & (c[S.DIFFICULTY] == "2")]
    if d["source"] == "measured":
        assert d["expected_accuracy"] == pytest.approx(
            float(pass_at.set_index(S.K).loc[n, S.ACCURACY]), abs=1e-6
        )
    assert d["assumptions"]["checker_cost_per_sample"].startswith("0 (assumed free")
    assert d["request"]["verifier"] == "exact"


def test_the_checker_cost_is_paid_per_checked_sample(vote_profile):
    free = build_space(vote_profile, CostModel(vote_profile.specs, hardware=H100), verifier="exact")
    paid = build_space(
        vote_profile,
        CostModel(vote_profile.specs, hardware=H100, checker_cost={"flops": 1e9, "latency_s": 0.5}),
        verifier="exact",
    )
    arm = next(a for a in free.arms({"2": 1.0}) if a.strategy == "verified")
    a, b = free.evaluate_values(arm, [4, 8], {"2": 1.0}), paid.evaluate_values(arm, [4, 8], {"2": 1.0})
    np.testing.assert_allclose(b["flops"] - a["flops"], [4e9, 8e9])
    np.testing.assert_allclose(b["latency_s"] - a["latency_s"], [0.5, 0.5])  # the checks run in parallel
    with pytest.raises(ValueError, match="give verifier = 'exact' too"):
        plan(vote_profile, {"flops": 1e14}, checker_cost={"flops": 1.0})


def test_verifier_exact_needs_pass_at_k_curves():
    prof = profile_from_tables(
        F.samples_table(n_questions=6, pool=8), {m: _specs()["q-s"] for m in F.MODELS}, n_boot=0
    )
    with pytest.raises(PlanError, match="needs pass@k curves"):
        plan(prof, {"flops": 1e14}, verifier="exact")


# ---- per-sample pricing -------------------------------------------------------------------------
def _two_lengths_profile(lengths, prompt=0):
    rows = []
    for q in range(4):
        for j, t in enumerate(lengths):
            rows.append(
                {
                    S.MODEL: "m",
                    S.STRATEGY: "pool",
                    S.CONFIG: F.POOL_CONFIG,
                    S.QUESTION_ID: f"q{q}",
                    S.SAMPLE_IDX: j,
                    S.ANSWER: "A" if (q + j) % 2 else "B",
                    S.REFERENCE: "A",
                    S.CORRECT: bool((q + j) % 2),
                    S.PROMPT_TOKENS: prompt,
                    S.COMPLETION_TOKENS: t,
                }
            )
    return profile_from_tables(pd.DataFrame(rows), {"m": ModelSpec.from_catalog("llama-3.1-8b")}, n_boot=0)


def test_half_100_half_10000_costs_its_attention_not_that_of_5050_each():
    spec = ModelSpec.from_catalog("llama-3.1-8b")
    costs = []
    for lengths in ([100, 10_000], [5_050, 5_050]):
        prof = _two_lengths_profile(lengths)
        space = build_space(prof, CostModel(prof.specs, hardware=H100))
        arm = next(a for a in space.arms({"all": 1.0}) if a.strategy == "majority")
        costs.append(space.evaluate_values(arm, [2], {"all": 1.0}))
    mixed, mean = costs
    # a pool of the two samples: decode attention FLOPs a * L (L + 1) / 2 per chain, so the
    # difference is a / 2 * (100^2 + 10000^2 - 2 * 5050^2), every other term equal
    a = spec.num_layers * spec.attention_flops_per_key()
    assert mixed["flops"][0] - mean["flops"][0] == pytest.approx(
        a / 2 * (100**2 + 10_000**2 - 2 * 5_050**2), rel=1e-9
    )
    assert mixed["latency_s"][0] > 1.9 * mean["latency_s"][0]  # the pool waits for its 10,000-token sample


@pytest.mark.parametrize("key", ["flops", "effective_flops"])
def test_every_planned_choice_realizes_within_its_budget(spread_profile, key):
    samples = spread_profile.samples
    specs = spread_profile.specs
    budgets = np.geomspace(2e12, 2e14, 7) if key == "flops" else np.geomspace(2e13, 2e15, 7)
    for budget in budgets:
        try:
            rec = plan(spread_profile, {key: float(budget)}, method="exhaustive")
        except PlanError:
            continue
        d = rec.to_json()
        model, n = d["choice"]["model"], int(d["choice"]["knobs"].get("n", 1))
        assert d["choice"]["strategy"] in ("majority", "best_of")
        spent = realized(samples, model, n, specs[model], d["serving"]["tp"], key)
        assert spent <= budget * (1 + 1e-9), (budget, d["choice"], spent / budget)
        assert d["cost"][key] == pytest.approx(spent, rel=1e-5)


# ---- serving assumptions ------------------------------------------------------------------------
def test_auto_tp_fits_a_32b_model_with_pools_instead_of_ruling_it_out():
    samples = spread_samples(n_questions=6, pool=16, mean_tokens=8_000)
    samples = samples[samples[S.MODEL] == "q-l"].assign(**{S.MODEL: "big"})
    prof = profile_from_tables(samples, {"big": ModelSpec.from_catalog("qwen3-32b")}, n_boot=0)
    rec = plan(prof, {"flops": 1e16}, method="exhaustive").to_json()
    assert rec["serving"]["tp_source"] == "auto" and rec["serving"]["tp"] > 1
    assert rec["serving"]["memory_bytes_per_gpu"] <= H100.memory_bytes * 0.9
    with pytest.raises(PlanError, match="memory_bytes"):
        plan(prof, {"flops": 1e16}, method="exhaustive", tp=1)


def test_missing_prompt_tokens_price_the_generated_tokens_with_a_note():
    samples = F.samples_table(n_questions=6, pool=8).assign(**{S.PROMPT_TOKENS: None})
    prof = profile_from_tables(samples, {m: _specs()["q-s"] for m in F.MODELS}, n_boot=0)
    rec = plan(prof, {"flops": 1e13}, difficulty="2")
    assert rec.cost["flops"] > 0
    assert any("no prompt tokens measured" in n for n in rec.notes)


def test_default_concurrency_is_that_of_ttc_costs():
    from planner.cli.report_cmd import report
    from planner.report import build_report
    from planner.request import PlanRequest

    assert PlanRequest({"flops": 1.0}).concurrency == DEFAULT_CONCURRENCY == 64
    assert PlanRequest({"flops": 1.0}).tp is None
    # the command passes no concurrency unless given, so build_report's default applies
    assert inspect.signature(report).parameters["concurrency"].default is None
    assert inspect.signature(build_report).parameters["concurrency"].default == DEFAULT_CONCURRENCY


def test_recommend_help_states_the_serving_flags():
    out = CliRunner().invoke(app, ["recommend", "--help"], env={"COLUMNS": "220"}).output
    assert "Queries served together" not in out
    for flag in (
        "--budget-eflops",
        "--verifier",
        "--checker-cost",
        "--tp",
        "Sequences one replica decodes per step",
    ):
        assert flag in out, flag


@pytest.fixture(scope="module")
def imported_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imported")
    samples = spread_samples(n_questions=6, pool=8, mean_tokens=500)
    write_shard(folder, samples[samples[S.MODEL] == "q-m"].assign(**{S.MODEL: "mystery"}))
    return folder


def _cli(*args):
    return CliRunner().invoke(app, [*args, "--n-boot", "0"], env={"COLUMNS": "220"})


def test_model_spec_numbers_price_an_architecture_the_catalog_lacks(imported_dir):
    spec = "mystery=params:1.5e9,layers:28,kv_heads:2,head_dim:128"
    r = _cli("recommend", str(imported_dir), "--budget-eflops", "1e15", "--model-spec", spec, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["choice"]["model"] == "mystery" and d["cost"]["effective_flops"] <= 1e15
    bad = _cli(
        "recommend",
        str(imported_dir),
        "--budget-flops",
        "1e13",
        "--model-spec",
        "mystery=params:1.5e9,layers:28",
    )
    assert bad.exit_code == 2
    msg = " ".join(bad.output.split())
    assert "missing field(s) kv_heads, head_dim" in msg and "llama" not in msg


def test_verifier_exact_on_the_command_line_is_labelled(imported_dir):
    spec = "mystery=params:1.5e9,layers:28,kv_heads:2,head_dim:128"
    r = _cli(
        "recommend", str(imported_dir), "--budget-flops", "1e14", "--model-spec", spec, "--verifier", "exact"
    )
    assert r.exit_code == 0, r.output
    assert (
        "verified" in r.output
        and "(exact" in r.output  # the option column may wrap "(exact checker)"
        and "exact checker cost per checked sample: 0 (assumed free" in r.output
        and "served on H100-SXM x 1 (tp auto), 64 sequences per step" in r.output
    )
    e = _cli("evaluate", str(imported_dir), "--model-spec", spec, "--verifier", "exact", "--json")
    assert e.exit_code == 0, e.output
    out = json.loads(e.output)
    assert any("verified" in row["choice"] and "(exact checker)" in row["choice"] for row in out["budgets"])
    assert out["serving"]["tp"] == "auto" and out["serving"]["checker_cost"] == {}


def test_report_context_labels_verified_options(vote_profile):
    from planner.report.data import planning_context

    ctx = planning_context(vote_profile, gpu="h100", verifier="exact", mix="2")
    table = ctx.table(ctx.mix)
    row = table[table["strategy"] == "verified"].iloc[0]
    assert ctx.label(row["arm"], row["knob_value"]).endswith("(exact checker)")
    plain = planning_context(vote_profile, gpu="h100", mix="2")
    assert "verified" not in set(plain.table(plain.mix)["strategy"])


def test_a_plan_file_declares_the_checker_and_its_cost(tmp_path):
    from planner.request import PlanRequest

    f = tmp_path / "plan.toml"
    f.write_text('verifier = "exact"\ngpu = "h100"\n[budget]\nflops = 1e13\n[checker_cost]\nusd = 2e-6\n')
    req = PlanRequest.from_toml(f)
    assert req.verifier == "exact" and req.checker_cost == {"usd": 2e-6} and req.tp is None
    assert req.replace(checker_cost={"flops": 1e9}).checker_cost == {"usd": 2e-6, "flops": 1e9}
    with pytest.raises(ValueError, match="verifier must be one of none, exact"):
        PlanRequest({"flops": 1.0}, verifier="reward-model")
    with pytest.raises(ValueError, match="checker_cost: unknown key 'joules'"):
        PlanRequest({"flops": 1.0}, verifier="exact", checker_cost={"joules": 1.0})
