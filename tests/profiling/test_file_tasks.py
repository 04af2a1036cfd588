"""Tasks from JSONL files: the real GSM8K and MATH-500 files, answer extraction and
normalisation, prompts, and clean errors for malformed files (hand-written and fuzzed)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiling.tasks import get_task
from profiling.tasks.files import (
    GSM8KTask,
    MathTask,
    TaskFileError,
    last_boxed,
    load_jsonl_task,
    math_answers_match,
    normalize_math,
    normalize_number,
)

DATA = Path(__file__).parents[1] / "data"  # real GSM8K and MATH-500 (tests/data/README.md)


@pytest.fixture(scope="session")
def real_files(tmp_path_factory) -> dict[str, Path]:
    """The real GSM8K and MATH-500 files from tests/data, decompressed once per session."""
    folder = tmp_path_factory.mktemp("real-data")
    out = {}
    for name in ("gsm8k_test.jsonl", "math500_test.jsonl"):
        out[name] = folder / name
        out[name].write_bytes(gzip.decompress((DATA / f"{name}.gz").read_bytes()))
    return out


def write(tmp_path, lines, name="t.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


# ---- the real files ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gsm8k(real_files):
    return load_jsonl_task(real_files["gsm8k_test.jsonl"])


@pytest.fixture(scope="module")
def math500(real_files):
    return load_jsonl_task(real_files["math500_test.jsonl"])


def test_every_gsm8k_reference_solution_yields_its_reference_answer(gsm8k):
    assert isinstance(gsm8k, GSM8KTask) and len(gsm8k) == 1319
    wrong = [
        p.id for p in gsm8k.problems() if not gsm8k.is_correct(gsm8k.extract_answer(p.meta["solution"]), p)
    ]
    assert wrong == []
    # references are plain integers once commas are gone ("1,450,000" -> "1450000")
    assert all(p.answer.lstrip("-").isdigit() for p in gsm8k.problems())
    assert {p.id: p.answer for p in gsm8k.problems(limit=2)} == {"1": "18", "2": "3"}


def test_every_math500_reference_solution_yields_its_reference_answer(math500):
    assert isinstance(math500, MathTask) and len(math500) == 500
    wrong = [
        p.id
        for p in math500.problems()
        if not math500.is_correct(math500.extract_answer(p.meta["solution"]), p)
    ]
    assert wrong == []
    # the last \boxed{} is taken: 8 solutions box an intermediate result first
    assert sum(p.meta["solution"].count("\\boxed") > 1 for p in math500.problems()) == 8


def test_math500_levels_are_difficulties_with_the_published_counts(math500):
    counts = {d: sum(p.difficulty == d for p in math500.problems()) for d in "12345"}
    assert counts == {"1": 43, "2": 90, "3": 105, "4": 128, "5": 134}
    assert [p.difficulty for p in math500.problems(per_level=2)] == [
        "1",
        "1",
        "2",
        "2",
        "3",
        "3",
        "4",
        "4",
        "5",
        "5",
    ]
    assert len(list(math500.problems(per_level=10, limit=7))) == 7


def test_reference_answers_match_their_usual_surface_variants(gsm8k, math500):
    for p in gsm8k.problems(limit=300):
        n = int(p.answer)
        for text in (
            f"#### ${n:,}",
            f"The answer is {n:,} dollars.",
            f"so ${n}.00 a day.",
            f"\\boxed{{{n}}}",
        ):
            assert gsm8k.is_correct(gsm8k.extract_answer(text), p), (text, p.answer)
    for p in math500.problems():
        a = p.answer
        for text in (
            f"So the final answer is $\\boxed{{{a}}}$.",
            "\\boxed{" + a.replace("\\frac", "\\dfrac") + "}",
            "\\boxed{" + a.replace(",", ", ") + "}",
            f"Final answer: ${a}$",
        ):
            assert math500.is_correct(math500.extract_answer(text), p), (text, a)


def test_get_task_resolves_file_paths_and_few_shot(gsm8k, real_files):
    task = get_task(str(real_files["gsm8k_test.jsonl"]), few_shot=2)
    assert task.name == "gsm8k_test" and len(task) == 1317
    first = next(task.problems())
    prompt = task.format_prompt(first)
    assert prompt.count("Question:") == 3 and prompt.endswith(f"Question: {first.question}\nAnswer:")
    assert "<<" not in prompt  # calculator annotations are stripped from the worked examples
    assert "#### 18" in prompt and "'#### <number>'" in prompt


# ---- extraction and normalisation, known answers -------------------------------------------
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("$1,200.00", "1200"),
        ("18 dollars", "18"),
        ("-3.", "-3"),
        ("0.50 kg", "0.5"),
        ("\\text{5}", "5"),
        ("7%", "7"),
    ],
)
def test_normalize_number(text, want):
    assert normalize_number(text) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("\\dfrac{14}{3}", "\\frac{14}{3}"),
        ("\\tfrac12", "\\frac{1}{2}"),
        ("\\frac{1}2", "\\frac{1}{2}"),
        ("90^\\circ", "90"),
        ("90^{\\circ}", "90"),
        ("10,\\!080", "10080"),
        ("\\$36", "36"),
        ("\\text{Evelyn}", "Evelyn"),
        ("\\textbf{(C)}", "(C)"),
        ("x = 5", "5"),
        ("2 \\sqrt{5}", "2\\sqrt{5}"),
        ("11\\sqrt2", "11\\sqrt{2}"),
        ("5.0", "5"),
        ("3/4", "\\frac{3}{4}"),
        ("10\\%", "10"),
        ("5 \\text{ cm}", "5"),
        ("\\boxed{\\frac{a}{\\sqrt{b}}}", "\\frac{a}{\\sqrt{b}}"),
        ("1,-2", "1,-2"),
    ],
)
def test_normalize_math(text, want):
    assert normalize_math(text) == want


def test_math_answers_match_equal_values_but_not_different_ones():
    assert math_answers_match("0.5", "\\frac{1}{2}") and math_answers_match("\\frac{2}{4}", "\\dfrac12")
    assert not math_answers_match("\\frac{1}{3}", "0.33")
    assert not math_answers_match("(1,2)", "(2,1)")
    assert not math_answers_match("x^2", "x^3")


def test_last_boxed_handles_nesting_spaces_and_unbalanced_braces():
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{a}{b^{2}}}") == "\\frac{a}{b^{2}}"
    assert last_boxed("answer: \\boxed 7$") == "7"
    assert last_boxed("\\fbox{x}") == "x"
    assert last_boxed("\\boxed{unclosed") is None


def test_extract_answer_conventions_and_abstentions(tmp_path):
    task_g = load_jsonl_task(write(tmp_path, [{"question": "q", "answer": "#### 1"}] * 2, "g.jsonl"))
    assert task_g.extract_answer("3 + 4 = 7\n#### 7") == "7"
    assert task_g.extract_answer("so 12 apples and then 15 pears") == "15"  # last number, no convention
    assert task_g.extract_answer("no number here") is None
    task_m = load_jsonl_task(write(tmp_path, [{"problem": "p", "solution": "\\boxed{1}"}] * 2, "m.jsonl"))
    assert task_m.extract_answer("thus $\\boxed{\\dfrac{3}{4}}$.") == "\\frac{3}{4}"
    assert task_m.extract_answer("... \nFinal answer: $x = 12$") == "12"
    assert task_m.extract_answer("I am not sure.") is None


def test_budget_forcing_trigger_then_answer_is_extracted(tmp_path):
    task = load_jsonl_task(
        write(tmp_path, [{"problem": "p", "answer": "\\frac{1}{2}", "level": "Level 2"}] * 2)
    )
    problem = next(task.problems())
    assert problem.difficulty == "2"
    assert task.is_correct(
        task.extract_answer("we have 1/2 so far" + task.answer_trigger + "\\frac12"), problem
    )
    gsm = load_jsonl_task(write(tmp_path, [{"question": "q", "answer": "x\n#### 1,000"}] * 2, "g.jsonl"))
    p = next(gsm.problems())
    assert p.answer == "1000" and gsm.is_correct(
        gsm.extract_answer("work..." + gsm.answer_trigger + "1000"), p
    )


def test_direct_prompts(tmp_path):
    task = load_jsonl_task(write(tmp_path, [{"question": "2+2?", "answer": "4\n#### 4"}] * 3), few_shot=1)
    prompt = task.format_prompt(next(task.problems()), cot=False)
    assert prompt.endswith("Question: 2+2?\nAnswer: ####") and "Answer: #### 4" in prompt
    assert task.supports_direct and task.step_delimiter == "\n"


# ---- malformed files -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([{"question": "q", "answer": "#### 1"}, "{not json"], r"t\.jsonl line 2: invalid JSON"),
        ([[1, 2]], r"t\.jsonl line 1: expected a JSON object, got list"),
        (
            [{"question": "q", "answer": "about five"}],
            r"line 1: field 'answer' must end with '#### <answer>'",
        ),
        (
            [{"question": "q", "answer": "#### 1"}, {"question": 3, "answer": "#### 2"}],
            r"line 2: field 'question' must be a non-empty string, got int",
        ),
        (
            [{"question": "q", "answer": "#### 1"}, {"answer": "#### 2"}],
            r"line 2: field 'question' must be a non-empty string, got missing",
        ),
        ([{"problem": "p", "solution": "no box here"}], r"line 1: no reference answer"),
        (
            [{"problem": "p", "answer": "1", "level": "hard"}],
            r"line 1: field 'level' must be an integer or 'Level N'",
        ),
        (
            [{"prompt": "p", "target": "1"}],
            r"line 1: cannot tell the task kind from fields \[prompt, target\]",
        ),
        (["", "   "], r"t\.jsonl: no problems"),
    ],
)
def test_malformed_files_name_file_line_and_field(tmp_path, lines, message):
    with pytest.raises(TaskFileError, match=message):
        load_jsonl_task(write(tmp_path, lines))


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"question": "q", "answer": "#### 1"}\n{"question": "\xff\xfe"}\n')
    with pytest.raises(TaskFileError, match=r"t\.jsonl line 2: not valid UTF-8"):
        load_jsonl_task(path)


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(TaskFileError, match="cannot read"):
        load_jsonl_task(tmp_path / "absent.jsonl")
    path = write(tmp_path, [{"question": "q", "answer": "#### 1"}])
    with pytest.raises(ValueError, match="kind must be"):
        load_jsonl_task(path, kind="squad")
    with pytest.raises(ValueError, match="few_shot"):
        load_jsonl_task(path, few_shot=1)
    with pytest.raises(ValueError, match="one split"):
        list(load_jsonl_task(path).problems(split="train"))


def test_forced_kind_checks_the_fields_of_that_kind(tmp_path):
    path = write(tmp_path, [{"question": "q", "answer": "#### 1"}])
    with pytest.raises(TaskFileError, match="line 1: field 'problem'"):
        load_jsonl_task(path, kind="math")


# ---- fuzzing -------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(["question", "answer", "problem", "solution", "level", "subject", "x"])
records = st.dictionaries(
    field_names, json_values | st.text(max_size=40).map(lambda s: s + " #### 3 \\boxed{4}"), max_size=4
)


def _load_or_clean_error(path: Path) -> None:
    try:
        task = load_jsonl_task(path)
    except TaskFileError as err:
        assert path.name in str(err)
        return
    for p in task.problems():  # a task that loads must also extract and check its own answers
        task.is_correct(task.extract_answer(p.answer), p)
        task.format_prompt(p)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=300))
def test_fuzz_random_bytes_give_a_task_or_a_clean_error(tmp_path, content):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(content)
    _load_or_clean_error(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(records | json_values, min_size=0, max_size=5))
def test_fuzz_random_json_lines_give_a_task_or_a_clean_error(tmp_path, lines):
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    _load_or_clean_error(path)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_fuzz_normalizers_and_extractors_keep_their_invariants(text):
    boxed = last_boxed(text)
    assert boxed is None or boxed in text  # the content of a box, never invented
    number = normalize_number(text)
    assert "$" not in number and number == number.strip()
    assert math_answers_match(text, text)  # an answer matches itself
    assert math_answers_match(text, text[::-1]) == math_answers_match(text[::-1], text)  # symmetric
    assert math_answers_match(text, normalize_math(text))  # normalizing does not change the answer
