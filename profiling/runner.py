"""The profile loop: models x strategies x questions -> samples shards (resumable).

For each model (loaded one at a time), each strategy, and each batch of ``batch_size``
questions not yet in the output folder, run the strategy and buffer its rows by unit;
:class:`~profiling.storage.ShardWriter` writes them atomically every few seconds. A rerun of
the same command skips finished units; ``shard=(i, n)`` keeps only the questions this worker
owns (:func:`~profiling.storage.shard_of`).

Example (a test double stands in for a model here; ``ttc profile`` loads real ones)::

    from profiling.runner import profile
    result = profile(["lab-s"], "lab-arith", ["greedy", "pool:n=16"], "runs/lab", per_level=20)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.progress import Progress
from fitting import schema as S

from .backends import Backend, ExhaustedUnit, load_backend
from .executor import Executor, Job, LoadedModel, LocalExecutor, RunSetup, outcome_rows
from .lock import LOCK_FILE, remove_lock_file, run_lock
from .storage import (
    RUN_FILE,
    ShardWriter,
    add_strategies,
    check_model,
    check_same_run,
    command_line,
    counts_shard_files,
    describe_duplicates,
    duplicate_units,
    new_run_metadata,
    read_run,
    run_signature,
    shard_files,
    shard_of,
    unit_shards,
    write_run,
)
from .strategies import Strategy, expand_specs
from .tasks import Problem, Task, get_task

__all__ = [
    "profile",
    "run_profile",
    "RunSettings",
    "RunHooks",
    "ProfileResult",
    "outcome_rows",
    "select_problems",
]


@dataclass
class ProfileResult:
    """What a :func:`profile` call did."""

    out: Path
    run_id: str
    units_total: int = 0
    units_skipped: int = 0  # already in the folder (resumed)
    units_run: int = 0
    rows_written: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0
    shards: list[Path] = field(default_factory=list)
    #: one line naming units already found in more than one shard (folders written by two
    #: profilers at once before the run-folder lock), or None
    duplicates: str | None = None
    #: units not written because a sample of theirs did not finish (the engine aborted or
    #: failed it: partial text), as ``"model strategy config question"``; a rerun retries them
    unfinished: list[str] = field(default_factory=list)
    #: units refused because their recorded pool is used up (replay; nothing is invented), as
    #: ``run.json`` records them: model, strategy, config, question and reason
    exhausted: list[dict] = field(default_factory=list)


def _load_task(task: str | Task) -> tuple[Task, str]:
    if isinstance(task, Task):
        return task, task.name
    return get_task(task), str(task)


def _default_loader(spec: str, device: str | None) -> Backend:
    return load_backend(spec) if device is None else load_backend(spec, device=device)


def select_problems(
    task: Task, *, per_level: int | None, limit: int | None, split: str, shard: tuple[int, int]
) -> list[Problem]:
    """The questions of this worker: the first ``per_level`` per level (or ``limit`` overall),
    then those whose id hashes to ``shard[0]`` of ``shard[1]``; duplicate ids are an error."""
    problems = list(task.problems(split=split, per_level=per_level, limit=limit))
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"task {task.name!r}: question id {dup!r} appears twice; ids must be unique")
    index, count = shard
    return [p for p in problems if shard_of(p.id, count) == index]


@dataclass(frozen=True)
class RunSettings:
    """What a run measures and how it stores it: the settings of one :func:`profile` call
    (see its parameters) that are neither the models, task, strategies nor the callbacks."""

    per_level: int | None = None
    limit: int | None = None
    split: str = "eval"
    seed: int = 0
    max_new_tokens: int = 256
    batch_size: int = 8
    shard: tuple[int, int] = (0, 1)
    device: str | None = None
    command: list[str] | None = None
    flush_every_s: float = 5.0
    flush_every_units: int = 512
    wait_lock: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def selection(self) -> dict:
        """The question selection as ``run.json`` records it (``limit`` only without ``per_level``)."""
        limit = self.limit if self.per_level is None else None
        return {"split": self.split, "per_level": self.per_level, "limit": limit}


@dataclass(frozen=True)
class RunHooks:
    """Where a run's calls go: the model loader, the executor and the callbacks."""

    loader: Callable[[str, str | None], Backend] | None = None
    on_unit: Callable[[ProfileResult], Any] | None = None
    executor: Executor | None = None
    on_wait: Callable[[str], Any] | None = None
    progress: bool = False


