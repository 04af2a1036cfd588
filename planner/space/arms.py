"""The option space: every (model, strategy, knobs) the planner may recommend, and its value.

An *arm* is one curve family the planner can move along: a model, a deployable strategy, the
knobs held fixed (temperature, beam expansions, ...) and one compute knob (``n`` samples,
beam ``width``, refinement ``rounds``, thinking ``tokens``). An *option* is an arm plus a
value of its compute knob. Arms are read off the curves table (``fitting/schema.py``):

* a curve with several ``k`` (a pool of samples, estimated for every k) is a pool-like arm:
  ``majority@k`` -> strategy ``majority``, ``best_of@k`` -> ``best_of``, ``weighted@k`` ->
  ``weighted``, with knob ``n = k``. ``pass@k`` needs an oracle to pick the right sample and
  is NOT deployable: it never becomes an option.
* curves with one point each (greedy, beam, refine, budget forcing) are grouped across
  configs that differ only in the strategy's compute knob; the knob value is the x axis.

A strategy whose reward, verifier or process reward is the task's oracle or a simulated
(noisy-oracle) scorer is *simulated*: it needs a scorer no deployment has. Such options are
left out unless asked for, and always say ``simulated`` in their label.

The value of an option is its predicted accuracy (:mod:`planner.space.predict`) and its cost: the
curve's MEASURED mean tokens (interpolated in the knob between profiled values, linearly
extrapolated beyond) turned into FLOPs, latency, dollars and KV bytes by a coster (see
:class:`Usage` and :mod:`planner.space.pricing`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fitting import schema as S

from .predict import MAX_EXTRAPOLATION, CurvePredictor, ExtrapolationRefused, Predictions, worst_source

__all__ = [
    "COST_KEYS",
    "COMPUTE_KNOB",
    "Arm",
    "Option",
    "Usage",
    "ArmCurve",
    "arms_from_curves",
    "knob_grid",
    "simulated_reason",
]

#: cost dimensions of an option, per query; budgets use the same names
COST_KEYS = ("flops", "tokens", "latency_s", "usd", "kv_bytes")
#: the compute knob of each profiled strategy whose configs form one arm ("greedy" has none)
COMPUTE_KNOB = {"beam": "width", "refine": "rounds", "budget": "tokens", "hybrid": "n", "greedy": None}
#: metric of a pool curve -> deployable strategy name (None: not deployable)
POOL_METRICS = {"majority@k": "majority", "best_of@k": "best_of", "weighted@k": "weighted", "pass@k": None}
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
        if key == "reward_source" and metric.startswith("majority"):
            continue
        value = str(config.get(key, ""))
        if value.startswith(("oracle", "simulated")):
            return f"{key.removesuffix('_source')}: {value}"
    return None


@dataclass(frozen=True)
class Arm:
    """One curve family the planner moves along by its compute knob.

    ``fixed`` holds the other knobs as sorted ``(name, value)`` pairs; ``curve_strategy``,
    ``metric`` and ``configs`` say which curves of the table back it (the config of each
    knob value for grouped arms).
    """

    model: str
    strategy: str
    knob: str | None
    fixed: tuple[tuple[str, object], ...]
    curve_strategy: str
    metric: str
    architecture: str = "dense"
    simulated: str | None = None

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
        """The ``choice`` object of the recommendation JSON (DESIGN.md)."""
        out = {
            "model": self.arm.model,
            "architecture": self.arm.architecture,
            "strategy": self.arm.strategy,
            "knobs": self.arm.knobs(self.value, show),
        }
        if self.arm.simulated:
            out["simulated"] = self.arm.simulated
        return out

    def label(self) -> str:
        knobs = ",".join(f"{k}={v}" for k, v in self.arm.knobs(self.value).items())
        sim = " [simulated]" if self.arm.simulated else ""
        return f"{self.arm.model} {self.arm.strategy}" + (f":{knobs}" if knobs else "") + sim


@dataclass(frozen=True)
class Usage:
    """Measured work of one query of an option (arrays over knob values).

    Attributes
    ----------
    prompt_tokens : prompt tokens processed per query (a pool shares one prompt).
    completion_tokens : generated tokens per query, over all its samples or calls.
    sequences : sequences decoded at the same time for one query (n of a pool, width x
        expansions of a beam step, 1 for sequential strategies).
    latency_s : measured wall time per query on the profiling machine (NaN if unknown).
    kv_bytes : measured peak KV-cache bytes per query on the profiling machine (NaN if unknown).
    base_prompt_tokens : the question's prompt length (what a cost workload starts from); the
        measured ``prompt_tokens`` of a multi-call strategy sums every call's resent context.
    """

    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    sequences: np.ndarray
    latency_s: np.ndarray
    kv_bytes: np.ndarray
    base_prompt_tokens: np.ndarray | None = None  # the question's prompt (multi-call strategies resend it)

    def __post_init__(self) -> None:
        if self.base_prompt_tokens is None:
            object.__setattr__(self, "base_prompt_tokens", self.prompt_tokens)

    def __len__(self) -> int:
        return len(self.prompt_tokens)


#: a coster: (arm, knob values, measured usage at those values) -> {cost key: array}
Coster = Callable[["Arm", np.ndarray, Usage], Mapping[str, np.ndarray]]


def _extrap_linear(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Linear interpolation, extended linearly beyond the last point (slope of the last two)."""
    out = np.interp(x, xp, fp)
    if len(xp) >= 2:
        slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
        out = np.where(x > xp[-1], fp[-1] + slope * (x - xp[-1]), out)
    else:
        out = np.where(x > xp[-1], fp[-1] * x / xp[-1], out)
    return out


