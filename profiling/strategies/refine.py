"""``refine``: sequential self-refinement from the first rejected step.

Round 0 samples a full chain of thought. Each of the next ``rounds`` rounds verifies the
chain's steps and, if a step is rejected (step score < 0.5), keeps the prefix before the
first rejected step and regenerates from there (``prompt + kept prefix``). A chain whose
steps are all accepted and that states an answer stops early; a chain with no rejected
step but no answer (cut by the token limit) is continued. ``rounds=0`` is one sample.

The verifier (``verifier`` knob) is a process reward from
:mod:`profiling.strategies.rewards`: ``oracle`` (the task's step checker; exact on the lab),
``noisy:P`` (a SIMULATED imperfect checker, labelled ``simulated`` in ``config``), or a
callable. Fallback for tasks without a step checker (``Task.check_steps`` returns None, e.g.
chat models on GSM8K-style files): critique and revise — each round sends
``prompt + previous attempt + CRITIQUE_PROMPT`` and the revision replaces the attempt; with no
verdict to stop on, every round runs.

Knobs: ``rounds``, ``verifier``, ``temperature`` (sampling of every call; greedy regeneration
from the same prefix would repeat the same mistake), ``top_p``.

One row per execution (``sample_idx`` 0): tokens, prompt tokens and latency summed over
the rounds; ``kv_bytes_peak`` the largest round (rounds run one after another).
:mod:`profiling.strategies.hybrid` runs ``n`` such chains per question from one shared
first request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..backends import Backend
from ..tasks import Problem, Task
from ._base import (
    Cost,
    Knob,
    Outcome,
    RunContext,
    Strategy,
    StrategyDescriptor,
    WorkloadShape,
    concurrent_kv,
    derive_seed,
    mean_logprob,
    split_steps,
)
from ._steps import Piece, piece, reward_knob, sample_request, sampling_knobs
from .rewards import ProcessReward, get_reward

__all__ = ["Refine", "DESCRIPTOR", "refine_chains", "CRITIQUE_PROMPT", "ACCEPT_THRESHOLD"]

#: appended after a previous attempt when the task has no step checker (critique-and-revise)
CRITIQUE_PROMPT = (
    "\n\nReview the solution above step by step. If any step is wrong, write a corrected "
    "solution from the start; otherwise repeat it. End with the final answer.\n"
)
#: a step is accepted when its verifier score is at least this (oracle scores are 0 or 1)
ACCEPT_THRESHOLD = 0.5


@dataclass
class _Chain:
    problem: Problem
    prompt: str
    seed: int
    text: str = ""
    pieces: list[Piece] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    accepted: bool = False


#: the cost model's ASSUMPTION for refinement: the first rejected step is on average half-way,
#: so each round keeps half of the chain and regenerates the rest
KEEP = Knob(
    0.5, float, "fraction of a chain each round keeps (ASSUMED)", lambda v: 0 <= v < 1, "a number in [0, 1)"
)

DESCRIPTOR = StrategyDescriptor(
    name="refine",
    summary="sequential self-refinement: regenerate from the first rejected step, R rounds",
    knobs={
        "rounds": Knob(
            2, int, "revision rounds after the first attempt", lambda v: v >= 0, "an integer >= 0"
        ),
        "verifier": reward_knob("step verifier"),
        **sampling_knobs("every call"),
    },
    compute_knob="rounds",
    knob_offset=1.0,  # attempts = rounds + 1 on the planner's (log) axis
    cost_knobs=("rounds", "keep"),
    assumptions={"keep": KEEP},
    shape=lambda k: WorkloadShape(rounds=k["rounds"], keep=k["keep"]),
)


class Refine(Strategy):
    descriptor = DESCRIPTOR

    def labels(self) -> dict[str, object]:
        return {"verifier_source": get_reward(self.params["verifier"], task=None).source}

    def n_chains(self) -> int:
        """Chains per question: 1 here; :class:`~profiling.strategies.hybrid.Hybrid` overrides it."""
        return 1

    def run(self, backend: Backend, task: Task, problems: list[Problem], ctx: RunContext) -> list[Outcome]:
        verifier = get_reward(self.params["verifier"], task, seed=ctx.seed)
        return refine_chains(self, backend, task, problems, ctx, verifier, self.n_chains())


def refine_chains(
    strategy: Strategy,
    backend: Backend,
    task: Task,
    problems: list[Problem],
    ctx: RunContext,
    verifier: ProcessReward,
    n: int,
) -> list[Outcome]:
    """Run ``n`` refined chains per problem; one :class:`Outcome` per chain (``sample_idx`` 0..n-1).

    Round 0 is one request of ``n`` samples per problem (shared prefix; latency and KV split
    equally over the n chains); each later round is one request per chain still being
    refined, all chains of the batch in one backend call.
    """
    rounds, params = strategy.params["rounds"], strategy.params
    first = [
        sample_request(params, ctx, task.format_prompt(p, cot=True), n, strategy.unit_seed(ctx, p))
        for p in problems
    ]
    chains: list[_Chain] = []
    for p, req, result in zip(problems, first, backend.generate(first), strict=True):
        kv = concurrent_kv([result], 1.0 / n)
        for i, c in enumerate(result.completions):
            chain = _Chain(p, req.prompt, derive_seed(req.seed, "chain", i), c.text, [piece(c)])
            chain.cost.add_call(result, c.completion_tokens, share=1.0 / n)
            chain.cost.observe_kv(kv, result.kv_source)
            chains.append(chain)
    for r in range(1, rounds + 1):
        todo, requests, keep = [], [], []
        for chain in chains:
            if chain.accepted:
                continue
            prompt, kept = _next_prompt(chain, task, verifier)
            if prompt is None:
                chain.accepted = True
                continue
            todo.append(chain)
            keep.append(kept)
            requests.append(sample_request(params, ctx, prompt, 1, derive_seed(chain.seed, "round", r)))
        if not requests:
            break
        for chain, kept, result in zip(todo, keep, backend.generate(requests), strict=True):
            (c,) = result.completions
            chain.cost.observe_call(result, c.completion_tokens)
            chain.text = kept + c.text
            chain.pieces.append(piece(c))
    by_problem: dict[str, int] = {}
    out = []
    for chain in chains:
        idx = by_problem.get(chain.problem.id, 0)
        by_problem[chain.problem.id] = idx + 1
        reward = verifier.score(chain.problem, chain.text)
        out.append(
            strategy.outcome(
                task, chain.problem, idx, chain.text, chain.cost, mean_logprob(chain.pieces), reward
            )
        )
    return out


def _next_prompt(chain: _Chain, task: Task, verifier: ProcessReward) -> tuple[str | None, str]:
    """The next round's prompt and the kept text, or ``(None, text)`` when the chain is accepted.

    With step scores: keep the steps before the first score below :data:`ACCEPT_THRESHOLD`;
    with none rejected but no answer yet (cut by the token limit), continue the whole text.
    Without (no step checker): critique and revise the whole attempt.
    """
    scores = verifier.step_scores(chain.problem, chain.text)
    if scores is None:
        return chain.prompt + chain.text + CRITIQUE_PROMPT, ""
    rejected = next((i for i, s in enumerate(scores) if s < ACCEPT_THRESHOLD), None)
    if rejected is None:
        if task.extract_answer(chain.text) is not None:
            return None, chain.text
        return chain.prompt + chain.text, chain.text  # no wrong step, no answer yet: continue it
    delim = task.step_delimiter
    steps = split_steps(chain.text, delim)
    kept = delim.join(steps[:rejected]) + (delim if rejected else "")
    return chain.prompt + kept, kept
