"""Profiling on a Ray cluster: one long-lived actor per model replica; the driver writes.

``ttc profile --executor ray [--ray-address ADDR] [--workers N] [--gpus-per-worker G]``
runs the same jobs as one process (:mod:`profiling.executor`), on Ray actors:

* **Actors load once.** Each of the ``workers`` actors loads the model when the driver
  asks (:meth:`RayExecutor.load`) and keeps it for every job of that model: hf on CPU or
  GPU, vllm with ``G`` GPUs as its tensor-parallel group (vLLM's multiprocessing executor,
  inside the actor's GPUs), openai as a client of a served endpoint.
* **The driver writes.** Jobs (one strategy call on ``batch_size`` questions) go to
  whichever actor is free; the actor returns the rows, grouped by unit, and the driver
  alone writes shards, holding the run folder's lock (:mod:`profiling.lock`). Actors never
  touch the folder, so they need no shared filesystem.
* **Faults.** An actor that dies (node lost, ``ray.kill``, out of memory) loses only the
  job it was running: that job goes back to the queue for another actor (at most
  ``max_attempts`` tries; then it is reported by :class:`~profiling.executor.UnitsFailed`
  and the rest of the run is saved), and a fresh actor replaces the dead one (at most
  ``workers * max_attempts`` replacements per model). A job's rows arrive whole or not at
  all, so no unit is lost or written twice. An exception raised by the strategy or the
  backend is a bug, not a fault: it stops the run (the units already back are saved).
* **Ctrl-C** (or SIGTERM, which ``ray.init`` would turn into a bare exit: the handler in
  place before it is restored) on the driver flushes the units that have arrived and kills
  the actors; a rerun resumes.
* **No waiting forever.** An address where no Ray cluster answers fails within
  :data:`CONNECT_TIMEOUT_S` (a TCP probe, then one connection attempt instead of Ray's twenty),
  and a cluster without room for the workers asked for (``--gpus-per-worker 1`` on a cluster
  without GPUs) is refused before any actor is created, naming what it has: Ray would
  otherwise keep the actors pending forever. (An autoscaling cluster must have grown first.)
* **Same results.** A job holds the same questions as in a one-process run of the same
  command and every unit's seed derives from its identity, so the rows (answers, verdicts,
  token counts) are the same; timing and KV measurements are the actors'.

Ray is an optional extra (``pip install ttc-planner[ray]``), imported only when this
executor starts. Every node needs ttc-planner (and the model's engine) installed.

Examples
--------
>>> from profiling.ray_executor import RayExecutor
>>> executor = RayExecutor(workers=2)  # nothing starts until the run does
>>> executor.describe()["executor"]
'ray'
"""

from __future__ import annotations

import collections
import logging
import math
import os
import signal
import socket
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

from .backends import Backend, load_backend
from .executor import (
    Executor,
    ExecutorError,
    Job,
    LoadedModel,
    Loader,
    RunSetup,
    UnitsFailed,
    model_info,
    run_job,
)
from .storage import library_versions

__all__ = ["RayExecutor", "INSTALL_HINT", "CONNECT_TIMEOUT_S"]

INSTALL_HINT = "--executor ray needs Ray: pip install 'ttc-planner[ray]'"
#: seconds the TCP probe of a cluster address waits for an answer
CONNECT_TIMEOUT_S = 5.0
#: Ray's own connection retries (its default is 20 attempts of ~40 s each against an address
#: that accepts connections but is no Ray cluster); the variable is read by ``ray.init``
_RAY_CONNECT_ATTEMPTS = ("RAY_gcs_server_port_wait_time_s", "1")


def _ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return ray


class _Worker:
    """The actor: holds one loaded backend and runs jobs on it (wrapped by ``ray.remote``)."""

    def __init__(self, setup: RunSetup, loader: Loader, device: str | None, gpus: float) -> None:
        # idle OpenMP threads sleep instead of spinning (as `ttc profile` does); before torch loads
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.setup, self.loader, self.device, self.gpus = setup, loader, device, gpus
        self.backend: Backend | None = None
        self.owned = False

    def load(self, model: str | Backend) -> dict[str, Any]:
        self.unload()
        if isinstance(model, str) and model.startswith("vllm:") and self.gpus > 1:
            # the actor's GPUs are one tensor-parallel group; vLLM's Ray executor cannot
            # place its workers from inside an actor, its multiprocessing one can
            tp = {"tensor_parallel_size": int(self.gpus), "distributed_executor_backend": "mp"}
            self.backend = load_backend(model, **tp)
        elif isinstance(model, str):
            self.backend = self.loader(model, self.device)
        else:
            self.backend = model
        self.owned = isinstance(model, str)
        return {
            "name": self.backend.model_name,
            "metadata": model_info(self.backend),
            "worker": {"host": socket.gethostname(), "pid": os.getpid(), "versions": library_versions()},
        }

    def run(self, job: Job) -> list[list[dict]]:
        if self.backend is None:
            raise RuntimeError("worker asked to run a job before loading a model")
        return run_job(self.backend, self.setup, job)

    def unload(self) -> None:
        if self.backend is not None and self.owned:
            self.backend.close()
        self.backend, self.owned = None, False


