"""Assemble the report: compute the frames and draw the charts (:mod:`.render` writes them)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import altair as alt
import numpy as np
import pandas as pd

from fitting import schema as S

from ..costs.estimate import SOURCE as COST_SOURCE
from ..space.assumed import describe
from . import charts as C
from . import data as D
from . import serving_frames as M
from . import tradeoffs as T
from .findings import Findings, findings_for_context, next_steps
from .format import UNITS, format_budget
from .measure import MEASURE_TEXT, measure_next_blocks, measure_next_tables
from .search import SEARCH_TEXT, search_table
from .sparse import sparse_frame
from .style import Encoding

__all__ = [
    "Section",
    "ReportContent",
    "compute_content",
]


@dataclass
class Section:
    """One section of the report: a chart and/or tables, with a paragraph saying what is shown."""

    key: str
    title: str
    text: str
    chart: alt.TopLevelMixin | None = None
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportContent:
    """Everything the writers need: the sections, headline facts and timings (seconds)."""

    title: str
    summary: list[str]
    sections: list[Section]
    frames: dict[str, pd.DataFrame]
    seconds: dict[str, float] = field(default_factory=dict)
    findings: Findings | None = None
    next_steps: list[tuple[str, str]] = field(default_factory=list)
    #: (a budget with its unit, the ``measure_next`` block of the mix's choice there; None where
    #: nothing fits), one per report budget
    measure_next: list[tuple[str, dict | None]] = field(default_factory=list)
    _specs: dict[str, dict] | None = field(default=None, repr=False)

    def charts(self) -> dict[str, alt.TopLevelMixin]:
        return {s.key: s.chart for s in self.sections if s.chart is not None}

    def specs(self) -> dict[str, dict]:
        """Each chart's Vega-Lite spec (``chart.to_dict()``, validated by Altair once, then cached)."""
        if self._specs is None:
            self._specs = {k: c.to_dict() for k, c in self.charts().items()}
        return self._specs


# ---- content ------------------------------------------------------------------------------------------
def _pct(v) -> str:
    return "-" if v is None or not math.isfinite(float(v)) else f"{float(v):.3f}"


