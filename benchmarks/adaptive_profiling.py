"""Adaptive profiling against uniform pools at equal sample budgets, on REAL repeated-sampling data.

Data: the shared Pythia GSM8K counts (``real_regret.py`` says what they are): 8 sizes at the
final checkpoint, 128 questions. The full recording is imported once and replayed
(``ttc profile --backend replay``, :class:`profiling.backends.replay.ReplaySource`), so every
"profiled" sample is a recorded one, drawn without replacement.

Per seed, side by side:

* **uniform**: every (model, question) pool cut to ``--fraction`` of its recorded size
  (hypergeometric draw, as ``real_regret.py``);
* **adaptive at f** (``--adaptive 0.125 0.03125``): :func:`planner.adaptive_profiling.profile_adaptive`
  with a sample budget equal to the uniform run's total at fraction f, planning for the same
  FLOPs budgets, verifier, GPU, cost model and assumed lengths.

Each folder is then planned from at every budget as ``real_regret.py`` plans (the exhaustive
search over the planner's option space), and the choice is measured on the FULL pools; regret
is against the hindsight-best option within the same budget, measured the same way. Options
beyond a model's smallest recorded pool cannot be measured in hindsight, so every plan here
(uniform and adaptive alike) chooses among options with n up to it, and the hindsight is taken
over the same options (:func:`measurable`; the full data's forecasts past it, e.g. Pythia-1B
at n = 10,112 where only some questions were sampled that often, are neither measured nor
choosable).

Run: ``python benchmarks/adaptive_profiling.py --seeds 3`` (a few minutes per seed on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_regret import DATA, as_profile, full_options, load_counts, planner_space, realized, subsample  # noqa: E402

from fitting import schema as S  # noqa: E402
from fitting.importer import import_file, read_input  # noqa: E402
from planner.adaptive_profiling import profile_adaptive  # noqa: E402
from planner.constants import ACCURACY, DEFAULT_HARDWARE, KNOB_VALUE, MEMORY_BYTES, MODEL, SOURCE  # noqa: E402
from planner.profile import load_profile  # noqa: E402
from planner.request import PlanRequest  # noqa: E402
from planner.search import Budget  # noqa: E402
from planner.space.assumed import AssumedLengths  # noqa: E402
from profiling.backends.replay import ReplaySource  # noqa: E402


def regrets(prof, full, options, budgets, caps, gpu) -> pd.DataFrame:
    """Plan from ``prof`` at each budget among options with n <= the model's recorded pool;
    measure the choice on the full pools. ``reach`` is the regret of the best option the
    planner could consider (measured on the full pools) against the hindsight best: the part
    no choice among the considered options could have removed."""
    space, coster = planner_space(prof, gpu)
    table = space.table(space.target(None))
    table = table[[x <= caps.get(m, 0) for m, x in zip(table[MODEL], table[KNOB_VALUE], strict=True)]]
    table = table.assign(
        _real=[realized(full, m, x) for m, x in zip(table[MODEL], table[KNOB_VALUE], strict=True)]
    )
    limit = coster.memory_limit_bytes()
    rows = []
    for budget in budgets:
        b = Budget({"flops": float(budget), MEMORY_BYTES: limit})
        ok = table[b.feasible(table)]
        if ok.empty:
            continue
        best = ok.loc[ok[ACCURACY].idxmax()]
        got = realized(full, best[MODEL], best[KNOB_VALUE])
        any_ok = options[b.feasible(options)]
        top = any_ok.loc[any_ok["_real"].idxmax()]
        rows.append(
            {
                "budget_flops": float(budget),
                "choice": f"{_short(best[MODEL])} n={best[KNOB_VALUE]:g}",
                "source": best[SOURCE],
                "predicted": 100 * float(best[ACCURACY]),
                "best": f"{_short(top[MODEL])} n={top[KNOB_VALUE]:g}",
                "regret": 100 * (float(top["_real"]) - got),
                "reach": 100 * (float(top["_real"]) - float(ok["_real"].max())),
            }
        )
    return pd.DataFrame(rows)


def measurable(options: pd.DataFrame, full: dict, caps: dict) -> pd.DataFrame:
    """The options the hindsight is taken over: n up to the model's smallest recorded pool (the
    options every plan here may choose), each with its pass@n on the full pools (``_real``).
    Options past it are forecasts of the full data (the recording's larger pools cover only
    some questions), not measurements, and no plan may choose them."""
    ok = options[[x <= caps.get(m, 0) for m, x in zip(options[MODEL], options[KNOB_VALUE], strict=True)]]
    real = [realized(full, m, x) for m, x in zip(ok[MODEL], ok[KNOB_VALUE], strict=True)]
    return ok.assign(_real=real).reset_index(drop=True)


def _short(model: str) -> str:
    return model.removeprefix("Pythia_").removesuffix("_300B")


def pools(folder: Path) -> str:
    """Each model's per-question pool sizes in a run folder: smallest/median/largest."""
    _, counts = read_input(folder)
    per_q = counts.groupby([S.MODEL, S.QUESTION_ID])[S.N_SAMPLES].sum()
    parts = []
    for model, n in per_q.groupby(level=0):
        parts.append(f"{_short(model)} {int(n.min())}/{int(n.median())}/{int(n.max())}")
    return ", ".join(parts)


