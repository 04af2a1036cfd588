"""One visual encoding for every chart of the report: a model keeps its colour, a strategy its
shape and an accuracy source its opacity in every chart, with the same legend order.

:class:`Encoding` holds the report's models (dense ones by size, then MoE, as
:func:`planner.report.data.model_order` sorts them) and strategies (sorted), and returns the
Altair channels that map them. Colours that mean something else (the recommended options,
the GPU memory line, the allocation against the single option) avoid the model palette.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import altair as alt

from fitting import schema as S

from ..constants import SOURCE, SOURCES

__all__ = ["Encoding", "MODEL_PALETTE", "STRATEGY_SHAPES", "SOURCE_OPACITY", "HIGHLIGHT", "NEUTRAL"]

#: model colours in model order (Tableau 10 without its red, which marks recommendations)
MODEL_PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#b279a2",
    "#72b7b2",
    "#eeca3b",
    "#9d755d",
    "#ff9da6",
    "#bab0ac",
)
#: strategy shapes in sorted strategy order (the diamond is kept for saturation points and KV measurements)
STRATEGY_SHAPES = (
    "circle",
    "square",
    "triangle-up",
    "cross",
    "triangle-down",
    "triangle-right",
    "triangle-left",
    "wedge",
    "arrow",
)
#: opacity of a mark by the source of its accuracy: measured solid, predicted fainter
SOURCE_OPACITY = {"measured": 1.0, "fitted": 0.55, "extrapolated": 0.25}
#: the report's recommendations and limits
HIGHLIGHT = "#d62728"
#: series that are not models (allocation against the single option)
NEUTRAL = ("#222222", "#8c8c8c")


@dataclass(frozen=True)
class Encoding:
    """The report's shared scales (module docstring)."""

    models: tuple[str, ...]
    strategies: tuple[str, ...]

    @classmethod
    def of(cls, models: Iterable[str], strategies: Iterable[str]) -> Encoding:
        """Models in the order given (the report's model order), strategies sorted."""
        return cls(tuple(dict.fromkeys(map(str, models))), tuple(sorted({str(s) for s in strategies})))

    def extend(self, models: Sequence[str] = (), strategies: Sequence[str] = ()) -> Encoding:
        """The same encoding with any missing model or strategy appended (a chart never loses one)."""
        ms = self.models + tuple(m for m in dict.fromkeys(map(str, models)) if m not in self.models)
        ss = self.strategies + tuple(s for s in sorted(set(map(str, strategies))) if s not in self.strategies)
        return Encoding(ms, ss)

    def color(self, field: str = S.MODEL, title: str | None = "model", legend: bool = True) -> alt.Color:
        scale = alt.Scale(
            domain=list(self.models),
            range=[MODEL_PALETTE[i % len(MODEL_PALETTE)] for i in range(len(self.models))],
        )
        lg = (
            alt.Legend(symbolOpacity=1, symbolType="circle", symbolSize=90, orient="right")
            if legend
            else None
        )
        return alt.Color(f"{field}:N", title=title, scale=scale, legend=lg, sort=list(self.models))

    def shape(
        self, field: str = S.STRATEGY, title: str | None = "strategy", legend: bool = True
    ) -> alt.Shape:
        scale = alt.Scale(
            domain=list(self.strategies),
            range=[STRATEGY_SHAPES[i % len(STRATEGY_SHAPES)] for i in range(len(self.strategies))],
        )
        lg = (
            alt.Legend(symbolFillColor="#555555", symbolStrokeColor="#555555", orient="right")
            if legend
            else None
        )
        return alt.Shape(f"{field}:N", title=title, scale=scale, legend=lg, sort=list(self.strategies))

    @staticmethod
    def opacity(
        field: str = SOURCE, title: str | None = "accuracy source", legend: bool = True
    ) -> alt.Opacity:
        scale = alt.Scale(domain=list(SOURCES), range=[SOURCE_OPACITY[s] for s in SOURCES])
        lg = alt.Legend(symbolType="circle", symbolFillColor="#555555", orient="right") if legend else None
        return alt.Opacity(f"{field}:N", title=title, scale=scale, legend=lg, sort=list(SOURCES))
