"""Replay: a recorded data set as a model the profiler can profile again.

``ttc profile --backend replay --source PATH`` reads PATH (a samples or counts folder, or any
file ``ttc import`` reads, through :func:`fitting.importer.read_input`) and profiles each of
its models as if it were generating, but every row comes from the recording; nothing is
generated and nothing is invented.

* **Samples.** A question's recorded *pool* for a strategy is every recorded row of that
  strategy whose config agrees with the one asked for (all knobs but the compute knob ``n``;
  a knob the recording does not state is taken at its default, so a non-default value needs a
  recording that states it). The pool, in a canonical order (run, config, sample index), is
  permuted by a seed derived from ``(run seed, model, pool, question)``; sample ``k`` of the
  question is ``permutation[k]``. A unit asking for ``n`` samples starting at ``start`` gets
  ``permutation[start:start + n]``: each row exactly as recorded (answer, verdict, reference,
  tokens, latency, KV, log-prob, reward) under the run's own identity (run id, backend
  ``replay``, task, strategy, config, sample index 0..n-1).
* **Counts.** A question's pool is ``(n_samples, n_correct)`` with its per-sample means. The
  same seeded random order is realized without materializing it (:func:`prefix_successes`),
  so a unit's correct count is hypergeometric and successive units draw without replacement;
  the unit is one counts row (``n_samples`` = n, the draw's ``n_correct``, the recorded means).
* **Where a unit starts** is explicit, never hidden state: the strategies of a run that draw
  from one pool (``pool:n=16`` and ``pool:n=64`` with the same other knobs) take consecutive
  slices in a canonical order (:func:`pool_offsets`), so a resumed run, a Ray actor and a
  one-process run draw the same samples, and two units never share one.
* **Exhausted pools.** A unit whose slice passes the end of the pool is refused:
  :class:`~profiling.backends.ExhaustedUnit` (nothing written; the runner records it in
  ``run.json`` and warns).
* **Strategies.** ``pool`` and ``greedy`` (where greedy rows were recorded) replay; a strategy
  that needs generation (beam, refine, budget, hybrid) is refused before any work.

The source is read once in the driver; :meth:`ReplaySource.load` (the runner's loader) builds
one model's backend from it, so it travels to Ray actors with the run and needs no shared
filesystem.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fitting import schema as S
from fitting.blocks import BLOCK
from fitting.counts import pooled_counts
from fitting.importer import read_input

from ..strategies import Strategy, derive_seed
from ..tasks import Problem
from ..tasks.recorded import RecordedTask
from ._base import Backend, ExhaustedUnit, GenerationRequest, GenerationResult

__all__ = [
    "NAME",
    "REPLAYABLE",
    "ReplaySource",
    "ReplayBackend",
    "pool_id",
    "pool_offsets",
    "prefix_successes",
]

#: the backend name of replayed rows and models
NAME = "replay"
#: strategies that need only recorded samples
REPLAYABLE = ("pool", "greedy")
#: largest counts pool replayed (numpy's hypergeometric sampler takes pools below 10^9)
MAX_POOL = 10**9 - 1
_SORT = [S.RUN_ID, S.CONFIG, S.SAMPLE_IDX]


def prefix_successes(stop: int, size: int, good: int, seed: int) -> int:
    """Successes among the first ``stop`` items of one random order of ``size`` items, ``good``
    of which are successes; the order is fixed by ``seed`` and never materialized.

    The order is realized by halving: the successes in the left half of a node (items
    ``[lo, lo + n)``, numbered like a heap) are drawn hypergeometrically with the node's own
    seed, and each half is again a uniform order of its items. Any prefix costs O(log size)
    draws, and prefixes of one seed come from the same order, so the successes in ``[a, b)``,
    ``prefix(b) - prefix(a)``, are hypergeometric and disjoint slices never share an item.

    Examples
    --------
    >>> prefix_successes(0, 10, 3, seed=1), prefix_successes(10, 10, 3, seed=1)
    (0, 3)
    >>> all(prefix_successes(a, 50, 20, 7) <= prefix_successes(a + 1, 50, 20, 7) for a in range(50))
    True
    """
    if not 0 <= good <= size or not 0 <= stop <= size:
        raise ValueError(f"need 0 <= good <= size and 0 <= stop <= size, got {stop=}, {size=}, {good=}")
    if size > MAX_POOL:
        raise ValueError(f"pools of more than {MAX_POOL:,} samples cannot be replayed, got {size:,}")
    count, lo, n, c, node = 0, 0, size, good, 1
    while 0 < stop - lo < n:
        left = n // 2
        c_left = int(np.random.default_rng([seed, node]).hypergeometric(c, n - c, left))
        if stop - lo >= left:
            count, lo, n, c, node = count + c_left, lo + left, n - left, c - c_left, 2 * node + 1
        else:
            n, c, node = left, c_left, 2 * node
    return count + (c if stop - lo == n else 0)


def _knobs(strategy: Strategy) -> dict[str, Any]:
    """The strategy's knobs that identify its pool: all but the compute knob."""
    compute = strategy.descriptor.compute_knob
    return {k: v for k, v in strategy.params.items() if k not in (compute, BLOCK)}


