"""TEST FIXTURES for the planner tests: curves and samples tables built from KNOWN per-question
success probabilities (no model was run). Every number here is synthetic and exists only so
the planner's searches can be checked against answers computed independently.

A question ``q`` of difficulty ``d`` answered by model ``m`` is right with probability
``p = sigmoid(skill_m - 1.1 d + z_q)``; a wrong sample gives one of ``n_wrong`` wrong answers
uniformly (so majority vote can fail). Pool metrics at every k are computed exactly from
those probabilities (majority by enumerating vote counts), greedy is right when the correct
answer is the mode.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import binom

from fitting import schema as S
from planner.catalog import get_model_entry
from profiling.storage import new_run_metadata, run_signature, write_run

MODELS = {
    "lab-s": (1e6, -0.3, "dense"),
    "lab-m": (4e6, 0.8, "dense"),
    "lab-l": (16e6, 1.6, "dense"),
    "lab-moe": (4e6, 1.1, "moe"),
}
PARAMS = {m: v[0] for m, v in MODELS.items()}
ARCH = {m: v[2] for m, v in MODELS.items()}
POOL_CONFIG = json.dumps(
    {"cot": True, "n": 32, "reward": "none", "temperature": 1.0, "top_p": 1.0}, sort_keys=True
)
ORACLE_CONFIG = json.dumps(
    {
        "cot": True,
        "n": 32,
        "reward": "oracle",
        "reward_source": "oracle-step-checker",
        "temperature": 1.0,
        "top_p": 1.0,
    },
    sort_keys=True,
)


def question_probs(n_questions: int = 40, difficulties=("1", "2", "3"), seed: int = 0) -> pd.DataFrame:
    """One row per (model, question): difficulty and the probability p of a correct sample."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in difficulties:
        z = rng.normal(0, 1.0, n_questions)
        for m, (_, skill, _) in MODELS.items():
            p = expit(skill - 1.1 * float(d) + 1.5 + z)
            rows += [(m, d, f"q{d}-{i}", float(pi)) for i, pi in enumerate(p)]
    return pd.DataFrame(rows, columns=[S.MODEL, S.DIFFICULTY, S.QUESTION_ID, "p"])


def _majority_weights(k: int, n_wrong: int = 2) -> np.ndarray:
    """g[c] = P(correct wins | c correct votes of k), wrong votes split uniformly over
    ``n_wrong`` answers (exact for n_wrong = 2; uniform tie-breaking)."""
    if n_wrong != 2:
        raise ValueError("the fixture computes majority exactly for two wrong answers")
    g = np.zeros(k + 1)
    for c in range(k + 1):
        r = k - c
        c1 = np.arange(r + 1)
        c2 = r - c1
        top = np.maximum(c1, c2)
        win = np.where(c > top, 1.0, np.where(c == top, 1.0 / (1 + (c1 == c).astype(float) + (c2 == c)), 0.0))
        g[c] = float(binom.pmf(c1, r, 0.5) @ win)
    return g


def majority_exact(p, k: int, n_wrong: int = 2) -> np.ndarray:
    """P(majority vote of k samples is correct) for success probabilities ``p`` (array)."""
    p = np.atleast_1d(np.asarray(p, dtype=float))
    pmf = binom.pmf(np.arange(k + 1)[None, :], k, p[:, None])
    return pmf @ _majority_weights(k, n_wrong)


