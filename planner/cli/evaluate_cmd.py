"""``ttc evaluate``: is the planner right? Plan on half of the questions, measure on the other half,
over repeated random splits."""

from __future__ import annotations

import math

import typer

from ..report.format import (
    UNITS,
    format_budget,
    format_cost,
    format_points,
    format_points_interval,
    format_serving,
    strict_json,
)
from ._common import console, fail, not_none, parse_budgets, profile_loading, samples_folder
from ._options import (
    AllowSimulated,
    Api,
    AssumeCompletionTokens,
    AssumePromptTokens,
    BudgetKey,
    Budgets,
    Concurrency,
    Gpu,
    Json,
    ModelSpec,
    NBoot,
    NoCache,
    ProfileAlias,
    Risk,
    Samples,
    SamplesArg,
    Seed,
    Splits,
    Tp,
    Verifier,
)


def evaluate(
    samples_arg: SamplesArg = None,
    samples: Samples = None,
    profile: ProfileAlias = None,
    model_spec: ModelSpec = None,
    budget_key: BudgetKey = "flops",
    budgets: Budgets = None,
    risk: Risk = None,
    gpu: Gpu = None,
    api: Api = None,
    concurrency: Concurrency = None,
    tp: Tp = None,
    assume_prompt_tokens: AssumePromptTokens = None,
    assume_completion_tokens: AssumeCompletionTokens = None,
    verifier: Verifier = None,
    allow_simulated: AllowSimulated = False,
    seed: Seed = 0,
    splits: Splits = 20,
    n_boot: NBoot = 200,
    no_cache: NoCache = False,
    as_json: Json = False,
) -> None:
    """Check the planner on held-out questions: over repeated random splits, plan on one half
    of the questions, measure the recommendations' accuracy on the other half, and report the
    regret against the hindsight-best option and fixed baselines at several budgets, with 90%
    intervals.

    Example:

        ttc evaluate runs/lab --budget-key flops

        ttc evaluate runs/math --verifier exact --budget-key effective_flops --gpu h100
    """
    from common.progress import Progress
    from planner.constants import COST_KEYS
    from planner.holdout import evaluate_profile
    from planner.profile import load_profile
    from planner.request import DEFAULT_HARDWARE

    folder = samples_folder(samples_arg, samples, profile)
    values = parse_budgets(budgets)
    if gpu and api:
        fail("give --gpu or --api, not both")
    if budget_key not in COST_KEYS:  # before the profile is loaded and fitted
        fail(f"--budget-key must be one of {', '.join(COST_KEYS)}; got {budget_key!r}")
    try:
        loading = profile_loading(
            model_spec, n_boot, no_cache, verifier, assume_prompt_tokens, assume_completion_tokens
        )
        prof = load_profile(folder, require_lengths=True, **loading)
        with Progress("held-out splits", splits, unit="splits") as bar:
            ev = evaluate_profile(
                prof,
                values,
                cost_key=budget_key,
                hardware=gpu or (None if api else DEFAULT_HARDWARE),
                api=api,
                seed=seed,
                n_splits=splits,
                include_simulated=allow_simulated,
                verifier=verifier,
                tp=tp,
                progress=bar,
                **not_none(risk=risk, concurrency=concurrency),
            )
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(strict_json(ev.to_json(), indent=2))
        return
    _print(ev)


def _acc(r, col: str) -> str:
    v, lo, hi = r.get(col), r.get(f"{col}_lo"), r.get(f"{col}_hi")
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if math.isfinite(lo) and math.isfinite(hi) else f"{v:.3f}"


def _pts(r, col: str) -> str:
    v, lo, hi = r.get(col), r.get(f"{col}_lo"), r.get(f"{col}_hi")
    if v is None or not math.isfinite(v):
        return "-"
    return format_points(v).removesuffix(" points") + (
        f" {format_points_interval(lo, hi)}" if math.isfinite(lo) and math.isfinite(hi) else ""
    )


