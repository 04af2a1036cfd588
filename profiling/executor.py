"""Where the profiler's strategy calls run: in this process, or on a cluster.

The driver (:func:`profiling.runner.profile`) decides WHAT to run: for each model, the
units not yet in the run folder, cut into :class:`Job` batches of ``batch_size`` questions
of one strategy, in the same order whatever runs them. An :class:`Executor` decides WHERE:

* :class:`LocalExecutor` loads the model in this process and runs the jobs one after the
  other (``ttc profile``'s default);
* :class:`profiling.ray_executor.RayExecutor` loads one replica per Ray actor and runs
  jobs on whichever actor is free (``ttc profile --executor ray``).

Either way the driver alone writes shards: workers return each job's rows, grouped by unit
(:func:`run_job`), and never touch the run folder. Because every unit's sampling seed
derives from the run seed, the model, the strategy config and the question id
(:meth:`~profiling.strategies.Strategy.unit_seed`), and a job holds the same questions
whoever runs it, two executors give the same rows (answers, verdicts, token counts; timing
and KV measurements differ).

Call order::

    executor.start(setup, loader, device)
    for model in models:
        loaded = executor.load(model)          # the model's name and metadata
        for item in executor.run(jobs):        # (job, units) as jobs finish, or None (a tick)
            ...
        executor.unload()
    executor.close()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fitting import schema as S

from .backends import Backend, ExhaustedUnit
from .backends.replay import ReplayBackend
from .strategies import Outcome, RunContext, Strategy
from .tasks import Problem, Task

__all__ = [
    "Job",
    "RunSetup",
    "LoadedModel",
    "Executor",
    "LocalExecutor",
    "ExecutorError",
    "UnitsFailed",
    "run_job",
    "outcome_rows",
    "model_info",
]

#: ``loader(spec, device) -> Backend``: how a worker turns a model spec into a loaded backend
Loader = Callable[[str, "str | None"], Backend]


@dataclass(frozen=True)
class Job:
    """One strategy call: the run's strategy number ``strategy`` on one batch of questions."""

    strategy: int
    problems: tuple[Problem, ...]

    @property
    def units(self) -> int:
        return len(self.problems)


@dataclass(frozen=True)
class RunSetup:
    """What every worker needs besides the model: the task, the strategies and run settings."""

    task: Task
    strategies: tuple[Strategy, ...]
    seed: int
    max_new_tokens: int
    run_id: str


@dataclass
class LoadedModel:
    """A model as loaded by an executor: its name in the samples table and its metadata."""

    name: str
    metadata: dict[str, Any]
    #: where it runs (per worker: node, pid, library versions), for run.json
    workers: list[dict[str, Any]] = field(default_factory=list)


class ExecutorError(RuntimeError):
    """The workers could not run the jobs (they kept dying, or disagree about the model)."""


class UnitsFailed(ExecutorError):
    """Jobs that failed on every attempt (their workers died each time); the others are saved."""

    def __init__(self, message: str, jobs: Sequence[Job]) -> None:
        super().__init__(message)
        self.jobs = list(jobs)


def outcome_rows(
    outcomes: Sequence[Outcome], *, run_id: str, backend: Backend, task: Task, strategy: Strategy
) -> list[dict]:
    """Samples-table rows (schema column names) of a strategy's outcomes."""
    config = strategy.config_json()
    rows = []
    for o in outcomes:
        c = o.cost
        rows.append(
            {
                S.RUN_ID: run_id,
                S.MODEL: backend.model_name,
                S.BACKEND: backend.name,
                S.TASK: task.name,
                S.STRATEGY: strategy.name,
                S.CONFIG: config,
                S.QUESTION_ID: o.problem.id,
                S.DIFFICULTY: o.problem.difficulty,
                S.SAMPLE_IDX: o.sample_idx,
                S.ANSWER: o.answer,
                S.REFERENCE: task.normalize(o.problem.answer),
                S.CORRECT: bool(o.correct),
                S.PROMPT_TOKENS: c.prompt_tokens,
                S.COMPLETION_TOKENS: c.completion_tokens,
                S.LATENCY_S: c.latency_s,
                S.TTFT_S: c.ttft_s,
                S.KV_BYTES_PEAK: c.kv_bytes_peak,
                S.KV_SOURCE: c.kv_source if c.kv_bytes_peak is not None else None,
                S.FLOPS: None,
                S.LOGPROB: o.logprob,
                S.REWARD: o.reward,
            }
        )
    return rows


