"""Arms and options: every (model, strategy, knobs) the planner may recommend.

An *arm* is one curve family the planner can move along: a model, a deployable strategy, the
knobs held fixed (temperature, beam expansions, ...) and one compute knob (``n`` samples,
beam ``width``, refinement ``rounds``, thinking ``tokens``). An *option* is an arm plus a
value of its compute knob. Arms are read off the curves table (``fitting/schema.py``):

* a curve with several ``k`` (a pool of samples, estimated for every k) is a pool-like arm:
  ``majority@k`` -> strategy ``majority``, ``best_of@k`` -> ``best_of``, ``weighted@k`` ->
  ``weighted``, with knob ``n = k``. ``pass@k`` needs something that recognizes a right
  sample: it becomes an option only for a deployment that declares an exact checker
  (``verifier="exact"``, ``--verifier exact``: math with an answer checker, code with unit
  tests), as strategy :data:`VERIFIED` (best-of-n with the exact checker, whose accuracy at
  n is pass@n); otherwise it is never offered.
* curves with one point each (greedy, beam, refine, budget forcing) are grouped across
  configs that differ only in the strategy's compute knob; the knob value is the x axis.

A strategy whose reward, verifier or process reward is the task's oracle or a simulated
(noisy-oracle) scorer is *simulated*: it needs a scorer no deployment has. Such options are
left out unless asked for, and always say ``simulated`` in their label.

Each arm keeps the strategy that was profiled (``profiled_strategy``: ``pool``, ``beam``,
...), whose descriptor (:data:`profiling.strategies.DESCRIPTORS`) names the compute knob and
prices the arm, beside the strategy it deploys (``strategy``: ``majority``, ``best_of``,
``beam``, ...). The value of an option is its predicted accuracy (:mod:`planner.space.predict`)
and its cost (:mod:`planner.space.curve` for the measured usage, :mod:`planner.space.pricing`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fitting import schema as S
from profiling.strategies import DESCRIPTORS, StrategyDescriptor, WorkloadShape

from ..constants import ACCURACY, ACCURACY_HI, ACCURACY_LO, KNOB_VALUE, VERIFIERS, check_choice
from .predict import MAX_EXTRAPOLATION

__all__ = [
    "Arm",
    "ArmSource",
    "VERIFIED",
    "Option",
    "POOL_METRICS",
    "arm_display_knobs",
    "arms_from_curves",
    "knob_grid",
    "simulated_reason",
    "single_knob_value",
]

#: metric of a pool curve -> deployable strategy name (None: not deployable without an exact checker)
POOL_METRICS = {"majority@k": "majority", "best_of@k": "best_of", "weighted@k": "weighted", "pass@k": None}
#: the strategy pass@k deploys as when the deployment has an exact checker: sample n, check
#: each, return one that passes (accuracy at n = pass@n)
VERIFIED = "verified"

#: config entries that are labels, not knobs
_LABEL_KEYS = ("reward_source", "prm_source", "verifier_source")
#: knobs that only matter for scored selection (dropped from majority arms)
_SCORER_KNOBS = ("reward", "reward_source")


def simulated_reason(config: Mapping[str, object], metric: str = "") -> str | None:
    """Why a config needs a scorer no deployment has (oracle or simulated), or None.

    Examples
    --------
    >>> simulated_reason({"reward_source": "oracle-step-checker"}, "best_of@k")
    'reward: oracle-step-checker'
    >>> simulated_reason({"reward_source": "oracle-step-checker"}, "majority@k") is None
    True
    """
    for key in _LABEL_KEYS:
        if key == "reward_source" and metric.startswith(("majority", "pass")):
            continue  # neither a vote nor an exact checker reads the reward
        value = str(config.get(key, ""))
        if value.startswith(("oracle", "simulated")):
            return f"{key.removesuffix('_source')}: {value}"
    return None


@dataclass(frozen=True)
class Arm:
    """One curve family the planner moves along by its compute knob.

    ``strategy`` is what is deployed (``majority``, ``best_of``, ``beam``...),
    ``profiled_strategy`` the strategy the profiler ran (``pool``, ``beam``...; its
    descriptor prices the arm) and ``metric`` the curve that backs it; ``fixed`` holds the
    other knobs as sorted ``(name, value)`` pairs.
    """

    model: str
    strategy: str
    knob: str | None
    fixed: tuple[tuple[str, object], ...]
    profiled_strategy: str
    metric: str
    architecture: str = "dense"
    simulated: str | None = None

    @property
    def descriptor(self) -> StrategyDescriptor | None:
        """The descriptor of the profiled strategy (None for a strategy it does not know, e.g. an
        imported one)."""
        return DESCRIPTORS.get(self.profiled_strategy)

    def profiled_knobs(self, value: float | None) -> dict[str, object]:
        """The profiled strategy's knobs at compute-knob ``value`` (the planner's x): the fixed
        knobs its descriptor knows, and the compute knob (x minus the descriptor's offset)."""
        desc = self.descriptor
        if desc is None:
            raise ValueError(f"no strategy descriptor for {self.profiled_strategy!r} (arm {self.key})")
        known = {*desc.knobs, *desc.assumptions, *desc.aliases}
        out = {k: v for k, v in self.fixed if k in known}
        if self.knob is not None and value is not None:
            out[self.knob] = int(round(float(value) - desc.knob_offset))
        return out

    def workload_shape(self, value: float | None) -> WorkloadShape:
        """What one execution at compute-knob ``value`` consists of (the descriptor's shape)."""
        return self.descriptor.workload_shape(self.profiled_knobs(value), self.key)

    @property
    def key(self) -> str:
        """A stable, readable id of the arm (used as an Optuna category)."""
        fixed = ",".join(f"{k}={v}" for k, v in self.fixed)
        return f"{self.model}|{self.strategy}" + (f"|{fixed}" if fixed else "")

    def knobs(self, value: float | None, show: Iterable[str] = ()) -> dict[str, object]:
        """The option's knobs: the compute knob's value, the fixed knobs named in ``show``, and
        for best-of and weighted vote the ``score`` that ranks the samples (reward or logprob)."""
        out: dict[str, object] = {}
        if self.knob is not None and value is not None:
            out[self.knob] = int(value) if float(value).is_integer() else float(value)
        out.update({k: v for k, v in self.fixed if k in set(show) or k == "score"})
        return out


@dataclass(frozen=True)
class Option:
    """An arm at one value of its compute knob."""

    arm: Arm
    value: float

    @property
    def model(self) -> str:
        return self.arm.model

    def choice(self, show: Iterable[str] = ()) -> dict[str, object]:
        """The ``choice`` object of the recommendation JSON (docs/design.md)."""
        out = {
            "model": self.arm.model,
            "architecture": self.arm.architecture,
            "strategy": self.arm.strategy,
            "knobs": self.arm.knobs(self.value, show),
        }
        if self.arm.strategy == VERIFIED:
            out["verifier"] = "exact"
        if self.arm.simulated:
            out["simulated"] = self.arm.simulated
        return out

    def label(self) -> str:
        knobs = ",".join(f"{k}={v}" for k, v in self.arm.knobs(self.value).items())
        sim = " [simulated]" if self.arm.simulated else ""
        checker = " [exact checker]" if self.arm.strategy == VERIFIED else ""
        return f"{self.arm.model} {self.arm.strategy}" + (f":{knobs}" if knobs else "") + checker + sim


def knob_grid(
    measured: Iterable[float],
    *,
    integer: bool = True,
    can_extrapolate: bool = True,
    max_factor: float = MAX_EXTRAPOLATION,
    density: str = "coarse",
) -> np.ndarray:
    """The discretized values of a compute knob the planner considers.

    ``coarse``: every profiled value, geometric midpoints between neighbouring profiled
    values, and beyond the largest profiled value ``x_max`` the values ``x_max * 2**(j/2)``
    up to ``max_factor * x_max`` (when a law may extrapolate). ``fine``: every integer from
    the smallest profiled value to the limit (integer knobs only; for benchmarks and large
    spaces).

    Examples
    --------
    >>> knob_grid([1, 2, 4, 8]).tolist()
    [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 16.0, 23.0, 32.0]
    >>> knob_grid([1, 2, 4], can_extrapolate=False).tolist()
    [1.0, 2.0, 3.0, 4.0]
    """
    xs = np.unique(np.asarray(list(measured), dtype=float))
    if len(xs) == 0:
        return xs
    limit = xs[-1] * (max_factor if can_extrapolate else 1.0)
    if density == "fine" and integer:
        return np.arange(math.ceil(xs[0]), math.floor(limit) + 1, dtype=float)
    if density not in ("coarse", "fine"):
        raise ValueError(f"density must be 'coarse' or 'fine', got {density!r}")
    vals = set(xs.tolist())
    vals.update(np.sqrt(xs[:-1] * xs[1:]).tolist())
    if can_extrapolate:
        j = 1
        while xs[-1] * 2 ** (j / 2) <= limit * (1 + 1e-9):
            vals.add(xs[-1] * 2 ** (j / 2))
            j += 1
    out = np.array(sorted(vals))
    if integer:
        out = np.unique(np.round(out))
        out = out[(out >= xs[0]) & (out <= limit)]
    return out


# ---- building arms from the curves table -------------------------------------------------------
def _config(text: str) -> dict[str, object]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        raise ValueError(f"curves table: config {text!r} is not a JSON object") from None
    return value if isinstance(value, dict) else {}


def _points(df: pd.DataFrame, x: pd.Series) -> pd.DataFrame:
    """An arm's profiled points: knob value, measured accuracy and interval, mean costs."""
    cols = {
        KNOB_VALUE: x.to_numpy(float),
        ACCURACY: df[S.ACCURACY].to_numpy(float),
        ACCURACY_LO: df[S.ACCURACY_LO].to_numpy(float)
        if S.ACCURACY_LO in df
        else df[S.ACCURACY].to_numpy(float),
        ACCURACY_HI: df[S.ACCURACY_HI].to_numpy(float)
        if S.ACCURACY_HI in df
        else df[S.ACCURACY].to_numpy(float),
        S.N_QUESTIONS: df[S.N_QUESTIONS].to_numpy(float) if S.N_QUESTIONS in df else np.nan,
    }
    for c in (
        S.MEAN_PROMPT_TOKENS,
        S.MEAN_COMPLETION_TOKENS,
        S.MEAN_TOKENS,
        S.MEAN_LATENCY_S,
        S.MEAN_KV_BYTES,
    ):
        cols[c] = df[c].to_numpy(float) if c in df else np.nan
    out = pd.DataFrame(cols)
    return (
        out.groupby(KNOB_VALUE, as_index=False)
        .mean(numeric_only=True)
        .sort_values(KNOB_VALUE)
        .reset_index(drop=True)
    )


@dataclass
class ArmSource:
    """One arm in one difficulty bin, as read off the curves table: its profiled points and
    the curves behind them (``curve_keys``: (strategy, config, metric, difficulty) each, at
    knob value ``curve_x``)."""

    arm: Arm
    difficulty: str
    points: pd.DataFrame
    curve_keys: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: knob value of each curve (None: a pool, every k)
    curve_x: list[float | None] = field(default_factory=list)


def single_knob_value(strategy: str, config: Mapping[str, object]) -> tuple[str | None, float]:
    """The compute knob of a one-execution strategy and the planner's x for one config: the
    config's value of the descriptor's compute knob plus the descriptor's offset (x = 1 for a
    strategy without one, e.g. greedy).

    Examples
    --------
    >>> single_knob_value("budget", {"tokens": 32}), single_knob_value("greedy", {"cot": True})
    (('tokens', 32.0), (None, 1.0))
    """
    desc = DESCRIPTORS.get(strategy)
    knob = desc.compute_knob if desc is not None else None
    if knob is None:
        return None, 1.0
    if knob not in config:
        raise ValueError(
            f"curves table: {strategy} config {json.dumps(dict(config), sort_keys=True)} has no compute knob {knob!r}"
        )
    return knob, float(config[knob]) + desc.knob_offset


def arms_from_curves(
    curves: pd.DataFrame,
    *,
    architectures: Mapping[str, str] | None = None,
    include_simulated: bool = False,
    verifier: str | None = None,
) -> tuple[list[ArmSource], list[str]]:
    """Group the curves table into arms, one entry per (arm, difficulty).

    Returns the arm sources and notes on what was left out (pass@k without an exact checker,
    simulated scorers, duplicate pools). ``architectures`` maps a model to ``"dense"`` or
    ``"moe"``; ``verifier="exact"`` makes pass@k curves :data:`VERIFIED` arms.
    """
    verifier = check_choice("verifier", verifier or "none", VERIFIERS)
    need = [S.MODEL, S.STRATEGY, S.CONFIG, S.DIFFICULTY, S.METRIC, S.K, S.ACCURACY]
    missing = [c for c in need if c not in curves.columns]
    if missing:
        raise ValueError(f"curves table: missing column(s) {missing}; have {list(curves.columns)}")
    architectures = architectures or {}
    notes: list[str] = []
    found: dict[tuple, ArmSource] = {}
    singles: dict[tuple, list] = {}
    for (model, strategy, config, metric, diff), df in curves.groupby(
        [S.MODEL, S.STRATEGY, S.CONFIG, S.METRIC, S.DIFFICULTY], sort=True
    ):
        cfg = _config(config)
        arch = architectures.get(model, "dense")
        if metric in POOL_METRICS and POOL_METRICS[metric] is None and verifier != "exact":
            notes.append(
                "pass@k curves: offered only with an exact checker (--verifier exact: best-of-n verified)"
            )
            continue
        sim = simulated_reason(cfg, metric)
        if sim and not include_simulated:
            notes.append(
                f"{model} {strategy} ({metric}): left out, simulated {sim} (--allow-simulated keeps it)"
            )
            continue
        # a pool-like curve: one arm, x = k, however short its pools (a curve cut to k = 1 is
        # still a pool; the config's n is the pool it was profiled with, not a point of it)
        if df[S.K].nunique() > 1 or metric in POOL_METRICS:
            stem = POOL_METRICS.get(metric) or (VERIFIED if metric == "pass@k" else metric.split("@")[0])
            name = stem if strategy == "pool" else f"{strategy}+{stem}"
            drop = {"n", *_LABEL_KEYS} | (set(_SCORER_KNOBS) if stem in ("majority", VERIFIED) else set())
            fixed = {k: v for k, v in cfg.items() if k not in drop}
            if stem in ("best_of", "weighted") and S.SCORE_SOURCE in df and df[S.SCORE_SOURCE].notna().any():
                fixed["score"] = str(df[S.SCORE_SOURCE].dropna().iloc[0])  # what ranks the samples
            fixed = tuple(sorted(fixed.items()))
            arm = Arm(model, name, "n", fixed, strategy, metric, arch, sim)
            pts = _points(df, df[S.K])
            if stem != VERIFIED:
                notes += _short_pools_note(arm, diff, pts)
            key = (arm, diff)
            prev = found.get(key)
            if prev is not None:
                if prev.points[KNOB_VALUE].max() >= pts[KNOB_VALUE].max():
                    continue  # keep the larger pool
            found[key] = ArmSource(arm, diff, pts, [(strategy, config, metric, diff)], [None])
        else:
            knob, x = single_knob_value(strategy, cfg)
            fixed = tuple(sorted((k, v) for k, v in cfg.items() if k != knob and k not in _LABEL_KEYS))
            arm = Arm(
                model,
                strategy if metric == "accuracy" else f"{strategy}+{metric}",
                knob,
                fixed,
                strategy,
                metric,
                arch,
                sim,
            )
            singles.setdefault((arm, diff), []).append((x, df, (strategy, config, metric, diff)))
    for (arm, diff), items in singles.items():
        df = pd.concat([d.assign(_x=x) for x, d, _ in items], ignore_index=True)
        found[(arm, diff)] = ArmSource(
            arm, diff, _points(df, df["_x"]), [c for _, _, c in items], [x for x, _, _ in items]
        )
    return list(found.values()), notes


def _short_pools_note(arm: Arm, difficulty: str, points: pd.DataFrame) -> list[str]:
    """Where uneven pools leave some questions out of the larger n (the planner's pool policy:
    each n measured on the questions whose pool holds n samples), one note saying so."""
    nq = points[S.N_QUESTIONS].to_numpy(float)
    if not np.isfinite(nq).any() or np.nanmin(nq) >= np.nanmax(nq):
        return []
    first = float(points.loc[nq < np.nanmax(nq), KNOB_VALUE].min())
    where = "" if difficulty == S.ALL_DIFFICULTY else f" (difficulty {difficulty})"
    return [
        f"{arm.model} {arm.strategy}{where}: n >= {first:g} measured on the questions whose pools "
        f"hold n samples ({np.nanmin(nq):g} of {np.nanmax(nq):g} at n = {points[KNOB_VALUE].max():g}); "
        "shorter pools are left out of those n"
    ]


def arm_display_knobs(arms: Iterable[Arm]) -> dict[Arm, tuple[str, ...]]:
    """For each arm, the fixed knobs that tell it apart from other arms of its model and strategy."""
    groups: dict[tuple[str, str], list[Arm]] = {}
    for a in arms:
        groups.setdefault((a.model, a.strategy), []).append(a)
    out = {}
    for members in groups.values():
        names = {k for a in members for k, _ in a.fixed}
        varying = tuple(sorted(n for n in names if len({dict(a.fixed).get(n) for a in members}) > 1))
        for a in members:
            out[a] = varying
    return out
