"""``greedy``: one greedy (temperature 0) completion per question, with or without chain of thought.

Knobs: ``cot`` (default true) — prompt for a scratchpad; ``cot=false`` asks for the answer
directly and needs a task with a direct-answer prompt (:attr:`Task.supports_direct`).

One row per question (``sample_idx`` 0). Cost: the one call's measured prompt and completion
tokens, latency and KV peak, as the backend attributes them to the request.
"""

from __future__ import annotations

from ..backends import Backend, GenerationRequest
from ..tasks import Problem, Task
from ._base import Cost, Knob, Outcome, RunContext, Strategy, StrategyDescriptor

__all__ = ["Greedy", "DESCRIPTOR"]

DESCRIPTOR = StrategyDescriptor(
    name="greedy",
    summary="one greedy completion per question (cot=true|false)",
    knobs={"cot": Knob(True, bool, "chain-of-thought prompt (false: direct answer)")},
)


class Greedy(Strategy):
    descriptor = DESCRIPTOR

    def run(self, backend: Backend, task: Task, problems: list[Problem], ctx: RunContext) -> list[Outcome]:
        cot = self.params["cot"]
        requests = [
            GenerationRequest(
                task.format_prompt(p, cot=cot),
                n=1,
                max_new_tokens=ctx.max_new_tokens,
                temperature=0.0,
                seed=self.unit_seed(ctx, p),
            )
            for p in problems
        ]
        out = []
        for problem, result in zip(problems, backend.generate(requests), strict=True):
            (completion,) = result.completions
            cost = Cost()
            cost.observe_call(result, completion.completion_tokens)
            out.append(self.outcome(task, problem, 0, completion.text, cost, completion.logprob))
        return out
