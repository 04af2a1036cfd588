"""``lab-arith``: multi-step integer arithmetic with a checkable scratchpad.

A problem is a chain of ``L`` additions and subtractions of numbers in ``[0, 99]`` whose
running value stays in ``[0, 99]`` (so no modulus and no negative numbers), e.g. at level 3::

    question   "23+45-17+8"
    cot prompt "Q: 23+45-17+8 (steps)\\n"
    completion "23+45=68\\n68-17=51\\n51+8=59\\nAnswer: 59"

    direct prompt "Q: 23+45-17+8 (direct)\\n"
    completion    "Answer: 59"

The difficulty level ``L`` (1..5) is the number of steps. Each scratchpad step is one line
``a<op>b=c`` that carries the previous result ``a`` forward, so it can be checked on its own
(:meth:`LabArithTask.check_steps`, an oracle process reward). The final answer follows
:attr:`LabArithTask.answer_trigger` (``"\\nAnswer: "``); steps are separated by
:attr:`LabArithTask.step_delimiter` (``"\\n"``).

Splits are deterministic functions of ``seed``: ``"eval"`` holds :data:`EVAL_PER_LEVEL`
distinct problems per level; ``"train"`` is an unbounded stream of problems that never
contains an eval question (rejection against the eval set), drawn with replacement. The
lab checkpoints were trained on the ``seed=0`` train stream, so the ``seed=0`` eval split is
held out from them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from functools import cached_property

import numpy as np

from ..tasks import Problem, Task

__all__ = [
    "LabArithTask",
    "LEVELS",
    "EVAL_PER_LEVEL",
    "MAX_VALUE",
    "simulated_noisy_step_checker",
]

#: difficulty levels = number of arithmetic steps
LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
#: size of the eval split per level (distinct questions)
EVAL_PER_LEVEL = 1000
#: operands and every running value lie in [0, MAX_VALUE] (the default; the lab checkpoints'
#: task). With three digits (999) no lab model learned a single step in 1,200 training steps
#: (about 2% of 1-step problems right, answers off in the last two digits).
MAX_VALUE = 99

_ANSWER_RE = re.compile(r"[+-]?\d+")
_STEP_RE = re.compile(r"(\d+)([+-])(\d+)=(\d+)")
_SPLIT_CODES = {"eval": 0, "train": 1}


def _draw_problem(
    rng: np.random.Generator, level: int, max_value: int = MAX_VALUE
) -> tuple[list[int], list[str]]:
    """Operands ``[a0, b1, .., bL]`` and operators ``[op1, .., opL]`` of one problem.

    ``a0`` is uniform on [0, max_value]; each operator is ``+`` or ``-`` with equal
    probability and the next operand is uniform on the range that keeps the running value
    ``v`` in [0, max_value] (``[0, max_value - v]`` for ``+``, ``[0, v]`` for ``-``).
    """
    value = int(rng.integers(0, max_value + 1))
    operands, ops = [value], []
    for _ in range(level):
        op = "+" if rng.random() < 0.5 else "-"
        b = int(rng.integers(0, (max_value - value if op == "+" else value) + 1))
        value = value + b if op == "+" else value - b
        operands.append(b)
        ops.append(op)
    return operands, ops


def _steps(operands: list[int], ops: list[str]) -> tuple[list[str], int]:
    """Reference scratchpad lines ``a<op>b=c`` and the final value."""
    value, lines = operands[0], []
    for op, b in zip(ops, operands[1:], strict=True):
        new = value + b if op == "+" else value - b
        lines.append(f"{value}{op}{b}={new}")
        value = new
    return lines, value


def _question(operands: list[int], ops: list[str]) -> str:
    return str(operands[0]) + "".join(f"{op}{b}" for op, b in zip(ops, operands[1:], strict=True))


class LabArithTask(Task):
    """Multi-step addition/subtraction with a per-step checkable scratchpad (see module doc).

    Parameters
    ----------
    seed : int
        Seed of both splits. The lab checkpoints were trained with ``seed=0``.
    max_value : int
        Operands and running values lie in ``[0, max_value]``; the lab checkpoints were
        trained with the default, 99.

    Examples
    --------
    >>> task = LabArithTask()
    >>> p = next(task.problems("eval", per_level=1))
    >>> p.difficulty, task.format_prompt(p, cot=True) == f"Q: {p.question} (steps)\\n"
    ('1', True)
    >>> task.is_correct(task.extract_answer(task.solution(p)), p)
    True
    """

    name = "lab-arith"
    answer_trigger = "\nAnswer: "
    step_delimiter = "\n"
    supports_direct = True

    def __init__(self, seed: int = 0, max_value: int = MAX_VALUE) -> None:
        if not isinstance(max_value, int) or max_value < 9:
            raise ValueError(f"lab-arith: max_value must be an integer >= 9, got {max_value!r}")
        self.seed = int(seed)
        self.max_value = max_value

    # ---- problems ---------------------------------------------------------------------------
    def _make(self, split: str, level: int, index: int, operands: list[int], ops: list[str]) -> Problem:
        lines, value = _steps(operands, ops)
        return Problem(
            id=f"{self.name}/{split}/L{level}/{index:05d}",
            question=_question(operands, ops),
            answer=str(value),
            difficulty=str(level),
            meta={"operands": tuple(operands), "ops": tuple(ops), "steps": tuple(lines)},
        )

    @cached_property
    def _eval(self) -> dict[int, list[Problem]]:
        out: dict[int, list[Problem]] = {}
        for level in LEVELS:
            rng = np.random.default_rng([self.seed, _SPLIT_CODES["eval"], level])
            seen: set[str] = set()
            probs: list[Problem] = []
            while len(probs) < EVAL_PER_LEVEL:
                operands, ops = _draw_problem(rng, level, self.max_value)
                q = _question(operands, ops)
                if q not in seen:
                    seen.add(q)
                    probs.append(self._make("eval", level, len(probs), operands, ops))
            out[level] = probs
        return out

    @cached_property
    def eval_questions(self) -> frozenset[str]:
        """Every question text of the eval split (all levels); never drawn for training."""
        return frozenset(p.question for probs in self._eval.values() for p in probs)

    def train_stream(self, level: int, seed: int | None = None) -> Iterator[Problem]:
        """Unbounded deterministic stream of training problems of ``level`` (with replacement),
        none of which is an eval question. ``seed`` (default: the task's) picks the stream."""
        if level not in LEVELS:
            raise ValueError(f"lab-arith: level must be one of {LEVELS}, got {level!r}")
        rng = np.random.default_rng([self.seed if seed is None else seed, _SPLIT_CODES["train"], level])
        held_out = self.eval_questions
        index = 0
        while True:
            operands, ops = _draw_problem(rng, level, self.max_value)
            if _question(operands, ops) in held_out:
                continue
            yield self._make("train", level, index, operands, ops)
            index += 1

    def problems(
        self, split: str = "eval", per_level: int | None = None, limit: int | None = None
    ) -> Iterator[Problem]:
        """Problems of ``split`` ("eval" or "train"), level by level (see :class:`Task`).

        The eval split has :data:`EVAL_PER_LEVEL` problems per level; the train split is
        unbounded, so it needs ``per_level`` or ``limit``.
        """
        if split not in _SPLIT_CODES:
            raise ValueError(f"lab-arith: unknown split {split!r}; expected one of {sorted(_SPLIT_CODES)}")
        for name, v in (("per_level", per_level), ("limit", limit)):
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"lab-arith: {name} must be a non-negative integer, got {v!r}")
        if split == "eval" and per_level is not None and per_level > EVAL_PER_LEVEL:
            raise ValueError(
                f"lab-arith: the eval split has {EVAL_PER_LEVEL} problems per level, asked {per_level}"
            )
        if split == "train" and per_level is None and limit is None:
            raise ValueError("lab-arith: the train split is unbounded; pass per_level or limit")
        emitted = 0
        for level in LEVELS:
            if split == "eval":
                source: Iterator[Problem] = iter(self._eval[level])
            else:
                source = self.train_stream(level)
            taken = 0
            for p in source:
                if (per_level is not None and taken >= per_level) or (limit is not None and emitted >= limit):
                    break
                yield p
                taken += 1
                emitted += 1
            if limit is not None and emitted >= limit:
                return

    # ---- formats ----------------------------------------------------------------------------
    def format_prompt(self, problem: Problem, cot: bool = True) -> str:
        """``"Q: <question> (steps)\\n"`` for chain of thought, ``"Q: <question> (direct)\\n"`` else."""
        return f"Q: {problem.question} ({'steps' if cot else 'direct'})\n"

    def solution(self, problem: Problem, cot: bool = True) -> str:
        """The reference completion: scratchpad lines then the answer line (CoT), or the
        answer line alone (direct). The answer line is ``answer_trigger`` without its
        leading newline."""
        answer = self.answer_trigger.lstrip("\n") + problem.answer
        if not cot:
            return answer
        return self.step_delimiter.join([*problem.meta["steps"], answer])

    def truncated_solution(self, problem: Problem, n_chars: int) -> str:
        """A scratchpad cut after ``n_chars`` characters, trailing whitespace dropped, then
        :attr:`answer_trigger` and the right answer: what budget forcing should produce."""
        scratch = self.step_delimiter.join(problem.meta["steps"])
        return scratch[: max(0, n_chars)].rstrip() + self.answer_trigger + problem.answer

    # ---- checking ---------------------------------------------------------------------------
    @property
    def _marker(self) -> str:
        return self.answer_trigger.strip()

    def normalize(self, answer: str) -> str:
        """Integers in canonical form (``" 07"`` -> ``"7"``); other strings stripped."""
        s = answer.strip()
        return str(int(s)) if _ANSWER_RE.fullmatch(s) else s

    def extract_answer(self, completion: str) -> str | None:
        """The integer after the last ``"Answer:"`` in ``completion``, up to the end of that
        line; None when there is no marker or the rest of the line is not one integer.

        Examples
        --------
        >>> LabArithTask().extract_answer("3+4=7\\nAnswer: 07")
        '7'
        >>> LabArithTask().extract_answer("3+4=7") is None
        True
        """
        at = completion.rfind(self._marker)
        if at < 0:
            return None
        rest = completion[at + len(self._marker) :].split(self.step_delimiter, 1)[0].strip()
        return str(int(rest)) if _ANSWER_RE.fullmatch(rest) else None

    def is_well_formed(self, completion: str, cot: bool = True) -> bool:
        """Whether ``completion`` has the trained format, right or wrong: for CoT, one or
        more lines ``a<op>b=c`` then ``Answer: <integer>``; for direct, the answer line only.

        Examples
        --------
        >>> LabArithTask().is_well_formed("5+3=9\\nAnswer: 9")
        True
        >>> LabArithTask().is_well_formed("5+3=\\nAnswer: 9")
        False
        """
        segments = completion.strip().split(self.step_delimiter)
        *steps, last = segments
        answer_ok = last.startswith(self._marker) and self.extract_answer(last) is not None
        if not cot:
            return answer_ok and not steps
        return answer_ok and bool(steps) and all(_STEP_RE.fullmatch(s) for s in steps)

    def check_steps(self, completion: str, problem: Problem) -> list[bool]:
        """One verdict per segment of ``completion`` split on :attr:`step_delimiter`
        (a trailing delimiter adds no segment), as
        :func:`profiling.strategies._base.split_steps` splits it.

        - An answer segment (starting with ``"Answer:"``) is right when its answer is; it
          is always judged as final (``"Answer: 9"`` is wrong when the answer is 93). An
          unfinished last segment that is a prefix of ``"Answer:"`` (or the bare marker)
          is right: the answer is still coming.
        - The i-th other segment is right when it equals the i-th reference step
          ``a<op>b=c`` exactly (so a step that carries a wrong earlier result forward is
          wrong too); a segment past the last reference step is wrong.
        - The last scratchpad segment when it is unfinished (no delimiter after it, or cut
          by a forced answer right after it) is right when it is a prefix of the reference
          step: nothing is wrong yet. An empty such segment (budget 0) is right.

        Examples
        --------
        >>> task = LabArithTask()
        >>> p = task._make("eval", 2, 0, [5, 3, 2], ["+", "-"])
        >>> task.check_steps("5+3=8\\n8-2=6\\nAnswer: 6", p)
        [True, True, True]
        >>> task.check_steps("5+3=9\\n9-2=7\\nAnswer: 7", p)
        [False, False, False]
        >>> task.check_steps("5+3=8\\n8-", p)
        [True, True]
        """
        segments = completion.split(self.step_delimiter)
        complete_tail = bool(segments) and segments[-1] == ""
        if complete_tail:
            segments.pop()
        ref = problem.meta["steps"]
        out: list[bool] = []
        step_i = 0
        for k, seg in enumerate(segments):
            text = seg.strip()
            nxt_is_answer = k + 1 < len(segments) and segments[k + 1].strip().startswith(self._marker)
            unfinished = (k == len(segments) - 1 and not complete_tail) or nxt_is_answer
            if unfinished and text and self._marker.startswith(text):  # "Answ": the answer is coming
                out.append(True)
                continue
            if text.startswith(self._marker):
                out.append(self.is_correct(self.extract_answer(seg), problem))
                continue
            target = ref[step_i] if step_i < len(ref) else None
            if target is None:
                ok = unfinished and text == ""
            elif text == target:
                ok = True
            else:
                ok = unfinished and target.startswith(text)
            out.append(ok)
            step_i += 1
        return out


