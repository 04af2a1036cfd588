"""``ttc evaluate``: is the planner right? Plan on half of the questions, measure on the other half,
over repeated random splits."""

from __future__ import annotations

import math
from pathlib import Path

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
from ._common import INPUT, OUTPUT, PRICING, SEARCH, TARGET, console, fail, parse_pairs, profile_folder
from ._options import AssumeCompletionTokens, AssumePromptTokens


def evaluate(
    profile: Path = typer.Argument(None, help="Samples folder.", show_default=False),
    profile_option: Path = typer.Option(None, "--profile", "-p", hidden=True, help="Same as the argument."),
    model_spec: list[str] = typer.Option(
        None, "--model-spec", help="NAME=CATALOG_NAME_OR_CONFIG (imported samples).", rich_help_panel=INPUT
    ),
    cost_key: str = typer.Option(
        "flops",
        "--budget-key",
        help="Budgeted cost: flops, effective_flops, tokens, usd, latency_s.",
        rich_help_panel=TARGET,
    ),
    budgets: str = typer.Option(
        None,
        "--budgets",
        help="Comma-separated budgets (default: six from cheap to dear).",
        rich_help_panel=TARGET,
    ),
    risk: str = typer.Option("expected", "--risk", help="expected | conservative.", rich_help_panel=TARGET),
    gpu: str = typer.Option(
        None, "--gpu", "-g", help="Accelerator (default h100 unless --api).", rich_help_panel=PRICING
    ),
    api: str = typer.Option(None, "--api", help="Hosted API prices instead.", rich_help_panel=PRICING),
    concurrency: int = typer.Option(
        None,
        "--concurrency",
        "-c",
        min=1,
        help="Sequences one replica decodes per step, as in `ttc costs` (default 64).",
        rich_help_panel=PRICING,
    ),
    tp: int = typer.Option(
        None, "--tp", min=1, help="GPUs per replica (default: the fewest that fit).", rich_help_panel=PRICING
    ),
    assume_prompt_tokens: AssumePromptTokens = None,
    assume_completion_tokens: AssumeCompletionTokens = None,
    verifier: str = typer.Option(
        "none",
        "--verifier",
        help="exact: the deployment checks answers exactly (best-of-n `verified` is offered).",
        rich_help_panel=SEARCH,
    ),
    allow_simulated: bool = typer.Option(
        False, "--allow-simulated", help="Let the planner use simulated scorers.", rich_help_panel=SEARCH
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the question splits.", rich_help_panel=SEARCH),
    splits: int = typer.Option(
        20, "--splits", min=1, help="Random half splits to average over.", rich_help_panel=SEARCH
    ),
    n_boot: int = typer.Option(
        200, "--n-boot", min=0, help="Question-bootstrap replicates of the curves.", rich_help_panel=SEARCH
    ),
    no_cache: bool = typer.Option(
        False,
        "--no-cache",
        help="Recompute curves and laws (do not read or write the cache).",
        rich_help_panel=SEARCH,
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the evaluation as JSON (per budget: means and intervals).",
        rich_help_panel=OUTPUT,
    ),
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
    from planner.space.assumed import AssumedLengths

    folder = profile_folder(profile, profile_option)
    try:
        values = [float(v) for v in budgets.split(",")] if budgets else None
    except ValueError:
        fail(f"--budgets must be comma-separated numbers, got {budgets!r}")
    if gpu and api:
        fail("give --gpu or --api, not both")
    if cost_key not in COST_KEYS:  # before the profile is loaded and fitted
        fail(f"--budget-key must be one of {', '.join(COST_KEYS)}; got {cost_key!r}")
    try:
        prof = load_profile(
            folder,
            model_specs=parse_pairs(model_spec, "--model-spec"),
            n_boot=n_boot,
            use_cache=not no_cache,
            progress=True,
            verifier=verifier,
            require_lengths=True,
            assumed=AssumedLengths(assume_prompt_tokens, assume_completion_tokens),
        )
        with Progress("held-out splits", splits, unit="splits") as bar:
            ev = evaluate_profile(
                prof,
                values,
                cost_key=cost_key,
                hardware=gpu or (None if api else "h100"),
                api=api,
                risk=risk,
                seed=seed,
                n_splits=splits,
                include_simulated=allow_simulated,
                verifier=verifier,
                tp=tp,
                progress=bar,
                **({"concurrency": concurrency} if concurrency is not None else {}),
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
