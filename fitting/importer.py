"""Read per-sample results or per-question counts from JSONL, CSV or Parquet.

This is how eval logs from anywhere enter ttc-planner (``ttc import``). Every record is
checked field by field, so an error names the file, the line (the row for Parquet) and the
field, what was expected and what was found::

    samples.jsonl line 42: field 'correct' must be true/false, got "yes"

**Samples** (one record per sample). Required: ``question_id`` (string or integer) and
``correct`` (true/false; CSV also accepts 1/0). Optional: ``sample_idx`` (non-negative
integer; numbered 0.. per question when absent), ``answer``, ``reference``, ``model``,
``strategy``, ``config`` (JSON object), ``difficulty``, ``run_id``, ``task``, ``backend``,
``prompt_tokens``, ``completion_tokens`` (non-negative integers), ``latency_s``,
``ttft_s``, ``kv_bytes_peak``, ``flops`` (non-negative numbers), ``kv_source``,
``logprob``, ``reward`` (finite numbers).

**Counts** (one record per question: published coverage data). A file whose records have
``n_samples`` and ``n_correct`` (and no ``correct``) is read as counts: required
``question_id``, ``n_samples`` (integer >= 1), ``n_correct`` (integer in [0, n_samples]);
optional identity fields as above (``model``, ``strategy``, ``config``, ``difficulty``,
``run_id``, ``task``, ``backend``) and per-sample MEANS of ``prompt_tokens``,
``completion_tokens``, ``latency_s``, ``kv_bytes_peak``, ``flops`` (non-negative numbers).
Stored compactly, one row per question (:data:`fitting.schema.COUNTS_SCHEMA`).

In both forms unknown fields are reported and dropped. A number's range is checked with the
whole table by :func:`fitting.schema.validate_samples` / :func:`~fitting.schema.validate_counts`,
the check every reader runs (``fitting/_values.py``: counts up to 1e15, no NaN-as-value, no
infinity); NaN, like an empty cell, means "not measured". The first problem of a file, by line,
is the one reported.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from common.atomic import atomic_write

from . import _values as V
from . import schema as S
from ._import_shards import (
    check_no_overlap,
    content_sha256,
    earlier_imports,
    shard_names,
    source_of,
    with_record,
)
from .blocks import merge_count_blocks, merge_sample_blocks

__all__ = ["ImportResult", "read_records", "read_input", "import_file", "write_shard", "SAMPLE_SUFFIXES"]

#: file extensions ``read_records`` accepts
SAMPLE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")

_STR_FIELDS = {S.RUN_ID, S.MODEL, S.BACKEND, S.TASK, S.STRATEGY, S.KV_SOURCE}
_LABEL_FIELDS = {S.QUESTION_ID, S.DIFFICULTY, S.ANSWER, S.REFERENCE}  # strings; numbers allowed
KNOWN_FIELDS = set(S.SAMPLES_SCHEMA)
KNOWN_COUNT_FIELDS = set(S.COUNTS_SCHEMA)


@dataclass
class ImportResult:
    """What :func:`import_file` read: the validated table, its kind and what it dropped.

    ``kind`` is ``"samples"`` (``samples`` holds the samples table, ``counts`` is None) or
    ``"counts"`` (``counts`` holds the counts table, ``samples`` is None).
    """

    samples: pd.DataFrame | None
    source: str
    unknown_fields: set[str] = field(default_factory=set)
    counts: pd.DataFrame | None = None
    kind: str = "samples"
    #: what was noticed while reading, for people (an unusual CSV dialect, unlabelled questions)
    notes: list[str] = field(default_factory=list)
    #: the shards of an earlier import of the same file (its resolved path) that this import replaced
    replaced: list[Path] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        """The table read (samples or counts)."""
        return self.counts if self.kind == "counts" else self.samples


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
    return _number_field(name, value, where, from_csv, S.SAMPLE_VALUES[name])


def _number_field(name: str, value: object, where: str, from_csv: bool, kind: str) -> int | float | None:
    """A number as given (an integer stays one; NaN is "not measured", like an empty cell), or
    SchemaError when it is not a number. Its range is checked with the whole table, by
    :func:`fitting.schema.validate_samples` / :func:`~fitting.schema.validate_counts`."""
    number = _to_number(value, from_csv)
    if number is None:
        raise S.SchemaError(f"{where}: field {name!r} must be {V.EXPECTED[kind]}, got {_fmt(value)}")
    return None if number != number else number


def _to_number(value: object, from_csv: bool) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if from_csv and isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value)
            except ValueError:
                pass
    return None


def _raw_records(path: Path, text: str | None) -> Iterator[tuple[int, dict, bool]]:
    """Yield (line or row number, raw record, from_csv)."""
    if text is None:  # Parquet: one record per row, nulls (and float NaN) as None
        for row, record in enumerate(_parquet_rows(path), start=1):
            yield row, {k: None if isinstance(v, float) and v != v else v for k, v in record.items()}, False
        return
    if path.suffix.lower() == ".csv":
        delimiter, spaces = _csv_dialect(text)
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, skipinitialspace=spaces)
        if reader.fieldnames is None:
            return
        reader.fieldnames = [name.strip() for name in reader.fieldnames]
        if any(name == "" for name in reader.fieldnames):
            raise S.SchemaError(f"{path} line 1: the CSV header has an empty column name")
        seen: dict[str, int] = {}
        for i, name in enumerate(reader.fieldnames, start=1):
            if name in seen:
                raise S.SchemaError(
                    f"{path} line 1: column {name!r} appears twice in the header (columns {seen[name]} and {i}); "
                    "keep one"
                )
            seen[name] = i
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
            record = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise S.SchemaError(
                f"{path} line {lineno}: not valid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        except _DuplicateKey as exc:
            raise S.SchemaError(
                f"{path} line {lineno}: field {exc.args[0]!r} appears twice; keep one"
            ) from None
        if not isinstance(record, dict):
            raise S.SchemaError(f"{path} line {lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record, False


def _parquet_rows(path: Path) -> list[dict]:
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise S.SchemaError(f"{path}: cannot read Parquet file: {exc}") from None
    twice = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
    if twice:
        raise S.SchemaError(f"{path}: column {twice[0]!r} appears twice; keep one")
    return table.to_pylist()


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's fields, refusing a field given twice (``json`` would keep the last)."""
    out = dict(pairs)
    if len(out) < len(pairs):
        names = [k for k, _ in pairs]
        raise _DuplicateKey(next(k for k in names if names.count(k) > 1))
    return out


