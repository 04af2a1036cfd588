"""``ttc import``: per-sample results or per-question counts (JSONL/CSV/Parquet) -> a Parquet shard."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import OUTPUT, console, fail


def import_samples(
    file: Path = typer.Argument(
        ..., help="JSONL, CSV or Parquet file: one sample per line/row, or one question's counts per row."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder to write (created if needed).", rich_help_panel=OUTPUT
    ),
) -> None:
    """Import per-sample eval results, or per-question counts, into a folder for `ttc fit`.

    Samples: required `question_id`, `correct` (true/false). Optional: `sample_idx`, `answer`,
    `reference`, `model`, `strategy`, `config` (JSON object), `difficulty`, `prompt_tokens`,
    `completion_tokens`, `latency_s`, `ttft_s`, `kv_bytes_peak`, `flops`, `logprob`, `reward`.

    Counts (published coverage data; told apart by `n_samples` and `n_correct` without
    `correct`): required `question_id`, `n_samples`, `n_correct`; optional `model`,
    `strategy`, `config`, `difficulty` and per-sample MEANS of `prompt_tokens`,
    `completion_tokens`, `latency_s`, `kv_bytes_peak`, `flops`. Stored as one row per question.

    Bad input stops with the file, line (row) and field; unknown fields are reported and
    dropped; nothing half-written is left behind.

    Examples:

        ttc import results.jsonl --out runs/imported && ttc fit runs/imported --out out/fit

        ttc import monkeys_gsm8k_pythia_counts.csv --out runs/pythia && ttc forecast runs/pythia --at 10000
    """
    from fitting.importer import import_file
    from fitting.schema import SchemaError

    try:
        result, shard = import_file(file, out)
    except SchemaError as exc:
        fail(str(exc))
    df = result.table
    if result.unknown_fields:
        console.print(f"[yellow]ignored unknown field(s):[/] {', '.join(sorted(result.unknown_fields))}")
    if result.kind == "counts":
        what = f"counts of {len(df)} (model, question) pairs, {int(df['n_samples'].sum())} samples in all,"
    else:
        what = f"{len(df)} samples"
    console.print(
        f"imported {what} of {df['question_id'].nunique()} questions "
        f"({df['model'].nunique()} model(s), {df['strategy'].nunique()} strategy(ies)) -> {shard}"
    )


def register(app: typer.Typer) -> None:
    app.command("import", short_help="Import per-sample results or per-question counts (JSONL/CSV/Parquet).")(
        import_samples
    )
