"""``ttc merge``: combine run folders written by ``ttc profile`` (e.g. the workers of ``--shard i/n``)."""

from __future__ import annotations

import typer

from ._common import console
from ._options_profile import AllowMixed, Dedupe, MergeInputs, MergeOut


def merge_command(
    out: MergeOut,
    inputs: MergeInputs,
    dedupe: Dedupe = False,
    allow_mixed: AllowMixed = False,
) -> None:
    """Combine run folders written by `ttc profile` (e.g. the workers of `--shard i/n`).

    Refuses runs that differ in task, seed, max new tokens, strategy set, the models profiled
    (unless --allow-mixed), the question selection (unless --allow-mixed) or a shared model's
    config; workers that are not one whole `--shard i/n` partition (one n, each i once, none
    missing; unless --allow-mixed); a folder that a `ttc profile` is still writing; and a unit
    held twice (naming both shards) unless --dedupe. With one input and --dedupe it repairs a folder that two
    profilers wrote at once (versions before the run-folder lock) into a new folder.

    Example:

        ttc profile -m lab-s -t lab-arith -s pool:n=16 --shard 0/2 --out runs/w0 &
        ttc profile -m lab-s -t lab-arith -s pool:n=16 --shard 1/2 --out runs/w1; wait
        ttc merge runs/lab-s runs/w0 runs/w1
        ttc merge runs/lab-s-fixed runs/lab-s-with-duplicates --dedupe
    """
    from profiling.storage import merge_runs

    from ._errors import claim_output

    claim_output(out, "folder")
    report = merge_runs(out, list(inputs), dedupe=dedupe, allow_mixed=allow_mixed)
    dropped = f"; {len(report.dropped)} duplicate unit(s) left out" if report.dropped else ""
    console.print(
        f"merged {len(report.inputs)} run folder(s): {report.units} units, {report.rows} rows -> {report.out}{dropped}"
    )


def register(app: typer.Typer) -> None:
    app.command("merge", short_help="Combine run folders of `ttc profile` (e.g. shards).")(merge_command)
