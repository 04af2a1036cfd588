"""``budget``: budget forcing of thinking tokens.

Phase 1 generates the chain of thought capped at ``tokens`` = T new tokens (and stopped early
at the task's answer marker, :attr:`Task.answer_trigger` stripped, if the model gets there
first). Phase 2 appends :attr:`Task.answer_trigger` to the (possibly truncated) scratchpad and
generates the final answer greedily, up to ``answer_tokens`` tokens and the step delimiter.
When the trigger starts with whitespace, trailing whitespace of the scratchpad is dropped
first so the trigger is not doubled (``"...7\\n" + "\\nAnswer: "`` becomes ``"...7\\nAnswer: "``).

Sweeping T: pass several specs (``--strategy budget:tokens=16 --strategy budget:tokens=32``)
or one spec with alternatives, ``budget:tokens=16|32|64``, which expands to one config per
value (any knob of any strategy accepts ``a|b|c``; see :func:`profiling.strategies.expand_spec`).

Knobs: ``tokens`` (T), ``answer_tokens``, ``temperature`` of phase 1 (0 = greedy).

One row per question (``sample_idx`` 0): ``completion_tokens`` counts both phases (phase 1
may stop before T); ``prompt_tokens`` both prompts; ``latency_s`` both calls; ``kv_bytes_peak``
the larger of the two (phases run one after the other).
"""

from __future__ import annotations

from ..backends import Backend, GenerationRequest
from ..tasks import Problem, Task
from ._base import (
    Knob,
    Outcome,
    RunContext,
    Strategy,
    StrategyDescriptor,
    WorkloadShape,
    mean_logprob,
)
from ._steps import Unit, force_answers, piece

__all__ = ["BudgetForcing", "DESCRIPTOR"]

DESCRIPTOR = StrategyDescriptor(
    name="budget",
    summary="cap the scratchpad at `tokens` tokens, then force the answer (tokens=16|32|64 sweeps)",
    knobs={
        "tokens": Knob(64, int, "thinking-token budget T of phase 1", lambda v: v >= 0, "an integer >= 0"),
        "answer_tokens": Knob(32, int, "token cap of the forced answer", lambda v: v >= 1, "an integer >= 1"),
        "temperature": Knob(
            0.0, float, "sampling temperature of phase 1 (0 = greedy)", lambda v: v >= 0, "a number >= 0"
        ),
    },
    compute_knob="tokens",
    cost_knobs=("tokens", "answer_tokens"),
    shape=lambda k: WorkloadShape(budget_tokens=k["tokens"], answer_tokens=k["answer_tokens"]),
)


class BudgetForcing(Strategy):
    descriptor = DESCRIPTOR

    def run(self, backend: Backend, task: Task, problems: list[Problem], ctx: RunContext) -> list[Outcome]:
        marker = task.answer_trigger.strip()
        units = [Unit(p, task.format_prompt(p, cot=True), self.unit_seed(ctx, p)) for p in problems]
        think = [
            GenerationRequest(
                u.prompt,
                n=1,
                max_new_tokens=self.params["tokens"],
                temperature=self.params["temperature"],
                stop=(marker,) if marker else (),
                seed=u.seed,
            )
            for u in units
        ]
        thoughts = backend.generate(think) if self.params["tokens"] > 0 else [None] * len(units)
        scratch, pieces = [], []
        for u, result in zip(units, thoughts, strict=True):
            if result is None:  # T = 0: no thinking call at all
                text, first = "", (None, 0)
            else:
                (c,) = result.completions
                u.cost.observe_call(result, c.completion_tokens)
                text, first = c.text, piece(c)
            scratch.append(text)
            pieces.append(first)
        answers = force_answers(backend, task, units, scratch, self.params["answer_tokens"])
        return [
            self.outcome(task, u.problem, 0, text, u.cost, mean_logprob([first, answer]))
            for u, first, (text, answer) in zip(units, pieces, answers, strict=True)
        ]
