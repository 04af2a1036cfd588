"""Forecast-targeted adaptive profiling vs uniform pools, on real repeated-sampling counts.

Data: ``shared/data/real/monkeys_gsm8k_pythia_counts.csv`` (Schaeffer et al. 2025: the Pythia
suite on 128 GSM8K problems; see that folder's README). For every checkpoint, the questions
whose recorded pool holds at least ``--k`` (10,000) samples; checkpoints with fewer than
``--min-questions`` such questions are left out. The truth is each checkpoint's pass@K on the
whole pools (the unbiased estimator of Chen et al. 2021, averaged over its questions).

Both arms spend the same samples per checkpoint, ``--per-question`` (100) times its questions,
drawn from the recorded pools without replacement exactly as ``ttc profile --backend replay``
draws counts (:func:`profiling.backends.replay.prefix_successes`, the same seeded order per
question, so a pool grown in rounds is a prefix of one order):

* ``uniform``: every question gets ``--per-question`` samples;
* ``adaptive``: the rounds of ``ttc profile --adaptive --forecast-at K`` with the same block
  (``--block``, the CLI's default 4), seed round, round sizes and allocation
  (:func:`planner.adaptive_forecast.seed_blocks`, :func:`~planner.adaptive_forecast.round_samples`,
  :func:`~planner.adaptive_forecast.allocate`), pools capped at their recorded size.

Each arm's counts of every checkpoint are forecast together with the default estimator of
``ttc forecast`` (:func:`fitting.forecast.forecast`, method ``auto``) at K; the table gives the
mean |forecast - truth| over ``--seeds`` seeds per checkpoint and overall (points), and the
ratio uniform / adaptive (above 1: adaptive is better).

Run (``--data`` when no folder above the checkout holds ``shared/``)::

    python benchmarks/adaptive_forecast.py            # K = 10,000, 100 per question, 5 seeds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fitting.estimators import pass_at_k
from fitting.forecast import forecast
from planner.adaptive_forecast import allocate, round_samples, seed_blocks
from profiling.backends.replay import prefix_successes
from profiling.strategies import derive_seed

DATA = "shared/data/real/monkeys_gsm8k_pythia_counts.csv"


def find_data(given: str | None) -> Path:
    """``--data``, else the shared file in a folder above this checkout."""
    if given:
        return Path(given)
    for parent in Path(__file__).resolve().parents:
        if (parent / DATA).is_file():
            return parent / DATA
    sys.exit(f"{DATA} not found above {Path(__file__).parent}; pass --data PATH")


class Pools:
    """One checkpoint's recorded pools, drawn as the replay backend draws them."""

    def __init__(self, model: str, rows: pd.DataFrame, seed: int) -> None:
        self.model = model
        self.ids = rows["question_id"].astype(str).to_numpy()
        self.size = rows["n_samples"].to_numpy(np.int64)
        self.good = rows["n_correct"].to_numpy(np.int64)
        self.seeds = [derive_seed(seed, model, "pool", q) for q in self.ids]

    def draw(self, m: np.ndarray) -> np.ndarray:
        """Successes among the first ``m[i]`` samples of each question's seeded order."""
        return np.array([prefix_successes(int(k), int(s), int(g), sd) for k, s, g, sd in self._rows(m)])

    def _rows(self, m):
        return zip(m, self.size, self.good, self.seeds, strict=True)


def adaptive_pools(pools: Pools, k: int, per_question: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """The pools ``ttc profile --adaptive --forecast-at k`` grows with this budget."""
    share = per_question * len(pools.ids)
    n = np.full(len(pools.ids), seed_blocks(share, block, len(pools.ids)) * block, np.int64)
    c = pools.draw(n)
    while (left := share - int(n.sum())) >= block:
        extra = allocate(n, c, k, block, round_samples(share, left, block), limit=pools.size)
        if extra.sum() == 0:
            break
        n = n + extra * block
        c = pools.draw(n)
    return n, c


def run(df: pd.DataFrame, models: list[str], args) -> pd.DataFrame:
    rows = []
    for seed in range(args.seeds):
        arms: dict[str, list[pd.DataFrame]] = {"uniform": [], "adaptive": []}
        for model in models:
            pools = Pools(model, df[df["model"] == model], seed)
            m = np.full(len(pools.ids), args.per_question, np.int64)
            drawn = {
                "uniform": (m, pools.draw(m)),
                "adaptive": adaptive_pools(pools, args.k, args.per_question, args.block),
            }
            for arm, (n, c) in drawn.items():
                arms[arm].append(
                    pd.DataFrame({"model": model, "question_id": pools.ids, "n_samples": n, "n_correct": c})
                )
        for arm, parts in arms.items():
            for rec in forecast(counts=pd.concat(parts), at=[args.k], metrics=["pass@k"], backtest_reps=0):
                rows.append({"seed": seed, "arm": arm, "model": rec["model"], "estimate": rec["estimate"]})
        print(f"seed {seed} done", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help=f"the counts CSV (default: {DATA} above the checkout)")
    ap.add_argument(
        "--k", type=int, default=10_000, help="K of the pass@K forecast (and the smallest pool kept)"
    )
    ap.add_argument("--per-question", type=int, default=100, help="mean samples per question of both arms")
    ap.add_argument("--block", type=int, default=4, help="samples per block (the CLI's --block)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--min-questions", type=int, default=20, help="checkpoints with fewer such questions are left out"
    )
    args = ap.parse_args(argv)
    df = pd.read_csv(find_data(args.data))
    df = df[df["n_samples"] >= args.k]
    sizes = df.groupby("model")["question_id"].nunique()
    models = sorted(sizes[sizes >= args.min_questions].index)
    df = df[df["model"].isin(models)]
    truth = {
        m: float(np.mean(pass_at_k(g["n_samples"].to_numpy(), g["n_correct"].to_numpy(), args.k)))
        for m, g in df.groupby("model")
    }
    t0 = time.perf_counter()
    res = run(df, models, args)
    res["error"] = (res["estimate"].astype(float) - res["model"].map(truth)).abs() * 100
    missing = res[res["error"].isna()].groupby("arm").size().reindex(["uniform", "adaptive"], fill_value=0)
    print(
        f"no forecast (no correct sample drawn): uniform {missing['uniform']}, adaptive {missing['adaptive']} "
        f"of {len(models) * args.seeds} checkpoint-seeds; scored: the checkpoint-seeds both arms forecast"
    )
    res = res.groupby(["seed", "model"]).filter(lambda g: g["error"].notna().all())
    table = res.pivot_table(index="model", columns="arm", values="error", aggfunc="mean")
    table["questions"] = sizes[table.index]
    table["truth"] = [truth[m] for m in table.index]
    table["ratio"] = table["uniform"] / table["adaptive"]
    print(
        f"pass@{args.k:,} |error| in points, mean over {args.seeds} seeds; {args.per_question} samples per question"
    )
    print(table[["questions", "truth", "uniform", "adaptive", "ratio"]].round(3).to_markdown())
    overall = res.groupby("arm")["error"].mean()
    wins = int((table["adaptive"] < table["uniform"]).sum())
    print(
        f"\noverall ({len(table)} checkpoints): uniform {overall['uniform']:.3f}, adaptive {overall['adaptive']:.3f}, "
        f"ratio {overall['uniform'] / overall['adaptive']:.2f}; adaptive better on {wins} of {len(table)}; "
        f"{time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