def curves_table(
    n_questions: int = 40, pool: int = 32, difficulties=("1", "2", "3"), seed: int = 0
) -> pd.DataFrame:
    """A curves table with majority@k, pass@k, simulated best_of@k (k = 1..pool), greedy and a
    grouped beam arm, per model and difficulty; costs grow with difficulty."""
    probs = question_probs(n_questions, difficulties, seed)
    ks = np.arange(1, pool + 1)
    rows = []
    for (m, d), g in probs.groupby([S.MODEL, S.DIFFICULTY]):
        p = g["p"].to_numpy()
        prompt, per_sample = 20.0 + 2 * float(d), 10.0 + 5.0 * float(d)

        def add(strategy, config, metric, k, per_q, completion, m=m, d=d, prompt=prompt):
            acc = float(per_q.mean())
            half = 1.645 * per_q.std(ddof=1) / np.sqrt(len(per_q))
            rows.append(
                {
                    S.MODEL: m,
                    S.STRATEGY: strategy,
                    S.CONFIG: config,
                    S.DIFFICULTY: d,
                    S.METRIC: metric,
                    S.K: int(k),
                    S.ACCURACY: acc,
                    S.ACCURACY_LO: max(acc - half, 0.0),
                    S.ACCURACY_HI: min(acc + half, 1.0),
                    S.N_QUESTIONS: len(per_q),
                    S.MEAN_PROMPT_TOKENS: prompt,
                    S.MEAN_COMPLETION_TOKENS: completion,
                    S.MEAN_TOKENS: prompt + completion,
                }
            )

        for k in ks:
            maj = majority_exact(p, int(k))
            add("pool", POOL_CONFIG, "majority@k", k, maj, k * per_sample)
            add("pool", POOL_CONFIG, "pass@k", k, 1 - (1 - p) ** k, k * per_sample)
            add("pool", ORACLE_CONFIG, "best_of@k", k, 1 - (1 - p) ** k, k * per_sample)
        add("greedy", json.dumps({"cot": True}), "accuracy", 1, (p > 1 / 3).astype(float), per_sample)
        for w in (1, 2, 4, 8):
            cfg = json.dumps(
                {"expansions": 2, "prm": "my:score", "prm_source": "callable:my", "width": w}, sort_keys=True
            )
            add("beam", cfg, "accuracy", 1, 1 - (1 - p) ** (0.8 * w), 2.4 * w * per_sample)
    return pd.DataFrame(rows)


def toy_coster(params=PARAMS):
    """A transparent cost model for tests: 2 P FLOPs per token, $1e-6 per token per million
    parameters, 1 kB of KV per token held, decode latency 1 ms per sequential token."""

    def cost(arm, x, u):
        P = params[arm.model]
        tokens = u.prompt_tokens + u.completion_tokens
        return {
            "flops": 2.0 * P * tokens,
            "tokens": tokens,
            "latency_s": 1e-3 * u.completion_tokens / u.sequences + 1e-4 * u.prompt_tokens,
            "usd": 1e-6 * tokens * P / 1e6,
            "kv_bytes": 1000.0 * tokens,
        }

    return cost


def samples_table(
    n_questions: int = 30, pool: int = 32, difficulties=("1", "2", "3"), seed: int = 0
) -> pd.DataFrame:
    """A samples table drawn from the same probabilities: ``pool`` samples per (model, question),
    answers "A" (correct) or "W0".."W1"; completion tokens ~ Poisson around the fixture means."""
    probs = question_probs(n_questions, difficulties, seed)
    rng = np.random.default_rng(seed + 1)
    rows = []
    for r in probs.itertuples(index=False):
        d = float(getattr(r, S.DIFFICULTY))
        correct = rng.random(pool) < r.p
        wrong = rng.integers(0, 2, pool)
        toks = rng.poisson(10.0 + 5.0 * d, pool)
        for i in range(pool):
            rows.append(
                {
                    S.MODEL: getattr(r, S.MODEL),
                    S.STRATEGY: "pool",
                    S.CONFIG: POOL_CONFIG,
                    S.QUESTION_ID: getattr(r, S.QUESTION_ID),
                    S.DIFFICULTY: getattr(r, S.DIFFICULTY),
                    S.SAMPLE_IDX: i,
                    S.ANSWER: "A" if correct[i] else f"W{wrong[i]}",
                    S.REFERENCE: "A",
                    S.CORRECT: bool(correct[i]),
                    S.PROMPT_TOKENS: int(20 + 2 * d),
                    S.COMPLETION_TOKENS: int(toks[i]),
                }
            )
    return S.validate_samples(pd.DataFrame(rows))


def binomial_majority(p: float, k: int) -> float:
    """Majority of k with a single wrong answer (closed form), for cross-checks."""
    return float(binom.sf(k // 2, k, p) + (0.5 * binom.pmf(k // 2, k, p) if k % 2 == 0 else 0.0))


def write_fixture_run(folder, configs: dict[str, str]) -> None:
    """``run.json`` of a synthetic pool profile whose models stand for the catalog entries
    ``configs`` (model -> catalog name: their architectures price the options)."""
    meta = new_run_metadata(run_signature("fixture", 0, 64, [("pool", POOL_CONFIG)]))
    for model, entry in configs.items():
        meta["models"][model] = {
            "config": dict(get_model_entry(entry).config),
            "dtype": "bfloat16",
            "backend": "hf",
        }
    write_run(folder, meta)
