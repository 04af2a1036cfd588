"""Names and tolerances the whole planner shares: cost keys, option-table columns, the
choices a request may make, and the budget and accuracy tolerances. Stdlib only, so any
module (and the CLI's help) can import it for free.

The option table (:meth:`planner.space.OptionSpace.table`, the searches' ``ranked`` and
``evaluated`` frames) has one row per option: :data:`ARM`, :data:`MODEL`,
:data:`ARCHITECTURE`, :data:`STRATEGY`, :data:`KNOB` (the compute knob's name),
:data:`KNOB_VALUE` (its value), :data:`ACCURACY` with :data:`ACCURACY_LO` /
:data:`ACCURACY_HI`, :data:`SOURCE` (``measured`` / ``fitted`` / ``extrapolated``) and its
:data:`SOURCE_RANK`, :data:`SIMULATED`, and one column per cost key (:data:`COST_KEYS` and
:data:`MEMORY_BYTES`), plus :data:`TP` when priced on a GPU.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "COST_KEYS",
    "MEMORY_BYTES",
    "TP",
    "BUDGET_KEYS",
    "ARM",
    "MODEL",
    "ARCHITECTURE",
    "STRATEGY",
    "KNOB",
    "KNOB_VALUE",
    "ACCURACY",
    "ACCURACY_LO",
    "ACCURACY_HI",
    "SOURCE",
    "SOURCE_RANK",
    "SIMULATED",
    "SOURCES",
    "RISKS",
    "OBJECTIVES",
    "METHODS",
    "VERIFIERS",
    "DEFAULT_HARDWARE",
    "BUDGET_RTOL",
    "ACCURACY_TOL",
    "within_budget",
    "check_choice",
]

#: per-query costs of an option, in the order tables and the recommendation JSON show them
#: (``effective_flops``: Kinetics' FLOPs + bytes moved x the GPU's FLOP/byte; ``kv_bytes``: the
#: query's peak KV cache)
COST_KEYS = ("flops", "effective_flops", "tokens", "latency_s", "usd", "kv_bytes")
#: GPU memory an option needs per GPU of its replica (weights plus the KV of the serving batch,
#: over ``tp`` GPUs): a limit, not a reported cost
MEMORY_BYTES = "memory_bytes"
#: tensor-parallel degree (GPUs per replica) an option is priced at
TP = "tp"
#: what a budget may limit
BUDGET_KEYS = (*COST_KEYS, MEMORY_BYTES)

# ---- option-table columns -------------------------------------------------------------------
ARM = "arm"  # the arm's key (model|strategy|fixed knobs)
MODEL = "model"
ARCHITECTURE = "architecture"  # dense | moe
STRATEGY = "strategy"  # the deployable strategy (majority, best_of, greedy, beam, ...)
KNOB = "knob"  # name of the arm's compute knob (n, width, rounds, tokens; None for greedy)
KNOB_VALUE = "knob_value"  # its value for this option
ACCURACY = "accuracy"
ACCURACY_LO = "accuracy_lo"
ACCURACY_HI = "accuracy_hi"
SOURCE = "source"  # where the accuracy comes from: one of SOURCES
SOURCE_RANK = "source_rank"  # index in SOURCES (ties go to the lower)
SIMULATED = "simulated"  # why the option needs an oracle or simulated scorer ("" if it does not)

#: where a predicted accuracy comes from, least to most speculative
SOURCES = ("measured", "fitted", "extrapolated")

# ---- what a request may choose ----------------------------------------------------------------
#: risk attitude -> the option-table column maximized
RISKS = {"expected": ACCURACY, "conservative": ACCURACY_LO}
#: what ``plan`` optimizes: the best option, or also the accuracy-cost Pareto front
OBJECTIVES = ("accuracy", "pareto")
#: how the single-objective search runs
METHODS = ("auto", "exhaustive", "optuna")
#: what a deployment checks answers with: ``none`` (best-of-n ranks by a reward model or log-prob,
#: as profiled) or ``exact`` (an exact checker: pass@k curves become ``verified`` options)
VERIFIERS = ("none", "exact")
#: the catalog accelerator options are priced on when neither a GPU nor an API is named
DEFAULT_HARDWARE = "h100"

# ---- tolerances -------------------------------------------------------------------------------
#: a cost within this relative distance above its limit is within budget (floating-point sums)
BUDGET_RTOL = 1e-12
#: accuracies closer than this are tied (ties go to the less speculative source, then the cheaper)
ACCURACY_TOL = 1e-12


def within_budget(cost, limit):
    """``cost <= limit`` up to :data:`BUDGET_RTOL` (numbers or numpy arrays).

    Examples
    --------
    >>> within_budget(1.0 + 1e-15, 1.0), within_budget(1.001, 1.0)
    (True, False)
    """
    return cost <= limit * (1 + BUDGET_RTOL)


def check_choice(what: str, value: object, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else a ValueError naming ``what`` and the choices.

    Examples
    --------
    >>> check_choice("risk", "expected", RISKS)
    'expected'
    >>> check_choice("risk", "bold", RISKS)
    Traceback (most recent call last):
    ...
    ValueError: risk must be one of expected, conservative; got 'bold'
    """
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return str(value)
