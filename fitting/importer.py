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

In both forms unknown fields are reported and dropped.
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

from . import schema as S
from .atomic import atomic_write

__all__ = ["ImportResult", "read_records", "read_input", "import_file", "write_shard", "SAMPLE_SUFFIXES"]

#: file extensions ``read_records`` accepts
SAMPLE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")

_STR_FIELDS = {S.RUN_ID, S.MODEL, S.BACKEND, S.TASK, S.STRATEGY, S.KV_SOURCE}
_LABEL_FIELDS = {S.QUESTION_ID, S.DIFFICULTY, S.ANSWER, S.REFERENCE}  # strings; numbers allowed
_COUNT_FIELDS = {S.SAMPLE_IDX, S.PROMPT_TOKENS, S.COMPLETION_TOKENS}
_NONNEG_FIELDS = {S.LATENCY_S, S.TTFT_S, S.KV_BYTES_PEAK, S.FLOPS}
_REAL_FIELDS = {S.LOGPROB, S.REWARD}
KNOWN_FIELDS = set(S.SAMPLES_SCHEMA)
KNOWN_COUNT_FIELDS = set(S.COUNTS_SCHEMA)
_MEAN_FIELDS = set(S.COUNT_COST_COLUMNS)  # per-sample means in a counts record: any number >= 0


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
    #: the shard of an earlier import of a file of the same name that this import replaced
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
    number = _to_number(value, from_csv)
    if number is None or not math.isfinite(number):
        kind = "a non-negative integer" if name in _COUNT_FIELDS else "a finite number"
        raise S.SchemaError(f"{where}: field {name!r} must be {kind}, got {_fmt(value)}")
    if name in _COUNT_FIELDS:
        if number != int(number) or number < 0:
            raise S.SchemaError(f"{where}: field {name!r} must be a non-negative integer, got {_fmt(value)}")
        if number > S.MAX_COUNT:
            raise S.SchemaError(
                f"{where}: field {name!r} must be at most {S.MAX_COUNT:.0e}, got {_fmt(value)}"
            )
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
    unknown: set[str] = set()
    seen: dict[tuple, int] = {}
    next_idx: dict[tuple, int] = {}
    checked = _checked(path, records, parquet, S.REQUIRED_SAMPLE_COLUMNS, KNOWN_FIELDS, _check_field, unknown)
    for where, lineno, row in checked:
        group = _identity(row)
        if row.get(S.SAMPLE_IDX) is None:
            row[S.SAMPLE_IDX] = next_idx.get(group, 0)
        next_idx[group] = max(next_idx.get(group, 0), row[S.SAMPLE_IDX] + 1)
        key = group + (row[S.SAMPLE_IDX],)
        if key in seen:
            raise S.SchemaError(
                f"{where}: duplicate (question_id, sample_idx) = ({row[S.QUESTION_ID]!r}, {row[S.SAMPLE_IDX]}); "
                f"first seen on {'row' if parquet else 'line'} {seen[key]}"
            )
        seen[key] = lineno
        rows.append(row)
    df = S.validate_samples(pd.DataFrame(rows), source=str(path))
    return ImportResult(samples=df, source=str(path), unknown_fields=unknown)


def _read_counts(path: Path, records, parquet: bool) -> ImportResult:
    rows: list[dict] = []
    unknown: set[str] = set()
    seen: dict[tuple, int] = {}
    checked = _checked(
        path, records, parquet, S.REQUIRED_COUNT_COLUMNS, KNOWN_COUNT_FIELDS, _check_count_field, unknown
    )
    for where, lineno, row in checked:
        if row[S.N_SAMPLES] < 1:
            raise S.SchemaError(f"{where}: field 'n_samples' must be >= 1, got {row[S.N_SAMPLES]}")
        if row[S.N_CORRECT] > row[S.N_SAMPLES]:
            raise S.SchemaError(
                f"{where}: field 'n_correct' must be <= n_samples = {row[S.N_SAMPLES]}, got {row[S.N_CORRECT]}"
            )
        key = _identity(row)
        if key in seen:
            unit = "row" if parquet else "line"
            raise S.SchemaError(
                f"{where}: duplicate counts for question_id {row[S.QUESTION_ID]!r} of model {key[1]!r}; "
                f"first seen on {unit} {seen[key]}"
            )
        seen[key] = lineno
        rows.append(row)
    df = S.validate_counts(pd.DataFrame(rows), source=str(path))
    return ImportResult(samples=None, source=str(path), unknown_fields=unknown, counts=df, kind="counts")