def pool_id(strategy: Strategy) -> str:
    """The pool a strategy draws from: its name and every knob but the compute knob.

    Examples
    --------
    >>> from profiling.strategies import get_strategy
    >>> pool_id(get_strategy("pool:n=8")) == pool_id(get_strategy("pool:n=64")) != pool_id(get_strategy("greedy"))
    True
    """
    return json.dumps([strategy.name, _knobs(strategy)], sort_keys=True)


def draws(strategy: Strategy) -> int:
    """Samples one unit of ``strategy`` draws: ``n`` for a pool, 1 for greedy."""
    return int(strategy.params.get("n", 1)) if strategy.name == "pool" else 1


def pool_offsets(strategies: Sequence[Strategy]) -> list[int]:
    """Where each strategy's units start in their pool: strategies drawing from one pool take
    consecutive slices, in order of ``n`` then config (the order the command gave them in
    does not matter, so a resumed run with reordered flags draws the same samples).

    Examples
    --------
    >>> from profiling.strategies import expand_specs
    >>> pool_offsets(expand_specs(["pool:n=64", "greedy", "pool:n=16", "pool:n=8,temperature=0.5"]))
    [16, 0, 0, 0]
    """
    offsets = [0] * len(strategies)
    by_pool: dict[str, list[int]] = {}
    for i, s in enumerate(strategies):
        by_pool.setdefault(pool_id(s), []).append(i)
    for members in by_pool.values():
        if any(strategies[i].params.get(BLOCK, 0) for i in members):
            # a pool grown in blocks (fitting.blocks): block j of n samples starts at j * n
            sizes = {draws(strategies[i]) for i in members}
            if len(sizes) > 1:
                raise ValueError(
                    f"the blocks of one pool need one n; got n = {', '.join(map(str, sorted(sizes)))} "
                    f"for {strategies[members[0]].name}"
                )
            for i in members:
                offsets[i] = strategies[i].params.get(BLOCK, 0) * draws(strategies[i])
            continue
        start = 0
        for i in sorted(members, key=lambda i: (draws(strategies[i]), strategies[i].config_json())):
            offsets[i], start = start, start + draws(strategies[i])
    return offsets


