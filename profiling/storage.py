"""Where profile results live: atomic Parquet shards, run metadata, resume and merge.

An output folder holds one *run*::

    runs/lab/
      run.json                                  run metadata (below)
      samples-w0of1-1764383000123456789-3fa2c1.parquet
      samples-w0of1-1764383005234567890-9b00de.parquet
      ...

Guarantees:

* **Atomic shards.** A shard is written to ``_tmp-*.parquet`` in the same folder, flushed,
  ``fsync``-ed and renamed with ``os.replace``; readers (:func:`fitting.schema.read_samples`)
  ignore ``_tmp-*`` files, so a crash never leaves half a shard.
* **Units.** A unit is one (model, task, strategy, config, question): all its rows are in one
  shard and it is written once. A rerun reads the unit keys of the existing shards
  (:func:`finished_units`) and skips them, so Ctrl-C or ``kill -9`` loses at most the units
  not yet flushed (:class:`ShardWriter` flushes every few seconds or units).
* **Run metadata.** ``run.json`` keeps what the planner needs to derive costs (each model's
  config, dtype, device, library versions) and what makes runs comparable: the
  *signature* (task, seed, max new tokens, set of strategy configs). Its hash is the
  ``run_id`` column, so every worker of one sharded run writes the same ``run_id``.
  A rerun into a folder with a different task, seed or token cap, or a model whose config
  changed, is refused (:class:`RunMismatch`), as is merging runs whose signatures differ
  (:func:`merge_runs`); a rerun may add strategy configs (:func:`add_strategies`: they join
  the signature, the ``run_id`` stays).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from common.atomic import atomic_write
from fitting import schema as S
from fitting.arrow_rows import samples_table

from .lock import read_lock
from .sharding import parse_shard, partition_problem, shard_of  # the first two re-exported

__all__ = [
    "UNIT_KEYS",
    "RUN_FILE",
    "RunMismatch",
    "run_signature",
    "run_id_of",
    "new_run_metadata",
    "read_run",
    "write_run",
    "check_same_run",
    "add_strategies",
    "check_model",
    "write_shard",
    "shard_files",
    "counts_shard_files",
    "write_counts_shard",
    "is_counts_unit",
    "finished_units",
    "unit_shards",
    "duplicate_units",
    "describe_duplicates",
    "ShardWriter",
    "shard_of",
    "parse_shard",
    "merge_runs",
    "library_versions",
]

#: the columns that identify a unit (written once, skipped on rerun)
UNIT_KEYS = (S.MODEL, S.TASK, S.STRATEGY, S.CONFIG, S.QUESTION_ID)
RUN_FILE = S.RUN_FILE
RUN_FORMAT = "ttc-profile-run/1"
#: model metadata fields that must agree between a rerun / merged runs of the same model name
MODEL_IDENTITY = ("backend", "config", "dtype")
_SIGNATURE_FIELDS = ("task", "seed", "max_new_tokens", "strategies")
#: environment variables that change measured latency, recorded in run.json
_ENV_KEYS = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


class RunMismatch(ValueError):
    """Two runs (or a run and an output folder) differ in what makes their samples comparable."""


# ---- run metadata ------------------------------------------------------------------------------
def run_signature(task: str, seed: int, max_new_tokens: int, strategies: Iterable[tuple[str, str]]) -> dict:
    """What must match for samples to belong to one run: task name, seed, token cap and the
    *set* of ``(strategy name, config JSON)`` pairs (sorted)."""
    return {
        "task": task,
        "seed": int(seed),
        "max_new_tokens": int(max_new_tokens),
        "strategies": sorted([name, config] for name, config in strategies),
    }


def run_id_of(signature: dict) -> str:
    """Short stable id of a signature: ``"r"`` + 12 hex digits of its SHA-256.

    Examples
    --------
    >>> run_id_of(run_signature("t", 0, 8, [("greedy", "{}")]))[:1]
    'r'
    """
    text = json.dumps(signature, sort_keys=True)
    return "r" + hashlib.sha256(text.encode()).hexdigest()[:12]


@functools.cache
def _versions() -> tuple[tuple[str, str | None], ...]:
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("ttc-planner", "torch", "transformers", "vllm", "numpy", "pandas", "pyarrow"):
        try:
            out[dist] = _metadata.version(dist)
        except _metadata.PackageNotFoundError:
            out[dist] = None
    return tuple(out.items())


def library_versions() -> dict[str, str | None]:
    """Versions of Python and the libraries that shape measurements (without importing them)."""
    return dict(_versions())


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_metadata(signature: dict, **fields: Any) -> dict:
    """A fresh ``run.json`` document for ``signature`` plus ``fields`` (strategies, device...)."""
    meta = {
        "format": RUN_FORMAT,
        "run_id": run_id_of(signature),
        "signature": signature,
        "models": {},
        "model_specs": {},
        "questions": [],
        "shards": [],
        "commands": [],
        "versions": library_versions(),
        "environment": {k: os.environ.get(k) for k in _ENV_KEYS},
        "created": _now(),
    }
    meta.update(fields)
    return meta


def read_run(folder: str | Path) -> dict | None:
    """The ``run.json`` of ``folder``, or None when there is none."""
    path = Path(folder) / RUN_FILE
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunMismatch(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT or "signature" not in meta:
        raise RunMismatch(f"{path}: not a ttc profile run file (expected format {RUN_FORMAT!r})")
    return meta


def write_run(folder: str | Path, meta: dict) -> Path:
    """Write ``run.json`` atomically (``updated`` is set to now)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "updated": _now()}
    path = folder / RUN_FILE
    return atomic_write(path, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")


def check_same_run(a: dict, b: dict, a_name: str, b_name: str, *, new_strategies: bool = False) -> None:
    """Raise :class:`RunMismatch` naming the first field where two runs' signatures or shared
    models differ; different *sets* of models are fine (a merge can combine models).
    ``new_strategies``: ``b`` may profile strategy configs ``a`` has not (a rerun that adds
    them, :func:`add_strategies`); the task, seed and token cap must still agree."""
    sa, sb = a["signature"], b["signature"]
    for key in _SIGNATURE_FIELDS:
        if new_strategies and key == "strategies":
            continue
        if sa.get(key) != sb.get(key):
            va, vb = sa.get(key), sb.get(key)
            if key == "strategies":
                only_a = [f"{n}:{c}" for n, c in va if [n, c] not in vb]
                only_b = [f"{n}:{c}" for n, c in vb if [n, c] not in va]
                va, vb = f"only here: {only_a}", f"only there: {only_b}"
            raise RunMismatch(f"{b_name} differs from {a_name} in {key!r}: {vb} vs {va}")
    for name in sorted(set(a.get("models", {})) & set(b.get("models", {}))):
        check_model(a["models"][name], b["models"][name], f"{a_name} model {name!r}", f"{b_name}")


def add_strategies(meta: dict, fresh: dict) -> list[str]:
    """Add to run metadata ``meta`` the strategy configs of ``fresh`` (a rerun's metadata) it
    lacks, in its signature and its ``strategies`` list; the ``run_id`` is kept, so the folder
    stays one run. Each unit's samples are seeded by the run seed, the model, the strategy
    config and the question (never by the other strategies), so adding a config changes no
    sample already written. Returns the added configs as ``name:config``."""
    have = {(n, c) for n, c in meta["signature"].get("strategies", [])}
    added = [[n, c] for n, c in fresh["signature"].get("strategies", []) if (n, c) not in have]
    if added:
        meta["signature"]["strategies"] = sorted([*meta["signature"]["strategies"], *added])
        new = {(n, c) for n, c in added}
        meta["strategies"] = list(meta.get("strategies", [])) + [
            s
            for s in fresh.get("strategies", [])
            if (s["name"], json.dumps(s["config"], sort_keys=True)) in new
        ]
    return [f"{n}:{c}" for n, c in added]


def check_model(known: dict, new: dict, known_name: str, new_name: str) -> None:
    """Raise :class:`RunMismatch` when two metadata dicts of one model name differ in identity."""
    for key in MODEL_IDENTITY:
        if json.dumps(known.get(key), sort_keys=True, default=str) != json.dumps(
            new.get(key), sort_keys=True, default=str
        ):
            raise RunMismatch(
                f"{new_name}: model {new.get('model', '?')!r} has a different {key!r} than {known_name}: "
                f"{_short(new.get(key))} vs {_short(known.get(key))}"
            )


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- shards --------------------------------------------------------------------------------------
def new_shard_path(folder: str | Path, tag: str = "w0of1", prefix: str = S.SAMPLES_PREFIX) -> Path:
    """A fresh shard name ``samples-{tag}-{time_ns}-{random}.parquet`` (``counts-...`` for a
    counts shard): unique without coordination, so workers sharing a folder never collide, and
    sorted by time."""
    return Path(folder) / f"{prefix}{tag}-{time.time_ns()}-{uuid.uuid4().hex[:6]}.parquet"


def write_shard(
    folder: str | Path, rows: pd.DataFrame | list[dict], tag: str = "w0of1", target: Path | None = None
) -> Path:
    """Validate ``rows`` against the samples schema and write them as one new shard, atomically.

    The shard goes to ``target`` (default :func:`new_shard_path`): a temp file in the same
    folder is written, fsync-ed and renamed (:func:`common.atomic.atomic_write`), so ``target``
    exists only when complete. Returns its path.
    """
    folder = Path(folder)
    if isinstance(rows, list):
        table = samples_table(rows, source=str(folder))
    else:
        table = S.to_arrow(S.validate_samples(rows, source=str(folder)))
    target = target or new_shard_path(folder, tag)
    return atomic_write(target, lambda fh: pq.write_table(table, fh), tmp_prefix=f"_tmp-{tag}-")


def write_counts_shard(
    folder: str | Path, rows: list[dict], tag: str = "w0of1", target: Path | None = None
) -> Path:
    """:func:`write_shard` for counts rows (:data:`fitting.schema.COUNTS_SCHEMA`, one row per
    unit: a replay of counts), as ``counts-{tag}-...parquet``."""
    df = S.validate_counts(pd.DataFrame(rows), source=str(folder))
    table = S.counts_to_arrow(df)
    target = target or new_shard_path(folder, tag, S.COUNTS_PREFIX)
    return atomic_write(target, lambda fh: pq.write_table(table, fh), tmp_prefix=f"_tmp-{tag}-")


def is_counts_unit(rows: list[dict]) -> bool:
    """Whether a unit's rows are counts rows (``n_samples``), not samples rows."""
    return bool(rows) and S.N_SAMPLES in rows[0]


def shard_files(folder: str | Path) -> list[Path]:
    """The finished samples shards of a run folder (``samples-*.parquet``), sorted by name (time)."""
    folder = Path(folder)
    return sorted(folder.glob("samples-*.parquet")) if folder.is_dir() else []


def counts_shard_files(folder: str | Path) -> list[Path]:
    """The finished counts shards of a run folder (``counts-*.parquet``: a replay of counts)."""
    folder = Path(folder)
    return sorted(folder.glob(f"{S.COUNTS_PREFIX}*.parquet")) if folder.is_dir() else []


def unit_shards(folder: str | Path) -> dict[tuple[str, ...], list[Path]]:
    """Unit key (:data:`UNIT_KEYS`) -> the shards of ``folder`` that hold it, in shard order.

    A unit is written once, so every list has one shard, unless two processes wrote the
    folder at once (versions without the run-folder lock): see :func:`duplicate_units`.
    """
    units: dict[tuple[str, ...], list[Path]] = {}
    for path in shard_files(folder) + counts_shard_files(folder):
        table = pq.read_table(path, columns=list(UNIT_KEYS))
        cols = [table.column(c).to_pylist() for c in UNIT_KEYS]
        for key in dict.fromkeys(zip(*cols, strict=True)):
            units.setdefault(tuple(map(str, key)), []).append(path)
    return units


def finished_units(folder: str | Path) -> set[tuple[str, ...]]:
    """Unit keys (:data:`UNIT_KEYS`) present in the shards of ``folder``."""
    return set(unit_shards(folder))


def duplicate_units(units: dict[tuple[str, ...], list[Path]]) -> dict[tuple[str, ...], list[Path]]:
    """The units of :func:`unit_shards` held by more than one shard."""
    return {key: paths for key, paths in units.items() if len(paths) > 1}


def describe_duplicates(dups: dict[tuple[str, ...], list[Path]], folder: str | Path) -> str:
    """One line for people: how many units are duplicated, in which shards, and the repair.

    Examples
    --------
    >>> describe_duplicates({("m", "t", "greedy", "{}", "q1"): [Path("a.parquet"), Path("b.parquet")]}, "runs/x")
    '1 unit(s) of runs/x are in more than one shard (a.parquet, b.parquet), e.g. question q1 of m greedy {}; two profilers wrote the folder at once? `ttc merge NEW runs/x --dedupe` writes one copy of each unit to NEW'
    """
    shards = sorted({p.name for paths in dups.values() for p in paths})
    shown = ", ".join(shards[:4]) + (f" and {len(shards) - 4} more" if len(shards) > 4 else "")
    model, _task, strategy, config, question = next(iter(dups))
    return (
        f"{len(dups)} unit(s) of {folder} are in more than one shard ({shown}), e.g. question {question} of "
        f"{model} {strategy} {config}; two profilers wrote the folder at once? "
        f"`ttc merge NEW {folder} --dedupe` writes one copy of each unit to NEW"
    )


def unit_key(row: dict) -> tuple[str, ...]:
    return tuple(str(row[c]) for c in UNIT_KEYS)


class ShardWriter:
    """Buffer finished units and write them as shards every ``every_s`` seconds or ``every_units`` units.

    Only whole units enter the buffer, so a flush never splits one. Use as a context manager:
    leaving the block normally or by an exception (Ctrl-C included) flushes what is buffered.

    Parameters
    ----------
    folder : the run folder
    tag : worker tag in shard names (``w{i}of{n}``)
    every_s, every_units : flush when the oldest buffered unit is this old, or this many are buffered
    clock : time source (seconds), injectable for tests
    """

    def __init__(
        self,
        folder: str | Path,
        tag: str = "w0of1",
        every_s: float = 5.0,
        every_units: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = Path(folder)
        self.tag = tag
        self.every_s = every_s
        self.every_units = every_units
        self.clock = clock
        self._rows: list[dict] = []
        self._counts = False  # the buffer holds counts rows (a replay of counts)
        self._units = 0
        self._since: float | None = None
        self.shards: list[Path] = []
        self.units_written = 0
        self.rows_written = 0
        for stale in self.folder.glob(f"_tmp-{tag}-*.parquet"):  # left by a killed writer of this tag
            stale.unlink(missing_ok=True)

    def add_unit(self, rows: list[dict]) -> None:
        """Buffer one finished unit's rows; flush if the buffer is due."""
        if not rows:
            raise ValueError("a unit must have at least one row")
        if self._rows and is_counts_unit(rows) != self._counts:
            self.flush()  # a shard holds one kind of row
        self._counts = is_counts_unit(rows)
        if self._since is None:
            self._since = self.clock()
        self._rows.extend(rows)
        self._units += 1
        if self._units >= self.every_units or self.clock() - self._since >= self.every_s:
            self.flush()

    def maybe_flush(self, wait_s: float = 0.0) -> Path | None:
        """Flush if the buffered units would be older than ``every_s`` after waiting ``wait_s``
        more (call before work that takes about ``wait_s``, e.g. the next batch)."""
        if self._since is not None and self.clock() - self._since + wait_s >= self.every_s:
            return self.flush()
        return None

    @property
    def pending_units(self) -> int:
        return self._units

    def flush(self) -> Path | None:
        """Write the buffered units as one shard now; None when the buffer is empty."""
        if not self._rows:
            return None
        rows, units, since = self._rows, self._units, self._since
        self._rows, self._units, self._since = [], 0, None
        prefix, write = (
            (S.COUNTS_PREFIX, write_counts_shard) if self._counts else (S.SAMPLES_PREFIX, write_shard)
        )
        path = new_shard_path(self.folder, self.tag, prefix)
        try:
            write(self.folder, rows, self.tag, target=path)
        except BaseException:
            # Ctrl-C (or an error) mid-write: keep the units for the exit flush unless the shard
            # was already renamed into place, so a unit is never written twice
            if not path.exists():
                self._rows, self._units, self._since = rows + self._rows, units + self._units, since
            raise
        self.shards.append(path)
        self.units_written += units
        self.rows_written += len(rows)
        return path

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


# ---- merge ------------------------------------------------------------------------------------------
@dataclass
class MergeReport:
    out: Path
    inputs: list[Path]
    rows: int
    units: int
    shards: list[Path]
    #: duplicate copies of units left out (``dedupe=True``): unit key -> the shards that held them
    dropped: dict[tuple[str, ...], list[Path]] = field(default_factory=dict)


def merge_runs(
    out: str | Path,
    inputs: list[str | Path],
    rows_per_shard: int = 200_000,
    dedupe: bool = False,
    allow_mixed: bool = False,
) -> MergeReport:
    """Combine run folders (e.g. the workers of ``--shard i/n``) into ``out``.

    Refuses (:class:`RunMismatch`) inputs whose signatures differ (task, seed, token cap,
    strategy set) or that hold the same model name with a different config, dtype or
    backend; an input that a ``ttc profile`` is still writing (:class:`~profiling.lock.RunLocked`);
    and an ``out`` that already has shards. Inputs that profiled different models or a different
    question selection (``--questions``) are refused too (the workers of one sharded run agree
    on both), and so are several inputs whose recorded ``--shard i/n`` are not one whole
    partition (:func:`~profiling.sharding.partition_problem`: one ``n``, each ``i`` once, none
    missing), unless ``allow_mixed`` (combining, on purpose, runs of other models or questions,
    or part of a run).
    A unit found in two shards (the same questions
    profiled twice, by overlapping inputs or by two profilers that wrote one folder at once)
    is refused naming the shards, unless ``dedupe``: then the first copy (inputs in order,
    shards by name, i.e. by time) is kept and the others are reported in
    :attr:`MergeReport.dropped`. ``run.json`` of ``out`` unions the inputs' models, question
    selections, shards and command lines.
    """
    out = Path(out)
    if len(inputs) < 1:
        raise ValueError("merge needs at least one input folder")
    with contextlib.ExitStack() as stack:
        metas = []
        for folder in map(Path, inputs):
            meta = read_run(folder)
            if meta is None:
                raise RunMismatch(
                    f"{folder}: no {RUN_FILE}; not a ttc profile output folder (`ttc import` more files into "
                    "one folder instead of merging imported folders)"
                )
            stack.enter_context(read_lock(folder))
            metas.append((folder, meta))
        if not allow_mixed:
            _check_same_selection(metas)
            problem = partition_problem([(str(f), list(m.get("shards", []))) for f, m in metas])
            if len(metas) > 1 and problem is not None:
                raise RunMismatch(problem)
        return _merge(out, metas, rows_per_shard, dedupe)


def _check_same_selection(metas: list[tuple[Path, dict]]) -> None:
    """Raise :class:`RunMismatch` when the inputs profiled different models or questions."""
    first, meta0 = metas[0]

    def selection(meta: dict) -> list[str]:
        return sorted(json.dumps(q, sort_keys=True) for q in meta.get("questions", []))

    for folder, meta in metas[1:]:
        models0, models = sorted(meta0.get("models", {})), sorted(meta.get("models", {}))
        if models != models0:
            raise RunMismatch(
                f"{folder} profiled model(s) {models} but {first} profiled {models0}: the workers of one run "
                "profile the same models; add --allow-mixed to merge runs of different models on purpose"
            )
        if selection(meta) != selection(meta0):
            raise RunMismatch(
                f"{folder} selected questions {meta.get('questions')} but {first} selected {meta0.get('questions')}: "
                "the workers of one run select the same questions (--questions); add --allow-mixed to merge "
                "them on purpose"
            )


def _merge(out: Path, metas: list[tuple[Path, dict]], rows_per_shard: int, dedupe: bool) -> MergeReport:
    counted = next((folder for folder, _ in metas if counts_shard_files(folder)), None)
    if counted is not None:
        raise RunMismatch(
            f"{counted}: holds counts shards (a replay of counts); merging counts runs is not supported"
        )
    if not any(shard_files(folder) for folder, _ in metas):
        raise RunMismatch(
            f"no samples-*.parquet shards in any of {[str(f) for f, _ in metas]}; nothing to merge"
        )
    first_folder, merged = metas[0][0], json.loads(json.dumps(metas[0][1]))
    for folder, meta in metas[1:]:
        check_same_run(merged, meta, str(first_folder), str(folder))
        for name, model in meta.get("models", {}).items():
            merged["models"].setdefault(name, model)
        merged.setdefault("model_specs", {}).update(meta.get("model_specs", {}))
        for key in ("questions", "shards", "commands", "executors"):
            merged[key] = list(merged.get(key, [])) + [
                v for v in meta.get(key, []) if v not in merged.get(key, [])
            ]
    if out.exists() and (shard_files(out) or (out / RUN_FILE).exists()):
        raise RunMismatch(f"{out}: already holds a run; merge into a new folder")
    frames, owner, dropped = [], {}, {}
    for path in [p for folder, _ in metas for p in shard_files(folder)]:
        df = pd.read_parquet(path)
        units = pd.MultiIndex.from_frame(df[list(UNIT_KEYS)].astype(str))
        fresh = []
        for key in units.unique():
            if key in owner:
                dropped.setdefault(key, [owner[key]]).append(path)
            else:
                owner[key] = path
                fresh.append(key)
        frames.append(df[units.isin(fresh)])
    if dropped and not dedupe:
        key, paths = next(iter(dropped.items()))
        raise RunMismatch(
            f"{len(dropped)} unit(s) are in more than one shard: e.g. (model, task, strategy, config, question) = "
            f"{key} is in both {paths[0]} and {paths[1]}; the inputs overlap (the same questions profiled "
            "twice?) or two profilers wrote one folder at once; add --dedupe to keep the first copy of each unit"
        )
    data = pd.concat(frames, ignore_index=True)
    data = data.sort_values(list(UNIT_KEYS) + [S.SAMPLE_IDX], kind="stable").reset_index(drop=True)
    merged["merged_from"] = [str(f) for f, _ in metas]
    if dropped:
        merged["deduplicated_units"] = len(dropped)
    out.mkdir(parents=True, exist_ok=True)
    shards = [
        write_shard(out, data.iloc[start : start + rows_per_shard], tag="merged")
        for start in range(0, len(data), rows_per_shard)
    ]
    write_run(out, merged)
    return MergeReport(out, [f for f, _ in metas], len(data), len(owner), shards, dropped)


def command_line() -> list[str]:
    """This process's command line (``sys.argv``) with the program name shortened."""
    argv = list(sys.argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return argv
