"""TEST FIXTURE for the report tests: a samples folder drawn from KNOWN per-question success
probabilities (no model was run; every number is synthetic).

Model ``m`` answers question ``q`` of difficulty ``d`` correctly with probability
``p = sigmoid(skill_m - 1.2 d + 1.5 + z_q)``; a wrong sample gives one of three wrong answers.
Strategies: a pool of ``POOL_N`` samples (temperature 1), greedy (right when ``p > 0.4``) and
budget forcing at 16/32/64 thinking tokens (right with probability ``p * min(1, tokens / 48)``).
Tokens: prompt ``30 + 5 d``; completions Poisson around ``40 + 20 d``. KV bytes of a pool
request are ``kv_bytes_per_token * sum_i (prompt + completion_i)`` (every sample holds its own
prompt, as HF ``generate`` does), each row carrying a 1/n share, as the profiler records it.
The models are priced with catalog configs written into ``run.json`` (dense 0.5B, 1.5B, 7B
and a 30B-total / 3B-active MoE).
"""

from __future__ import annotations

import html.parser
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from fitting import schema as S
from planner.catalog import get_model_entry
from planner.costs import ModelSpec
from profiling.storage import new_run_metadata, run_signature, write_run, write_shard

#: model -> (catalog config, skill)
MODELS = {
    "fix-s": ("qwen2.5-0.5b", 0.0),
    "fix-m": ("qwen2.5-1.5b", 1.0),
    "fix-l": ("qwen2.5-7b", 2.0),
    "fix-moe": ("qwen3-30b-a3b", 1.4),
}
DIFFICULTIES = ("1", "2", "3")
POOL_N = 12
POOL_CONFIG = json.dumps(
    {"cot": True, "n": POOL_N, "reward": "none", "temperature": 1.0, "top_p": 1.0}, sort_keys=True
)
GREEDY_CONFIG = json.dumps({"cot": True})
BUDGET_TOKENS = (16, 32, 64)
KV_SOURCE = "synthetic-fixture"
#: the charts of a report whose profile has an MoE model
CHART_KEYS = {"budget_map", "accuracy", "pareto", "allocation", "moe", "kv"}


def budget_config(tokens: int) -> str:
    return json.dumps({"answer_tokens": 8, "temperature": 0.0, "tokens": tokens}, sort_keys=True)


def spec(model: str) -> ModelSpec:
    return ModelSpec.from_catalog(MODELS[model][0])


def samples_table(models=tuple(MODELS), n_questions: int = 8, seed: int = 0) -> pd.DataFrame:
    """The fixture's samples table (module docstring)."""
    rng = np.random.default_rng(seed)
    z = {d: rng.normal(0.0, 1.0, n_questions) for d in DIFFICULTIES}
    rows = []
    for m in models:
        skill = MODELS[m][1]
        kv_tok = spec(m).kv_bytes_per_token
        for d in DIFFICULTIES:
            for i in range(n_questions):
                q = f"q{d}-{i}"
                p = float(expit(skill - 1.2 * int(d) + 1.5 + z[d][i]))
                prompt = 30 + 5 * int(d)
                base = {
                    S.MODEL: m,
                    S.QUESTION_ID: q,
                    S.DIFFICULTY: d,
                    S.REFERENCE: "A",
                    S.PROMPT_TOKENS: prompt,
                    S.KV_SOURCE: KV_SOURCE,
                    S.TASK: "fixture",
                    S.BACKEND: "fixture",
                }
                ok = rng.random(POOL_N) < p
                wrong = rng.integers(0, 3, POOL_N)
                toks = rng.poisson(40 + 20 * int(d), POOL_N)
                request_kv = kv_tok * float(np.sum(prompt + toks))
                for j in range(POOL_N):
                    rows.append(
                        {
                            **base,
                            S.STRATEGY: "pool",
                            S.CONFIG: POOL_CONFIG,
                            S.SAMPLE_IDX: j,
                            S.ANSWER: "A" if ok[j] else f"W{wrong[j]}",
                            S.CORRECT: bool(ok[j]),
                            S.COMPLETION_TOKENS: int(toks[j]),
                            S.LATENCY_S: 1e-3 * toks[j],
                            S.KV_BYTES_PEAK: request_kv / POOL_N,
                        }
                    )
                g = int(rng.poisson(40 + 20 * int(d)))
                rows.append(
                    {
                        **base,
                        S.STRATEGY: "greedy",
                        S.CONFIG: GREEDY_CONFIG,
                        S.SAMPLE_IDX: 0,
                        S.ANSWER: "A" if p > 0.4 else "W0",
                        S.CORRECT: p > 0.4,
                        S.COMPLETION_TOKENS: g,
                        S.LATENCY_S: 1e-3 * g,
                        S.KV_BYTES_PEAK: kv_tok * (prompt + g),
                    }
                )
                for t in BUDGET_TOKENS:
                    right = bool(rng.random() < p * min(1.0, t / 48))
                    c = min(t, int(rng.poisson(40 + 20 * int(d)))) + 8
                    rows.append(
                        {
                            **base,
                            S.STRATEGY: "budget",
                            S.CONFIG: budget_config(t),
                            S.SAMPLE_IDX: 0,
                            S.ANSWER: "A" if right else "W1",
                            S.CORRECT: right,
                            S.COMPLETION_TOKENS: c,
                            S.LATENCY_S: 1e-3 * c,
                            S.KV_BYTES_PEAK: kv_tok * (prompt + c),
                        }
                    )
    return S.validate_samples(pd.DataFrame(rows))


def write_profile(
    folder: Path, models=tuple(MODELS), n_questions: int = 8, seed: int = 0, single_bin: bool = False
) -> Path:
    """Write the fixture as a profile folder (one shard and a run.json with each model's config);
    ``single_bin`` labels every question's difficulty "all" (as an import without labels)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    samples = samples_table(models, n_questions, seed)
    if single_bin:
        samples[S.DIFFICULTY] = "all"
    write_shard(folder, samples)
    strategies = [("pool", POOL_CONFIG), ("greedy", GREEDY_CONFIG)] + [
        ("budget", budget_config(t)) for t in BUDGET_TOKENS
    ]
    meta = new_run_metadata(
        run_signature("fixture", seed, 128, strategies), device="synthetic (no model was run)"
    )
    for m in models:
        meta["models"][m] = {
            "config": dict(get_model_entry(MODELS[m][0]).config),
            "dtype": "bfloat16",
            "backend": "fixture",
        }
    write_run(folder, meta)
    return folder


class SpecParser(html.parser.HTMLParser):
    """Collects the embedded JSON specs (``(data-target, text)``), script sources and link targets of
    a report page (a test helper, not a fixture of numbers)."""

    def __init__(self):
        super().__init__()
        self.specs: list[tuple[str, str]] = []
        self.srcs: list[str] = []
        self._target = None
        self._buf = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.srcs += [v for k, v in a.items() if k in ("src", "href") and v is not None]
        if tag == "script" and a.get("type") == "application/json":
            self._target, self._buf = a.get("data-target"), ""

    def handle_endtag(self, tag):
        if tag == "script" and self._target is not None:
            self.specs.append((self._target, self._buf))
            self._target = None

    def handle_data(self, data):
        if self._target is not None:
            self._buf += data