#: delimiters a CSV may use (Excel writes ";" where the decimal separator is a comma)
CSV_DELIMITERS = (",", ";", "\t", "|")


def _csv_dialect(text: str) -> tuple[str, bool]:
    """(delimiter, spaces after delimiters) of a CSV, read from its header line: the delimiter
    that splits the header into the most columns (comma when none splits it), and whether
    header cells start with spaces."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: header.count(d) for d in CSV_DELIMITERS}
    delimiter = max(CSV_DELIMITERS, key=lambda d: (counts[d], d == ","))
    if counts[delimiter] == 0:
        delimiter = ","
    spaces = any(cell != cell.lstrip(" ") for cell in header.split(delimiter)[1:])
    return delimiter, spaces


def csv_dialect_note(text: str) -> str | None:
    r"""What is unusual about a CSV's dialect (a UTF-8 byte-order mark, a delimiter other than a
    comma, spaces after the delimiters), in words, or None.

    Examples
    --------
    >>> csv_dialect_note("\ufeffquestion_id; correct\nq1; 1\n")
    'read as CSV with a UTF-8 byte-order mark (Excel), ";" as the delimiter, spaces after delimiters ignored'
    >>> csv_dialect_note("question_id,correct\n") is None
    True
    """
    bom = text.startswith("\ufeff")
    delimiter, spaces = _csv_dialect(text.removeprefix("\ufeff"))
    parts = ["a UTF-8 byte-order mark (Excel)"] if bom else []
    if delimiter != ",":
        parts.append(f"{'tab' if delimiter == chr(9) else json.dumps(delimiter)} as the delimiter")
    if spaces:
        parts.append("spaces after delimiters ignored")
    return f"read as CSV with {', '.join(parts)}" if parts else None


def _where_row(path: Path, lineno: int, parquet: bool) -> str:
    return f"{path} {'row' if parquet else 'line'} {lineno}"


def read_records(path: str | Path) -> ImportResult:
    """Read and check a JSONL, CSV or Parquet file of per-sample results or per-question counts.

    The kind is told by the first record: ``n_samples`` and ``n_correct`` without ``correct``
    make it counts (see the module docstring). Raises :class:`fitting.schema.SchemaError`
    naming file, line (row) and field on bad input.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.jsonl"
    >>> _ = p.write_text('{"question_id": "q1", "correct": true}\\n{"question_id": "q1", "correct": false}\\n')
    >>> read_records(p).samples["sample_idx"].tolist()
    [0, 1]
    >>> _ = p.write_text('{"question_id": "q1", "n_samples": 100, "n_correct": 3}\\n')
    >>> r = read_records(p); r.kind, r.counts["n_correct"].tolist()
    ('counts', [3])
    """
    path = Path(path)
    if not path.is_file():
        raise S.SchemaError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SAMPLE_SUFFIXES:
        raise S.SchemaError(
            f"{path}: unsupported extension {path.suffix!r}; expected .jsonl, .csv or .parquet"
        )
    text = None
    notes = []
    if suffix != ".parquet":
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise S.SchemaError(
                f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 (Excel: 'CSV UTF-8')"
            ) from None
        note = csv_dialect_note(text) if suffix == ".csv" else None
        if note is None and text.startswith("\ufeff"):
            note = "read with a UTF-8 byte-order mark"
        if note:
            notes.append(note)
        text = text.removeprefix("\ufeff")
    records = _raw_records(path, text)
    first = next(records, None)
    if first is None:
        raise S.SchemaError(f"{path}: no records found")
    raw0 = first[1]
    is_counts = S.N_SAMPLES in raw0 and S.N_CORRECT in raw0 and S.CORRECT not in raw0
    records = itertools.chain([first], records)
    if is_counts:
        result = _read_counts(path, records, suffix == ".parquet")
    else:
        result = _read_samples(path, records, suffix == ".parquet")
    labels = result.table[S.DIFFICULTY]
    if (labels == S.UNLABELLED).any():
        questions = result.table.loc[labels == S.UNLABELLED, S.QUESTION_ID].nunique()
        notes.append(
            f"{questions} question(s) have no difficulty label while others have one: labelled "
            f"{S.UNLABELLED!r} ('all' always means every question)"
        )
    result.notes = notes + result.notes
    return result


def _checked(path: Path, records, parquet: bool, required, known, check, unknown: set[str]):
    """Yield (where, line, row) with each record's known fields checked; unknown names collected."""
    for lineno, raw, from_csv in records:
        where = _where_row(path, lineno, parquet)
        for req in required:
            if req not in raw:
                raise S.SchemaError(f"{where}: missing required field {req!r}")
        row = {}
        for name, value in raw.items():
            if name not in known:
                unknown.add(str(name))
                continue
            row[name] = check(name, value, where, from_csv)
        yield where, lineno, row


