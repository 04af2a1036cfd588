"""The task contract: problems with a reference answer and a difficulty, an answer
extractor, an exact verifier and (optionally) a step checker.

Call order, as the profiler uses it::

    task = get_task("lab-arith")
    for problem in task.problems(split="eval", per_level=50):
        prompt = task.format_prompt(problem, cot=True)          # text fed to the model
        completion = backend.generate(prompt, ...)               # model output
        answer = task.extract_answer(completion)                 # None = abstain
        ok = task.is_correct(answer, problem)                    # exact verdict
        steps = task.check_steps(completion, problem)            # per-step verdicts or None

Budget forcing appends :attr:`Task.answer_trigger` after a truncated scratchpad so the
model must state its final answer; step-level search splits completions on
:attr:`Task.step_delimiter`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Problem", "Task"]


@dataclass(frozen=True)
class Problem:
    """One question. ``difficulty`` is a string label ("1".."5" for graded tasks)."""

    id: str
    question: str
    answer: str
    difficulty: str = "all"
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Task(ABC):
    """A set of problems plus the means to check answers to them."""

    #: Registry name (e.g. "lab-arith"); file-based tasks use the file's stem.
    name: str = ""
    #: Text that, appended to a (truncated) chain of thought, makes the model answer now.
    answer_trigger: str = "\nAnswer: "
    #: Separator between reasoning steps in a completion (used by beam search / refinement).
    step_delimiter: str = "\n"
    #: Whether the task has a direct-answer prompt distinct from chain of thought.
    supports_direct: bool = False

    @abstractmethod
    def problems(
        self, split: str = "eval", per_level: int | None = None, limit: int | None = None
    ) -> Iterator[Problem]:
        """Yield problems of ``split``: the first ``per_level`` of each difficulty level
        (in level order), or the first ``limit`` overall, deterministically."""

    @abstractmethod
    def format_prompt(self, problem: Problem, cot: bool = True) -> str:
        """The prompt text: with a chain-of-thought scratchpad when ``cot``, else direct."""

    @abstractmethod
    def extract_answer(self, completion: str) -> str | None:
        """The normalized final answer in ``completion``, or None when there is none."""

    def is_correct(self, answer: str | None, problem: Problem) -> bool:
        """Exact verdict: the extracted answer equals the problem's reference answer."""
        return answer is not None and answer == self.normalize(problem.answer)

    def normalize(self, answer: str) -> str:
        """Canonical form of an answer string (identity by default)."""
        return answer.strip()

    def check_steps(self, completion: str, problem: Problem) -> list[bool] | None:
        """Per-step verdicts of a (possibly partial) chain of thought, or None when the
        task has no step checker. Used as an oracle process reward."""
        return None
