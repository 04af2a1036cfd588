"""An ``mcts`` profile becomes an arm the planner prices with the cost model and offers.

TEST FIXTURE: a samples folder with KNOWN numbers (no model was run): one model priced with
the catalog config of qwen2.5-1.5b; greedy (right on 1 question in 4) and mcts with an oracle
process reward at 1, 2, 4 and 8 simulations (right on 1, 2, 3 and 4 questions in 4); every row
of a config has the same prompt and completion tokens, so the chain length the planner solves
is known exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fitting import schema as S
from planner import load_profile, plan
from planner.catalog import get_hardware, get_model_entry
from planner.costs import ModelSpec, Workload, estimate_cost
from planner.recommend import build_space
from planner.space import CostModel
from profiling.storage import new_run_metadata, run_signature, write_run, write_shard
from profiling.strategies import get_descriptor, get_strategy

MODEL, CATALOG = "fix-m", "qwen2.5-1.5b"
PROMPT = 40
SIMS = (1, 2, 4, 8)
#: measured completion tokens per execution: 60 for greedy, 45 per simulation for mcts
GREEDY_TOKENS = 60


def mcts_tokens(sims: int) -> int:
    return 45 * sims


def _rows(strategy: str, config: str, tokens: int, right_every: int, n: int = 16) -> list[dict]:
    return [
        {
            S.MODEL: MODEL,
            S.STRATEGY: strategy,
            S.CONFIG: config,
            S.QUESTION_ID: f"q{i}",
            S.DIFFICULTY: "1",
            S.SAMPLE_IDX: 0,
            S.REFERENCE: "A",
            S.ANSWER: "A" if i % 4 < right_every else "W",
            S.CORRECT: i % 4 < right_every,
            S.PROMPT_TOKENS: PROMPT,
            S.COMPLETION_TOKENS: tokens,
            S.LATENCY_S: 1e-3 * tokens,
            S.TASK: "fixture",
            S.BACKEND: "fixture",
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcts-profile")
    configs = [("greedy", get_strategy("greedy").config_json())]
    rows = _rows("greedy", configs[0][1], GREEDY_TOKENS, 1)
    for i, sims in enumerate(SIMS):
        config = get_strategy(f"mcts:simulations={sims}").config_json()
        configs.append(("mcts", config))
        rows += _rows("mcts", config, mcts_tokens(sims), i + 1)
    write_shard(folder, S.validate_samples(pd.DataFrame(rows)))
    meta = new_run_metadata(run_signature("fixture", 0, 128, configs), device="synthetic (no model was run)")
    meta["models"][MODEL] = {"config": dict(get_model_entry(CATALOG).config), "dtype": "bfloat16"}
    write_run(folder, meta)
    return folder


@pytest.fixture(scope="module")
def profile(folder):
    return load_profile(folder, n_boot=0, use_cache=False)


def test_mcts_arm_moves_along_simulations_and_is_priced_by_the_cost_model(profile):
    hardware = get_hardware("h100")
    space = build_space(profile, CostModel(profile.specs, hardware=hardware), include_simulated=True)
    target = {"1": 1.0}
    (arm,) = [a for a in space.arms(target) if a.strategy == "mcts"]
    assert arm.knob == "simulations" and arm.simulated == "prm: oracle-step-checker"
    ev = space.evaluate_values(arm, [4.0], target)
    # the cost model's own price of 4 simulations with the chain length the measured tokens imply
    shape = get_descriptor("mcts").workload_shape({"simulations": 4})
    G = shape.chain_tokens(mcts_tokens(4))
    w = Workload.from_strategy(f"mcts:simulations=4,max_steps={shape.steps}", PROMPT, G)
    assert w.generated_tokens == pytest.approx(mcts_tokens(4), rel=0.02)  # steps rounded up to whole tokens
    est = estimate_cost(ModelSpec.from_catalog(CATALOG), w, hardware, concurrency=64)
    assert ev["flops"][0] == pytest.approx(est.flops, rel=1e-6)
    assert ev["latency_s"][0] == pytest.approx(est.latency_s, rel=1e-6)
    assert ev["tokens"][0] == pytest.approx(PROMPT + mcts_tokens(4))


def test_the_planner_offers_mcts_only_with_simulated_scorers_allowed(profile):
    rec = plan(profile, {"tokens": 1e6}, include_simulated=True, hardware="h100")
    out = rec.to_json()
    assert out["choice"]["strategy"] == "mcts" and out["choice"]["knobs"] == {"simulations": 8}
    assert out["choice"]["simulated"] == "prm: oracle-step-checker" and out["expected_accuracy"] == 1.0
    assert any(r["choice"]["strategy"] == "greedy" for r in out["runners_up"])
    json.dumps(out, allow_nan=False)
    # a tighter budget: 4 simulations (180 tokens + the 40-token prompt) is what fits
    tight = plan(profile, {"tokens": 230}, include_simulated=True, hardware="h100").to_json()
    assert tight["choice"]["strategy"] == "mcts" and tight["choice"]["knobs"] == {"simulations": 4}
    # without --allow-simulated the oracle-guided search is left out, with a note saying why
    real = plan(profile, {"tokens": 1e6}, hardware="h100")
    assert real.to_json()["choice"]["strategy"] == "greedy"
    assert any("mcts" in n and "simulated" in n for n in real.notes)


def test_the_report_compares_mcts_with_beam_and_best_of_n_at_equal_tokens():
    """Two difficulty bins of 10 and 30 questions: over every question, mcts (8 simulations) is
    right on (10 * 0.9 + 30 * 0.5) / 40 = 60% at (10 * 100 + 30 * 300) / 40 = 250 tokens; beam at
    250 tokens lies between its points (100, 20%) and (400, 60%) at log(250 / 100) / log(4) of
    the way: 20% + 40% * 0.661 = 46%; best-of-N was measured only up to 200 tokens: '-'."""
    from planner.report.search import equal_token_table, search_table

    def row(strategy, config, metric, k, d, n, acc, tokens):
        return {
            S.MODEL: "m",
            S.STRATEGY: strategy,
            S.CONFIG: config,
            S.METRIC: metric,
            S.K: k,
            S.DIFFICULTY: d,
            S.N_QUESTIONS: n,
            S.ACCURACY: acc,
            S.MEAN_COMPLETION_TOKENS: tokens,
        }

    mcts = get_strategy("mcts:simulations=8").config_json()
    rows = [
        row("mcts", mcts, "accuracy", 1, "1", 10, 0.9, 100.0),
        row("mcts", mcts, "accuracy", 1, "2", 30, 0.5, 300.0),
    ]
    for d, n in (("1", 10), ("2", 30)):
        rows += [
            row("beam", '{"width": 1}', "accuracy", 1, d, n, 0.2, 100.0),
            row("beam", '{"width": 4}', "accuracy", 1, d, n, 0.6, 400.0),
            row("pool", '{"reward": "none"}', "best_of@k", 1, d, n, 0.3, 50.0),
            row("pool", '{"reward": "none"}', "best_of@k", 4, d, n, 0.4, 200.0),
        ]
    (r,) = equal_token_table(pd.DataFrame(rows)).to_dict("records")
    assert (r["simulations"], r["scorer"], r["generated_tokens"]) == (8, "oracle-step-checker", 250.0)
    assert r["mcts"] == pytest.approx(0.6)
    assert r["best_of"] is None or np.isnan(r["best_of"])
    assert r["beam"] == pytest.approx(0.2 + 0.4 * np.log(2.5) / np.log(4), abs=1e-12)
    shown = search_table(pd.DataFrame(rows)).iloc[0]
    assert (shown["mcts accuracy"], shown["beam at equal tokens"], shown["best-of-N at equal tokens"]) == (
        "60%",
        "46%",
        "-",
    )