def profile(
    models: Sequence[str | Backend],
    task: str | Task,
    strategies: Sequence[str | Strategy],
    out: str | Path,
    *,
    per_level: int | None = None,
    limit: int | None = None,
    split: str = "eval",
    seed: int = 0,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    shard: tuple[int, int] = (0, 1),
    device: str | None = None,
    progress: bool = False,
    command: list[str] | None = None,
    flush_every_s: float = 5.0,
    flush_every_units: int = 512,
    loader: Callable[[str, str | None], Backend] | None = None,
    on_unit: Callable[[ProfileResult], Any] | None = None,
    executor: Executor | None = None,
    wait_lock: bool = False,
    on_wait: Callable[[str], Any] | None = None,
) -> ProfileResult:
    """Profile ``models`` x ``strategies`` on ``task`` into the run folder ``out`` (resumable).

    The keyword arguments are those of :class:`RunSettings` and :class:`RunHooks`;
    :func:`run_profile` takes them grouped.

    Parameters
    ----------
    models : model specs (lab name, checkpoint path, ``openai:URL/MODEL``; loaded one at a time
        with :func:`profiling.backends.load_backend`) or ready :class:`Backend` objects
    task : task name / JSONL path, or a :class:`Task`
    strategies : specs (``"pool:n=16"``, alternatives ``"budget:tokens=16|32"``) or strategies
    out : the run folder (created; a rerun resumes it)
    per_level, limit : the first ``per_level`` questions of each difficulty level, or the
        first ``limit`` overall (``per_level`` wins when both are given)
    seed : run seed; each unit's sampling seed derives from it, the model, the strategy config
        and the question id, so results do not depend on batching, sharding or resumption
    max_new_tokens : token cap of each generation call
    batch_size : questions per strategy call (each call batches their requests)
    shard : ``(i, n)``: keep the questions whose id hashes to worker ``i`` of ``n``
    progress : show a rich progress bar (units, tokens/s, ETA) on stderr
    flush_every_s, flush_every_units : shard flush policy (see :class:`ShardWriter`)
    on_unit : called after each unit with the running :class:`ProfileResult` (tests, hooks)
    executor : where the strategy calls run (:mod:`profiling.executor`): this process
        (default) or e.g. :class:`profiling.ray_executor.RayExecutor`; closed at the end
    wait_lock, on_wait : when another process holds the run folder's lock
        (:mod:`profiling.lock`), wait for it (``on_wait`` is told once, with the holder)
        instead of raising :class:`~profiling.lock.RunLocked`

    Raises
    ------
    ValueError for an unknown strategy/knob or a strategy the task cannot run;
    :class:`~profiling.storage.RunMismatch` when ``out`` holds a different run (another task,
    seed or token cap; new strategy configs are added to the run);
    :class:`~profiling.lock.RunLocked` when another process is writing ``out``;
    :class:`~profiling.executor.UnitsFailed` when jobs failed on every retry (the rest is saved).
    """
    settings = RunSettings(
        per_level=per_level,
        limit=limit,
        split=split,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        shard=shard,
        device=device,
        command=command,
        flush_every_s=flush_every_s,
        flush_every_units=flush_every_units,
        wait_lock=wait_lock,
    )
    hooks = RunHooks(loader=loader, on_unit=on_unit, executor=executor, on_wait=on_wait, progress=progress)
    return run_profile(models, task, strategies, out, settings, hooks)


