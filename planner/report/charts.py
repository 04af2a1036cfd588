"""Altair charts of the report: each ``plot_*`` takes a tidy frame of :mod:`planner.report.data`
and returns an ``alt.Chart`` (layered and faceted where it helps).

Every chart speaks one visual language (:class:`planner.report.style.Encoding`): a model keeps
its colour, a strategy its shape and an accuracy source its opacity everywhere, and every line
style has a legend entry. Built the way google/meridian's visualizer builds its charts: one
base chart carries the shared encodings (x, colour) and the data; the layers (a line and its interval band, the
measured points with their intervals, markers) are derived from it and pick their rows with
a filter on the frame's ``kind`` column. Column names come from :mod:`fitting.schema` and
:mod:`planner.report.data`. Titles and subtitles say what is measured and what is predicted.

Data are embedded as inline values (``alt.Data(values=...)``), so a chart needs no network
and no data transformer settings (and the 5,000-row limit of Altair's default transformer
does not apply).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from fitting import schema as S

from ..constants import SOURCES
from .data import (
    ARM,
    BUDGET_LABEL,
    COST,
    COST_LABELS,
    KIND,
    KNOB_VALUE,
    LAW,
    OPTION,
    PANEL,
    SERIES,
    SOURCE,
    TARGET,
)
from .style import HIGHLIGHT, NEUTRAL, Encoding

__all__ = [
    "plot_accuracy_vs_compute",
    "plot_pareto",
    "plot_budget_map",
    "plot_allocation",
    "plot_moe",
    "plot_kv_cache",
]

_FONT = 12
#: the longest subtitle line, in characters (about 900 px at 12 px)
_SUBTITLE_CHARS = 150
#: log axes labelled with SI prefixes (10G, 1T) instead of long integers
_SI = alt.Axis(format="~s", labelOverlap="greedy", labelSeparation=6, tickCount=6)


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
    """A chart title; subtitle lines are wrapped at :data:`_SUBTITLE_CHARS` characters (Vega does
    not wrap, and a long line runs off the page)."""
    lines = [w for line in subtitle for w in textwrap.wrap(line, _SUBTITLE_CHARS)]
    return alt.TitleParams(text, subtitle=lines, anchor="start", fontSize=15, subtitleFontSize=_FONT)


def _acc_axis(title: str = "accuracy") -> alt.Y:
    return alt.Y(f"{S.ACCURACY}:Q", title=title, scale=alt.Scale(domain=[0, 1]))


def _encoding(enc: Encoding | None, frame: pd.DataFrame) -> Encoding:
    """``enc`` (the report's) completed with any model or strategy of ``frame``."""
    models = frame[S.MODEL].dropna().unique().tolist() if S.MODEL in frame else []
    strategies = frame[S.STRATEGY].dropna().unique().tolist() if S.STRATEGY in frame else []
    return (enc or Encoding.of(sorted(models), strategies)).extend(models, strategies)


def _featured(frame: pd.DataFrame) -> pd.Series:
    """Per panel and model, the arm with the best measured accuracy: its band and error bars
    are drawn; the others' on request (they overlap and say little)."""
    meas = frame[frame[KIND] == "measured"]
    if meas.empty:
        return pd.Series(False, index=frame.index)
    best = meas.sort_values([S.ACCURACY, ARM], ascending=[False, True], kind="stable").drop_duplicates(
        [PANEL, S.MODEL]
    )
    keys = set(zip(best[PANEL], best[ARM], strict=True))
    return pd.Series(
        [(p, a) in keys for p, a in zip(frame[PANEL], frame[ARM], strict=True)], index=frame.index
    )


def _joined_law(frame: pd.DataFrame) -> pd.DataFrame:
    """Law rows with the last fitted point repeated as the first extrapolated one, so that the
    solid (fitted) and dotted (extrapolated) pieces of a line meet."""
    law = frame[frame[KIND] == "law"]
    extra = []
    for _, g in law.groupby([PANEL, ARM], sort=False):
        fit, ext = g[g[SOURCE] == "fitted"], g[g[SOURCE] == "extrapolated"]
        if len(fit) and len(ext):
            extra.append(fit.sort_values(S.FLOPS).iloc[[-1]].assign(**{SOURCE: "extrapolated"}))
    return pd.concat([frame, *extra], ignore_index=True) if extra else frame


def plot_accuracy_vs_compute(
    frame: pd.DataFrame,
    panels: Sequence[str] | None = None,
    *,
    enc: Encoding | None = None,
    columns: int | None = None,
    width: int = 360,
) -> alt.FacetChart:
    """Accuracy against predicted FLOPs per query (log x), one panel per difficulty: measured
    points (colour = model, shape = strategy) with their intervals, each curve's law as a line
    (solid where fitted between profiled values, dotted where extrapolated), saturation points
    N* as hollow diamonds. Bands and error bars are drawn for each model's best curve per panel;
    a checkbox (HTML) shows every curve's.

    ``frame`` is :func:`planner.report.data.accuracy_compute_frame`.
    """
    order = list(panels) if panels is not None else sorted(frame[PANEL].unique())
    columns = columns or (2 if len(order) <= 4 else 3)
    enc = _encoding(enc, frame)
    df = frame.copy()
    df["featured"] = _featured(df)
    with_law = set(zip(df.loc[df[KIND] == "law", PANEL], df.loc[df[KIND] == "law", ARM], strict=True))
    df["no_law"] = [(p, a) not in with_law for p, a in zip(df[PANEL], df[ARM], strict=True)]
    df = _joined_law(df)
    every = alt.param(
        name="every_band", value=False, bind=alt.binding_checkbox(name="bands and error bars of every curve ")
    )
    shown = "datum.featured || every_band"
    base = alt.Chart().encode(
        x=alt.X(
            f"{S.FLOPS}:Q",
            scale=alt.Scale(type="log"),
            axis=_SI,
            title="FLOPs per query (predicted from measured tokens)",
        ),
        color=enc.color(),
    )
    tip_common = [
        alt.Tooltip(f"{OPTION}:N", title="option"),
        alt.Tooltip(f"{KNOB_VALUE}:Q", title="knob", format=".3g"),
        alt.Tooltip(f"{S.ACCURACY}:Q", format=".3f"),
        alt.Tooltip(f"{S.ACCURACY_LO}:Q", format=".3f"),
        alt.Tooltip(f"{S.ACCURACY_HI}:Q", format=".3f"),
        alt.Tooltip(f"{S.FLOPS}:Q", format=".3g"),
        alt.Tooltip(f"{SOURCE}:N"),
        alt.Tooltip(f"{LAW}:N"),
    ]
    law = base.transform_filter(_is("law"))
    band = (
        law.transform_filter(f"({shown}) && datum.{SOURCE} === 'fitted'")
        .mark_area(opacity=0.13)
        .encode(
            y=alt.Y(f"{S.ACCURACY_LO}:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
            y2=alt.Y2(f"{S.ACCURACY_HI}:Q"),
            detail=alt.Detail(f"{ARM}:N"),
        )
    )
    line = law.mark_line(strokeWidth=1.8).encode(
        y=_acc_axis(),
        strokeDash=alt.StrokeDash(
            f"{SOURCE}:N",
            title="line: predicted by the law",
            sort=["fitted", "extrapolated"],
            scale=alt.Scale(domain=["fitted", "extrapolated"], range=[[1, 0], [2, 3]]),
            legend=alt.Legend(symbolStrokeColor="#555555", orient="right"),
        ),
        detail=alt.Detail(f"{ARM}:N"),
        tooltip=tip_common,
    )
    measured = base.transform_filter(_is("measured"))
    errors = (
        measured.transform_filter(f"({shown}) && datum.no_law")
        .mark_rule(strokeWidth=1.2, opacity=0.6)
        .encode(y=f"{S.ACCURACY_LO}:Q", y2=f"{S.ACCURACY_HI}:Q")
    )
    points = measured.mark_point(filled=True, size=48, opacity=1).encode(
        y=_acc_axis(), shape=enc.shape(), tooltip=tip_common
    )
    sat = (
        base.transform_filter(_is("saturation"))
        .mark_point(shape="diamond", size=170, filled=False, color="black", strokeWidth=1.4)
        .encode(
            y=_acc_axis(),
            tooltip=[
                alt.Tooltip(f"{OPTION}:N", title="option"),
                alt.Tooltip(f"{KNOB_VALUE}:Q", title="saturation N* (knob)", format=".3g"),
                alt.Tooltip("saturation_lo:Q", title="N* interval lo", format=".3g"),
                alt.Tooltip("saturation_hi:Q", title="N* interval hi", format=".3g"),
                alt.Tooltip(f"{S.ACCURACY}:Q", title="accuracy at N*", format=".3f"),
                alt.Tooltip(f"{LAW}:N"),
            ],
        )
    )
    layered = alt.layer(band, line, errors, points, sat, data=_data(df)).properties(width=width, height=260)
    return layered.facet(
        facet=alt.Facet(f"{PANEL}:N", sort=order, title="difficulty", header=alt.Header(labelFontSize=_FONT)),
        columns=columns,
        title=_title(
            "Accuracy versus compute, per model (colour) and strategy (shape)",
            "points: MEASURED accuracy; lines: PREDICTED by each curve's fitted law (solid between profiled "
            "values, dotted beyond them; name in the tooltip); shaded band: the law's 90% question-bootstrap "
            "band within the profiled range, and bars: the 90% interval of points without a law, for each "
            "model's best curve per panel (the checkbox below the chart shows every curve's)",
            "hollow diamonds: saturation point N* (a doubling of compute gains < 0.5 accuracy points); x: FLOPs "
            "per query PREDICTED by the cost model from MEASURED tokens; budget forcing moves accuracy a lot for "
            "little compute, so its lines are steep",
        ),
    ).add_params(every)


def plot_pareto(
    frame: pd.DataFrame, cost_key: str | None = None, *, enc: Encoding | None = None
) -> alt.LayerChart:
    """Accuracy against cost of every option (grey), the Pareto front (black steps; points
    coloured by model, shaped by strategy, opacity by accuracy source) and the options
    recommended at the report's budgets (red rings with their budget tags).

    ``frame`` is :func:`planner.report.data.pareto_frame`.
    """
    key = cost_key or (str(frame["cost_key"].iloc[0]) if len(frame) else S.FLOPS)
    enc = _encoding(enc, frame)
    base = alt.Chart(_data(frame)).encode(
        x=alt.X(
            f"{COST}:Q",
            scale=alt.Scale(type="log"),
            axis=_axis(key),
            title=f"{COST_LABELS.get(key, key)} (predicted)",
        ),
        y=_acc_axis("accuracy (measured, fitted or extrapolated)"),
    )
    tip = [
        alt.Tooltip(f"{OPTION}:N", title="option"),
        alt.Tooltip(f"{S.ACCURACY}:Q", format=".3f"),
        alt.Tooltip(f"{S.ACCURACY_LO}:Q", format=".3f"),
        alt.Tooltip(f"{S.ACCURACY_HI}:Q", format=".3f"),
        alt.Tooltip(f"{COST}:Q", title=key, format=".3g"),
        alt.Tooltip(f"{SOURCE}:N"),
        alt.Tooltip("recommended:N", title="recommended at"),
    ]
    others = (
        base.transform_filter("!datum.on_front")
        .mark_circle(size=22, color="#bbbbbb", opacity=0.6)
        .encode(tooltip=tip)
    )
    front = base.transform_filter("datum.on_front")
    step = (
        front.transform_calculate(line="'Pareto front'")
        .mark_line(interpolate="step-after", color="black", strokeWidth=1.2)
        .encode(
            strokeDash=alt.StrokeDash(
                "line:N",
                title=None,
                scale=alt.Scale(range=[[1, 0]]),
                legend=alt.Legend(orient="right", symbolStrokeColor="black"),
            )
        )
    )
    dots = front.mark_point(filled=True, size=80).encode(
        color=enc.color(), shape=enc.shape(), opacity=enc.opacity(), tooltip=tip
    )
    rec = base.transform_filter("datum.recommended !== ''")
    rings = rec.mark_point(size=340, filled=False, strokeWidth=2.2, color=HIGHLIGHT).encode(tooltip=tip)
    tags = rec.mark_text(dy=-17, fontSize=_FONT, fontWeight="bold", color=HIGHLIGHT).encode(
        text="recommended:N"
    )
    return alt.layer(others, step, dots, rings, tags).properties(
        width=820,
        height=400,
        title=_title(
            "Pareto front of accuracy versus cost (every question, weighted mix of difficulties)",
            "grey: every option the planner considers; black steps: the front; red rings: the options recommended "
            "at budgets B1..Bn; colour = model, shape = strategy, opacity = accuracy source, as in every chart",
            f"costs PREDICTED by the cost model from MEASURED tokens; x: {COST_LABELS.get(key, key)}",
        ),
    )


def plot_budget_map(
    grid: pd.DataFrame, targets: Sequence[str] | None = None, *, enc: Encoding | None = None
) -> alt.LayerChart:
    """The planner's choice per (difficulty, budget) as a grid: cell colour = the chosen model,
    its opacity = the accuracy source, a marker with the strategy's shape, and the option
    with its expected accuracy as text.

    ``grid`` is :func:`planner.report.data.budget_grid_frame`.
    """
    df = grid.copy()
    enc = _encoding(enc, df)
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
            axis=alt.Axis(labelAngle=0, orient="top", labelLimit=220),
        ),
        y=alt.Y(f"{TARGET}:O", sort=order, title="difficulty"),
    )
    tip = [
        alt.Tooltip(f"{OPTION}:N", title="option"),
        alt.Tooltip(f"{S.ACCURACY}:Q", format=".3f"),
        alt.Tooltip(f"{S.ACCURACY_LO}:Q", format=".3f"),
        alt.Tooltip(f"{S.ACCURACY_HI}:Q", format=".3f"),
        alt.Tooltip(f"{SOURCE}:N"),
        alt.Tooltip("binding:N", title="binding constraint"),
    ]
    empty = base.transform_filter(f"!isValid(datum.{S.MODEL})").mark_rect(
        color="#eeeeee", stroke="white", strokeWidth=2
    )
    cells = (
        base.transform_filter(f"isValid(datum.{S.MODEL})")
        .mark_rect(stroke="white", strokeWidth=2)
        .encode(color=enc.color(), opacity=_cell_opacity(), tooltip=tip)
    )
    marks = (
        base.transform_filter(f"isValid(datum.{S.MODEL})")
        .mark_point(filled=True, size=70, xOffset=-84, color="#333333")
        .encode(shape=enc.shape())
    )
    text = base.mark_text(fontSize=11, lineBreak="\n", color="black", dx=8).encode(text="cell_text:N")
    return alt.layer(empty, cells, marks, text).properties(
        width=alt.Step(200),
        height=alt.Step(48),
        title=_title(
            "Best option per budget and difficulty (the planner's table as a picture)",
            "exhaustive search over the option space, as `ttc recommend --method exhaustive`; colour = model, "
            "marker = strategy, cell opacity = accuracy source (as in every chart); expected accuracy in the cell; "
            "costs predicted",
        ),
    )