def _agrees(recorded_config: str, strategy: Strategy) -> bool:
    """Whether a recorded config is one of ``strategy``'s pool (see the module docstring)."""
    config = json.loads(recorded_config)
    defaults = strategy.descriptor.knobs
    for key, value in _knobs(strategy).items():
        if config.get(key, defaults[key].default) != value:
            return False
    return True


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows of ``df`` as dicts, missing values as None."""
    return df.astype(object).where(df.notna(), None).to_dict("records")


class ReplaySource:
    """A recording read once: its samples and counts tables and its ``run.json`` models.

    Use :meth:`read`; :meth:`load` is the runner's loader (model name -> backend).
    """

    def __init__(
        self,
        path: str,
        task: str,
        samples: pd.DataFrame | None,
        counts: pd.DataFrame | None,
        models_meta: dict[str, dict] | None = None,
    ) -> None:
        self.path = path
        self.task_name = task
        self.samples = samples
        self.counts = counts
        self.models_meta = dict(models_meta or {})
        self._kinds: dict[str, str] = {}
        for kind, table in (("counts", counts), ("samples", samples)):  # samples win
            if table is not None:
                self._kinds.update(dict.fromkeys(table[S.MODEL].astype(str).unique(), kind))

    @classmethod
    def read(cls, path: str | Path, task: str | None = None) -> ReplaySource:
        """Read a samples or counts folder or file (:func:`fitting.importer.read_input`) and,
        for a folder written by ``ttc profile``, its models' metadata (``run.json``); keep the
        rows of ``task`` (needed when the recording holds several tasks)."""
        path = Path(path).expanduser()
        tables = dict(zip(("samples", "counts"), read_input(path), strict=True))
        names = sorted({str(v) for t in tables.values() if t is not None for v in t[S.TASK].unique()})
        if task is None and len(names) > 1:
            raise ValueError(f"{path} holds tasks {', '.join(names)}; pick one with --task")
        task = names[0] if task is None else task
        if task not in names:
            raise ValueError(f"--task {task!r} is not in {path}; its tasks: {', '.join(names)}")
        for kind, t in tables.items():
            rows = None if t is None else t[t[S.TASK].astype(str) == task]
            tables[kind] = None if rows is None or rows.empty else rows
        run_file = path / "run.json"
        meta = json.loads(run_file.read_text()).get("models", {}) if run_file.is_file() else {}
        return cls(str(path.resolve()), task, **tables, models_meta=meta if isinstance(meta, dict) else {})

    @property
    def models(self) -> list[str]:
        """The recording's models, in name order."""
        return sorted(self._kinds)

    def select_models(self, requested: Sequence[str] | None) -> list[str]:
        """``requested`` (all models when empty), each checked to be in the recording; models
        of per-sample rows and of counts are not mixed in one run (their outputs differ)."""
        models = list(dict.fromkeys(requested)) if requested else self.models
        unknown = [m for m in models if m not in self._kinds]
        if unknown:
            raise ValueError(
                f"--model {unknown[0]!r} is not in {self.path}; its models: {', '.join(self.models)}"
            )
        kinds = {self._kinds[m] for m in models}
        if len(kinds) > 1:
            counted = [m for m in models if self._kinds[m] == "counts"]
            raise ValueError(
                f"{self.path}: model(s) {', '.join(counted)} have counts only and the others per-sample rows; "
                "replay them into separate --out folders (--model)"
            )
        return models

    def table(self, model: str) -> pd.DataFrame:
        """The recorded rows of ``model`` (samples, or counts when it has no samples)."""
        table = self.samples if self._kinds[model] == "samples" else self.counts
        return table[table[S.MODEL].astype(str) == model]

    def task(self) -> RecordedTask:
        """The recording's questions as a task, in order of first appearance, with the first
        recorded difficulty label and reference answer."""
        frames = [t for t in (self.samples, self.counts) if t is not None]
        cols = [S.QUESTION_ID, S.DIFFICULTY] + ([S.REFERENCE] if self.samples is not None else [])
        rows = pd.concat([f.reindex(columns=cols) for f in frames], ignore_index=True)
        firsts = rows.groupby(S.QUESTION_ID, sort=False).first()  # first non-null of each column
        problems = [
            Problem(str(q), str(q), r.get(S.REFERENCE), str(r[S.DIFFICULTY]))
            for q, r in zip(firsts.index, _records(firsts), strict=True)
        ]
        return RecordedTask(problems, name=self.task_name, source=self.path)

    def check(self, models: Sequence[str], strategies: Sequence[Strategy]) -> None:
        """Refuse, before any work, a strategy that needs generation or that some model has no
        recorded rows for (one line naming what was recorded)."""
        for s in strategies:
            if s.name not in REPLAYABLE:
                raise ValueError(
                    f"strategy {s.name!r} needs generation, which --backend replay cannot do: it only draws "
                    f"recorded samples ({' or '.join(REPLAYABLE)})"
                )
        for m in models:
            table = self.table(m)
            for s in strategies:
                if not _matching_configs(table, s):
                    pairs = table[[S.STRATEGY, S.CONFIG]].drop_duplicates().astype(str).values.tolist()
                    recorded = "; ".join(f"{n} {c}" for n, c in pairs[:4]) + (
                        " ..." if len(pairs) > 4 else ""
                    )
                    raise ValueError(
                        f"{self.path}: model {m!r} has no recorded {s.name} rows agreeing with {s.spec} "
                        f"(an unrecorded knob counts as its default); recorded: {recorded}"
                    )

    def load(self, model: str, device: str | None = None) -> ReplayBackend:
        """The backend of one recorded model (the runner's loader; ``device`` is unused)."""
        if model not in self._kinds:
            raise ValueError(f"model {model!r} is not in {self.path}; its models: {', '.join(self.models)}")
        meta = dict(self.models_meta.get(model) or {})
        meta.update(
            {"backend": NAME, "model": model, "replay": {"source": self.path, "kind": self._kinds[model]}}
        )
        return ReplayBackend(model, self.table(model), self._kinds[model], meta)


def _matching_configs(table: pd.DataFrame, strategy: Strategy) -> list[str]:
    configs = table.loc[table[S.STRATEGY].astype(str) == strategy.name, S.CONFIG].astype(str).unique()
    return sorted(c for c in configs if _agrees(c, strategy))