@dataclass
class ArmCurve:
    """An arm's data for one difficulty: profiled points, their usage, and a predictor.

    ``points`` has columns ``x``, ``accuracy``, ``lo``, ``hi``, ``n_questions`` and the
    mean-cost columns of the curves table, one row per profiled knob value.
    """

    arm: Arm
    difficulty: str
    points: pd.DataFrame
    predictor: CurvePredictor
    fit_note: str = ""
    base_prompt_tokens: float | None = None  # the question prompt, from a one-call arm of the model

    def usage(self, x) -> Usage:
        """Measured usage at knob values ``x``: interpolated linearly between profiled values,
        extrapolated linearly beyond (exact for a pool, whose cost is linear in n)."""
        x = np.atleast_1d(np.asarray(x, dtype=float))
        p = self.points
        xp = p["x"].to_numpy(float)

        def col(name: str) -> np.ndarray:
            if name not in p or p[name].isna().all():
                return np.full(len(x), np.nan)
            fp = p[name].astype(float).ffill().bfill().to_numpy()
            return np.maximum(_extrap_linear(x, xp, fp), 0.0)

        prompt = col(S.MEAN_PROMPT_TOKENS)
        completion = col(S.MEAN_COMPLETION_TOKENS)
        if np.all(np.isnan(completion)) and S.MEAN_TOKENS in p:
            completion = col(S.MEAN_TOKENS) - np.nan_to_num(prompt)
        fixed = dict(self.arm.fixed)
        if self.arm.knob == "n" or self.arm.strategy in ("majority", "best_of", "weighted"):
            seqs = x
        elif self.arm.curve_strategy == "beam":
            seqs = (x if self.arm.knob == "width" else float(fixed.get("width", 1))) * float(
                fixed.get("expansions", 1)
            )
            seqs = np.broadcast_to(np.asarray(seqs, dtype=float), x.shape)
        else:
            seqs = np.ones_like(x)
        base = None
        if self.base_prompt_tokens is not None and self.arm.curve_strategy not in ("pool", "greedy"):
            base = np.full(len(x), float(self.base_prompt_tokens))
        return Usage(
            prompt,
            completion,
            np.asarray(seqs, dtype=float),
            col(S.MEAN_LATENCY_S),
            col(S.MEAN_KV_BYTES),
            base,
        )

    def predict(self, x) -> Predictions:
        return self.predictor.predict(x)


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
    cols = {
        "x": x.to_numpy(float),
        "accuracy": df[S.ACCURACY].to_numpy(float),
        "lo": df[S.ACCURACY_LO].to_numpy(float) if S.ACCURACY_LO in df else df[S.ACCURACY].to_numpy(float),
        "hi": df[S.ACCURACY_HI].to_numpy(float) if S.ACCURACY_HI in df else df[S.ACCURACY].to_numpy(float),
        "n_questions": df[S.N_QUESTIONS].to_numpy(float) if S.N_QUESTIONS in df else np.nan,
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
    return out.groupby("x", as_index=False).mean(numeric_only=True).sort_values("x").reset_index(drop=True)


@dataclass
class _ArmSource:
    arm: Arm
    difficulty: str
    points: pd.DataFrame
    curve_keys: list[tuple[str, str, str, str]] = field(
        default_factory=list
    )  # (strategy, config, metric, diff)


def arms_from_curves(
    curves: pd.DataFrame,
    *,
    architectures: Mapping[str, str] | None = None,
    include_simulated: bool = False,
) -> tuple[list[_ArmSource], list[str]]:
    """Group the curves table into arms, one entry per (arm, difficulty).

    Returns the arm sources and notes on what was left out (pass@k, simulated scorers,
    duplicate pools). ``architectures`` maps a model to ``"dense"`` or ``"moe"``.
    """
    need = [S.MODEL, S.STRATEGY, S.CONFIG, S.DIFFICULTY, S.METRIC, S.K, S.ACCURACY]
    missing = [c for c in need if c not in curves.columns]
    if missing:
        raise ValueError(f"curves table: missing column(s) {missing}; have {list(curves.columns)}")
    architectures = architectures or {}
    notes: list[str] = []
    found: dict[tuple, _ArmSource] = {}
    singles: dict[tuple, list] = {}
    for (model, strategy, config, metric, diff), df in curves.groupby(
        [S.MODEL, S.STRATEGY, S.CONFIG, S.METRIC, S.DIFFICULTY], sort=True
    ):
        cfg = _config(config)
        arch = architectures.get(model, "dense")
        if metric in POOL_METRICS and POOL_METRICS[metric] is None:
            continue  # pass@k: needs an oracle to pick the sample
        sim = simulated_reason(cfg, metric)
        if sim and not include_simulated:
            notes.append(
                f"{model} {strategy} ({metric}): left out, simulated {sim} (--allow-simulated keeps it)"
            )
            continue
        if df[S.K].nunique() > 1:  # a pool-like curve: one arm, x = k
            stem = POOL_METRICS.get(metric) or metric.split("@")[0]
            name = stem if strategy == "pool" else f"{strategy}+{stem}"
            drop = {"n", *_LABEL_KEYS} | (set(_SCORER_KNOBS) if stem == "majority" else set())
            fixed = {k: v for k, v in cfg.items() if k not in drop}
            if stem in ("best_of", "weighted") and S.SCORE_SOURCE in df and df[S.SCORE_SOURCE].notna().any():
                fixed["score"] = str(df[S.SCORE_SOURCE].dropna().iloc[0])  # what ranks the samples
            fixed = tuple(sorted(fixed.items()))
            arm = Arm(model, name, "n", fixed, strategy, metric, arch, sim)
            pts = _points(df, df[S.K])
            key = (arm, diff)
            prev = found.get(key)
            if prev is not None:
                if prev.points["x"].max() >= pts["x"].max():
                    continue  # keep the larger pool
            found[key] = _ArmSource(arm, diff, pts, [(strategy, config, metric, diff)])
        else:
            knob = COMPUTE_KNOB.get(strategy)
            if knob is not None and knob not in cfg:
                raise ValueError(f"curves table: {strategy} config {config} has no compute knob {knob!r}")
            x = 1.0 if knob is None else float(cfg[knob]) + (1.0 if strategy == "refine" else 0.0)
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
        found[(arm, diff)] = _ArmSource(arm, diff, _points(df, df["_x"]), [c for _, _, c in items])
    return list(found.values()), notes


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


def mix_predictions(parts: list[tuple[float, Predictions]]) -> Predictions:
    """Weighted mix of per-bin predictions at the same knob values (weights sum to 1).

    Accuracy and both interval ends are the weighted sums (the interval treats the bins'
    errors as moving together, which is conservative); the source is the most speculative.
    """
    x = parts[0][1].x
    acc = sum(w * p.accuracy for w, p in parts)
    lo = sum(w * p.lo for w, p in parts)
    hi = sum(w * p.hi for w, p in parts)
    src = np.array([worst_source([p.source[i] for _, p in parts]) for i in range(len(x))])
    return Predictions(x, acc, lo, hi, src)


__all__ += ["Coster", "arm_display_knobs", "mix_predictions", "ExtrapolationRefused"]
