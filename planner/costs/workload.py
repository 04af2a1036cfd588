"""The shape of one strategy execution: which engine calls it makes, with how many sequences
and how many tokens each.

A :class:`Workload` holds the knobs that matter for cost (prompt tokens, samples, generated
tokens per sample, rounds, steps, whether the backend shares prefixes); its
:meth:`Workload.phases` lists the engine calls (:class:`Phase`), which run one after another.
Every cost (FLOPs, KV peak, memory traffic, latency, API bill) is computed from the phases.

============================  =================================================================
strategy (knobs)              phases
============================  =================================================================
``greedy``                    one call, 1 sequence of ``G`` tokens
``pool:n=``                   one call, ``n`` sequences of ``G`` tokens from one prompt
``beam:width=W,``             ``S`` steps of ``g = ceil(G / S)`` tokens; each step decodes
``expansions=E,max_steps=S``  ``W * E`` candidates (``W`` beams x ``E`` continuations) from the
                              kept beams' partial chains (``steps=`` is accepted for ``max_steps=``)
``refine:rounds=R``           a first chain of ``G`` tokens, then ``R`` revisions that keep a
                              fraction ``keep`` (default 0.5, an ASSUMPTION: the first rejected
                              step is on average half-way) and regenerate the rest
``budget:tokens=T``           thinking capped at ``min(G, T)`` tokens, then a forced answer of
                              ``answer_tokens`` (default 32) tokens
``hybrid:n=,rounds=``         ``n`` chains from one prompt, each refined ``rounds`` times
============================  =================================================================

``G`` (``gen_tokens``) is the length of one chain: a sample, a beam's full solution, one
refinement attempt. The knobs, their defaults and the shape of each strategy come from its
descriptor (:data:`profiling.strategies.DESCRIPTORS`, the one the profiler uses); knobs that
do not change the cost (``temperature``, ``top_p``, ``cot``, ``reward``, ``prm``,
``verifier``) are accepted and ignored.

Prefix sharing (``prefix_sharing=True``: vLLM automatic prefix caching, SGLang's radix cache)
prefills a common prompt once, holds its KV once, and keeps the KV of earlier calls' tokens
(beam histories, kept refinement prefixes) instead of recomputing them. Without it (HF
``generate`` with ``num_return_sequences``; stateless APIs) every sequence prefills and holds
its whole context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from profiling.strategies import DESCRIPTORS, get_descriptor
from profiling.strategy_spec import StrategySpec, parse_strategy_spec

__all__ = ["Phase", "Workload"]


@dataclass(frozen=True)
class Phase:
    """One engine call: ``sequences`` sequences, each attending to ``context_tokens`` tokens when
    its decoding starts, generate ``gen_tokens`` tokens each.

    ``prefill_chunks`` separate prefills of ``prefill_tokens`` new tokens each run first (on top
    of ``context_tokens - prefill_tokens`` already cached); 1 chunk = one shared prompt,
    ``sequences`` chunks = no sharing, 0 = everything cached. ``kv_tokens_start`` counts the
    distinct tokens whose KV is held when decoding starts (a shared prefix once).
    """

    sequences: int
    context_tokens: int
    gen_tokens: int
    prefill_chunks: int
    prefill_tokens: int
    kv_tokens_start: int

    def __post_init__(self) -> None:
        for name in (
            "sequences",
            "context_tokens",
            "gen_tokens",
            "prefill_chunks",
            "prefill_tokens",
            "kv_tokens_start",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Phase.{name} must be a non-negative integer, got {value!r}")
        if self.sequences < 1:
            raise ValueError("Phase.sequences must be >= 1")
        if self.prefill_tokens > self.context_tokens:
            raise ValueError(
                f"Phase.prefill_tokens ({self.prefill_tokens}) exceeds context_tokens ({self.context_tokens})"
            )

    @property
    def kv_tokens_end(self) -> int:
        """Distinct tokens held when the phase ends: the start plus every generated token."""
        return self.kv_tokens_start + self.sequences * self.gen_tokens


@dataclass(frozen=True)
class Workload:
    """What one execution of a strategy on one prompt costs in tokens.

    Parameters
    ----------
    strategy : strategy family (``greedy``, ``pool``, ``beam``, ``refine``, ``budget``, ``hybrid``).
    prompt_tokens : tokens of the prompt ``P``.
    gen_tokens : tokens of one chain ``G`` (module docstring).
    samples : parallel sequences: ``n`` for pool/hybrid, beam width ``W`` for beam, else 1.
    expansions : beam continuations per beam and step ``E``.
    steps : beam steps ``S``.
    rounds : refinement rounds after the first attempt ``R``.
    keep : fraction of a chain kept by each refinement round.
    budget_tokens : thinking-token cap of budget forcing (None: no cap).
    answer_tokens : tokens of the forced answer (budget forcing).
    prefix_sharing : the backend shares common prefixes (module docstring).

    Examples
    --------
    >>> w = Workload.from_strategy("pool:n=4", prompt_tokens=100, gen_tokens=50)
    >>> w.phases()
    (Phase(sequences=4, context_tokens=100, gen_tokens=50, prefill_chunks=1, prefill_tokens=100, kv_tokens_start=100),)
    >>> w.generated_tokens, w.prefilled_tokens, w.kv_tokens_peak
    (200, 100, 300)
    """

    strategy: str
    prompt_tokens: int
    gen_tokens: int
    samples: int = 1
    expansions: int = 1
    steps: int = 1
    rounds: int = 0
    keep: float = 0.5
    budget_tokens: int | None = None
    answer_tokens: int = 0
    prefix_sharing: bool = True
    knobs: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.strategy not in DESCRIPTORS:
            raise ValueError(f"unknown strategy {self.strategy!r}; known: {', '.join(DESCRIPTORS)}")
        for name in ("prompt_tokens", "gen_tokens", "answer_tokens", "rounds"):
            _check_int(name, getattr(self, name), 0)
        for name in ("samples", "expansions", "steps"):
            _check_int(name, getattr(self, name), 1)
        if self.budget_tokens is not None:
            _check_int("budget_tokens", self.budget_tokens, 0)
        if not 0.0 <= self.keep < 1.0:
            raise ValueError(f"keep must be in [0, 1), got {self.keep!r}")

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_strategy(
        cls,
        strategy: str | StrategySpec,
        prompt_tokens: int,
        gen_tokens: int,
        *,
        prefix_sharing: bool = True,
    ) -> Workload:
        """Workload of a ``--strategy`` spec (``pool:n=16``, ``beam:width=4,expansions=2,max_steps=8``...).

        Raises ``ValueError`` naming the strategy and knob on unknown names or bad values.
        """
        spec = parse_strategy_spec(strategy) if isinstance(strategy, str) else strategy
        try:
            desc = get_descriptor(spec.name)
        except ValueError as exc:
            raise ValueError(f"{exc} (in {str(spec)!r})") from None
        knobs = desc.resolve(spec.knobs, str(spec))
        shape = desc.shape(knobs)
        try:
            return cls(
                strategy=spec.name,
                prompt_tokens=prompt_tokens,
                gen_tokens=gen_tokens,
                samples=shape.samples,
                expansions=shape.expansions,
                steps=shape.steps,
                rounds=shape.rounds,
                keep=shape.keep,
                budget_tokens=shape.budget_tokens,
                answer_tokens=shape.answer_tokens,
                prefix_sharing=prefix_sharing,
                knobs={k: knobs[k] for k in desc.cost_knobs},
            )
        except ValueError as exc:
            raise ValueError(f"strategy {str(spec)!r}: {exc}") from None

    # ---- the calls ---------------------------------------------------------------------------
    def _first_call(self, n: int, gen: int) -> Phase:
        p = self.prompt_tokens
        if self.prefix_sharing:
            return Phase(n, p, gen, 1 if p else 0, p, p)
        return Phase(n, p, gen, n if p else 0, p, n * p)

    def _continue(self, n: int, context: int, gen: int, held_start: int) -> Phase:
        """A later call whose context was produced earlier: cached with sharing, else re-sent."""
        if self.prefix_sharing:
            return Phase(n, context, gen, 0, 0, held_start)
        return Phase(n, context, gen, n if context else 0, context, n * context)

    def phases(self) -> tuple[Phase, ...]:
        """The engine calls of one execution, in order (table in the module docstring)."""
        p, g = self.prompt_tokens, self.gen_tokens
        if self.strategy == "beam":
            n = self.samples * self.expansions
            step = math.ceil(g / self.steps) if g else 0
            out = [self._first_call(n, step)]
            for s in range(1, self.steps):
                held = p + self.samples * s * step  # prompt once + each kept beam's history
                out.append(self._continue(n, p + s * step, step, held))
            return tuple(out)
        if self.strategy == "budget":
            think = g if self.budget_tokens is None else min(g, self.budget_tokens)
            out = [self._first_call(1, think)]
            if self.answer_tokens:
                out.append(self._continue(1, p + think, self.answer_tokens, p + think))
            return tuple(out)
        n = self.samples
        out = [self._first_call(n, g)]
        kept = int(round(self.keep * g))
        for _ in range(self.rounds):
            out.append(self._continue(n, p + kept, g - kept, p + n * kept))
        return tuple(out)

    # ---- token totals ------------------------------------------------------------------------
    @property
    def generated_tokens(self) -> int:
        """Tokens generated over every call (all samples, candidates and rounds)."""
        return sum(ph.sequences * ph.gen_tokens for ph in self.phases())

    @property
    def prefilled_tokens(self) -> int:
        """Tokens run through prefill over every call (a shared prompt once)."""
        return sum(ph.prefill_chunks * ph.prefill_tokens for ph in self.phases())

    @property
    def request_input_tokens(self) -> int:
        """Input tokens if every sequence of every call were a separate stateless request
        (what an API bills): ``sum(sequences * context_tokens)``."""
        return sum(ph.sequences * ph.context_tokens for ph in self.phases())

    @property
    def kv_tokens_peak(self) -> int:
        """Most distinct tokens held at once (at the end of the largest call)."""
        return max(ph.kv_tokens_end for ph in self.phases())

    @property
    def max_sequences(self) -> int:
        """Largest number of sequences decoded together in one call."""
        return max(ph.sequences for ph in self.phases())

    def describe(self) -> str:
        """The strategy and its cost knobs, e.g. ``pool:n=16``."""
        knobs = ",".join(f"{k}={v}" for k, v in self.knobs.items())
        return f"{self.strategy}:{knobs}" if knobs else self.strategy


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
