"""``ttc profile``: measure strategies on models over a task (the samples table)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import typer

from profiling.backends.sparse import attention_groups

from ._common import INPUT, MODELS, OUTPUT, RUN, STRATEGIES, console, err_console, fail
from ._options import (
    ADAPTIVE,
    AssumeCompletionTokens,
    AssumePromptTokens,
    Block,
    BudgetProfileTokens,
    BudgetSamples,
    ForecastAt,
    StopRegret,
)
from .adaptive_cmd import AdaptiveOptions, pool_knobs, run_adaptive

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

**Replay** (`--backend replay --source PATH`): profile a recorded data set again (a samples or
counts folder, or any file `ttc import` reads) instead of generating. Each --model is a model of
the recording (default: all); the task and questions are the recording's (all of them unless
--questions). Each question's recorded pool is drawn without replacement in an order fixed by
--seed: rows exactly as recorded (counts: hypergeometric correct counts with the recorded
means); a unit past the end of its pool is not written and is listed in run.json. `pool` and
`greedy` (where recorded) replay; strategies that need generation are refused.

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
    """Fail before any work when a model spec names no model (a typo in a lab name or a path)
    or asks for sparse attention (``@attn_blocks=K``) badly or off the hf backend."""
    from profiling.backends import split_sparse_spec

    spec, _ = split_sparse_spec(spec)
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
    model: list[str] | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Lab name (lab-s), checkpoint folder, or openai:URL/MODEL; NAME@attn_blocks=K decodes an hf "
        "model with block top-k sparse attention (K blocks of 16 tokens + the recent one); with --backend "
        "replay, a model of --source (default: all). Repeatable.",
        rich_help_panel=MODELS,
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        "-t",
        help="Built-in task (lab-arith) or a JSONL file path; with --backend replay, the recording's own.",
        rich_help_panel=INPUT,
    ),
    backend: str | None = typer.Option(
        None,
        "--backend",
        help="replay: draw recorded samples from --source instead of generating (default: the --model "
        "spec picks the engine).",
        rich_help_panel=MODELS,
    ),
    source: Path | None = typer.Option(
        None,
        "--source",
        help="--backend replay: a samples or counts folder, or a file `ttc import` reads.",
        rich_help_panel=INPUT,
    ),
    strategy: list[str] = typer.Option(
        ["greedy"],
        "--strategy",
        "-s",
        help="NAME:key=value,... (repeatable); see the list above.",
        rich_help_panel=STRATEGIES,
    ),
    questions: int | None = typer.Option(
        None,
        "--questions",
        "-q",
        min=1,
        help="First N questions per difficulty level (default 20; --backend replay: all).",
        rich_help_panel=INPUT,
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
    adaptive: bool = typer.Option(
        False,
        "--adaptive",
        help="Profile in rounds where the decision needs it (with --strategy pool, --budget-samples or "
        "--budget-tokens, and the budgets to plan for).",
        rich_help_panel=ADAPTIVE,
    ),
    budget_samples: BudgetSamples = None,
    budget_tokens: BudgetProfileTokens = None,
    stop_regret: StopRegret = 0.5,
    block: Block = 4,
    forecast_at: ForecastAt = None,
    budget_flops: list[float] = typer.Option(
        [],
        "--budget-flops",
        help="--adaptive: a FLOPs-per-query budget to plan for (repeatable).",
        rich_help_panel=ADAPTIVE,
    ),
    budget_usd: list[float] = typer.Option(
        [],
        "--budget-usd",
        help="--adaptive: a US$-per-query budget to plan for (repeatable).",
        rich_help_panel=ADAPTIVE,
    ),
    gpu: str | None = typer.Option(
        None, "--gpu", help="--adaptive: the GPU to price on (default h100).", rich_help_panel=ADAPTIVE
    ),
    tp: int | None = typer.Option(
        None, "--tp", min=1, help="--adaptive: GPUs per replica.", rich_help_panel=ADAPTIVE
    ),
    verifier: str = typer.Option(
        "none", "--verifier", help="--adaptive: none or exact (an answer checker).", rich_help_panel=ADAPTIVE
    ),
    difficulty: str | None = typer.Option(
        None, "--difficulty", "-d", help="--adaptive: the difficulty to plan for.", rich_help_panel=ADAPTIVE
    ),
    model_spec: list[str] = typer.Option(
        [],
        "--model-spec",
        help="--adaptive: NAME=CATALOG_NAME_OR_CONFIG for models without a config (repeatable).",
        rich_help_panel=ADAPTIVE,
    ),
    assume_prompt_tokens: AssumePromptTokens = None,
    assume_completion_tokens: AssumeCompletionTokens = None,
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
        # `greedy:attn_blocks=2` is the model variant lab-m@attn_blocks=2 (profiling.backends.sparse)
        groups = attention_groups(strategy)
        strategies = expand_specs(list(dict.fromkeys(s for _, specs in groups for s in specs)))
        if len(groups) > 1 or groups[0][0]:
            if adaptive or backend is not None or source is not None:
                raise ValueError(
                    "attn_blocks in a --strategy applies to generating runs (not --adaptive or replay)"
                )
        if adaptive:
            pool_knobs(strategies)  # one pool strategy, checked before any work
        loader = None
        if backend is not None or source is not None:
            model, task_obj, loader = _replay(backend, source, model, task, strategies, device)
        else:
            model = [with_engine(spec, engine) for spec in model] if model else model
            model, task_obj = _generating(model, task, device), get_task(task)
            questions = 20 if questions is None else questions
        for s in strategies:
            s.check_task(task_obj)
    except ImportError as exc:  # a registered module that cannot be imported (broken install)
        fail(f"cannot load {task!r}: {exc}")
    runner = _executor(executor, ray_address, workers, gpus_per_worker, cpus_per_worker)
    opts = AdaptiveOptions(
        budget_samples,
        budget_tokens,
        stop_regret,
        block,
        budget_flops,
        budget_usd,
        gpu,
        tp,
        verifier,
        difficulty,
        model_spec,
        assume_prompt_tokens,
        assume_completion_tokens,
        forecast_at=forecast_at,
    )
    if adaptive:
        runner_kwargs = {
            "per_level": None if questions_overall else questions,
            "split": split,
            "limit": questions if questions_overall else None,
            "max_new_tokens": max_new_tokens,
            "batch_size": batch_size,
            "shard": shard_spec,
            "device": device,
            "loader": loader,
            "executor": runner,
            "progress": progress,
        }
        run_adaptive(model, task_obj, strategies, out, opts, runner_kwargs, seed)
        return
    if opts.given():
        raise ValueError(f"{opts.given()[0]} applies to --adaptive runs only")
    # SIGTERM (a scheduler's preemption, `kill`) ends the run like Ctrl-C: finished units are
    # flushed, and a run that wrote nothing removes what it created
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    results = []
    try:
        for suffix, specs in groups:
            results.append(
                _run(
                    profile,
                    [m + suffix for m in model],
                    task_obj,
                    expand_specs(specs),
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
                    loader=loader,
                    executor=runner,
                    wait_lock=wait_lock,
                )
            )
    except KeyboardInterrupt:
        saved = "finished units are saved" if out.is_dir() else "nothing was written"
        fail(f"interrupted; {saved} in {out}; rerun the same command to resume", code=130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    for result in results:
        _report(result, out)
    console.print(f"next: ttc fit {out}", highlight=False)


def _run(profile, models, task, strategies, out, **kwargs):
    """One ``profiling.runner.profile`` call of the command."""
    return profile(
        models,
        task,
        strategies,
        out,
        command=["ttc", *sys.argv[1:]],
        on_wait=lambda line: err_console.print(f"[yellow]{line}[/]", highlight=False),
        **kwargs,
    )


def _report(result, out: Path) -> None:
    """The warnings and the summary line of one profiler call."""
    if result.duplicates:
        err_console.print(f"[yellow]warning:[/] {result.duplicates}", highlight=False)
    if result.unfinished:
        err_console.print(
            f"[yellow]warning:[/] {len(result.unfinished)} unit(s) not written: the engine aborted or failed a "
            f"sample of theirs (partial text), e.g. {result.unfinished[0]}; rerun the same command to retry them",
            highlight=False,
        )
    if result.exhausted:
        first = result.exhausted[0]
        err_console.print(
            f"[yellow]warning:[/] {len(result.exhausted)} unit(s) not written: their recorded pool is used up "
            f"(nothing is invented; run.json lists them under 'exhausted'), e.g. {first['model']} "
            f"{first['strategy']} {first['config']} question {first['question']}: {first['reason']}",
            highlight=False,
        )
    rate = result.completion_tokens / result.elapsed_s if result.elapsed_s > 0 else 0.0
    console.print(
        f"profiled {result.units_run} unit(s) ({result.units_skipped} already done) -> {result.rows_written} rows, "
        f"{result.completion_tokens:,} tokens in {result.elapsed_s:.1f} s ({rate:,.0f} tok/s); "
        f"run {result.run_id} in {out}"
    )


def _generating(models: list[str] | None, task: str | None, device: str | None) -> list[str]:
    """The model specs of a generating run, checked before any work."""
    if not models or task is None:
        raise ValueError("missing option --model and --task (or --backend replay --source PATH)")
    for spec in models:
        _check_model_spec(spec)
        if device is not None and spec.startswith(("openai:", "vllm:")):
            raise ValueError(f"--device applies to local hf models only, not to {spec!r}")
    if device is not None:
        from profiling.backends.hf import resolve_device

        resolve_device(device)
    return models


def _replay(backend, source, models, task, strategies, device):
    """Models, task and loader of ``--backend replay --source PATH``, checked before any work."""
    if backend is None:
        raise ValueError("--source needs --backend replay")
    if backend != "replay":
        raise ValueError(f"--backend must be replay (the --model spec picks other engines), got {backend!r}")
    if source is None:
        raise ValueError(
            "--backend replay needs --source PATH (a samples or counts folder, or a file ttc import reads)"
        )
    if device is not None:
        raise ValueError("--device does not apply to --backend replay: it generates nothing")
    from profiling.backends.replay import ReplaySource

    recording = ReplaySource.read(source, task)
    models = recording.select_models(models)
    recording.check(models, strategies)
    return models, recording.task(), recording.load


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
