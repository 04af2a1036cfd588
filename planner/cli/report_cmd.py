"""``ttc report``: the capacity-planning report of a profile folder (HTML, PNGs, Markdown)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import console, fail, not_none, parse_budgets, profile_loading, samples_folder
from ._options import (
    AllowSimulated,
    AssumeCompletionTokens,
    AssumePromptTokens,
    BudgetKey,
    Budgets,
    Concurrency,
    Gpu,
    Mix,
    ModelSpec,
    NBoot,
    NoCache,
    Out,
    ProfileAlias,
    Qps,
    Risk,
    Samples,
    SamplesArg,
    Splits,
    Tp,
    Verifier,
)
from ._options_cmd import NoPng


def report(
    samples_arg: SamplesArg = None,
    samples: Samples = None,
    profile: ProfileAlias = None,
    out: Out = Path("report.html"),
    gpu: Gpu = None,
    budget_key: BudgetKey = "flops",
    budgets: Budgets = None,
    mix: Mix = None,
    qps: Qps = None,
    concurrency: Concurrency = None,
    tp: Tp = None,
    assume_prompt_tokens: AssumePromptTokens = None,
    assume_completion_tokens: AssumeCompletionTokens = None,
    verifier: Verifier = None,
    risk: Risk = None,
    allow_simulated: AllowSimulated = False,
    model_spec: ModelSpec = None,
    n_boot: NBoot = 200,
    splits: Splits = 20,
    no_png: NoPng = False,
    no_cache: NoCache = False,
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

    from ._errors import claim_output

    if out.suffix.lower() != ".html":
        fail(f"--out {out}: expected an HTML file path such as {out / 'report.html'} or report.html")
    claim_output(out, "file")
    claim_output(out.with_suffix(".md"), "file")
    if not no_png:
        claim_output(out.parent / f"{out.stem}-charts", "folder")
    files = build_report(
        samples_folder(samples_arg, samples, profile),
        out,
        budgets=parse_budgets(budgets),
        budget_key=budget_key,
        mix=mix,
        tp=tp,
        **not_none(gpu=gpu, qps=qps, risk=risk, concurrency=concurrency),
        include_simulated=allow_simulated,
        png=not no_png,
        n_splits=splits,
        **profile_loading(
            model_spec, n_boot, no_cache, verifier, assume_prompt_tokens, assume_completion_tokens
        ),
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
