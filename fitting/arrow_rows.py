"""Profiler rows straight to the samples table's Arrow form (the shard writer's fast path).

:func:`samples_table` gives exactly what ``to_arrow(validate_samples(DataFrame(rows)))`` gives,
table or error: rows that already hold the schema's columns with their types skip pandas.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _values as V
from . import schema as S

__all__ = ["samples_table"]

_ARROW_SCHEMA = pa.schema([pa.field(c, t) for c, t in S.SAMPLES_SCHEMA.items()])


def samples_table(rows: list[dict], source: str | None = None) -> pa.Table:
    """Rows (dicts) validated into the canonical Arrow table: the table
    ``S.to_arrow(S.validate_samples(pd.DataFrame(rows), source))`` returns, and the same errors.

    Rows that hold exactly the schema's columns with their types (as the profiler writes them)
    go straight to Arrow and are checked there: every verdict, identity label and sample index
    present, no NaN, configs already canonical JSON, difficulty labels already in their one
    spelling, no duplicate sample. Any other rows take the DataFrame path, which normalizes
    what it can and words every error.
    """
    table = _direct_table(rows) if rows else None
    return table if table is not None else S.to_arrow(S.validate_samples(pd.DataFrame(rows), source=source))


def _direct_table(rows: list[dict]) -> pa.Table | None:
    """The table of rows that need no normalization, or None (then the DataFrame path decides)."""
    if any(r.keys() != S.SAMPLES_SCHEMA.keys() for r in rows):
        return None
    if not all(_plain_types(r) for r in rows):  # Arrow would convert (1.5 -> 1): let pandas word it
        return None
    try:
        table = pa.Table.from_pylist(rows, schema=_ARROW_SCHEMA)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    needed = [S.CORRECT, S.SAMPLE_IDX, *S.IDENTITY_DEFAULTS, S.QUESTION_ID]
    if any(table.column(c).null_count for c in needed):
        return None
    floats = [c for c, t in S.SAMPLES_SCHEMA.items() if pa.types.is_floating(t)]
    if any(pc.any(pc.is_nan(table.column(c))).as_py() for c in floats):
        return None
    for name, kind in S.SAMPLE_VALUES.items():  # a value out of range: the DataFrame path words it
        if V.first_problem(table.column(name).to_pandas(), name, kind) is not None:
            return None
    configs = pc.unique(table.column(S.CONFIG)).to_pylist()
    labels = pc.unique(table.column(S.DIFFICULTY)).to_pylist()
    try:
        canonical = all(S._config_to_json(c) == c for c in configs)
    except S.SchemaError:
        return None
    if not canonical or S.difficulty_labels(pd.Series(labels, dtype=object)).tolist() != labels:
        return None
    key_columns = (S.RUN_ID, S.MODEL, S.STRATEGY, S.CONFIG, S.QUESTION_ID, S.SAMPLE_IDX)
    if len(set(zip(*(table.column(c).to_pylist() for c in key_columns), strict=True))) != len(rows):
        return None
    return table


_INTS = [c for c, t in S.SAMPLES_SCHEMA.items() if pa.types.is_integer(t)]
_BOOLS = [c for c, t in S.SAMPLES_SCHEMA.items() if pa.types.is_boolean(t)]
_FLOATS = [c for c, t in S.SAMPLES_SCHEMA.items() if pa.types.is_floating(t)]


def _plain_types(row: dict) -> bool:
    """Whether each value of a row already has its column's Python type (None for missing)."""
    for c in _INTS:
        v = row[c]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            return False
    for c in _BOOLS:
        if row[c] is not None and not isinstance(row[c], bool):
            return False
    for c in _FLOATS:
        v = row[c]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return False
    return True
