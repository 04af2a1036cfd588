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


def _print_table(result) -> None:
    from rich.table import Table

    from fitting import schema as S

    table = Table(title="fitted curves (accuracy at the largest profiled k; N* = saturation point)")
    for col in ("model", "strategy", "metric", "difficulty", "k", "accuracy", "law", "N*", "extrap. err"):
        table.add_column(col)
    last = result.curves.sort_values(S.K).groupby([*S.GROUP_KEYS, S.METRIC]).tail(1)
    for f in result.fits[:40]:
        sel = last[
            (last[S.MODEL] == f[S.MODEL])
            & (last[S.STRATEGY] == f[S.STRATEGY])
            & (last[S.METRIC] == f[S.METRIC])
        ]
        sel = sel[sel[S.DIFFICULTY] == f[S.DIFFICULTY]]
        acc = sel[S.ACCURACY].iloc[-1] if len(sel) else None
        sat = (f.get("saturation") or {}).get("estimate")
        table.add_row(
            f[S.MODEL],
            f[S.STRATEGY],
            f[S.METRIC],
            f[S.DIFFICULTY],
            f"{f['k_min']:g}-{f['k_max']:g}",
            _fmt(acc, ".3f"),
            f["law"] or "-",
            _fmt(sat),
            _fmt(f.get("extrapolation_error"), ".3f"),
        )
    console.print(table)
    if len(result.fits) > 40:
        console.print(f"... and {len(result.fits) - 40} more curves in fits.json")


def register(app: typer.Typer) -> None:
    app.command("fit", short_help="Fit curves and scaling laws to a samples folder.")(fit)
