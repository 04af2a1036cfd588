"""Read per-sample results from JSONL or CSV into the samples table.

This is how eval logs from anywhere enter ttc-planner (``ttc import``). Every record is
checked field by field, so an error names the file, the line and the field, what was
expected and what was found::

    samples.jsonl line 42: field 'correct' must be true/false, got "yes"

Format (one record per line / CSV row). Required: ``question_id`` (string or integer) and
``correct`` (true/false; CSV also accepts 1/0). Optional: ``sample_idx`` (non-negative
integer; numbered 0.. per question when absent), ``answer``, ``reference``, ``model``,
``strategy``, ``config`` (JSON object), ``difficulty``, ``run_id``, ``task``, ``backend``,
``prompt_tokens``, ``completion_tokens`` (non-negative integers), ``latency_s``,
``ttft_s``, ``kv_bytes_peak``, ``flops`` (non-negative numbers), ``kv_source``,
``logprob``, ``reward`` (finite numbers). Unknown fields are reported and dropped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from . import schema as S
from .atomic import atomic_write

__all__ = ["ImportResult", "read_records", "import_file", "write_shard"]

_STR_FIELDS = {S.RUN_ID, S.MODEL, S.BACKEND, S.TASK, S.STRATEGY, S.KV_SOURCE}
_LABEL_FIELDS = {S.QUESTION_ID, S.DIFFICULTY, S.ANSWER, S.REFERENCE}  # strings; numbers allowed
_COUNT_FIELDS = {S.SAMPLE_IDX, S.PROMPT_TOKENS, S.COMPLETION_TOKENS}
_NONNEG_FIELDS = {S.LATENCY_S, S.TTFT_S, S.KV_BYTES_PEAK, S.FLOPS}
_REAL_FIELDS = {S.LOGPROB, S.REWARD}
KNOWN_FIELDS = set(S.SAMPLES_SCHEMA)


@dataclass
class ImportResult:
    """What :func:`import_file` read: the validated table and what it dropped."""

    samples: pd.DataFrame
    source: str
    unknown_fields: set[str] = field(default_factory=set)


def _fmt(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _check_field(name: str, value: object, where: str, from_csv: bool) -> object:
    """Return ``value`` converted to the field's type, or raise SchemaError."""
    if from_csv and value == "":
        value = None
    if value is None:
        if name in S.REQUIRED_SAMPLE_COLUMNS:
            raise S.SchemaError(f"{where}: required field {name!r} is empty")
        return None
    if name == S.CORRECT:
        if isinstance(value, bool):
            return value
        if from_csv and isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        if not from_csv and isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise S.SchemaError(f"{where}: field 'correct' must be true/false, got {_fmt(value)}")
    if name in _LABEL_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise S.SchemaError(f"{where}: field {name!r} must be a string or number, got {_fmt(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise S.SchemaError(f"{where}: field {name!r} must be finite, got {value!r}")
        text = str(value)
        if name == S.QUESTION_ID and not text.strip():
            raise S.SchemaError(f"{where}: field 'question_id' must not be blank")
        return text
    if name in _STR_FIELDS:
        if not isinstance(value, str):
            raise S.SchemaError(f"{where}: field {name!r} must be a string, got {_fmt(value)}")
        return value
    if name == S.CONFIG:
        if isinstance(value, dict):
            return json.dumps(value, sort_keys=True)
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                return json.dumps(parsed, sort_keys=True)
        raise S.SchemaError(f"{where}: field 'config' must be a JSON object, got {_fmt(value)}")
    number = _to_number(value, from_csv)
    if number is None or not math.isfinite(number):
        kind = "a non-negative integer" if name in _COUNT_FIELDS else "a finite number"
        raise S.SchemaError(f"{where}: field {name!r} must be {kind}, got {_fmt(value)}")
    if name in _COUNT_FIELDS:
        if number != int(number) or number < 0:
            raise S.SchemaError(f"{where}: field {name!r} must be a non-negative integer, got {_fmt(value)}")
        return int(number)
    if name in _NONNEG_FIELDS and number < 0:
        raise S.SchemaError(f"{where}: field {name!r} must be >= 0, got {_fmt(value)}")
    return float(number)


def _to_number(value: object, from_csv: bool) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if from_csv and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _raw_records(path: Path, text: str) -> Iterator[tuple[int, dict, bool]]:
    """Yield (line number, raw record, from_csv)."""
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None:
            return
        if any(name is None or name == "" for name in reader.fieldnames):
            raise S.SchemaError(f"{path} line 1: the CSV header has an empty column name")
        for row in reader:
            if None in row:
                raise S.SchemaError(f"{path} line {reader.line_num}: more cells than header columns")
            if any(v is None for v in row.values()):
                raise S.SchemaError(f"{path} line {reader.line_num}: fewer cells than header columns")
            yield reader.line_num, row, True
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise S.SchemaError(f"{path} line {lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise S.SchemaError(f"{path} line {lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record, False


def read_records(path: str | Path) -> ImportResult:
    """Read and check a JSONL or CSV file of per-sample results.

    Raises :class:`fitting.schema.SchemaError` naming file, line and field on bad input.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.jsonl"
    >>> _ = p.write_text('{"question_id": "q1", "correct": true}\\n{"question_id": "q1", "correct": false}\\n')
    >>> read_records(p).samples["sample_idx"].tolist()
    [0, 1]
    """
    path = Path(path)
    if not path.is_file():
        raise S.SchemaError(f"{path}: no such file")
    if path.suffix.lower() not in (".jsonl", ".csv", ".json", ".ndjson"):
        raise S.SchemaError(f"{path}: unsupported extension {path.suffix!r}; expected .jsonl or .csv")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise S.SchemaError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    rows: list[dict] = []
    unknown: set[str] = set()
    seen: dict[tuple, int] = {}
    next_idx: dict[tuple, int] = {}
    for lineno, raw, from_csv in _raw_records(path, text):
        where = f"{path} line {lineno}"
        for req in S.REQUIRED_SAMPLE_COLUMNS:
            if req not in raw:
                raise S.SchemaError(f"{where}: missing required field {req!r}")
        row = {}
        for name, value in raw.items():
            if name not in KNOWN_FIELDS:
                unknown.add(str(name))
                continue
            row[name] = _check_field(name, value, where, from_csv)
        group = tuple(row.get(c) or S.IDENTITY_DEFAULTS.get(c) for c in (S.RUN_ID, S.MODEL, S.STRATEGY, S.CONFIG))
        group += (row[S.QUESTION_ID],)
        if row.get(S.SAMPLE_IDX) is None:
            row[S.SAMPLE_IDX] = next_idx.get(group, 0)
        next_idx[group] = max(next_idx.get(group, 0), row[S.SAMPLE_IDX] + 1)
        key = group + (row[S.SAMPLE_IDX],)
        if key in seen:
            raise S.SchemaError(
                f"{where}: duplicate (question_id, sample_idx) = ({row[S.QUESTION_ID]!r}, {row[S.SAMPLE_IDX]}); "
                f"first seen on line {seen[key]}"
            )
        seen[key] = lineno
        rows.append(row)
    if not rows:
        raise S.SchemaError(f"{path}: no records found")
    df = S.validate_samples(pd.DataFrame(rows), source=str(path))
    return ImportResult(samples=df, source=str(path), unknown_fields=unknown)


def write_shard(df: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Write a validated samples DataFrame as one Parquet shard, atomically.

    Written with :func:`fitting.atomic.atomic_write`, so a crash leaves either the whole
    shard or nothing.
    """
    table = S.to_arrow(df)
    return atomic_write(Path(out_dir) / name, lambda fh: pq.write_table(table, fh))


def import_file(path: str | Path, out_dir: str | Path) -> tuple[ImportResult, Path]:
    """Read ``path`` and write it under ``out_dir`` as ``samples-import-<hash>.parquet``.

    The shard name derives from the file's content, so importing the same file twice
    replaces its shard instead of duplicating the samples.
    """
    result = read_records(path)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    shard = write_shard(result.samples, out_dir, f"samples-import-{digest}.parquet")
    return result, shard
