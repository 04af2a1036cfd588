"""What the readers of other tools' logs share: JSON with one-line errors, rows to a samples table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .. import schema as S
from ..importer import ImportResult


def read_json(path: Path) -> object:
    """The JSON document of ``path``, or a :class:`~fitting.schema.SchemaError` naming the file,
    the line and what is wrong (a truncated or corrupt file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise S.SchemaError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise S.SchemaError(
            f"{path} line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})"
        ) from None


def json_lines(path: Path):
    """Yield (line number, object) of a JSONL file; a line that is not a JSON object raises a
    :class:`~fitting.schema.SchemaError` naming the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise S.SchemaError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise S.SchemaError(
                f"{path} line {lineno}: not valid JSON ({exc.msg} at column {exc.colno}); a truncated file?"
            ) from None
        if not isinstance(record, dict):
            raise S.SchemaError(f"{path} line {lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record


def config_json(knobs: dict) -> str:
    """The ``config`` column of imported rows: the knobs that are known, sorted."""
    return json.dumps({k: v for k, v in knobs.items() if v is not None}, sort_keys=True)


def samples_result(rows: list[dict], source: Path, notes: list[str]) -> ImportResult:
    """Validated rows as the :class:`~fitting.importer.ImportResult` of a samples import."""
    if not rows:
        raise S.SchemaError(f"{source}: no samples found")
    df = S.validate_samples(pd.DataFrame(rows), source=str(source))
    return ImportResult(samples=df, source=str(source), notes=notes)