def _check_count_field(name: str, value: object, where: str, from_csv: bool) -> object:
    """A counts record's field converted to its type, or SchemaError (see the module doc)."""
    if from_csv and value == "":
        value = None
    if name in (S.N_SAMPLES, S.N_CORRECT):
        number = None if value is None else _to_number(value, from_csv)
        if number is None or not math.isfinite(number) or number != int(number) or number < 0:
            raise S.SchemaError(f"{where}: field {name!r} must be a non-negative integer, got {_fmt(value)}")
        if number > S.MAX_COUNT:
            raise S.SchemaError(
                f"{where}: field {name!r} must be at most {S.MAX_COUNT:.0e}, got {_fmt(value)}"
            )
        return int(number)
    if name in _MEAN_FIELDS:
        if value is None:
            return None
        number = _to_number(value, from_csv)
        if number is None or not math.isfinite(number) or number < 0:
            raise S.SchemaError(
                f"{where}: field {name!r} (a per-sample mean) must be a number >= 0, got {_fmt(value)}"
            )
        return float(number)
    return _check_field(name, value, where, from_csv)


def write_shard(df: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Write a validated samples DataFrame as one Parquet shard, atomically.

    Written with :func:`fitting.atomic.atomic_write`, so a crash leaves either the whole
    shard or nothing.
    """
    return _write_table(S.to_arrow(df), out_dir, name)


def _write_table(table, out_dir: str | Path, name: str) -> Path:
    """Write a pyarrow Table as ``out_dir/name`` with :func:`fitting.atomic.atomic_write`."""
    return atomic_write(Path(out_dir) / name, lambda fh: pq.write_table(table, fh))


def import_file(
    path: str | Path, out_dir: str | Path, read: Callable[[Path], ImportResult] | None = None
) -> tuple[ImportResult, Path]:
    """Read ``path`` and write it under ``out_dir`` as one Parquet shard.

    ``read`` reads it (default :func:`read_records`; :func:`fitting.evallogs.reader` gives the
    readers of lm-eval and Inspect AI logs, whose folder is named like a file here).

    Samples go to ``samples-import-<name>.parquet``, counts to ``counts-import-<name>.parquet``
    (one row per question), ``<name>`` being the source file's name (:func:`import_key`).
    Importing a file of the same name again (the same file, or an edited copy) REPLACES its
    earlier import, whatever its kind, instead of adding a second copy of the data
    (:attr:`ImportResult.replaced` lists what it replaced); files with other names are kept
    side by side.
    """
    result = (read or read_records)(Path(path))
    out_dir = Path(out_dir)
    key = import_key(path)
    names = {
        "samples": f"{S.SAMPLES_PREFIX}import-{key}.parquet",
        "counts": f"{S.COUNTS_PREFIX}import-{key}.parquet",
    }
    earlier = [out_dir / name for name in names.values() if (out_dir / name).exists()]
    if result.kind == "counts":
        shard = _write_table(S.counts_to_arrow(result.counts), out_dir, names["counts"])
    else:
        shard = write_shard(result.samples, out_dir, names["samples"])
    for other in earlier:
        if other != shard:  # the earlier import of this name was of the other kind
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
    samples = S.read_samples(p) if S.has_samples(p) else None
    counts = S.read_counts(p) if S.counts_paths(p) else None
    if samples is None and counts is None:
        raise S.SchemaError(f"{p}: no Parquet shards found (expected samples-*.parquet or counts-*.parquet)")
    return samples, counts
