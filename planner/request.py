"""One request for a plan, validated once: from Python, the command line or a TOML file.

:class:`PlanRequest` holds everything :func:`planner.recommend.plan` and ``ttc recommend``
are asked: per-query budgets, the difficulty (a label, ``all``, ``auto`` or a mix), where to
price (a catalog GPU or a hosted API), the risk attitude, the objective, the search settings,
which models to consider and how to load the profile. Its constructor checks every field, so
a bad request fails before anything is loaded, with one line naming the field.

A TOML file uses the long option names of ``ttc recommend`` (dashes or underscores) and a
``[budget]`` table of cost keys; relative paths are relative to the file::

    profile = "runs/lab"          # the samples folder
    difficulty = "4"              # or mix = "1:0.2,3:0.5,5:0.3", or a [mix] table
    gpu = "h100"
    risk = "conservative"
    verifier = "exact"            # an exact answer checker: best-of-n `verified` is offered
    assume-prompt-tokens = 256    # only for questions whose data has no lengths (stated in the output)
    assume-completion-tokens = 256
    [budget]
    flops = 1e13
    latency_s = 5
    [checker_cost]                # per checked sample (default: free, stated as an assumption)
    usd = 2e-6

``ttc recommend --config plan.toml`` reads it; flags given on the command line override it
(:meth:`PlanRequest.replace`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .constants import (
    BUDGET_KEYS,
    COST_KEYS,
    DEFAULT_HARDWARE,
    METHODS,
    OBJECTIVES,
    RISKS,
    VERIFIERS,
    check_choice,
)
from .costs.serving import DEFAULT_CONCURRENCY
from .search.budget import Budget
from .space.assumed import AssumedLengths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["PlanRequest", "DEFAULT_HARDWARE"]

#: TOML / command-line names that differ from the field names
_ALIASES = {
    "gpu": "hardware",
    "trials": "n_trials",
    "allow_simulated": "include_simulated",
    "model": "models",
    "extra_model": "extra_models",
    "model_spec": "model_specs",
}


@dataclass(frozen=True)
class PlanRequest:
    """What to plan for (module docstring). Every field is checked on construction.

    Parameters
    ----------
    budget : mapping
        Per-query limits on cost keys (``flops``, ``effective_flops``, ``tokens``, ``usd``,
        ``latency_s``, ``kv_bytes``, ``memory_bytes``); at least one.
    difficulty : str or None
        A difficulty label, ``"all"``/None (every question), a mix ``"1:0.2,3:0.8"`` (adds a
        per-difficulty allocation) or ``"auto"`` (an adaptive policy).
    hardware, api : str or None
        Catalog names of the accelerator or the hosted API to price on (one of them; with
        neither, :data:`DEFAULT_HARDWARE`).
    concurrency, tp : int
        Sequences one replica decodes per step (default 64, :mod:`planner.costs.serving`);
        GPUs per replica (None, the default: the fewest that hold each option).
    verifier : {"none", "exact"}
        ``"exact"``: the deployment checks answers exactly (an answer checker, unit tests), so
        best-of-n with the checker (strategy ``verified``, accuracy pass@n) is offered.
    checker_cost : mapping
        Cost of the exact checker per checked sample, by cost key (``flops``, ``usd``,
        ``latency_s``, ...); default nothing (an assumption the recommendation states).
    risk, objective, method : str
        See :data:`planner.constants.RISKS`, :data:`~planner.constants.OBJECTIVES`,
        :data:`~planner.constants.METHODS`.
    storage, n_trials, seed
        Optuna storage URL (``sqlite:///x.db``, ``journal:PATH``), trials per worker, seed.
    include_simulated : bool
        Also consider strategies scored by an oracle or a simulated verifier.
    models : tuple of str
        Consider only these models (empty: all).
    extra_models, model_specs : mapping name -> catalog name or config path
        Unprofiled models of a profiled family; specs of profiled models (imported samples).
    catalog_file : str or None
        A user TOML catalog.
    profile, n_boot, use_cache
        The samples folder and how its curves are computed (``ttc recommend``).
    assume_prompt_tokens, assume_completion_tokens : int or None
        Per-sample prompt and generated tokens ASSUMED for questions whose data has no lengths
        (published counts rarely have them); measured lengths are never overridden, and the
        recommendation states what was assumed (:mod:`planner.space.assumed`).

    Examples
    --------
    >>> PlanRequest({"flops": 1e13}, difficulty="4").to_json()
    {'budget': {'flops': 10000000000000.0}, 'difficulty': '4', 'hardware': 'h100'}
    >>> PlanRequest({"flops": 1e13}, risk="bold")
    Traceback (most recent call last):
    ...
    ValueError: risk must be one of expected, conservative; got 'bold'
    """

    budget: Mapping[str, float]
    difficulty: str | None = None
    hardware: str | None = None
    api: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    tp: int | None = None
    verifier: str = "none"
    checker_cost: Mapping[str, float] = field(default_factory=dict)
    risk: str = "expected"
    objective: str = "accuracy"
    method: str = "auto"
    storage: str | None = None
    n_trials: int = 60
    seed: int = 0
    include_simulated: bool = False
    models: tuple[str, ...] = ()
    extra_models: Mapping[str, str] = field(default_factory=dict)
    model_specs: Mapping[str, str] = field(default_factory=dict)
    catalog_file: str | None = None
    profile: str | None = None
    n_boot: int = 200
    use_cache: bool = True
    assume_prompt_tokens: int | None = None
    assume_completion_tokens: int | None = None

    def __post_init__(self) -> None:
        if not self.budget:
            raise ValueError(f"give at least one budget ({', '.join(BUDGET_KEYS)})")
        limits = {k: _number(f"budget {k}", v) for k, v in self.budget.items()}
        Budget(limits)  # checks names and values
        object.__setattr__(self, "budget", limits)
        check_choice("risk", self.risk, RISKS)
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("method", self.method, METHODS)
        object.__setattr__(self, "verifier", check_choice("verifier", self.verifier or "none", VERIFIERS))
        if not isinstance(self.checker_cost, Mapping):
            raise ValueError(f"checker_cost must map cost keys to numbers, got {self.checker_cost!r}")
        checker = {k: _number(f"checker_cost {k}", v) for k, v in self.checker_cost.items()}
        for k, v in checker.items():
            if k not in COST_KEYS or k == "kv_bytes":
                keys = ", ".join(c for c in COST_KEYS if c != "kv_bytes")
                raise ValueError(f"checker_cost: unknown key {k!r}; give {keys}")
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"checker_cost {k} must be a finite number >= 0, got {v!r}")
        if checker and self.verifier != "exact":
            raise ValueError("checker_cost is the cost of an exact checker: give verifier = 'exact' too")
        object.__setattr__(self, "checker_cost", checker)
        if self.hardware and self.api:
            raise ValueError("give a GPU (hardware) or an API to price on, not both")
        for name, minimum in (("concurrency", 1), ("n_trials", 1), ("seed", 0), ("n_boot", 0)):
            _integer(name, getattr(self, name), minimum)
        if self.tp is not None:
            _integer("tp", self.tp, 1)
        if self.difficulty is not None:
            object.__setattr__(self, "difficulty", str(self.difficulty))
        models = (self.models,) if isinstance(self.models, str) else self.models
        object.__setattr__(self, "models", tuple(str(m) for m in models or ()))
        for name in ("extra_models", "model_specs"):
            pairs = getattr(self, name) or {}
            if not isinstance(pairs, Mapping) or not all(isinstance(v, str) and v for v in pairs.values()):
                raise ValueError(
                    f"{name} must map model names to catalog names or config paths, got {pairs!r}"
                )
            object.__setattr__(self, name, {str(k): v for k, v in pairs.items()})
        lengths = AssumedLengths(self.assume_prompt_tokens, self.assume_completion_tokens)
        object.__setattr__(self, "assume_prompt_tokens", lengths.prompt_tokens)
        object.__setattr__(self, "assume_completion_tokens", lengths.completion_tokens)

    # ---- derived ------------------------------------------------------------------------------
    @property
    def gpu(self) -> str | None:
        """The accelerator options are priced on: the one named, else :data:`DEFAULT_HARDWARE`
        unless an API was named."""
        return self.hardware or (None if self.api else DEFAULT_HARDWARE)

    @property
    def assumed_lengths(self) -> AssumedLengths:
        """The lengths assumed for questions without measured ones (empty: none)."""
        return AssumedLengths(self.assume_prompt_tokens, self.assume_completion_tokens)

    def budget_limits(self) -> Budget:
        return Budget(dict(self.budget))

    def to_json(self) -> dict[str, Any]:
        """The ``request`` object of the recommendation JSON (docs/design.md)."""
        out: dict[str, Any] = {
            "budget": {k: float(v) for k, v in self.budget.items()},
            "difficulty": str(self.difficulty or "all"),
        }
        if self.gpu:
            out["hardware"] = self.gpu
        if self.api:
            out["api"] = self.api
        if self.concurrency != DEFAULT_CONCURRENCY:
            out["concurrency"] = self.concurrency
        if self.tp is not None:
            out["tp"] = self.tp
        if self.verifier != "none":
            out["verifier"] = self.verifier
        if self.risk != "expected":
            out["risk"] = self.risk
        if self.models:
            out["models"] = list(self.models)
        for name in ("assume_prompt_tokens", "assume_completion_tokens"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    # ---- building ---------------------------------------------------------------------------
    def replace(self, **changes: Any) -> PlanRequest:
        """A copy with ``changes`` applied (None values are skipped: flags not given on the
        command line do not override the file), validated again."""
        changes = {_field(k, "replace()"): v for k, v in changes.items() if v is not None}
        for name in ("budget", "checker_cost"):
            if name in changes:
                changes[name] = {**getattr(self, name), **changes[name]}
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "request") -> PlanRequest:
        """A request from a mapping of TOML / command-line names (module docstring); errors
        name ``source`` and the field."""
        kw: dict[str, Any] = {}
        for key, value in data.items():
            name = key.replace("-", "_")
            if name == "mix":
                if "difficulty" in data:
                    raise ValueError(f"{source}: give difficulty or mix, not both")
                name, value = "difficulty", _mix_text(value, source)
            elif name == "no_cache":
                name, value = "use_cache", not value
            kw[_field(name, source)] = value
        if "budget" not in kw:
            raise ValueError(f"{source}: missing [budget] table (e.g. flops = 1e13)")
        if not isinstance(kw["budget"], Mapping):
            raise ValueError(f"{source}: field 'budget' must be a table of cost keys, got {kw['budget']!r}")
        try:
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> PlanRequest:
        """A request from a TOML file (module docstring); paths in it are relative to the file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the plan file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
        for key in ("profile", "catalog_file", "catalog-file"):
            if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
                data[key] = str(path.parent / data[key])
        return cls.from_mapping(data, str(path))


def _field(name: str, source: str) -> str:
    name = _ALIASES.get(name, name)
    valid = {f.name for f in dataclasses.fields(PlanRequest)}
    if name not in valid:
        known = sorted((valid - set(_ALIASES.values())) | set(_ALIASES) | {"mix", "no_cache"})
        raise ValueError(f"{source}: unknown field {name!r}; known: {', '.join(known)}")
    return name


def _mix_text(value: Any, source: str) -> str:
    """A mix as ``LABEL:WEIGHT,...`` from a string or a table."""
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    if isinstance(value, str):
        return value
    raise ValueError(f"{source}: field 'mix' must be LABEL:WEIGHT,... or a table, got {value!r}")


def _number(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
