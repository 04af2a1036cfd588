"""Headline findings of a profile, in words with numbers (what ``ttc demo`` prints).

Each finding is computed from the option table of :class:`planner.space.OptionSpace`:
accuracies are MEASURED points of the profile (``source == "measured"``), costs are
PREDICTED by the cost model (:mod:`planner.costs`) from the measured token counts. Nothing
here is a constant: if the profile does not show an effect, the finding says so.
"""

from __future__ import annotations

import math

import pandas as pd

from ..catalog import load_catalog
from ..constants import ACCURACY, ARM, KNOB_VALUE, MODEL, SIMULATED, SOURCE, STRATEGY
from ..profile import Profile
from ..recommend import build_space
from ..search import compare_with_single
from ..space import CostModel

__all__ = ["headline_findings", "small_vs_large", "allocation_saving", "moe_vs_dense"]


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _fmt_flops(x: float) -> str:
    return f"{x:.2g} FLOPs"


def _label(space, row: pd.Series) -> str:
    """An option row of the table in words: model strategy knobs."""
    return _choice_label(space, f"{row[ARM]} x={row[KNOB_VALUE]:g}")


def _choice_label(space, option: str) -> str:
    """``"ARM_KEY x=V"`` (as the allocator names an option) in words: model strategy knobs."""
    key, _, x = option.rpartition(" x=")
    try:
        choice = space.option_choice(space.arm_by_key(key), float(x))
    except (KeyError, ValueError):
        return option
    knobs = ",".join(f"{k}={v}" for k, v in (choice.get("knobs") or {}).items())
    return f"{choice['model']} {choice['strategy']}" + (f" {knobs}" if knobs else "")


def _hardest(space) -> str:
    bins = [b for b in space.bins if b != "all"]
    try:
        return max(bins, key=float)
    except ValueError:
        return sorted(bins)[-1] if bins else "all"


def _measured_table(space, difficulty: str) -> pd.DataFrame:
    table = space.table(space.target(difficulty))
    if table.empty:
        return table
    table = table[(table[SOURCE] == "measured") & (table[SIMULATED] == "")]
    return table[table["flops"].notna()]


def small_vs_large(
    space,
    params: dict[str, float],
    architectures: dict[str, str],
    difficulty: str,
    tables: dict | None = None,
) -> str:
    """Cheapest option of a smaller model that matches the largest dense model's greedy accuracy."""
    table = tables[difficulty] if tables else _measured_table(space, difficulty)
    dense = {m: p for m, p in params.items() if architectures.get(m) == "dense" and m in set(table[MODEL])}
    if len(dense) < 2:
        return f"level {difficulty}: fewer than two dense models profiled; no size comparison."
    largest = max(dense, key=dense.get)
    greedy = table[(table[MODEL] == largest) & table[STRATEGY].str.startswith("greedy")]
    if greedy.empty:
        return f"level {difficulty}: {largest} has no greedy measurement; no size comparison."
    ref = greedy.sort_values(ACCURACY).iloc[-1]
    smaller = table[table[MODEL].isin([m for m in dense if dense[m] < dense[largest]])]
    match = smaller[smaller[ACCURACY] >= ref[ACCURACY]].sort_values("flops")
    head = f"level {difficulty}: {_label(space, ref)} reaches {_pct(ref['accuracy'])} (measured) at {_fmt_flops(ref['flops'])}/query"
    if match.empty:
        best = smaller.sort_values(ACCURACY).iloc[-1] if len(smaller) else None
        tail = (
            f"; no smaller dense model matched it (best: {_label(space, best)} {_pct(best['accuracy'])})"
            if best is not None
            else ""
        )
        return head + tail + "."
    m = match.iloc[0]
    ratio = ref["flops"] / m["flops"]
    cheaper = f"{ratio:.1f}x less compute" if ratio >= 1 else f"{1 / ratio:.1f}x more compute"
    return (
        f"{head}; {_label(space, m)} reaches {_pct(m['accuracy'])} at {_fmt_flops(m['flops'])}/query, {cheaper} "
        f"(costs predicted by the cost model from measured tokens)."
    )