def simulated_noisy_step_checker(
    task: LabArithTask, flip_prob: float, seed: int
) -> Callable[[str, Problem], list[bool]]:
    """SIMULATED imperfect step checker: :meth:`LabArithTask.check_steps` with each verdict
    flipped with probability ``flip_prob``.

    Not a real verifier: use it to ask how good a process verifier must be. The flip of
    step ``i`` is a deterministic function of ``seed``, the problem id and the completion
    text up to and including step ``i``, so the same partial solution always gets the same
    verdicts (as a real model would), and extending a completion does not change the
    verdicts of its earlier steps.

    Parameters
    ----------
    task : LabArithTask
        The task whose exact checker is corrupted.
    flip_prob : float
        Probability in [0, 1] that a verdict is flipped.
    seed : int
        Seed of the flips.

    Returns
    -------
    callable
        ``checker(completion, problem) -> list[bool]``, same signature as ``check_steps``.

    Examples
    --------
    >>> task = LabArithTask()
    >>> p = next(task.problems("eval", per_level=1))
    >>> simulated_noisy_step_checker(task, 1.0, seed=0)(task.solution(p), p)
    [False, False]
    """
    if not 0.0 <= flip_prob <= 1.0:
        raise ValueError(f"simulated_noisy_step_checker: flip_prob must be in [0, 1], got {flip_prob!r}")
    delim = task.step_delimiter

    def checker(completion: str, problem: Problem) -> list[bool]:
        verdicts = task.check_steps(completion, problem)
        segments = completion.split(delim)
        out = []
        for i, v in enumerate(verdicts):
            prefix = delim.join(segments[: i + 1])
            digest = hashlib.blake2b(f"{seed}\x00{problem.id}\x00{prefix}".encode(), digest_size=8).digest()
            u = np.random.default_rng(int.from_bytes(digest, "little")).random()
            out.append((not v) if u < flip_prob else v)
        return out

    checker.__name__ = f"simulated_noisy_step_checker_p{flip_prob:g}"
    return checker
