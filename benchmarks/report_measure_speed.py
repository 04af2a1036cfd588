"""The report's "What to measure next" section: what it adds to ``build_report``, side by side in
one run on one profile.

    python benchmarks/report_measure_speed.py ttc-demo/profile [--n-boot 200] [--repeats 1]

Three builds of the same report (``build_report(..., png=False)``, default budgets, h100), in
order, after one untimed warm-up build that fills the fit cache:

* ``without``: the section's blocks replaced by none (``planner.report.build.measure_next_blocks``
  returns None at every budget), the report's cost without the section;
* ``per budget``: the section with the bootstrap replicates drawn again at every budget (what
  :func:`planner.what_to_measure.measure_next` does when called once per budget, as the report
  did before it shared them);
* ``shared``: the section as built now (:func:`planner.report.measure.measure_next_blocks`: one
  draw of the replicates and one look-up of the arms' profiled configs for every budget).

It prints each build's wall-clock seconds (min and median of the repeats), the section's own
seconds (the report's timing of it), the builds' ratios to ``without``, the section's ratio per
budget / shared, and checks that the two section variants give the same P(best), regret (to
1e-9) and commands at every budget. Times are wall-clock on this machine;
the load average is printed before and after. Set OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
on shared cores.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.report import build_report  # noqa: E402
from planner.report import measure as M  # noqa: E402
from planner.what_to_measure import measure_next_in  # noqa: E402

TOL = 1e-9


def _build(profile: str, out: Path, n_boot: int):
    t0 = time.perf_counter()
    files = build_report(profile, out, gpu="h100", n_boot=n_boot, png=False)
    return time.perf_counter() - t0, files.content


def _without(ctx, budgets, **_):
    return [None] * len(budgets)


def _per_budget(profile, ctx, **kwargs):
    return measure_next_in(profile, ctx, **{**kwargs, "beliefs": None})


def _same(a: list, b: list) -> bool:
    for (_, x), (_, y) in zip(a, b, strict=True):
        if (x is None) != (y is None):
            return False
        if x is None:
            continue
        for k in ("p_best", "expected_regret_points"):
            if not math.isclose(x[k], y[k], rel_tol=0, abs_tol=TOL):
                return False
        if [c["command"] for c in x["actions"]] != [c["command"] for c in y["actions"]]:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"load average before: {os.getloadavg()}")
    variants = {
        "without": mock.patch("planner.report.build.measure_next_blocks", _without),
        "per budget": mock.patch.object(M, "measure_next_in", _per_budget),
        "shared": mock.patch.object(M, "measure_next_in", measure_next_in),
    }
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    section: dict[str, list[float]] = {k: [] for k in variants}
    blocks = {}
    with tempfile.TemporaryDirectory() as tmp:
        _build(args.profile, Path(tmp) / "warm.html", args.n_boot)
        for r in range(args.repeats):
            for name, patch in variants.items():
                with patch:
                    s, content = _build(args.profile, Path(tmp) / f"{r}.html", args.n_boot)
                seconds[name].append(s)
                section[name].append(content.seconds.get("measure_next", math.nan))
                blocks[name] = content.measure_next
                print(f"  {name}: {s:.1f} s", flush=True)
    base = min(seconds["without"])
    for name in variants:
        best, mid = min(seconds[name]), statistics.median(seconds[name])
        print(
            f"{name:>10}: build min {best:5.1f} s, median {mid:5.1f} s of {args.repeats}; "
            f"section min {min(section[name]):5.2f} s; build ratio to without (min) {best / base:.3f}"
        )
    ratio = min(section["per budget"]) / min(section["shared"])
    print(f"section per budget / shared (min): {ratio:.2f}x")
    print(f"per budget and shared give the same blocks: {_same(blocks['per budget'], blocks['shared'])}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