def run_job(backend: Backend, setup: RunSetup, job: Job) -> list[list[dict] | ExhaustedUnit]:
    """Run one job on a loaded backend; its rows grouped by unit, in the job's question order.

    A replay backend draws the units from its recording instead
    (:meth:`~profiling.backends.replay.ReplayBackend.run_job`); a unit past the end of its
    recorded pool comes back as :class:`~profiling.backends.ExhaustedUnit`.

    A unit any of whose rows used a sample the engine did not finish (finish reason
    ``abort`` or ``error``: partial text, see :data:`profiling.backends.UNFINISHED`) comes
    back EMPTY: it is not written, so it is never scored as an ordinary sample and a rerun
    retries it (the runner counts and reports it). Raises RuntimeError when the strategy
    returned no row for a question.
    """
    if isinstance(backend, ReplayBackend):
        return backend.run_job(setup, job)
    strategy = setup.strategies[job.strategy]
    ctx = RunContext(seed=setup.seed, max_new_tokens=setup.max_new_tokens, model=backend.model_name)
    outcomes = strategy.execute(backend, setup.task, list(job.problems), ctx)
    rows = outcome_rows(outcomes, run_id=setup.run_id, backend=backend, task=setup.task, strategy=strategy)
    by_question: dict[str, list[dict]] = {}
    for row in rows:
        by_question.setdefault(row[S.QUESTION_ID], []).append(row)
    unfinished = {o.problem.id for o in outcomes if o.cost.unfinished_calls}
    units = []
    for p in job.problems:
        if p.id not in by_question:
            raise RuntimeError(f"strategy {strategy.name} returned no row for question {p.id!r}")
        units.append([] if p.id in unfinished else by_question[p.id])
    return units


def model_info(backend: Backend) -> dict[str, Any]:
    """A backend's metadata for run.json, with its backend and model names filled in."""
    info = dict(backend.metadata())
    info.setdefault("backend", backend.name)
    info.setdefault("model", backend.model_name)
    return info


class Executor(ABC):
    """Runs the driver's jobs somewhere (module docstring for the call order)."""

    #: recorded in run.json's ``executors``
    name: str = ""

    def start(self, setup: RunSetup, loader: Loader, device: str | None) -> None:
        """Prepare workers for a run (the task and strategies travel once, here)."""
        self.setup, self.loader, self.device = setup, loader, device

    @abstractmethod
    def load(self, model: str | Backend) -> LoadedModel:
        """Load ``model`` (a spec, or a ready backend) on every worker."""

    @abstractmethod
    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, list[list[dict]]] | None]:
        """Run ``jobs`` on the loaded model; yield ``(job, units)`` as each finishes (in any
        order) and None now and then while waiting, so the driver can flush shards on time.
        Raises :class:`UnitsFailed` at the end for jobs that never succeeded."""

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Release the loaded model."""

    def describe(self) -> dict[str, Any]:
        """What ran the jobs, for run.json (library versions of the workers included)."""
        return {"executor": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the workers."""


class LocalExecutor(Executor):
    """Everything in this process: one model at a time, jobs in order."""

    name = "local"

    def __init__(self) -> None:
        self.backend: Backend | None = None
        self._owned = False

    def load(self, model: str | Backend) -> LoadedModel:
        self.unload()
        self._owned = isinstance(model, str)
        self.backend = self.loader(model, self.device) if isinstance(model, str) else model
        return LoadedModel(self.backend.model_name, model_info(self.backend))

    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, list[list[dict]]] | None]:
        if self.backend is None:
            raise RuntimeError("LocalExecutor.run before load")
        for job in jobs:
            yield job, run_job(self.backend, self.setup, job)

    def unload(self) -> None:
        if self.backend is not None and self._owned:
            self.backend.close()
        self.backend, self._owned = None, False
