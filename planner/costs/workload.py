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
``mcts:simulations=N,``       ``N`` simulations of two calls: an expansion of ``E`` sequences of
``expansions=E,max_steps=S``  one step ``g = ceil(G / S)`` and a rollout of one sequence to the
                              end of the chain; the first expands the root, the others a node
                              ``d = depth * G`` tokens down (``depth`` default 0.5, an
                              ASSUMPTION: half-way), so their rollouts write ``G - d - g``
============================  =================================================================

``G`` (``gen_tokens``) is the length of one chain: a sample, a beam's full solution, one
refinement attempt. It can be one number (every chain alike) or a distribution of per-sample
lengths (:class:`~planner.costs.lengths.TokenLengths`: the measured lengths, or their mean,
mean of squares and max); the costs are then expectations over it, each chain priced at its
own length (:func:`planner.costs.estimate.estimate_cost`). Pool and hybrid chains are drawn
independently (the pool waits for its longest); a beam's or refinement's chains share one
length per execution. The knobs, their defaults and the shape of each strategy come from its
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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from profiling.strategies import DESCRIPTORS, WorkloadShape, get_descriptor
from profiling.strategy_spec import StrategySpec, parse_strategy_spec

from .lengths import TokenLengths
from .question_mix import Atoms, QuestionMix

__all__ = ["Phase", "Calls", "Workload"]


@dataclass(frozen=True)
class Phase:
    """One engine call: ``sequences`` sequences, each attending to ``context_tokens`` tokens when
    its decoding starts, generate ``gen_tokens`` tokens each (token counts may be fractional
    when they come from a mean).

    ``prefill_chunks`` separate prefills of ``prefill_tokens`` new tokens each run first (on top
    of ``context_tokens - prefill_tokens`` already cached); 1 chunk = one shared prompt,
    ``sequences`` chunks = no sharing, 0 = everything cached. ``kv_tokens_start`` counts the
    distinct tokens whose KV is held when decoding starts (a shared prefix once).
    """

    sequences: int
    context_tokens: float
    gen_tokens: float
    prefill_chunks: int
    prefill_tokens: float
    kv_tokens_start: float

    def __post_init__(self) -> None:
        for name in ("sequences", "prefill_chunks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Phase.{name} must be a non-negative integer, got {value!r}")
        for name in ("context_tokens", "gen_tokens", "prefill_tokens", "kv_tokens_start"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"Phase.{name} must be a non-negative number, got {value!r}")
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


@dataclass(frozen=True, eq=False)
class Calls:
    """The engine calls of a workload at many ``(prompt, chain length)`` atoms at once: the
    columns of :class:`Phase`, each a ``(calls, atoms)`` array (``sequences``: one per call).
    :meth:`Workload.phases` is this table at the workload's own prompt and length."""

    sequences: np.ndarray
    context_tokens: np.ndarray
    gen_tokens: np.ndarray
    prefill_chunks: np.ndarray
    prefill_tokens: np.ndarray
    kv_tokens_start: np.ndarray

    @property
    def kv_tokens_end(self) -> np.ndarray:
        """Distinct tokens held when each call ends (:attr:`Phase.kv_tokens_end`)."""
        return self.kv_tokens_start + self.sequences[:, None] * self.gen_tokens


