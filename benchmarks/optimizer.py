"""Optuna versus the exhaustive enumerator over the same discretized option space, measured in one run.

For several space sizes, one query (a per-query FLOPs budget on an H100, priced by the real
cost model, :class:`planner.space.pricing.CostModel`) is answered twice:

* **exhaustive**: :func:`planner.search.single.search_exhaustive` evaluates every option (every
  arm at every knob value of its grid: prediction plus cost model) and picks the best;
* **optuna**: :func:`planner.search.single.search_optuna` (TPE over the arm factors, each trial's
  knob found along the arm's affordable frontier, the budget as a constraint), ``--trials``
  trials.

Reported per size: options, evaluations and seconds of each, and the accuracy gap
(exhaustive optimum minus Optuna's pick, in accuracy points) over ``--budgets`` budgets x
``--seeds`` seeds. The cost model's cache is cleared before every timed search so each one
pays for its own evaluations. Spaces:

* ``--profile DIR``: the profile's curves at ``coarse`` and ``fine`` knob grids (all
  difficulties);
* otherwise (and in addition, ``--synthetic``): SYNTHETIC curves (tests/planner/planner_fixtures.py
  style: per-question success probabilities, exact majority@k) for a family of M models x T
  temperatures, priced as Qwen2.5 models of growing size, at ``fine`` grids up to 4x the
  pool. These exist only to make spaces large; their accuracies mean nothing.

Run::

    python benchmarks/optimizer.py                       # synthetic ladder
    python benchmarks/optimizer.py --profile runs/lab    # the lab profile too
"""

from __future__ import annotations

import argparse
import json
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
from scipy.special import expit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "planner")]

from fitting import schema as S  # noqa: E402
from planner.catalog import get_hardware  # noqa: E402
from planner.costs import ModelSpec  # noqa: E402
from planner.search import Budget, search_exhaustive, search_optuna  # noqa: E402
from planner.space import CostModel, OptionSpace  # noqa: E402

QWEN = [
    "qwen2.5-0.5b",
    "qwen2.5-1.5b",
    "qwen2.5-3b",
    "qwen2.5-7b",
    "qwen2.5-14b",
    "qwen2.5-32b",
    "qwen2.5-72b",
]


def synthetic_curves(
    n_models: int, n_temps: int, pool: int, n_questions: int = 40, seed: int = 0
) -> pd.DataFrame:
    """Majority@k curves (k = 1..pool) for n_models x n_temps arms over 3 difficulties."""
    from planner_fixtures import majority_exact

    rng = np.random.default_rng(seed)
    rows = []
    temps = np.linspace(0.6, 1.2, n_temps) if n_temps > 1 else [1.0]
    for d in (1, 2, 3):
        z = rng.normal(0, 1, n_questions)
        for i in range(n_models):
            for t in temps:
                skill = -0.5 + 0.45 * i - 0.4 * (t - 0.9) ** 2
                p = expit(skill - 1.1 * d + 1.5 + z)
                cfg = json.dumps(
                    {
                        "cot": True,
                        "n": pool,
                        "reward": "none",
                        "temperature": round(float(t), 3),
                        "top_p": 1.0,
                    },
                    sort_keys=True,
                )
                per_sample = (40 + 30 * d) * (1 + 0.2 * (t - 1))
                for k in range(1, pool + 1):
                    acc = majority_exact(p, k)
                    half = 1.645 * acc.std(ddof=1) / np.sqrt(n_questions)
                    m = float(acc.mean())
                    rows.append(
                        {
                            S.MODEL: f"m{i}",
                            S.STRATEGY: "pool",
                            S.CONFIG: cfg,
                            S.DIFFICULTY: str(d),
                            S.METRIC: "majority@k",
                            S.K: k,
                            S.ACCURACY: m,
                            S.ACCURACY_LO: m - half,
                            S.ACCURACY_HI: m + half,
                            S.N_QUESTIONS: n_questions,
                            S.MEAN_PROMPT_TOKENS: 60.0,
                            S.MEAN_COMPLETION_TOKENS: k * per_sample,
                        }
                    )
    return pd.DataFrame(rows)


def measure(name: str, space: OptionSpace, coster: CostModel, budgets, seeds, trials) -> dict:
    target = space.target(None)
    size = space.size(target)
    coster._cache.clear()
    t0 = time.perf_counter()
    table = space.table(target)
    t_table = time.perf_counter() - t0
    gaps, t_opt, evals = [], [], []
    for B in budgets:
        exact = search_exhaustive(space, target, Budget({"flops": float(B)}))
        if exact.best is None:
            continue
        for seed in seeds:
            coster._cache.clear()
            res = search_optuna(space, target, Budget({"flops": float(B)}), n_trials=trials, seed=seed)
            t_opt.append(res.seconds)
            evals.append(res.evaluations)
            gaps.append(
                100 * (exact.best["accuracy"] - (res.best["accuracy"] if res.best is not None else 0))
            )
    gaps = np.array(gaps)
    return {
        "space": name,
        "options": size,
        "exhaustive_evals": len(table),
        "exhaustive_s": t_table,
        "optuna_evals": float(np.mean(evals)),
        "optuna_s": float(np.mean(t_opt)),
        "gap_mean_pts": float(gaps.mean()),
        "gap_max_pts": float(gaps.max()),
        "within_0.5_pts": f"{int((gaps <= 0.5).sum())}/{len(gaps)}",
    }


def budgets_for(space: OptionSpace, n: int) -> np.ndarray:
    table = space.table(space.target(None))
    lo, hi = np.quantile(table["flops"], [0.05, 0.9])
    return np.geomspace(lo, hi, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", type=Path, help="A samples folder (e.g. the lab profile).")
    ap.add_argument("--synthetic", action="store_true", help="With --profile, also run the synthetic ladder.")
    ap.add_argument("--budgets", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--trials", type=int, default=60)
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    hw = get_hardware("h100")
    rows = []
    if args.profile:
        from planner.profile import load_profile
        from planner.recommend import build_space

        prof = load_profile(args.profile)
        for density in ("coarse", "fine"):
            coster = CostModel(prof.specs, hardware=hw)
            space = build_space(prof, coster, density=density)
            rows.append(
                measure(
                    f"profile {density}", space, coster, budgets_for(space, args.budgets), seeds, args.trials
                )
            )
            print(rows[-1], flush=True)
    if not args.profile or args.synthetic:
        for n_models, n_temps, pool, density in (
            (4, 1, 16, "coarse"),
            (4, 2, 32, "fine"),
            (7, 3, 32, "fine"),
            (7, 6, 64, "fine"),
            (7, 12, 64, "fine"),
        ):
            curves = synthetic_curves(n_models, n_temps, pool)
            specs = {f"m{i}": ModelSpec.from_catalog(QWEN[i % len(QWEN)]) for i in range(n_models)}
            coster = CostModel(specs, hardware=hw)
            space = OptionSpace.from_curves(curves, coster, density=density, fit_if_missing=True)
            name = f"synthetic {n_models}x{n_temps} pool {pool} {density}"
            rows.append(measure(name, space, coster, budgets_for(space, args.budgets), seeds, args.trials))
            print(rows[-1], flush=True)
    out = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print()
        print(out.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
