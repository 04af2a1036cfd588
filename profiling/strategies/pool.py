"""``pool``: n independent samples per question from ONE batched request (shared prompt prefix).

The pool is the input of every parallel strategy: pass@k, best-of-N (by reward or mean
log-prob), majority and weighted vote are estimated in :mod:`fitting` for every k <= n
from this one pool, never by regenerating for each k (docs/design.md, "Sample once, estimate
every k").

Knobs: ``n`` (samples per question), ``temperature``, ``top_p``, ``cot``, and ``reward``
(``none`` by default; ``oracle``, ``noisy:P`` or a callable, see
:mod:`profiling.strategies.rewards`) — an outcome score of each full sample stored in the
``reward`` column for best-of-N and weighted vote. The mean token log-prob is always
stored in ``logprob`` when the backend reports it.

Rows: one per sample, ``sample_idx`` 0..n-1. Attribution (equal split): each row carries
its own measured ``completion_tokens``; ``prompt_tokens`` is the question's prompt (shared
by the n rows: with prefix sharing the prompt is processed once per question, so a
k-subset costs one prompt plus its rows' completion tokens); ``latency_s`` and
``kv_bytes_peak`` are the request's measured wall time and KV peak divided by n, so the n
rows add back up to the request's totals and k rows cost k/n of them.
"""

from __future__ import annotations

from ..backends import UNFINISHED, Backend, GenerationRequest
from ..tasks import Problem, Task
from ._base import Cost, Knob, Outcome, RunContext, Strategy, StrategyDescriptor, WorkloadShape, concurrent_kv
from .rewards import get_reward, is_valid_reward_spec

__all__ = ["Pool", "DESCRIPTOR", "BLOCK"]

#: the knob of a pool's block (the key :mod:`fitting.blocks` merges on; spelled here so that
#: listing the strategies, as `ttc --help` does, does not import fitting)
BLOCK = "block"

DESCRIPTOR = StrategyDescriptor(
    name="pool",
    summary="n samples per question in one batched request (input of pass@k, best-of-N, votes)",
    knobs={
        "n": Knob(16, int, "samples per question", lambda v: v >= 1, "an integer >= 1"),
        "temperature": Knob(1.0, float, "sampling temperature", lambda v: v >= 0, "a number >= 0"),
        "top_p": Knob(1.0, float, "nucleus sampling mass", lambda v: 0 < v <= 1, "a number in (0, 1]"),
        "cot": Knob(True, bool, "chain-of-thought prompt (false: direct answer)"),
        "block": Knob(
            0,
            int,
            "which block of n samples of the question's pool: samples block*n .. block*n+n-1 "
            "(adaptive profiling grows a pool a block at a time; blocks read back as one pool)",
            lambda v: v >= 0,
            "an integer >= 0",
        ),
        "reward": Knob(
            "none",
            str,
            "outcome score per sample: none|oracle|noisy:P|module:function",
            is_valid_reward_spec,
            "none, oracle, noisy:P, a registered name or module:function",
        ),
    },
    compute_knob="n",
    cost_knobs=("n",),
    shape=lambda k: WorkloadShape(samples=k["n"]),
)


class Pool(Strategy):
    descriptor = DESCRIPTOR

    @property
    def config(self) -> dict[str, object]:
        """Every knob plus labels, without ``block`` when it is 0 (a pool in one block keeps
        the config it always had)."""
        config = super().config
        if config.get(BLOCK) == 0:
            config.pop(BLOCK)
        return config

    def labels(self) -> dict[str, object]:
        reward = get_reward(self.params["reward"], task=None)
        return {} if reward is None else {"reward_source": reward.source}

    def run(self, backend: Backend, task: Task, problems: list[Problem], ctx: RunContext) -> list[Outcome]:
        n = self.params["n"]
        scorer = get_reward(self.params["reward"], task, seed=ctx.seed)
        requests = [
            GenerationRequest(
                task.format_prompt(p, cot=self.params["cot"]),
                n=n,
                max_new_tokens=ctx.max_new_tokens,
                temperature=self.params["temperature"],
                top_p=self.params["top_p"],
                seed=self.unit_seed(ctx, p),
            )
            for p in problems
        ]
        out = []
        for problem, result in zip(problems, backend.generate(requests), strict=True):
            if len(result.completions) != n:
                raise RuntimeError(
                    f"backend {backend.name!r} returned {len(result.completions)} completions for a request of n={n}"
                )
            kv_share = concurrent_kv([result], 1.0 / n)
            unfinished = any(c.finish_reason in UNFINISHED for c in result.completions)
            for idx, completion in enumerate(result.completions):
                cost = Cost()
                cost.add_call(result, completion.completion_tokens, share=1.0 / n, unfinished=unfinished)
                cost.observe_kv(kv_share, result.kv_source)
                reward = None if scorer is None else scorer.score(problem, completion.text)
                if scorer is not None and reward is None:
                    raise ValueError(
                        f"pool:reward={self.params['reward']} needs a step checker, which task {task.name!r} lacks"
                    )
                sample_idx = self.params[BLOCK] * n + idx
                out.append(
                    self.outcome(task, problem, sample_idx, completion.text, cost, completion.logprob, reward)
                )
        return out