def allocation_saving(space, budget_quantile: float = 0.5, tables: dict | None = None) -> str:
    """Per-difficulty allocation versus the best single option at the same average FLOPs."""
    bins = [b for b in space.bins if b != "all"]
    if len(bins) < 2:
        return "one difficulty bin only: no per-difficulty allocation."
    tables = {b: tables[b] if tables else _measured_table(space, b) for b in bins}
    tables = {b: t for b, t in tables.items() if len(t)}
    if len(tables) < 2:
        return "too few measured options per difficulty for an allocation."
    weights = {b: 1.0 / len(tables) for b in tables}
    budget = float(pd.concat(tables.values())["flops"].quantile(budget_quantile))
    cmp = compare_with_single(tables, weights, budget, cost_key="flops")
    if cmp.get("single_accuracy") is None:
        return f"at {_fmt_flops(budget)}/query no single option is affordable in every bin."
    ratio = cmp.get("compute_ratio")
    single = _choice_label(space, cmp["single_option"])
    saved = (
        f"it needs {ratio:.1f}x less compute to match the best single option ({single})"
        if ratio is not None and math.isfinite(ratio)
        else "no cheaper allocation matches the best single option"
    )
    return (
        f"uniform mix of levels {', '.join(sorted(tables))} at {_fmt_flops(budget)}/query: choosing one option per "
        f"level gives {_pct(cmp['allocation_accuracy'])} vs {_pct(cmp['single_accuracy'])} for the best single "
        f"option; {saved} (measured accuracies, exact allocation)."
    )


def moe_vs_dense(space, params_active: dict[str, float], params_total: dict[str, float],
                 architectures: dict[str, str], difficulty: str, tables: dict | None = None) -> str:  # fmt: skip
    """The MoE against the dense models closest in active and in total parameters (greedy CoT)."""
    table = tables[difficulty] if tables else _measured_table(space, difficulty)
    moes = [m for m, a in architectures.items() if a == "moe" and m in set(table[MODEL])]
    dense = [m for m, a in architectures.items() if a == "dense" and m in set(table[MODEL])]
    if not moes or not dense:
        return "no MoE and dense models profiled together: no MoE comparison."
    moe = moes[0]
    by_active = min(dense, key=lambda m: abs(math.log(params_total[m] / params_active[moe])))
    by_total = min(dense, key=lambda m: abs(math.log(params_total[m] / params_total[moe])))

    def best_greedy(model: str) -> pd.Series | None:
        g = table[(table[MODEL] == model) & table[STRATEGY].str.startswith("greedy")]
        return g.sort_values(ACCURACY).iloc[-1] if len(g) else None

    rows = {m: best_greedy(m) for m in (moe, by_active, by_total)}
    if any(r is None for r in rows.values()):
        return "greedy measurements missing for the MoE comparison."
    r = rows
    return (
        f"level {difficulty}, greedy: {moe} ({params_active[moe] / 1e6:.2f}M active / {params_total[moe] / 1e6:.2f}M "
        f"total) reaches {_pct(r[moe]['accuracy'])} at {_fmt_flops(r[moe]['flops'])}/query; {by_active} (equal active) "
        f"{_pct(r[by_active]['accuracy'])} at {_fmt_flops(r[by_active]['flops'])}; {by_total} (about equal total) "
        f"{_pct(r[by_total]['accuracy'])} at {_fmt_flops(r[by_total]['flops'])}."
    )


def headline_findings(profile: Profile, *, gpu: str = "h100") -> list[str]:
    """Three findings (size vs sampling, allocation, MoE vs dense) of a loaded profile."""
    coster = CostModel(profile.specs, hardware=load_catalog().gpu(gpu))
    space = build_space(profile, coster)
    hardest = _hardest(space)
    specs = profile.specs
    active = {m: float(s.params_active) for m, s in specs.items()}
    total = {m: float(s.params_total) for m, s in specs.items()}
    arch = dict(profile.architectures)
    # each level's option table once (enumerating and pricing every option is the costly part)
    levels = {b for b in space.bins if b != "all"} | {hardest}
    tables = {b: _measured_table(space, b) for b in sorted(levels)}
    return [
        small_vs_large(space, total, arch, hardest, tables),
        allocation_saving(space, tables=tables),
        moe_vs_dense(space, active, total, arch, hardest, tables),
    ]
