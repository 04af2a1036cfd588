"""The fit pipeline, per-replicate ``least_squares`` versus the batched engine, in one run.

Same inputs, same seeds, side by side:

1. **One curve's question bootstrap** (``n_boot`` = 200): :func:`fitting.bootstrap_questions`
   with ``method="scipy"`` (one warm-started ``least_squares`` per replicate, the path before
   the batched engine) and ``method="batched"`` (:mod:`fitting._batchfit`). The curve is
   the real lab-m pass@k curve at difficulty 3 of ``examples/samples.jsonl`` (16 questions x
   k = 1..16, where bootstrap replicates are well posed); ``--all-curves`` times every
   curve of that file.
2. **The whole fit** (:func:`fitting.pipeline.fit_samples`, default settings) of
   ``examples/samples.jsonl`` and of a demo-sized profile (``--demo``: the ``profile/``
   folder of ``ttc demo --out DIR``), both methods, with the time in each stage
   (estimators, law selection, bootstrap) and how far the two paths' intervals are apart.
3. **Law selection** of every curve of the demo profile (every candidate law on each cut's low
   end and on all points): :func:`fitting.select.fit_curve_many` with ``least_squares`` laws
   (one fit at a time, the path before the batched engine) versus with ``solver="batched"``
   laws (every fit of every curve in one :func:`fitting.fit_laws` call), and whether they
   select the same laws.

Timings are wall-clock ``perf_counter`` seconds (the batched single-curve bootstrap: the
median of 5 runs after a warm-up; everything else one run); the load average before and
after is printed (the machine may be shared). ``--profile`` prints the hottest functions
of the batched whole fit of the demo profile (cProfile). Run::

    python benchmarks/fit_speed.py --demo ttc-demo/profile
    python benchmarks/fit_speed.py --quick            # skip the per-replicate whole fits
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fitting import ConvergenceWarning, binomial_weights, get_law  # noqa: E402
from fitting import pipeline as P  # noqa: E402
from fitting import schema as S  # noqa: E402
from fitting.curves import curves_from_samples, k_grid, per_question_curves  # noqa: E402
from fitting.importer import read_records  # noqa: E402
from fitting.schema import read_samples  # noqa: E402
from fitting.select import DEFAULT_LAWS, fit_curve, fit_curve_many  # noqa: E402
from fitting.uncertainty import bootstrap_questions  # noqa: E402

METHODS = ("scipy", "batched")


def load(path: Path):
    return read_records(path).samples if path.is_file() else read_samples(path)


def curve_jobs(samples, n_boot: int):
    """(name, law, per-question matrix, x, grid, weights) of every curve fit_samples bootstraps."""
    curves = curves_from_samples(samples, n_boot=0)
    per_q = per_question_curves(samples)
    jobs = []
    for ident, rows, keys in P._curve_groups(curves):
        x = rows[S.K].to_numpy(float)
        y = rows[S.ACCURACY].to_numpy(float)
        nq = rows[S.N_QUESTIONS].to_numpy(float)
        if len(np.unique(x)) < P.MIN_POINTS:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            law, _ = fit_curve(x, y, sample_weight=binomial_weights(y, nq))
        matrix = P._per_question_matrix(per_q, keys, x)
        if not law.converged_ or matrix is None:
            continue
        grid = np.unique(np.concatenate([x, np.geomspace(x.min(), P.BAND_FACTOR * x.max(), 40)]))
        w = binomial_weights(matrix.mean(axis=0).to_numpy(float), nq.max())
        name = f"{ident[S.MODEL]} {ident[S.STRATEGY]} {ident[S.METRIC]} d{ident[S.DIFFICULTY]} ({law.name})"
        jobs.append((name, law, matrix.to_numpy(float), matrix.columns.to_numpy(float), grid, w))
    return jobs


def time_bootstrap(job, n_boot: int, seed: int, repeats: int = 5):
    """Seconds of one bootstrap per method: the per-replicate path once (n_boot fits, itself an
    average), the batched path after a warm-up as the median of ``repeats`` runs."""
    name, law, m, x, grid, w = job
    out = {}
    for method in METHODS:
        times = []
        for _ in range(1 if method == "scipy" else repeats + 1):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                res = bootstrap_questions(
                    law, m, x, n_boot=n_boot, grid=grid, sample_weight=w, rng=seed, method=method
                )
            times.append(time.perf_counter() - t0)
        out[method] = (float(np.median(times[1:] if len(times) > 1 else times)), res)
    return out


class StageTimer:
    """Wall time spent in the stages of fit_samples (by wrapping the pipeline's callees)."""

    STAGES = {
        "curves_and_per_question": "estimators",
        "fit_curve_many": "selection",
        "bootstrap_questions_many": "bootstrap",
    }

    def __enter__(self):
        self.seconds = defaultdict(float)
        self.saved = {}
        for fn, stage in self.STAGES.items():
            original = getattr(P, fn)
            self.saved[fn] = original

            def timed(*a, _f=original, _s=stage, **k):
                t0 = time.perf_counter()
                try:
                    return _f(*a, **k)
                finally:
                    self.seconds[_s] += time.perf_counter() - t0

            setattr(P, fn, timed)
        return self

    def __exit__(self, *exc):
        for fn, original in self.saved.items():
            setattr(P, fn, original)


def whole_fit(samples, n_boot: int, method: str):
    with StageTimer() as timer, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        out = P.fit_samples(samples, n_boot=n_boot, method=method)
        total = time.perf_counter() - t0
    return total, dict(timer.seconds), out


def interval_gap(a, b) -> str:
    """How far the two paths' interval ends are apart, in interval widths (params and N*)."""
    gaps, worst = [], []
    for fa, fb in zip(a.fits, b.fits, strict=True):
        if not fa.get("params_ci") or not fb.get("params_ci") or fa["law"] != fb["law"]:
            continue
        curve = []
        for name, (lo_a, hi_a) in fa["params_ci"].items():
            lo_b, hi_b = fb["params_ci"][name]
            if None in (lo_a, hi_a, lo_b, hi_b):
                continue
            width = max(abs(hi_a - lo_a), 1e-12)
            curve += [abs(lo_a - lo_b) / width, abs(hi_a - hi_b) / width]
        gaps += curve
        if curve:
            name = f"{fa[S.MODEL]} {fa[S.METRIC]} d{fa[S.DIFFICULTY]} {fa['law']}"
            worst.append((max(curve), name, fa.get("n_boot_failed"), fb.get("n_boot_failed")))
    if not gaps:
        return "no intervals"
    g = np.array(gaps)
    worst = sorted(worst, reverse=True)[:3]
    listed = "; ".join(f"{n} {v:.2f} (failed {fs} vs {fb})" for v, n, fs, fb in worst)
    return (
        f"interval ends apart by median {np.median(g):.3f}, 90th pct {np.quantile(g, 0.9):.2f} interval widths; "
        f"largest: {listed}"
    )


def selection_curves(samples):
    """The (x, y, weights) of every curve fit_samples selects a law for."""
    curves = curves_from_samples(samples, n_boot=0)
    out = []
    for ident, rows, _ in P._curve_groups(curves):
        if ident["knob"] == "k":
            rows = rows[rows[S.K].isin(k_grid(int(rows[S.K].max()), P.FIT_DENSE_K, P.FIT_PER_DECADE))]
        x = rows[S.K].to_numpy(float)
        y = rows[S.ACCURACY].to_numpy(float)
        if len(np.unique(x)) < P.MIN_POINTS or np.ptp(y) == 0:
            continue
        out.append((x, y, binomial_weights(y, rows[S.N_QUESTIONS].to_numpy(float))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=Path, default=ROOT / "examples" / "samples.jsonl")
    ap.add_argument("--demo", type=Path, default=Path("ttc-demo/profile"), help="a ttc demo profile/ folder")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--all-curves", action="store_true", help="time the bootstrap of every curve of --samples"
    )
    ap.add_argument("--quick", action="store_true", help="skip the per-replicate (scipy) whole fits")
    ap.add_argument("--profile", action="store_true", help="cProfile the batched whole fit of the demo")
    args = ap.parse_args()

    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    lab = load(args.samples)
    jobs = curve_jobs(lab, args.n_boot)
    chosen = jobs if args.all_curves else [j for j in jobs if "pass@k d3" in j[0]][:1]
    print(f"\n1. one curve's question bootstrap, n_boot={args.n_boot} ({args.samples.name})")
    print(f"   {'curve':<52} {'per-replicate':>13} {'batched':>9} {'ratio':>7} {'least_squares':>13}")
    total = {m: 0.0 for m in METHODS}
    for job in chosen:
        out = time_bootstrap(job, args.n_boot, args.seed)
        (ts, rs), (tb, rb) = out["scipy"], out["batched"]
        total["scipy"] += ts
        total["batched"] += tb
        print(f"   {job[0]:<52} {ts:>12.2f}s {tb:>8.3f}s {ts / tb:>6.0f}x {rb.n_scipy:>6} refits")
        sat = f"N* [{rs.saturation.lo:.4g}, {rs.saturation.hi:.4g}] vs [{rb.saturation.lo:.4g}, {rb.saturation.hi:.4g}]"
        ci = "; ".join(
            f"{p} [{rs.params.loc[p, 'lo']:.4g}, {rs.params.loc[p, 'hi']:.4g}] vs "
            f"[{rb.params.loc[p, 'lo']:.4g}, {rb.params.loc[p, 'hi']:.4g}]"
            for p in rs.params.index
        )
        print(
            f"     intervals (per-replicate vs batched): {ci}; {sat}; failed {rs.n_failed} vs {rb.n_failed}"
        )
    if len(chosen) > 1:
        print(
            f"   {'all curves':<52} {total['scipy']:>12.2f}s {total['batched']:>8.3f}s "
            f"{total['scipy'] / total['batched']:>6.0f}x"
        )

    print(f"\n2. the whole fit (fit_samples, n_boot={args.n_boot}, default metrics and laws)")
    targets = [("examples/samples.jsonl", lab)]
    if args.demo.exists():
        targets.append((f"demo profile {args.demo}", load(args.demo)))
    else:
        print(f"   (no demo profile at {args.demo}: build one with `ttc demo --out ttc-demo` and rerun)")
    for label, samples in targets:
        nq = samples[S.QUESTION_ID].nunique()
        print(f"   {label}: {len(samples)} samples, {nq} questions")
        results = {}
        for method in METHODS:
            if method == "scipy" and args.quick:
                continue
            total_s, stages, out = whole_fit(samples, args.n_boot, method)
            results[method] = (total_s, out)
            parts = ", ".join(f"{k} {v:.1f}s" for k, v in stages.items())
            n_curves = sum(1 for f in out.fits if f.get("params_ci"))
            print(f"     {method:<8} {total_s:>7.1f}s  ({parts}; {n_curves} curves bootstrapped)")
        if len(results) == 2:
            (ts, a), (tb, b) = results["scipy"], results["batched"]
            print(f"     ratio {ts / tb:.1f}x; {interval_gap(a, b)}")

    if args.demo.exists():
        demo = load(args.demo)
        curves = selection_curves(demo)
        print(
            f"\n3. law selection of the demo profile ({len(curves)} curves x {len(DEFAULT_LAWS)} laws x "
            "(each cut's low end + all points))"
        )
        timed = {}
        for solver in METHODS:
            laws = [get_law(name).set_params(solver=solver) for name in DEFAULT_LAWS]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                t0 = time.perf_counter()
                timed[solver] = (fit_curve_many(curves, laws), time.perf_counter() - t0)
        (one, t_one), (many, t_many) = timed["scipy"], timed["batched"]
        same = sum(a[0].name == b[0].name for a, b in zip(one, many, strict=True))
        print(
            f"   least_squares one by one {t_one:.1f}s, batched all at once {t_many:.2f}s, ratio {t_one / t_many:.1f}x"
        )
        print(f"   same law selected for {same}/{len(curves)} curves")

        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            whole_fit(demo, args.n_boot, "batched")
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            print("\n4. cProfile of the batched whole fit of the demo profile (cumulative)")
            print(buf.getvalue())
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
