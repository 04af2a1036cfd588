"""The Inspect AI reader on a real Inspect log (tests/data/evallogs, see its README): rows per
(sample, epoch), verdicts, answers, tokens and timing as the log has them, bad input in one line.
Agreement with Inspect's own epoch reduction: tests/planner/test_import_inspect.py."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inspect_ai.log import read_eval_log, write_eval_log
from inspect_ai.model import ModelUsage
from inspect_ai.scorer import Score

from fitting import schema as S
from fitting.evallogs import detect_format, read_inspect, score_to_float
from fitting.evallogs.inspectai import _tokens

DATA = Path(__file__).resolve().parents[1] / "data" / "evallogs" / "inspect"
LOG = next(DATA.glob("*.eval"))


@pytest.fixture(scope="module")
def log():
    return read_eval_log(str(LOG))


@pytest.fixture(scope="module")
def table():
    return read_inspect(LOG).samples.set_index([S.QUESTION_ID, S.SAMPLE_IDX])


def test_one_row_per_sample_and_epoch_with_the_logs_verdict_answer_tokens_and_time(log, table):
    assert len(table) == len(log.samples) == 10 * 8
    for sample in log.samples:
        row = table.loc[(f"lab_arith/{sample.id}", sample.epoch - 1)]
        score = sample.scores["pattern"]
        usage = sample.model_usage["hf/local"]
        assert row[S.CORRECT] == (score.value == "C")
        assert row[S.ANSWER] == score.answer and row[S.REFERENCE] == sample.target
        assert (row[S.PROMPT_TOKENS], row[S.COMPLETION_TOKENS]) == (usage.input_tokens, usage.output_tokens)
        assert row[S.LATENCY_S] == sample.working_time


def test_identity_and_config_come_from_the_log(log, table):
    assert set(table[S.MODEL]) == {"profiling/lab/checkpoints/lab-l"}  # hf/local's model_path
    assert set(table[S.TASK]) == {"lab_arith"} and set(table[S.RUN_ID]) == {f"inspect/{log.eval.eval_id}"}
    assert json.loads(table[S.CONFIG].iloc[0]) == {"n": 8, "temperature": 1.0, "max_tokens": 96}


def test_a_json_log_reads_as_the_same_table(tmp_path, log):
    out = tmp_path / "log.json"
    write_eval_log(log, str(out), format="json")
    assert detect_format(out) == detect_format(LOG) == detect_format(DATA) == "inspect"
    assert read_inspect(out).samples.equals(read_inspect(LOG).samples)


def test_a_scorer_not_in_the_log_is_refused_naming_the_scorers_it_has():
    with pytest.raises(S.SchemaError, match=r"--scorer 'match' is not in this log; its scorers: pattern"):
        read_inspect(LOG, scorer="match")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("C", 1.0),
        ("I", 0.0),
        ("P", 0.5),
        ("N", 0.0),
        (True, 1.0),
        (False, 0.0),
        (0.75, 0.75),
        (2, 2.0),
        ("yes", 1.0),
        ("False", 0.0),
        ("0.25", 0.25),
        ("maybe", None),
        ([1, 0], None),
        ({"a": "C"}, None),
        (float("nan"), None),
    ],
)
def test_score_values_map_as_inspects_value_to_float(value, expected):
    assert score_to_float(value) == expected


def _rescored(log, tmp_path, value, name="log.eval"):
    """A copy of the log whose every score has ``value``."""
    copy = log.model_copy(deep=True)
    for sample in copy.samples:
        sample.scores = {"pattern": Score(value=value, answer=sample.scores["pattern"].answer)}
    write_eval_log(copy, str(tmp_path / name))
    return tmp_path / name


def test_partial_and_numeric_scores_are_correct_from_the_threshold(tmp_path, log):
    partial = _rescored(log, tmp_path, "P")
    assert not read_inspect(partial).samples[S.CORRECT].any()  # P = 0.5 < 1: not fully correct
    assert read_inspect(partial, threshold=0.5).samples[S.CORRECT].all()
    numeric = _rescored(log, tmp_path, 0.7, "numeric.eval")
    assert read_inspect(numeric, threshold=0.7).samples[S.CORRECT].all()
    assert not read_inspect(numeric, threshold=0.71).samples[S.CORRECT].any()


def test_a_score_with_several_values_is_refused_naming_the_sample(tmp_path, log):
    bad = _rescored(log, tmp_path, {"a": "C", "b": "I"})
    with pytest.raises(S.SchemaError, match=r"log.eval sample '.*' epoch \d: scorer 'pattern' gave \{'a'"):
        read_inspect(bad)


def test_reasoning_tokens_count_as_generated_once():
    """Reported apart from the output (total = input + output + reasoning) they are added; where
    the output already includes them (total = input + output) they are not added twice."""
    apart = ModelUsage(input_tokens=10, output_tokens=5, reasoning_tokens=20, total_tokens=35)
    inside = ModelUsage(input_tokens=10, output_tokens=25, reasoning_tokens=20, total_tokens=35)
    cached = ModelUsage(input_tokens=10, output_tokens=5, total_tokens=45, input_tokens_cache_read=30)
    assert _tokens(apart) == (10, 25) and _tokens(inside) == (10, 25) and _tokens(cached) == (40, 5)


def test_two_models_and_tasks_in_one_folder_are_kept_apart(tmp_path, log):
    other = log.model_copy(deep=True)
    other.eval.task, other.eval.eval_id = "other_task", "other-eval"
    other.eval.model_args = {"model_path": "other-model"}
    write_eval_log(log, str(tmp_path / "a.eval"))
    write_eval_log(other, str(tmp_path / "b.eval"))
    df = read_inspect(tmp_path).samples
    assert df.groupby([S.MODEL, S.TASK]).size().to_dict() == {
        ("profiling/lab/checkpoints/lab-l", "lab_arith"): 80,
        ("other-model", "other_task"): 80,
    }


def test_samples_without_the_score_are_skipped_with_a_note(tmp_path, log):
    copy = log.model_copy(deep=True)
    copy.samples[0].scores = {}
    copy.status = "error"
    write_eval_log(copy, str(tmp_path / "partial.eval"))
    result = read_inspect(tmp_path / "partial.eval")
    assert len(result.samples) == 79
    assert any("1 sample(s) without a 'pattern' score" in n for n in result.notes)
    assert any("status is 'error'" in n for n in result.notes)


def test_a_truncated_eval_log_is_one_line_naming_it(tmp_path):
    cut = tmp_path / "cut.eval"
    cut.write_bytes(LOG.read_bytes()[:20000])
    with pytest.raises(S.SchemaError) as err:
        read_inspect(cut)
    assert str(err.value).startswith(f"{cut}: not a readable Inspect AI log") and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def json_text(log, tmp_path_factory):
    out = tmp_path_factory.mktemp("json") / "log.json"
    write_eval_log(log, str(out), format="json")
    return out.read_text()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.01, 0.99), junk=st.sampled_from(["", "}", "]]", '"x']))
def test_a_truncated_json_log_is_one_line_naming_file_and_line(tmp_path_factory, json_text, cut, junk):
    path = tmp_path_factory.mktemp("fuzz") / "log.json"
    text = json_text[: int(len(json_text) * cut)] + junk
    path.write_text(text)
    with pytest.raises(S.SchemaError) as err:
        read_inspect(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path} line ") and ": not a readable Inspect AI log" in message
