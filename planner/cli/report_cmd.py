"""``ttc report``: the capacity-planning report of a profile folder (HTML, PNGs, Markdown)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import INPUT, OUTPUT, PRICING, SEARCH, TARGET, console, fail, parse_pairs
from ._options import AssumeCompletionTokens, AssumePromptTokens


def report(
    profile: Path = typer.Argument(..., help="Samples folder (from `ttc profile` or `ttc import`)."),
    out: Path = typer.Option(
        Path("report.html"), "--out", "-o", help="HTML file to write.", rich_help_panel=OUTPUT
    ),
    gpu: str = typer.Option(
        "h100", "--gpu", "-g", help="Accelerator from the catalog to price on.", rich_help_panel=PRICING
    ),
    budget_key: str = typer.Option(
        "flops",
        "--budget-key",
        help="Budgeted cost: flops, effective_flops, tokens, usd, latency_s.",
        rich_help_panel=TARGET,
    ),
    budgets: str = typer.Option(
        None,
        "--budgets",
        help="Comma-separated per-query budgets (default: five from cheap to dear).",
        rich_help_panel=TARGET,
    ),
    mix: str = typer.Option(
        None,
        "--mix",
        help="Difficulty mix LABEL:WEIGHT,... (default: every question).",
        rich_help_panel=TARGET,
    ),
    qps: float = typer.Option(
        10.0, "--qps", help="Target queries per second of the capacity table.", rich_help_panel=PRICING
    ),
    concurrency: int = typer.Option(
        64,
        "--concurrency",
        "-c",
        min=1,
        help="Sequences one replica decodes per step, as in `ttc costs`.",
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
    risk: str = typer.Option("expected", "--risk", help="expected | conservative.", rich_help_panel=TARGET),
    allow_simulated: bool = typer.Option(
        False,
        "--allow-simulated",
        help="Also consider strategies scored by an oracle or simulated verifier.",
        rich_help_panel=SEARCH,
    ),
    model_spec: list[str] = typer.Option(
        None,
        "--model-spec",
        help="Spec of a profiled model: NAME=CATALOG_NAME_OR_CONFIG (imported samples).",
        rich_help_panel=INPUT,
    ),
    n_boot: int = typer.Option(
        200,
        "--n-boot",
        min=0,
        help="Question-bootstrap replicates of curves and laws.",
        rich_help_panel=SEARCH,
    ),
    splits: int = typer.Option(
        20,
        "--splits",
        min=1,
        help="Random held-out splits the headline findings are checked on.",
        rich_help_panel=SEARCH,
    ),
    no_png: bool = typer.Option(False, "--no-png", help="Do not write the PNGs.", rich_help_panel=OUTPUT),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Recompute curves and laws.", rich_help_panel=SEARCH
    ),
) -> None:
    """Write the capacity-planning report: one self-contained HTML page (opens offline), a PNG
    of every chart and a Markdown summary. It shows the best option per budget and difficulty,
    accuracy versus compute with fitted laws and saturation points, the Pareto front, the
    per-difficulty allocation, dense versus MoE, KV-cache memory and a capacity table, and what
    was measured versus predicted.

    Example:

        ttc report runs/lab --out runs/lab/report.html --gpu h100 --qps 50

        ttc report runs/lab --budget-key usd --budgets 1e-6,1e-5,1e-4
    """
    from planner.report import build_report
    from planner.space.assumed import AssumedLengths

    from ._errors import claim_output

    if out.suffix.lower() != ".html":
        fail(f"--out {out}: expected an HTML file path such as {out / 'report.html'} or report.html")
    claim_output(out, "file")
    claim_output(out.with_suffix(".md"), "file")
    if not no_png:
        claim_output(out.parent / f"{out.stem}-charts", "folder")
    try:
        values = [float(v) for v in budgets.split(",")] if budgets else None
    except ValueError:
        fail(f"--budgets must be comma-separated numbers, got {budgets!r}")
    files = build_report(
        profile,
        out,
        gpu=gpu,
        budgets=values,
        budget_key=budget_key,
        mix=mix,
        qps=qps,
        concurrency=concurrency,
        tp=tp,
        verifier=verifier,
        risk=risk,
        include_simulated=allow_simulated,
        model_specs=parse_pairs(model_spec, "--model-spec"),
        n_boot=n_boot,
        use_cache=not no_cache,
        png=not no_png,
        n_splits=splits,
        progress=True,
        assumed=AssumedLengths(assume_prompt_tokens, assume_completion_tokens),
    )
    console.print(f"report: {files.html}", highlight=False)
    if files.markdown:
        console.print(f"summary: {files.markdown}", highlight=False)
    if files.pngs:
        console.print(
            f"charts: {len(files.pngs)} PNGs in {next(iter(files.pngs.values())).parent}", highlight=False
        )
    console.print(f"built in {files.seconds['total']:.1f} s", style="dim", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report", short_help="Write the capacity-planning report (HTML, PNGs, Markdown).")(report)
