"""What every strategy shares: its descriptor, knobs, measured cost accumulation, outcomes and seeds.

A :class:`StrategyDescriptor` is the single source of what a strategy IS, declared next to
its class in each strategy module: its knobs with their defaults (the profiler validates
``--strategy`` specs with them), its compute knob (what a sweep varies and the planner moves
along), and the shape of one execution for the cost model (:class:`WorkloadShape`: parallel
sequences, beam steps, refinement rounds, forced-answer tokens), from which
:class:`planner.costs.Workload` prices it and the planner reads how many sequences one query
decodes at once. The profiler, the cost model and the planner all read it.

A strategy turns a batch of problems into :class:`Outcome` objects (one per row of the
samples table) by talking only to the :class:`~profiling.backends._base.Backend`
interface. The runner (:mod:`profiling.runner`) adds the identity columns (run, model,
backend, task, strategy, config) and writes the rows.

Request knobs: every strategy also accepts the knobs of :data:`REQUEST_KNOBS`
(``reasoning_effort=low|medium|high``), which are not about the search but about each engine
call: :meth:`Strategy.execute` sets them on every request the strategy makes, and refuses a
backend that does not send them. Left at their defaults they are not written to ``config``,
so configs profiled before they existed are unchanged; set, they are, so the planner sees
each value as a different arm (one fixed knob more).

Cost attribution rules shared by all strategies (each strategy's docstring says which
apply):

* ``completion_tokens`` — tokens generated for the row, as the backend measured them,
  summed over every call attributed to the row.
* ``prompt_tokens`` — prompt tokens of every call attributed to the row, summed. For a
  one-call strategy that is the question's prompt; multi-call strategies (beam, refine,
  budget) resend the prompt plus the partial solution on each call, and the sum is the
  prefill work those calls did (without prefix caching).
* ``latency_s`` — the wall time of the row's calls, summed; a call that produced ``n``
  samples for ``n`` rows contributes ``latency_s / n`` to each (equal split).
* ``kv_bytes_peak`` — the largest KV footprint the row's work held at one time. Calls
  that run concurrently for one row (the beams of one step) add up; sequential calls
  (rounds, phases, steps) take the maximum. A call that produced ``n`` samples for ``n``
  rows contributes ``kv_bytes_peak / n`` to each (equal split), so the rows of one request
  add back up to the request's measured peak. ``None`` when the backend cannot see its
  cache.
* ``ttft_s`` — time to first token of the row's first call (not split: every sample of a
  request waits for the same prefill). ``None`` when the backend does not report it.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from ..backends import REASONING_EFFORTS, UNFINISHED, Backend, GenerationRequest, GenerationResult
from ..strategy_spec import StrategySpec
from ..tasks import Problem, Task

__all__ = [
    "Knob",
    "WorkloadShape",
    "StrategyDescriptor",
    "Cost",
    "Outcome",
    "RunContext",
    "Strategy",
    "derive_seed",
    "mean_logprob",
    "REQUEST_KNOBS",
]


@dataclass(frozen=True)
class Knob:
    """One tunable parameter of a strategy: its default, type and valid range."""

    default: Any
    kind: type  # int, float, bool or str
    help: str
    check: Callable[[Any], bool] | None = None  # extra validity test on the converted value
    expect: str = ""  # what ``check`` requires, for the error message ("an integer >= 1")

    def convert(self, strategy: str, name: str, value: Any) -> Any:
        """``value`` as this knob's type, or ``ValueError`` saying what was expected."""
        want = self.expect or f"a {self.kind.__name__}"
        ok = True
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif self.kind is str:
            value = str(value)
        if ok and self.check is not None:
            ok = bool(self.check(value))
        if not ok:
            raise ValueError(f"strategy {strategy!r}: knob {name!r} must be {want}, got {value!r}")
        return value


#: knobs every strategy accepts that set a field of each request (module docstring); ``none``
#: sends nothing
REQUEST_KNOBS: dict[str, Knob] = {
    "reasoning_effort": Knob(
        "none",
        str,
        "reasoning effort of every call: none (not sent)|"
        + "|".join(REASONING_EFFORTS)
        + " (openai backend)",
        lambda v: v in ("none", *REASONING_EFFORTS),
        "none, " + ", ".join(REASONING_EFFORTS),
    ),
}


