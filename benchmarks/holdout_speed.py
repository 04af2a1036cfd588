"""Held-out splits: the split engine (planner.split_engine.HeldOut) against recomputing the curves of each
half, side by side in one run on one profile.

    python benchmarks/holdout_speed.py ttc-demo/profile [--splits 5]

Recomputing (the direct way, each split on its own): the curves of each half from its samples
(:func:`fitting.curves.curves_from_samples`, no bootstrap), an option space of each half's measured
options priced by the cost model, and the option tables of every difficulty and of the mix. The engine:
per-question accuracies and the priced tables once, then means over each half's questions. Both give
the same accuracies (tests/planner/test_holdout.py checks it); this prints what each costs.
Set OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 on shared cores.
"""

from __future__ import annotations

import argparse
import time

from fitting import schema as S
from fitting.curves import curves_from_samples
from planner.profile import DEPLOYABLE_METRICS, load_profile
from planner.space import CostModel, OptionSpace
from planner.split_engine import HeldOut, split_seeds


def recompute(profile, coster, targets, questions) -> None:
    part = profile.samples[profile.samples[S.QUESTION_ID].astype(str).isin(questions)]
    curves = curves_from_samples(part, metrics=DEPLOYABLE_METRICS, n_boot=0)
    space = OptionSpace.from_curves(
        curves, coster, architectures=profile.architectures, measured_only=True, fit_if_missing=False
    )
    for t in targets.values():
        space.table(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile", help="a samples folder (its curves are cached by load_profile)")
    ap.add_argument("--splits", type=int, default=5, help="splits timed on each path")
    args = ap.parse_args()
    profile = load_profile(args.profile)
    coster = CostModel(profile.specs)

    t0 = time.perf_counter()
    space = OptionSpace.from_curves(
        profile.curves, coster, architectures=profile.architectures, measured_only=True, fit_if_missing=False
    )
    mix = space.target(None)
    targets = {"mix": mix, **{b: {b: 1.0} for b in mix}}
    held = HeldOut(space, profile.curves, profile.samples, targets)
    setup = time.perf_counter() - t0
    seeds = split_seeds(0, args.splits)

    t0 = time.perf_counter()
    for s in seeds:
        train, test = held.split(s)
        held.tables(train), held.tables(test)
    engine = (time.perf_counter() - t0) / len(seeds)

    t0 = time.perf_counter()
    for s in seeds:
        train, test = held.split(s)
        recompute(profile, coster, targets, train)
        recompute(profile, coster, targets, test)
    brute = (time.perf_counter() - t0) / len(seeds)

    n = profile.samples[S.QUESTION_ID].nunique()
    print(f"profile: {args.profile} ({n} questions, {len(profile.samples):,} samples), {len(seeds)} splits")
    print(f"engine set-up (once): {setup:.2f} s")
    print(
        f"per split: engine {engine * 1e3:.1f} ms, recomputing the halves {brute:.2f} s, ratio {brute / engine:.0f}x"
    )
    for r in (1, 20, 100):
        print(f"{r:>3} splits: engine {setup + r * engine:.1f} s, recomputing {r * brute:.1f} s")


if __name__ == "__main__":
    main()
