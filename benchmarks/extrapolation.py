"""How far can each law extrapolate coverage? Fit on k <= n/16 samples, predict pass@n.

For every pool (per-question success rates p ~ Beta(a, b), n = 256 samples each, drawn
from a seeded generator) the script keeps only the first n/16 samples of each question,
as if that were all the profiling budget allowed, builds the unbiased pass@k curve for
k = 1..n/16 from them (Chen et al. 2021), fits every law, and compares its prediction at
k = n with the pass@n *measured* on all n samples. The beta-binomial model is fitted to
the same n/16 per-question counts. ``fit_curve`` shows what held-out selection picks.

Errors are prediction minus measurement, in accuracy points (0.01 = 1 point), averaged
over seeds. Run::

    python benchmarks/extrapolation.py                   # synthetic pools, 5 seeds
    python benchmarks/extrapolation.py --samples DIR     # LAB HOOK: any samples folder

``--samples DIR`` takes any folder readable by ``fitting.schema.read_samples`` (the lab's
``ttc profile`` output or a ``ttc import``): every (model, strategy, config, difficulty)
group of independent samples whose questions all have at least 32 samples is scored the
same way, with n = its pool size.
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
from fitting.schema import CORRECT, GROUP_KEYS, QUESTION_ID, SAMPLE_IDX, STRATEGY, read_samples  # noqa: E402
from fitting.uncertainty import question_weights  # noqa: E402

# Synthetic pools: (label, fraction of never-solvable questions, Beta a, Beta b).
POOLS = [
    ("Beta(0.3,1)", 0.0, 0.3, 1.0),
    ("Beta(0.15,0.5)", 0.0, 0.15, 0.5),
    ("Beta(1,3)", 0.0, 1.0, 3.0),
    ("Beta(0.5,5) hard", 0.0, 0.5, 5.0),
    ("20%zero+Beta(0.5,1.5)", 0.2, 0.5, 1.5),
]


def score(correct: np.ndarray, fraction: int) -> dict[str, float]:
    """Signed error at k = n of every law fitted on the first n/fraction samples.

    ``correct`` is a boolean matrix (questions x n samples).
    """
    n = correct.shape[1]
    m = n // fraction
    measured = float(np.mean(correct.any(axis=1)))  # pass@n on all n samples
    c_small = correct[:, :m].sum(axis=1)
    ks = np.arange(1, m + 1)
    per_q = pass_at_k(m, c_small, ks)  # shape (questions, len(ks))
    curve = per_q.mean(axis=0)
    w = question_weights(per_q)
    out = {"measured": measured, "pass@m": float(curve[-1])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, cls in LAWS.items():
            law = cls().fit(ks, curve, w)
            out[name] = float(law.predict(float(n))) - measured
            out[f"{name}:ok"] = law.converged_
        bb = BetaBinomial().fit(m, c_small)
        out["beta_binomial"] = float(bb.predict(float(n))) - measured
        out["beta_binomial:ok"] = bb.converged_
        chosen, _ = fit_curve(ks, curve, sample_weight=w)
        out["fit_curve"] = float(chosen.predict(float(n))) - measured
        out["fit_curve:law"] = chosen.name
    return out


def synthetic(n: int, questions: int, seeds: int, fraction: int) -> pd.DataFrame:
    rows = []
    for label, zero, a, b in POOLS:
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            p = rng.beta(a, b, size=questions)
            p[rng.random(questions) < zero] = 0.0
            correct = rng.random((questions, n)) < p[:, None]
            rows.append({"pool": label, "seed": seed, **score(correct, fraction)})
    return pd.DataFrame(rows)


def from_samples(folder: str, fraction: int, strategy: str) -> pd.DataFrame:
    """LAB HOOK: score every group of independent samples in a samples folder."""
    df = read_samples(folder)
    df = df[df[STRATEGY] == strategy]
    rows = []
    for key, group in df.groupby(list(GROUP_KEYS), sort=True):
        group = group.sort_values([QUESTION_ID, SAMPLE_IDX])
        sizes = group.groupby(QUESTION_ID).size()
        n = int(sizes.min())
        if n < 2 * fraction:
            print(f"skip {key}: pool size {n} < {2 * fraction}", file=sys.stderr)
            continue
        correct = np.stack([g[CORRECT].to_numpy(bool)[:n] for _, g in group.groupby(QUESTION_ID, sort=True)])
        rows.append(
            {
                "pool": " / ".join(map(str, key)) + f" (n={n}, q={len(correct)})",
                "seed": 0,
                **score(correct, fraction),
            }
        )
    if not rows:
        raise SystemExit(f"{folder}: no {strategy!r} group with at least {2 * fraction} samples per question")
    return pd.DataFrame(rows)


def print_table(res: pd.DataFrame, title: str) -> None:
    laws = [*LAWS, "beta_binomial", "fit_curve"]
    print(f"\n{title}: prediction - measurement, accuracy points; mean over seeds (sd)")
    wide = max(24, *(len(str(p)) + 2 for p in res["pool"]))
    head = (
        f"{'pool':<{wide}}{'pass@m':>8}{'pass@n':>8}"
        + "".join(f"{name:>16}" for name in laws)
        + "   fit_curve picks"
    )
    print(head)
    print("-" * len(head))
    for pool, g in res.groupby("pool", sort=False):
        cells = []
        for name in laws:
            e = 100 * g[name]
            sd = f"({e.std(ddof=1):.1f})" if len(g) > 1 else ""
            flag = "" if name == "fit_curve" or g[f"{name}:ok"].all() else "*"
            cells.append(f"{e.mean():+.1f}{sd}{flag}".rjust(16))
        picks = ",".join(f"{k}x{v}" for k, v in g["fit_curve:law"].value_counts().items())
        print(
            f"{pool:<{wide}}{g['pass@m'].mean():>8.3f}{g['measured'].mean():>8.3f}"
            + "".join(cells)
            + f"   {picks}"
        )
    mae = [f"{100 * res[name].abs().mean():.1f}".rjust(16) for name in laws]
    print("-" * len(head))
    print(f"{'mean |error|':<{wide + 16}}" + "".join(mae))
    print("pass@m: measured on the n/fraction samples fitted; pass@n: measured on all n (the target)")
    print("* = some fits did not converge (ConvergenceWarning)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=256, help="samples per question in the synthetic pools")
    ap.add_argument("--questions", type=int, default=500, help="questions per synthetic pool")
    ap.add_argument("--seeds", type=int, default=5, help="synthetic pools drawn per setting")
    ap.add_argument("--fraction", type=int, default=16, help="fit on the first n/FRACTION samples")
    ap.add_argument(
        "--samples", metavar="DIR", help="LAB HOOK: a samples folder (read_samples) instead of synthetic"
    )
    ap.add_argument("--strategy", default="pool", help="with --samples: strategy of independent samples")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    if args.samples:
        res = from_samples(args.samples, args.fraction, args.strategy)
        title = f"Lab pools {args.samples}: pass@n predicted from k <= n/{args.fraction}"
    else:
        res = synthetic(args.n, args.questions, args.seeds, args.fraction)
        title = (
            f"Synthetic pools ({args.questions} questions, n={args.n}): "
            f"pass@{args.n} predicted from k <= {args.n // args.fraction}"
        )
    print_table(res, title)
    print(f"\n{len(res)} pools scored in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
