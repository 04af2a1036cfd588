"""Regret of plans made from a subsample of REAL repeated-sampling data, measured on the full pools.

Data: ``monkeys_gsm8k_pythia_counts.csv`` (Schaeffer et al. 2025, "How Do Large Language Monkeys
Get Their Power (Laws)?"; see the shared data README): per-question correct counts of Pythia
70M..12B at the final ``300B`` checkpoint on 128 GSM8K problems, 128 to 10,112 samples per
question. A deployment with an exact answer checker (``--verifier exact``): best-of-n
``verified``, whose accuracy at n is pass@n.

For each seed:

1. subsample every (model, question) pool to a fixed fraction (``--fraction``, 1/8: 16 of 128
   samples), drawing the correct count hypergeometrically (sampling without replacement);
2. write the subsample as a counts file, ``ttc import`` it (:func:`fitting.importer.import_file`),
   load it with :func:`planner.load_profile` (``verifier="exact"``) and plan at each budget
   (FLOPs per query, priced on an H100 by the planner's cost model, with the GPU memory limit):
   the exhaustive search of :func:`planner.plan` over the planner's option space, built once
   per seed (the benchmark checks at one budget per seed that :func:`planner.plan` picks the
   same option);
3. measure the choice on the FULL pools: pass@n of every question (the unbiased estimator,
   exact for n <= its pool), averaged;
4. regret, in accuracy points, against the hindsight-best option within the same budget under
   the same cost model: the most accurate pool size of any model measured on the full data
   (``regret``). It splits into ``reach`` (the best full-data option over the best option the
   planner could consider: its grid reaches 4x the subsample's pool, the planner's
   extrapolation limit, so 1/2 of a full pool when planning from 1/8) and ``choice`` (the
   best option it could consider, measured on the full pools, over its choice: what its
   accuracy predictions cost, ``forecast`` being their error at the choice).

``--max-factor 8 --density fine`` shows what a planner allowed to extrapolate 8x (to the full
pools) on every integer n would choose (not the planner's defaults: a separate run). The
default knob grid steps by sqrt(2) beyond the profiled pool, so a budget between two steps
leaves up to one step of n unspent; that shows up in ``reach``.

LENGTH ASSUMPTION (the data has no token counts, and its ``inference_flops`` imply 59 to 43,000
tokens per sample across sizes, so they are not used): every sample of every model is a
``--prompt-tokens`` prompt (256, prefilled once per pool) and ``--gen-tokens`` generated tokens
(256), about a GSM8K question with its instructions and a worked solution. It is the planner's
own stated assumption (``ttc recommend --assume-prompt-tokens 256 --assume-completion-tokens
256``, :class:`planner.space.assumed.AssumedLengths`), so the CLI reproduces these choices
(:func:`choose`). With equal lengths the cost of n samples is the same for every question, so
cost differences between options come from model size and n only.

Run: ``python benchmarks/real_regret.py`` (``--seeds 5``; about a minute per seed on an idle
2-core machine).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from fitting.estimators import pass_at_k
from fitting.importer import import_file
from planner.catalog import get_hardware
from planner.constants import ACCURACY, ARM, DEFAULT_HARDWARE, KNOB_VALUE, MEMORY_BYTES, MODEL, SOURCE
from planner.profile import load_profile
from planner.recommend import build_space, plan
from planner.search import Budget, search_exhaustive
from planner.space import MAX_EXTRAPOLATION, CostModel
from planner.space.assumed import AssumedLengths

_NAME = Path("shared") / "data" / "real" / "monkeys_gsm8k_pythia_counts.csv"
#: the shared data folder beside the checkout (or above a worktree); --data overrides it
DATA = next((p / _NAME for p in Path(__file__).resolve().parents if (p / _NAME).exists()), _NAME)
SIZES = ("70M", "160M", "410M", "1B", "1.4B", "2.8B", "6.9B", "12B")
CHECKPOINT = "300B"


def load_counts(path: Path) -> pd.DataFrame:
    """The final-checkpoint rows of Pythia 70M..12B, with the catalog name of each model."""
    df = pd.read_csv(path)
    names = {f"Pythia_{s}_{CHECKPOINT}": f"pythia-{s.lower()}" for s in SIZES}
    df = df[df["model"].isin(names)].copy()
    if df.empty:
        raise SystemExit(f"{path}: no rows for Pythia {', '.join(SIZES)} at checkpoint {CHECKPOINT}")
    df["catalog"] = df["model"].map(names)
    return df


def subsample(df: pd.DataFrame, fraction: float, rng: np.random.Generator) -> pd.DataFrame:
    """Each pool reduced to ``round(fraction * n)`` samples (at least 1), the correct count drawn
    hypergeometrically (without replacement)."""
    out = df.copy()
    n = df["n_samples"].to_numpy(np.int64)
    c = df["n_correct"].to_numpy(np.int64)
    keep = np.maximum(np.round(n * fraction).astype(np.int64), 1)
    out["n_samples"] = keep
    out["n_correct"] = rng.hypergeometric(c, n - c, keep)
    return out


def as_profile(df: pd.DataFrame, folder: Path, prompt: int, gen: int, n_boot: int):
    """``ttc import`` of the counts (no lengths, as published) and the planner's profile of the
    folder with the assumed per-sample lengths."""
    table = df[["model", "question_id", "n_samples", "n_correct"]].assign(
        strategy="pool", config="{}", difficulty="all"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "counts.csv"
    table.to_csv(path, index=False)
    import_file(path, folder)
    specs = dict(zip(df["model"], df["catalog"], strict=True))
    prof = load_profile(
        folder,
        model_specs=specs,
        n_boot=n_boot,
        use_cache=False,
        verifier="exact",
        assumed=AssumedLengths(prompt, gen),
    )
    return prof, specs


def planner_space(prof, gpu: str, max_factor: float = MAX_EXTRAPOLATION, density: str = "coarse"):
    """The planner's option space of a profile (verified best-of-n, priced on ``gpu``) and its cost model."""
    coster = CostModel(prof.specs, hardware=get_hardware(gpu))
    return build_space(prof, coster, verifier="exact", max_factor=max_factor, density=density), coster