def _identity(row: dict) -> tuple:
    """(run, model, strategy, config, question) of a checked record, defaults filled in."""
    ids = (S.RUN_ID, S.MODEL, S.STRATEGY, S.CONFIG)
    return (*(row.get(c) or S.IDENTITY_DEFAULTS.get(c) for c in ids), row[S.QUESTION_ID])


def _read_samples(path: Path, records, parquet: bool) -> ImportResult:
    rows: list[dict] = []
    lines: list[int] = []
    unknown: set[str] = set()
    seen: dict[tuple, int] = {}
    next_idx: dict[tuple, int] = {}
    duplicate = None
    stopped: list[tuple[int, str]] = []
    checked = _checked(path, records, parquet, S.REQUIRED_SAMPLE_COLUMNS, KNOWN_FIELDS, _check_field, unknown)
    for where, lineno, row in _until_error(checked, stopped):
        group = _identity(row)
        if row.get(S.SAMPLE_IDX) is None:
            row[S.SAMPLE_IDX] = next_idx.get(group, 0)
        next_idx[group] = max(next_idx.get(group, 0), row[S.SAMPLE_IDX] + 1)
        key = group + (row[S.SAMPLE_IDX],)
        if key in seen and duplicate is None:
            duplicate = (
                len(rows),
                (
                    f"{where}: duplicate (question_id, sample_idx) = ({row[S.QUESTION_ID]!r}, {row[S.SAMPLE_IDX]}); "
                    f"first seen on {'row' if parquet else 'line'} {seen[key]}"
                ),
            )
        seen.setdefault(key, lineno)
        rows.append(row)
        lines.append(lineno)
    df = _validated(path, rows, lines, parquet, S.validate_samples, duplicate or next(iter(stopped), None))
    return ImportResult(samples=df, source=str(path), unknown_fields=unknown)