class RayExecutor(Executor):
    """Run the profiler's jobs on Ray actors (module docstring).

    Parameters
    ----------
    address : a running cluster (``ray://HOST:10001``, ``HOST:6379``, or ``auto`` for the one
        ``ray start`` runs on this machine); None: ``RAY_ADDRESS`` when set, else a new local
        cluster (stopped at the end). A driver already connected (``ray.init`` called) keeps
        its connection.
    workers : actors, i.e. model replicas; None: as many as the cluster's GPUs (or CPUs)
        allow at ``gpus_per_worker`` (``cpus_per_worker``) each
    gpus_per_worker, cpus_per_worker : resources of one actor (torch in an actor uses
        ``cpus_per_worker`` threads)
    max_attempts : tries per job before it is reported as failed
    poll_s : how often the driver wakes while waiting (to flush shards on time)
    init_kwargs : more :func:`ray.init` arguments (``num_cpus`` of a local cluster, ``runtime_env``)
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float = 0.0,
        cpus_per_worker: float = 1.0,
        max_attempts: int = 3,
        poll_s: float = 1.0,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        if gpus_per_worker < 0 or cpus_per_worker < 0:
            raise ValueError("--gpus-per-worker and --cpus-per-worker must be >= 0")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.address = address
        self.workers = workers
        self.gpus_per_worker = float(gpus_per_worker)
        self.cpus_per_worker = float(cpus_per_worker)
        self.max_attempts = int(max_attempts)
        self.poll_s = float(poll_s)
        self.init_kwargs = dict(init_kwargs or {})
        self.actors: list[Any] = []
        self.model: str | Backend | None = None
        self.replaced = 0  # actors replaced after dying, over the whole run
        self.retried = 0  # jobs sent again after their actor died
        self._started_ray = False
        self._workers_seen: list[dict[str, Any]] = []
        self._cluster: dict[str, Any] = {}

    @staticmethod
    def require() -> None:
        """Raise ``ImportError`` with the install hint when Ray is not installed (check this
        before a run creates anything)."""
        _ray()

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self, setup: RunSetup, loader: Loader, device: str | None) -> None:
        super().start(setup, loader, device)
        ray = _ray()
        # never join whatever cluster happens to run on this machine unless asked to:
        # --ray-address (or RAY_ADDRESS), "auto" for the machine's own; else a new local one
        address = self.address or os.environ.get("RAY_ADDRESS") or "local"
        if ray.is_initialized():  # the cluster this process is connected to
            address = self.address or getattr(ray.get_runtime_context(), "gcs_address", None) or address
        else:
            kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
            kwargs.update(self.init_kwargs)
            _connect(ray, address, kwargs)
            self._started_ray = True
        resources = ray.cluster_resources()
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        room = _room(nodes, self.gpus_per_worker, self.cpus_per_worker)
        if self.workers is None:  # as many as fit (one per CPU when a worker asks for nothing)
            self.workers = room if math.isfinite(room) else max(int(resources.get("CPU", 1)), 1)
        if self.workers < 1 or self.workers > room:
            raise ValueError(self._no_room(address, room, len(nodes), resources))
        self._cluster = {
            "ray": ray.__version__,
            "address": address,
            "nodes": len(nodes),
            "cpus": resources.get("CPU", 0),
            "gpus": resources.get("GPU", 0),
        }
        self._actor_class = ray.remote(
            num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker, max_restarts=0, max_task_retries=0
        )(_Worker)
        self.actors = [self._new_actor() for _ in range(self.workers)]

    def _no_room(self, address: str, room: float, nodes: int, resources: dict[str, float]) -> str:
        """One line: what was asked, what the cluster has, what to change."""
        asked = f"{self.workers} worker(s)" if self.workers else "a worker"
        cluster = "the new local Ray cluster" if address == "local" else f"the Ray cluster at {address}"
        return (
            f"--executor ray: {asked} of {self.gpus_per_worker:g} GPU(s) and {self.cpus_per_worker:g} CPU(s) "
            f"each do not fit {cluster}: it has {resources.get('GPU', 0):g} GPU(s) and "
            f"{resources.get('CPU', 0):g} CPU(s) on {nodes} node(s), room for {int(room)} such worker(s); "
            "lower --workers, --gpus-per-worker or --cpus-per-worker, or join a larger cluster (--ray-address)"
        )

    def _new_actor(self) -> Any:
        return self._actor_class.remote(self.setup, self.loader, self.device, self.gpus_per_worker)

    def close(self) -> None:
        if not self.actors and not self._started_ray:
            return
        ray = _ray()
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # ---- models ---------------------------------------------------------------------------------
    def load(self, model: str | Backend) -> LoadedModel:
        """Load ``model`` on every actor (in parallel); an actor that dies while loading is
        replaced. Every replica must report the same model identity."""
        ray = _ray()
        self.model = model
        while len(self.actors) < self.workers:  # top up after a model whose actors died
            self.actors.append(self._new_actor())
        pending = {actor.load.remote(model): actor for actor in self.actors}
        loaded: list[dict] = []
        budget = self.workers * self.max_attempts
        while pending:
            # a timeout, so that Ctrl-C and SIGTERM are handled while a model loads
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_s)
            if not ready:
                continue
            actor = pending.pop(ready[0])
            try:
                loaded.append(_get(ray, ready[0]))
            except _fault_types(ray) as exc:
                if budget <= 0:
                    why = str(exc).splitlines()[0]
                    raise ExecutorError(f"Ray actors keep dying while loading {model!r}: {why}") from None
                budget -= 1
                self._forget(actor)
                fresh = self._new_actor()
                self.actors.append(fresh)
                self.replaced += 1
                pending[fresh.load.remote(model)] = fresh
        first = loaded[0]
        for other in loaded[1:]:
            if other["name"] != first["name"] or other["metadata"] != first["metadata"]:
                raise ExecutorError(
                    f"the Ray workers loaded different models for {model!r}: {first['name']} on "
                    f"{first['worker']['host']} vs {other['name']} on {other['worker']['host']} (different files or versions?)"
                )
        self._note_workers(w["worker"] for w in loaded)
        return LoadedModel(first["name"], first["metadata"], [w["worker"] for w in loaded])

    def unload(self) -> None:
        ray = _ray()
        for ref in [a.unload.remote() for a in self.actors]:
            try:
                ray.get(ref)
            except _fault_types(ray):
                pass  # a dead actor holds nothing

    # ---- jobs -----------------------------------------------------------------------------------
    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, list[list[dict]]] | None]:
        """Send jobs to free actors; yield each job's units as it returns (module docstring)."""
        ray = _ray()
        queue = collections.deque(enumerate(jobs))
        attempts: collections.Counter[int] = collections.Counter()
        failed: list[tuple[Job, str]] = []
        idle = list(self.actors)
        busy: dict[Any, tuple[Any, int, Job]] = {}  # job ref -> (actor, job number, job)
        starting: dict[Any, Any] = {}  # load ref of a replacement actor -> the actor
        budget = self.workers * self.max_attempts
        while queue or busy:
            while queue and idle:
                actor = idle.pop()
                number, job = queue.popleft()
                busy[actor.run.remote(job)] = (actor, number, job)
            if not busy and not starting:  # every actor died and the replacements ran out
                failed += [(job, "no Ray worker left") for _, job in queue]
                break
            ready, _ = ray.wait([*busy, *starting], num_returns=1, timeout=self.poll_s)
            if not ready:
                yield None
                continue
            ref = ready[0]
            if ref in starting:
                actor = starting.pop(ref)
                try:
                    self._note_workers([_get(ray, ref)["worker"]])
                    idle.append(actor)
                except _fault_types(ray):
                    self._forget(actor)
                    budget = self._replace(starting, budget)
                continue
            actor, number, job = busy.pop(ref)
            try:
                units = _get(ray, ref)
            except _fault_types(ray) as exc:
                attempts[number] += 1
                if attempts[number] >= self.max_attempts:
                    why = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                    failed.append((job, f"{self.max_attempts} Ray workers died running it ({why})"))
                else:
                    self.retried += 1
                    queue.appendleft((number, job))
                self._forget(actor)
                budget = self._replace(starting, budget)
                continue
            idle.append(actor)
            yield job, units
        for actor in starting.values():  # replacements still starting are not needed any more
            self._forget(actor)
            ray.kill(actor)
        if failed:
            units = sum(job.units for job, _ in failed)
            job, why = failed[0]
            strategy = self.setup.strategies[job.strategy]
            raise UnitsFailed(
                f"{units} unit(s) in {len(failed)} job(s) not profiled, e.g. {strategy.name} on questions "
                f"{[p.id for p in job.problems][:4]}: {why}; "
                "the other units are saved, rerun the same command to retry these",
                [j for j, _ in failed],
            )

    def _replace(self, starting: dict[Any, Any], budget: int) -> int:
        """Start a fresh actor loading the current model, while the replacement budget lasts."""
        if budget <= 0:
            return budget
        fresh = self._new_actor()
        self.actors.append(fresh)
        self.replaced += 1
        starting[fresh.load.remote(self.model)] = fresh
        return budget - 1

    def _forget(self, actor: Any) -> None:
        if actor in self.actors:
            self.actors.remove(actor)

    def _note_workers(self, workers: Iterable[dict[str, Any]]) -> None:
        for w in workers:
            entry = {"host": w["host"], "versions": w["versions"]}
            if entry not in self._workers_seen:
                self._workers_seen.append(entry)

    def describe(self) -> dict[str, Any]:
        """The cluster (Ray version, address, nodes, resources), the actors' resources and the
        library versions of every host an actor ran on."""
        return {
            "executor": self.name,
            "workers": self.workers,
            "gpus_per_worker": self.gpus_per_worker,
            "cpus_per_worker": self.cpus_per_worker,
            **self._cluster,
            "hosts": list(self._workers_seen),
        }


