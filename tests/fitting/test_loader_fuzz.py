"""Property: every CSV, JSONL or Parquet file of samples or counts, whatever its cells hold (NaN,
inf, huge, negative or fractional numbers, text, booleans, empty cells), either imports to a
valid table, which every reader then reads back unchanged, or fails with ONE line naming the
file, the line (row) and what was expected: never another exception. A Parquet file read
directly (``fitting.importer.read_input``, what ``ttc fit x.parquet`` does) obeys the same check."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitting import schema as S
from fitting.importer import import_file, read_input, read_records

NUMBERS = st.one_of(
    st.integers(-3, 300),
    st.integers(10**14, 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 2.5, -1.0, 1e15, 1e16, 3.0]),
)
ANY_CELL = st.one_of(NUMBERS, st.none(), st.booleans(), st.text(alphabet="ab1.-e ", max_size=4))
NUMERIC = {
    "samples": [
        S.SAMPLE_IDX,
        S.PROMPT_TOKENS,
        S.COMPLETION_TOKENS,
        S.LATENCY_S,
        S.FLOPS,
        S.LOGPROB,
        S.REWARD,
    ],
    "counts": [S.N_SAMPLES, S.N_CORRECT, S.PROMPT_TOKENS, S.COMPLETION_TOKENS, S.LATENCY_S, S.FLOPS],
}
ONE_LINE = re.compile(r"^\S.* (line|row) \d+: (required )?field '\w+' (must be .+, got .+|is empty)$")


@st.composite
def records(draw, kind):
    """Rows of a samples or counts file: a few plausible, the rest drawn from any cell."""
    fields = draw(st.lists(st.sampled_from(NUMERIC[kind]), min_size=1, max_size=4, unique=True))
    n = draw(st.integers(1, 5))
    rows = []
    for i in range(n):
        row = {S.QUESTION_ID: f"q{i}"}
        if kind == "samples":
            row[S.CORRECT] = draw(st.booleans())
        else:
            row[S.N_SAMPLES], row[S.N_CORRECT] = 10, draw(st.integers(0, 10))
        for f in fields:
            row[f] = draw(ANY_CELL)
        rows.append(row)
    return rows


def typed(rows):
    """The rows with each column of one Parquet type: numbers as float64 (booleans and text
    replaced), unless every cell is an int64 integer."""
    out = pd.DataFrame(rows)
    for col in out.columns:
        if col in (S.QUESTION_ID, S.CORRECT):
            continue
        cells = out[col].tolist()
        ints = all(isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63 for v in cells)
        if ints:
            out[col] = pd.array(cells, dtype="Int64")
        else:
            num = [
                float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in cells
            ]
            out[col] = pd.Series(num, dtype="float64")
    return out


def write(path, rows, fmt):
    if fmt == "jsonl":  # Python's json writes NaN and Infinity, as many tools do
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        names = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(names)
            w.writerows(["" if r.get(k) is None else str(r.get(k)) for k in names] for r in rows)
    else:
        pq.write_table(pa.Table.from_pandas(typed(rows), preserve_index=False), path)


def assert_valid(table, kind):
    """What a validated table promises every reader."""
    for col in NUMERIC[kind]:
        values = table[col].to_numpy(dtype=float, na_value=np.nan)
        present = values[~np.isnan(values)]
        assert np.isfinite(present).all(), col
        if col not in (S.LOGPROB, S.REWARD):
            assert (present >= 0).all(), col
        if table[col].dtype == "Int64":
            assert (present <= S.MAX_COUNT).all() and (present == np.floor(present)).all(), col
    if kind == "counts":
        assert (table[S.N_SAMPLES] >= 1).all() and (table[S.N_CORRECT] <= table[S.N_SAMPLES]).all()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    kind=st.sampled_from(["samples", "counts"]),
    fmt=st.sampled_from(["csv", "jsonl", "parquet"]),
)
def test_any_file_imports_to_a_valid_table_or_fails_with_one_line_naming_file_line_and_expectation(
    tmp_path_factory, data, kind, fmt
):
    rows = data.draw(records(kind))
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / f"x.{fmt}"
    write(path, rows, fmt)
    try:
        result, shard = import_file(path, folder / "out")
    except S.SchemaError as exc:
        text = str(exc)
        assert text.startswith(str(path)) and "\n" not in text, text
        assert ONE_LINE.match(text), text
        return
    assert result.kind == kind and len(result.table) == len(rows)
    assert_valid(result.table, kind)
    samples, counts = read_input(folder / "out")  # what every command reads back
    back = samples if kind == "samples" else counts
    pd.testing.assert_frame_equal(back, result.table)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(["samples", "counts"]))
def test_a_parquet_file_read_directly_is_checked_the_same_way(tmp_path_factory, data, kind):
    rows = data.draw(records(kind))
    path = tmp_path_factory.mktemp("fuzz") / "x.parquet"
    write(path, rows, "parquet")
    try:
        via_import = read_records(path).table
    except S.SchemaError as exc:
        via_import = exc
    try:
        samples, counts = read_input(path)
        direct = samples if kind == "samples" else counts
    except S.SchemaError as exc:
        text = str(exc)
        assert text.startswith(f"{path}: row ") and "\n" not in text, text
        assert isinstance(via_import, S.SchemaError), "refused directly but accepted by the import"
        assert text.split(": row ")[1].split(":")[0] == str(via_import).split(" row ")[1].split(":")[0]
        return
    assert not isinstance(via_import, Exception), f"accepted directly but refused by the import: {via_import}"
    assert_valid(direct, kind)
    pd.testing.assert_frame_equal(direct, via_import)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e300, -0.0, 2**63, 10**400])
def test_extreme_json_numbers_in_every_numeric_field(tmp_path, value):
    for kind in ("samples", "counts"):
        for col in NUMERIC[kind]:
            row = {"question_id": "q", "correct": True} if kind == "samples" else {"question_id": "q"}
            if kind == "counts":
                row |= {"n_samples": 10, "n_correct": 1}
            row[col] = value
            path = tmp_path / f"{kind}-{col}.jsonl"
            path.write_text(json.dumps(row) + "\n")
            try:
                table = read_records(path).table
            except S.SchemaError as exc:
                assert ONE_LINE.match(str(exc)), str(exc)
                continue
            assert_valid(table, kind)
