"""The lm-evaluation-harness reader on real lm-eval output (tests/data/evallogs, see its README):
rows per (doc, repeat), answers and verdicts as lm-eval's own filter and metric give them, bad
input in one line. Agreement with lm-eval's per-doc metrics: tests/planner/test_import_lmeval.py."""

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitting import schema as S
from fitting.evallogs import detect_format, read_lmeval

DATA = Path(__file__).resolve().parents[1] / "data" / "evallogs"
LMEVAL = DATA / "lm-eval"
RUN = LMEVAL / "profiling__lab__checkpoints__lab-l"
SAMPLES = next(RUN.glob("samples_lab_arith_*.jsonl"))
RESULTS = next(RUN.glob("results_*.json"))
REGEX = r"Answer: (-?[0-9]+)"


def lmeval_lines(path=SAMPLES) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def table():
    return read_lmeval(LMEVAL).samples


def test_one_row_per_doc_and_repeat_with_every_raw_response(table):
    """Each doc's 8 raw responses become 8 rows (not only the filtered one), numbered by repeat."""
    docs = {r["doc_id"]: r["resps"][0] for r in lmeval_lines()}
    assert len(table) == 10 * 8 and table[S.QUESTION_ID].nunique() == 10
    for doc_id, responses in docs.items():
        rows = table[table[S.QUESTION_ID] == f"lab_arith/{doc_id}"].sort_values(S.SAMPLE_IDX)
        assert rows[S.SAMPLE_IDX].tolist() == list(range(8))
        expected = [m[-1] if (m := re.findall(REGEX, text)) else None for text in responses]
        assert [None if a is None or a is S.pd.NA else a for a in rows[S.ANSWER].astype(object)] == [
            e if e is None else e.strip() for e in expected
        ]


def test_identity_and_config_come_from_the_results_file(table):
    assert set(table[S.MODEL]) == {"profiling/lab/checkpoints/lab-l"}
    assert set(table[S.TASK]) == {"lab_arith"} and set(table[S.STRATEGY]) == {"pool"}
    assert set(table[S.RUN_ID]) == {"lm-eval/" + RESULTS.stem.removeprefix("results_")}
    assert json.loads(table[S.CONFIG].iloc[0]) == {"n": 8, "temperature": 1.0, "max_gen_toks": 96}


def test_detects_the_folder_a_samples_file_and_a_results_file():
    assert detect_format(LMEVAL) == detect_format(SAMPLES) == detect_format(RESULTS) == "lm-eval"
    assert len(read_lmeval(RESULTS).samples) == len(read_lmeval(SAMPLES).samples) == 80


def test_a_samples_file_alone_needs_answer_regex_and_says_what_is_missing(tmp_path):
    alone = tmp_path / "mymodel" / SAMPLES.name
    alone.parent.mkdir()
    shutil.copy(SAMPLES, alone)
    with pytest.raises(
        S.SchemaError, match=r"mymodel/samples_lab_arith_.*no results file beside it.*--answer-regex"
    ):
        read_lmeval(alone)
    result = read_lmeval(alone, answer_regex=REGEX)
    assert set(result.samples[S.MODEL]) == {"mymodel"}  # the folder lm-eval named after the model
    assert result.samples[S.CORRECT].tolist() == read_lmeval(LMEVAL).samples[S.CORRECT].tolist()
    assert any("no results_" in n and "task settings unknown" in n for n in result.notes)
    assert any("--answer-regex" in n for n in result.notes)


def test_answer_regex_replaces_the_tasks_filter():
    """A regex that takes the first number of the response (the first operand) scores differently."""
    result = read_lmeval(LMEVAL, answer_regex=r"^(\d+)")
    first_operands = result.samples[S.ANSWER].dropna()
    assert len(first_operands) == 80
    assert result.samples[S.CORRECT].sum() < read_lmeval(LMEVAL).samples[S.CORRECT].sum()