def _connect(ray: Any, address: str, kwargs: dict[str, Any]) -> None:
    """``ray.init(address, **kwargs)`` that neither hangs nor takes over SIGTERM.

    Raises :class:`ExecutorError` ("no Ray cluster at ADDRESS (why)") when nothing answers at
    ``address`` within :data:`CONNECT_TIMEOUT_S` or Ray cannot connect there. ``ray.init``
    installs a SIGTERM handler that exits at once (``sys.exit``); a handler the program had
    installed (``ttc profile``'s, which raises KeyboardInterrupt so that finished units are
    flushed and the command says so) is put back, and a SIGTERM during the connection raises
    KeyboardInterrupt too. Without one, Ray's stays (it unwinds, so units are still flushed).
    """
    if address not in ("local", "auto"):
        _probe(address)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    restore = previous not in (None, signal.SIG_DFL)
    name, attempts = _RAY_CONNECT_ATTEMPTS
    set_here = address != "local" and name not in os.environ
    if set_here:
        os.environ[name] = attempts
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise ExecutorError(f"no Ray cluster at {address} ({_first_line(exc)})") from None
    except SystemExit as exc:  # Ray's SIGTERM handler ran during the connection
        if restore and exc.code == signal.SIGTERM:
            raise KeyboardInterrupt from None
        raise
    finally:
        if set_here:
            os.environ.pop(name, None)
        if restore:
            signal.signal(signal.SIGTERM, previous)


