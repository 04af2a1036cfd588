"""``ttc fit``: a samples folder (or a JSONL/CSV file) -> curves.parquet/.csv and fits.json."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import FITTING, OUTPUT, console, fail


def fit(
    samples: Path = typer.Argument(..., help="Samples folder (Parquet shards) or a JSONL/CSV/Parquet file."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Folder for curves.parquet, curves.csv and fits.json.",
        rich_help_panel=OUTPUT,
    ),
    n_boot: int = typer.Option(
        200,
        "--n-boot",
        help="Bootstrap replicates over questions (0: no intervals).",
        rich_help_panel=FITTING,
    ),
    level: float = typer.Option(0.9, "--level", help="Coverage of the intervals.", rich_help_panel=FITTING),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the bootstrap and of Monte Carlo estimates.", rich_help_panel=FITTING
    ),
    by_pass_rate: int = typer.Option(
        0,
        "--bins",
        help="Replace difficulty labels by N quantile bins of per-question pass rate (0: keep labels).",
        rich_help_panel=FITTING,
    ),
) -> None:
    """Turn samples into accuracy-vs-compute curves and fitted scaling laws.

    Every k up to the pool size is estimated from one pool of samples per question (pass@k,
    exact majority@k, best-of-k, weighted vote); each curve gets the law that best predicts
    its held-out high-compute points (power law, exponential decay, exp-power, logistic),
    with bootstrap intervals over questions and the saturation point N*.

    Example:

        ttc fit examples/samples.jsonl --out out/fit
    """

    from fitting.curves import assign_difficulty, difficulty_bins
    from fitting.importer import read_records
    from fitting.pipeline import fit_samples
    from fitting.schema import SchemaError, read_samples

    try:
        if samples.is_file() and samples.suffix.lower() in (".jsonl", ".csv", ".ndjson", ".json"):
            df = read_records(samples).samples
        else:
            df = read_samples(samples)
    except SchemaError as exc:
        fail(str(exc))
    if by_pass_rate:
        df = assign_difficulty(df, difficulty_bins(df, n_bins=by_pass_rate, method="pass_rate"))
    with console.status(f"fitting {len(df)} samples ({df['question_id'].nunique()} questions)..."):
        result = fit_samples(df, n_boot=n_boot, level=level, seed=seed)
    parquet, csv, fits = result.write(out)
    _print_table(result)
    console.print(f"wrote {parquet}, {csv} and {fits}")


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
