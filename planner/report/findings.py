"""Headline findings of a profile, checked on held-out questions (what ``ttc demo`` prints and
the report quotes).

Each finding is a choice made on one half of the questions and measured on the other half,
over repeated random splits (:class:`planner.holdout.HeldOut`): accuracies are MEASURED on the
held-out half (means over the splits, with the corrected resampled interval of
:func:`planner.holdout.summarize`), costs are PREDICTED by the cost model from the measured
tokens. A difference smaller than its standard error is called *within noise*. Nothing here is
a constant: if the profile does not show an effect, the finding says so.

:func:`compute_findings` returns :class:`Findings`: the sentences and, for every number in
them, the row of the report's held-out table that holds the same string (the report and the
CLI print both from this one object).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ..constants import (
    ACCURACY,
    ACCURACY_TOL,
    ARM,
    DEFAULT_HARDWARE,
    KNOB_VALUE,
    MEMORY_BYTES,
    MODEL,
    STRATEGY,
)
from ..search import InfeasibleBudget, allocate_exact, best_single
from ..split_engine import HeldOut, Key, SplitStat, SplitTables, most_common, summarize
from .data import PlanContext, default_budgets, planning_context
from .format import (
    format_cost,
    format_flops,
    format_params,
    format_pct,
    format_pct_interval,
    format_points,
    format_points_interval,
)

__all__ = [
    "Finding",
    "Findings",
    "compute_findings",
    "findings_for_context",
    "headline_findings",
    "next_steps",
    "verdict",
]


@dataclass
class Finding:
    """One headline finding: its sentence and the held-out table rows behind its numbers."""

    key: str
    text: str
    rows: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Findings:
    """The headline findings of a profile (module docstring)."""

    items: list[Finding]
    n_splits: int
    n_train: int
    n_test: int

    @property
    def texts(self) -> list[str]:
        return [f.text for f in self.items]

    def method(self) -> str:
        return (
            f"{self.n_splits} random splits of the questions into a planning half ({self.n_train} questions) "
            f"and a held-out half ({self.n_test}), stratified by difficulty; accuracies measured on the held-out "
            "half (mean over the splits, 90% corrected resampled t interval); costs predicted by the cost model "
            "from measured tokens; a difference smaller than its standard error (SE) is within noise"
        )

    def table(self) -> pd.DataFrame:
        """Every number of the findings, one row per option or comparison."""
        rows = [{"finding": f.key, **r} for f in self.items for r in f.rows]
        return pd.DataFrame(rows).fillna("") if rows else pd.DataFrame()


def verdict(stat: SplitStat) -> str:
    """How a difference compares with its noise, in words.

    Examples
    --------
    >>> verdict(SplitStat(0.013, 0.048, -0.07, 0.096, 20))
    'within noise (SE 4.8 points)'
    """
    if not math.isfinite(stat.se):
        return "one split only: no interval"
    se = f"SE {100 * stat.se:.1f} points"
    if stat.within_noise:
        return f"within noise ({se})"
    if stat.lo <= 0.0 <= stat.hi:
        return f"larger than its {se}, but the interval includes 0"
    return f"the interval excludes 0 ({se})"


# ---- the per-split checks ------------------------------------------------------------------------------
def _acc(tables: SplitTables, target: Mapping[str, float]) -> dict[Key, float]:
    t = tables.table(target)
    return {(a, float(x)): float(v) for a, x, v in zip(t[ARM], t[KNOB_VALUE], t[ACCURACY], strict=True)}


def _key(row) -> Key:
    return (row[ARM], float(row[KNOB_VALUE]))


def _best(table: pd.DataFrame) -> pd.Series | None:
    return None if table.empty else table.sort_values([ACCURACY, "flops"], ascending=[False, True]).iloc[0]


@dataclass
class _Context:
    held: HeldOut
    label: Callable[[str, float], str]
    specs: Mapping[str, object]
    n_splits: int
    seed: int
    ratio: float

    def flops(self, target_label: str, key: Key | None) -> float:
        if key is None:
            return math.nan
        t = self.held.full[target_label]
        hit = t[(t[ARM] == key[0]) & (t[KNOB_VALUE] == key[1])]
        return float(hit["flops"].iloc[0]) if len(hit) else math.nan

    def stat(self, df: pd.DataFrame, col: str, difference: bool = False) -> SplitStat:
        """Mean over the splits of ``df[col]`` with its interval; the floor of its standard
        error is the mean of ``df[col + " floor"]`` (the same quantity over every question)."""
        floors = df[f"{col} floor"] if f"{col} floor" in df else pd.Series(dtype=float)
        floor = float(floors.mean()) if floors.notna().any() else 0.0
        return summarize(
            list(df[col]), self.ratio, bounds=(-1.0, 1.0) if difference else (0.0, 1.0), floor=floor
        )

    def floor(self, weights: Mapping[str, float], *terms: tuple[float, Key | Mapping[str, Key]]) -> float:
        """:meth:`planner.split_engine.HeldOut.full_se` of ``sum(coef * option)`` (an option per bin
        when given as a mapping)."""
        by_bin = {b: [(c, k[b] if isinstance(k, Mapping) else k) for c, k in terms] for b in weights}
        return self.held.full_se(by_bin, weights)

    def name(self, key: Key | None) -> str:
        return "-" if key is None else self.label(*key)


def _row(
    what: str,
    option: str,
    share: str,
    stat: SplitStat | None,
    flops: float = math.nan,
    diff: SplitStat | None = None,
) -> dict[str, str]:
    out = {"what": what, "option (most often picked)": option, "picked in": share}
    if stat is not None:
        out["held-out accuracy"] = format_pct(stat.mean)
        out["90% interval"] = format_pct_interval(stat.lo, stat.hi)
    out["FLOPs per query (predicted)"] = format_flops(flops) if math.isfinite(flops) else ""
    if diff is not None:
        out["difference"] = format_points(diff.mean)
        out["difference interval"] = format_points_interval(diff.lo, diff.hi)
        out["verdict"] = verdict(diff)
    return out


def _acc_text(stat: SplitStat) -> str:
    return f"{format_pct(stat.mean)} {format_pct_interval(stat.lo, stat.hi)}"


def _diff_text(stat: SplitStat) -> str:
    return f"{format_points(stat.mean)} {format_points_interval(stat.lo, stat.hi)}, {verdict(stat)}"


def small_vs_large(c: _Context, level: str) -> Finding:
    """The largest dense model's best greedy decoding against the cheapest option of a smaller
    dense model that matches it, both chosen on the planning half."""
    target = {level: 1.0}
    full = c.held.full[level]
    dense = {m: float(c.specs[m].params_total) for m in set(full[MODEL]) if c.specs[m].architecture != "moe"}
    if len(dense) < 2:
        return Finding("size", f"Level {level}: fewer than two dense models profiled; no size comparison.")
    largest = max(dense, key=dense.get)
    smaller = [m for m in dense if dense[m] < dense[largest]]
    recs = []
    for train, test in c.held.splits(c.n_splits, c.seed):
        t, acc = train.table(target), _acc(test, target)
        ref = _best(t[(t[MODEL] == largest) & (t[STRATEGY] == "greedy")])
        if ref is None:
            continue
        match = t[t[MODEL].isin(smaller) & (t[ACCURACY] >= ref[ACCURACY] - ACCURACY_TOL)]
        m = None if match.empty else match.sort_values(["flops", ACCURACY], ascending=[True, False]).iloc[0]
        rec = {"ref": _key(ref), "ref_acc": acc.get(_key(ref), math.nan), "match": None}
        rec["ref_acc floor"] = c.floor(target, (1.0, _key(ref)))
        if m is not None:
            rec.update(match=_key(m), match_acc=acc.get(_key(m), math.nan))
            rec["diff"] = rec["match_acc"] - rec["ref_acc"]
            rec["match_acc floor"] = c.floor(target, (1.0, _key(m)))
            rec["diff floor"] = c.floor(target, (1.0, _key(m)), (-1.0, _key(ref)))
        recs.append(rec)
    if not recs:
        return Finding("size", f"Level {level}: {largest} has no greedy measurement; no size comparison.")
    df = pd.DataFrame(recs)
    ref, n_ref = most_common([r["ref"] for r in recs])
    ref_stat = c.stat(df, "ref_acc")
    ref_flops = c.flops(level, ref)
    share = f"{n_ref}/{len(df)}"
    head = (
        f"Level {level}: {c.name(ref)} answers {_acc_text(ref_stat)} of held-out questions at "
        f"{format_flops(ref_flops)}."
    )
    rows = [_row(f"level {level}: largest dense model, best greedy", c.name(ref), share, ref_stat, ref_flops)]
    match, n_match = most_common([r["match"] for r in recs])
    if match is None:
        text = f"{head} No smaller dense model matched it on the planning half in any of {len(df)} splits."
        return Finding("size", text, rows)
    m_stat, d_stat = c.stat(df, "match_acc"), c.stat(df, "diff", difference=True)
    m_flops = c.flops(level, match)
    m_share = f"{n_match}/{len(df)}"  # of all splits (the table says how many had a match)
    ratio = ref_flops / m_flops if m_flops > 0 else math.nan
    fewer = f"{ratio:.3g}x fewer" if ratio >= 1 else f"{1 / ratio:.3g}x more"
    missing = sum(r["match"] is None for r in recs)
    none = f"; in {missing}/{len(recs)} none matched" if missing else ""
    text = (
        f"{head} The cheapest smaller-model option that matched it on the planning half (most often "
        f"{c.name(match)}, picked in {m_share} splits{none}) answers {_acc_text(m_stat)} at "
        f"{format_flops(m_flops)}, {fewer} FLOPs (cost model): {_diff_text(d_stat)}."
    )
    rows.append(
        _row(
            f"level {level}: cheapest smaller model that matched on the planning half",
            c.name(match),
            m_share,
            m_stat,
            m_flops,
            d_stat,
        )
    )
    rows[-1]["FLOPs ratio (largest / smaller)"] = f"{ratio:.3g}x"
    rows[-1]["no match in"] = f"{missing}/{len(recs)}"
    return Finding("size", text, rows)


def allocation_vs_single(
    c: _Context, mix_label: str, budget: float, budget_tag: str, memory: float | None, cost_key: str = "flops"
) -> Finding:
    """One option per difficulty (exact DP) against the best single option at one budget, both
    chosen on the planning half."""
    mix = c.held.targets[mix_label]
    if len(mix) < 2:
        return Finding("allocation", "One difficulty bin only: no per-difficulty allocation.")
    recs = []
    for train, test in c.held.splits(c.n_splits, c.seed):
        tables = {b: train.table({b: 1.0}) for b in mix}
        if memory:
            tables = {b: t[t[MEMORY_BYTES] <= memory].reset_index(drop=True) for b, t in tables.items()}
        acc = {b: _acc(test, {b: 1.0}) for b in mix}
        try:
            alloc = allocate_exact(tables, mix, budget, cost_key)
        except InfeasibleBudget:
            continue
        single = best_single(tables, mix, budget, cost_key)
        picks = {b: _key(alloc.choice[b]) for b in mix}
        rec = {
            "alloc_acc": sum(w * acc[b].get(picks[b], math.nan) for b, w in mix.items()),
            "single": None,
            "alloc_acc floor": c.floor(mix, (1.0, picks)),
        }
        if single is not None:
            key = _key(next(iter(single.choice.values())))
            rec.update(single=key, single_acc=sum(w * acc[b].get(key, math.nan) for b, w in mix.items()))
            rec["diff"] = rec["alloc_acc"] - rec["single_acc"]
            rec["single_acc floor"] = c.floor(mix, (1.0, key))
            rec["diff floor"] = c.floor(mix, (1.0, picks), (-1.0, key))
        recs.append(rec)
    amount = (
        format_flops(budget)
        if cost_key == "flops"
        else f"{format_cost(cost_key, budget)} {cost_key} per query"
    )
    who = (
        "All questions (levels weighted by their question counts)"
        if mix_label.startswith("all")
        else f"The mix {mix_label}"
    )
    where = f"{who}, at {budget_tag} = {amount}"
    if not recs:
        return Finding("allocation", f"{where}: no allocation fits the budget.")
    df = pd.DataFrame(recs)
    a_stat = c.stat(df, "alloc_acc")
    rows = [
        _row(
            f"{budget_tag}: one option per difficulty (exact DP)",
            "per level (see the allocation section)",
            f"{len(df)}/{len(df)}",
            a_stat,
        )
    ]
    head = f"{where}: choosing one option per difficulty level on the planning half answers {_acc_text(a_stat)} of held-out questions"
    single, n_single = most_common([r["single"] for r in recs])
    if single is None:
        return Finding("allocation", f"{head}; no single option fits the budget at every level.", rows)
    s_stat, d_stat = c.stat(df, "single_acc"), c.stat(df, "diff", difference=True)
    share = f"{n_single}/{len(df)}"
    rows.append(
        _row(
            f"{budget_tag}: best single option",
            c.name(single),
            share,
            s_stat,
            c.flops(mix_label, single),
            d_stat,
        )
    )
    text = (
        f"{head}; the best single option chosen the same way (most often {c.name(single)}, {share} splits) "
        f"answers {_acc_text(s_stat)}: {_diff_text(d_stat)}."
    )
    return Finding("allocation", text, rows)


def moe_vs_dense(c: _Context, level: str) -> Finding:
    """The MoE's best greedy decoding against the dense models closest in active and in total
    parameters, each chosen on the planning half."""
    target = {level: 1.0}
    models = set(c.held.full[level][MODEL])
    moes = sorted(m for m in models if c.specs[m].architecture == "moe")
    dense = sorted(m for m in models if c.specs[m].architecture != "moe")
    if not moes or not dense:
        return Finding("moe", "No MoE and dense models profiled together: no MoE comparison.")
    moe = moes[0]
    active, total = float(c.specs[moe].params_active), float(c.specs[moe].params_total)
    by_active = min(dense, key=lambda m: abs(math.log(float(c.specs[m].params_total) / active)))
    by_total = min(dense, key=lambda m: abs(math.log(float(c.specs[m].params_total) / total)))
    others = list(dict.fromkeys([by_active, by_total]))
    recs = []
    for train, test in c.held.splits(c.n_splits, c.seed):
        t, acc = train.table(target), _acc(test, target)
        picks = {m: _best(t[(t[MODEL] == m) & (t[STRATEGY] == "greedy")]) for m in [moe, *others]}
        if any(p is None for p in picks.values()):
            continue
        rec = {m: _key(p) for m, p in picks.items()}
        rec.update({f"{m} acc": acc.get(_key(p), math.nan) for m, p in picks.items()})
        rec.update({f"{m} acc floor": c.floor(target, (1.0, _key(p))) for m, p in picks.items()})
        for m in others:
            rec[f"{moe} - {m}"] = rec[f"{moe} acc"] - rec[f"{m} acc"]
            rec[f"{moe} - {m} floor"] = c.floor(target, (1.0, _key(picks[moe])), (-1.0, _key(picks[m])))
        recs.append(rec)
    if not recs:
        return Finding("moe", f"Level {level}: greedy measurements missing for the MoE comparison.")
    df = pd.DataFrame(recs)
    role = {by_active: "equal active", by_total: "about equal total"}
    if by_active == by_total:
        role[by_active] = "closest in active and total"
    parts, rows, diffs = [], [], []
    for m in [moe, *others]:
        key, n = most_common([r[m] for r in recs])
        st = c.stat(df, f"{m} acc")
        flops = c.flops(level, key)
        diff = None if m == moe else c.stat(df, f"{moe} - {m}", difference=True)
        what = f"level {level}, greedy: {m}" + ("" if m == moe else f" ({role[m]})")
        rows.append(_row(what, c.name(key), f"{n}/{len(df)}", st, flops, diff))
        params = (
            f" ({format_params(active)} active / {format_params(total)} total parameters)"
            if m == moe
            else f" ({role[m]})"
        )
        parts.append(f"{c.name(key)}{params} {_acc_text(st)} at {format_flops(flops)}")
        if diff is not None:
            diffs.append(f"{moe} minus {m}: {_diff_text(diff)}")
    text = (
        f"Level {level}, greedy decoding on held-out questions: "
        + "; ".join(parts)
        + ". "
        + "; ".join(diffs)
        + "."
    )
    return Finding("moe", text, rows)


# ---- entry points ---------------------------------------------------------------------------------------
def compute_findings(
    held: HeldOut,
    *,
    label: Callable[[str, float], str],
    specs: Mapping[str, object],
    mix_label: str,
    budget: float,
    budget_tag: str,
    memory_limit_bytes: float | None = None,
    cost_key: str = "flops",
    n_splits: int = 20,
    seed: int = 0,
) -> Findings:
    """The three headline findings (size vs sampling, allocation, MoE vs dense) on held-out
    questions. ``held`` has a target per difficulty bin and the mix ``mix_label``; the size and
    MoE findings are about the hardest bin, the allocation one about the mix at ``budget``
    FLOPs per query (the report's budget ``budget_tag``)."""
    bins = [b for b, t in held.targets.items() if len(t) == 1 and b == next(iter(t))]
    try:
        hardest = max(bins, key=float)
    except ValueError:
        hardest = sorted(bins)[-1]
    train, test = held.split(seed)
    c = _Context(held, label, specs, n_splits, seed, len(test) / max(len(train), 1))
    items = [
        small_vs_large(c, hardest),
        allocation_vs_single(c, mix_label, budget, budget_tag, memory_limit_bytes, cost_key),
        moe_vs_dense(c, hardest),
    ]
    return Findings(items, n_splits, len(train), len(test))


def headline_findings(profile, *, gpu: str = DEFAULT_HARDWARE, n_splits: int = 20) -> list[str]:
    """The findings' sentences for a loaded profile (what ``ttc demo`` prints; the report
    computes them once with the rest of its content)."""
    ctx = planning_context(profile, gpu=gpu)
    budgets = default_budgets(ctx)
    return findings_for_context(ctx, budgets, n_splits=n_splits).texts


def findings_for_context(
    ctx: PlanContext, budgets: Sequence[float], *, n_splits: int = 20, seed: int = 0
) -> Findings:
    """:func:`compute_findings` on a report's planning context, at its middle budget."""
    targets = {d: {d: 1.0} for d in ctx.difficulties}
    targets[ctx.mix_label] = dict(ctx.mix)
    profile = ctx.profile
    held = HeldOut(
        ctx,
        profile.curves,
        profile.samples,
        targets,
        verifier=ctx.verifier,
        per_question=profile.per_question,
    )
    i = (len(budgets) - 1) // 2
    return compute_findings(
        held,
        label=ctx.label,
        specs=ctx.profile.specs,
        mix_label=ctx.mix_label,
        budget=float(budgets[i]),
        budget_tag=f"B{i + 1}",
        n_splits=n_splits,
        seed=seed,
        memory_limit_bytes=ctx.memory_limit_bytes,
        cost_key=ctx.budget_key,
    )


def next_steps(
    profile_dir: str | None,
    *,
    budget: float,
    budget_key: str = "flops",
    difficulty: str | None = None,
    gpu: str | None = DEFAULT_HARDWARE,
) -> list[tuple[str, str]]:
    """The two or three commands a user runs next, as ``(command, what it does)``: a
    recommendation and a held-out check on this profile, then the same on their own data."""
    flag = {
        "flops": "--budget-flops",
        "tokens": "--budget-tokens",
        "usd": "--budget-usd",
        "latency_s": "--latency-s",
    }
    where = f" --gpu {gpu}" if gpu else ""
    level = f" --difficulty {difficulty}" if difficulty else ""
    folder = profile_dir or "PROFILE"
    budget_flag = f"{flag.get(budget_key, '--budget-flops')} {budget:.2g}"
    return [
        (
            f"ttc recommend {folder} {budget_flag}{level}{where}",
            "what to run for one budget, with runner-ups",
        ),
        (
            f"ttc evaluate {folder}{where}",
            "is the planner right? plan on half the questions, measure on the other half",
        ),
        (
            "ttc profile --model YOUR_MODEL --task YOUR_QUESTIONS.jsonl --strategy greedy --strategy pool:n=16 "
            "--out runs/mine && ttc report runs/mine",
            "the same on your own model and questions (or import results: ttc import results.jsonl --out runs/mine)",
        ),
    ]