def compute_content(
    ctx: D.PlanContext,
    budgets: Sequence[float] | None = None,
    *,
    qps: float = 10.0,
    n_splits: int = 20,
    seed: int = 0,
    gpu: str | None = None,
    n_boot: int = 200,
) -> ReportContent:
    """All frames, charts and tables of the report for one planning context, the headline
    findings checked on ``n_splits`` random held-out splits (:mod:`planner.report.findings`)
    and what to measure next at each budget (``n_boot`` bootstrap replicates, as ``ttc recommend``)."""
    t = {}
    t0 = time.perf_counter()
    key = ctx.budget_key
    budgets = list(budgets) if budgets else D.default_budgets(ctx)
    frames: dict[str, pd.DataFrame] = {}
    acc = D.accuracy_compute_frame(ctx)
    frames["accuracy"] = acc
    t["accuracy_frame"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    grid = D.budget_grid_frame(ctx, budgets)
    frames["budget_grid"] = grid
    t["budget_grid"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    pareto = D.pareto_frame(ctx, grid)
    frames["pareto"] = pareto
    alloc_curves, alloc_table, alloc_note = T.allocation_frames(ctx, budgets)
    moe_fronts, moe_pairs, moe_best, moe_note = T.moe_frames(ctx, budgets)
    sparse_best, sparse_note = sparse_frame(ctx, budgets)
    kv = M.kv_frame(ctx)
    cap = M.capacity_frame(ctx, grid, qps)
    fits = D.fit_notes_frame(ctx)
    frames.update(
        allocation=alloc_curves,
        allocation_table=alloc_table,
        moe=moe_fronts,
        moe_pairs=moe_pairs,
        moe_best=moe_best,
        sparse_best=sparse_best,
        kv=kv,
        capacity=cap,
        fits=fits,
    )
    t["other_frames"] = time.perf_counter() - t1
    panels = [label for label, _ in ctx.targets()]
    enc = Encoding.of(D.model_order(ctx), {a.strategy for a in ctx.space.curves})
    hw = ctx.hardware.name if ctx.hardware is not None else "no GPU"
    sections = []

    mix_rows = grid[grid[D.TARGET] == ctx.mix_label]
    headline = [
        f"{r[D.BUDGET_LABEL]}: {r[D.OPTION]}, expected accuracy {_pct(r[S.ACCURACY])} "
        f"[{_pct(r[S.ACCURACY_LO])}, {_pct(r[S.ACCURACY_HI])}] ({r[D.SOURCE] or 'infeasible'})"
        for _, r in mix_rows.iterrows()
    ]
    sections.append(
        Section(
            "budget_map",
            "Best option per budget and difficulty",
            f"The planner's choice for every difficulty and for {ctx.mix_label}, at {len(budgets)} per-query budgets on "
            f"{key} (priced on {hw}; the GPU memory limit applies as in `ttc recommend`). Accuracies are measured at "
            "profiled knob values, fitted between them and extrapolated beyond (the source is in each cell); costs are "
            "predicted by the cost model from measured tokens.",
            C.plot_budget_map(grid, panels, enc=enc),
            [("Choices (accuracy source per row; costs predicted)", _grid_table(grid, key))],
        )
    )
    sections.append(
        Section(
            "accuracy",
            "Accuracy versus compute",
            "Each panel is one difficulty (the last one the mix). Points are measured; lines and bands are the "
            "planner's predictions from each curve's law (see the provenance section for the laws and their "
            "parameters).",
            C.plot_accuracy_vs_compute(acc, panels, enc=enc) if len(acc) else None,
            [
                (
                    "Saturation points N* (knob units; interval from the ttc fit bootstrap where available)",
                    _saturation_table(acc),
                )
            ],
        )
    )
    sections.append(
        Section(
            "pareto",
            "Pareto front of accuracy versus cost",
            f"Every option for {ctx.mix_label}; the front is what no cheaper option beats; the recommended options are "
            "ringed with their budget tags.",
            C.plot_pareto(pareto, key, enc=enc) if len(pareto) else None,
            [("Pareto-optimal options", _front_table(pareto, key))],
        )
    )
    sec = Section(
        "allocation",
        "Per-difficulty allocation versus the best single option",
        "Choosing one option per difficulty (exact dynamic programme over the bins' option tables) against one "
        f"option for every question, at the same average {D.COST_LABELS.get(key, key)}. The compute ratio is the single option's "
        "cost over the least average cost at which an allocation matches its accuracy.",
    )
    if alloc_note:
        sec.notes.append(alloc_note)
    else:
        sec.chart = C.plot_allocation(alloc_curves, key)
        sec.tables.append(
            ("Allocation versus single option per budget (predicted)", _alloc_table(alloc_table, key))
        )
    sections.append(sec)
    sec = Section(
        "moe",
        "Dense versus MoE",
        "The MoE model against the dense model closest in active parameters (equal FLOPs per token) and the one "
        "closest in total parameters (equal memory for weights).",
    )
    if moe_note:
        sec.notes.append(moe_note)
    else:
        sec.chart = C.plot_moe(moe_fronts, enc=enc)
        sec.tables.append(("Pairs (parameters from the model specs)", moe_pairs))
        sec.tables.append(
            (
                f"Best option of each model within each budget on {key} (accuracy source; costs predicted)",
                moe_best,
            )
        )
    sections.append(sec)
    sec = Section(
        "sparse",
        "Dense versus sparse attention",
        "Each block top-k sparse-attention variant "
        "(accuracy measured with sparse decoding, every option priced with fewer attention FLOPs and KV "
        "bytes read per token, the same KV held) against its dense model.",
        notes=[sparse_note],
    )
    if len(sparse_best):
        sec.tables.append((f"Best option of each within each budget on {key} (accuracy source)", sparse_best))
    sections.append(sec)
    sec = Section(
        "kv",
        f"KV-cache memory and capacity on {hw}",
        "KV bytes of one query grow with the samples it runs in parallel and their context; prefix sharing holds "
        "the prompt once. The capacity table gives the GPUs needed to serve the target load with each recommended "
        "option (roofline model, KV memory and tensor parallelism).",
        C.plot_kv_cache(kv, D.model_order(ctx), enc=enc) if len(kv) else None,
    )
    if len(cap):
        sec.tables.append(
            (f"Capacity for {qps:g} queries per second ({_first(cap, 'cost_source')})", _capacity_table(cap))
        )
        note = _capacity_note(cap, ctx)
        if note:
            sec.notes.append(note)
    elif ctx.hardware is None:
        sec.notes.append("no GPU was given: capacity needs one (--gpu)")
    sections.append(sec)
    search = search_table(ctx.profile.curves)
    if len(search):
        sections.append(
            Section(
                "search",
                "Tree search versus beam search and best-of-N",
                SEARCH_TEXT,
                tables=[("At equal generated tokens per query (measured)", search)],
            )
        )
    t1 = time.perf_counter()
    blocks = measure_next_blocks(ctx, budgets, seed=seed, n_boot=n_boot)
    sections.append(_measure_section(ctx, budgets, grid, blocks, frames))
    t["measure_next"] = time.perf_counter() - t1
    sections.append(_provenance(ctx, fits))
    t1 = time.perf_counter()
    findings = findings_for_context(ctx, budgets, n_splits=n_splits, seed=seed)
    frames["findings"] = findings.table()
    for sec in sections:  # the in-sample comparison points to its held-out check
        for i, f in enumerate(findings.items, 1):
            if sec.key == f.key and sec.chart is not None:
                sec.notes.append(f"Checked on held-out questions (headline finding {i}): {f.text}")
    t["findings"] = time.perf_counter() - t1
    folder = str(ctx.profile.folder) if ctx.profile.folder else None
    hardest = ctx.difficulties[-1] if ctx.difficulties else None
    steps = next_steps(
        folder,
        budget=budgets[(len(budgets) - 1) // 2],
        budget_key=key,
        difficulty=hardest,
        gpu=gpu or (ctx.hardware.name if ctx.hardware is not None else None),
    )
    title = f"Capacity-planning report: {', '.join(ctx.profile.models)} on {hw}"
    t["total"] = time.perf_counter() - t0
    content = ReportContent(title, headline, sections, frames, t, findings, steps)
    content.measure_next = [(format_budget(key, b), m) for b, m in zip(budgets, blocks, strict=True)]
    return content


def _measure_section(ctx, budgets, grid, blocks, frames: dict) -> Section:
    """What to measure next for the mix's choice at every budget (:mod:`.measure`)."""
    sure, actions = measure_next_tables(ctx, budgets, blocks, grid)
    frames.update(measure_next=sure, measure_next_actions=actions)
    sec = Section(
        "measure_next",
        f"What to measure next ({ctx.mix_label})",
        MEASURE_TEXT,
        tables=[("How sure each choice is", sure)],
    )
    if len(actions):
        sec.tables.append(("Profiling runs that would settle it (commands run as printed)", actions))
    else:
        sec.notes.append("nothing to measure: no profiling is expected to lower a regret by 0.01 point")
    methods = {b["method"] for b in blocks if b is not None}
    sec.notes += sorted(methods)
    return sec


def _capacity_note(cap: pd.DataFrame, ctx: D.PlanContext) -> str:
    """A note when the capacity table cannot tell options apart: every option fits on the same
    GPUs, nearly idle (lab-scale models), so the load-dependent columns are equal."""
    if "gpus" not in cap or cap["gpus"].isna().any() or cap["gpus"].nunique() != 1:
        return ""
    util = float(cap["utilization"].max())
    if not util < 0.01:
        return ""
    params = max(float(ctx.profile.specs[m].params_total) for m in ctx.profile.models)
    return (
        f"At this scale the table says little: every option fits on {int(cap['gpus'].iloc[0])} GPU(s) used at most "
        f"{100 * util:.2g}% (the largest model has {params / 1e6:.3g}M parameters), so the US$ per 1,000 queries at "
        "this load is the GPU's hourly price spread over the load, the same for every option, and 'queries in flight "
        "per replica' is the serving batch the GPU could hold, not the load. Compare options by 'max queries/s per GPU' "
        "and 'US$ per 1k queries at full load'."
    )


def _first(df: pd.DataFrame, col: str) -> str:
    vals = df[col].dropna() if col in df else []
    return str(vals.iloc[0]) if len(vals) else ""


def _grid_table(grid: pd.DataFrame, key: str) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "difficulty": grid[D.TARGET],
            "budget": grid[D.BUDGET_LABEL],
            "option": grid[D.OPTION],
            "expected accuracy": grid[S.ACCURACY].map(_pct),
            "interval": [
                f"[{_pct(a)}, {_pct(b)}]"
                for a, b in zip(grid[S.ACCURACY_LO], grid[S.ACCURACY_HI], strict=True)
            ],
            "accuracy source": grid[D.SOURCE],
            f"{UNITS.get(key, key)} (predicted)": grid[key].map(lambda v: D.format_cost(key, v))
            if key in grid
            else "-",
            "binding": grid["binding"],
        }
    )
    return out


def _saturation_table(acc: pd.DataFrame) -> pd.DataFrame:
    sat = acc[acc[D.KIND] == "saturation"] if len(acc) else acc
    if sat is None or sat.empty:
        return pd.DataFrame({"note": ["no law saturates within its predicted range"]})
    return pd.DataFrame(
        {
            "difficulty": sat[D.PANEL],
            "option": sat[D.OPTION],
            "law": sat[D.LAW],
            "N* (knob)": sat[D.KNOB_VALUE].map(lambda v: f"{v:.3g}"),
            "N* interval": [
                f"[{_g(a)}, {_g(b)}]" if a is not None and pd.notna(a) else "point estimate only"
                for a, b in zip(sat["saturation_lo"], sat["saturation_hi"], strict=True)
            ],
            "accuracy at N* (predicted)": sat[S.ACCURACY].map(_pct),
            "FLOPs/query at N* (predicted)": sat[S.FLOPS].map(lambda v: f"{v:.3g}"),
        }
    )


def _g(v) -> str:
    return "-" if v is None or not np.isfinite(float(v)) else f"{float(v):.3g}"


def _front_table(pareto: pd.DataFrame, key: str) -> pd.DataFrame:
    f = pareto[pareto["on_front"]].sort_values(D.COST) if len(pareto) else pareto
    if f.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "option": f[D.OPTION],
            "expected accuracy": f[S.ACCURACY].map(_pct),
            "interval": [
                f"[{_pct(a)}, {_pct(b)}]" for a, b in zip(f[S.ACCURACY_LO], f[S.ACCURACY_HI], strict=True)
            ],
            "accuracy source": f[D.SOURCE],
            f"{UNITS.get(key, key)} (predicted)": f[D.COST].map(lambda v: D.format_cost(key, v)),
            "recommended at": f["recommended"],
        }
    )