@dataclass(frozen=True)
class Workload:
    """What one execution of a strategy on one prompt costs in tokens.

    Parameters
    ----------
    strategy : strategy family (``greedy``, ``pool``, ``beam``, ``refine``, ``budget``, ``hybrid``).
    prompt_tokens : tokens of the prompt ``P`` (0 when unknown: only the generated tokens are priced).
    gen_tokens : tokens of one chain ``G`` (module docstring); the mean of ``lengths`` when given.
    shape : what one execution consists of (:class:`profiling.strategies.WorkloadShape`, from the
        strategy's descriptor: parallel ``samples`` (``n`` for pool/hybrid, beam width ``W``),
        beam ``expansions`` ``E`` and ``steps`` ``S``, refinement ``rounds`` ``R`` keeping a
        fraction ``keep``, the thinking cap ``budget_tokens`` and forced ``answer_tokens``,
        tree-search ``simulations`` ``N`` expanding ``depth`` of the way down).
    prefix_sharing : the backend shares common prefixes (module docstring).
    lengths : the distribution of one chain's length (None: every chain has ``gen_tokens``).
    questions : the questions served (:class:`~planner.costs.QuestionMix`; None: one question
        with ``prompt_tokens`` and ``lengths``); see :meth:`for_questions`.

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
    gen_tokens: float
    shape: WorkloadShape = field(default_factory=WorkloadShape)
    prefix_sharing: bool = True
    knobs: dict[str, Any] = field(default_factory=dict, compare=False)
    lengths: TokenLengths | None = field(default=None, compare=False)
    questions: QuestionMix | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.strategy not in DESCRIPTORS:
            raise ValueError(f"unknown strategy {self.strategy!r}; known: {', '.join(DESCRIPTORS)}")
        _check_int("prompt_tokens", self.prompt_tokens, 0)
        for name in ("answer_tokens", "rounds", "simulations"):
            _check_int(name, getattr(self.shape, name), 0)
        g = self.gen_tokens
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not (0 <= g < math.inf):
            raise ValueError(f"gen_tokens must be a number >= 0, got {g!r}")
        for name in ("samples", "expansions", "steps"):
            _check_int(name, getattr(self.shape, name), 1)
        if self.shape.budget_tokens is not None:
            _check_int("budget_tokens", self.shape.budget_tokens, 0)
        for name in ("keep", "depth"):
            if not 0.0 <= getattr(self.shape, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self.shape, name)!r}")

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_strategy(
        cls,
        strategy: str | StrategySpec,
        prompt_tokens: int,
        gen_tokens: int | float | Sequence[float] | TokenLengths,
        *,
        prefix_sharing: bool = True,
    ) -> Workload:
        """Workload of a ``--strategy`` spec (``pool:n=16``, ``beam:width=4,expansions=2,max_steps=8``...).

        ``gen_tokens`` is one chain's length: a number, the per-sample lengths, or a
        :class:`TokenLengths`. Raises ``ValueError`` naming the strategy and knob on unknown
        names or bad values.

        Examples
        --------
        >>> w = Workload.from_strategy("pool:n=2", 0, [100, 10_000])
        >>> w.gen_tokens, w.lengths.mean_sq
        (5050, 50005000.0)
        """
        spec = parse_strategy_spec(strategy) if isinstance(strategy, str) else strategy
        lengths = None
        if isinstance(gen_tokens, TokenLengths) or _ndim(gen_tokens) > 0:
            lengths = TokenLengths.coerce(gen_tokens)  # type: ignore[arg-type]
            mean = lengths.mean
            gen_tokens = int(mean) if float(mean).is_integer() else mean
            if lengths.is_constant:
                lengths = None
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
                shape=shape,
                prefix_sharing=prefix_sharing,
                knobs={k: knobs[k] for k in desc.cost_knobs},
                lengths=lengths,
            )
        except ValueError as exc:
            raise ValueError(f"strategy {str(spec)!r}: {exc}") from None

    @classmethod
    def for_questions(
        cls, strategy: str | StrategySpec, questions: QuestionMix, *, prefix_sharing: bool = True
    ) -> Workload:
        """The workload of a strategy serving a :class:`~planner.costs.QuestionMix`: its costs
        are per query, the question-weighted mean over the questions, each at its own prompt
        and chain lengths (:mod:`planner.costs.question_mix`). ``prompt_tokens`` and
        ``gen_tokens`` hold the mix's means (rounded prompt), for display.

        Examples
        --------
        >>> mix = QuestionMix.from_samples([0, 0], [[100, 10_000], [5_050]])
        >>> w = Workload.for_questions("pool:n=2", mix)
        >>> w.generated_tokens, w.questions.mean_length
        (10100, 5050.0)
        """
        if not isinstance(questions, QuestionMix):
            raise ValueError(f"questions must be a QuestionMix, got {type(questions).__name__}")
        mean = questions.mean_length
        base = cls.from_strategy(
            strategy, int(round(questions.mean_prompt)), mean, prefix_sharing=prefix_sharing
        )
        return replace(base, questions=questions)

    # ---- lengths ---------------------------------------------------------------------------------
    @property
    def length_distribution(self) -> TokenLengths:
        """The distribution of one chain's length (a constant ``gen_tokens`` when none was given)."""
        return self.lengths if self.lengths is not None else TokenLengths.constant(self.gen_tokens)

    @property
    def independent_chains(self) -> int:
        """Chains of one execution whose lengths are drawn independently: ``n`` for pool and
        hybrid (each sample has its own length), 1 otherwise (a beam's candidates and a
        refinement's attempts share one length per execution)."""
        return self.shape.samples if self.strategy in ("pool", "hybrid") else 1

    def at_length(self, gen_tokens: float) -> Workload:
        """This workload with every chain ``gen_tokens`` long (no distribution, one question)."""
        if isinstance(gen_tokens, float) and gen_tokens.is_integer():
            gen_tokens = int(gen_tokens)
        return replace(self, gen_tokens=gen_tokens, lengths=None, questions=None)

    def question_mix(self) -> QuestionMix:
        """The questions served: :attr:`questions`, or the one question of ``prompt_tokens``
        with :attr:`length_distribution`."""
        return self._mix

    @cached_property
    def _mix(self) -> QuestionMix:
        if self.questions is not None:
            return self.questions
        return QuestionMix.single(self.prompt_tokens, self.length_distribution)

    def atoms(self) -> Atoms:
        """:meth:`question_mix` flattened into ``(prompt, length, probability)`` atoms."""
        return self._mix.atoms()

    @property
    def expected_prompt_tokens(self) -> float:
        """Prompt tokens of a query, the mean over the questions when there are several."""
        return self.questions.mean_prompt if self.questions is not None else float(self.prompt_tokens)

    # ---- the calls ---------------------------------------------------------------------------
    def calls(self, prompt_tokens, gen_tokens) -> Calls:
        """The engine calls at each ``(prompt, chain length)`` atom (arrays broadcast together;
        the table in the module docstring). :meth:`phases` is this at one atom."""
        p, g = np.broadcast_arrays(
            np.asarray(prompt_tokens, dtype=float), np.asarray(gen_tokens, dtype=float)
        )
        p, g = np.atleast_1d(p), np.atleast_1d(g)
        zero = np.zeros_like(p)
        rows: list[tuple] = []

        def first(n: int, gen) -> None:
            has = (p > 0).astype(float)
            if self.prefix_sharing:
                rows.append((n, p, gen, has, p, p))
            else:
                rows.append((n, p, gen, n * has, p, n * p))

        def cont(n: int, context, gen, held) -> None:
            if self.prefix_sharing:
                rows.append((n, context, gen, zero, zero, held))
            else:
                rows.append((n, context, gen, n * (context > 0).astype(float), context, n * context))

        if self.strategy == "beam":
            n = self.shape.samples * self.shape.expansions
            step = np.where(g > 0, np.ceil(g / self.shape.steps - 1e-9), 0.0)
            first(n, step)
            for s in range(1, self.shape.steps):
                held = p + self.shape.samples * s * step  # prompt once + each kept beam's history
                cont(n, p + s * step, step, held)
        elif self.strategy == "mcts":
            step = np.where(g > 0, np.ceil(g / self.shape.steps - 1e-9), 0.0)
            down = np.minimum(np.round(self.shape.depth * g), g - step)  # context above a later expansion
            first(self.shape.expansions, step)
            cont(1, p + step, g - step, p + step)
            for _ in range(1, self.shape.simulations):
                # the expanded node's path is held; other branches are the prefix cache's to keep
                cont(self.shape.expansions, p + down, step, p + down)
                cont(1, p + down + step, g - down - step, p + down + step)
        elif self.strategy == "budget":
            think = g if self.shape.budget_tokens is None else np.minimum(g, self.shape.budget_tokens)
            first(1, think)
            if self.shape.answer_tokens:
                cont(1, p + think, np.full_like(p, self.shape.answer_tokens), p + think)
        else:
            n = self.shape.samples
            first(n, g)
            kept = np.round(self.shape.keep * g)
            for _ in range(self.shape.rounds):
                cont(n, p + kept, g - kept, p + n * kept)
        cols = list(zip(*rows, strict=True))
        return Calls(np.array(cols[0], dtype=int), *(np.stack(c).astype(float) for c in cols[1:]))

    def phases(self) -> tuple[Phase, ...]:
        """The engine calls of one execution, in order (table in the module docstring), every
        chain ``gen_tokens`` long after ``prompt_tokens``."""
        c = self.calls(self.prompt_tokens, self.gen_tokens)
        return tuple(
            Phase(
                int(c.sequences[i]),
                _number(c.context_tokens[i, 0]),
                _number(c.gen_tokens[i, 0]),
                int(c.prefill_chunks[i, 0]),
                _number(c.prefill_tokens[i, 0]),
                _number(c.kv_tokens_start[i, 0]),
            )
            for i in range(len(c.sequences))
        )

    # ---- token totals (expectations over the chain lengths) -----------------------------------
    def _over_atoms(self, column) -> float:
        """``E[sum over calls of column(calls)]`` over the atoms of :meth:`atoms`."""
        at = self.atoms()
        c = self.calls(at.prompt, at.length)
        return float(column(c).sum(axis=0) @ at.weight)

    @property
    def generated_tokens(self) -> float:
        """Tokens generated over every call (all samples, candidates and rounds)."""
        return _number(self._over_atoms(lambda c: c.sequences[:, None] * c.gen_tokens))

    @property
    def prefilled_tokens(self) -> float:
        """Tokens run through prefill over every call (a shared prompt once)."""
        return _number(self._over_atoms(lambda c: c.prefill_chunks * c.prefill_tokens))

    @property
    def request_input_tokens(self) -> float:
        """Input tokens if every sequence of every call were a separate stateless request
        (what an API bills): ``sum(sequences * context_tokens)``."""
        return _number(self._over_atoms(lambda c: c.sequences[:, None] * c.context_tokens))

    @property
    def kv_tokens_peak(self) -> float:
        """Most distinct tokens held at once (at the end of the largest call), every chain
        ``gen_tokens`` long (the per-sample peak is :func:`planner.costs.estimate.kv_peak_bytes`)."""
        return max(ph.kv_tokens_end for ph in self.phases())

    @property
    def max_sequences(self) -> int:
        """Largest number of sequences decoded together in one call."""
        return max(ph.sequences for ph in self.phases())

    def describe(self) -> str:
        """The strategy and its cost knobs, e.g. ``pool:n=16``."""
        knobs = ",".join(f"{k}={v}" for k, v in self.knobs.items())
        return f"{self.strategy}:{knobs}" if knobs else self.strategy


def _number(x: float) -> int | float:
    """A whole number as an int (token counts of one length stay integers), else the float."""
    x = float(x)
    return int(x) if x.is_integer() else x


def _ndim(value: Any) -> int:
    """Dimensions of a number or sequence (0 for scalars)."""
    return int(np.ndim(value))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