def _until_error(checked, stopped: list[tuple[int, str]]):
    """What ``checked`` yields until a record is refused; then ``(its position, the message)``
    goes to ``stopped`` and reading ends (the table check of the records before it decides
    which problem comes first)."""
    position = 0
    try:
        for item in checked:
            yield item
            position += 1
    except S.SchemaError as exc:
        stopped.append((position, str(exc)))


def _validated(path: Path, rows: list[dict], lines: list[int], parquet: bool, validate, duplicate):
    """The records as a table checked by ``validate`` (the one check every reader runs), or
    SchemaError for the earliest problem: a bad value, named by its file line, or the
    ``duplicate`` ``(position, message)``: a record refused, or a duplicate met, while reading."""
    if not rows and duplicate is not None:
        raise S.SchemaError(duplicate[1])
    try:
        df = validate(pd.DataFrame(rows), source=str(path))
    except S.BadValue as exc:
        if duplicate is None or exc.row < duplicate[0]:
            where = _where_row(path, lines[exc.row], parquet)
            value = rows[exc.row].get(exc.column, exc.value)
            raise S.SchemaError(
                f"{where}: field {exc.column!r} must be {exc.expected}, got {_fmt(value)}"
            ) from None
        raise S.SchemaError(duplicate[1]) from None
    except S.DuplicateRows:
        if duplicate is None:
            raise
        raise S.SchemaError(duplicate[1]) from None
    if duplicate is not None:
        raise S.SchemaError(duplicate[1])
    return df


def _read_counts(path: Path, records, parquet: bool) -> ImportResult:
    rows: list[dict] = []
    lines: list[int] = []
    unknown: set[str] = set()
    seen: dict[tuple, int] = {}
    duplicate = None
    stopped: list[tuple[int, str]] = []
    checked = _checked(
        path, records, parquet, S.REQUIRED_COUNT_COLUMNS, KNOWN_COUNT_FIELDS, _check_count_field, unknown
    )
    for where, lineno, row in _until_error(checked, stopped):
        key = _identity(row)
        if key in seen and duplicate is None:
            unit = "row" if parquet else "line"
            duplicate = (
                len(rows),
                (
                    f"{where}: duplicate counts for question_id {row[S.QUESTION_ID]!r} of model {key[1]!r}; "
                    f"first seen on {unit} {seen[key]}"
                ),
            )
        seen.setdefault(key, lineno)
        rows.append(row)
        lines.append(lineno)
    df = _validated(path, rows, lines, parquet, S.validate_counts, duplicate or next(iter(stopped), None))
    return ImportResult(samples=None, source=str(path), unknown_fields=unknown, counts=df, kind="counts")


def _check_count_field(name: str, value: object, where: str, from_csv: bool) -> object:
    """A counts record's field converted to its type, or SchemaError (see the module doc)."""
    if name not in S.COUNT_VALUES:
        return _check_field(name, value, where, from_csv)
    value = None if from_csv and value == "" else value
    number = None if value is None else _number_field(name, value, where, from_csv, S.COUNT_VALUES[name])
    if number is None and name in S.REQUIRED_COUNT_COLUMNS:
        raise S.SchemaError(f"{where}: required field {name!r} is empty")
    return number