def _alloc_table(t: pd.DataFrame, key: str) -> pd.DataFrame:
    if t.empty:
        return t
    rows = []
    for _, r in t.iterrows():
        if r.get("note"):
            rows.append(
                {"budget": f"{r['budget_tag']}: {format_budget(key, r[D.BUDGET])}", "note": r["note"]}
            )
            continue
        rows.append(
            {
                "budget": f"{r['budget_tag']}: {format_budget(key, r[D.BUDGET])}",
                "allocation accuracy": _pct(r["allocation_accuracy"]),
                f"allocation {UNITS.get(key, key)}": D.format_cost(key, r["allocation_cost"]),
                "allocation (per difficulty)": r["allocation"],
                "best single option": r["single_option"] or "none fits",
                "single accuracy": _pct(r["single_accuracy"]),
                f"single {UNITS.get(key, key)}": D.format_cost(key, r["single_cost"]),
                "compute ratio at equal accuracy": _g(r["compute_ratio"]),
            }
        )
    return pd.DataFrame(rows)


def _capacity_table(cap: pd.DataFrame) -> pd.DataFrame:
    cols = {
        "budgets": "budgets",
        D.OPTION: "option",
        S.ACCURACY: "expected accuracy",
        "accuracy_source": "accuracy source",
        "gpus": "GPUs",
        "tp": "tp",
        "replicas": "replicas",
        "concurrency": "queries in flight per replica",
        "latency_s": "latency (s)",
        "usd_per_1k_queries": "US$ per 1k queries at this load",
        "utilization": "utilization",
        "max_qps_per_gpu": "max queries/s per GPU",
        "usd_per_1k_queries_full_load": "US$ per 1k queries at full load",
        "binding": "binding",
        "note": "why",
    }
    out = cap[[c for c in cols if c in cap]].rename(columns=cols)
    usd = lambda v: f"${float(v):.3g}"  # noqa: E731
    for c, f in (
        ("expected accuracy", _pct),
        ("latency (s)", _g),
        ("US$ per 1k queries at this load", usd),
        ("US$ per 1k queries at full load", usd),
        ("utilization", lambda v: f"{100 * float(v):.2g}%"),
        ("max queries/s per GPU", _g),
    ):
        if c in out:
            out[c] = out[c].map(lambda v, f=f: "-" if v is None or pd.isna(v) else f(v))
    return out