def _cell_opacity() -> alt.Opacity:
    """Source as the opacity of a filled cell (fainter than for points, so that text stays readable)."""
    return alt.Opacity(
        f"{SOURCE}:N",
        title="accuracy source",
        sort=list(SOURCES),
        scale=alt.Scale(domain=list(SOURCES), range=[0.6, 0.35, 0.15]),
        legend=alt.Legend(symbolType="square", symbolFillColor="#555555", orient="right"),
    )


def plot_allocation(curves: pd.DataFrame, cost_key: str) -> alt.LayerChart:
    """Per-difficulty allocation against the best single option: the best accuracy reachable
    at each average cost per query by each (step lines, black and grey: they are not models),
    and at each budget the compute saved at equal accuracy (green bars from the allocation's
    cost to the single option's, labelled with the ratio, labels staggered so none overlap).

    ``curves`` is the first frame of :func:`planner.report.tradeoffs.allocation_frames`.
    """
    df = curves.copy()
    if len(df) and "label" in df:
        saving = df[KIND] == "saving"
        df.loc[saving, "label_y"] = df.loc[saving, S.ACCURACY].to_numpy(float) + 0.035 * (
            1 + np.arange(int(saving.sum())) % 3
        )
    series = sorted(df.loc[df[KIND] == "frontier", SERIES].dropna().unique(), reverse=True) if len(df) else []
    base = alt.Chart(_data(df)).encode(
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
        .mark_line(interpolate="step-after", point=True, strokeWidth=2)
        .encode(
            color=alt.Color(
                f"{SERIES}:N",
                title=None,
                sort=series,
                scale=alt.Scale(domain=series, range=list(NEUTRAL)),
                legend=alt.Legend(
                    orient="top-left", direction="vertical", labelLimit=400, fillColor="white", padding=6
                ),
            ),
            tooltip=[
                alt.Tooltip(f"{SERIES}:N"),
                alt.Tooltip(f"{COST}:Q", format=".3g"),
                alt.Tooltip(f"{S.ACCURACY}:Q", format=".3f"),
            ],
        )
    )
    saving = base.transform_filter(_is("saving"))
    rules = saving.mark_rule(strokeWidth=8, color="#2ca02c", opacity=0.55).encode(
        x2=alt.X2("cost2:Q"),
        tooltip=[
            alt.Tooltip("label:N", title="budget: single cost / allocation cost"),
            alt.Tooltip(f"{COST}:Q", title="allocation cost at equal accuracy", format=".3g"),
            alt.Tooltip("cost2:Q", title="single option cost", format=".3g"),
        ],
    )
    labels = saving.mark_text(color="#1b7a1b", fontSize=_FONT, fontWeight="bold").encode(
        x=alt.X("cost_mid:Q"), y=alt.Y("label_y:Q"), text="label:N"
    )
    return alt.layer(lines, rules, labels).properties(
        width=820,
        height=380,
        title=_title(
            "Per-difficulty allocation versus the best single option",
            "one option per difficulty chosen by the exact DP (planner.search.allocate) versus one option for every "
            "question, at the same average budget; green bars: compute saved at equal accuracy at each budget "
            "(single option's cost / the allocation's, e.g. B2: 1.5x)",
            "PREDICTED, in sample: accuracies from the curves (measured points and fitted laws), costs from the cost "
            "model; the held-out check of this comparison is among the headline findings",
        ),
    )


