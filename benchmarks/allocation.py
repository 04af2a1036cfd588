"""Per-difficulty allocation and adaptive policies, measured in one run.

1. **Solvers** at several average FLOPs budgets (H100 cost model): the exact Pareto-front DP,
   the Lagrangian hull greedy (with its LP upper bound) and an Optuna TPE study, with time,
   accuracy and gap to the exact optimum.
2. **What allocation buys**: at each budget, the exact allocation versus the best single
   option used for every bin (any strategy, majority vote only, best-of-N only), as accuracy gained at
   equal budget and as compute saved at equal accuracy (the least average cost at which an
   allocation matches the single option; Snell et al. 2024 report ~4x versus best-of-N).
3. **Unknown difficulty**: adaptive policies replayed offline from the pools (probe and
   route by agreement, early-stopping self-consistency) versus fixed majority and the
   oracle-difficulty allocation, chosen on half the questions and measured on the other
   half, at several average token budgets.

Options are the profiled knob values (measured accuracies) unless ``--predicted`` adds the
fitted and extrapolated ones. Weights: the profile's question counts per difficulty. Without ``--profile`` the inputs
are SYNTHETIC (tests/planner/planner_fixtures.py: known per-question probabilities, exact
majority@k; priced as Qwen2.5 0.5B/1.5B/7B and Qwen3-30B-A3B); their numbers only
exercise the code.

Run::

    python benchmarks/allocation.py --profile runs/lab
    python benchmarks/allocation.py                     # synthetic
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# tiny optimizations (L-BFGS-B on 5 parameters) ran 8-40x slower with OpenBLAS threads on a
# shared 2-core machine: one thread, set before numpy is imported
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "planner")]

from planner.catalog import get_hardware  # noqa: E402
from planner.profile import load_profile, profile_from_tables  # noqa: E402
from planner.recommend import build_space  # noqa: E402
from planner.search import (  # noqa: E402
    InfeasibleBudget,
    PoolReplay,
    adaptive_policies,
    allocate_exact,
    allocate_lagrangian,
    allocate_optuna,
    bin_tables,
    compare_with_single,
)
from planner.space import CostModel  # noqa: E402

SYNTHETIC_SPECS = {
    "lab-s": "qwen2.5-0.5b",
    "lab-m": "qwen2.5-1.5b",
    "lab-l": "qwen2.5-7b",
    "lab-moe": "qwen3-30b-a3b",
}


def _profile(args):
    if args.profile:
        return load_profile(args.profile), "profile " + str(args.profile)
    import planner_fixtures as F

    from planner.costs import ModelSpec

    samples = F.samples_table(n_questions=60, pool=32, difficulties=("1", "2", "3", "4", "5"))
    specs = {m: ModelSpec.from_catalog(c) for m, c in SYNTHETIC_SPECS.items()}
    return profile_from_tables(samples, specs), "SYNTHETIC fixture (5 bins x 60 questions, pools of 32)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", type=Path)
    ap.add_argument("--budgets", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=300, help="Optuna trials of the allocation study")
    ap.add_argument("--allow-simulated", action="store_true")
    ap.add_argument(
        "--predicted",
        action="store_true",
        help="also use fitted and extrapolated knob values (default: profiled values only, measured accuracies)",
    )
    args = ap.parse_args()
    prof, what = _profile(args)
    print(f"inputs: {what}")
    coster = CostModel(prof.specs, hardware=get_hardware("h100"))
    space = build_space(
        prof, coster, include_simulated=args.allow_simulated, measured_only=not args.predicted
    )
    print(
        "options:",
        "profiled knob values only (measured accuracies)"
        if not args.predicted
        else "fitted and extrapolated knob values too (model predictions)",
    )
    weights = space.target(None)
    print("bins and weights:", {b: round(w, 3) for b, w in weights.items()})
    tables = bin_tables(space, weights)
    lo = sum(w * tables[b]["flops"].min() for b, w in weights.items())
    hi = sum(w * tables[b]["flops"].max() for b, w in weights.items())
    budgets = np.geomspace(lo * 1.5, hi * 0.5, args.budgets)

    rows, gains = [], []
    for B in budgets:
        try:
            t0 = time.perf_counter()
            ex = allocate_exact(tables, weights, B)
            t_ex = time.perf_counter() - t0
        except InfeasibleBudget:
            continue
        lag = allocate_lagrangian(tables, weights, B)
        tpe = allocate_optuna(tables, weights, B, n_trials=args.trials, seed=args.seed)
        rows.append(
            {
                "budget_flops": B,
                "exact_acc": ex.accuracy,
                "exact_s": t_ex,
                "dp_states": ex.evaluations,
                "lagrange_acc": lag.accuracy,
                "lp_bound": lag.bound,
                "lagrange_s": lag.seconds,
                "optuna_acc": tpe.accuracy,
                "optuna_gap_pts": 100 * (ex.accuracy - tpe.accuracy),
                "optuna_s": tpe.seconds,
            }
        )
        any_ = compare_with_single(tables, weights, B)
        maj = compare_with_single(tables, weights, B, strategies=("majority",))
        bon = compare_with_single(tables, weights, B, strategies=("best_of",))
        gains.append(
            {
                "budget_flops": B,
                "allocation_acc": any_["allocation_accuracy"],
                "single_any": any_["single_option"],
                "single_any_acc": any_["single_accuracy"],
                "ratio_vs_any": any_["compute_ratio"],
                "single_majority_acc": maj["single_accuracy"],
                "ratio_vs_majority": maj["compute_ratio"],
                "single_best_of_acc": bon["single_accuracy"],
                "ratio_vs_best_of": bon["compute_ratio"],
            }
        )
    fmt = {"float_format": lambda v: f"{v:.4g}"}
    with pd.option_context("display.width", 220, "display.max_columns", 30, "display.max_colwidth", 60):
        print("\n1. solvers (average FLOPs per query)")
        print(pd.DataFrame(rows).to_string(index=False, **fmt))
        print(
            "\n2. allocation versus one option for every bin (compute ratio = single cost / allocation cost at equal accuracy)"
        )
        print(pd.DataFrame(gains).to_string(index=False, **fmt))
        ex = allocate_exact(tables, weights, budgets[len(budgets) // 2])
        print(f"\nallocation at {budgets[len(budgets) // 2]:.3g} FLOPs:")
        print(ex.summary().to_string(index=False, **fmt))

        replay = PoolReplay(prof.samples, prof.specs, seed=args.seed)
        tok_lo = np.mean([replay.fixed(replay.questions, m, 1)[:, 1].mean() for m in replay.pool_size])
        tok_hi = max(replay.fixed(replay.questions, m, n)[:, 1].mean() for m, n in replay.pool_size.items())
        print("\n3. unknown difficulty: policies chosen on half the questions, replayed on the other half")
        for B in np.geomspace(tok_lo * 2, tok_hi * 0.6, 4):
            t0 = time.perf_counter()
            out = adaptive_policies(replay, float(B), "tokens", seed=args.seed)
            print(f"\naverage token budget {B:.0f} ({time.perf_counter() - t0:.1f} s)")
            cols = ["policy", "params", "train_accuracy", "test_accuracy", "test_accuracy_se", "test_tokens"]
            print(out[cols].to_string(index=False, **fmt))


if __name__ == "__main__":
    main()
