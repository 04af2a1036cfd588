"""Trade-off frames of the report: per-difficulty allocation against the best single option,
and dense against MoE models (see :mod:`planner.report.data` for the context and columns)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from fitting import schema as S

from ..constants import (
    ACCURACY,
    ACCURACY_LO,
    ARM,
    KNOB_VALUE,
    MEMORY_BYTES,
    MODEL,
    SOURCE,
    STRATEGY,
    within_budget,
)
from ..search import (
    Budget,
    InfeasibleBudget,
    allocate_exact,
    allocation_frontier,
    bin_tables,
    compare_with_single,
    pareto_exhaustive,
)
from .data import BUDGET, COST, KIND, OPTION, SERIES, PlanContext, pareto_frame
from .format import format_budget, format_params

__all__ = ["allocation_frames", "moe_frames"]


def allocation_frames(ctx: PlanContext, budgets: Sequence[float]) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Per-difficulty allocation against the best single option, on the mix.

    Returns
    -------
    curves : DataFrame
        :data:`KIND` ``frontier`` rows (columns :data:`SERIES`, :data:`COST`, accuracy): the
        exact allocation frontier (:func:`planner.search.allocation_frontier`, one option
        per difficulty, average cost per query) and the best single option's front (the
        Pareto front of the mix's options); :data:`KIND` ``saving`` rows: per budget, the
        single option's accuracy and cost and the least average cost at which an
        allocation matches it (``cost2``), i.e. the compute saved at equal accuracy.
    table : DataFrame
        :func:`planner.search.compare_with_single` per budget, plus the allocation's choice
        per difficulty.
    note : str
        Why the section is empty, or "".
    """
    key = ctx.budget_key
    if len(ctx.mix) < 2:
        return pd.DataFrame(), pd.DataFrame(), "the profile has a single difficulty bin: nothing to allocate"
    per_query = Budget({MEMORY_BYTES: ctx.memory_limit_bytes}) if ctx.memory_limit_bytes else None
    tables = bin_tables(ctx.space, ctx.mix, per_query)
    if any(t.empty for t in tables.values()):
        return pd.DataFrame(), pd.DataFrame(), "some difficulty has no option: nothing to allocate"
    frontier = allocation_frontier(tables, ctx.mix, key, ctx.risk)
    single = pareto_frame(ctx, None, key)
    single = single[single["on_front"]].sort_values(COST)
    obj = ACCURACY if ctx.risk == "expected" else ACCURACY_LO
    curves = [
        pd.DataFrame(
            {
                SERIES: "per-difficulty allocation (exact DP)",
                COST: frontier["cost"],
                S.ACCURACY: frontier[ACCURACY],
                KIND: "frontier",
            }
        ),
        pd.DataFrame(
            {
                SERIES: "best single option for every difficulty",
                COST: single[COST],
                S.ACCURACY: single[obj],
                KIND: "frontier",
            }
        ),
    ]
    rows, savings = [], []
    for i, b in enumerate(budgets):
        tag = f"B{i + 1}"
        try:
            cmp = compare_with_single(tables, ctx.mix, float(b), key, ctx.risk)
            alloc = allocate_exact(tables, ctx.mix, float(b), key, ctx.risk)
        except InfeasibleBudget as exc:
            rows.append({"budget_tag": tag, BUDGET: float(b), "note": str(exc)})
            continue
        picks = "; ".join(f"{d}: {ctx.label(r[ARM], r[KNOB_VALUE])}" for d, r in alloc.choice.items())
        if cmp["single_option"]:  # "ARM x=VALUE" -> the option's label
            arm, _, x = str(cmp["single_option"]).rpartition(" x=")
            cmp["single_option"] = ctx.label(arm, float(x))
        rows.append({"budget_tag": tag, BUDGET: float(b), **cmp, "allocation": picks, "note": ""})
        if cmp["single_accuracy"] is not None and math.isfinite(cmp["cost_to_match"] or math.nan):
            savings.append(
                {
                    SERIES: "compute saved at equal accuracy",
                    KIND: "saving",
                    COST: cmp["cost_to_match"],
                    "cost2": cmp["single_cost"],
                    S.ACCURACY: cmp["single_accuracy"],
                    "cost_mid": math.sqrt(cmp["cost_to_match"] * cmp["single_cost"]),
                    "label": f"{tag}: {cmp['compute_ratio']:.2f}x",
                }
            )
    saving = pd.DataFrame(savings, columns=[SERIES, KIND, COST, "cost2", "cost_mid", S.ACCURACY, "label"])
    if len(saving):  # budgets that share a segment share its label: "B1,B2: 1.08x"
        saving["tag"] = saving["label"].str.split(":").str[0]
        saving["ratio"] = saving["label"].str.split(": ").str[1]
        saving = saving.groupby([COST, "cost2", S.ACCURACY], as_index=False, sort=False).agg(
            {SERIES: "first", KIND: "first", "cost_mid": "first", "tag": ",".join, "ratio": "first"}
        )
        saving["label"] = saving["tag"] + ": " + saving["ratio"]
        saving = saving.drop(columns=["tag", "ratio"])
    curves.append(saving)
    return pd.concat(curves, ignore_index=True), pd.DataFrame(rows), ""


