"""Forecasting pass@n 100x beyond the data, on real repeated-sampling counts (Pythia, GSM8K).

Data: ``shared/data/real/monkeys_gsm8k_pythia_counts.csv`` (Schaeffer et al. 2025, "How Do
Large Language Monkeys Get Their Power (Laws)?": per-question correct counts of the Pythia
suite on 128 GSM8K problems; see that folder's README).

Which checkpoints. The final ``300B`` checkpoints of the larger sizes have only 128-640
samples per question, so a ~1% subsample would leave 1-6 samples per question. For each
Pythia size this script therefore takes the LATEST checkpoint whose every question has at
least ``--min-pool`` (1,000) samples: the final checkpoint for 14M and 70M, earlier ones
for the others (printed in the table). ``--all`` scores every checkpoint with such pools
instead (55 of 81), so that no choice of checkpoints flatters a method.

What is measured. Each question's pool of n_i samples (c_i correct) is subsampled to
m_i = round(n_i / ``--fraction``) samples, seeded, without replacement (hypergeometric
c_i' of m_i). From the subsample alone every method forecasts pass@n_i, which is compared
with the pass@n_i MEASURED on the whole pool (the fraction of questions with c_i > 0).
Errors are in accuracy points (0.01 = 1 point). Methods, side by side:

* the aggregate laws (power law, exponential decay, exp-power of Brown et al. 2024,
  logistic), each fitted to the subsample's unbiased pass@k curve (k = 1..min m_i) with
  inverse-variance question weights, predicting at each n_i (averaged over questions);
* ``select``: the law :func:`fitting.fit_curve` selects (far-end scoring over three
  low-end cuts), and ``select_old``: the same with the old top-25% holdout
  (``cuts=None``), which picked logistic on real data;
* ``betabinom``: :class:`fitting.BetaBinomial`, maximum likelihood (a, b), population
  forecast 1 - B(a, b + n) / B(a, b);
* ``posterior``: :class:`fitting.coverage.BetaBinomialPosterior` (what ``ttc forecast``
  uses): per-question posterior chances, (a, b) integrated over their posterior; its 90%
  interval is checked against the measurement (``in 90%``).

Run::

    python benchmarks/forecast.py                  # 9 sizes x 5 seeds, ~1-2 min on 2 cores
    python benchmarks/forecast.py --all --seeds 2  # every checkpoint with pools >= 1,000
    python benchmarks/forecast.py --fit-time       # also time `ttc fit` (fit_counts) on the whole file
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fitting import LAWS, BetaBinomial, ConvergenceWarning, fit_curve, pass_at_k  # noqa: E402
from fitting.coverage import BetaBinomialPosterior  # noqa: E402
from fitting.uncertainty import question_weights  # noqa: E402

# the shared data folder beside the repository (as in tests/test_chinchilla.py); --data overrides
DATA = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "real"
    / "monkeys_gsm8k_pythia_counts.csv"
)
CHECKPOINTS = ["2M", "64M", "512M", "2B", "6B", "20B", "60B", "200B", "300B"]
SIZES = ["14M", "70M", "160M", "410M", "1B", "1.4B", "2.8B", "6.9B", "12B"]
METHODS = [*LAWS, "select", "select_old", "betabinom", "posterior"]


def choose(df: pd.DataFrame, min_pool: int, every: bool) -> list[str]:
    """The latest checkpoint per size with every pool >= min_pool (or all such checkpoints)."""
    info = df.groupby("model").agg(size=("size", "first"), tokens=("pretrain_tokens", "first"),
                                   n_min=("n_samples", "min"), solved=("n_correct", "sum"))  # fmt: skip
    ok = info[(info["n_min"] >= min_pool) & (info["solved"] > 0)]
    if every:
        return sorted(
            ok.index, key=lambda m: (SIZES.index(ok.loc[m, "size"]), CHECKPOINTS.index(ok.loc[m, "tokens"]))
        )
    out = []
    for size in SIZES:
        rows = ok[ok["size"] == size]
        if len(rows):
            out.append(max(rows.index, key=lambda m: CHECKPOINTS.index(rows.loc[m, "tokens"])))
    return out


def score(n: np.ndarray, c: np.ndarray, fraction: float, rng: np.random.Generator) -> dict:
    """Signed errors (forecast - measured) of every method from one seeded subsample."""
    m = np.maximum(1, np.round(n / fraction)).astype(np.int64)
    sub = rng.hypergeometric(c, n - c, m)
    measured = float(np.mean(c > 0))
    out = {"measured": measured, "m": int(m.min()), "solved_sub": int(np.count_nonzero(sub))}
    if sub.sum() == 0:  # no correct sample in the subsample: no method can say anything
        return out | {name: np.nan for name in METHODS} | {"lo": np.nan, "hi": np.nan}
    ks = np.arange(1, int(m.min()) + 1)
    per_q = pass_at_k(m, sub, ks)
    curve = per_q.mean(axis=0)
    w = question_weights(per_q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if len(ks) >= 4:
            for name, cls in LAWS.items():
                out[name] = float(np.mean(cls().fit(ks, curve, w).predict(n.astype(float)))) - measured
            law, _ = fit_curve(ks, curve, sample_weight=w)
            out["select"] = float(np.mean(law.predict(n.astype(float)))) - measured
            out["select:law"] = law.name
            old, _ = fit_curve(ks, curve, sample_weight=w, cuts=None)
            out["select_old"] = float(np.mean(old.predict(n.astype(float)))) - measured
        bb = BetaBinomial().fit(m, sub)
        out["betabinom"] = float(np.mean(bb.predict(n.astype(float)))) - measured
    f = BetaBinomialPosterior().fit(m, sub).forecast(n)
    out |= {"posterior": f.estimate - measured, "lo": f.lo, "hi": f.hi}
    return out


def run(models: list[str], df: pd.DataFrame, fraction: float, seeds: int) -> pd.DataFrame:
    rows = []
    for i, model in enumerate(models):
        d = df[df["model"] == model]
        n = d["n_samples"].to_numpy(np.int64)
        c = d["n_correct"].to_numpy(np.int64)
        for seed in range(seeds):
            res = score(n, c, fraction, np.random.default_rng([seed, i]))
            rows.append({"model": model, "seed": seed, "n": int(n.min()), "n_max": int(n.max()), **res})
    return pd.DataFrame(rows)


def print_tables(res: pd.DataFrame, fraction: float) -> None:
    res = res.copy()
    res["inside"] = (res["lo"] <= res["measured"]) & (res["measured"] <= res["hi"])
    res["forecast"] = res["lo"].notna()  # False: the subsample held no correct sample
    head = f"{'model':<18}{'n':>7}{'m':>5}{'solved':>7}{'pass@n':>8}" + "".join(f"{k:>14}" for k in METHODS)
    print(f"\nMean |forecast - measured| over seeds, accuracy points (1/{fraction:g} subsample -> pass@n)")
    print(f"{head}{'in 90%':>9}")
    print("-" * (len(head) + 9))
    for model, g in res.groupby("model", sort=False):
        pool = f"{g['n'].iloc[0]}" if g["n"].iloc[0] == g["n_max"].iloc[0] else f"{g['n'].iloc[0]}+"
        cells = "".join(f"{100 * g[k].abs().mean():>14.1f}" for k in METHODS)
        inside = f"{int(g['inside'].sum())}/{int(g['forecast'].sum())}"
        print(f"{model:<18}{pool:>7}{g['m'].iloc[0]:>5}{g['solved_sub'].mean():>7.1f}"
              f"{g['measured'].iloc[0]:>8.3f}{cells}{inside:>9}")  # fmt: skip
    print("-" * (len(head) + 9))
    print(f"{'mean |error|':<45}" + "".join(f"{100 * res[k].abs().mean():>14.1f}" for k in METHODS))
    print(f"{'max |error|':<45}" + "".join(f"{100 * res[k].abs().max():>14.1f}" for k in METHODS))
    print(f"{'mean error (bias)':<45}" + "".join(f"{100 * res[k].mean():>14.1f}" for k in METHODS))
    done = res[res["forecast"]]
    misses = done[~done["inside"]].groupby("seed")["model"].nunique().reindex(sorted(res["seed"].unique()))
    print(f"\nposterior 90% interval holds the measured pass@n in {int(done['inside'].sum())} of {len(done)} "
          f"forecasts ({len(res) - len(done)} subsamples held no correct sample: nothing to forecast from); "
          f"models missed per seed: {misses.fillna(0).astype(int).tolist()}; "
          f"mean interval width {100 * (done['hi'] - done['lo']).mean():.1f} points")  # fmt: skip
    picks = res["select:law"].value_counts().to_dict() if "select:law" in res else {}
    print(f"fit_curve (far-end scoring) picked: {picks}")
    print(
        "n: pool per question ('+': uneven, the smallest shown); m: subsample per question; solved: questions"
    )
    print("with a correct sample in the subsample (mean over seeds); pass@n: measured on the whole pool")


def fit_time(path: Path) -> None:
    from fitting.importer import read_records
    from fitting.pipeline import fit_counts

    start = time.perf_counter()
    counts = read_records(path).counts
    read_s = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fit_counts(counts, n_boot=200)
    total = time.perf_counter() - start
    print(f"\nttc fit on the whole file ({len(counts)} rows, {counts['model'].nunique()} models, pools up to "
          f"{int(counts['n_samples'].max())}): read {read_s:.1f} s, total {total:.1f} s, {len(out.fits)} fits, "
          f"{sum(f['converged'] for f in out.fits)} converged")  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the counts CSV")
    ap.add_argument("--fraction", type=float, default=100.0, help="subsample 1/FRACTION of each pool")
    ap.add_argument("--min-pool", type=int, default=1000, help="checkpoints whose pools all have this many")
    ap.add_argument("--seeds", type=int, default=5, help="subsamples per checkpoint")
    ap.add_argument("--all", action="store_true", help="every checkpoint with such pools, not one per size")
    ap.add_argument("--fit-time", action="store_true", help="also time fit_counts on the whole file")
    args = ap.parse_args(argv)
    df = pd.read_csv(args.data)
    models = choose(df, args.min_pool, args.all)
    start = time.perf_counter()
    res = run(models, df, args.fraction, args.seeds)
    print_tables(res, args.fraction)
    print(f"\n{len(res)} subsamples scored in {time.perf_counter() - start:.1f} s")
    if args.fit_time:
        fit_time(args.data)


if __name__ == "__main__":
    main()
