"""Tidy DataFrames behind the capacity-planning report (one function per chart or table).

Everything here is computed with the planner's own public API, so the report shows what
``ttc recommend`` would decide:

* the option space (:func:`planner.recommend.build_space`: arms, laws with ``ttc fit``
  bootstrap bands, the cost model on the chosen GPU);
* the exhaustive search (:func:`planner.search.search_exhaustive`) and Pareto front
  (:func:`planner.search.pareto.pareto_exhaustive`) over each difficulty's option table, which is
  computed ONCE per target and reused for every budget (:class:`PlanContext` answers
  ``table(target)`` like an :class:`~planner.space.option_space.OptionSpace`);
* per-difficulty allocation (:mod:`planner.search.allocate`) and capacity
  (:func:`planner.costs.plan_capacity`).

The trade-off frames (allocation, dense vs MoE) are in :mod:`planner.report.tradeoffs`, the
KV-cache and capacity frames in :mod:`planner.report.serving_frames`.

Every frame says where its numbers come from in a :data:`SOURCE` column: ``measured``
(profiled points: accuracy with its question-bootstrap interval; measured KV bytes),
``fitted`` / ``extrapolated`` (a law's prediction between / beyond profiled knob values) or
``predicted`` (the analytic cost model). Costs of options (FLOPs, US$, latency) are always
PREDICTED by the cost model from MEASURED mean token counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fitting import schema as S
from fitting.uncertainty import DEFAULT_EPSILON, saturation_point

from ..catalog import load_catalog
from ..constants import (
    ACCURACY,
    ACCURACY_HI,
    ACCURACY_LO,
    ARM,
    COST_KEYS,
    DEFAULT_HARDWARE,
    KNOB_VALUE,
    MEMORY_BYTES,
    MODEL,
    SOURCE,
    STRATEGY,
)
from ..costs import DEFAULT_CONCURRENCY
from ..profile import Profile
from ..recommend import build_space
from ..search import Budget, pareto_exhaustive, search_exhaustive
from ..space import CostModel, ExtrapolationRefused
from .format import format_budget, format_cost

__all__ = [
    "PlanContext",
    "planning_context",
    "accuracy_compute_frame",
    "default_budgets",
    "budget_grid_frame",
    "pareto_frame",
    "fit_notes_frame",
    "model_order",
    "format_cost",
    "KIND",
    "SOURCE",
    "PANEL",
    "OPTION",
    "ARM",
    "LAW",
    "KNOB_VALUE",
    "TARGET",
    "BUDGET",
    "BUDGET_LABEL",
    "COST",
    "SERIES",
]

# ---- column names the report adds to those of fitting/schema.py and the option table ---------
# (ARM, KNOB_VALUE and SOURCE are the option table's, planner.constants; in report frames
# SOURCE may also be "predicted": the cost model)
KIND = "kind"  # which layer a row feeds: measured, law, saturation, frontier, ...
PANEL = "panel"  # the facet of a chart (a difficulty label, or the mix)
OPTION = "option"  # readable label of an option: "lab-m majority n=8"
LAW = "law"  # the law that predicts a curve ("interpolation" without one)
TARGET = "target"  # a difficulty label or the mix label
BUDGET = "budget"  # a per-query budget on the budget key
BUDGET_LABEL = "budget_label"
COST = "cost"  # the value of the cost on a chart's x axis
SERIES = "series"  # line of a chart (allocation vs single option, MoE vs dense)
FAMILY = "model_strategy"  # "model · strategy": the colour of the budget map
SATURATION = "saturation_x"  # N* in knob units

#: chart titles of the costs an option table carries (planner.constants.COST_KEYS)
COST_LABELS = {
    S.FLOPS: "FLOPs per query",
    "tokens": "tokens per query",
    "usd": "US$ per query",
    "latency_s": "latency per query (s)",
    "kv_bytes": "KV-cache bytes",
    "effective_flops": "effective FLOPs per query (Kinetics)",
}


def _diff_order(labels) -> list[str]:
    """Difficulty labels in natural order ("2" before "10")."""

    def key(s: str):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]

    return sorted({str(x) for x in labels}, key=key)


@dataclass
class PlanContext:
    """The planner's state for one report: profile, cost model, option space and difficulty mix.

    :meth:`table` caches each target's option table (the exhaustive enumeration), so the
    context can be handed to :func:`planner.search.single.search_exhaustive` and
    :func:`planner.search.pareto.pareto_exhaustive` in place of the option space: they only call
    ``table(target)``, and every budget then reuses one enumeration.
    """

    profile: Profile
    coster: CostModel
    hardware: object | None
    space: object
    mix: dict[str, float]
    mix_label: str
    budget_key: str = S.FLOPS
    risk: str = "expected"
    verifier: str | None = None  # "exact": verified options (best-of-n with an exact checker)
    _tables: dict = field(default_factory=dict, repr=False)

    @property
    def difficulties(self) -> list[str]:
        return _diff_order(self.space.bins)

    @property
    def memory_limit_bytes(self) -> float | None:
        return self.coster.memory_limit_bytes()

    def table(self, target: Mapping[str, float]) -> pd.DataFrame:
        """Every option for ``target`` (cached; see :meth:`planner.space.option_space.OptionSpace.table`)."""
        key = tuple(sorted(target.items()))
        if key not in self._tables:
            self._tables[key] = self.space.table(dict(target))
        return self._tables[key]

    def targets(self) -> list[tuple[str, dict[str, float]]]:
        """(label, target) of every difficulty bin, then the mix (unless it is one of the bins)."""
        out = [(d, {d: 1.0}) for d in self.difficulties]
        if not (len(self.mix) == 1 and next(iter(self.mix)) in self.space.bins):
            out.append((self.mix_label, self.mix))
        return out

    def arm_label(self, arm) -> str:
        """``"lab-m majority"`` plus the fixed knobs that tell the arm apart from its siblings."""
        knobs = arm.knobs(None, self.space.display_knobs().get(arm, ()))
        text = " ".join(f"{k}={v}" for k, v in knobs.items())
        return f"{arm.model} {arm.strategy}" + (f" {text}" if text else "")

    def budget(self, value: float, key: str | None = None):
        """A :class:`~planner.search.single.Budget` on ``key`` (default the report's budget key) plus
        the GPU memory limit that ``ttc recommend`` always applies on hardware."""
        limits = {key or self.budget_key: float(value)}
        if self.memory_limit_bytes is not None:
            limits[MEMORY_BYTES] = float(self.memory_limit_bytes)
        return Budget(limits)

    def label(self, arm_key: str, x: float) -> str:
        """``"lab-m majority n=8"``: model, strategy and the knobs that tell the option apart."""
        choice = self.space.option_choice(self.space.arm_by_key(arm_key), float(x))
        knobs = " ".join(f"{k}={v}" for k, v in choice["knobs"].items())
        sim = " [simulated]" if choice.get("simulated") else ""
        checker = " (exact checker)" if choice.get("verifier") == "exact" else ""
        return f"{choice['model']} {choice['strategy']}" + (f" {knobs}" if knobs else "") + checker + sim


def planning_context(
    profile: Profile,
    *,
    gpu: str | None = DEFAULT_HARDWARE,
    concurrency: int = DEFAULT_CONCURRENCY,
    tp: int | None = None,
    mix: str | Mapping[str, float] | None = None,
    budget_key: str = S.FLOPS,
    risk: str = "expected",
    include_simulated: bool = False,
    catalog_file: str | None = None,
    verifier: str | None = None,
) -> PlanContext:
    """The option space of ``profile`` priced on ``gpu``, built as :func:`planner.recommend.plan` does.

    ``mix`` is the difficulty mix of the "all" row (default: every question, i.e. the bins
    weighted by their question counts; see :func:`planner.space.option_space.parse_target`).
    """
    catalog = load_catalog(catalog_file)
    hw = catalog.gpu(gpu) if gpu else None
    coster = CostModel(profile.specs, hardware=hw, concurrency=concurrency, tp=tp)
    space = build_space(profile, coster, include_simulated=include_simulated, verifier=verifier)
    target = space.target(mix)
    if len(target) == 1:
        label = next(iter(target))
    elif mix is None:
        label = "all (mix by question count)"
    else:
        label = "mix " + ",".join(f"{d}:{w:.2g}" for d, w in target.items())
    return PlanContext(profile, coster, hw, space, target, label, budget_key, risk, verifier)


# ---- accuracy versus compute ---------------------------------------------------------------------
def _grid_between(lo: float, hi: float, avoid: np.ndarray, n: int = 28) -> np.ndarray:
    """``n`` log-spaced knob values in [lo, hi], without the profiled values ``avoid`` (where the
    planner answers with the measurement, not the law)."""
    if not hi > lo:
        return np.zeros(0)
    g = np.geomspace(lo, hi, n)
    keep = ~np.isclose(g[:, None], avoid[None, :], rtol=1e-6, atol=0).any(axis=1)
    return g[keep]


def _saturation(ctx: PlanContext, arm, d: str) -> dict | None:
    """N* of one arm's law in one bin: the ``ttc fit`` record's bootstrap interval when a record
    with the same law and parameters backs the arm, else the point value from the law."""
    curve = ctx.space.curves[arm][d]
    law = getattr(curve.predictor, "law", None)
    if law is None:
        return None
    x_min = float(curve.points[KNOB_VALUE].min())
    try:
        n_star = float(saturation_point(law, DEFAULT_EPSILON, x_min=x_min))
    except (ValueError, ArithmeticError):
        return None
    lo = hi = None
    for rec in ctx.profile.fits or ():
        if (
            (rec.get(S.MODEL), rec.get(S.STRATEGY), rec.get(S.METRIC), str(rec.get(S.DIFFICULTY)))
            != (
                arm.model,
                arm.profiled_strategy,
                arm.metric,
                d,
            )
            or rec.get("law") != law.name
            or not rec.get("saturation")
        ):
            continue
        params = rec.get("params") or {}
        if all(
            math.isclose(float(params.get(k, math.nan)), float(v), rel_tol=1e-9)
            for k, v in law.params_.items()
        ):
            lo, hi = rec["saturation"].get("lo"), rec["saturation"].get("hi")
            break
    return {"n_star": n_star, "lo": lo, "hi": hi, "epsilon": DEFAULT_EPSILON}


def _curve_points(ev) -> pd.DataFrame:
    """The columns of the curve chart from :meth:`OptionSpace.evaluate_values`' frame."""
    cols = {KNOB_VALUE: KNOB_VALUE, S.ACCURACY: ACCURACY, S.ACCURACY_LO: ACCURACY_LO}
    cols |= {S.ACCURACY_HI: ACCURACY_HI, SOURCE: SOURCE, S.FLOPS: S.FLOPS}
    return pd.DataFrame({out: ev[col] for out, col in cols.items()})


def accuracy_compute_frame(ctx: PlanContext) -> pd.DataFrame:
    """Accuracy against predicted FLOPs per query, per arm (model, strategy) and panel.

    One row per point, :data:`KIND` saying which layer it feeds:

    * ``measured``: a profiled knob value; accuracy and its interval are MEASURED (the
      curves table's question bootstrap); FLOPs are predicted by the cost model from the
      measured tokens;
    * ``law``: the planner's prediction between and beyond profiled values (the fitted law
      with its ``ttc fit`` bootstrap band, widened beyond the profiled range; log-linear
      interpolation for arms without a law), :data:`SOURCE` ``fitted`` or ``extrapolated``;
    * ``saturation``: the saturation point N* of the law (a doubling of compute gains less
      than half an accuracy point), when it lies within the predicted range.

    Panels are the difficulty bins and the mix (weighted mean of the bins).
    """
    rows: list[pd.DataFrame] = []
    space = ctx.space
    for panel, target in ctx.targets():
        for arm in space.arms(target):
            curves = [space.curves[arm][d] for d in target]
            xs = [c.points[KNOB_VALUE].to_numpy(float) for c in curves]
            measured = xs[0]
            for other in xs[1:]:
                measured = np.intersect1d(measured, other)
            laws = sorted(
                {
                    c.predictor.law.name if getattr(c.predictor, "law", None) else "interpolation"
                    for c in curves
                }
            )
            limit = min(float(c.predictor.x_limit) for c in curves)
            x_min = max(float(x.min()) for x in xs)
            common = {
                PANEL: panel,
                ARM: arm.key,
                S.MODEL: arm.model,
                S.STRATEGY: arm.strategy,
                "architecture": arm.architecture,
                LAW: "+".join(laws),
            }
            parts = [("measured", measured), ("law", _grid_between(x_min, limit, measured))]
            for kind, values in parts:
                if len(values) == 0:
                    continue
                try:
                    ev = space.evaluate_values(arm, values, target)
                except ExtrapolationRefused:
                    continue
                df = _curve_points(ev)
                rows.append(df.assign(**common, **{KIND: kind}))
            if len(target) == 1:
                sat = _saturation(ctx, arm, next(iter(target)))
                if sat and x_min <= sat["n_star"] <= limit:
                    ev = space.evaluate_values(arm, [sat["n_star"]], target)
                    df = _curve_points(ev)
                    df["saturation_lo"], df["saturation_hi"] = sat["lo"], sat["hi"]
                    rows.append(df.assign(**common, **{KIND: "saturation"}))
    if not rows:
        return pd.DataFrame(
            columns=[
                PANEL,
                ARM,
                S.MODEL,
                S.STRATEGY,
                KIND,
                KNOB_VALUE,
                S.FLOPS,
                S.ACCURACY,
                S.ACCURACY_LO,
                S.ACCURACY_HI,
                SOURCE,
                LAW,
            ]
        )
    out = pd.concat(rows, ignore_index=True)
    out[OPTION] = out[S.MODEL] + " " + out[S.STRATEGY]
    return out


# ---- budgets, the budget x difficulty map and the Pareto front --------------------------------------
def default_budgets(ctx: PlanContext, n: int = 5) -> list[float]:
    """``n`` budgets spaced geometrically from just above the cheapest option of the mix to the
    dearest one (on the report's budget key)."""
    t = ctx.table(ctx.mix)
    vals = t[ctx.budget_key].to_numpy(float) if ctx.budget_key in t else np.zeros(0)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if len(vals) == 0:
        raise ValueError(
            f"the cost model gives no {ctx.budget_key!r} for any option; pick another budget key"
        )
    lo, hi = float(vals.min()) * 1.05, float(vals.max())
    return [float(v) for v in np.geomspace(lo, max(hi, lo), n)]


def budget_grid_frame(ctx: PlanContext, budgets: Sequence[float]) -> pd.DataFrame:
    """The planner's choice for every (difficulty target, budget): one row each.

    Found by :func:`planner.search.search_exhaustive` on the cached option table of the
    target (the same ranking as ``ttc recommend --method exhaustive``). Infeasible cells have
    ``option`` "no option fits" and NaN accuracy.
    """
    key = ctx.budget_key
    rows = []
    for target_label, target in ctx.targets():
        for i, b in enumerate(budgets):
            res = search_exhaustive(ctx, target, ctx.budget(b), ctx.risk)
            row = {
                TARGET: target_label,
                BUDGET: float(b),
                BUDGET_LABEL: f"B{i + 1}: {format_budget(key, b)}",
                "budget_index": i + 1,
            }
            best = res.best
            if best is None:
                row.update(
                    {
                        OPTION: "no option fits",
                        FAMILY: "no option fits",
                        S.ACCURACY: math.nan,
                        S.ACCURACY_LO: math.nan,
                        S.ACCURACY_HI: math.nan,
                        SOURCE: "",
                        "binding": "infeasible",
                    }
                )
            else:
                row.update(
                    {
                        OPTION: ctx.label(best[ARM], best[KNOB_VALUE]),
                        ARM: best[ARM],
                        KNOB_VALUE: float(best[KNOB_VALUE]),
                        S.MODEL: best[MODEL],
                        S.STRATEGY: best[STRATEGY],
                        FAMILY: f"{best[MODEL]} · {best[STRATEGY]}",
                        S.ACCURACY: float(best[ACCURACY]),
                        S.ACCURACY_LO: float(best[ACCURACY_LO]),
                        S.ACCURACY_HI: float(best[ACCURACY_HI]),
                        SOURCE: str(best[SOURCE]),
                        "binding": res.binding,
                    }
                )
                for k in COST_KEYS:
                    row[k] = float(best[k]) if k in best and pd.notna(best[k]) else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def pareto_frame(
    ctx: PlanContext, grid: pd.DataFrame | None = None, cost_key: str | None = None
) -> pd.DataFrame:
    """Every option of the mix with its accuracy and cost, ``on_front`` marking the Pareto front
    (:func:`planner.search.pareto.pareto_exhaustive`: accuracy up, cost down) and ``recommended``
    the budget tags (``B1``, ...) of the options the budget grid chose for the mix."""
    key = cost_key or ctx.budget_key
    table = ctx.table(ctx.mix)
    ok = table[key].notna() & (table[key] > 0)
    table = table[ok]
    if table.empty:
        return pd.DataFrame(columns=[ARM, KNOB_VALUE, S.ACCURACY, COST, "on_front", "recommended"])
    limits = {key: float(table[key].max()) * 1.01}
    if ctx.memory_limit_bytes is not None:
        limits[MEMORY_BYTES] = float(ctx.memory_limit_bytes)
    res = pareto_exhaustive(ctx, ctx.mix, Budget(limits), cost_key=key, risk=ctx.risk)
    front = {(a, float(x)) for a, x in zip(res.pareto[ARM], res.pareto[KNOB_VALUE], strict=True)}
    out = table[[ARM, MODEL, STRATEGY, KNOB_VALUE, ACCURACY, ACCURACY_LO, ACCURACY_HI, SOURCE, key]].copy()
    out = out.rename(columns={key: COST})
    out["on_front"] = [(a, float(x)) in front for a, x in zip(out[ARM], out[KNOB_VALUE], strict=True)]
    tags: dict[tuple[str, float], list[str]] = {}
    if grid is not None and len(grid):
        mine = grid[(grid[TARGET] == ctx.mix_label) & grid[ARM].notna()] if ARM in grid else grid.iloc[:0]
        for _, r in mine.iterrows():
            tags.setdefault((r[ARM], float(r[KNOB_VALUE])), []).append(f"B{int(r['budget_index'])}")
    out["recommended"] = [
        ",".join(tags.get((a, float(x)), [])) for a, x in zip(out[ARM], out[KNOB_VALUE], strict=True)
    ]
    out[OPTION] = [ctx.label(a, x) for a, x in zip(out[ARM], out[KNOB_VALUE], strict=True)]
    out["cost_key"] = key
    return out.reset_index(drop=True)


def model_order(ctx: PlanContext) -> list[str]:
    """Profiled models, dense ones by size, then the MoE models."""
    specs = ctx.profile.specs
    return sorted(
        ctx.profile.models, key=lambda m: (specs[m].architecture == "moe", float(specs[m].params_total), m)
    )


# ---- provenance -----------------------------------------------------------------------------------------------
def fit_notes_frame(ctx: PlanContext) -> pd.DataFrame:
    """What predicts each arm in each bin: the law (``ttc fit`` record or selected here), its
    parameters, held-out extrapolation error and the profiled knob range."""
    rows = []
    for arm, per in ctx.space.curves.items():
        for d, c in per.items():
            law = getattr(c.predictor, "law", None)
            xs = c.points[KNOB_VALUE].to_numpy(float)
            rows.append(
                {
                    "arm": ctx.arm_label(arm),
                    S.DIFFICULTY: d,
                    LAW: law.name if law is not None else "interpolation only",
                    "params": ", ".join(f"{k}={v:.3g}" for k, v in law.params_.items())
                    if law is not None
                    else "",
                    "extrapolation_error": getattr(c.predictor, "extrapolation_error", math.nan),
                    "profiled_knob_values": ", ".join(f"{x:g}" for x in xs),
                    "predicts_up_to": float(c.predictor.x_limit),
                    "note": c.fit_note,
                }
            )
    out = pd.DataFrame(rows)
    if len(out):
        order = {d: i for i, d in enumerate(ctx.difficulties)}
        out = out.sort_values(
            ["arm", S.DIFFICULTY], key=lambda s: s.map(order) if s.name == S.DIFFICULTY else s
        )
    return out.reset_index(drop=True)
