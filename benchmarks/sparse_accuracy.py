"""Accuracy of block top-k sparse attention against dense, from one `ttc profile` run that
profiled a model and its ``@attn_blocks=K`` variants on the same questions.

Prints, per model: greedy accuracy, the accuracy of one sampled answer (all pool samples),
majority vote of the pool, each with its difference to the dense model on the SAME questions
and a 90% question-bootstrap interval of that difference, and the mean and largest context
(prompt + completion tokens) against the tokens a sparse decode step attends to.

    python benchmarks/sparse_accuracy.py runs/sparse-lab
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from fitting import schema as S
from profiling.backends.sparse import split_sparse_spec

N_BOOT = 2000


def per_question(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, question): greedy right, mean of the pool's samples, majority right."""
    greedy = df[df[S.STRATEGY] == "greedy"].groupby([S.MODEL, S.QUESTION_ID])[S.CORRECT].mean()
    pool = df[df[S.STRATEGY] == "pool"]
    sample = pool.groupby([S.MODEL, S.QUESTION_ID])[S.CORRECT].mean()

    def majority(g: pd.DataFrame) -> float:
        counts = g[S.ANSWER].dropna().value_counts()
        if counts.empty:
            return 0.0
        top = counts[counts == counts.max()].index  # ties: the share of tied answers that are right
        ref = g[S.REFERENCE].iloc[0]
        return float(np.mean([str(a) == str(ref) for a in top]))

    maj = pool.groupby([S.MODEL, S.QUESTION_ID])[[S.ANSWER, S.REFERENCE]].apply(majority)
    return pd.DataFrame({"greedy": greedy, "sample": sample, "majority@8": maj}).astype(float)


def main(folder: str) -> None:
    df = S.read_samples(folder)
    df["context"] = df[S.PROMPT_TOKENS] + df[S.COMPLETION_TOKENS]
    table = per_question(df)
    models = sorted(
        table.index.get_level_values(0).unique(), key=lambda m: (split_sparse_spec(m)[1] is not None, m)
    )
    rng = np.random.default_rng(0)
    for m in models:
        base, setting = split_sparse_spec(m)
        mine = table.loc[m]
        ctx = df.loc[df[S.MODEL] == m, "context"]
        attended = "all" if setting is None else f"<= {setting.max_attended}"
        parts = [f"{m:22s} context mean {ctx.mean():5.1f} max {ctx.max():4.0f}, attended {attended:>6s}"]
        for col in mine.columns:
            text = f"{col} {mine[col].mean():.3f}"
            if setting is not None and base in table.index.get_level_values(0):
                diff = (mine[col] - table.loc[base, col]).dropna().to_numpy()
                boot = rng.choice(diff, (N_BOOT, len(diff))).mean(axis=1)
                lo, hi = np.quantile(boot, [0.05, 0.95])
                text += f" ({100 * diff.mean():+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}])"
            parts.append(text)
        print("; ".join(parts))
    print(f"questions per model: {table.groupby(level=0).size().to_dict()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/sparse-lab")
