"""``ttc fit``: a samples or counts folder (or a JSONL/CSV/Parquet file) -> curves.parquet/.csv and fits.json."""

from __future__ import annotations

import typer

from ._common import console, err_console, fail, samples_folder
from ._options import Level, NBoot, NoCache, Out, Samples, SamplesArg, Seed
from ._options_cmd import Bins, Pools


def fit(
    samples_arg: SamplesArg = None,
    samples: Samples = None,
    out: Out = ...,
    n_boot: NBoot = 200,
    level: Level = 0.9,
    seed: Seed = 0,
    bins: Bins = 0,
    pools: Pools = "common",
    no_cache: NoCache = False,
) -> None:
    """Turn samples into accuracy-vs-compute curves and fitted scaling laws.

    Every k up to the pool size is estimated from one pool of samples per question (pass@k,
    exact majority@k, best-of-k, weighted vote; every k up to 512, then log-spaced); each
    curve gets the law that extrapolates best when fitted on the low end of its range and
    scored on the far end (power law, exponential decay, exp-power, logistic), with
    bootstrap intervals over questions and the saturation point N*. Per-question counts
    (`n_samples`, `n_correct`; see `ttc import`) give pass@k curves only: majority and
    weighted vote need answers. Curves and fits are cached by content: a rerun on unchanged
    data fits nothing, a changed shard refits only its curves.

    Examples:

        ttc fit examples/samples.jsonl --out out/fit

        ttc import monkeys_gsm8k_pythia_counts.csv --out runs/pythia && ttc fit runs/pythia --out out/pythia
    """
    import time
    import warnings

    import pandas as pd

    from fitting.cache import FitCache, fit_counts_cached, fit_samples_cached
    from fitting.curves import DataWarning, assign_difficulty, difficulty_bins
    from fitting.importer import read_input
    from fitting.pipeline import FitOutput

    from ..profile import check_disjoint
    from ._errors import claim_output

    if pools not in ("common", "available"):
        fail(f"--pools must be common or available, got {pools!r}")
    if bins < 0:
        fail(f"--bins must be >= 0 (0: keep the difficulty labels), got {bins}")
    samples = samples_folder(samples_arg, samples)
    claim_output(out, "folder")
    df, counts = read_input(samples)
    if bins and df is not None:
        df = assign_difficulty(df, difficulty_bins(df, n_bins=bins, method="pass_rate"))
    if bins and counts is not None:
        fail("--bins needs per-sample rows; for counts, give a difficulty column when importing")
    if df is not None and counts is not None:
        try:
            check_disjoint(df, counts, samples)
        except ValueError as exc:
            fail(str(exc))
    start = time.perf_counter()
    parts = []
    what = []
    if df is not None:
        what.append(f"{len(df)} samples ({df['question_id'].nunique()} questions)")
    if counts is not None:
        what.append(f"counts of {len(counts)} questions x models")
    # the cache of a folder lives in it (shared with recommend, evaluate, report); of a file, in --out
    cache = FitCache.for_folder(samples if samples.is_dir() else out, enabled=not no_cache)
    err_console.print(f"fitting {' and '.join(what)}", highlight=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        settings = {"n_boot": n_boot, "level": level, "seed": seed, "pool_policy": pools, "progress": True}
        if df is not None:
            parts.append(fit_samples_cached(df, cache, **settings))
        if counts is not None:
            parts.append(fit_counts_cached(counts, cache, **settings))
    result = FitOutput(
        curves=pd.concat([p.curves for p in parts], ignore_index=True),
        fits=[f for p in parts for f in p.fits],
    )
    elapsed = time.perf_counter() - start
    for message in dict.fromkeys(str(c.message) for c in caught if issubclass(c.category, DataWarning)):
        console.print(f"[yellow]note:[/] {message}", highlight=False)
    parquet, csv, fits = result.write(out)
    _print_table(result)
    reused = f" ({cache.describe()} at {cache.root})" if cache.enabled else " (no cache)"
    console.print(
        f"fitted {len(result.fits)} curves in {elapsed:.1f} s{reused}; wrote {parquet}, {csv} and {fits}",
        highlight=False,
    )


def _fmt(value, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def saturation_text(estimate: float | None, k_max: float, factor: float) -> str:
    """N* for people: the value within the profiled range, marked ``extrap.`` up to ``factor`` x
    the largest profiled knob value, and ``beyond data`` past that (a number far past the data
    says nothing).

    Examples
    --------
    >>> saturation_text(12.0, 16, 4), saturation_text(40.0, 16, 4), saturation_text(8e13, 16, 4)
    ('12', '40 extrap.', 'beyond data')
    """
    if estimate is None:
        return "none"
    if estimate <= k_max:
        return f"{estimate:.3g}"
    if estimate <= factor * k_max:
        return f"{estimate:.3g} extrap."
    return "beyond data"


def _print_table(result) -> None:
    from rich import box
    from rich.table import Table

    from fitting import schema as S
    from fitting.pipeline import BAND_FACTOR

    table = Table(
        title="fitted curves: accuracy at the largest profiled knob value; N* = saturation point (a doubling "
        f"gains < 0.5 points; 'beyond data' past {BAND_FACTOR:g}x the profiled range); err = held-out "
        "extrapolation error",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
    )
    for col in ("model", "strategy", "metric", "diff.", "knob range", "acc.", "law", "N*", "err"):
        table.add_column(col, overflow="fold", no_wrap=col not in ("model", "strategy"))
    last = result.curves.sort_values(S.K).groupby([*S.GROUP_KEYS, S.METRIC]).tail(1)
    reasons: dict[str, int] = {}
    for f in result.fits[:40]:
        sel = last[
            (last[S.MODEL] == f[S.MODEL])
            & (last[S.STRATEGY] == f[S.STRATEGY])
            & (last[S.METRIC] == f[S.METRIC])
        ]
        sel = sel[sel[S.DIFFICULTY] == f[S.DIFFICULTY]]
        acc = sel[S.ACCURACY].iloc[-1] if len(sel) else None
        law = f["law"]
        if law is None:
            note = f.get("note") or "no law"
            law = f"none, note {reasons.setdefault(note, len(reasons) + 1)}"
        sat = (f.get("saturation") or {}).get("estimate") if f["law"] else None
        knob = f.get("knob") or "k"
        span = f"{f['k_min']:g}" if f["k_min"] == f["k_max"] else f"{f['k_min']:g}-{f['k_max']:g}"
        table.add_row(
            f[S.MODEL],
            f[S.STRATEGY],
            f[S.METRIC],
            f[S.DIFFICULTY],
            f"{knob} {span}",
            _fmt(acc, ".3f"),
            law,
            saturation_text(sat, f["k_max"], BAND_FACTOR) if f["law"] else "-",
            _fmt(f.get("extrapolation_error"), ".3f"),
        )
    console.print(table)
    for note, i in reasons.items():
        console.print(f"note {i}: {note}", highlight=False, markup=False, soft_wrap=True)
    if len(result.fits) > 40:
        console.print(f"... and {len(result.fits) - 40} more curves in fits.json")


def register(app: typer.Typer) -> None:
    app.command("fit", short_help="Fit curves and scaling laws to a samples folder.")(fit)
