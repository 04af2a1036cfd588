"""Altair charts of the report: each ``plot_*`` takes a tidy frame of :mod:`planner.report.data`
and returns an ``alt.Chart`` (layered and faceted where it helps).

Built the way google/meridian's visualizer builds its charts: one base chart carries the
shared encodings (x, colour) and the data; the layers (a line and its interval band, the
measured points with their intervals, markers) are derived from it and pick their rows with
a filter on the frame's ``kind`` column. Column names come from :mod:`fitting.schema` and
:mod:`planner.report.data`. Titles and subtitles say what is measured and what is predicted.

Data are embedded as inline values (``alt.Data(values=...)``), so a chart needs no network
and no data transformer settings (and the 5,000-row limit of Altair's default transformer
does not apply).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import altair as alt
import pandas as pd

from fitting import schema as S

from .data import (
    ARM,
    BUDGET_LABEL,
    COST,
    COST_LABELS,
    FAMILY,
    KIND,
    KNOB_VALUE,
    LAW,
    OPTION,
    PANEL,
    SERIES,
    SOURCE,
    TARGET,
)

__all__ = [
    "plot_accuracy_vs_compute",
    "plot_pareto",
    "plot_budget_map",
    "plot_allocation",
    "plot_moe",
    "plot_kv_cache",
]

_FONT = 12
#: log axes labelled with SI prefixes (10G, 1T) instead of long integers
_SI = alt.Axis(format="~s", labelOverlap="greedy", labelSeparation=6)
#: categorical colours (Tableau 20), and grey for "no option fits"
_PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
            "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]  # fmt: skip
_NONE_COLOR = "#e0e0e0"


def _axis(cost_key: str) -> alt.Axis:
    """A log axis for a cost: SI prefixes for counts (FLOPs, tokens, bytes), dollars and seconds
    in short scientific notation."""
    if cost_key == "usd":
        return alt.Axis(format="$.2~g", labelOverlap="greedy", labelSeparation=6)
    if cost_key == "latency_s":
        return alt.Axis(format=".2~g", labelOverlap="greedy", labelSeparation=6)
    return _SI


def _data(df: pd.DataFrame) -> alt.Data:
    """Inline values (NaN -> null) of a frame."""
    return alt.Data(values=json.loads(df.to_json(orient="records", double_precision=12)))


def _is(kind: str) -> str:
    return f"datum.{KIND} === '{kind}'"


def _title(text: str, *subtitle: str) -> alt.TitleParams:
    return alt.TitleParams(text, subtitle=list(subtitle), anchor="start", fontSize=15, subtitleFontSize=_FONT)


def _acc_axis(title: str = "accuracy") -> alt.Y:
    return alt.Y(f"{S.ACCURACY}:Q", title=title, scale=alt.Scale(domain=[0, 1]))


def plot_accuracy_vs_compute(
    frame: pd.DataFrame, panels: Sequence[str] | None = None, *, columns: int | None = None, width: int = 330
) -> alt.FacetChart:
    """Accuracy against predicted FLOPs per query (log x), per model (colour) and strategy (dash
    and shape), one panel per difficulty: measured points with their intervals, the law's line
    with its band, saturation points N* as diamonds.

    ``frame`` is :func:`planner.report.data.accuracy_compute_frame`.
    """
    order = list(panels) if panels is not None else sorted(frame[PANEL].unique())
    columns = columns or (2 if len(order) <= 4 else 3)
    base = alt.Chart().encode(
        x=alt.X(
            f"{S.FLOPS}:Q",
            scale=alt.Scale(type="log"),
            axis=_SI,
            title="FLOPs per query (predicted from measured tokens)",
        ),
        color=alt.Color(
            f"{S.MODEL}:N",
            title="model",
            legend=alt.Legend(symbolOpacity=1, symbolType="circle", symbolSize=90),
        ),
    )
    strategies = sorted(frame[S.STRATEGY].unique()) if len(frame) else []
    tip_common = [alt.Tooltip(f"{OPTION}:N", title="option"), alt.Tooltip(f"{KNOB_VALUE}:Q", title="knob", format=".3g"),
                  alt.Tooltip(f"{S.ACCURACY}:Q", format=".3f"), alt.Tooltip(f"{S.ACCURACY_LO}:Q", format=".3f"),
                  alt.Tooltip(f"{S.ACCURACY_HI}:Q", format=".3f"), alt.Tooltip(f"{S.FLOPS}:Q", format=".3g"),
                  alt.Tooltip(f"{SOURCE}:N"), alt.Tooltip(f"{LAW}:N")]  # fmt: skip
    law = base.transform_filter(_is("law"))
    band = law.mark_area(opacity=0.15).encode(
        y=alt.Y(f"{S.ACCURACY_LO}:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
        y2=alt.Y2(f"{S.ACCURACY_HI}:Q"),
        detail=alt.Detail(f"{ARM}:N"),
    )
    line = law.mark_line(strokeWidth=1.8).encode(
        y=_acc_axis(),
        strokeDash=alt.StrokeDash(f"{S.STRATEGY}:N", title="strategy", scale=alt.Scale(domain=strategies)),
        detail=alt.Detail(f"{ARM}:N"),
        tooltip=tip_common,
    )
    measured = base.transform_filter(_is("measured"))
    errors = measured.mark_rule(strokeWidth=1, opacity=0.45).encode(
        y=f"{S.ACCURACY_LO}:Q", y2=f"{S.ACCURACY_HI}:Q"
    )
    points = measured.mark_point(filled=True, size=34, opacity=0.95).encode(
        y=_acc_axis(),
        shape=alt.Shape(f"{S.STRATEGY}:N", title="strategy", scale=alt.Scale(domain=strategies)),
        tooltip=tip_common,
    )
    sat = (
        base.transform_filter(_is("saturation"))
        .mark_point(shape="diamond", size=140, filled=True, stroke="black", strokeWidth=1)
        .encode(
            y=_acc_axis(),
            tooltip=[
                alt.Tooltip(f"{OPTION}:N", title="option"),
                alt.Tooltip(f"{KNOB_VALUE}:Q", title="saturation N* (knob)", format=".3g"),
                alt.Tooltip("saturation_lo:Q", title="N* interval lo", format=".3g"),
                alt.Tooltip("saturation_hi:Q", title="N* interval hi", format=".3g"),
                alt.Tooltip(f"{S.ACCURACY}:Q", title="accuracy at N*", format=".3f"),
                alt.Tooltip(f"{LAW}:N"),
            ],  # fmt: skip
        )
    )
    layered = alt.layer(band, line, errors, points, sat, data=_data(frame)).properties(
        width=width, height=240
    )
    return layered.facet(
        facet=alt.Facet(f"{PANEL}:N", sort=order, title="difficulty", header=alt.Header(labelFontSize=_FONT)),
        columns=columns,
        title=_title(
            "Accuracy versus compute, per model and strategy",
            "points: MEASURED accuracy with its 90% question-bootstrap interval; lines and bands: PREDICTED "
            "by each curve's fitted law (name in the tooltip) with its bootstrap band, widened beyond the profiled range",
            "diamonds: saturation point N* (a doubling of compute gains < 0.5 accuracy points); x: FLOPs "
            "per query PREDICTED by the cost model from MEASURED tokens",
        ),
    )


def plot_pareto(frame: pd.DataFrame, cost_key: str | None = None) -> alt.LayerChart:
    """Accuracy against cost of every option (grey), the Pareto front (black steps, points
    coloured by model, shaped by source) and the options recommended at the report's
    budgets (red rings with their budget tags).

    ``frame`` is :func:`planner.report.data.pareto_frame`.
    """
    key = cost_key or (str(frame["cost_key"].iloc[0]) if len(frame) else S.FLOPS)
    base = alt.Chart(_data(frame)).encode(
        x=alt.X(
            f"{COST}:Q",
            scale=alt.Scale(type="log"),
            axis=_SI,
            title=f"{COST_LABELS.get(key, key)} (predicted)",
        ),
        y=_acc_axis("accuracy (measured, fitted or extrapolated)"),
    )
    tip = [alt.Tooltip(f"{OPTION}:N", title="option"), alt.Tooltip(f"{S.ACCURACY}:Q", format=".3f"),
           alt.Tooltip(f"{S.ACCURACY_LO}:Q", format=".3f"), alt.Tooltip(f"{S.ACCURACY_HI}:Q", format=".3f"),
           alt.Tooltip(f"{COST}:Q", title=key, format=".3g"), alt.Tooltip(f"{SOURCE}:N"),
           alt.Tooltip("recommended:N", title="recommended at")]  # fmt: skip
    others = (
        base.transform_filter("!datum.on_front")
        .mark_circle(size=22, color="#bbbbbb", opacity=0.6)
        .encode(tooltip=tip)
    )
    front = base.transform_filter("datum.on_front")
    step = front.mark_line(interpolate="step-after", color="black", strokeWidth=1.2)
    dots = front.mark_point(filled=True, size=70).encode(
        color=alt.Color(f"{S.MODEL}:N", title="model"),
        shape=alt.Shape(f"{SOURCE}:N", title="accuracy source"),
        tooltip=tip,
    )
    rec = base.transform_filter("datum.recommended !== ''")
    rings = rec.mark_point(size=320, filled=False, strokeWidth=2.2, color="#d62728").encode(tooltip=tip)
    tags = rec.mark_text(dy=-16, fontSize=_FONT, fontWeight="bold", color="#d62728").encode(
        text="recommended:N"
    )
    return alt.layer(others, step, dots, rings, tags).properties(
        width=760,
        height=380,
        title=_title(
            "Pareto front of accuracy versus cost (every question, weighted mix of difficulties)",
            "grey: every option the planner considers; black steps: the front (no cheaper option is as accurate); "
            "red rings: the options recommended at budgets B1..Bn",
            "costs PREDICTED by the cost model from MEASURED tokens; accuracy source per point in the legend",
        ),
    )


def plot_budget_map(grid: pd.DataFrame, targets: Sequence[str] | None = None) -> alt.LayerChart:
    """The planner's choice per (difficulty, budget) as a coloured grid: colour = model and
    strategy, text = the option and its expected accuracy (with its source).

    ``grid`` is :func:`planner.report.data.budget_grid_frame`.
    """
    df = grid.copy()
    df["cell_text"] = [
        o if pd.isna(a) else f"{o}\n{a:.2f} ({s})"
        for o, a, s in zip(df[OPTION], df[S.ACCURACY], df[SOURCE], strict=True)
    ]
    order = list(targets) if targets is not None else list(dict.fromkeys(df[TARGET]))
    budgets = list(df.sort_values("budget_index")[BUDGET_LABEL].drop_duplicates())
    base = alt.Chart(_data(df)).encode(
        x=alt.X(
            f"{BUDGET_LABEL}:O",
            sort=budgets,
            title="per-query budget",
            axis=alt.Axis(labelAngle=0, orient="top"),
        ),
        y=alt.Y(f"{TARGET}:O", sort=order, title="difficulty"),
    )
    families = sorted(f for f in df[FAMILY].unique() if f != "no option fits")
    domain = families + (["no option fits"] if (df[FAMILY] == "no option fits").any() else [])
    colors = [_PALETTE[i % len(_PALETTE)] for i in range(len(families))] + [_NONE_COLOR] * (
        len(domain) - len(families)
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2, opacity=0.55).encode(
        color=alt.Color(
            f"{FAMILY}:N", title="model · strategy", scale=alt.Scale(domain=domain, range=colors)
        ),
        tooltip=[
            alt.Tooltip(f"{OPTION}:N", title="option"),
            alt.Tooltip(f"{S.ACCURACY}:Q", format=".3f"),
            alt.Tooltip(f"{S.ACCURACY_LO}:Q", format=".3f"),
            alt.Tooltip(f"{S.ACCURACY_HI}:Q", format=".3f"),
            alt.Tooltip(f"{SOURCE}:N"),
            alt.Tooltip("binding:N", title="binding constraint"),
        ],  # fmt: skip
    )
    text = base.mark_text(fontSize=11, lineBreak="\n", color="black").encode(text="cell_text:N")
    return alt.layer(cells, text).properties(
        width=alt.Step(185),
        height=alt.Step(46),
        title=_title(
            "Best option per budget and difficulty (the planner's table as a picture)",
            "exhaustive search over the option space, as `ttc recommend --method exhaustive`; "
            "expected accuracy with its source (measured, fitted or extrapolated); costs predicted",
        ),
    )


def plot_allocation(curves: pd.DataFrame, cost_key: str) -> alt.LayerChart:
    """Per-difficulty allocation against the best single option: the best accuracy reachable
    at each average cost per query by each (step lines), and at each budget the compute saved
    at equal accuracy (green segments from the allocation's cost to the single option's,
    labelled with the ratio).

    ``curves`` is the first frame of :func:`planner.report.data.allocation_frames`.
    """
    base = alt.Chart(_data(curves)).encode(
        x=alt.X(
            f"{COST}:Q",
            scale=alt.Scale(type="log"),
            axis=_axis(cost_key),
            title=f"average {COST_LABELS.get(cost_key, cost_key)} (predicted)",
        ),
        y=_acc_axis("expected accuracy over the mix (predicted)"),
    )
    lines = (
        base.transform_filter(_is("frontier"))
        .mark_line(interpolate="step-after", point=True, strokeWidth=1.8)
        .encode(
            color=alt.Color(
                f"{SERIES}:N", title=None, legend=alt.Legend(orient="bottom", direction="vertical")
            ),
            tooltip=[
                alt.Tooltip(f"{SERIES}:N"),
                alt.Tooltip(f"{COST}:Q", format=".3g"),
                alt.Tooltip(f"{S.ACCURACY}:Q", format=".3f"),
            ],  # fmt: skip
        )
    )
    saving = base.transform_filter(_is("saving"))
    rules = saving.mark_rule(strokeWidth=4, color="#2ca02c", opacity=0.8).encode(
        x2=alt.X2("cost2:Q"),
        tooltip=[
            alt.Tooltip("label:N", title="budget: single cost / allocation cost"),
            alt.Tooltip(f"{COST}:Q", title="allocation cost at equal accuracy", format=".3g"),
            alt.Tooltip("cost2:Q", title="single option cost", format=".3g"),
        ],  # fmt: skip
    )
    labels = saving.mark_text(dy=-8, color="#2ca02c", fontSize=_FONT, fontWeight="bold").encode(
        x=alt.X("cost_mid:Q"), text="label:N"
    )
    return alt.layer(lines, rules, labels).properties(
        width=760,
        height=340,
        title=_title(
            "Per-difficulty allocation versus the best single option",
            "one option per difficulty chosen by the exact DP (planner.search.allocate) versus one option for every question, "
            "at the same average budget; green: compute saved at equal accuracy",
            "PREDICTED: accuracies from the curves (measured points and fitted laws), costs from the cost model",
        ),
    )


def plot_moe(fronts: pd.DataFrame) -> alt.VConcatChart:
    """Each model's accuracy-cost front (best option of the model at each cost) for the MoE
    and the dense models of equal active and equal total parameters: one row per MoE model,
    FLOPs on the left and US$ on the GPU on the right.

    ``fronts`` is the first frame of :func:`planner.report.tradeoffs.moe_frames`.
    """
    rows = []
    for moe, part in fronts.groupby("moe", sort=True):
        panels = []
        for key in (S.FLOPS, "usd"):
            df = part[part["cost_key"] == key]
            if df.empty:
                continue
            base = alt.Chart(_data(df)).encode(
                x=alt.X(f"{COST}:Q", scale=alt.Scale(type="log"), axis=_axis(key),
                        title=f"{COST_LABELS.get(key, key)} (predicted)"),
                y=_acc_axis(f"best accuracy ({moe} and its dense pairs)"),
                color=alt.Color(f"{SERIES}:N", title=None, legend=alt.Legend(orient="bottom", direction="vertical",
                                                                             labelLimit=400)),
            )  # fmt: skip
            lines = base.mark_line(interpolate="step-after", strokeWidth=1.8)
            points = base.mark_point(filled=True, size=45).encode(
                shape=alt.Shape(f"{SOURCE}:N", title="accuracy source"),
                tooltip=[
                    alt.Tooltip(f"{OPTION}:N", title="option"),
                    alt.Tooltip(f"{S.ACCURACY}:Q", format=".3f"),
                    alt.Tooltip(f"{COST}:Q", title=key, format=".3g"),
                    alt.Tooltip(f"{SOURCE}:N"),
                ],  # fmt: skip
            )
            panels.append(alt.layer(lines, points).properties(width=370, height=260))
        rows.append(alt.hconcat(*panels))
    return alt.vconcat(*rows).properties(
        title=_title(
            "Dense versus MoE at equal active and at equal total parameters",
            "each model's best accuracy at each cost (its own Pareto front over strategies and knobs); "
            "accuracy measured or fitted from the profile; costs PREDICTED by the cost model",
            "US$ on the GPU counts memory traffic: an MoE reads the weights of every expert a batch touches",
        )
    )


def plot_kv_cache(
    frame: pd.DataFrame, models: Sequence[str] | None = None, *, columns: int = 2
) -> alt.FacetChart:
    """KV-cache bytes of one query against parallel samples (log-log), per model: PREDICTED lines
    (cost model) per context length and prefix sharing, MEASURED points from the profile, and
    the GPU memory left for KV after the weights (red rule).

    ``frame`` is :func:`planner.report.data.kv_frame`; ``models`` orders the panels.
    """
    models = list(models) if models is not None else list(dict.fromkeys(frame[S.MODEL]))
    base = alt.Chart().encode(
        x=alt.X("samples:Q", scale=alt.Scale(type="log", base=2), title="parallel samples per query (n)"),
        y=alt.Y(
            f"{S.KV_BYTES_PEAK}:Q", scale=alt.Scale(type="log"), axis=_SI, title="KV-cache bytes at the peak"
        ),
    )
    tip = [alt.Tooltip(f"{SERIES}:N"), alt.Tooltip("samples:Q"), alt.Tooltip("context_tokens:Q", format=",.0f"),
           alt.Tooltip(f"{S.KV_BYTES_PEAK}:Q", format=".3s"), alt.Tooltip(f"{SOURCE}:N")]  # fmt: skip
    lines = (
        base.transform_filter(_is("predicted"))
        .mark_line(strokeWidth=1.6)
        .encode(
            color=alt.Color(
                f"{SERIES}:N",
                title="predicted (cost model)",
                legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=500),
            ),
            strokeDash=alt.StrokeDash(
                "prefix_sharing:N", legend=None, scale=alt.Scale(domain=[True, False], range=[[1, 0], [6, 3]])
            ),
            tooltip=tip,
        )
    )
    measured = (
        base.transform_filter(_is("measured"))
        .mark_point(shape="diamond", filled=True, size=90, color="black")
        .encode(tooltip=tip)
    )
    cap = base.transform_filter(_is("capacity"))
    rule = cap.mark_rule(color="#d62728", strokeDash=[6, 3], strokeWidth=1.5).encode(
        x=alt.value(0), x2=alt.value(300), tooltip=tip
    )
    label = cap.mark_text(align="left", dx=4, dy=-7, color="#d62728", fontSize=11).encode(
        x=alt.value(0), text=f"{SERIES}:N"
    )
    return (
        alt.layer(lines, measured, rule, label, data=_data(frame))
        .properties(width=300, height=230)
        .facet(
            facet=alt.Facet(
                f"{S.MODEL}:N", title="model", sort=models, header=alt.Header(labelFontSize=_FONT)
            ),
            columns=columns,
            title=_title(
                "KV-cache memory versus samples and context",
                "lines: PREDICTED by the cost model (planner.costs.kv_peak_bytes) for a pool of n samples; "
                "black diamonds: MEASURED KV peak of the profiled pools (kv_source in the tooltip)",
                "red: GPU memory left for KV after the weights (catalog memory x 90%, predicted)",
            ),
        )
    )
