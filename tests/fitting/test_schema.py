import pandas as pd
import pytest

from fitting import schema as S


def test_validate_numbers_samples_within_question_and_fills_defaults():
    df = S.validate_samples(pd.DataFrame({"question_id": ["a", "a", "b"], "correct": [True, False, True]}))
    assert df[S.SAMPLE_IDX].tolist() == [0, 1, 0]
    assert df[S.MODEL].tolist() == ["unknown"] * 3
    assert list(df.columns[: len(S.SAMPLES_SCHEMA)]) == list(S.SAMPLES_SCHEMA)


def test_validate_rejects_duplicate_sample_idx():
    df = pd.DataFrame({"question_id": ["a", "a"], "sample_idx": [0, 0], "correct": [True, False]})
    with pytest.raises(S.SchemaError, match="duplicate"):
        S.validate_samples(df, source="x.jsonl")


def test_validate_rejects_non_boolean_correct():
    with pytest.raises(S.SchemaError, match="'correct' must be true/false, got 'yes'"):
        S.validate_samples(pd.DataFrame({"question_id": ["a"], "correct": ["yes"]}))


def test_parquet_roundtrip(tmp_path):
    df = S.validate_samples(pd.DataFrame({"question_id": ["a", "b"], "correct": [True, False], "latency_s": [0.1, 0.2]}))
    import pyarrow.parquet as pq

    pq.write_table(S.to_arrow(df), tmp_path / "samples-0.parquet")
    back = S.read_samples(tmp_path)
    assert back[S.CORRECT].tolist() == [True, False]
    assert back[S.LATENCY_S].tolist() == [0.1, 0.2]
