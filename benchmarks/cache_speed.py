"""The fit cache: the fit step of ``ttc demo`` and ``ttc fit`` on unchanged data, first run against
rerun, side by side in one run on one profile.

    python benchmarks/cache_speed.py ttc-demo/profile [--n-boot 200] [--cold-fit]

The profile's shards and run.json are copied to a scratch folder with no cache, then, in order:

1. the demo's fit step (``load_profile`` of the deployable metrics + writing ``fit/``, what
   ``ttc demo`` runs as "[2/3] fitting curves and laws"): first run (empty cache), then a rerun;
2. ``ttc fit PROFILE --out DIR`` in a fresh process: first run, then a rerun. Its first run follows
   the demo's, as for a user who runs ``ttc fit`` after the demo: the majority and best-of curves are
   in the cache, the pass@k curves are new (``--cold-fit`` gives ``ttc fit`` its own empty cache);
3. one shard rewritten (one row's verdict flipped): the demo's fit step again, which refits only the
   curves of that row's group.

Each line says how many curve groups and fits were computed and how many were read from the cache
(counted by the cache, not inferred from times). Times are wall-clock seconds on this machine; the
load average is printed before and after. Set OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 on
shared cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fitting import schema as S  # noqa: E402
from fitting.pipeline import FitOutput  # noqa: E402
from planner.profile import load_profile  # noqa: E402
from profiling.storage import write_shard  # noqa: E402


def demo_fit_step(folder: Path, out: Path, n_boot: int) -> tuple[float, str, int]:
    """What ``ttc demo`` runs as its fit step; returns (seconds, what the cache reused, fits)."""
    t0 = time.perf_counter()
    prof = load_profile(folder, n_boot=n_boot)
    FitOutput(curves=prof.curves, fits=prof.fits).write(out)
    return time.perf_counter() - t0, prof.cache.describe(), len(prof.fits)


def ttc_fit(folder: Path, out: Path, n_boot: int) -> tuple[float, float, str]:
    """``ttc fit`` in a fresh process: (wall seconds, the fit step's own seconds, its summary)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TTC_PROGRESS": "0", "COLUMNS": "300"}
    code = "from planner.cli import main; main()"
    argv = [sys.executable, "-c", code, "fit", str(folder), "--out", str(out), "--n-boot", str(n_boot)]
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"ttc fit failed:\n{done.stderr}")
    text = " ".join(done.stdout.split())
    line = text[text.index("fitted ") :]
    step = float(re.search(r"curves in ([0-9.]+) s", line).group(1))
    reused = re.search(r"\((reused [^)]*?) at ", line)
    return wall, step, reused.group(1) if reused else "no cache"


def rewrite_one_shard(folder: Path) -> str:
    """Flip the verdict of the first pool row of one shard, rewriting that shard in place."""
    for path in S.shard_paths(folder):
        part = pd.read_parquet(path)
        pool = part.index[part[S.STRATEGY] == "pool"]
        if len(pool):
            part.loc[pool[0], S.CORRECT] = not bool(part.loc[pool[0], S.CORRECT])
            write_shard(folder, part, target=path)
            row = part.loc[pool[0]]
            return f"{path.name}: {row[S.MODEL]} pool, difficulty {row[S.DIFFICULTY]}, question {row[S.QUESTION_ID]}"
    raise SystemExit("no shard with pool rows to rewrite")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile", help="a samples folder, e.g. ttc-demo/profile (its cache is not used)")
    ap.add_argument(
        "--n-boot", type=int, default=200, help="bootstrap replicates (the demo's and CLI's default)"
    )
    ap.add_argument("--cold-fit", action="store_true", help="ttc fit on its own copy with an empty cache")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cache-speed-"))
    try:
        copies = ["demo", "fit"] if args.cold_fit else ["demo"]
        for name in copies:
            folder = scratch / name
            folder.mkdir()
            for p in [*S.shard_paths(args.profile), Path(args.profile) / "run.json"]:
                if p.exists():
                    shutil.copy2(p, folder / p.name)
        demo, fit = scratch / "demo", scratch / ("fit" if args.cold_fit else "demo")
        samples = S.read_samples(demo)
        print(
            f"profile {args.profile}: {len(samples)} samples, "
            f"{samples.groupby(list(S.GROUP_KEYS)).ngroups} curve groups; n_boot {args.n_boot}; "
            f"{os.cpu_count()} CPUs, load average {load()} before"
        )
        rows = []
        first = demo_fit_step(demo, scratch / "out-demo", args.n_boot)
        again = demo_fit_step(demo, scratch / "out-demo", args.n_boot)
        rows.append(("ttc demo fit step (load_profile + fit/)", first[0], again[0], first[1], again[1]))
        f1 = ttc_fit(fit, scratch / "out-fit", args.n_boot)
        f2 = ttc_fit(fit, scratch / "out-fit", args.n_boot)
        what = "ttc fit, own empty cache" if args.cold_fit else "ttc fit after the demo"
        rows.append((f"{what}: fit step", f1[1], f2[1], f1[2], f2[2]))
        rows.append((f"{what}: whole command", f1[0], f2[0], "", ""))
        changed = rewrite_one_shard(demo)
        third = demo_fit_step(demo, scratch / "out-demo", args.n_boot)
        print(f"\n{'':44} {'first run':>10} {'rerun':>8} {'ratio':>7}   cache, first run -> rerun")
        for name, a, b, ca, cb in rows:
            cache = f"{ca} -> {cb}" if ca else ""
            print(f"{name:44} {a:9.1f}s {b:7.2f}s {a / b:6.0f}x   {cache}")
        print(f"\none shard rewritten ({changed}):")
        print(
            f"{'ttc demo fit step':44} {first[0]:9.1f}s {third[0]:7.2f}s {first[0] / third[0]:6.0f}x   "
            f"{third[1]}"
        )
        print(f"\nload average {load()} after")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