def _provenance(ctx: D.PlanContext, fits: pd.DataFrame) -> Section:
    prof = ctx.profile
    run = prof.run or {}
    samples = prof.samples
    measured = [("profile folder", str(prof.folder) if prof.folder else "(in memory)")]
    for k in ("run_id", "created", "updated", "seed", "max_new_tokens", "device"):
        if k in run:
            measured.append((k, json.dumps(run[k]) if not isinstance(run[k], str) else run[k]))
    if "task" in run:
        measured.append(("task", json.dumps(run["task"])))
    if run.get("versions"):
        measured.append(("versions", ", ".join(f"{k} {v}" for k, v in run["versions"].items() if v)))
    for m, meta in (run.get("models") or {}).items():
        keep = {
            k: meta.get(k)
            for k in ("backend", "device", "dtype", "num_parameters", "path")
            if meta.get(k) is not None
        }
        measured.append((f"model {m}", ", ".join(f"{k}={v}" for k, v in keep.items())))
    measured.append(("samples rows", f"{len(samples):,}"))
    measured.append(("questions", f"{samples[S.QUESTION_ID].nunique():,}"))
    kv_src = samples[S.KV_SOURCE].dropna().unique().tolist()
    measured.append(("KV bytes measured by", ", ".join(map(str, kv_src)) or "not measured"))
    counts = (
        samples.groupby([S.MODEL, S.STRATEGY, S.DIFFICULTY])
        .agg(questions=(S.QUESTION_ID, "nunique"), rows=(S.QUESTION_ID, "size"))
        .reset_index()
    )
    predicted = [("costs (FLOPs, latency, US$, KV, capacity)", COST_SOURCE)]
    if ctx.hardware is not None:
        hw = ctx.hardware
        predicted.append(
            (
                f"GPU {hw.name}",
                f"{hw.peak_flops:.4g} FLOP/s, {hw.memory_bandwidth_bytes_per_s:.4g} B/s, "
                f"{hw.memory_bytes / 1e9:.4g} GB ({hw.spec_source or 'catalog'}); "
                f"US$ {hw.usd_per_gpu_hour:g}/GPU-hour ({hw.price_source or 'catalog'} {hw.price_date})",
            )
        )
    for m, spec in sorted(prof.specs.items()):
        predicted.append(
            (
                f"spec {m}",
                f"{spec.architecture}, {spec.params_total:,} parameters "
                f"({spec.params_active:,} active), {spec.kv_bytes_per_token:g} KV bytes/token, "
                f"{spec.source}",
            )
        )
    if prof.lengths.used():
        predicted.append(
            (
                "token lengths ASSUMED (questions whose samples have none; measured ones kept)",
                describe(prof.lengths.to_json()),
            )
        )
    predicted.append(
        (
            "accuracy between and beyond profiled knob values",
            "each curve's law (table below): ttc fit records (question-bootstrap band) or a law selected "
            "by the planner; extrapolation stops at 4x the largest profiled value",
        )
    )
    sec = Section(
        "provenance",
        "Provenance: what was measured, what is predicted",
        "Measured numbers come from the profile (run.json and the samples); predicted numbers from the named "
        "law or cost model.",
        tables=[
            ("Measured (run.json and the samples table)", pd.DataFrame(measured, columns=["what", "value"])),
            ("Samples per model, strategy and difficulty (measured)", counts),
            ("Predicted by", pd.DataFrame(predicted, columns=["what", "model"])),
            ("Laws behind each curve", _fits_display(fits)),
        ],
    )
    sec.notes += [f"planner: {n}" for n in ctx.space.notes]
    return sec


def _fits_display(fits: pd.DataFrame) -> pd.DataFrame:
    if fits.empty:
        return fits
    out = fits.copy()
    out["extrapolation_error"] = out["extrapolation_error"].map(_g)
    out["predicts_up_to"] = out["predicts_up_to"].map(_g)
    return out