def test_two_models_and_two_tasks_in_one_folder_are_kept_apart(tmp_path):
    """A second model (another folder) and a second task (another samples file) of one folder
    are told apart by model and task; their question ids do not collide."""
    shutil.copytree(RUN, tmp_path / "a")
    results = json.loads(RESULTS.read_text())
    results["model_name"] = "other-model"
    results["configs"]["lab_arith_b"] = results["configs"]["lab_arith"]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / RESULTS.name).write_text(json.dumps(results))
    for task in ("lab_arith", "lab_arith_b"):
        shutil.copy(SAMPLES, tmp_path / "b" / SAMPLES.name.replace("lab_arith", task))
    df = read_lmeval(tmp_path).samples
    sizes = df.groupby([S.MODEL, S.TASK]).size().to_dict()
    assert sizes == {
        ("profiling/lab/checkpoints/lab-l", "lab_arith"): 80,
        ("other-model", "lab_arith"): 80,
        ("other-model", "lab_arith_b"): 80,
    }
    assert df[df[S.TASK] == "lab_arith_b"][S.QUESTION_ID].str.startswith("lab_arith_b/").all()


def _mc_line(doc_id: int) -> dict:
    """A samples line as lm-eval writes it for a multiple-choice task: [log-likelihood, is greedy]."""
    return {
        "doc_id": doc_id,
        "target": 0,
        "arguments": {"gen_args_0": {"arg_0": "Q: 1+1\n", "arg_1": " 2"}},
        "resps": [["-0.5", "True"]],
        "filtered_resps": [["-0.5", "True"]],
        "filter": "none",
        "acc": 1.0,
    }


def test_log_likelihood_tasks_are_refused_with_the_reason(tmp_path):
    mc = tmp_path / "m" / "samples_mc_task_2026-01-01T00-00-00.000000.jsonl"
    mc.parent.mkdir()
    mc.write_text("\n".join(json.dumps(_mc_line(i)) for i in range(3)) + "\n")
    with pytest.raises(S.SchemaError, match="log-likelihood .* generate nothing.*samples_mc_task"):
        read_lmeval(mc, answer_regex=REGEX)
    shutil.copytree(RUN, tmp_path / "gen")  # beside a generative task: skipped, with a note
    result = read_lmeval(tmp_path, answer_regex=REGEX)
    assert len(result.samples) == 80 and any(n.startswith("skipped log-likelihood") for n in result.notes)


def test_results_without_samples_files_asks_for_log_samples(tmp_path):
    shutil.copy(RESULTS, tmp_path / RESULTS.name)
    with pytest.raises(S.SchemaError, match="without samples files; run lm-eval with --log_samples"):
        read_lmeval(tmp_path)


def _bad_line(kind: str, good: str) -> str:
    rec = json.loads(good)
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "array":
        return "[1, 2]"
    if kind == "doc_id":
        rec["doc_id"] = "zero"
    elif kind == "resps":
        rec["resps"] = "88+5=93"
    elif kind == "response":
        rec["resps"] = [[1, 2]]
    elif kind == "target":
        rec["target"] = {"a": 1}
    return json.dumps(rec)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    line=st.integers(0, 19),
    kind=st.sampled_from(["truncated", "array", "doc_id", "resps", "response", "target"]),
)
def test_a_malformed_line_stops_with_one_line_naming_file_and_line(tmp_path_factory, line, kind):
    folder = tmp_path_factory.mktemp("bad")
    shutil.copy(RESULTS, folder / RESULTS.name)
    lines = SAMPLES.read_text().splitlines()
    lines[line] = _bad_line(kind, lines[line])
    (folder / SAMPLES.name).write_text("\n".join(lines) + "\n")
    with pytest.raises(S.SchemaError) as err:
        read_lmeval(folder)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{folder / SAMPLES.name} line {line + 1}: ")


def test_a_doc_whose_filter_lines_disagree_on_its_responses_is_refused(tmp_path):
    """Every line of a doc (one per filter) carries the same responses; a log where they differ
    is inconsistent, so the import names the line instead of picking one."""
    shutil.copy(RESULTS, tmp_path / RESULTS.name)
    lines = lmeval_lines()
    second = next(i for i, r in enumerate(lines) if r["doc_id"] == 0 and r["filter"] == "maj@8")
    lines[second]["resps"] = [["Answer: 1"] * 8]
    (tmp_path / SAMPLES.name).write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    with pytest.raises(S.SchemaError, match=rf"line {second + 1}: doc 0 has other responses than on line 1"):
        read_lmeval(tmp_path)
