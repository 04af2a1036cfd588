"""The questions of a recorded data set, as a task the profiler can run (``--backend replay``).

A replayed run generates nothing: each question's rows are drawn from what was recorded
(:mod:`profiling.backends.replay`), answers and verdicts included. The task therefore holds
only what identifies a question (its id, difficulty label and recorded reference answer) and
refuses to build prompts or extract answers. Question selection (``per_level``, ``limit``)
works as for a JSONL task.
"""

from __future__ import annotations

from ._base import Problem
from .files import FileTask

__all__ = ["RecordedTask"]

NO_GENERATION = "a recorded task replays recorded samples; it builds no prompts and reads no answers"


class RecordedTask(FileTask):
    """Questions of a recording, in their order of first appearance.

    References are kept as recorded (``normalize`` is the identity and passes None
    through), so a replayed row's ``reference`` is the recorded one.
    """

    kind = "recorded"

    def __init__(self, problems: list[Problem], *, name: str, source: str = "") -> None:
        super().__init__(problems, name=name, source=source)

    def format_prompt(self, problem: Problem, cot: bool = True) -> str:
        raise ValueError(f"task {self.name!r} of {self.source}: {NO_GENERATION}")

    def extract_answer(self, completion: str) -> str | None:
        raise ValueError(f"task {self.name!r} of {self.source}: {NO_GENERATION}")

    def normalize(self, answer: str | None) -> str | None:  # type: ignore[override]
        return answer
