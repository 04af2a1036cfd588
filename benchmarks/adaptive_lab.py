"""Adaptive profiling against the demo's full profile, with real generation on the built-in lab.

Side by side, on the demo's lab models and questions (``planner.demo.PRESETS["quick"]``: 4 lab
models, 64 questions per difficulty level, 128 new tokens, the fast lab engine):

* **full**: the demo's profile (greedy, direct answers, pools of 16, token budgets), run here or
  reused (``--full DIR``, e.g. ``ttc-demo/profile``);
* **adaptive**: ``ttc profile ... --strategy pool:temperature=1.0 --strategy greedy --strategy
  greedy:cot=false --strategy budget:tokens=8|16|32|64 --adaptive --budget-profile-tokens T`` (the
  demo's strategies: its pool grown adaptively, the others on every question in the seed round)
  on the same models and questions, T = ``--share`` (30%) of the full profile's generated
  tokens, planning for the full profile's report budgets (``--budget-flops``, priced on the H100
  as the report is).

At each report budget (:func:`planner.report.data.default_budgets` of the full profile, every
question weighted by its count as the report's "all" row): each profile's choice as the report
makes it (the exhaustive search over the planner's option space), and the held-out check of
``ttc evaluate`` (:class:`planner.split_engine.HeldOut`): on each of ``--splits`` random half splits,
each profile plans on its train half (measured options only) and both choices are measured on
the FULL profile's test half (the adaptive choice on its own test half where the full profile
did not measure it: a pool larger than 16; the table says so). The difference is adaptive minus
full, in points, mean over splits with its standard deviation.

Goal: the same choice as the full profile at every report budget, or within 1 point held out,
with at most 30% of its generated tokens.

Run: ``OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 python benchmarks/adaptive_lab.py --out /tmp/alab``
(a few minutes on 2 cores; ``--full ttc-demo/profile`` reuses a demo's profile).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from planner.adaptive_profiling import spent
from planner.constants import ARM, KNOB_VALUE
from planner.demo import PRESETS
from planner.profile import load_profile
from planner.report.data import default_budgets, planning_context
from planner.search import Budget, search_exhaustive
from planner.space import OptionSpace
from planner.split_engine import HeldOut, split_seeds
from profiling.runner import profile as run_profile

GPU = "h100"


def full_profile(folder: Path) -> None:
    """The demo's profile step (``planner.demo.run_demo``), resumable."""
    p = PRESETS["quick"]
    run_profile(
        list(p.models),
        "lab-arith",
        list(p.strategies),
        folder,
        per_level=p.per_level,
        progress=True,
        max_new_tokens=128,
        batch_size=p.batch_size,
    )


def adaptive_command(folder: Path, tokens: float, budgets, block: int) -> list[str]:
    p = PRESETS["quick"]
    args = [sys.executable, "-c", "from planner.cli import main; main()", "profile"]
    for m in p.models:
        args += ["--model", m]
    args += ["--task", "lab-arith", "--strategy", "pool:temperature=1.0"]
    for s in p.strategies:  # the demo's single-sample strategies, profiled in the seed round
        if not s.startswith("pool"):
            args += ["--strategy", s]
    args += ["--questions", str(p.per_level)]
    args += ["--max-new-tokens", "128", "--batch-size", str(p.batch_size), "--adaptive"]
    args += ["--budget-profile-tokens", f"{tokens:.0f}", "--gpu", GPU, "--block", str(block)]
    for b in budgets:
        args += ["--budget-flops", f"{b:.6g}"]
    return [*args, "--out", str(folder)]


def choices(prof, budgets) -> list[str]:
    """The report's choice for every question at each budget (its budget map's "all" row)."""
    ctx = planning_context(prof, gpu=GPU)
    out = []
    for b in budgets:
        best = search_exhaustive(ctx, ctx.mix, ctx.budget(b), ctx.risk).best
        out.append("no option fits" if best is None else ctx.label(best[ARM], float(best[KNOB_VALUE])))
    return out


def held_out(prof):
    """The measured-option space of ``prof`` (as ``ttc evaluate`` builds it) and its HeldOut."""
    ctx = planning_context(prof, gpu=GPU)
    space = OptionSpace.from_curves(
        prof.curves,
        ctx.coster,
        architectures=prof.architectures,
        measured_only=True,
        fit_if_missing=False,
        questions=prof.questions,
    )
    mix = space.target(None)
    held = HeldOut(space, prof.curves, prof.samples, {"mix": mix}, per_question=prof.per_question)
    return space, mix, held, ctx.coster.memory_limit_bytes()


