"""Reasoning effort is a knob of the arm: profiles at several efforts become arms the planner
prices from their measured tokens (reasoning included) and chooses between.

TEST FIXTURE: a samples folder with KNOWN numbers (no model was run), priced with the catalog
config of qwen2.5-1.5b: greedy at reasoning effort low (right on 1 question in 4, 100 generated
tokens) and high (right on 3 in 4, 400 tokens: the reasoning tokens the API reported).
"""

from __future__ import annotations

import pandas as pd
import pytest

from fitting import schema as S
from planner import load_profile, plan
from planner.catalog import get_model_entry
from profiling.storage import new_run_metadata, run_signature, write_run, write_shard
from profiling.strategies import get_strategy

MODEL = "fix-r"
PROMPT = 30
EFFORTS = {"low": (1, 100), "high": (3, 400)}  # effort -> (right per 4 questions, completion tokens)


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("effort-profile")
    rows, configs = [], []
    for effort, (right, tokens) in EFFORTS.items():
        config = get_strategy(f"greedy:reasoning_effort={effort}").config_json()
        configs.append(("greedy", config))
        rows += [
            {
                S.MODEL: MODEL,
                S.STRATEGY: "greedy",
                S.CONFIG: config,
                S.QUESTION_ID: f"q{i}",
                S.DIFFICULTY: "1",
                S.SAMPLE_IDX: 0,
                S.REFERENCE: "A",
                S.ANSWER: "A" if i % 4 < right else "W",
                S.CORRECT: i % 4 < right,
                S.PROMPT_TOKENS: PROMPT,
                S.COMPLETION_TOKENS: tokens,
                S.LATENCY_S: 1e-3 * tokens,
                S.TASK: "fixture",
                S.BACKEND: "openai",
            }
            for i in range(16)
        ]
    write_shard(folder, S.validate_samples(pd.DataFrame(rows)))
    meta = new_run_metadata(run_signature("fixture", 0, 512, configs), device="synthetic (no model was run)")
    meta["models"][MODEL] = {"config": dict(get_model_entry("qwen2.5-1.5b").config), "dtype": "bfloat16"}
    write_run(folder, meta)
    return load_profile(folder, n_boot=0, use_cache=False)


def test_the_planner_chooses_the_effort_the_budget_affords(profile):
    rich = plan(profile, {"tokens": 1e4}, hardware="h100").to_json()
    assert rich["choice"]["strategy"] == "greedy"
    assert rich["choice"]["knobs"] == {"reasoning_effort": "high"} and rich["expected_accuracy"] == 0.75
    assert rich["cost"]["tokens"] == PROMPT + 400
    (runner_up,) = rich["runners_up"]
    assert (
        runner_up["choice"]["knobs"] == {"reasoning_effort": "low"}
        and runner_up["cost"]["tokens"] == PROMPT + 100
    )
    # high effort's measured tokens do not fit 200: low effort is chosen
    poor = plan(profile, {"tokens": 200}, hardware="h100").to_json()
    assert poor["choice"]["knobs"] == {"reasoning_effort": "low"}
    assert rich["cost"]["flops"] > 3 * poor["cost"]["flops"]  # priced from the generated tokens