def plot_moe(fronts: pd.DataFrame, *, enc: Encoding | None = None) -> alt.VConcatChart:
    """Each model's accuracy-cost front (best option of the model at each cost) for the MoE
    and the dense models of equal active and equal total parameters: one row per MoE model,
    FLOPs on the left and US$ on the GPU on the right; colour = model, shape = strategy,
    opacity = accuracy source.

    ``fronts`` is the first frame of :func:`planner.report.tradeoffs.moe_frames`.
    """
    enc = _encoding(enc, fronts)
    rows = []
    for _, part in fronts.groupby("moe", sort=True):
        roles = "; ".join(dict.fromkeys(part[SERIES]))
        panels = []
        for key in (S.FLOPS, "usd"):
            df = part[part["cost_key"] == key]
            if df.empty:
                continue
            base = alt.Chart(_data(df)).encode(
                x=alt.X(
                    f"{COST}:Q",
                    scale=alt.Scale(type="log"),
                    axis=_axis(key),
                    title=f"{COST_LABELS.get(key, key)} (predicted)",
                ),
                y=_acc_axis("best accuracy of the model"),
                color=enc.color(),
            )
            lines = base.mark_line(interpolate="step-after", strokeWidth=1.8).encode(
                detail=alt.Detail(f"{S.MODEL}:N")
            )
            points = base.mark_point(filled=True, size=55).encode(
                shape=enc.shape(),
                opacity=enc.opacity(),
                tooltip=[
                    alt.Tooltip(f"{SERIES}:N", title="role"),
                    alt.Tooltip(f"{OPTION}:N", title="option"),
                    alt.Tooltip(f"{S.ACCURACY}:Q", format=".3f"),
                    alt.Tooltip(f"{COST}:Q", title=key, format=".3g"),
                    alt.Tooltip(f"{SOURCE}:N"),
                ],
            )
            panels.append(alt.layer(lines, points).properties(width=400, height=280))
        rows.append(
            alt.hconcat(*panels).properties(title=alt.TitleParams(roles, anchor="start", fontSize=_FONT))
        )
    return alt.vconcat(*rows).properties(
        title=_title(
            "Dense versus MoE at equal active and at equal total parameters",
            "each model's best accuracy at each cost (its own Pareto front over strategies and knobs); "
            "accuracy measured or fitted from the profile; costs PREDICTED by the cost model",
            "US$ on the GPU counts memory traffic: an MoE reads the weights of every expert a batch touches",
        )
    )