@dataclass(frozen=True)
class WorkloadShape:
    """What one execution of a strategy consists of, for the cost model.

    ``samples`` parallel sequences from one prompt (pool and hybrid ``n``, beam ``width``),
    each beam sampling ``expansions`` continuations per step over ``steps`` steps;
    ``rounds`` refinement rounds after the first attempt, each keeping a fraction ``keep``
    of the chain; thinking capped at ``budget_tokens`` (None: no cap) and then
    ``answer_tokens`` forced answer tokens; ``simulations`` tree-search simulations (mcts),
    each expanding a node ``depth`` of the way down a chain of ``steps`` steps into
    ``expansions`` one-step children and rolling one of them out to an answer.
    :class:`planner.costs.Workload` turns it into engine calls.
    """

    samples: int = 1
    expansions: int = 1
    steps: int = 1
    rounds: int = 0
    keep: float = 0.5
    budget_tokens: int | None = None
    answer_tokens: int = 0
    simulations: int = 0
    depth: float = 0.5

    @property
    def sequences(self) -> int:
        """Sequences decoded at the same time for one query (pool n, beam width x expansions)."""
        return self.samples * self.expansions

    @property
    def calls(self) -> int:
        """Engine calls one execution makes one after another (beam steps, refinement rounds
        after the first attempt, the forced answer, an expansion and a rollout per tree-search
        simulation); a multi-call strategy resends its context."""
        if self.simulations:
            return 2 * self.simulations
        return self.steps * (1 + self.rounds) + (1 if self.answer_tokens else 0)

    @property
    def chain_factor(self) -> float:
        """Generated tokens per token of one chain (answer tokens aside): every sequence's
        chain and the regenerated ``1 - keep`` of it per round; for a tree search, each
        simulation's ``expansions`` one-step children (a step is ``1 / steps`` of the chain)
        and its rollout from below them to the end, the first from the root and the others
        from ``depth`` down (:class:`planner.costs.Workload`'s ``mcts`` calls).

        Examples
        --------
        >>> WorkloadShape(expansions=2, steps=4, simulations=3, depth=0.5).chain_factor
        2.75
        """
        if self.simulations:
            step = 1.0 / self.steps
            first = self.expansions * step + (1.0 - step)
            later = self.expansions * step + max(1.0 - self.depth - step, 0.0)
            return first + (self.simulations - 1) * later
        return self.sequences * (1 + self.rounds * (1 - self.keep))

    def generated_tokens(self, chain_tokens: float) -> float:
        """Tokens one execution generates when one chain (a sample, a beam's solution, an
        attempt) is ``chain_tokens`` long: every sequence's chain, the regenerated
        ``1 - keep`` of it per round, and the forced answer (budget caps ignored).

        Examples
        --------
        >>> WorkloadShape(samples=4, rounds=2, keep=0.5).generated_tokens(100)
        800.0
        """
        return self.chain_factor * chain_tokens + self.answer_tokens

    def chain_tokens(self, generated_tokens: float) -> float:
        """The inverse of :meth:`generated_tokens`: the chain length behind a measured total."""
        return (generated_tokens - self.answer_tokens) / self.chain_factor