def choose(space, coster: CostModel, budget_flops: float):
    """The benchmark's choice at a FLOPs budget: the exhaustive search over ``space`` within the
    budget and the GPU memory limit (None when nothing fits)."""
    b = Budget({"flops": float(budget_flops), MEMORY_BYTES: coster.memory_limit_bytes()})
    return search_exhaustive(space, space.target(None), b).best


def realized(full: dict, model: str, n: float) -> float:
    """pass@n of ``model`` on its full pools (unbiased, exact for n <= every pool)."""
    sizes, correct = full[model]
    k = int(round(n))
    if k > sizes.min():
        return math.nan
    return float(pass_at_k(sizes, correct, np.array([k])).mean())


def full_options(df: pd.DataFrame, coster: CostModel, prof) -> pd.DataFrame:
    """Every (model, n) measurable on the full pools (n up to the model's smallest pool, on the
    planner's k grid of the full data), priced by the same cost model."""
    space = build_space(prof, coster, verifier="exact", measured_only=True, fit_if_missing=False)
    table = space.table(space.target(None))
    limit = coster.memory_limit_bytes()
    return table[table[MEMORY_BYTES] <= limit].reset_index(drop=True)


def run_seed(df, full, options, seed: int, args, tmp: Path) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sub = subsample(df, args.fraction, rng)
    prof, _ = as_profile(sub, tmp / f"seed{seed}", args.prompt_tokens, args.gen_tokens, args.n_boot)
    space, coster = planner_space(prof, args.gpu, args.max_factor, args.density)
    limit = {MEMORY_BYTES: coster.memory_limit_bytes()}
    target = space.target(None)
    table = space.table(target)
    table = table.assign(
        _real=[realized(full, m, x) for m, x in zip(table[MODEL], table[KNOB_VALUE], strict=True)]
    )
    rows = []
    for i, budget in enumerate(args.budget_values):
        b = Budget({"flops": float(budget), **limit})
        best = choose(space, coster, budget)
        if best is None:
            continue
        default = args.max_factor == MAX_EXTRAPOLATION and args.density == "coarse"
        if i == len(args.budget_values) // 2 and default:
            rec = plan(
                prof,
                {"flops": float(budget)},
                verifier="exact",
                hardware=args.gpu,
                method="exhaustive",
                assume_prompt_tokens=args.prompt_tokens,
                assume_completion_tokens=args.gen_tokens,
            )
            c = rec.to_json()["choice"]
            if (c["model"], float(c["knobs"]["n"])) != (best[MODEL], float(best[KNOB_VALUE])):
                raise SystemExit(f"seed {seed}: plan() chose {c} but the direct search {best[ARM]}")
        got = realized(full, best[MODEL], best[KNOB_VALUE])
        ok = b.feasible(table)
        considered = float(table.loc[ok, "_real"].max())
        any_ok = options[b.feasible(options)]
        top = any_ok.loc[any_ok[ACCURACY].idxmax()]
        rows.append(
            {
                "seed": seed,
                "budget_flops": float(budget),
                "choice": f"{best[MODEL].removeprefix('Pythia_').removesuffix('_300B')} n={best[KNOB_VALUE]:g}",
                "source": best[SOURCE],
                "predicted": float(best[ACCURACY]),
                "realized": got,
                "best_full": f"{top[MODEL].removeprefix('Pythia_').removesuffix('_300B')} n={top[KNOB_VALUE]:g}",
                "best_full_accuracy": float(top[ACCURACY]),
                "regret": 100 * (float(top[ACCURACY]) - got),
                "reach": 100 * (float(top[ACCURACY]) - considered),
                "choice_regret": 100 * (considered - got),
                "forecast": 100 * (float(best[ACCURACY]) - got),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--fraction", type=float, default=1 / 8)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budgets", type=int, default=12)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen-tokens", type=int, default=256)
    ap.add_argument("--gpu", default=DEFAULT_HARDWARE)
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument(
        "--max-factor",
        type=float,
        default=MAX_EXTRAPOLATION,
        help="the planner's extrapolation limit (default: the planner's own)",
    )
    ap.add_argument(
        "--density",
        choices=("coarse", "fine"),
        default="coarse",
        help="the planner's knob grid (default: the planner's own, coarse)",
    )
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # uneven-pool and convergence warnings are summarized by the planner
    df = load_counts(args.data)
    full = {
        m: (g["n_samples"].to_numpy(np.int64), g["n_correct"].to_numpy(np.int64))
        for m, g in df.groupby("model")
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full_prof, _ = as_profile(df, tmp / "full", args.prompt_tokens, args.gen_tokens, 0)
        coster = CostModel(full_prof.specs, hardware=get_hardware(args.gpu))
        options = full_options(df, coster, full_prof)
        # budgets: from just above the cheapest option to the dearest full pool of the largest model
        big = options[options[MODEL] == f"Pythia_{SIZES[-1]}_{CHECKPOINT}"]
        args.budget_values = np.geomspace(
            float(options["flops"].min()) * 1.05, float(big["flops"].max()), args.budgets
        )
        frames = [run_seed(df, full, options, s, args, tmp) for s in range(args.seeds)]
    res = pd.concat(frames, ignore_index=True)
    pd.set_option("display.width", 220)
    print(
        f"Pythia {SIZES[0]}..{SIZES[-1]} at {CHECKPOINT}, GSM8K, {df['question_id'].nunique()} questions; plan from "
        f"{args.fraction:.4g} of each pool (extrapolation limit {args.max_factor:g}x, {args.density} knob grid), realize on the full pools; "
        f"verified (exact checker); FLOPs budgets on {args.gpu}; ASSUMED {args.prompt_tokens:g} prompt + "
        f"{args.gen_tokens:g} generated tokens per sample; accuracy and regrets in points"
    )
    cols = [
        "budget_flops",
        "choice",
        "source",
        "predicted",
        "realized",
        "best_full",
        "best_full_accuracy",
        "regret",
        "reach",
        "choice_regret",
        "forecast",
    ]
    shown = res[res["seed"] == 0][cols].copy()
    for c in ("predicted", "realized", "best_full_accuracy"):
        shown[c] = 100 * shown[c]
    print("\nseed 0:")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}" if abs(v) >= 1e6 else f"{v:.2f}"))
    print("\nper seed (points):")
    per = res.groupby("seed").agg(
        regret_mean=("regret", "mean"),
        regret_max=("regret", "max"),
        reach_mean=("reach", "mean"),
        choice_mean=("choice_regret", "mean"),
        choice_max=("choice_regret", "max"),
        forecast_mean_abs=("forecast", lambda v: float(np.mean(np.abs(v)))),
    )
    print(per.to_string(float_format=lambda v: f"{v:.2f}"))
    print(
        f"\nall {args.seeds} seeds x {len(args.budget_values)} budgets ({len(res)} plans): regret vs the hindsight-best "
        f"full-data option mean {res['regret'].mean():.2f} points, max {res['regret'].max():.2f} "
        f"(reach {res['reach'].mean():.2f} + choice {res['choice_regret'].mean():.2f} on average; choice max "
        f"{res['choice_regret'].max():.2f}); forecast error at the choice: mean {res['forecast'].mean():+.2f}, "
        f"mean |error| {res['forecast'].abs().mean():.2f} points ({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
