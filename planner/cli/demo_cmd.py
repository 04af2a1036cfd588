"""``ttc demo``: profile -> fit -> plan -> report on the built-in lab, in one command."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import console, fail, not_none
from ._options import Gpu, NoCache, Out
from ._options_profile import Full, Preset


def demo(
    out: Out = Path("ttc-demo"),
    full: Full = False,
    preset: Preset = None,
    gpu: Gpu = None,
    no_cache: NoCache = False,
) -> None:
    """Run the whole pipeline on the built-in lab and print the headline findings.

    Profiles the lab models (three dense sizes and one mixture-of-experts) with the main
    strategies on every difficulty level, fits curves and laws, plans over a grid of budgets
    and difficulties, writes the capacity-planning report, and prints its path and three
    findings with numbers. Rerunning reuses everything already measured and fitted.

    Example:

        ttc demo --out ttc-demo && xdg-open ttc-demo/report.html
    """
    from planner.demo import PRESETS, run_demo
    from profiling.lab import LAB_MODELS, checkpoint_path

    missing = [m for m in LAB_MODELS if not (checkpoint_path(m) / "config.json").is_file()]
    if missing:
        fail(
            f"lab checkpoints missing: {', '.join(missing)}; train them with python -m profiling.lab.train --model all"
        )
    name = preset or ("full" if full else "quick")
    if name not in PRESETS:
        fail(f"--preset must be one of {', '.join(PRESETS)}, got {name!r}")
    from ._errors import claim_output

    claim_output(out, "folder", remove_on_failure=False)  # its measurements serve a rerun
    result = run_demo(out, preset=name, log=console.print, use_cache=not no_cache, **not_none(gpu=gpu))
    total = sum(result.seconds.values())
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    console.print(
        f"\n[bold]report:[/] {result.report}   ({total:.0f} s: {steps}; preset {name}:"
        f" {PRESETS[name].per_level} questions per level)",
        highlight=False,
    )
    console.print("[bold]headline findings[/], checked on held-out questions:")
    for i, finding in enumerate(result.findings, 1):
        console.print(f"  {i}. {finding}", soft_wrap=True, highlight=False)
    console.print(f"  ({result.method})", style="dim", soft_wrap=True, highlight=False)
    for line in result.measure_next:  # the block `ttc recommend` prints, at the middle budget
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    console.print("[bold]next steps[/]:")
    for i, (cmd, why) in enumerate(result.next_steps, 1):
        console.print(f"  {i}. {cmd}", soft_wrap=True, highlight=False, markup=False)
        console.print(f"     {why}", style="dim", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command(
        "demo", short_help="Run the whole pipeline on the built-in lab (profile, fit, plan, report)."
    )(demo)
