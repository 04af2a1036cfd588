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

from fitting import schema as S
from fitting.progress import Progress

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

__all__ = ["profile", "ProfileResult", "outcome_rows", "select_problems"]


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
    t_start = time.perf_counter()
    task_obj, task_spec = _load_task(task)
    strats = [s for s in strategies if isinstance(s, Strategy)]
    strats += expand_specs([s for s in strategies if not isinstance(s, Strategy)])
    if not strats:
        raise ValueError("no strategy given; e.g. greedy or pool:n=16")
    for s in strats:
        s.check_task(task_obj)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    problems = select_problems(task_obj, per_level=per_level, limit=limit, split=split, shard=shard)
    out = Path(out)
    executor = executor or LocalExecutor()
    with contextlib.ExitStack() as stack:
        # unwinds in reverse: flush the last shard, stop the bar, unlock, close the workers
        stack.callback(executor.close)
        existed = {p.name for p in out.iterdir()} if out.is_dir() else None
        stack.enter_context(run_lock(out, wait=wait_lock, on_wait=on_wait, command=command))
        # a run that fails before writing a unit leaves nothing behind (unwinds after the
        # writer's last flush, while the lock is still held)
        stack.push(lambda exc_type, *_: exc_type is not None and _remove_failed_run(out, existed))
        # the folder is read only once this process holds its lock
        signature = run_signature(
            task_obj.name, seed, max_new_tokens, [(s.name, s.config_json()) for s in strats]
        )
        fresh = new_run_metadata(
            signature,
            task={"name": task_obj.name, "spec": task_spec, "split": split},
            strategies=[{"name": s.name, "spec": str(s.spec), "config": s.config} for s in strats],
            seed=seed,
            max_new_tokens=max_new_tokens,
            device=device,
        )
        meta = read_run(out)
        if meta is None:
            meta = fresh
        else:
            # a rerun may add strategy configs (e.g. a larger pool on the same questions)
            check_same_run(meta, fresh, f"the run in {out}", "this command", new_strategies=True)
            add_strategies(meta, fresh)
        selection = {"split": split, "per_level": per_level, "limit": limit if per_level is None else None}
        for key, value in (
            ("questions", selection),
            ("shards", f"{shard[0]}/{shard[1]}"),
            ("commands", command or command_line()),
        ):
            if value not in meta.setdefault(key, []):
                meta[key].append(value)
        meta.setdefault("batch_sizes", [])
        if batch_size not in meta["batch_sizes"]:
            meta["batch_sizes"].append(batch_size)
        # run.json is written when each model registers (before its first shard) or, when every
        # model is skipped as done, once at the end
        registered: list[str] = []

        run_id = meta["run_id"]
        held = unit_shards(out)
        done = set(held)
        result = ProfileResult(out, run_id, units_total=len(models) * len(strats) * len(problems))
        dups = duplicate_units(held)
        if dups:
            result.duplicates = describe_duplicates(dups, out)
        writer = ShardWriter(
            out, f"w{shard[0]}of{shard[1]}", every_s=flush_every_s, every_units=flush_every_units
        )
        bar = _Progress(result) if progress else None
        stack.callback(_finish, result, writer, bar, t_start)
        stack.enter_context(writer)
        executor.start(
            RunSetup(task_obj, tuple(strats), seed, max_new_tokens, run_id), loader or _default_loader, device
        )
        for model in models:
            if isinstance(model, str):  # skip loading a model whose units are all done
                name = meta.get("model_specs", {}).get(model)
                if name is not None and all(
                    (name, task_obj.name, s.name, s.config_json(), p.id) in done
                    for s in strats
                    for p in problems
                ):
                    _skip(result, len(strats) * len(problems), bar)
                    continue
            loaded = executor.load(model)
            try:
                _register_model(out, meta, model, loaded, executor)
                registered.append(loaded.name)
                jobs = []
                for index, strategy in enumerate(strats):
                    key = (loaded.name, task_obj.name, strategy.name, strategy.config_json())
                    todo = [p for p in problems if (*key, p.id) not in done]
                    _skip(result, len(problems) - len(todo), bar)
                    jobs += [
                        Job(index, tuple(todo[start : start + batch_size]))
                        for start in range(0, len(todo), batch_size)
                    ]
                last, gap = time.perf_counter(), 0.0
                for item in executor.run(jobs):
                    if item is not None:
                        job, units = item
                        for problem, unit in zip(job.problems, units, strict=True):
                            if isinstance(unit, ExhaustedUnit):
                                result.exhausted.append(
                                    _exhausted(loaded.name, strats[job.strategy], problem, unit)
                                )
                                continue
                            if not unit:  # a sample did not finish (executor.run_job): not written
                                s = strats[job.strategy]
                                result.unfinished.append(
                                    f"{loaded.name} {s.name} {s.config_json()} {problem.id}"
                                )
                                continue
                            writer.add_unit(unit)
                            result.units_run += 1
                            result.completion_tokens += _unit_tokens(unit)
                            if on_unit is not None:
                                on_unit(result)
                        if bar is not None:
                            bar.update()
                        now = time.perf_counter()
                        last, gap = now, now - last
                    # flush now if the buffer would be too old by the time the next job is in
                    writer.maybe_flush(wait_s=gap)
            finally:
                executor.unload()
        if result.exhausted:
            known = meta.setdefault("exhausted", [])
            known += [e for e in result.exhausted if e not in known]
        if not registered or result.exhausted:
            write_run(out, meta)
    return result


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
    """Units run of the units left to run, tokens/s and ETA (:class:`fitting.progress.Progress`:
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