# ---- dense versus MoE ------------------------------------------------------------------------------------
def _closest(specs: Mapping[str, object], dense: list[str], params: float) -> str:
    return min(dense, key=lambda m: abs(math.log(float(specs[m].params_total) / params)))


def moe_frames(
    ctx: PlanContext, budgets: Sequence[float]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """Each profiled MoE against the dense model closest in ACTIVE parameters and the one closest
    in TOTAL parameters: every model's accuracy-cost front on the mix, in FLOPs and in US$ on
    the GPU (where reading all experts' weights shows), the pairs, and each model's best
    option within each of the report's budgets.

    Returns ``(fronts, pairs, best_within_budgets, note)``; ``note`` says why nothing is shown
    (no MoE, no dense model).
    """
    specs = ctx.profile.specs
    models = set(ctx.profile.models)
    moes = sorted(m for m in models if specs[m].architecture == "moe")
    dense = sorted(m for m in models if specs[m].architecture != "moe")
    if not moes:
        empty = pd.DataFrame()
        return empty, empty, empty, "the profile has no MoE model: the dense-vs-MoE comparison is omitted"
    if not dense:
        empty = pd.DataFrame()
        return empty, empty, empty, "the profile has no dense model to compare the MoE with"
    table = ctx.table(ctx.mix)
    fronts, pairs, pair_rows = [], [], []
    for moe in moes:
        s = specs[moe]
        roles = {moe: "MoE " + moe}
        eq_active = _closest(specs, dense, float(s.params_active))
        eq_total = _closest(specs, dense, float(s.params_total))
        roles.setdefault(eq_active, f"dense {eq_active}, equal active")
        if eq_total != eq_active:
            roles.setdefault(eq_total, f"dense {eq_total}, equal total")
        else:
            roles[eq_active] = f"dense {eq_active}, equal active and total"
        for cost_key in (S.FLOPS, "usd"):
            for m, role in roles.items():
                t = table[(table[MODEL] == m) & table[cost_key].notna() & (table[cost_key] > 0)]
                if t.empty:
                    continue
                limits = {cost_key: float(t[cost_key].max()) * 1.01}
                if ctx.memory_limit_bytes is not None:
                    limits[MEMORY_BYTES] = float(ctx.memory_limit_bytes)
                res = pareto_exhaustive(_Fixed(t), ctx.mix, Budget(limits), cost_key=cost_key, risk=ctx.risk)
                f = res.pareto
                fronts.append(
                    pd.DataFrame(
                        {
                            "moe": moe,
                            SERIES: role,
                            S.MODEL: m,
                            "cost_key": cost_key,
                            COST: f[cost_key].to_numpy(float),
                            S.ACCURACY: f[ACCURACY].to_numpy(float),
                            SOURCE: f[SOURCE].to_numpy(str),
                            S.STRATEGY: f[STRATEGY].to_numpy(str),
                            OPTION: [ctx.label(a, x) for a, x in zip(f[ARM], f[KNOB_VALUE], strict=True)],
                        }
                    )
                )
        pair = {
            "MoE": moe,
            "MoE parameters (active / total)": f"{format_params(s.params_active)} / {format_params(s.params_total)}",
            "dense, equal active": f"{eq_active} ({format_params(specs[eq_active].params_total)})",
            "dense, equal total": f"{eq_total} ({format_params(specs[eq_total].params_total)})",
        }
        for i, b in enumerate(budgets):
            row = {"MoE": moe, "budget": f"B{i + 1}: {format_budget(ctx.budget_key, b)}"}
            for m, role in roles.items():
                t = table[(table[MODEL] == m) & within_budget(table[ctx.budget_key], b)]
                if ctx.memory_limit_bytes is not None:
                    t = t[t[MEMORY_BYTES] <= ctx.memory_limit_bytes]
                best = t.sort_values([ACCURACY, ctx.budget_key], ascending=[False, True]).head(1)
                if best.empty:
                    row[role] = "nothing fits"
                    continue
                top = best.iloc[0]
                label = ctx.label(top[ARM], top[KNOB_VALUE])
                row[role] = f"{float(top[ACCURACY]):.3f} ({top[SOURCE]}, {label})"
            pairs.append(row)
        pair_rows.append(pair)
    return pd.concat(fronts, ignore_index=True), pd.DataFrame(pair_rows), pd.DataFrame(pairs), ""


@dataclass
class _Fixed:
    """One fixed option table, answered for any target (the planner's searches only call
    ``table(target)``)."""

    frame: pd.DataFrame

    def table(self, target) -> pd.DataFrame:
        return self.frame