@dataclass(frozen=True)
class StrategyDescriptor:
    """The single source of what a strategy is (module docstring).

    Parameters
    ----------
    name, summary : str
        The ``--strategy`` name and one line for help texts.
    knobs : mapping name -> :class:`Knob`
        Every knob the profiler accepts, with its default.
    compute_knob : str or None
        The knob that buys accuracy with compute (``n``, ``width``, ``rounds``, ``tokens``);
        None for ``greedy``.
    knob_offset : float
        The planner's x axis is ``compute_knob + knob_offset`` (``refine``: rounds + 1
        attempts, so that ``rounds=0`` is a positive point on a log axis).
    cost_knobs : tuple of str
        The knobs that change what one execution costs (the others, e.g. ``temperature``,
        do not), in the order :meth:`planner.costs.Workload.describe` shows them.
    assumptions : mapping name -> :class:`Knob`
        Cost-model knobs the profiler does not have, with ASSUMED defaults (``keep``: the
        fraction of a chain a refinement round keeps).
    aliases : mapping
        Other spellings accepted for a knob (``steps`` for ``max_steps``).
    shape : callable
        Resolved knobs -> :class:`WorkloadShape`.
    """

    name: str
    summary: str
    knobs: Mapping[str, Knob]
    compute_knob: str | None = None
    knob_offset: float = 0.0
    cost_knobs: tuple[str, ...] = ()
    assumptions: Mapping[str, Knob] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    shape: Callable[[Mapping[str, Any]], WorkloadShape] = lambda knobs: WorkloadShape()

    def __post_init__(self) -> None:
        # the request knobs are every strategy's: declared once, here
        object.__setattr__(self, "knobs", {**self.knobs, **REQUEST_KNOBS})

    def resolve(self, knobs: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Every knob and assumption, defaults filled in, aliases resolved, values checked.

        Raises ValueError naming ``where`` (the spec) and the knob on an unknown name or a
        bad value.

        Examples
        --------
        >>> from profiling.strategies import get_descriptor
        >>> get_descriptor("beam").resolve({"steps": 8})["max_steps"]
        8
        """
        where = where or self.name
        every = {**self.knobs, **self.assumptions}
        out = {k: knob.default for k, knob in every.items()}
        for key, value in knobs.items():
            name = self.aliases.get(key, key)
            if name not in every:
                allowed = ", ".join(sorted({*every, *self.aliases}))
                raise ValueError(f"strategy {where!r}: unknown knob {key!r}; {self.name} accepts {allowed}")
            out[name] = every[name].convert(self.name, key, value)
        return out

    def workload_shape(self, knobs: Mapping[str, Any], where: str = "") -> WorkloadShape:
        """The :class:`WorkloadShape` of one execution with ``knobs`` (defaults filled in)."""
        return self.shape(self.resolve(knobs, where))


@dataclass
class Cost:
    """Measured cost attributed to one row, accumulated over backend calls.

    See the module docstring for the attribution rules.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    ttft_s: float | None = None
    kv_bytes_peak: float | None = None
    kv_source: str | None = None
    calls: int = 0
    #: calls whose result holds a sample the engine did not finish (``UNFINISHED``: aborted or
    #: failed, partial text); a unit with such a row is not written (the runner reports it)
    unfinished_calls: int = 0
    _kv_known: bool = True

    def add_call(
        self,
        result: GenerationResult,
        completion_tokens: int,
        share: float = 1.0,
        unfinished: bool | None = None,
    ) -> None:
        """Count one call: its prompt, ``completion_tokens`` of its output and ``share`` of its time.

        ``unfinished``: whether the call holds a sample the engine did not finish, when the
        caller already knows (a pool's n rows share one call); None: look at its completions.
        The call's KV is not observed here (see :meth:`observe_kv`) because whether calls add
        up or overlap depends on the strategy.
        """
        self.prompt_tokens += int(result.prompt_tokens)
        self.completion_tokens += int(completion_tokens)
        self.latency_s += float(result.latency_s) * share
        if self.calls == 0 and result.ttft_s is not None:
            self.ttft_s = float(result.ttft_s)
        self.calls += 1
        if unfinished is None:
            unfinished = any(c.finish_reason in UNFINISHED for c in result.completions)
        if unfinished:
            self.unfinished_calls += 1

    def observe_kv(self, kv_bytes: float | None, source: str | None) -> None:
        """Record a KV footprint held at one time; the row keeps the maximum.

        One unknown (``None``) observation makes the row's peak unknown: a maximum over
        partly unseen work would understate it.
        """
        if kv_bytes is None:
            self._kv_known = False
            self.kv_bytes_peak = None
            return
        if source is not None:
            self.kv_source = source
        if not self._kv_known:
            return
        self.kv_bytes_peak = max(float(kv_bytes), self.kv_bytes_peak or 0.0)

    def observe_call(self, result: GenerationResult, completion_tokens: int, share: float = 1.0) -> None:
        """:meth:`add_call` plus :meth:`observe_kv` of ``share`` of the call's peak (a call
        that ran on its own for this row)."""
        self.add_call(result, completion_tokens, share)
        self.observe_kv(concurrent_kv([result], share), result.kv_source)


def concurrent_kv(results: Sequence[GenerationResult], share: float = 1.0) -> float | None:
    """KV bytes held by calls that ran at the same time: ``share * sum(peaks)``; None if any is unknown."""
    peaks = [r.kv_bytes_peak for r in results]
    if not peaks or any(p is None for p in peaks):
        return None
    return share * float(sum(peaks))


def mean_logprob(parts: Sequence[tuple[float | None, int]]) -> float | None:
    """Token-weighted mean log-prob of a text generated in pieces ``(mean_logprob, tokens)``.

    .. math:: \\bar\\ell = \\frac{\\sum_i \\bar\\ell_i t_i}{\\sum_i t_i}

    None when any piece with tokens has no log-prob, or when there are no tokens.

    Examples
    --------
    >>> mean_logprob([(-1.0, 2), (-4.0, 1)])
    -2.0
    """
    total = sum(t for _, t in parts)
    if total <= 0 or any(lp is None for lp, t in parts if t > 0):
        return None
    return float(sum(lp * t for lp, t in parts if t > 0) / total)


@dataclass
class Outcome:
    """One row of the samples table, before the runner adds the identity columns."""

    problem: Problem
    sample_idx: int
    text: str  # the model's full completion (after the prompt), across all calls
    answer: str | None
    correct: bool
    cost: Cost
    logprob: float | None = None
    reward: float | None = None


@dataclass(frozen=True)
class RunContext:
    """Run-wide settings a strategy needs besides its knobs."""

    seed: int = 0
    max_new_tokens: int = 256
    #: model name, part of every unit's seed so that two models never share a random stream
    model: str = ""


def derive_seed(*parts: object) -> int:
    """A 31-bit seed determined by ``parts`` (strings, ints), independent of Python's hash salt.

    Examples
    --------
    >>> derive_seed(0, "q1") == derive_seed(0, "q1") != derive_seed(1, "q1")
    True
    """
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Strategy(ABC):
    """A test-time compute strategy over the backend interface.

    Subclasses set :attr:`descriptor` (which gives :attr:`name`, :attr:`summary` and
    :attr:`KNOBS`) and implement :meth:`run`. Construct with keyword knobs; unknown knobs
    and bad values raise ``ValueError`` listing the valid ones.
    """

    descriptor: ClassVar[StrategyDescriptor]
    name: ClassVar[str] = ""
    #: one line for ``ttc profile --help`` and error messages
    summary: ClassVar[str] = ""
    KNOBS: ClassVar[Mapping[str, Knob]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        d = cls.__dict__.get("descriptor")
        if d is not None:  # the descriptor is the one source of these
            cls.name, cls.summary, cls.KNOBS = d.name, d.summary, d.knobs

    def __init__(self, **knobs: Any) -> None:
        unknown = sorted(set(knobs) - set(self.KNOBS))
        if unknown:
            valid = ", ".join(f"{k} (default {_fmt(v.default)})" for k, v in self.KNOBS.items()) or "none"
            raise ValueError(
                f"strategy {self.name!r} has no knob(s) {', '.join(unknown)}; valid knobs: {valid}"
            )
        self.params: dict[str, Any] = {
            k: knob.convert(self.name, k, knobs.get(k, knob.default)) for k, knob in self.KNOBS.items()
        }

    # ---- identity -------------------------------------------------------------------------
    def labels(self) -> dict[str, Any]:
        """Derived, non-knob facts stored in ``config`` (e.g. that a reward is simulated)."""
        return {}

    @property
    def config(self) -> dict[str, Any]:
        """Every knob (defaults filled in; request knobs only when set) plus :meth:`labels`: the
        ``config`` column's content."""
        return {**self._set_knobs(), **self.labels()}

    def config_json(self) -> str:
        """The canonical JSON string stored in the samples table's ``config`` column."""
        return json.dumps(self.config, sort_keys=True)

    @property
    def spec(self) -> StrategySpec:
        """The full spec (every knob; request knobs only when set) that reproduces this strategy."""
        return StrategySpec(self.name, self._set_knobs())

    def _set_knobs(self) -> dict[str, Any]:
        """:attr:`params` without the request knobs left at their defaults (module docstring)."""
        return {
            k: v for k, v in self.params.items() if k not in REQUEST_KNOBS or v != REQUEST_KNOBS[k].default
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec})"

    def unit_seed(self, ctx: RunContext, problem: Problem) -> int:
        """Seed of one (model, strategy, config, question) unit: independent of batching,
        sharding and resumption, so a rerun regenerates the same unit."""
        return derive_seed(ctx.seed, ctx.model, self.name, self.config_json(), problem.id)

    # ---- behaviour ------------------------------------------------------------------------
    def check_task(self, task: Task) -> None:
        """Raise ``ValueError`` when this strategy cannot run on ``task`` (before any work).

        Here: a ``cot=false`` knob needs a task with a direct-answer prompt.
        """
        if self.params.get("cot") is False and not task.supports_direct:
            raise ValueError(
                f"{self.name}:cot=false needs a direct-answer prompt, which task {task.name!r} does not have"
            )

    def execute(
        self, backend: Backend, task: Task, problems: list[Problem], ctx: RunContext
    ) -> list[Outcome]:
        """:meth:`run` with the request knobs set on every request (what the runner calls).

        Raises ``ValueError`` before any call when a request knob is set and ``backend`` does
        not send it (its :attr:`~profiling.backends.Backend.request_options`).
        """
        options = {
            k: self.params[k] for k in REQUEST_KNOBS if self.params.get(k, REQUEST_KNOBS[k].default) != "none"
        }
        if not options:
            return self.run(backend, task, problems, ctx)
        missing = sorted(set(options) - set(backend.request_options))
        if missing:
            raise ValueError(
                f"strategy {self.spec}: knob {missing[0]!r} needs a backend that sends it (openai); "
                f"the {backend.name or type(backend).__name__} backend does not"
            )
        return self.run(_WithOptions(backend, options), task, problems, ctx)

    @abstractmethod
    def run(self, backend: Backend, task: Task, problems: list[Problem], ctx: RunContext) -> list[Outcome]:
        """Run on a batch of problems; return every row of every problem.

        A problem's rows are complete when this returns (a unit is never split).
        """

    # ---- helpers for subclasses -----------------------------------------------------------
    @staticmethod
    def outcome(
        task: Task,
        problem: Problem,
        sample_idx: int,
        text: str,
        cost: Cost,
        logprob: float | None = None,
        reward: float | None = None,
    ) -> Outcome:
        """Extract and verify the answer of ``text`` and wrap it as an :class:`Outcome`."""
        answer = task.extract_answer(text)
        return Outcome(
            problem, sample_idx, text, answer, bool(task.is_correct(answer, problem)), cost, logprob, reward
        )


class _WithOptions(Backend):
    """``backend`` with request fields set on every request (:meth:`Strategy.execute`)."""

    def __init__(self, backend: Backend, options: Mapping[str, Any]) -> None:
        self.backend, self.options = backend, dict(options)
        self.name, self.model_name = backend.name, backend.model_name
        self.request_options = backend.request_options

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return self.backend.generate([replace(r, **self.options) for r in requests])

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rng_for(seed: int) -> np.random.Generator:
    """A numpy Generator for one unit's seed."""
    return np.random.default_rng(seed)


def split_steps(text: str, delimiter: str) -> list[str]:
    """Steps of a chain: ``text`` split on ``delimiter`` (a trailing delimiter adds no step).

    Examples
    --------
    >>> split_steps("1+2=3\\n3+4=7\\n", "\\n")
    ['1+2=3', '3+4=7']
    """
    parts = text.split(delimiter)
    if parts and parts[-1] == "":
        parts.pop()
    return parts
