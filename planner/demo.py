"""``ttc demo``: the whole pipeline on the built-in lab, in one command.

profile (lab models x main strategies x every difficulty level) -> fit (curves and laws) ->
plan (budget x difficulty grid, allocation, MoE vs dense) -> report (HTML + PNG + Markdown),
then print the report's path, three headline findings checked on held-out questions (plan on
one half, measure on the other, over repeated random splits, with intervals), what to measure
next at the middle report budget (the block ``ttc recommend`` prints there) and the commands
to run next.

Everything is written under one output folder::

    OUT/profile/     samples shards + run.json (resumable: a rerun reuses what is measured),
                     .ttc-cache/ (curves and fits by content: a rerun reuses what is fitted)
    OUT/fit/         curves.parquet, curves.csv, fits.json
    OUT/report.html  the capacity-planning report (+ OUT/report-charts/ PNGs, OUT/report.md)
    OUT/findings.md  the headline findings (quoted verbatim in the report) and the next steps

Three presets: ``tiny`` is a smoke test; the default (``quick``) measures 64 questions per difficulty
level, enough for a level's accuracy to have a standard error of about 6 points, and is sized to
take a few minutes on a laptop CPU (benchmarks/README.md has measured times); ``full`` profiles more
questions, larger pools and every strategy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common.atomic import atomic_write
from fitting.pipeline import FitOutput

from .constants import DEFAULT_HARDWARE
from .profile import load_profile
from .report import build_report
from .report.what_to_measure import measure_next_lines

__all__ = ["DemoPreset", "PRESETS", "DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoPreset:
    """What the demo profiles. ``per_level`` questions of each difficulty level."""

    models: tuple[str, ...]
    strategies: tuple[str, ...]
    per_level: int
    n_boot: int = 200  # the CLI's default too, so `ttc recommend`/`ttc report` reuse the demo's cached fits
    n_splits: int = 20  # random held-out splits the headline findings are checked on
    # questions per strategy call: the lab's tiny models generate fastest in big batches (each
    # unit's seed is its own, so the samples do not depend on it)
    batch_size: int = 32


PRESETS: dict[str, DemoPreset] = {
    # a few minutes on a laptop CPU (measured: benchmarks/README.md); 64 questions per level:
    # a level's accuracy near 50% has a standard error of 6 points (16 questions gave 12)
    "quick": DemoPreset(
        models=("lab-s", "lab-m", "lab-l", "lab-moe"),
        strategies=(
            "greedy",
            "greedy:cot=false",
            "pool:n=16,temperature=1.0",
            "budget:tokens=8|16|32|64",
        ),
        per_level=64,
    ),
    # a smoke test of the whole pipeline in about a minute: a few questions, small pools
    "tiny": DemoPreset(
        models=("lab-s", "lab-m", "lab-l", "lab-moe"),
        strategies=("greedy", "greedy:cot=false", "pool:n=8,temperature=1.0", "budget:tokens=16|64"),
        per_level=4,
        n_boot=50,
    ),
    # the thorough version: more questions, bigger pools, every strategy family
    "full": DemoPreset(
        models=("lab-s", "lab-m", "lab-l", "lab-moe"),
        strategies=(
            "greedy",
            "greedy:cot=false",
            "pool:n=64,temperature=1.0",
            "budget:tokens=8|16|24|32|48|64",
            "beam:width=2|4|8",
            "mcts:simulations=2|4|8",
            "refine:rounds=1|2|4",
            "hybrid:n=8,rounds=2",
        ),
        per_level=128,
    ),
}


@dataclass
class DemoResult:
    out: Path
    report: Path
    findings: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    method: str = ""
    next_steps: list[tuple[str, str]] = field(default_factory=list)
    #: what to measure next at the middle report budget, as ``ttc recommend`` prints it
    measure_next: list[str] = field(default_factory=list)


def measure_next_block(content) -> list[str]:
    """The report's "what to measure next" block at its middle budget (the budget of the next
    steps' ``ttc recommend``), headed by that budget; empty when nothing fits there."""
    if not content.measure_next:
        return []
    budget, block = content.measure_next[(len(content.measure_next) - 1) // 2]
    if block is None:
        return []
    lines = measure_next_lines(block)
    return [f"{lines[0]} (the choice for every question at {budget})", *lines[1:]]


def run_demo(
    out: str | Path,
    *,
    preset: str = "quick",
    gpu: str = DEFAULT_HARDWARE,
    progress: bool = True,
    log: Callable[[str], None] = print,
    use_cache: bool = True,
) -> DemoResult:
    """Run profile -> fit -> plan -> report on the lab under ``out`` (see the module doc).

    ``progress`` shows a count and an ETA for each stage on stderr (a bar on a terminal, a line
    every 10 s or 10% in a log); ``use_cache=False`` recomputes every curve and fit instead of
    reusing the cache beside the profile (``OUT/profile/.ttc-cache``).
    """
    from profiling.runner import profile  # torch: imported when the demo runs, not with the package

    if preset not in PRESETS:
        raise ValueError(f"unknown demo preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    out = Path(out)
    prof_dir, fit_dir = out / "profile", out / "fit"
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    log(
        f"[1/3] profiling {', '.join(p.models)} on lab-arith ({p.per_level} questions per level) -> {prof_dir}"
    )
    # 128 new tokens: a level-5 scratchpad and answer take ~60; longer is a model that lost the format
    profile(
        list(p.models),
        "lab-arith",
        list(p.strategies),
        prof_dir,
        per_level=p.per_level,
        progress=progress,
        max_new_tokens=128,
        batch_size=p.batch_size,
    )
    seconds["profile"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    log(f"[2/3] fitting curves and laws -> {fit_dir}")
    # fits cached beside the profile by content: a rerun on the same samples fits nothing
    prof = load_profile(prof_dir, n_boot=p.n_boot, use_cache=use_cache, progress=progress)
    FitOutput(curves=prof.curves, fits=prof.fits).write(fit_dir)
    seconds["fit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    log(
        f"[3/3] planning over budgets and difficulties, headline findings on {p.n_splits} held-out splits, report"
    )
    files = build_report(
        prof_dir,
        out / "report.html",
        gpu=gpu,
        n_boot=p.n_boot,
        n_splits=p.n_splits,
        use_cache=use_cache,
        progress=progress,
    )
    seconds["plan and report"] = time.perf_counter() - t0
    content = files.content
    findings = content.findings
    text = "# Headline findings\n\n" + "\n".join(f"{i}. {f}" for i, f in enumerate(findings.texts, 1))
    measure = measure_next_block(content)
    text += f"\n\n_{findings.method()}._\n\n"
    if measure:
        text += f"## {measure[0]}\n\n```\n" + "\n".join(measure[1:]) + "\n```\n\n"
    text += "## Next steps\n\n"
    text += "\n".join(f"{i}. `{cmd}`: {why}" for i, (cmd, why) in enumerate(content.next_steps, 1)) + "\n"
    atomic_write(out / "findings.md", text)
    return DemoResult(
        out=out,
        report=Path(files.html),
        findings=findings.texts,
        seconds=seconds,
        method=findings.method(),
        next_steps=content.next_steps,
        measure_next=measure,
    )