class ReplayBackend(Backend):
    """One recorded model: draws its recorded pools (module docstring); generates nothing."""

    name = NAME

    def __init__(self, model: str, table: pd.DataFrame, kind: str, meta: dict[str, Any]) -> None:
        self.model_name = model
        self.kind = kind
        self._table = table
        self._meta = meta
        self._pools: dict[str, dict[str, Any]] = {}

    def metadata(self) -> dict[str, Any]:
        return dict(self._meta)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        raise ValueError(
            f"the replay backend of {self.model_name!r} draws recorded samples; it cannot generate"
        )

    def count_tokens(self, text: str) -> int:
        raise ValueError(
            f"the replay backend of {self.model_name!r} has no tokenizer (it replays recorded counts)"
        )

    def _pool(self, strategy: Strategy) -> dict[str, Any]:
        """Question id -> its recorded pool for ``strategy`` (rows in canonical order, or a
        pooled counts row), built once per pool."""
        key = pool_id(strategy)
        if key not in self._pools:
            table = self._table
            rows = table[
                (table[S.STRATEGY].astype(str) == strategy.name)
                & table[S.CONFIG].astype(str).isin(_matching_configs(table, strategy))
            ]
            if self.kind == "samples":
                rows = rows.sort_values(_SORT, kind="stable")
                groups = rows.groupby(S.QUESTION_ID, sort=False)
                self._pools[key] = {str(q): _records(g[list(S.SAMPLES_SCHEMA)]) for q, g in groups}
            else:
                # every matching row of a question is one pool: runs, configs and labels merged
                same = {S.RUN_ID: NAME, S.CONFIG: "{}", S.DIFFICULTY: S.ALL_DIFFICULTY}
                pooled = pooled_counts(rows.assign(**same)).set_index(S.QUESTION_ID)
                self._pools[key] = {str(q): r for q, r in zip(pooled.index, _records(pooled), strict=True)}
        return self._pools[key]

    def pool_size(self, strategy: Strategy, question_id: str) -> int:
        """Samples recorded for ``question_id`` in ``strategy``'s pool (0 when none)."""
        pool = self._pool(strategy).get(question_id)
        if pool is None:
            return 0
        return len(pool) if self.kind == "samples" else int(pool[S.N_SAMPLES])

    def order_seed(self, seed: int, strategy: Strategy, question_id: str) -> int:
        """The seed of a question's draw order: (run seed, model, pool, question) only."""
        return derive_seed(seed, self.model_name, pool_id(strategy), question_id)

    def draw(
        self, strategy: Strategy, problem: Problem, *, seed: int, start: int, count: int, identity: dict
    ) -> list[dict] | ExhaustedUnit:
        """Samples ``start .. start + count - 1`` of the question's seeded order as rows with
        ``identity`` (the run's columns), or :class:`ExhaustedUnit` past the pool's end."""
        size = self.pool_size(strategy, problem.id)
        if start + count > size:
            return ExhaustedUnit(
                f"needs {count} sample(s) after the first {start}, but the recorded pool holds {size}"
            )
        order_seed = self.order_seed(seed, strategy, problem.id)
        pool = self._pool(strategy)[problem.id]
        ident = {**identity, S.QUESTION_ID: problem.id, S.DIFFICULTY: problem.difficulty}
        if self.kind == "counts":
            hits = prefix_successes(start + count, size, int(pool[S.N_CORRECT]), order_seed)
            hits -= prefix_successes(start, size, int(pool[S.N_CORRECT]), order_seed)
            means = {c: pool[c] for c in S.COUNT_COST_COLUMNS}
            return [{**ident, S.N_SAMPLES: count, S.N_CORRECT: hits, **means}]
        order = np.random.default_rng(order_seed).permutation(size)[start : start + count]
        first = start if BLOCK in json.loads(identity.get(S.CONFIG, "{}")) else 0  # blocks number across
        return [{**pool[i], **ident, S.SAMPLE_IDX: first + k} for k, i in enumerate(order)]

    def run_job(self, setup: Any, job: Any) -> list[list[dict] | ExhaustedUnit]:
        """The units of one job (:class:`profiling.executor.Job` of a
        :class:`profiling.executor.RunSetup`): each question's slice of its pool, or
        :class:`ExhaustedUnit`."""
        strategy = setup.strategies[job.strategy]
        start = pool_offsets(setup.strategies)[job.strategy]
        identity = {
            S.RUN_ID: setup.run_id,
            S.MODEL: self.model_name,
            S.BACKEND: NAME,
            S.TASK: setup.task.name,
            S.STRATEGY: strategy.name,
            S.CONFIG: strategy.config_json(),
        }
        return [
            self.draw(strategy, p, seed=setup.seed, start=start, count=draws(strategy), identity=identity)
            for p in job.problems
        ]
