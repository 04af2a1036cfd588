"""What a numeric column of the samples or counts table may hold, checked in one place.

Every path that reads a table (``ttc import`` of JSONL, CSV or Parquet; a Parquet file or a
folder given to ``ttc fit``, ``forecast``, ``recommend``...; the shards a profile writes)
goes through :func:`fitting.schema.validate_samples` or :func:`fitting.schema.validate_counts`,
which check their numeric columns with :func:`first_problem`. The importer reports the same
problems with the file's line instead of the table's row.

Kinds of value (null, or NaN, is "not measured" except in a required column):

* ``count``: an integer in [0, :data:`MAX_COUNT`] (sample indices, token counts, pool sizes);
* ``nonneg``: a finite number >= 0 (latency, KV bytes, FLOPs);
* ``mean``: a finite number >= 0, the per-sample mean of a counts row;
* ``real``: a finite number (log-probability, reward).

The per-question count models (beta-binomial, its posterior, the g-models) take their
``(n, c)`` arrays through :func:`question_counts`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._fitutil import as_1d

COUNT, NONNEG, MEAN, REAL = "count", "nonneg", "mean", "real"

#: largest count accepted (a pool size, a token count). Counts are exact in float64 up to
#: 2**53 (about 9.0e15), so means and ratios of them stay exact; 1e15 is eleven orders of
#: magnitude above the largest published pools (1e4 samples per question). Totals over many
#: rows can pass int64 (9,300 rows of 1e15 samples are 9.3e18): they are summed as Python
#: integers (:func:`fitting.schema.total`), never in int64.
MAX_COUNT = 10**15

#: what each kind must be, as error messages say it
EXPECTED = {
    COUNT: "a non-negative integer",
    NONNEG: "a finite number >= 0",
    MEAN: "a finite number >= 0 (a per-sample mean)",
    REAL: "a finite number",
}
TOO_BIG = f"at most {MAX_COUNT:.0e}"


@dataclass(frozen=True)
class Problem:
    """The first bad value of a column: its position, what was expected and the value itself."""

    row: int
    column: str
    expected: str
    value: object


def plain(value: object) -> object:
    """A value as Python writes it (numpy scalars unwrapped, missing values as None)."""
    if value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def numeric(col: pd.Series, name: str, kind: str) -> tuple[pd.Series, Problem | None]:
    """``col`` as numbers (float64 or its integer dtype), and the first cell that is not a
    number (true/false is not one), or None."""
    if pd.api.types.is_bool_dtype(col) and len(col):
        return col, Problem(0, name, EXPECTED[kind], plain(col.iloc[0]))
    try:
        num = pd.to_numeric(col, errors="coerce")
    except OverflowError:  # a Python integer beyond float64 (JSON allows 10**400): infinite
        num = pd.to_numeric(col.map(_beyond_float), errors="coerce")
    bad = num.isna().to_numpy() & col.notna().to_numpy()
    if col.dtype == object:
        bad |= col.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        return num, Problem(i, name, EXPECTED[kind], plain(col.iloc[i]))
    return num, None


def _beyond_float(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**1000:
        return float("inf") if value > 0 else float("-inf")
    return value


def first_problem(num: pd.Series, name: str, kind: str) -> Problem | None:
    """The first value of a numeric column that is not of ``kind`` (module doc), or None."""
    x = num.to_numpy(dtype=float, na_value=np.nan)
    present = ~np.isnan(x)
    with np.errstate(invalid="ignore"):
        bad = present & ~np.isfinite(x)
        if kind == COUNT:
            bad |= present & ((x < 0) | (x != np.floor(x)))
        elif kind in (NONNEG, MEAN):
            bad |= present & (x < 0)
        big = present & ~bad & (x > MAX_COUNT) if kind == COUNT else np.zeros(len(x), bool)
    rows = np.flatnonzero(bad | big)
    if not len(rows):
        return None
    i = int(rows[0])
    return Problem(i, name, TOO_BIG if big[i] else EXPECTED[kind], plain(num.iloc[i]))


def earliest(problems: list[Problem | None]) -> Problem | None:
    """The problem of the earliest row (the first column given among equals), or None."""
    found = [p for p in problems if p is not None]
    return min(found, key=lambda p: p.row) if found else None


def count_arrays(n, c) -> tuple[np.ndarray, np.ndarray]:
    """``(n, c)`` as one-dimensional finite float arrays of one length (a scalar ``n`` is the
    pool size of every question)."""
    c = as_1d("c", c)
    return as_1d("n", np.broadcast_to(np.asarray(n, dtype=float), c.shape).copy(), len(c)), c


def question_counts(model: str, n, c) -> tuple[np.ndarray, np.ndarray]:
    """``(n, c)`` of a per-question count model as float arrays (``n`` may be one pool size for
    every question): ``c[i]`` correct samples out of ``n[i]``, at least 2 questions, each ``n``
    a positive integer and each ``c`` an integer in ``[0, n]``; a ``ValueError`` naming
    ``model`` otherwise."""
    n, c = count_arrays(n, c)
    if len(c) < 2:
        raise ValueError(f"{model} needs counts for at least 2 questions")
    if np.any(n < 1) or np.any(n != np.round(n)) or np.any(c != np.round(c)) or np.any((c < 0) | (c > n)):
        raise ValueError(f"{model}: n must be positive integers and 0 <= c <= n (integers)")
    return n, c