def adaptive_run(source: ReplaySource, folder: Path, budget_samples: int, budgets, specs, args, seed: int):
    req = PlanRequest(
        {"flops": float(budgets[0])},
        hardware=args.gpu,
        verifier="exact",
        model_specs=specs,
        assume_prompt_tokens=args.prompt_tokens,
        assume_completion_tokens=args.gen_tokens,
    )
    res = profile_adaptive(
        source.models,
        source.task(),
        folder,
        req,
        budgets=[{"flops": float(b)} for b in budgets],
        budget_samples=budget_samples,
        block=args.block,
        seed=seed,
        runner_kwargs={"loader": source.load},
    )
    prof = load_profile(
        folder,
        model_specs=specs,
        n_boot=0,
        use_cache=False,
        verifier="exact",
        assumed=AssumedLengths(args.prompt_tokens, args.gen_tokens),
    )
    return res, prof


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--fraction", type=float, default=1 / 8, help="the uniform pools' fraction")
    ap.add_argument(
        "--adaptive",
        type=float,
        nargs="+",
        default=[1 / 8, 1 / 32],
        help="adaptive runs at the sample budgets of these uniform fractions",
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budgets", type=int, default=12)
    ap.add_argument("--block", type=int, default=4)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen-tokens", type=int, default=256)
    ap.add_argument("--gpu", default=DEFAULT_HARDWARE)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="every other budget of the grid (for iterating; report the full run)",
    )
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    df = load_counts(args.data)
    full = {
        m: (g["n_samples"].to_numpy(np.int64), g["n_correct"].to_numpy(np.int64))
        for m, g in df.groupby("model")
    }
    caps = {m: int(v[0].min()) for m, v in full.items()}
    specs = dict(zip(df["model"], df["catalog"], strict=True))
    t0 = time.perf_counter()
    rows, grown = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full_prof, _ = as_profile(df, tmp / "full", args.prompt_tokens, args.gen_tokens, 0)
        options = full_options(df, planner_space(full_prof, args.gpu)[1], full_prof)
        # the budget grid spans every option of the full data (the grid of earlier runs)
        budgets = np.geomspace(
            float(options["flops"].min()) * 1.05, float(options["flops"].max()), args.budgets
        )
        options = measurable(options, full, caps)
        if args.quick:
            budgets = budgets[::2]
        src_file = tmp / "source.csv"
        df[["model", "question_id", "n_samples", "n_correct"]].to_csv(src_file, index=False)
        import_file(src_file, tmp / "source")
        source = ReplaySource.read(tmp / "source")
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rng = np.random.default_rng(seed)
            sub = subsample(df, args.fraction, rng)
            prof, _ = as_profile(sub, tmp / f"uniform{seed}", args.prompt_tokens, args.gen_tokens, 0)
            r = regrets(prof, full, options, budgets, caps, args.gpu)
            rows.append(
                r.assign(seed=seed, run=f"uniform {args.fraction:.4g}", samples=int(sub["n_samples"].sum()))
            )
            for f in args.adaptive:
                budget_samples = int(np.maximum(np.round(df["n_samples"].to_numpy() * f), 1).sum())
                t1 = time.perf_counter()
                res, aprof = adaptive_run(
                    source, tmp / f"adaptive{seed}-{f}", budget_samples, budgets, specs, args, seed
                )
                r = regrets(aprof, full, options, budgets, caps, args.gpu)
                grown[f"adaptive {f:.4g} seed {seed}"] = pools(tmp / f"adaptive{seed}-{f}")
                for step in res.rounds:  # what each round grew and why (the decision's own words)
                    print(
                        f"  {f:.4g} seed {seed} round {step['round']}: {step['grow']} <- {step['why']}",
                        file=sys.stderr,
                    )
                rows.append(
                    r.assign(
                        seed=seed,
                        run=f"adaptive {f:.4g}",
                        samples=res.samples,
                        rounds=len(res.rounds),
                        stopped=res.stopped,
                        seconds=time.perf_counter() - t1,
                    )
                )
            print(f"seed {seed} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    res = pd.concat(rows, ignore_index=True)
    pd.set_option("display.width", 200)
    print(
        f"Pythia GSM8K ({df['question_id'].nunique()} questions, {df['model'].nunique()} models), replayed; "
        f"verified; FLOPs budgets on {args.gpu}; ASSUMED {args.prompt_tokens} prompt + {args.gen_tokens} generated "
        f"tokens per sample; {args.budgets} budgets x {args.seeds} seeds; regret in points vs the hindsight-best option"
    )
    summary = res.groupby("run").agg(
        samples=("samples", "mean"),
        regret_mean=("regret", "mean"),
        regret_max=("regret", "max"),
    )
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    extra = (
        res[res["run"].str.startswith("adaptive")]
        .groupby(["run", "seed"])
        .agg(rounds=("rounds", "first"), seconds=("seconds", "first"), stopped=("stopped", "first"))
    )
    print(extra.to_string(float_format=lambda v: f"{v:.0f}"))
    cols = ["budget_flops", "choice", "source", "predicted", "best", "regret", "reach"]
    for (run, seed), r in res.groupby(["run", "seed"]):
        if seed == args.first_seed:
            print(
                f"\n{run}, seed {seed} (reach: the best option it could consider, against the hindsight best):"
            )
            print(
                r[cols].to_string(
                    index=False, float_format=lambda v: f"{v:.3g}" if abs(v) >= 1e6 else f"{v:.2f}"
                )
            )
    for run, text in grown.items():
        print(f"pools of {run} (smallest/median/largest per question): {text}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
