"""``ttc profile``: measure strategies on models over a task (the samples table)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import typer

from profiling.backends.sparse import attention_groups

from ._common import console, err_console, fail
from ._options import (
    AssumeCompletionTokens,
    AssumePromptTokens,
    BudgetFlops,
    BudgetUsd,
    Difficulty,
    Gpu,
    Model,
    ModelSpec,
    Out,
    Seed,
    Strategy,
    Tp,
    Verifier,
)
from ._options_profile import (
    Adaptive,
    Backend,
    BatchSize,
    Block,
    BudgetProfileTokens,
    BudgetSamples,
    CpusPerWorker,
    Device,
    Engine,
    Executor,
    ForecastAt,
    GpusPerWorker,
    MaxNewTokens,
    Questions,
    QuestionsOverall,
    RayAddress,
    Shard,
    ShowProgress,
    Source,
    Split,
    StopRegret,
    Task,
    WaitLock,
    Workers,
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

#: questions per difficulty level of a generating run without --questions
_DEFAULT_QUESTIONS = 20


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
    model: Model = None,
    task: Task = None,
    backend: Backend = None,
    source: Source = None,
    strategy: Strategy = ["greedy"],  # noqa: B006 - typer copies the default
    questions: Questions = None,
    questions_overall: QuestionsOverall = False,
    out: Out = ...,
    seed: Seed = 0,
    engine: Engine = "auto",
    device: Device = None,
    max_new_tokens: MaxNewTokens = 256,
    shard: Shard = "0/1",
    executor: Executor = "local",
    ray_address: RayAddress = None,
    workers: Workers = None,
    gpus_per_worker: GpusPerWorker = 0.0,
    cpus_per_worker: CpusPerWorker = 1.0,
    wait_lock: WaitLock = False,
    batch_size: BatchSize = 8,
    split: Split = "eval",
    progress: ShowProgress = True,
    adaptive: Adaptive = False,
    budget_samples: BudgetSamples = None,
    budget_profile_tokens: BudgetProfileTokens = None,
    stop_regret: StopRegret = 0.5,
    block: Block = 4,
    forecast_at: ForecastAt = None,
    budget_flops: BudgetFlops = None,
    budget_usd: BudgetUsd = None,
    gpu: Gpu = None,
    tp: Tp = None,
    verifier: Verifier = None,
    difficulty: Difficulty = None,
    model_spec: ModelSpec = None,
    assume_prompt_tokens: AssumePromptTokens = None,
    assume_completion_tokens: AssumeCompletionTokens = None,
) -> None:
    # Idle OpenMP threads sleep instead of spinning: on shared or busy CPUs spinning threads
    # slow torch down many times over. Must be set before torch loads; the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from profiling.sharding import parse_shard

    from ._errors import claim_output

    claim_output(out, "folder", remove_on_failure=False)
    shard_spec = parse_shard(shard)
    groups, strategies = _strategies(strategy, adaptive or backend is not None or source is not None)
    if adaptive:
        pool_knobs(strategies)  # one pool strategy (and any others), checked before any work
    models, task_obj, loader, questions = _inputs(
        model, task, backend, source, strategies, device, engine, questions
    )
    run_kwargs = {
        "per_level": None if questions_overall else questions,
        "limit": questions if questions_overall else None,
        "split": split,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "shard": shard_spec,
        "device": device,
        "progress": progress,
        "loader": loader,
        "executor": _executor(executor, ray_address, workers, gpus_per_worker, cpus_per_worker),
    }
    opts = AdaptiveOptions(
        budget_samples,
        budget_profile_tokens,
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
        run_adaptive(models, task_obj, strategies, out, opts, run_kwargs, seed)
        return
    if opts.given():
        raise ValueError(f"{opts.given()[0]} applies to --adaptive runs only")
    for result in _run_groups(groups, models, task_obj, out, seed=seed, wait_lock=wait_lock, **run_kwargs):
        _report(result, out)
    console.print(f"next: ttc fit {out}", highlight=False)


def _strategies(specs: list[str], not_generating: bool):
    """The ``--strategy`` specs as attention groups and expanded strategies; ``attn_blocks`` in a
    spec (the model variant ``lab-m@attn_blocks=2``, :mod:`profiling.backends.sparse`) applies
    to generating runs only."""
    from profiling.strategies import expand_specs

    groups = attention_groups(specs)
    strategies = expand_specs(list(dict.fromkeys(s for _, group in groups for s in group)))
    if (len(groups) > 1 or groups[0][0]) and not_generating:
        raise ValueError("attn_blocks in a --strategy applies to generating runs (not --adaptive or replay)")
    return groups, strategies


def _inputs(models, task, backend, source, strategies, device, engine, questions):
    """Models, task, loader (replay) and question count of the run, checked before any work."""
    from profiling.backends import with_engine
    from profiling.tasks import get_task

    try:
        loader = None
        if backend is not None or source is not None:
            models, task_obj, loader = _replay(backend, source, models, task, strategies, device)
        else:
            models = [with_engine(spec, engine) for spec in models] if models else models
            models, task_obj = _generating(models, task, device), get_task(task)
            questions = _DEFAULT_QUESTIONS if questions is None else questions
        for s in strategies:
            s.check_task(task_obj)
    except ImportError as exc:  # a registered module that cannot be imported (broken install)
        fail(f"cannot load {task!r}: {exc}")
    return models, task_obj, loader, questions


def _run_groups(groups, models, task, out: Path, **kwargs) -> list:
    """One profiler call per attention group; SIGTERM (a scheduler's preemption, `kill`) ends
    the run like Ctrl-C: finished units are flushed, and a run that wrote nothing removes what
    it created."""
    from profiling.runner import profile
    from profiling.strategies import expand_specs

    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    results = []
    try:
        for suffix, specs in groups:
            results.append(
                _run(profile, [m + suffix for m in models], task, expand_specs(specs), out, **kwargs)
            )
    except KeyboardInterrupt:
        saved = "finished units are saved" if out.is_dir() else "nothing was written"
        fail(f"interrupted; {saved} in {out}; rerun the same command to resume", code=130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return results


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
