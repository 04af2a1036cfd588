"""``beam``: step-level beam search guided by a process reward.

Algorithm (one question; all questions of a batch advance together, one backend call per step):

1. Step 0 samples ``width * expansions`` first steps from the prompt (one request, shared
   prefix); later steps sample ``expansions`` continuations of each unfinished beam. A step
   is generated up to :attr:`Task.step_delimiter` (a stop string).
2. A candidate is *finished* when its new step holds the task's answer marker
   (:attr:`Task.answer_trigger`, stripped), is empty, or ran out of tokens.
3. Every distinct candidate (plus the finished beams carried over; identical texts count
   once, so duplicates do not crowd the beam) is scored by the process reward (``prm``);
   the top ``width`` by (score, mean log-prob) become the beams.
4. Stop when every beam is finished or after ``max_steps`` steps. The answer is the best
   finished beam; if none finished, the best beam is forced to answer by appending
   :attr:`Task.answer_trigger` and generating (those tokens count too).

Knobs: ``width``, ``expansions`` (per beam), ``max_steps``, ``prm`` (``oracle`` = the task's
step checker, a perfect PRM on the lab; ``noisy:P`` = a SIMULATED imperfect PRM, labelled
``simulated`` in ``config``; or a callable for real reward models — see
:mod:`profiling.strategies.rewards`), ``temperature``, ``top_p``.

One row per question execution (``sample_idx`` 0): ``completion_tokens`` sums every
generated candidate (kept or pruned) and the forced answer; ``prompt_tokens`` sums the
prompts of every request (each resends the prompt plus the beam's partial solution);
``latency_s`` sums the requests' latencies; ``kv_bytes_peak`` is the largest per-step total
over the question's concurrent requests. ``reward`` holds the PRM score of the chosen chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..backends import Backend, GenerationResult
from ..tasks import Problem, Task
from ._base import (
    Knob,
    Outcome,
    RunContext,
    Strategy,
    StrategyDescriptor,
    WorkloadShape,
    concurrent_kv,
    derive_seed,
    mean_logprob,
)
from ._steps import (
    Piece,
    Unit,
    force_answers,
    next_step,
    reward_knob,
    sample_request,
    sampling_knobs,
    step_score,
)
from .rewards import ProcessReward, get_reward

__all__ = ["BeamSearch", "DESCRIPTOR"]

DESCRIPTOR = StrategyDescriptor(
    name="beam",
    summary="step-level beam search scored by a process reward (prm=oracle|noisy:P|callable)",
    knobs={
        "width": Knob(4, int, "beams kept after each step", lambda v: v >= 1, "an integer >= 1"),
        "expansions": Knob(
            2, int, "continuations sampled per beam and step", lambda v: v >= 1, "an integer >= 1"
        ),
        "max_steps": Knob(
            12, int, "steps before the best beam is forced to answer", lambda v: v >= 1, "an integer >= 1"
        ),
        "prm": reward_knob("process reward"),
        **sampling_knobs("each step"),
    },
    compute_knob="width",
    cost_knobs=("width", "expansions", "max_steps"),
    aliases={"steps": "max_steps"},
    shape=lambda k: WorkloadShape(samples=k["width"], expansions=k["expansions"], steps=k["max_steps"]),
)


@dataclass
class _Chain:
    text: str = ""
    pieces: list[Piece] = field(default_factory=list)  # (mean logprob, tokens) per step
    finished: bool = False
    score: float | None = None  # PRM score, set once per chain (scores are deterministic)

    @property
    def logprob(self) -> float | None:
        return mean_logprob(self.pieces)

    def rank_key(self) -> tuple[float, float]:
        lp = self.logprob
        return (
            self.score if self.score is not None else float("-inf"),
            lp if lp is not None else float("-inf"),
        )


@dataclass
class _Search(Unit):
    beams: list[_Chain] = field(default_factory=lambda: [_Chain()])

    @property
    def active(self) -> bool:
        return any(not b.finished for b in self.beams)


class BeamSearch(Strategy):
    descriptor = DESCRIPTOR

    def labels(self) -> dict[str, object]:
        prm = get_reward(self.params["prm"], task=None)
        return {"prm_source": prm.source}

    def run(self, backend: Backend, task: Task, problems: list[Problem], ctx: RunContext) -> list[Outcome]:
        width, expand = self.params["width"], self.params["expansions"]
        prm = get_reward(self.params["prm"], task, seed=ctx.seed)
        searches = [_Search(p, task.format_prompt(p, cot=True), self.unit_seed(ctx, p)) for p in problems]
        delim = task.step_delimiter
        marker = task.answer_trigger.strip()
        for step in range(self.params["max_steps"]):
            requests, owners = [], []
            for si, s in enumerate(searches):
                for bi, beam in enumerate(s.beams):
                    if beam.finished:
                        continue
                    n = width * expand if step == 0 else expand
                    seed = derive_seed(s.seed, step, bi)
                    requests.append(sample_request(self.params, ctx, s.prompt + beam.text, n, seed, (delim,)))
                    owners.append((si, bi))
            if not requests:
                break
            results = backend.generate(requests)
            by_search: dict[int, list[tuple[_Chain, GenerationResult]]] = {}
            for (si, bi), result in zip(owners, results, strict=True):
                by_search.setdefault(si, []).append((searches[si].beams[bi], result))
            for si, pairs in by_search.items():
                s = searches[si]
                candidates = [b for b in s.beams if b.finished]
                for beam, result in pairs:
                    s.cost.add_call(result, sum(c.completion_tokens for c in result.completions))
                    candidates += [
                        _Chain(*next_step(beam.text, beam.pieces, c, delim, marker))
                        for c in result.completions
                    ]
                s.cost.observe_kv(concurrent_kv([r for _, r in pairs]), pairs[0][1].kv_source)
                candidates = _distinct(candidates)
                for cand in candidates:
                    if cand.score is None:
                        cand.score = step_score(self.name, prm, s.problem, cand.text, task)
                s.beams = sorted(candidates, key=_Chain.rank_key, reverse=True)[:width]
        return self._finish(backend, task, searches, ctx, prm)

    def _finish(
        self, backend: Backend, task: Task, searches: list[_Search], ctx: RunContext, prm: ProcessReward
    ) -> list[Outcome]:
        best = []
        forced: list[int] = []
        for si, s in enumerate(searches):
            done = [b for b in s.beams if b.finished]
            best.append(max(done or s.beams, key=_Chain.rank_key))
            if not done:
                forced.append(si)
        units = [searches[si] for si in forced]
        answers = force_answers(backend, task, units, [best[si].text for si in forced], ctx.max_new_tokens)
        for si, (text, answer) in zip(forced, answers, strict=True):
            score = step_score(self.name, prm, searches[si].problem, text, task)
            best[si] = _Chain(text, [*best[si].pieces, answer], True, score)
        return [
            self.outcome(task, s.problem, 0, b.text, s.cost, b.logprob, b.score)
            for s, b in zip(searches, best, strict=True)
        ]


def _distinct(chains: list[_Chain]) -> list[_Chain]:
    """Chains with distinct texts, first occurrence kept, order preserved."""
    seen: set[str] = set()
    out = []
    for c in chains:
        if c.text not in seen:
            seen.add(c.text)
            out.append(c)
    return out