def _key(space, arm: str, x: float) -> tuple:
    """An option's identity across two profiles: its label (model, strategy, knobs)."""
    c = space.option_choice(space.arm_by_key(arm), float(x))
    return (c["model"], c["strategy"], tuple(sorted((k, str(v)) for k, v in c["knobs"].items())))


def _by_key(space, table: pd.DataFrame) -> dict[tuple, float]:
    return {
        _key(space, a, x): float(v)
        for a, x, v in zip(table[ARM], table[KNOB_VALUE], table["accuracy"], strict=True)
    }


def held_out_difference(full, adaptive, budgets, n_splits: int) -> pd.DataFrame:
    """Per budget: mean over splits of (adaptive's train-half choice - full's train-half choice),
    both measured on the full profile's test half (points), and how often the adaptive choice
    had to be measured on its own samples."""
    fs, fmix, fh, limit = held_out(full)
    as_, amix, ah, _ = held_out(adaptive)
    rows = []
    diffs = {b: [] for b in budgets}
    own = dict.fromkeys(budgets, 0)
    for s in split_seeds(0, n_splits):
        train, test = fh.split(s)
        ft, at = fh.tables(train), ah.tables(train)
        truth = _by_key(fs, fh.tables(test).table(fmix))
        fallback = _by_key(as_, ah.tables(test).table(amix))
        for b in budgets:
            budget = Budget({"flops": float(b), "memory_bytes": float(limit)})
            f, a = search_exhaustive(ft, fmix, budget).best, search_exhaustive(at, amix, budget).best
            if f is None or a is None:
                continue
            ka = _key(as_, a[ARM], a[KNOB_VALUE])
            got = truth.get(ka)
            if got is None:
                got, own[b] = fallback.get(ka, math.nan), own[b] + 1
            diffs[b].append(100 * (got - truth[_key(fs, f[ARM], f[KNOB_VALUE])]))
    for b in budgets:
        d = np.asarray(diffs[b], float)
        rows.append(
            {
                "held-out diff (points)": float(np.mean(d)) if len(d) else math.nan,
                "sd over splits": float(np.std(d, ddof=1)) if len(d) > 1 else math.nan,
                "adaptive choice measured on its own samples (splits)": own[b],
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the profiles")
    ap.add_argument("--full", type=Path, help="reuse this demo profile folder instead of profiling")
    ap.add_argument("--share", type=float, default=0.3, help="adaptive token budget / full profile's tokens")
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--block", type=int, default=4, help="the adaptive run's --block (its seed pool size)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    full_dir = args.full or args.out / "full"
    if args.full is None:
        full_profile(full_dir)
    t_full = time.perf_counter() - t0
    full = load_profile(full_dir, n_boot=PRESETS["quick"].n_boot)
    budgets = default_budgets(planning_context(full, gpu=GPU))
    full_tokens = spent(full_dir)[1]
    cmd = adaptive_command(args.out / "adaptive", args.share * full_tokens, budgets, args.block)
    print("adaptive:", " ".join(cmd[3:]), flush=True)
    t1 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run(cmd, check=True, env=env)
    t_adaptive = time.perf_counter() - t1
    adaptive = load_profile(args.out / "adaptive", n_boot=PRESETS["quick"].n_boot)
    ada_tokens = spent(args.out / "adaptive")[1]
    fc, ac = choices(full, budgets), choices(adaptive, budgets)
    table = pd.DataFrame(
        {
            "budget (FLOPs/query)": [f"{b:.3g}" for b in budgets],
            "full profile's choice": fc,
            "adaptive's choice": ac,
            "same": [f == a for f, a in zip(fc, ac, strict=True)],
        }
    )
    table = pd.concat([table, held_out_difference(full, adaptive, budgets, args.splits)], axis=1)
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    ok = table["same"] | (table["held-out diff (points)"] >= -1.0)
    ratio = ada_tokens / full_tokens
    print(
        f"generated tokens: full {full_tokens:,.0f}, adaptive {ada_tokens:,.0f} ({ratio:.1%} of full; "
        f"budget {args.share:.0%}); profiling seconds: full {t_full:.0f}"
        f"{' (reused)' if args.full else ''}, adaptive {t_adaptive:.0f}"
    )
    print(
        f"goal (same choice or within 1 point held out at every budget, <= 30% of the tokens): "
        f"{'met' if ok.all() and ratio <= 0.30 + 1e-9 else 'NOT met'} "
        f"({int(ok.sum())} of {len(ok)} budgets pass; token ratio {ratio:.1%})"
    )


if __name__ == "__main__":
    main()
