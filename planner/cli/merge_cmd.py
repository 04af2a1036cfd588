"""``ttc merge``: combine run folders written by ``ttc profile`` (e.g. the workers of ``--shard i/n``)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import console, fail


def merge_command(
    out: Path = typer.Argument(..., help="New folder for the merged run."),
    inputs: list[Path] = typer.Argument(
        ..., help="Run folders to combine (e.g. the workers of --shard i/n)."
    ),
) -> None:
    """Combine run folders written by `ttc profile` (e.g. the workers of `--shard i/n`).

    Refuses runs that differ in task, seed, max new tokens, strategy set or a shared model's
    config, and inputs that hold the same unit twice.

    Example:

        ttc profile -m lab-s -t lab-arith -s pool:n=16 --shard 0/2 --out runs/w0 &
        ttc profile -m lab-s -t lab-arith -s pool:n=16 --shard 1/2 --out runs/w1; wait
        ttc merge runs/lab-s runs/w0 runs/w1
    """
    from profiling.storage import RunMismatch, merge_runs

    try:
        report = merge_runs(out, list(inputs))
    except (RunMismatch, ValueError) as exc:
        fail(str(exc))
    console.print(
        f"merged {len(report.inputs)} run folder(s): {report.units} units, {report.rows} rows -> {report.out}"
    )


def register(app: typer.Typer) -> None:
    app.command("merge", short_help="Combine run folders of `ttc profile` (e.g. shards).")(merge_command)
