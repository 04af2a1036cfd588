import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitting import schema as S
from fitting.arrow_rows import samples_table


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
    df = S.validate_samples(
        pd.DataFrame({"question_id": ["a", "b"], "correct": [True, False], "latency_s": [0.1, 0.2]})
    )
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


_ROW = {
    S.RUN_ID: "r1",
    S.MODEL: "lab-s",
    S.BACKEND: "hf",
    S.TASK: "lab-arith",
    S.STRATEGY: "pool",
    S.CONFIG: '{"n": 2}',
    S.QUESTION_ID: "q0",
    S.DIFFICULTY: "1",
    S.SAMPLE_IDX: 0,
    S.ANSWER: "7",
    S.REFERENCE: "7",
    S.CORRECT: True,
    S.PROMPT_TOKENS: 12,
    S.COMPLETION_TOKENS: 20,
    S.LATENCY_S: 0.01,
    S.TTFT_S: None,
    S.KV_BYTES_PEAK: 1024.0,
    S.KV_SOURCE: "hf-cache-tensors",
    S.FLOPS: None,
    S.LOGPROB: -0.5,
    S.REWARD: None,
}
_VARIANTS = {
    S.CONFIG: st.sampled_from(['{"n": 2}', '{"n":2}', '{"b": 1, "a": 2}', "[1]", None]),
    S.DIFFICULTY: st.sampled_from(["1", "01", "2", "all", " ", None]),
    S.SAMPLE_IDX: st.sampled_from([0, 1, None, 1.0, 1.5]),
    S.CORRECT: st.sampled_from([True, False, None, 1, "yes"]),
    S.LOGPROB: st.sampled_from([-0.5, None, float("nan"), 3, "x"]),
    S.QUESTION_ID: st.sampled_from(["q0", "q1", None, 5]),
    S.PROMPT_TOKENS: st.sampled_from([12, 12.0, None, -3]),
    S.MODEL: st.sampled_from(["lab-s", None]),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.fixed_dictionaries({}, optional=_VARIANTS), min_size=1, max_size=6),
    drop=st.sampled_from([None, S.REWARD, S.SAMPLE_IDX]),
)
def test_samples_table_equals_the_dataframe_path(edits, drop):
    """Rows of every kind (the profiler's clean rows, and rows needing normalization or
    holding errors): the direct Arrow path gives the DataFrame path's table, or its error."""
    rows = [{**_ROW, S.SAMPLE_IDX: i, **e} for i, e in enumerate(edits)]
    if drop is not None:
        rows = [{k: v for k, v in r.items() if k != drop} for r in rows]

    def outcome(build):
        try:
            return build()
        except (S.SchemaError, ValueError, TypeError) as exc:
            return type(exc), str(exc)

    want = outcome(lambda: S.to_arrow(S.validate_samples(pd.DataFrame(rows), source="x")))
    got = outcome(lambda: samples_table(rows, source="x"))
    if isinstance(want, tuple):
        assert got == want
    else:
        assert got.equals(want), (got.to_pylist(), want.to_pylist())


def test_samples_table_takes_the_direct_path_for_clean_rows(monkeypatch):
    rows = [{**_ROW, S.SAMPLE_IDX: i} for i in range(3)]
    monkeypatch.setattr(S, "validate_samples", lambda *a, **k: pytest.fail("took the DataFrame path"))
    assert samples_table(rows).column(S.SAMPLE_IDX).to_pylist() == [0, 1, 2]