def write_shard(df: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Write a validated samples DataFrame as one Parquet shard, atomically.

    Written with :func:`common.atomic.atomic_write`, so a crash leaves either the whole
    shard or nothing.
    """
    return _write_table(S.to_arrow(df), out_dir, name)


def _write_table(table, out_dir: str | Path, name: str) -> Path:
    """Write a pyarrow Table as ``out_dir/name`` with :func:`common.atomic.atomic_write`."""
    return atomic_write(Path(out_dir) / name, lambda fh: pq.write_table(table, fh))


def import_file(
    path: str | Path, out_dir: str | Path, read: Callable[[Path], ImportResult] | None = None
) -> tuple[ImportResult, Path]:
    """Read ``path`` and write it under ``out_dir`` as one Parquet shard.

    ``read`` reads it (default :func:`read_records`; :func:`fitting.evallogs.reader` gives the
    readers of lm-eval and Inspect AI logs, whose folder is named like a file here).

    Samples go to ``samples-import-<name>-<id>.parquet``, counts to
    ``counts-import-<name>-<id>.parquet`` (one row per question): ``<name>`` is the file's name
    (:func:`import_key`), ``<id>`` a hash of its resolved path, and the shard's metadata records
    that path and the SHA-256 of the content (:func:`fitting.schema.import_record`).
    Importing the same file again (e.g. after correcting it) REPLACES its own earlier import,
    whatever its kind (:attr:`ImportResult.replaced` lists what it replaced); a file at another
    path is another source, kept beside it. Rows that another shard already holds (a copy of a
    file imported before, the same questions of the same run and model) are refused naming
    that shard and its source, before anything is written.
    """
    result = (read or read_records)(Path(path))
    out_dir = Path(out_dir)
    names = shard_names(path, import_key(path))
    earlier = earlier_imports(out_dir, path, names)
    record = {"source": source_of(path), "sha256": content_sha256(path), "kind": result.kind}
    check_no_overlap(result.table, result.kind, out_dir, earlier, record)
    if result.kind == "counts":
        table = S.counts_to_arrow(result.counts)
    else:
        table = S.to_arrow(result.samples)
    shard = _write_table(with_record(table, record), out_dir, names[result.kind])
    for other in earlier:
        if other != shard:  # the earlier import of this source was of the other kind
            other.unlink(missing_ok=True)
    result.replaced = earlier
    return result, shard


def import_key(path: str | Path) -> str:
    """The part of an imported shard's name that names its source file: the file name without
    its extension, characters other than letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``.

    Examples
    --------
    >>> import_key("results/run 1 (final).csv")
    'run_1__final_'
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).stem) or "_"


def read_input(path: str | Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The samples and the counts of a folder (Parquet shards) or of one file.

    A folder gives its samples shards (:func:`fitting.schema.read_samples`) and its counts
    shards (:func:`fitting.schema.read_counts`), either of which may be absent (None). A
    JSONL/CSV file is read by :func:`read_records`; a Parquet file is a counts table when it
    has ``n_samples`` and ``n_correct`` and no ``correct`` column, else a samples shard.
    Raises :class:`fitting.schema.SchemaError` when there is nothing to read.
    """
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() == ".parquet":
            try:
                names = set(pq.read_schema(p).names)
            except Exception as exc:  # pyarrow raises several types for corrupt files
                raise S.SchemaError(f"{p}: cannot read Parquet file: {exc}") from None
            if {S.N_SAMPLES, S.N_CORRECT} <= names and S.CORRECT not in names:
                return None, S.validate_counts(pd.read_parquet(p), source=str(p))
            return S.read_samples(p), None
        result = read_records(p)
        return result.samples, result.counts
    if not p.is_dir():
        raise S.SchemaError(f"{p}: no such samples folder or file")
    # the blocks of a pool grown a block at a time are one pool (fitting.blocks)
    samples = merge_sample_blocks(S.read_samples(p)) if S.has_samples(p) else None
    counts = merge_count_blocks(S.read_counts(p)) if S.counts_paths(p) else None
    if samples is None and counts is None:
        raise S.SchemaError(f"{p}: no Parquet shards found (expected samples-*.parquet or counts-*.parquet)")
    return samples, counts