def run_profile(
    models: Sequence[str | Backend],
    task: str | Task,
    strategies: Sequence[str | Strategy],
    out: str | Path,
    settings: RunSettings = RunSettings(),
    hooks: RunHooks = RunHooks(),
) -> ProfileResult:
    """:func:`profile` with its settings and hooks grouped: check the strategies, pick the
    questions, then measure every unit not yet in ``out`` under the run folder's lock."""
    t_start = time.perf_counter()
    task_obj, task_spec = _load_task(task)
    strats = _check_strategies(strategies, task_obj)
    problems = select_problems(
        task_obj,
        per_level=settings.per_level,
        limit=settings.limit,
        split=settings.split,
        shard=settings.shard,
    )
    out = Path(out)
    executor = hooks.executor or LocalExecutor()
    with contextlib.ExitStack() as stack:
        # unwinds in reverse: flush the last shard, stop the bar, unlock, close the workers
        stack.callback(executor.close)
        existed = {p.name for p in out.iterdir()} if out.is_dir() else None
        lock = run_lock(out, wait=settings.wait_lock, on_wait=hooks.on_wait, command=settings.command)
        stack.enter_context(lock)
        # a run that fails before writing a unit leaves nothing behind (unwinds after the
        # writer's last flush, while the lock is still held)
        stack.push(lambda exc_type, *_: exc_type is not None and _remove_failed_run(out, existed))
        # the folder is read only once this process holds its lock
        meta = _open_run(out, task_obj, task_spec, strats, settings)
        run = _Run(out, meta, task_obj, strats, problems, executor, hooks.on_unit)
        run.start(len(models), settings, hooks.progress)
        stack.callback(_finish, run.result, run.writer, run.bar, t_start)
        stack.enter_context(run.writer)
        setup = RunSetup(task_obj, tuple(strats), settings.seed, settings.max_new_tokens, meta["run_id"])
        executor.start(setup, hooks.loader or _default_loader, settings.device)
        registered = [name for model in models if (name := run.measure(model, settings.batch_size))]
        run.record_exhausted(registered)
    return run.result


def _check_strategies(strategies: Sequence[str | Strategy], task: Task) -> list[Strategy]:
    """The strategies of the run (specs expanded), each checked against the task."""
    strats = [s for s in strategies if isinstance(s, Strategy)]
    strats += expand_specs([s for s in strategies if not isinstance(s, Strategy)])
    if not strats:
        raise ValueError("no strategy given; e.g. greedy or pool:n=16")
    for s in strats:
        s.check_task(task)
    return strats


def _open_run(out: Path, task: Task, task_spec: str, strats: list[Strategy], settings: RunSettings) -> dict:
    """The run's ``run.json`` metadata: the folder's own (checked to be the same run, new
    strategy configs added) or a fresh one; this call's selection, shard, command and batch
    size appended to the lists it keeps."""
    signature = run_signature(
        task.name, settings.seed, settings.max_new_tokens, [(s.name, s.config_json()) for s in strats]
    )
    fresh = new_run_metadata(
        signature,
        task={"name": task.name, "spec": task_spec, "split": settings.split},
        strategies=[{"name": s.name, "spec": str(s.spec), "config": s.config} for s in strats],
        seed=settings.seed,
        max_new_tokens=settings.max_new_tokens,
        device=settings.device,
    )
    meta = read_run(out)
    if meta is None:
        meta = fresh
    else:
        # a rerun may add strategy configs (e.g. a larger pool on the same questions)
        check_same_run(meta, fresh, f"the run in {out}", "this command", new_strategies=True)
        add_strategies(meta, fresh)
    index, count = settings.shard
    for key, value in (
        ("questions", settings.selection()),
        ("shards", f"{index}/{count}"),
        ("commands", settings.command or command_line()),
        ("batch_sizes", settings.batch_size),
    ):
        if value not in meta.setdefault(key, []):
            meta[key].append(value)
    return meta


