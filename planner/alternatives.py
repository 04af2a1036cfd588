"""The chosen option and its alternatives as a recommendation states them (:mod:`planner.recommend`).

:func:`option_item` is one option in the JSON of docs/design.md (choice, accuracy and interval,
source, cost, and how it is served: GPU, tensor-parallel degree and memory per GPU, or the
API; a ``verified`` option adds its checker assumption). :func:`runners_up` picks the best
alternatives within budget, one per arm, then at most one over budget (the more accurate one
with the smallest overrun), each with why it lost (:func:`why_not`, in words, including why
an option with fewer tokens is not cheaper in FLOPs). :func:`calls_note` explains the tokens
of a multi-call choice.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .constants import (
    ACCURACY,
    ACCURACY_HI,
    ACCURACY_LO,
    ACCURACY_TOL,
    ARM,
    COST_KEYS,
    KNOB_VALUE,
    MEMORY_BYTES,
    MODEL,
    SOURCE,
    SOURCE_RANK,
    TP,
    within_budget,
)
from .search import Budget, SearchResult
from .space import CostModel, OptionSpace
from .space.arms import VERIFIED

__all__ = ["option_item", "option_cost", "runners_up", "why_not", "calls_note", "json_number"]


def json_number(v):
    """A JSON number with 6 significant digits (None for missing or non-finite).

    Examples
    --------
    >>> json_number(1 / 3), json_number(float("nan")), json_number(None)
    (0.333333, None, None)
    """
    if v is None:
        return None
    v = float(v)
    return float(f"{v:.6g}") if math.isfinite(v) else None


def option_cost(row) -> dict[str, float | None]:
    return {k: (float(row[k]) if k in row and pd.notna(row[k]) else None) for k in COST_KEYS}


def option_item(space: OptionSpace, r, coster=None) -> dict:
    """An option row as the recommendation JSON shows it (with how it is served, given the
    cost model ``coster``: GPU, tensor-parallel degree and whether it was chosen, batch)."""
    out = {
        "choice": space.option_choice(space.arm_by_key(r[ARM]), r[KNOB_VALUE]),
        "expected_accuracy": json_number(r[ACCURACY]),
        "accuracy_interval": [json_number(r[ACCURACY_LO]), json_number(r[ACCURACY_HI])],
        "source": r[SOURCE],
        "cost": {k: json_number(v) for k, v in option_cost(r).items()},
    }
    if isinstance(coster, CostModel):
        serving = coster.serving()
        if TP in r and pd.notna(r[TP]) and math.isfinite(float(r[TP])):
            serving["tp"] = int(r[TP])
            serving["tp_source"] = "given" if coster.tp is not None else "auto"
        if MEMORY_BYTES in r and pd.notna(r[MEMORY_BYTES]):
            serving["memory_bytes_per_gpu"] = json_number(r[MEMORY_BYTES])
        out["serving"] = serving
        if out["choice"]["strategy"] == VERIFIED:
            cost = coster.checker_cost
            out["assumptions"] = {
                "checker_cost_per_sample": dict(cost) if cost else "0 (assumed free; set checker_cost)"
            }
    return out


def _overrun(row, budget: Budget) -> tuple[str, float] | None:
    """The limit an option exceeds most, as (cost key, cost / limit); None within budget."""
    over = [
        (k, float(row[k]) / lim)
        for k, lim in budget.limits.items()
        if k in row and not within_budget(row[k], lim)
    ]
    return max(over, key=lambda t: t[1]) if over else None


def why_not(row, choice_row, budget: Budget, objective: str, space: OptionSpace | None = None) -> str:
    """Why an option lost to the choice, in words (and why a cheaper-looking one is not cheaper)."""
    over = _overrun(row, budget)
    if over:
        k, ratio = over
        return f"over budget: {ratio:.2g}x the {k} limit ({row[k]:.3g} > {budget.limits[k]:.3g})"
    a, b = float(row[objective]), float(choice_row[objective])
    name = "expected accuracy" if objective == ACCURACY else "lower bound of accuracy"
    if a < b - ACCURACY_TOL and row[SOURCE] == "measured" and choice_row[SOURCE] != "measured":
        text = (
            f"{name} {a:.3f} < {b:.3f}, but measured; the choice is {choice_row[SOURCE]} "
            f"(interval {choice_row[ACCURACY_LO]:.3f}-{choice_row[ACCURACY_HI]:.3f})"
        )
    elif a < b - ACCURACY_TOL:
        key = budget.primary()
        ratio = choice_row[key] / row[key] if row[key] > 0 else math.inf
        extra = f", though {ratio:.2g}x cheaper in {key}" if ratio >= 1.1 else ""
        text = f"{name} {a:.3f} < {b:.3f}{extra}"
    elif row[SOURCE_RANK] > choice_row[SOURCE_RANK]:
        text = f"same {name}, but {row[SOURCE]} rather than {choice_row[SOURCE]}"
    else:
        text = f"same {name}, costs more {budget.primary()}"
    return text + _tokens_vs_flops(row, choice_row, budget.primary(), space)


def _tokens_vs_flops(row, choice_row, key: str, space: OptionSpace | None) -> str:
    """When an option needs fewer tokens but more of the budgeted compute than the choice, say
    why: tokens are not compute (a larger model, or a choice whose calls re-send their context)."""
    if key == "tokens" or not ("tokens" in row and key in row):
        return ""
    if not (row["tokens"] < choice_row["tokens"] and row[key] > choice_row[key]):
        return ""
    text = f"; fewer tokens ({row['tokens']:,.0f} vs {choice_row['tokens']:,.0f}) but more {key}"
    if space is None:
        return text
    if row[MODEL] != choice_row[MODEL]:
        try:
            spec = space.coster.spec
            ratio = float(spec(row[MODEL]).params_active) / float(spec(choice_row[MODEL]).params_active)
        except (AttributeError, ValueError):
            return text
        return text + f": {row[MODEL]} has {ratio:.2g}x the active parameters of {choice_row[MODEL]}"
    if _calls(space, choice_row) > 1:
        return text + " (the choice re-sends its context: see the note)"
    return text


def _calls(space: OptionSpace, row) -> int:
    """Engine calls one execution of an option makes (1 when its strategy has no descriptor)."""
    try:
        return int(space.arm_by_key(row[ARM]).workload_shape(float(row[KNOB_VALUE])).calls)
    except (KeyError, ValueError, AttributeError):
        return 1


def calls_note(space: OptionSpace, row) -> list[str]:
    calls = _calls(space, row)
    if calls <= 1:
        return []
    return [
        f"the choice makes {calls} engine calls per query: its tokens count the context re-sent to each call "
        "(as an API bills them), its FLOPs do not recompute the cached prefix"
    ]


def runners_up(
    space: OptionSpace, res: SearchResult, best, budget: Budget, n: int = 2, coster=None
) -> list[dict]:
    """The best alternatives within budget, one per arm (when the choice is not measured, the
    best MEASURED one first: what is known for sure), then at most one option over budget: the
    more accurate one with the smallest overrun (what a little more budget would buy). Options
    over the GPU memory limit are never offered: they do not run on the GPU at all."""
    obj = res.objective
    ranked = res.ranked
    picks, arms = [], {best[ARM]}
    if best[SOURCE] != "measured":
        measured = ranked[(ranked[SOURCE] == "measured") & (ranked[ARM] != best[ARM])]
        if len(measured):
            picks.append(measured.iloc[0])
            arms.add(measured.iloc[0][ARM])
    for _, r in ranked.iterrows():
        if len(picks) >= n:
            break
        if r[ARM] not in arms:
            picks.append(r)
            arms.add(r[ARM])
    ev = res.evaluated if res.evaluated is not None else ranked
    user = (
        Budget({k: v for k, v in budget.limits.items() if k != MEMORY_BYTES})
        if len(budget.limits) > 1 or MEMORY_BYTES not in budget.limits
        else None
    )
    if len(ev) and user is not None:
        hard = Budget({MEMORY_BYTES: budget.limits[MEMORY_BYTES]}) if MEMORY_BYTES in budget.limits else None
        ok = hard.feasible(ev) if hard is not None else np.ones(len(ev), dtype=bool)
        over = ev[ok & ~user.feasible(ev) & (ev[obj] > best[obj] + ACCURACY_TOL)]
        if len(over):
            ratio = over.apply(lambda r: _overrun(r, user)[1], axis=1)
            over = over.assign(_overrun=ratio.to_numpy(float))
            picks.append(over.sort_values(["_overrun", obj], ascending=[True, False]).iloc[0])
    return [{**option_item(space, r, coster), "why_not": why_not(r, best, budget, obj, space)} for r in picks]
