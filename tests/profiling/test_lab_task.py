"""The lab-arith task: generation, splits, formats, verifier and step checkers."""

from __future__ import annotations

import numpy as np
import pytest

from profiling.lab.task import (
    EVAL_PER_LEVEL,
    LEVELS,
    MAX_VALUE,
    LabArithTask,
    _draw_problem,
    _question,
    simulated_noisy_step_checker,
)
from profiling.strategies._base import split_steps
from profiling.tasks import Problem, get_task


def _problem(task: LabArithTask, operands, ops) -> Problem:
    return task._make("eval", len(ops), 0, list(operands), list(ops))


def test_registry_resolves_lab_arith():
    t = get_task("lab-arith")
    assert isinstance(t, LabArithTask)
    assert t.name == "lab-arith" and t.supports_direct
    assert t.answer_trigger == "\nAnswer: " and t.step_delimiter == "\n"


def test_generation_is_deterministic_per_seed(task):
    a = [(p.id, p.question, p.answer) for p in task.problems("eval", per_level=20)]
    b = [(p.id, p.question, p.answer) for p in LabArithTask(seed=0).problems("eval", per_level=20)]
    c = [(p.id, p.question, p.answer) for p in LabArithTask(seed=1).problems("eval", per_level=20)]
    assert a == b
    assert [q for _, q, _ in a] != [q for _, q, _ in c]
    tr1 = [p.question for p in task.problems("train", per_level=10)]
    tr2 = [p.question for p in LabArithTask().problems("train", per_level=10)]
    assert tr1 == tr2


def test_answers_and_steps_match_brute_force_evaluation(task):
    for p in task.problems("eval", per_level=100):
        level = int(p.difficulty)
        ops = p.meta["ops"]
        assert len(ops) == level == len(p.meta["steps"])
        assert eval(p.question) == int(p.answer)  # noqa: S307 (digits and +/- only)
        value = p.meta["operands"][0]
        for op, b, line in zip(ops, p.meta["operands"][1:], p.meta["steps"], strict=True):
            new = value + b if op == "+" else value - b
            assert 0 <= new <= MAX_VALUE and 0 <= b <= MAX_VALUE
            assert MAX_VALUE == task.max_value == 99
            assert line == f"{value}{op}{b}={new}"
            value = new


def test_eval_split_has_distinct_questions_and_unique_ids(task):
    probs = list(task.problems("eval"))
    assert len(probs) == EVAL_PER_LEVEL * len(LEVELS)
    assert len({p.id for p in probs}) == len(probs)
    for level in LEVELS:
        qs = [p.question for p in probs if p.difficulty == str(level)]
        assert len(set(qs)) == EVAL_PER_LEVEL
    assert [p.difficulty for p in probs] == sorted(p.difficulty for p in probs)


def test_train_split_is_disjoint_from_eval_and_the_rejection_is_needed(task):
    held_out = task.eval_questions
    assert not held_out.intersection(p.question for p in task.problems("train", per_level=3000))
    # level 1 has only 100 * 101 questions, so raw draws of the train stream hit eval
    # questions often: the rejection is what keeps the splits apart
    rng = np.random.default_rng([0, 1, 1])
    raw = {_question(*_draw_problem(rng, 1, 99)) for _ in range(3000)}
    assert len(raw & held_out) > 50
    big = LabArithTask(max_value=999)
    assert not big.eval_questions.intersection(p.question for p in big.problems("train", per_level=500))


def test_problems_limits_and_errors(task):
    assert len(list(task.problems("eval", limit=7))) == 7
    assert [p.difficulty for p in task.problems("eval", per_level=2)] == [
        str(x) for x in LEVELS for _ in (0, 1)
    ]
    assert len(list(task.problems("train", per_level=2, limit=3))) == 3
    with pytest.raises(ValueError, match="unbounded"):
        list(task.problems("train"))
    with pytest.raises(ValueError, match="unknown split"):
        list(task.problems("dev"))
    with pytest.raises(ValueError, match="1000 problems per level"):
        list(task.problems("eval", per_level=EVAL_PER_LEVEL + 1))


def test_prompts_and_reference_solutions(task):
    p = _problem(task, [23, 45, 17, 8], ["+", "-", "+"])
    assert p.question == "23+45-17+8" and p.answer == "59"
    assert task.format_prompt(p, cot=True) == "Q: 23+45-17+8 (steps)\n"
    assert task.format_prompt(p, cot=False) == "Q: 23+45-17+8 (direct)\n"
    assert task.solution(p) == "23+45=68\n68-17=51\n51+8=59\nAnswer: 59"
    assert task.solution(p, cot=False) == "Answer: 59"
    assert task.truncated_solution(p, 11) == "23+45=68\n68\nAnswer: 59"
    assert task.truncated_solution(p, 9) == "23+45=68\nAnswer: 59"  # trailing newline dropped
    assert task.truncated_solution(p, 0) == "\nAnswer: 59"


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("1+2=3\nAnswer: 3", "3"),
        ("Answer: 07", "7"),
        ("Answer: 3\nAnswer: 4", "4"),  # the last marker wins
        ("Answer:  12 \n1+1=2", "12"),
        ("1+2=3", None),
        ("Answer: ", None),
        ("Answer: 3 4", None),
        ("Answer: x", None),
    ],
)
def test_extract_answer(task, completion, expected):
    assert task.extract_answer(completion) == expected


