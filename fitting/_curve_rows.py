"""The rows of the curves table: metric names, column order, and the summary of a per-question
accuracy matrix into rows (the mean over questions with a bootstrap interval over questions).

Shared by :mod:`fitting.curves` (curves from samples) and :mod:`fitting.counts` (curves from
per-question counts), so that both produce the same table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import schema as S
from ._pools import POOL_POLICIES

__all__ = [
    "PASS",
    "MAJORITY",
    "BEST_OF",
    "WEIGHTED",
    "ACCURACY_METRIC",
    "METRICS",
    "POOL_STRATEGIES",
    "SINGLE_POINT_KNOBS",
    "MAJORITY_DRAWS",
    "CURVE_COLUMNS",
    "curves_frame",
    "check_args",
    "extra_columns",
    "summarize",
]

PASS = "pass@k"
MAJORITY = "majority@k"
BEST_OF = "best_of@k"
WEIGHTED = "weighted@k"
ACCURACY_METRIC = "accuracy"
#: the pool metrics, in output order
METRICS = (PASS, MAJORITY, BEST_OF, WEIGHTED)
#: strategies whose rows are a pool of interchangeable samples per question
POOL_STRATEGIES = ("pool", "hybrid")
#: strategy with one execution per question -> config knob giving its k (None: k = 1).
#: ``refine``'s k is its number of revision rounds (0 = one attempt), as in its config.
SINGLE_POINT_KNOBS: dict[str, str | None] = {
    "greedy": None,
    "beam": "width",
    "refine": "rounds",
    "budget": "tokens",
}
#: Monte Carlo draws per k and question of majority@k where the exact method is too slow
MAJORITY_DRAWS = 1000
#: the column order of the curves table
CURVE_COLUMNS = (
    *S.GROUP_KEYS,
    S.METRIC,
    S.K,
    S.KNOB,
    S.ACCURACY,
    S.ACCURACY_LO,
    S.ACCURACY_HI,
    S.MC_SE,
    S.N_QUESTIONS,
    S.POOL_SIZE,
    S.ESTIMATOR,
    S.POOL_POLICY,
    S.SCORE_SOURCE,
    S.MEAN_PROMPT_TOKENS,
    S.MEAN_COMPLETION_TOKENS,
    S.MEAN_TOKENS,
    S.MEAN_LATENCY_S,
    S.MEAN_KV_BYTES,
    S.MEAN_FLOPS,
)


def curves_frame(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    return out.astype({S.K: "int64", S.N_QUESTIONS: "int64", S.POOL_SIZE: "int64"})


def check_args(metrics, pool_policy: str) -> None:
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {bad}; valid: {list(METRICS)}")
    if pool_policy not in POOL_POLICIES:
        raise ValueError(f"pool_policy must be one of {list(POOL_POLICIES)}, got {pool_policy!r}")


def extra_columns(questions, knob, pool_size, cost, estimator, policy, source=None, mc_se=0.0) -> dict:
    return {
        "questions": questions,
        "knob": knob,
        "pool_size": pool_size,
        "cost": cost,
        "estimator": estimator,
        "policy": policy,
        "source": source,
        "mc_se": mc_se,
    }


def summarize(base, metric, per_q, ks, extra, n_boot, level, rng) -> list[dict]:
    q = per_q.shape[0]
    valid = np.isfinite(per_q)
    filled = np.where(valid, per_q, 0.0)
    n_valid = valid.sum(axis=0)
    point = filled.sum(axis=0) / np.maximum(n_valid, 1)
    if n_boot > 0:
        counts = rng.multinomial(q, np.full(q, 1.0 / q), size=n_boot)  # (n_boot, q) question weights
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (counts @ filled) / (counts @ valid)  # (n_boot, K); NaN where no drawn question covers k
        alpha = (1.0 - level) / 2.0
        quantile = np.nanquantile if np.isnan(boot).any() else np.quantile  # nanquantile is ~20x slower
        lo = quantile(boot, alpha, axis=0, method="lower")
        hi = quantile(boot, 1.0 - alpha, axis=0, method="higher")
    else:
        lo = hi = np.full(len(ks), np.nan)
    mc_se = np.broadcast_to(np.asarray(extra["mc_se"], dtype=float), point.shape)
    rows = []
    for j, k in enumerate(ks):
        row = dict(base)
        row.update({S.METRIC: metric, S.K: k, S.KNOB: extra["knob"], S.ACCURACY: float(point[j])})
        row.update({S.ACCURACY_LO: float(lo[j]), S.ACCURACY_HI: float(hi[j]), S.MC_SE: float(mc_se[j])})
        row.update({S.N_QUESTIONS: int(n_valid[j]), S.POOL_SIZE: extra["pool_size"]})
        estimator = extra["estimator"]
        estimator = estimator if isinstance(estimator, str) else str(estimator[j])
        row.update({S.ESTIMATOR: estimator, S.POOL_POLICY: extra["policy"]})
        row.update({S.SCORE_SOURCE: extra["source"]})
        row.update({c: float(v[j]) for c, v in extra["cost"].items()})
        rows.append(row)
    return rows