@dataclass
class _Run:
    """One run in progress: what it measures, what the folder already holds, the writer of
    its shards and the running :class:`ProfileResult`."""

    out: Path
    meta: dict
    task: Task
    strats: list[Strategy]
    problems: list[Problem]
    executor: Executor
    on_unit: Callable[[ProfileResult], Any] | None
    done: set = field(default_factory=set)
    result: ProfileResult | None = None
    writer: ShardWriter | None = None
    bar: _Progress | None = None

    def start(self, n_models: int, settings: RunSettings, progress: bool) -> None:
        """Read the units the folder holds (naming duplicates), open the writer and the bar."""
        held = unit_shards(self.out)
        self.done = set(held)
        total = n_models * len(self.strats) * len(self.problems)
        self.result = ProfileResult(self.out, self.meta["run_id"], units_total=total)
        if dups := duplicate_units(held):
            self.result.duplicates = describe_duplicates(dups, self.out)
        index, count = settings.shard
        self.writer = ShardWriter(
            self.out,
            f"w{index}of{count}",
            every_s=settings.flush_every_s,
            every_units=settings.flush_every_units,
        )
        self.bar = _Progress(self.result) if progress else None

    def measure(self, model: str | Backend, batch_size: int) -> str | None:
        """Run every unit of ``model`` not yet done; the loaded model's name, or None when
        the model was skipped without loading (all its units done)."""
        if isinstance(model, str) and self._all_done(model):
            _skip(self.result, len(self.strats) * len(self.problems), self.bar)
            return None
        loaded = self.executor.load(model)
        try:
            _register_model(self.out, self.meta, model, loaded, self.executor)
            last, gap = time.perf_counter(), 0.0
            for item in self.executor.run(self._jobs(loaded.name, batch_size)):
                if item is not None:
                    self._collect(loaded.name, *item)
                    now = time.perf_counter()
                    last, gap = now, now - last
                # flush now if the buffer would be too old by the time the next job is in
                self.writer.maybe_flush(wait_s=gap)
        finally:
            self.executor.unload()
        return loaded.name

    def _all_done(self, spec: str) -> bool:
        """Whether the model of ``spec`` (as an earlier run named it) has every unit done."""
        name = self.meta.get("model_specs", {}).get(spec)
        return name is not None and all(
            (name, self.task.name, s.name, s.config_json(), p.id) in self.done
            for s in self.strats
            for p in self.problems
        )

    def _jobs(self, model: str, batch_size: int) -> list[Job]:
        """The jobs of the units of ``model`` not yet done, ``batch_size`` questions each."""
        jobs = []
        for index, strategy in enumerate(self.strats):
            key = (model, self.task.name, strategy.name, strategy.config_json())
            todo = [p for p in self.problems if (*key, p.id) not in self.done]
            _skip(self.result, len(self.problems) - len(todo), self.bar)
            jobs += [
                Job(index, tuple(todo[start : start + batch_size]))
                for start in range(0, len(todo), batch_size)
            ]
        return jobs

    def _collect(self, model: str, job: Job, units: list) -> None:
        """Write a finished job's units; note those refused (exhausted) or unfinished."""
        result, strategy = self.result, self.strats[job.strategy]
        for problem, unit in zip(job.problems, units, strict=True):
            if isinstance(unit, ExhaustedUnit):
                result.exhausted.append(_exhausted(model, strategy, problem, unit))
                continue
            if not unit:  # a sample did not finish (executor.run_job): not written
                result.unfinished.append(f"{model} {strategy.name} {strategy.config_json()} {problem.id}")
                continue
            self.writer.add_unit(unit)
            result.units_run += 1
            result.completion_tokens += _unit_tokens(unit)
            if self.on_unit is not None:
                self.on_unit(result)
        if self.bar is not None:
            self.bar.update()

    def record_exhausted(self, registered: list[str]) -> None:
        """Add the units refused as exhausted to ``run.json``; write it when no model
        registered (every model skipped as done) or some unit was refused."""
        if self.result.exhausted:
            known = self.meta.setdefault("exhausted", [])
            known += [e for e in self.result.exhausted if e not in known]
        if not registered or self.result.exhausted:
            write_run(self.out, self.meta)


