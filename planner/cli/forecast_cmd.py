"""``ttc forecast``: accuracy at k far beyond the profiled pools, with intervals and backtests."""

from __future__ import annotations

import json

import typer

from ._common import console, fail, samples_folder
from ._options import Json, Level, Method, NBoot, Samples, SamplesArg, Seed
from ._options_cmd import At, BacktestReps, Metric, Target


def forecast(
    samples_arg: SamplesArg = None,
    samples: Samples = None,
    at: At = ...,
    target: Target = None,
    as_json: Json = False,
    level: Level = 0.9,
    method: Method = "auto",
    metric: Metric = [],  # noqa: B006 - typer copies the default
    backtest_reps: BacktestReps = 5,
    n_boot: NBoot = 200,
    seed: Seed = 0,
) -> None:
    """Forecast pass@K (and majority/best-of where the data allow) far beyond the profiled k.

    For each (model, strategy, metric, difficulty) curve: the forecast at every --at K with a
    90% interval, the method, how far it went (K / k_max, k_max = the smallest pool) and an
    error measured on the data itself (`extrapolation_error` at `backtest_ratio`). pass@k uses
    the per-question counts (a beta-binomial posterior over per-question success rates, its
    tail exponent sharing a hierarchical prior across the curves in the data);
    majority@k and best_of@k use the law that extrapolates best on their aggregate curve.
    With --target, also the k at which the forecast reaches that accuracy. --json prints a
    list of records with `model`, `strategy`, `metric`, `difficulty`, `at`, `estimate`, `lo`,
    `hi`, `method`, `k_max` (and `target`, `k_needed` with --target).

    Examples:

        ttc forecast runs/pythia --at 10000 --at 100000 --target 0.9

        ttc forecast examples/samples.jsonl --at 256 --json
    """
    import warnings

    from fitting.curves import METRICS, DataWarning
    from fitting.forecast import FORECAST_METHODS
    from fitting.forecast import forecast as run_forecast
    from fitting.importer import read_input
    from fitting.schema import SchemaError

    if method not in FORECAST_METHODS:
        fail(f"--method must be one of {', '.join(FORECAST_METHODS)}, got {method!r}")
    bad = [m for m in metric if m not in METRICS]
    if bad:
        fail(f"--metric must be among {', '.join(METRICS)}, got {bad[0]!r}")
    if any(k < 1 for k in at):
        fail(f"--at must be >= 1, got {min(at):g}")
    fractional = [k for k in at if k != int(k)]
    if fractional:
        fail(f"--at must be a whole number of samples per question, got {fractional[0]:g}")
    if backtest_reps < 0:
        fail(f"--backtest-reps must be >= 0 (0: no backtest), got {backtest_reps}")
    if target is not None and not 0 < target < 1:
        fail(f"--target must be an accuracy in (0, 1), got {target:g}")
    try:
        df, counts = read_input(samples_folder(samples_arg, samples))
    except SchemaError as exc:
        fail(str(exc))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        records = run_forecast(
            df,
            counts,
            at,
            target=target,
            level=level,
            method=method,
            metrics=metric or METRICS,
            n_boot=n_boot,
            backtest_reps=backtest_reps,
            seed=seed,
        )
    notes = dict.fromkeys(str(c.message) for c in caught if issubclass(c.category, DataWarning))
    if not as_json:
        for message in notes:
            console.print(f"[yellow]note:[/] {message}", highlight=False)
    if not records:
        fail("nothing to forecast: no pool curves in this data")
    if as_json:  # strict JSON: missing numbers are null, and the record's note says why
        print(json.dumps(records, indent=1, allow_nan=False))
        return
    _print_table(records, target, level)


def _num(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _print_table(records: list[dict], target: float | None, level: float) -> None:
    from rich.table import Table

    table = Table(
        title=f"forecasts ({level:.0%} intervals; error = backtest on this data at the ratio shown)"
    )
    cols = [
        "model",
        "strategy",
        "metric",
        "difficulty",
        "at",
        "K/k_max",
        "estimate",
        "interval",
        "method",
        "error",
    ]
    if target is not None:
        cols.append(f"k for {target:g}")
    for col in cols:
        table.add_column(col)
    for r in records:
        err = r.get("extrapolation_error")
        ratio = r.get("backtest_ratio")
        error = "-" if err is None else f"{err:.3f}" + (f" @{ratio:.0f}x" if ratio else "")
        row = [
            r["model"],
            r["strategy"],
            r["metric"],
            r["difficulty"],
            f"{r['at']:g}",
            f"{r['ratio']:.3g}",
            _num(r["estimate"]),
            "-" if r["lo"] is None else f"[{r['lo']:.3f}, {r['hi']:.3f}]",
            r["method"] or f"- ({r['note']})",
            error,
        ]
        if target is not None:
            k, lo, hi = r.get("k_needed"), r.get("k_needed_lo"), r.get("k_needed_hi")
            row.append("-" if k is None else f"{k:.4g} [{_num(lo, '.3g')}, {_num(hi, '.3g')}]")
        table.add_row(*row)
    console.print(table)
    console.print(
        "k_max: the smallest pool (every question sampled that often); '-' in k: beyond 1e15 or no law"
    )


def register(app: typer.Typer) -> None:
    app.command(
        "forecast", short_help="Forecast accuracy far beyond the profiled k (pass@K, k to a target)."
    )(forecast)