def plot_kv_cache(
    frame: pd.DataFrame, models: Sequence[str] | None = None, *, enc: Encoding | None = None, columns: int = 2
) -> alt.FacetChart:
    """KV-cache bytes of one query against parallel samples (log-log), one panel per model:
    PREDICTED lines (cost model; colour = model, dash = context per sample and prefix sharing,
    legend in context order), MEASURED points from the profile (diamonds), and the GPU memory
    left for KV after the weights (red rule).

    ``frame`` is :func:`planner.report.serving_frames.kv_frame`; ``models`` orders the panels.
    """
    models = list(models) if models is not None else list(dict.fromkeys(frame[S.MODEL]))
    enc = _encoding(enc, frame)
    pred = frame[frame[KIND] == "predicted"]
    series = list(dict.fromkeys(pred[SERIES]))  # kv_frame's order: profiled context, then longer ones
    dashes = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3], [1, 4], [10, 2]]
    base = alt.Chart().encode(
        x=alt.X("samples:Q", scale=alt.Scale(type="log", base=2), title="parallel samples per query (n)"),
        y=alt.Y(
            f"{S.KV_BYTES_PEAK}:Q", scale=alt.Scale(type="log"), axis=_SI, title="KV-cache bytes at the peak"
        ),
    )
    tip = [
        alt.Tooltip(f"{SERIES}:N"),
        alt.Tooltip("samples:Q"),
        alt.Tooltip("context_tokens:Q", format=",.0f"),
        alt.Tooltip(f"{S.KV_BYTES_PEAK}:Q", format=".3s"),
        alt.Tooltip(f"{SOURCE}:N"),
    ]
    lines = (
        base.transform_filter(_is("predicted"))
        .mark_line(strokeWidth=1.6)
        .encode(
            color=enc.color(),
            strokeDash=alt.StrokeDash(
                f"{SERIES}:N",
                title="predicted (cost model), context per sample",
                sort=series,
                scale=alt.Scale(domain=series, range=[dashes[i % len(dashes)] for i in range(len(series))]),
                legend=alt.Legend(
                    orient="bottom",
                    direction="vertical",
                    labelLimit=500,
                    titleLimit=500,
                    symbolStrokeColor="#555555",
                ),
            ),
            tooltip=tip,
        )
    )
    measured = (
        base.transform_filter(_is("measured"))
        .mark_point(shape="diamond", filled=True, size=100, stroke="black", strokeWidth=1)
        .encode(color=enc.color(), tooltip=tip)
    )
    cap = base.transform_filter(_is("capacity"))
    rule = cap.mark_rule(color=HIGHLIGHT, strokeDash=[6, 3], strokeWidth=1.5).encode(
        x=alt.value(0), x2=alt.value(320), tooltip=tip
    )
    label = cap.mark_text(align="left", dx=4, dy=-7, color=HIGHLIGHT, fontSize=11).encode(
        x=alt.value(0), text=f"{SERIES}:N"
    )
    return (
        alt.layer(lines, measured, rule, label, data=_data(frame))
        .properties(width=320, height=240)
        .facet(
            facet=alt.Facet(
                f"{S.MODEL}:N", title="model", sort=models, header=alt.Header(labelFontSize=_FONT)
            ),
            columns=columns,
            title=_title(
                "KV-cache memory versus samples and context",
                "lines: PREDICTED by the cost model (planner.costs.kv_peak_bytes) for a pool of n samples, dash = "
                "context per sample and whether the prompt is shared; diamonds: MEASURED KV peak of the profiled pools",
                "red: GPU memory left for KV after the weights (catalog memory x 90%, predicted)",
            ),
        )
    )