def _probe(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast when nothing accepts a TCP connection at a cluster ``address``
    (``HOST:PORT`` or ``ray://HOST:PORT``; ports 6379 and 10001 when left out)."""
    client = address.startswith("ray://")
    try:
        parts = urllib.parse.urlsplit("//" + address.split("://", 1)[-1])
        host, port = parts.hostname, parts.port or (10001 if client else 6379)
    except ValueError as exc:
        host, port = None, str(exc)
    if not host:
        raise ValueError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        why = f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else _first_line(exc)
        raise ExecutorError(
            f"no Ray cluster at {address} ({why}); start one there with `ray start --head` or fix --ray-address"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip()
    return text.splitlines()[0].strip().rstrip(".").lower() if text else type(exc).__name__


def _room(nodes: list[dict[str, float]], gpus: float, cpus: float) -> float:
    """Workers of ``gpus`` GPUs and ``cpus`` CPUs that fit the nodes (an actor lives on one node);
    infinite when a worker asks for nothing."""
    need = {key: amount for key, amount in (("GPU", gpus), ("CPU", cpus)) if amount > 0}
    if not need:
        return math.inf
    # the small epsilon keeps 1.0 // 0.1 (9.999...) from losing a worker to rounding
    return sum(min(int(node.get(key, 0) / amount + 1e-9) for key, amount in need.items()) for node in nodes)


def _get(ray: Any, ref: Any) -> Any:
    """``ray.get(ref)``, with an exception raised by our code on the actor re-raised as itself
    (its message, one line, for the CLI), chained to Ray's error that holds the remote traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
            raise cause from exc
        raise


def _fault_types(ray: Any) -> tuple[type[BaseException], ...]:
    """Exceptions that mean the worker (not the job) failed: the job may run elsewhere."""
    ex = ray.exceptions
    names = (
        "RayActorError",
        "WorkerCrashedError",
        "NodeDiedError",
        "OutOfMemoryError",
        "LocalRayletDiedError",
    )
    return tuple(getattr(ex, n) for n in names if hasattr(ex, n))
