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


def test_config_is_canonical_json_for_texts_dicts_and_missing_values():
    """Each distinct config text is parsed once (the usual case: a shard's rows share a few
    configs) and written with sorted keys; dicts and missing values take the per-row path."""
    texts = ['{"n": 16, "temperature": 1.0}', '{"temperature": 1.0, "n": 16}', '{"cot": false}'] * 3
    df = S.validate_samples(
        pd.DataFrame({"question_id": list("abcdefghi"), "correct": [True] * 9, "config": texts})
    )
    assert (
        df[S.CONFIG].tolist()
        == ['{"n": 16, "temperature": 1.0}'] * 2
        + ['{"cot": false}']
        + (['{"n": 16, "temperature": 1.0}'] * 2 + ['{"cot": false}']) * 2
    )
    mixed = pd.DataFrame(
        {"question_id": ["a", "b", "c"], "correct": [True] * 3, "config": [{"b": 1, "a": 2}, None, "{}"]}
    )
    assert S.validate_samples(mixed)[S.CONFIG].tolist() == ['{"a": 2, "b": 1}', "{}", "{}"]
    with pytest.raises(S.SchemaError, match="must be a JSON object, got '\\[1\\]'"):
        S.validate_samples(pd.DataFrame({"question_id": ["a"], "correct": [True], "config": ["[1]"]}))
