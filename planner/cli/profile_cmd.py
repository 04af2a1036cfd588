"""``ttc profile``: measure strategies on models over a task (the samples table)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import typer

from ._common import INPUT, MODELS, OUTPUT, RUN, STRATEGIES, console, err_console, fail

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

**Resume**: rerunning the same command skips every finished (model, strategy, config,
question) unit, so an interrupted run (Ctrl-C, kill -9) loses at most the last few seconds.
One process writes a run folder at a time: a second `ttc profile` on the same --out stops
at once naming the first one's pid (`--wait-lock` queues it behind the first instead); the
lock dies with its process, so a killed run never blocks the rerun.

**Beyond one machine**: `--executor ray` runs the same units on a Ray cluster (one actor per
model replica, `--workers N`, `--gpus-per-worker G`; the driver writes the shards; an actor
that dies loses only its batch, which is retried elsewhere), with the same rows as one
process. `--shard i/n` (or `--shard auto` inside a Slurm or Grid Engine job array) keeps the
questions whose id hashes to worker i of n; give each worker its own --out and combine them
with `ttc merge`.
"""

SCALE = "Beyond one machine"


def _strategies_help() -> str:
    # strategies are light modules (no torch), so listing them keeps `ttc --help` fast
    from profiling.strategies import describe_strategies

    return "\n".join(f"* {line}" for line in describe_strategies().splitlines())


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
    location = spec.removeprefix("hf:").removeprefix("fast:")
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
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="Local checkpoints: fast (the fast decode loop of small Llama/Mixtral models), hf "
        "(transformers' generate) or auto (fast where it runs and the model is small).",
        rich_help_panel=MODELS,
    ),
    device: str | None = typer.Option(
        None, "--device", help="hf models: cpu, cuda, cuda:1 (default: cuda if any).", rich_help_panel=MODELS
    ),
    max_new_tokens: int = typer.Option(
        256, "--max-new-tokens", min=1, help="Token cap of each generation call.", rich_help_panel=RUN
    ),
    shard: str = typer.Option(
        "0/1",
        "--shard",
        help="i/n: profile only the questions of worker i of n; auto: i/n of this Slurm or Grid Engine array task.",
        rich_help_panel=SCALE,
    ),
    executor: str = typer.Option(
        "local", "--executor", help="local (this process) or ray (a Ray cluster).", rich_help_panel=SCALE
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help="Ray cluster to join (HOST:6379, ray://HOST:10001, auto: this machine's `ray start` cluster); "
        "default: RAY_ADDRESS, else a new local cluster.",
        rich_help_panel=SCALE,
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Ray actors (model replicas); default: as many as the cluster's GPUs or CPUs hold.",
        rich_help_panel=SCALE,
    ),
    gpus_per_worker: float = typer.Option(
        0.0,
        "--gpus-per-worker",
        min=0.0,
        help="GPUs of each Ray actor (vllm: its tensor-parallel size).",
        rich_help_panel=SCALE,
    ),
    cpus_per_worker: float = typer.Option(
        1.0,
        "--cpus-per-worker",
        min=0.0,
        help="CPUs of each Ray actor (torch threads).",
        rich_help_panel=SCALE,
    ),
    wait_lock: bool = typer.Option(
        False,
        "--wait-lock",
        help="If another ttc profile is writing --out, wait for it to finish (then resume) instead of stopping.",
        rich_help_panel=RUN,
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
    from profiling.backends import with_engine
    from profiling.runner import profile
    from profiling.sharding import parse_shard
    from profiling.strategies import expand_specs
    from profiling.tasks import get_task

    from ._errors import claim_output

    claim_output(out, "folder", remove_on_failure=False)
    try:
        shard_spec = parse_shard(shard)
        strategies = expand_specs(strategy)
        model = [with_engine(spec, engine) for spec in model]
        for spec in model:
            _check_model_spec(spec)
            if device is not None and spec.startswith(("openai:", "vllm:")):
                raise ValueError(f"--device applies to local hf models only, not to {spec!r}")
        if device is not None:
            from profiling.backends.hf import resolve_device

            resolve_device(device)
        task_obj = get_task(task)
        for s in strategies:
            s.check_task(task_obj)
    except ImportError as exc:  # a registered module that cannot be imported (broken install)
        fail(f"cannot load {task!r}: {exc}")
    runner = _executor(executor, ray_address, workers, gpus_per_worker, cpus_per_worker)
    # SIGTERM (a scheduler's preemption, `kill`) ends the run like Ctrl-C: finished units are
    # flushed, and a run that wrote nothing removes what it created
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
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
            executor=runner,
            wait_lock=wait_lock,
            on_wait=lambda line: err_console.print(f"[yellow]{line}[/]", highlight=False),
        )
    except KeyboardInterrupt:
        saved = "finished units are saved" if out.is_dir() else "nothing was written"
        fail(f"interrupted; {saved} in {out}; rerun the same command to resume", code=130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if result.duplicates:
        err_console.print(f"[yellow]warning:[/] {result.duplicates}", highlight=False)
    if result.unfinished:
        err_console.print(
            f"[yellow]warning:[/] {len(result.unfinished)} unit(s) not written: the engine aborted or failed a "
            f"sample of theirs (partial text), e.g. {result.unfinished[0]}; rerun the same command to retry them",
            highlight=False,
        )
    rate = result.completion_tokens / result.elapsed_s if result.elapsed_s > 0 else 0.0
    console.print(
        f"profiled {result.units_run} unit(s) ({result.units_skipped} already done) -> {result.rows_written} rows, "
        f"{result.completion_tokens:,} tokens in {result.elapsed_s:.1f} s ({rate:,.0f} tok/s); "
        f"run {result.run_id} in {out}"
    )
    console.print(f"next: ttc fit {out}", highlight=False)


def _executor(name: str, address: str | None, workers: int | None, gpus: float, cpus: float):
    """The executor for ``--executor`` (Ray is imported only when the run starts)."""
    if name == "local":
        ray_flags = address is not None or workers is not None or gpus or cpus != 1.0
        if ray_flags:
            raise ValueError(
                "--ray-address, --workers, --gpus-per-worker and --cpus-per-worker need --executor ray"
            )
        return None
    if name == "ray":
        from profiling.ray_executor import RayExecutor

        RayExecutor.require()
        return RayExecutor(address=address, workers=workers, gpus_per_worker=gpus, cpus_per_worker=cpus)
    raise ValueError(f"--executor must be local or ray, got {name!r}")


def register(app: typer.Typer) -> None:
    app.command(
        "profile",
        help=PROFILE_HELP.replace("STRATEGIES", _strategies_help()),
        short_help="Measure strategies on models over a task (samples table).",
    )(profile_command)