def test_verifier_is_exact(task):
    p = _problem(task, [5, 3, 2], ["+", "-"])
    assert task.is_correct(task.extract_answer("5+3=8\n8-2=6\nAnswer: 6"), p)
    assert task.is_correct(task.extract_answer("Answer: 06"), p)
    assert not task.is_correct(task.extract_answer("5+3=8\n8-2=6\nAnswer: 7"), p)
    assert not task.is_correct(task.extract_answer("5+3=8\n8-2=6"), p)
    assert not task.is_correct(None, p)


@pytest.mark.parametrize(
    ("completion", "verdicts"),
    [
        ("5+3=8\n8-2=6\nAnswer: 6", [True, True, True]),  # right
        ("5+3=8\n8-2=6\n", [True, True]),  # steps only, trailing delimiter
        ("5+3=8\n8-2=5\nAnswer: 5", [True, False, False]),  # wrong last step and answer
        ("5+3=9\n9-2=7\nAnswer: 7", [False, False, False]),  # error carried forward
        ("5+3=8\n8-2=6\nAnswer: 5", [True, True, False]),  # right steps, wrong answer
        ("5+3=8\n8-", [True, True]),  # partial: unfinished step is a prefix
        ("5+3=8\n8-2=6\n6+1=7\nAnswer: 7", [True, True, False, False]),  # extra step
        ("5+3=8\n9-", [True, False]),  # unfinished step that is already wrong
        ("5+3=8\n8-\n", [True, False]),  # finished (delimited) incomplete step is wrong
        ("5+3=8\n8-\nAnswer: 6", [True, True, True]),  # truncated then forced
        ("\nAnswer: 6", [True, True]),  # budget 0 then forced
        ("", []),
        ("hello\nAnswer: 6", [False, True]),
        ("5+3=8\n8-2=6\nAns", [True, True, True]),  # the answer marker is coming
        ("5+3=8\nAns\n", [True, False]),  # ... but not when the segment is finished
    ],
)
def test_check_steps_on_hand_made_solutions(task, completion, verdicts):
    p = _problem(task, [5, 3, 2], ["+", "-"])
    got = task.check_steps(completion, p)
    assert got == verdicts
    assert len(got) == len(split_steps(completion, task.step_delimiter))


def test_check_steps_accepts_every_reference_and_every_truncation(task):
    for p in task.problems("eval", per_level=20):
        assert all(task.check_steps(task.solution(p), p))
        full = task.solution(p)
        answer_at = full.rindex("Answer: ") + len("Answer: ")
        for cut in range(answer_at):
            assert all(task.check_steps(full[:cut], p)), full[:cut]
        if len(p.answer) > 1:  # an answer segment is judged as final, even when cut
            assert task.check_steps(full[:-1], p)[-1] is False
        assert all(task.check_steps(task.truncated_solution(p, len(full) // 2), p))


def test_is_well_formed(task):
    assert task.is_well_formed("5+3=9\n9-2=7\nAnswer: 7")
    assert not task.is_well_formed("5+3=9\n9-2\nAnswer: 7")
    assert not task.is_well_formed("5+3=9\n9-2=7")
    assert not task.is_well_formed("Answer: 7")  # CoT needs a step
    assert task.is_well_formed("Answer: 7", cot=False)
    assert not task.is_well_formed("1+1=2\nAnswer: 7", cot=False)


def test_simulated_noisy_checker_flips_at_its_rate_and_is_seeded(task):
    probs = list(task.problems("eval", per_level=60))
    texts = [task.solution(p) for p in probs]
    exact = [v for t, p in zip(texts, probs, strict=True) for v in task.check_steps(t, p)]
    n = len(exact)
    assert n > 1000
    for rate in (0.0, 0.1, 0.3, 1.0):
        noisy = simulated_noisy_step_checker(task, rate, seed=3)
        got = [v for t, p in zip(texts, probs, strict=True) for v in noisy(t, p)]
        flips = sum(a != b for a, b in zip(exact, got, strict=True))
        sd = np.sqrt(n * rate * (1 - rate))
        assert abs(flips - n * rate) <= 4 * sd + 1e-9, (rate, flips, n)
    a = simulated_noisy_step_checker(task, 0.3, seed=3)
    b = simulated_noisy_step_checker(task, 0.3, seed=4)
    assert [a(t, p) for t, p in zip(texts, probs, strict=True)] == [
        simulated_noisy_step_checker(task, 0.3, seed=3)(t, p) for t, p in zip(texts, probs, strict=True)
    ]
    assert [a(t, p) for t, p in zip(texts, probs, strict=True)] != [
        b(t, p) for t, p in zip(texts, probs, strict=True)
    ]
    assert "SIMULATED" in simulated_noisy_step_checker.__doc__


def test_simulated_noisy_checker_keeps_verdicts_of_a_prefix(task):
    noisy = simulated_noisy_step_checker(task, 0.5, seed=0)
    for p in task.problems("eval", per_level=10):
        full = task.solution(p)
        lines = full.split("\n")
        for k in range(1, len(lines)):
            prefix = "\n".join(lines[:k]) + "\n"
            assert noisy(prefix, p) == noisy(full, p)[:k]


def test_simulated_noisy_checker_rejects_bad_rate(task):
    with pytest.raises(ValueError, match="flip_prob"):
        simulated_noisy_step_checker(task, 1.5, seed=0)
