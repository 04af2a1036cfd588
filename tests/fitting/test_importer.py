import json
import string

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fitting import schema as S
from fitting.importer import import_file, read_records, write_shard
from planner.cli import app


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_jsonl_roundtrip_numbers_samples_and_keeps_measurements(tmp_path):
    lines = [
        {"question_id": "q1", "correct": True, "answer": "4", "latency_s": 0.5, "completion_tokens": 12},
        {"question_id": "q1", "correct": False, "answer": "5"},
        {"question_id": 7, "correct": False, "difficulty": 3, "config": {"n": 2}},
    ]
    p = write(tmp_path, "s.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    result, shard = import_file(p, tmp_path / "out")
    back = S.read_samples(tmp_path / "out")
    assert shard.exists() and len(back) == 3
    assert back[S.SAMPLE_IDX].tolist() == [0, 1, 0]
    assert back[S.QUESTION_ID].tolist() == ["q1", "q1", "7"]
    assert back[S.DIFFICULTY].tolist() == ["unlabelled", "unlabelled", "3"]  # "all" means every question
    assert back[S.CONFIG].tolist()[2] == '{"n": 2}'
    assert back[S.COMPLETION_TOKENS].iloc[0] == 12
    assert back[S.LATENCY_S].isna().tolist() == [False, True, True]


def test_reimport_same_file_replaces_its_shard(tmp_path):
    p = write(tmp_path, "s.jsonl", '{"question_id": "a", "correct": true}\n')
    import_file(p, tmp_path / "out")
    import_file(p, tmp_path / "out")
    assert len(S.read_samples(tmp_path / "out")) == 1


def test_csv_accepts_true_false_and_empty_optionals(tmp_path):
    p = write(tmp_path, "s.csv", "question_id,correct,latency_s\nq1,true,0.1\nq1,0,\n")
    df = read_records(p).samples
    assert df[S.CORRECT].tolist() == [True, False]
    assert df[S.LATENCY_S].isna().tolist() == [False, True]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '{"question_id": "a", "correct": true}\n{"question_id": "b", "correct": "yes"}\n',
            "line 2: field 'correct' must be true/false, got \"yes\"",
        ),
        ('{"question_id": "a"}\n', "line 1: missing required field 'correct'"),
        (
            '{"question_id": "a", "correct": true, "sample_idx": 0}\n{"question_id": "a", "correct": false, "sample_idx": 0}\n',
            "line 2: duplicate (question_id, sample_idx) = ('a', 0); first seen on line 1",
        ),
        (
            '{"question_id": "a", "correct": true, "latency_s": -1}\n',
            "line 1: field 'latency_s' must be a finite number >= 0, got -1",
        ),
        (
            '{"question_id": "a", "correct": true, "prompt_tokens": 1.5}\n',
            "field 'prompt_tokens' must be a non-negative integer",
        ),
        ('{"question_id": "a", "correct": true, "config": [1]}\n', "field 'config' must be a JSON object"),
        ('{"question_id": "a", "correct": true}\n{oops\n', "line 2: not valid JSON"),
        ("[1, 2]\n", "line 1: expected a JSON object, got list"),
        ("\n\n", "no records found"),
    ],
)
def test_bad_jsonl_names_file_line_and_field(tmp_path, text, message):
    p = write(tmp_path, "bad.jsonl", text)
    with pytest.raises(S.SchemaError) as info:
        read_records(p)
    assert str(p) in str(info.value)
    assert message in str(info.value)


def test_bad_csv_names_line(tmp_path):
    p = write(tmp_path, "bad.csv", "question_id,correct\nq1,true\nq2,maybe\n")
    with pytest.raises(
        S.SchemaError, match=r"bad.csv line 3: field 'correct' must be true/false, got \"maybe\""
    ):
        read_records(p)


def test_cli_import_error_exits_nonzero_and_writes_nothing(tmp_path):
    p = write(
        tmp_path, "bad.jsonl", '{"question_id": "a", "correct": true}\n{"question_id": "a", "correct": 3}\n'
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["import", str(p), "--out", str(out)])
    assert result.exit_code == 2
    assert "line 2" in result.output
    assert not out.exists() or not list(out.iterdir())


def test_cli_import_ok(tmp_path):
    p = write(tmp_path, "s.jsonl", '{"question_id": "a", "correct": true, "extra_field": 1}\n')
    result = CliRunner().invoke(app, ["import", str(p), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "imported 1 samples" in result.output
    assert "extra_field" in result.output


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
field_names = st.sampled_from(sorted(S.SAMPLES_SCHEMA) + ["junk"])
records = st.dictionaries(field_names, json_values, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records, min_size=1, max_size=6))
def test_fuzz_jsonl_reader_gives_table_or_schema_error_with_line(tmp_path, recs):
    p = tmp_path / "fuzz.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    try:
        df = read_records(p).samples
    except S.SchemaError as exc:
        assert str(exc).startswith(str(p)) and "\n" not in str(exc)  # one line naming the file
        return
    assert len(df) == len(recs)
    assert df[S.CORRECT].notna().all()
    back = S.read_samples(write_shard(df, tmp_path / "out", "fuzz.parquet"))  # the shard round-trips
    pd.testing.assert_frame_equal(back.reset_index(drop=True), df.reset_index(drop=True), check_dtype=False)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=string.printable, max_size=200))
def test_fuzz_raw_text_never_crashes_with_other_errors(tmp_path, text):
    for suffix in (".jsonl", ".csv"):
        p = tmp_path / f"raw{suffix}"
        p.write_text(text)
        try:
            read_records(p)
        except S.SchemaError as exc:
            assert str(exc).startswith(str(p)) and "\n" not in str(exc)  # one line naming the file