def _exhausted(model: str, strategy: Strategy, problem: Problem, unit: ExhaustedUnit) -> dict:
    """The ``run.json`` record of a unit refused for an exhausted recorded pool."""
    return {
        "model": model,
        "strategy": strategy.name,
        "config": strategy.config_json(),
        "question": problem.id,
        "reason": unit.reason,
    }


def _unit_tokens(unit: list[dict]) -> int:
    """Completion tokens of a unit: its rows' counts (a counts row: its per-sample mean times
    its samples); a count not recorded adds nothing."""
    return round(sum((r.get(S.COMPLETION_TOKENS) or 0) * r.get(S.N_SAMPLES, 1) for r in unit))


def _remove_failed_run(out: Path, existed: set[str] | None) -> bool:
    """After a failed run: if the folder holds no shard, remove what this run created
    (``run.json``, the lock file, the folder itself); a folder with finished units is kept
    for the rerun to resume. Returns False (the exception propagates)."""
    if shard_files(out) or counts_shard_files(out):
        return False
    before = existed or set()
    if RUN_FILE not in before:
        (out / RUN_FILE).unlink(missing_ok=True)
    if LOCK_FILE not in before:
        remove_lock_file(out)
    if existed is None:
        with contextlib.suppress(OSError):  # not empty: something else was put there meanwhile
            out.rmdir()
    return False


def _finish(result: ProfileResult, writer: ShardWriter, bar: _Progress | None, t_start: float) -> None:
    result.rows_written = writer.rows_written
    result.shards = list(writer.shards)
    result.elapsed_s = time.perf_counter() - t_start
    if bar is not None:
        bar.close()


def _skip(result: ProfileResult, count: int, bar: _Progress | None) -> None:
    result.units_skipped += count
    if bar is not None and count:
        bar.skip(count)


def _register_model(
    out: Path, meta: dict, spec: str | Backend, loaded: LoadedModel, executor: Executor
) -> None:
    """Record the model's metadata and what ran it in ``run.json``; refuse a model whose
    config changed."""
    known = meta.setdefault("models", {}).get(loaded.name)
    if known is not None:
        check_model(known, loaded.metadata, f"the run in {out}", "this command")
    else:
        meta["models"][loaded.name] = loaded.metadata
    if isinstance(spec, str):
        meta.setdefault("model_specs", {})[spec] = loaded.name
    described = executor.describe()
    if described not in meta.setdefault("executors", []):
        meta["executors"].append(described)
    write_run(out, meta)


class _Progress:
    """Units run of the units left to run, tokens/s and ETA (:class:`common.progress.Progress`:
    a bar on a terminal, a line every 10 s or 10% in a log).

    Units found already done are taken off the total rather than counted as progress, so the
    rate and ETA describe the work actually being done; nothing is shown until a unit runs, and
    a run with every unit already measured says so in one line.
    """

    def __init__(self, result: ProfileResult) -> None:
        self.result = result
        self.t0 = time.perf_counter()
        self.bar = Progress("profiling", result.units_total, unit="units")

    def skip(self, count: int) -> None:
        left = self.result.units_total - self.result.units_skipped
        if self.bar.t0 is None:
            self.bar.total = left  # not shown yet: a fully reused run never shows an empty bar
        else:
            self.bar.update(total=left)

    def update(self) -> None:
        r = self.result
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(r.units_run, note=f"{r.completion_tokens / elapsed:,.0f} tok/s")

    def close(self) -> None:
        r = self.result
        if r.units_run == 0 and r.units_total > 0 and r.units_skipped >= r.units_total:
            self.bar.close(f"profiling: all {r.units_total} units already measured in {r.out}")
            return
        if r.units_run:
            self.update()
        self.bar.close()
