"""Every path that reads a samples or counts table runs the one check of its values
(``fitting.schema.validate_samples`` / ``validate_counts``): a Parquet file given directly to a
command, a folder of shards, and ``ttc import`` all refuse the same cells with one line naming
the file, the row (or line), the column, what was expected and the value as given."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from fitting import schema as S
from fitting.importer import read_records
from planner.cli import app

SPEC = "mA=params:1e9,layers:16,kv_heads:8,head_dim:64"


def counts_frame(**column):
    base = {
        "question_id": ["q1", "q2", "q3", "q4"],
        "n_samples": [100, 100, 100, 100],
        "n_correct": [3, 0, 50, 1],
        "prompt_tokens": [100.0] * 4,
        "completion_tokens": [200.0] * 4,
        "model": ["mA"] * 4,
    }
    return pd.DataFrame({**base, **column})


def samples_frame(**column):
    base = {
        "question_id": ["q1", "q1", "q2", "q2"],
        "correct": [True, False, False, True],
        "completion_tokens": [10, 12, 9, 11],
        "model": ["mA"] * 4,
    }
    return pd.DataFrame({**base, **column})


def ttc(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, " ".join(result.output.split())


BAD_TABLES = [
    (
        "counts",
        {"flops": [1e9, math.inf, 1e9, 1e9]},
        "row 2: column 'flops' must be a finite number >= 0 (a per-sample mean), got inf",
    ),
    (
        "counts",
        {"latency_s": [0.1, 0.1, -0.5, 0.1]},
        "row 3: column 'latency_s' must be a finite number >= 0 (a per-sample mean), got -0.5",
    ),
    (
        "counts",
        {"n_correct": [3.0, 2.5, 1.0, 0.0]},
        "row 2: column 'n_correct' must be a non-negative integer, got 2.5",
    ),
    ("counts", {"n_samples": [100, 100, 1e16, 100]}, "row 3: column 'n_samples' must be at most 1e+15"),
    (
        "samples",
        {"latency_s": [0.1, math.inf, 0.1, 0.1]},
        "row 2: column 'latency_s' must be a finite number >= 0, got inf",
    ),
    (
        "samples",
        {"flops": [1e9, 1e9, 1e9, -math.inf]},
        "row 4: column 'flops' must be a finite number >= 0, got -inf",
    ),
    (
        "samples",
        {"reward": [0.5, 0.5, math.inf, 0.5]},
        "row 3: column 'reward' must be a finite number, got inf",
    ),
]


@pytest.mark.parametrize(("kind", "column", "message"), BAD_TABLES)
@pytest.mark.parametrize("command", ["fit", "forecast"])
def test_a_parquet_file_given_directly_is_checked_like_an_import(tmp_path, kind, column, message, command):
    """``ttc fit x.parquet`` once gave mean_flops=inf and dropped an inf latency from a mean."""
    path = tmp_path / "x.parquet"
    (counts_frame if kind == "counts" else samples_frame)(**column).to_parquet(path)
    args = ["--out", tmp_path / "O"] if command == "fit" else ["--at", "8"]
    code, out = ttc(command, path, *args)
    assert code == 2 and f"{path}: {message}" in out
    assert "Traceback" not in out and not (tmp_path / "O").exists()


@pytest.mark.parametrize(("kind", "column", "message"), BAD_TABLES)
def test_a_folder_of_shards_is_checked_by_every_reader_naming_the_shard(tmp_path, kind, column, message):
    prefix = S.COUNTS_PREFIX if kind == "counts" else S.SAMPLES_PREFIX
    shard = tmp_path / "F" / f"{prefix}written-by-hand.parquet"
    shard.parent.mkdir()
    (counts_frame if kind == "counts" else samples_frame)(**column).to_parquet(shard)
    for args in (
        ["fit", tmp_path / "F", "--out", tmp_path / "O"],
        ["forecast", tmp_path / "F", "--at", "8"],
        ["recommend", tmp_path / "F", "--budget-tokens", "1000", "--model-spec", SPEC],
    ):
        code, out = ttc(*args)
        assert code == 2 and f"{shard}: {message}" in out, (args, out)


@pytest.mark.parametrize(("kind", "column", "message"), BAD_TABLES)
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_import_refuses_the_same_cells_naming_the_line(tmp_path, kind, column, message, suffix):
    frame = (counts_frame if kind == "counts" else samples_frame)(**column)
    path = tmp_path / f"x{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":  # Python's json writes inf as Infinity (pandas would write null)
        records = frame.astype(object).to_dict(orient="records")
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        frame.to_parquet(path)
    row = int(message.split()[1].rstrip(":"))
    where = f"row {row}" if suffix == ".parquet" else f"line {row + (suffix == '.csv')}"
    field = message.split(": ", 1)[1].replace("column", "field").split(", got")[0]
    with pytest.raises(S.SchemaError) as err:
        read_records(path)
    assert str(err.value).startswith(f"{path} {where}: {field}, got "), str(err.value)


def test_a_fractional_count_is_quoted_as_given_not_rounded(tmp_path):
    """A Parquet n_correct of 2.5 was refused while quoting 3.0."""
    path = tmp_path / "c.parquet"
    counts_frame(n_correct=[3.0, 2.5, 1.0, 0.0]).to_parquet(path)
    with pytest.raises(
        S.SchemaError, match=r"c\.parquet row 2: field 'n_correct' must be a non-negative integer, got 2\.5$"
    ):
        read_records(path)
    with pytest.raises(S.SchemaError, match=r"got 2\.5$"):
        S.validate_counts(pd.read_parquet(path))
