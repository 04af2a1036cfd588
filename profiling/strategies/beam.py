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

from ..backends import Backend, GenerationRequest, GenerationResult
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
)
from .rewards import ProcessReward, get_reward, is_required_reward_spec

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
        "prm": Knob(
            "oracle",
            str,
            "process reward: oracle|noisy:P|module:function",
            is_required_reward_spec,
            "oracle, noisy:P, a registered name or module:function",
        ),
        "temperature": Knob(
            1.0, float, "sampling temperature of each step", lambda v: v >= 0, "a number >= 0"
        ),
        "top_p": Knob(1.0, float, "nucleus sampling mass", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    },
    compute_knob="width",
    cost_knobs=("width", "expansions", "max_steps"),
    aliases={"steps": "max_steps"},
    shape=lambda k: WorkloadShape(samples=k["width"], expansions=k["expansions"], steps=k["max_steps"]),
)


@dataclass
class _Chain:
    text: str = ""
    pieces: list[tuple[float | None, int]] = field(default_factory=list)  # (mean logprob, tokens) per step
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
class _Search:
    problem: Problem
    prompt: str
    seed: int
    beams: list[_Chain]
    cost: Cost = field(default_factory=Cost)

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
        searches = [
            _Search(p, task.format_prompt(p, cot=True), self.unit_seed(ctx, p), [_Chain()]) for p in problems
        ]
        delim = task.step_delimiter
        marker = task.answer_trigger.strip()
        for step in range(self.params["max_steps"]):
            requests, owners = [], []
            for si, s in enumerate(searches):
                for bi, beam in enumerate(s.beams):
                    if beam.finished:
                        continue
                    requests.append(
                        GenerationRequest(
                            s.prompt + beam.text,
                            n=width * expand if step == 0 else expand,
                            max_new_tokens=ctx.max_new_tokens,
                            temperature=self.params["temperature"],
                            top_p=self.params["top_p"],
                            stop=(delim,),
                            seed=derive_seed(s.seed, step, bi),
                        )
                    )
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
                    for c in result.completions:
                        done = (
                            (marker and marker in c.text) or not c.text.strip() or c.finish_reason == "length"
                        )
                        text = beam.text + c.text + ("" if done else delim)
                        candidates.append(
                            _Chain(text, [*beam.pieces, (c.logprob, c.completion_tokens)], bool(done))
                        )
                s.cost.observe_kv(concurrent_kv([r for _, r in pairs]), pairs[0][1].kv_source)
                candidates = _distinct(candidates)
                for cand in candidates:
                    if cand.score is None:
                        cand.score = _score(prm, s.problem, cand.text, task)
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
        if forced:
            trigger = task.answer_trigger
            requests = []
            for si in forced:
                text = best[si].text.rstrip() if trigger[:1].isspace() else best[si].text
                best[si] = _Chain(text + trigger, list(best[si].pieces), True, best[si].score)
                requests.append(
                    GenerationRequest(
                        searches[si].prompt + best[si].text,
                        n=1,
                        max_new_tokens=ctx.max_new_tokens,
                        temperature=0.0,
                        stop=(task.step_delimiter,),
                        seed=derive_seed(searches[si].seed, "answer"),
                    )
                )
            for si, result in zip(forced, backend.generate(requests), strict=True):
                (c,) = result.completions
                searches[si].cost.observe_call(result, c.completion_tokens)
                best[si].text += c.text
                best[si].pieces.append((c.logprob, c.completion_tokens))
                best[si].score = _score(prm, searches[si].problem, best[si].text, task)
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


def _score(prm: ProcessReward, problem: Problem, text: str, task: Task) -> float:
    value = prm.score(problem, text)
    if value is None:
        raise ValueError(
            f"beam:prm={prm.source} needs a step checker, which task {task.name!r} lacks; "
            "pass prm=module:function with a reward model"
        )
    return value