def _print(ev) -> None:
    from rich import box
    from rich.table import Table

    key = ev.cost_key
    console.print(
        f"[bold]ttc evaluate[/] · {ev.n_splits} random half splits ({ev.n_train} planning / {ev.n_test} held-out "
        "questions, stratified by difficulty): the planner chooses on one half, the choice is measured on the other; "
        "means over the splits with 90% intervals (corrected resampled t, Nadeau & Bengio 2003)",
        highlight=False,
    )
    if ev.serving:
        console.print(format_serving(ev.serving), style="dim", highlight=False)
    if "lengths" in ev.assumptions:
        from planner.space.assumed import describe

        console.print(describe(ev.assumptions["lengths"]), highlight=False, soft_wrap=True)
    t = Table(
        title="the planner against the hindsight best of the held-out half",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
    )
    t.add_column(f"budget ({UNITS.get(key, key)})", no_wrap=True)
    t.add_column("choice (splits)", overflow="fold", ratio=2)
    t.add_column("held-out accuracy", no_wrap=True)
    t.add_column("regret, points", no_wrap=True)
    t.add_column("verdict", overflow="fold", ratio=1)
    rows = ev.table.to_dict("records")
    for r in rows:
        se = r.get("regret_se", math.nan)
        if not math.isfinite(r.get("regret", math.nan)):
            verdict = "-"
        elif not math.isfinite(se):
            verdict = "one split: no interval"
        else:
            verdict = "within noise" if abs(r["regret"]) <= se else f"above its SE ({100 * se:.1f})"
        t.add_row(
            format_cost(key, r["budget"]),
            f"{r['choice']} ({r['choice_share']})",
            _acc(r, "realized_accuracy"),
            _pts(r, "regret"),
            verdict,
        )
    console.print(t)
    b = Table(
        title="held-out accuracy of fixed baselines (model picked on the planning half)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
    )
    b.add_column(f"budget ({UNITS.get(key, key)})", no_wrap=True)
    b.add_column("planner", no_wrap=True)
    for name in [*ev.baselines, "allocation"]:
        b.add_column(name if name != "allocation" else "per-difficulty allocation", overflow="fold")
    for r in rows:
        cells = []
        for name in ev.baselines:
            v, model = r.get(name, math.nan), r.get(f"{name} model") or ""
            cells.append("nothing fits" if not math.isfinite(v) else f"{v:.3f} {model}")
        alloc = r.get("allocation", math.nan)
        cells.append(f"{alloc:.3f}" if math.isfinite(alloc) else "nothing fits")
        b.add_row(format_cost(key, r["budget"]), f"{r['realized_accuracy']:.3f}", *cells)
    console.print(b)
    finite = [r for r in rows if math.isfinite(r.get("regret", math.nan))]
    if finite:
        noisy = sum(1 for r in finite if math.isfinite(r["regret_se"]) and abs(r["regret"]) <= r["regret_se"])
        worst = max(finite, key=lambda r: r["regret"])
        console.print(
            f"Regret (hindsight best minus the planner's choice, both on held-out questions; an upper estimate, as the "
            f"hindsight best is the luckiest of many options) averages {100 * sum(r['regret'] for r in finite) / len(finite):.1f} "
            f"points over {len(finite)} budgets and is within noise at {noisy} of them; the largest is "
            f"{100 * worst['regret']:.1f} points at {format_budget(key, worst['budget'])}. A baseline's model is the "
            "most accurate one it can afford on the planning half: at small budgets only a small model affords a "
            "full pool, hence low majority and best-of numbers there.",
            highlight=False,
        )
    for note in ev.notes:
        console.print(f"note: {note}", style="dim", highlight=False)


def register(app: typer.Typer) -> None:
    app.command(
        "evaluate", short_help="Plan on half the questions, measure on the other half (repeated splits)."
    )(evaluate)
