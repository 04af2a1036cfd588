"""Test-time compute strategies, one module per family, all over the backend interface.

========  ==========================================================================
name      what it does (knobs, defaults in each module)
========  ==========================================================================
greedy    one greedy completion per question (``cot``)
pool      n samples in one batched request (``n``, ``temperature``, ``top_p``, ``cot``,
          ``reward``): the input of pass@k, best-of-N, majority and weighted vote
beam      step-level beam search with a process reward (``width``, ``expansions``,
          ``max_steps``, ``prm``)
mcts      Monte Carlo tree search over steps: PUCT on process-reward values, rollouts to an
          answer, backup (``simulations``, ``expansions``, ``c_puct``, ``max_steps``, ``prm``)
refine    sequential self-refinement from the first rejected step (``rounds``, ``verifier``)
budget    budget forcing of the scratchpad (``tokens``, ``answer_tokens``)
hybrid    a pool of refined chains (``n``, ``rounds``)
========  ==========================================================================

A spec is ``NAME:key=value,...`` (:func:`profiling.strategy_spec.parse_strategy_spec`).
:func:`get_strategy` builds one strategy; :func:`expand_spec` also accepts alternatives
``key=a|b|c`` and returns one strategy per combination. Adding a strategy is one new module
plus one line in :data:`STRATEGIES`.
"""

from __future__ import annotations

import itertools

from ..strategy_spec import StrategySpec, parse_strategy_spec, parse_value
from ._base import Cost, Knob, Outcome, RunContext, Strategy, StrategyDescriptor, WorkloadShape, derive_seed
from .beam import BeamSearch
from .budget import BudgetForcing
from .greedy import Greedy
from .hybrid import Hybrid
from .mcts import MCTS
from .pool import Pool
from .refine import Refine
from .rewards import get_reward, register_reward

__all__ = [
    "STRATEGIES",
    "DESCRIPTORS",
    "Strategy",
    "StrategyDescriptor",
    "WorkloadShape",
    "get_descriptor",
    "Knob",
    "Cost",
    "Outcome",
    "RunContext",
    "derive_seed",
    "get_strategy",
    "expand_spec",
    "expand_specs",
    "describe_strategies",
    "get_reward",
    "register_reward",
]

#: registry: strategy name -> class
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Greedy, Pool, BeamSearch, Refine, BudgetForcing, Hybrid, MCTS)
}
#: strategy name -> its descriptor (knobs, compute knob, workload shape): what the profiler,
#: the cost model and the planner read
DESCRIPTORS: dict[str, StrategyDescriptor] = {name: cls.descriptor for name, cls in STRATEGIES.items()}


def get_descriptor(name: str) -> StrategyDescriptor:
    """The descriptor of strategy ``name`` (ValueError listing the known ones otherwise).

    Examples
    --------
    >>> get_descriptor("beam").compute_knob, get_descriptor("pool").knobs["n"].default
    ('width', 16)
    """
    try:
        return DESCRIPTORS[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(DESCRIPTORS)}") from None


def _as_spec(spec: str | StrategySpec) -> StrategySpec:
    return spec if isinstance(spec, StrategySpec) else parse_strategy_spec(spec)


def get_strategy(spec: str | StrategySpec) -> Strategy:
    """The strategy named by ``spec``, knobs validated and defaults filled in.

    Raises ``ValueError`` listing the valid strategies for an unknown name and the valid
    knobs for an unknown knob.

    Examples
    --------
    >>> get_strategy("pool:n=8").config["n"]
    8
    >>> get_strategy("pool:n=8").config_json()
    '{"cot": true, "n": 8, "reward": "none", "temperature": 1.0, "top_p": 1.0}'
    """
    spec = _as_spec(spec)
    cls = STRATEGIES.get(spec.name)
    if cls is None:
        raise ValueError(f"unknown strategy {spec.name!r}; valid strategies: {', '.join(STRATEGIES)}")
    alternatives = [k for k, v in spec.knobs.items() if isinstance(v, str) and "|" in v]
    if alternatives:
        raise ValueError(
            f"strategy spec {spec}: knob {alternatives[0]!r} has alternatives; use expand_spec()"
        )
    return cls(**spec.knobs)


def expand_spec(spec: str | StrategySpec) -> list[Strategy]:
    """Strategies of a spec whose knobs may list alternatives ``a|b|c`` (Cartesian product).

    Examples
    --------
    >>> [s.params["tokens"] for s in expand_spec("budget:tokens=16|32|64")]
    [16, 32, 64]
    """
    spec = _as_spec(spec)
    options = []
    for key, value in spec.knobs.items():
        if isinstance(value, str) and "|" in value:
            parts = [p.strip() for p in value.split("|")]
            if any(not p for p in parts):
                raise ValueError(f"strategy spec {spec}: empty alternative in {key}={value}")
            options.append([(key, parse_value(p)) for p in parts])
        else:
            options.append([(key, value)])
    return [get_strategy(StrategySpec(spec.name, dict(combo))) for combo in itertools.product(*options)]


def expand_specs(specs: list[str | StrategySpec]) -> list[Strategy]:
    """:func:`expand_spec` over several specs; duplicates (same name and config) kept once, in order."""
    seen, out = set(), []
    for spec in specs:
        for strategy in expand_spec(spec):
            key = (strategy.name, strategy.config_json())
            if key not in seen:
                seen.add(key)
                out.append(strategy)
    return out


def describe_strategies() -> str:
    """Every strategy with its knobs and defaults, one per line (for help and error texts)."""
    lines = []
    for name, cls in STRATEGIES.items():
        knobs = ", ".join(f"{k}={_fmt(v.default)}" for k, v in cls.KNOBS.items())
        lines.append(f"{name}: {cls.summary} [{knobs}]")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
