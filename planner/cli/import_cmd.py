"""``ttc import``: per-sample results from JSONL or CSV -> the samples table (Parquet)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import OUTPUT, console, fail


def import_samples(
    file: Path = typer.Argument(..., help="JSONL or CSV file with one sample per line/row."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Samples folder to write (created if needed).", rich_help_panel=OUTPUT
    ),
) -> None:
    """Import per-sample eval results into a samples folder.

    Required fields: `question_id`, `correct` (true/false). Optional: `sample_idx`, `answer`,
    `reference`, `model`, `strategy`, `config` (JSON object), `difficulty`, `prompt_tokens`,
    `completion_tokens`, `latency_s`, `ttft_s`, `kv_bytes_peak`, `flops`, `logprob`, `reward`.
    Bad input stops with the file, line and field; nothing half-written is left behind.

    Example:

        ttc import results.jsonl --out runs/imported && ttc fit runs/imported --out out/fit
    """
    from fitting.importer import import_file
    from fitting.schema import SchemaError

    try:
        result, shard = import_file(file, out)
    except SchemaError as exc:
        fail(str(exc))
    df = result.samples
    if result.unknown_fields:
        console.print(f"[yellow]ignored unknown field(s):[/] {', '.join(sorted(result.unknown_fields))}")
    console.print(
        f"imported {len(df)} samples of {df['question_id'].nunique()} questions "
        f"({df['model'].nunique()} model(s), {df['strategy'].nunique()} strategy(ies)) -> {shard}"
    )


def register(app: typer.Typer) -> None:
    app.command("import", short_help="Import per-sample results (JSONL/CSV) into a samples folder.")(
        import_samples
    )
