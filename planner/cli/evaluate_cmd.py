"""``ttc evaluate``: is the planner right? Plan on half of the questions, measure on the other half."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ..report.format import format_cost
from ._common import INPUT, OUTPUT, PRICING, SEARCH, TARGET, console, fail, parse_pairs, profile_folder


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
    verifier: str = typer.Option(
        "none",
        "--verifier",
        help="exact: the deployment checks answers exactly (best-of-n `verified` is offered).",
        rich_help_panel=SEARCH,
    ),
    allow_simulated: bool = typer.Option(
        False, "--allow-simulated", help="Let the planner use simulated scorers.", rich_help_panel=SEARCH
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the question split.", rich_help_panel=SEARCH),
    n_boot: int = typer.Option(
        200, "--n-boot", min=0, help="Question-bootstrap replicates of the curves.", rich_help_panel=SEARCH
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the table as JSON records.", rich_help_panel=OUTPUT
    ),
) -> None:
    """Check the planner on held-out questions: plan on a seeded half of the questions,
    measure the recommendations' accuracy and cost on the other half, and report the regret
    against the hindsight-best option and fixed baselines at several budgets.

    Example:

        ttc evaluate runs/lab --budget-key flops

        ttc evaluate runs/math --verifier exact --budget-key effective_flops --gpu h100
    """
    from planner.holdout import evaluate_profile
    from planner.profile import load_profile

    folder = profile_folder(profile, profile_option)
    try:
        values = [float(v) for v in budgets.split(",")] if budgets else None
    except ValueError:
        fail(f"--budgets must be comma-separated numbers, got {budgets!r}")
    if gpu and api:
        fail("give --gpu or --api, not both")
    try:
        specs = parse_pairs(model_spec, "--model-spec")
        prof = load_profile(folder, model_specs=specs, n_boot=n_boot, verifier=verifier)
        table = evaluate_profile(
            prof,
            values,
            cost_key=cost_key,
            hardware=gpu or (None if api else "h100"),
            api=api,
            risk=risk,
            seed=seed,
            include_simulated=allow_simulated,
            verifier=verifier,
            tp=tp,
            **({"concurrency": concurrency} if concurrency is not None else {}),
        )
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(table.to_json(orient="records", indent=2))
        return
    from rich.table import Table

    t = Table(title=f"ttc evaluate · plan on half the questions, realized on the other half (seed {seed})")
    for c in table.columns:
        t.add_column(c, justify="right" if table[c].dtype.kind in "fi" else "left")
    for _, r in table.iterrows():
        t.add_row(*(_cell(c, v, cost_key) for c, v in r.items()))
    console.print(t)
    if "regret" in table and table["regret"].notna().any():
        console.print(
            f"mean regret vs hindsight best: {table['regret'].mean():.4f} accuracy (max {table['regret'].max():.4f})",
            highlight=False,
        )


def _cell(column: str, v, cost_key: str) -> str:
    if column.startswith("budget_") or column == "realized_cost":
        return format_cost(cost_key, v)
    if isinstance(v, float):
        return f"{v:.3f}" if math.isfinite(v) else "-"
    return str(v)


def register(app: typer.Typer) -> None:
    app.command("evaluate", short_help="Plan on half the questions, measure on the other half.")(evaluate)
