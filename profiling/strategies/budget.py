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
    Cost,
    Knob,
    Outcome,
    RunContext,
    Strategy,
    StrategyDescriptor,
    WorkloadShape,
    derive_seed,
    mean_logprob,
)

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
        trigger = task.answer_trigger
        seeds = [self.unit_seed(ctx, p) for p in problems]
        prompts = [task.format_prompt(p, cot=True) for p in problems]
        think = [
            GenerationRequest(
                prompt,
                n=1,
                max_new_tokens=self.params["tokens"],
                temperature=self.params["temperature"],
                stop=(marker,) if marker else (),
                seed=seed,
            )
            for prompt, seed in zip(prompts, seeds, strict=True)
        ]
        costs, scratch, pieces = [], [], []
        for result in backend.generate(think) if self.params["tokens"] > 0 else [None] * len(problems):
            cost = Cost()
            if result is None:  # T = 0: no thinking call at all
                text, piece = "", (None, 0)
            else:
                (c,) = result.completions
                cost.observe_call(result, c.completion_tokens)
                text, piece = c.text, (c.logprob, c.completion_tokens)
            if trigger[:1].isspace():
                text = text.rstrip()
            costs.append(cost)
            scratch.append(text + trigger)
            pieces.append([piece])
        answer_requests = [
            GenerationRequest(
                prompt + pad,
                n=1,
                max_new_tokens=self.params["answer_tokens"],
                temperature=0.0,
                stop=(task.step_delimiter,),
                seed=derive_seed(seed, "answer"),
            )
            for prompt, pad, seed in zip(prompts, scratch, seeds, strict=True)
        ]
        out = []
        for i, result in enumerate(backend.generate(answer_requests)):
            (c,) = result.completions
            costs[i].observe_call(result, c.completion_tokens)
            pieces[i].append((c.logprob, c.completion_tokens))
            text = scratch[i] + c.text
            out.append(self.outcome(task, problems[i], 0, text, costs[i], mean_logprob(pieces[i])))
        return out
