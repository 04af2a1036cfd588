"""Dense versus sparse attention in the report: each profiled block top-k variant of a model
(``lab-m@attn_blocks=2``, :mod:`profiling.backends.sparse`) against the dense model it was
derived from, the best option of each within each of the report's budgets.

The sparse variant is its own model in the profile (its accuracy MEASURED with sparse decoding,
every option of it PRICED sparse by the cost model: fewer attention FLOPs and KV bytes read per
decoded token, the same KV held), so where it wins is where the attention it saves buys more
samples or a larger model than the accuracy it loses costs.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..constants import (
    ACCURACY,
    ACCURACY_HI,
    ACCURACY_LO,
    ARM,
    KNOB_VALUE,
    MEMORY_BYTES,
    MODEL,
    SOURCE,
    within_budget,
)
from .data import PlanContext
from .format import format_budget, format_cost

__all__ = ["sparse_frame", "sparse_pairs"]

#: accuracy differences below this are a tie (the planner's own ranking tolerance on accuracy)
_TIE = 1e-9
#: at equal accuracy, the variant wins only when it is at least this much cheaper (relative)
_CHEAPER = 0.005


def sparse_pairs(specs, models: Sequence[str]) -> list[tuple[str, str]]:
    """``(sparse variant, dense model)`` for every profiled variant whose dense model is profiled too."""
    out = []
    for m in models:
        setting = getattr(specs[m], "sparse", None)
        if setting is not None and m.endswith(setting.suffix):
            dense = m.removesuffix(setting.suffix)
            if dense in models and getattr(specs[dense], "sparse", None) is None:
                out.append((m, dense))
    return out


def _best(ctx: PlanContext, table: pd.DataFrame, model: str, budget: float) -> pd.Series | None:
    t = table[(table[MODEL] == model) & within_budget(table[ctx.budget_key], budget)]
    if ctx.memory_limit_bytes is not None:
        t = t[t[MEMORY_BYTES] <= ctx.memory_limit_bytes]
    best = t.sort_values([ACCURACY, ctx.budget_key], ascending=[False, True]).head(1)
    return None if best.empty else best.iloc[0]


def _verdict(ctx: PlanContext, dense: pd.Series | None, sparse: pd.Series | None) -> tuple[str, bool, bool]:
    """What the sparse variant does against the dense model within one budget: the text, whether
    it wins, and whether that rests on an accuracy gap inside both options' intervals (noise)."""
    if dense is None and sparse is None:
        return "nothing fits", False, False
    if dense is None:
        return "yes: only the sparse variant fits", True, False
    if sparse is None:
        return "no: only dense fits", False, False
    gap = float(sparse[ACCURACY]) - float(dense[ACCURACY])
    overlap = float(sparse[ACCURACY_LO]) <= float(dense[ACCURACY_HI]) and float(dense[ACCURACY_LO]) <= float(
        sparse[ACCURACY_HI]
    )
    noise = " (within the accuracy intervals)" if overlap else ""
    if gap > _TIE:
        return f"yes: +{100 * gap:.1f} points{noise}", True, overlap
    if gap < -_TIE:
        return f"no: {100 * gap:.1f} points{noise}", False, overlap
    d, s = float(dense[ctx.budget_key]), float(sparse[ctx.budget_key])
    if s < (1.0 - _CHEAPER) * d:
        return f"tie in accuracy, {100 * (1 - s / d):.0f}% cheaper", True, False
    return "tie", False, False


def sparse_frame(ctx: PlanContext, budgets: Sequence[float]) -> tuple[pd.DataFrame, str]:
    """Per (sparse variant, budget): the best option of the dense model and of the variant on
    the mix within the budget (and the GPU memory limit), and whether the variant wins
    (higher expected accuracy, or the same at least 0.5% cheaper; a gap inside both options'
    accuracy intervals is flagged). Returns ``(table, summary)``: the summary is one line per
    variant naming the budgets where it wins, or why the table is empty."""
    pairs = sparse_pairs(ctx.profile.specs, ctx.profile.models)
    if not pairs:
        return pd.DataFrame(), (
            "the profile has no sparse-attention variant beside its dense model (profile both, e.g. "
            "--model lab-m --model lab-m@attn_blocks=2): the dense-vs-sparse comparison is omitted"
        )
    table = ctx.table(ctx.mix)
    rows, lines = [], []
    for sparse, dense in pairs:
        wins, noisy = [], []
        for i, b in enumerate(budgets):
            best = {m: _best(ctx, table, m, b) for m in (dense, sparse)}
            verdict, won, overlap = _verdict(ctx, best[dense], best[sparse])
            tag = f"B{i + 1}"
            wins += [tag] if won else []
            noisy += [tag] if won and overlap else []
            row = {"sparse variant": sparse, "budget": f"{tag}: {format_budget(ctx.budget_key, b)}"}
            for role, m in (("dense", dense), ("sparse", sparse)):
                top = best[m]
                row[f"{role} best"] = (
                    "nothing fits"
                    if top is None
                    else f"{float(top[ACCURACY]):.3f} ({top[SOURCE]}, {ctx.label(top[ARM], top[KNOB_VALUE])}, "
                    f"{format_cost(ctx.budget_key, float(top[ctx.budget_key]))})"
                )
            row["sparse wins"] = verdict
            rows.append(row)
        where = (
            f"within {', '.join(wins)} of {len(budgets)} budgets" if wins else "within none of the budgets"
        )
        if noisy:
            where += f" ({', '.join(noisy)} by less than the accuracy intervals)"
        lines.append(
            f"{sparse} beats {dense} on {ctx.mix_label} {where} ({ctx.budget_key}; expected accuracy)"
        )
    return pd.DataFrame(rows), "; ".join(lines) + "."
