"""``ttc profile``: measure strategies on models over a task (the samples table)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ._common import INPUT, MODELS, OUTPUT, RUN, STRATEGIES, console, fail

PROFILE_HELP = """Measure test-time compute strategies on models and write the samples table.

Every row records measured tokens, latency and KV bytes, the extracted answer and its verdict,
as Parquet shards in the --out folder (readable by `ttc fit` and fitting.schema.read_samples),
with run.json beside them (model config, dtype, device, versions, seeds, command line).

Example (the built-in lab: a tiny model on synthetic multi-step arithmetic):

    ttc profile --model lab-s --task lab-arith --strategy greedy --strategy pool:n=64,temperature=1.0 --strategy beam:width=4 --questions 200 --out runs/lab-s

**Strategies** (`--strategy NAME:key=value,...`, repeatable; `key=a|b|c` sweeps a knob, e.g.
`budget:tokens=16|32|64` is three configs):

STRATEGIES

**Questions**: `--questions N` takes the first N questions of each difficulty level (default),
or the first N overall with `--questions-overall`.

**Resume and scale**: rerunning the same command skips every finished (model, strategy, config,
question) unit, so an interrupted run (Ctrl-C, kill -9) loses at most the last few seconds.
`--shard i/n` keeps the questions whose id hashes to worker i of n; give each worker its own
--out and combine them with `ttc merge`.
"""


def _strategies_help() -> str:
    # strategies are light modules (no torch), so listing them keeps `ttc --help` fast
    from profiling.strategies import describe_strategies

    return "\n".join(f"* {line}" for line in describe_strategies().splitlines())


def _load(spec: str, device: str | None):
    from profiling.backends import load_backend

    if device is not None:
        if spec.startswith(("openai:", "vllm:")):
            raise ValueError(f"--device applies to local hf models only, not to {spec!r}")
        return load_backend(spec, device=device)
    return load_backend(spec)


def _lab_models() -> dict:
    """Lab model name -> spec, or {} when the lab package does not define them."""
    try:
        from profiling.lab.models import LAB_MODELS
    except ImportError:
        return {}
    return dict(LAB_MODELS)


def _check_model_spec(spec: str) -> None:
    """Fail before any work when a model spec names no model (a typo in a lab name or a path)."""
    if spec.startswith("openai:"):
        from profiling.backends import split_openai_spec

        split_openai_spec(spec.removeprefix("openai:"))
        return
    if spec.startswith("vllm:"):
        return
    location = spec.removeprefix("hf:")
    if Path(location).expanduser().exists():
        return
    lab = _lab_models()
    if location in lab:
        from profiling.lab.models import checkpoint_path

        if not checkpoint_path(location).is_dir():
            raise FileNotFoundError(
                f"lab model {location!r} has no checkpoint at {checkpoint_path(location)} yet (train the lab models first)"
            )
        return
    known = f"a lab model ({', '.join(lab)})" if lab else "a lab model name"
    raise ValueError(
        f"unknown model {spec!r}: expected {known}, a local checkpoint folder, 'vllm:PATH_OR_NAME' "
        "or 'openai:http://HOST:PORT/v1/MODEL'"
    )


def profile_command(
    model: list[str] = typer.Option(
        ...,
        "--model",
        "-m",
        help="Lab name (lab-s), checkpoint folder, or openai:URL/MODEL. Repeatable.",
        rich_help_panel=MODELS,
    ),
    task: str = typer.Option(
        ..., "--task", "-t", help="Built-in task (lab-arith) or a JSONL file path.", rich_help_panel=INPUT
    ),
    strategy: list[str] = typer.Option(
        ["greedy"],
        "--strategy",
        "-s",
        help="NAME:key=value,... (repeatable); see the list above.",
        rich_help_panel=STRATEGIES,
    ),
    questions: int = typer.Option(
        20, "--questions", "-q", min=1, help="First N questions per difficulty level.", rich_help_panel=INPUT
    ),
    questions_overall: bool = typer.Option(
        False,
        "--questions-overall",
        help="Take the first --questions questions overall, not per level.",
        rich_help_panel=INPUT,
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Run folder (created; rerun to resume).", rich_help_panel=OUTPUT
    ),
    seed: int = typer.Option(
        0, "--seed", help="Run seed; each unit's sampling seed derives from it.", rich_help_panel=RUN
    ),
    device: str | None = typer.Option(
        None, "--device", help="hf models: cpu, cuda, cuda:1 (default: cuda if any).", rich_help_panel=MODELS
    ),
    max_new_tokens: int = typer.Option(
        256, "--max-new-tokens", min=1, help="Token cap of each generation call.", rich_help_panel=RUN
    ),
    shard: str = typer.Option(
        "0/1", "--shard", help="i/n: profile only the questions of worker i of n.", rich_help_panel=RUN
    ),
    batch_size: int = typer.Option(
        8, "--batch-size", min=1, help="Questions per strategy call (batched requests).", rich_help_panel=RUN
    ),
    split: str = typer.Option(
        "eval", "--split", help="Task split to draw questions from.", rich_help_panel=INPUT
    ),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", help="Progress bar on stderr.", rich_help_panel=OUTPUT
    ),
) -> None:
    # Idle OpenMP threads sleep instead of spinning: on shared or busy CPUs spinning threads
    # slow torch down many times over. Must be set before torch loads; the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from profiling.runner import profile
    from profiling.storage import RunMismatch, parse_shard
    from profiling.strategies import expand_specs
    from profiling.tasks import get_task

    try:
        shard_spec = parse_shard(shard)
        strategies = expand_specs(strategy)
        for spec in model:
            _check_model_spec(spec)
        task_obj = get_task(task)
        for s in strategies:
            s.check_task(task_obj)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    except ImportError as exc:  # a registered module that cannot be imported (broken install)
        fail(f"cannot load {task!r}: {exc}")
    try:
        result = profile(
            model,
            task_obj,
            strategies,
            out,
            per_level=None if questions_overall else questions,
            limit=questions if questions_overall else None,
            split=split,
            seed=seed,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            shard=shard_spec,
            device=device,
            progress=progress,
            command=["ttc", *sys.argv[1:]],
            loader=_load,
        )
    except KeyboardInterrupt:
        fail(f"interrupted; finished units are saved in {out}; rerun the same command to resume", code=130)
    except (ValueError, FileNotFoundError, RunMismatch) as exc:
        fail(str(exc))
    rate = result.completion_tokens / result.elapsed_s if result.elapsed_s > 0 else 0.0
    console.print(
        f"profiled {result.units_run} unit(s) ({result.units_skipped} already done) -> {result.rows_written} rows, "
        f"{result.completion_tokens:,} tokens in {result.elapsed_s:.1f} s ({rate:,.0f} tok/s); "
        f"run {result.run_id} in {out}"
    )
    console.print(f"next: ttc fit {out}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command(
        "profile",
        help=PROFILE_HELP.replace("STRATEGIES", _strategies_help()),
        short_help="Measure strategies on models over a task (samples table).",
    )(profile_command)
