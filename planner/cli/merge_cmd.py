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
    dedupe: bool = typer.Option(
        False,
        "--dedupe",
        help="Keep the first copy of a unit found in more than one shard (a folder written by two "
        "profilers at once) instead of refusing.",
    ),
) -> None:
    """Combine run folders written by `ttc profile` (e.g. the workers of `--shard i/n`).

    Refuses runs that differ in task, seed, max new tokens, strategy set or a shared model's
    config, a folder that a `ttc profile` is still writing, and a unit held twice (naming
    both shards) unless --dedupe. With one input and --dedupe it repairs a folder that two
    profilers wrote at once (versions before the run-folder lock) into a new folder.

    Example:

        ttc profile -m lab-s -t lab-arith -s pool:n=16 --shard 0/2 --out runs/w0 &
        ttc profile -m lab-s -t lab-arith -s pool:n=16 --shard 1/2 --out runs/w1; wait
        ttc merge runs/lab-s runs/w0 runs/w1
        ttc merge runs/lab-s-fixed runs/lab-s-with-duplicates --dedupe
    """
    from profiling.lock import RunLocked
    from profiling.storage import RunMismatch, merge_runs

    try:
        report = merge_runs(out, list(inputs), dedupe=dedupe)
    except (RunMismatch, RunLocked, ValueError) as exc:
        fail(str(exc))
    dropped = f"; {len(report.dropped)} duplicate unit(s) left out" if report.dropped else ""
    console.print(
        f"merged {len(report.inputs)} run folder(s): {report.units} units, {report.rows} rows -> {report.out}{dropped}"
    )


def register(app: typer.Typer) -> None:
    app.command("merge", short_help="Combine run folders of `ttc profile` (e.g. shards).")(merge_command)
