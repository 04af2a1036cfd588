"""The capacity-planning report (``ttc report``): one self-contained HTML page, PNGs, Markdown.

:func:`build_report` loads a profile folder (:func:`planner.profile.load_profile`), builds the
planner's option space priced on a GPU (:func:`planner.report.data.planning_context`),
computes the report's tidy frames (:mod:`planner.report.data`), draws them with Altair
(:mod:`planner.report.charts`) and writes (:mod:`planner.report.build`):

* ``OUT.html``: the page, which opens offline (Vega inlined, specs and data embedded);
* ``OUT-charts/*.png``: every chart as a PNG;
* ``OUT.md``: a Markdown summary with the same tables and links to the PNGs.

Sections: the best option per budget and difficulty; accuracy versus compute (measured
points, fitted laws with bands, saturation points); the Pareto front with the recommended
options; per-difficulty allocation versus the best single option; dense versus MoE at equal
active and equal total parameters (omitted with a note when the profile has no MoE); KV-cache
memory versus samples and context with a capacity table (GPUs and US$ per 1,000 queries for a
target QPS); provenance (what was measured, what is predicted and by what).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import DEFAULT_HARDWARE, RISKS, check_choice

if TYPE_CHECKING:  # the report's work is imported inside build_report: `ttc --help` stays fast
    from ..space.assumed import AssumedLengths

__all__ = ["build_report", "ReportFiles", "BUDGET_KEYS"]

#: costs a report's budgets may be on
BUDGET_KEYS = ("flops", "effective_flops", "tokens", "usd", "latency_s")


@dataclass
class ReportFiles:
    """What :func:`build_report` wrote, the content it drew from, and how long each step took (s)."""

    html: Path
    markdown: Path | None
    pngs: dict[str, Path]
    content: object
    seconds: dict[str, float] = field(default_factory=dict)


def build_report(
    profile_dir: str | Path,
    out_path: str | Path = "report.html",
    *,
    gpu: str | None = DEFAULT_HARDWARE,
    budgets: Sequence[float] | None = None,
    budget_key: str = "flops",
    mix: str | Mapping[str, float] | None = None,
    qps: float = 10.0,
    concurrency: int = 64,
    tp: int | None = None,
    verifier: str | None = None,
    risk: str = "expected",
    include_simulated: bool = False,
    model_specs: Mapping[str, str] | None = None,
    n_boot: int = 200,
    use_cache: bool = True,
    png: bool = True,
    markdown: bool = True,
    catalog_file: str | None = None,
    n_splits: int = 20,
    progress: bool = False,
    assumed: AssumedLengths | None = None,
) -> ReportFiles:
    """Write the capacity-planning report of a profile folder.

    Parameters
    ----------
    profile_dir : path
        A samples folder written by ``ttc profile`` or ``ttc import``.
    out_path : path
        The HTML file; PNGs go to ``<stem>-charts/`` beside it and the Markdown to ``<stem>.md``.
    gpu : str or None
        Catalog accelerator the options are priced on (latency, US$, memory limit, capacity).
    budgets : sequence of float or None
        Per-query budgets on ``budget_key`` (default: five from the cheapest option to the dearest).
    budget_key : str
        ``flops``, ``tokens``, ``usd`` or ``latency_s``.
    mix : str or mapping or None
        Difficulty mix of the "all" row and of the allocation (default: every question).
    qps : float
        Target queries per second of the capacity table.
    concurrency, tp, verifier, risk, include_simulated, model_specs, n_boot, use_cache, catalog_file
        As for ``ttc recommend`` (``concurrency``: sequences per decode step, 64 by default as in
        :data:`planner.costs.DEFAULT_CONCURRENCY`; ``tp`` None: the fewest GPUs that fit).
    png, markdown : bool
        Also write the PNGs / the Markdown summary.
    n_splits : int
        Random half splits of the questions the headline findings are checked on.
    progress : bool
        Show a count and an ETA for each stage on stderr (:class:`common.progress.Progress`).
    assumed : :class:`~planner.space.assumed.AssumedLengths` or None
        Token lengths ASSUMED for questions whose samples have none (measured ones are kept);
        the provenance section says which questions were priced from them.

    Examples
    --------
    >>> files = build_report("runs/lab", "runs/lab/report.html", gpu="h100")  # doctest: +SKIP
    >>> files.html, sorted(files.pngs)  # doctest: +SKIP
    """
    # imported here: this package's __init__ stays cheap for `ttc --help` (the CLI formats costs
    # with planner.report.format), while the report pulls in Altair, the fits and the planner
    from common.progress import Progress
    from planner.profile import load_profile

    from . import build as B
    from . import render as R
    from .data import planning_context

    check_choice("budget_key", budget_key, BUDGET_KEYS)
    check_choice("risk", risk, RISKS)
    if budget_key in ("usd", "latency_s", "effective_flops") and gpu is None:
        raise ValueError(f"a budget on {budget_key} needs a GPU to price on (gpu=...)")
    if not qps > 0:
        raise ValueError(f"qps must be > 0, got {qps!r}")
    if budgets is not None and any(not (b > 0) for b in budgets):
        raise ValueError(f"budgets must be positive numbers, got {list(budgets)}")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    profile = load_profile(
        profile_dir,
        model_specs=model_specs,
        n_boot=n_boot,
        use_cache=use_cache,
        progress=progress,
        verifier=verifier,
        assumed=assumed,
    )
    if profile.is_counts:
        raise ValueError(
            f"{profile_dir}: holds per-question counts; the report needs per-sample results (tokens, KV, "
            "answers). Plan counts with `ttc recommend --verifier exact`, forecast them with `ttc forecast`"
        )
    try:
        profile.lengths.check()
    except ValueError as exc:
        raise ValueError(f"{profile_dir}: {exc}") from None
    seconds["load_profile"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    with Progress("report", 4, unit="steps", enabled=progress) as bar:  # the step running in the note
        bar.update(note="pricing the options")
        ctx = planning_context(
            profile,
            gpu=gpu,
            concurrency=concurrency,
            tp=tp,
            mix=mix,
            budget_key=budget_key,
            risk=risk,
            include_simulated=include_simulated,
            catalog_file=catalog_file,
            verifier=verifier,
        )
        seconds["option_space"] = time.perf_counter() - t1
        bar.advance(note=f"tables, charts and findings on {n_splits} held-out splits")
        content = B.compute_content(ctx, budgets, qps=qps, n_splits=n_splits, gpu=gpu, n_boot=n_boot)
        seconds.update({f"content.{k}": v for k, v in content.seconds.items()})
        out = Path(out_path)
        t1 = time.perf_counter()
        bar.advance(note="PNGs" if png else "HTML")
        pngs = R.write_pngs(content, out.parent / f"{out.stem}-charts") if png else {}
        seconds["pngs"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        bar.advance(note="HTML and Markdown")
        R.write_html(content, out)
        seconds["html"] = time.perf_counter() - t1
        md = R.write_markdown(content, out.with_suffix(".md"), pngs) if markdown else None
        bar.advance(note="")
    seconds["total"] = time.perf_counter() - t0
    return ReportFiles(out, md, pngs, content, seconds)
