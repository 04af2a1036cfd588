"""One cache of curves and fits, shared by every command (``ttc fit``, ``ttc recommend``,
``ttc evaluate``, ``ttc report``, ``ttc demo``).

An entry is keyed by exactly what it is computed from, so a rerun on unchanged data estimates
and fits nothing, and a changed shard recomputes only what it touches:

* ``curves``: the curves and per-question matrices of one (model, strategy, config, difficulty)
  group (:func:`fitting.curves.estimate_group`), keyed by a hash of the group's sample rows
  (every column, in order) and the estimation settings (bootstrap size, level, seed, pool policy);
* ``fit``: the fit record of one curve (a pool metric of one group, or a knob swept over
  configs; :func:`fitting.pipeline.fit_curves`), keyed by a hash of the curve's rows and of its
  per-question matrix (the question bootstrap's input) and the fit settings (the law set with
  each law's settings, bootstrap size, level, seed);
* ``law`` (and any other kind a caller names): a value keyed by the caller (the planner's own
  law selections, :meth:`FitCache.mapping`).

Every key also holds :func:`code_version`: the library's version, a digest of the source of
the code that computes it and the versions of numpy, scipy and pandas, so results of other code
are never read back.

**Storage**: one JSON file per entry, ``ROOT/KIND/KEY.json``, written with
:func:`common.atomic.atomic_write`. An entry that cannot be read, is not JSON, or names another
key, kind or format is ignored (counted in ``stats["corrupt"]``) and rewritten. A root that
cannot be written is not written (the cache is optional); nothing in it is ever required.

**Where**: :func:`cache_root`: ``.ttc-cache/`` inside the samples folder, or
``$TTC_CACHE_DIR/fits`` when that variable is set. Delete the folder to empty the cache;
``--no-cache`` (``FitCache(None)``) neither reads nor writes it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_write
from common.progress import Progress

from . import schema as S
from ._curve_rows import ACCURACY_METRIC, MAJORITY, METRICS, WEIGHTED, check_args, curves_frame
from ._pools import Notes
from .counts import curves_from_counts, per_question_pass
from .curves import GroupEstimate, estimate_group, sample_groups
from .laws import get_law
from .pipeline import MIN_POINTS, FitOutput, curve_units, fit_curves
from .select import DEFAULT_LAWS
from .uncertainty import DEFAULT_EPSILON

__all__ = [
    "CACHE_DIR",
    "CACHE_ENV",
    "FitCache",
    "cache_root",
    "code_version",
    "fit_samples_cached",
    "fit_counts_cached",
    "fit_curves_cached",
    "CachedFit",
]

#: the cache folder inside a samples folder
CACHE_DIR = ".ttc-cache"
#: environment variable that puts every cache in one folder (e.g. for read-only data)
CACHE_ENV = "TTC_CACHE_DIR"
_FORMAT = 1
#: fits of missing curves run in about this many chunks (progress and saved work per chunk)
_CHUNKS = 20


def cache_root(folder: str | Path) -> Path:
    """Where the cache of a samples folder lives: ``$TTC_CACHE_DIR/fits`` if that variable is set
    (the folder every ttc cache uses, e.g. for read-only data; entries are keyed by content, so
    folders can share it), else ``FOLDER/.ttc-cache`` (its name starts with a dot: the samples
    readers never take it for a shard).

    Examples
    --------
    >>> import os; os.environ.pop("TTC_CACHE_DIR", None) and None
    >>> cache_root("runs/lab").as_posix()
    'runs/lab/.ttc-cache'
    """
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() / "fits" if env else Path(folder) / CACHE_DIR


@cache
def code_version(*packages: str) -> str:
    """The library version, a digest of the ``.py`` sources under ``packages`` (folders of the
    repository, e.g. ``"fitting"`` (the default) or ``"planner/space"``) and the numpy, scipy
    and pandas versions: what cached results depend on besides their inputs."""
    import scipy

    try:
        version = metadata.version("ttc-planner")
    except metadata.PackageNotFoundError:
        version = "unknown"
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for package in packages or ("fitting",):
        for path in sorted((here.parent / package).rglob("*.py")):
            h.update(path.relative_to(here.parent).as_posix().encode() + b"\0" + path.read_bytes())
    libs = f"numpy {np.__version__}, scipy {scipy.__version__}, pandas {pd.__version__}"
    return f"{version}+{h.hexdigest()[:16]} ({libs})"


class FitCache:
    """Content-addressed JSON entries under ``root`` (``None``: a disabled cache that reads and
    writes nothing). ``stats`` counts ``hits``, ``misses``, ``corrupt`` and ``written`` entries.

    Examples
    --------
    >>> import tempfile
    >>> c = FitCache(tempfile.mkdtemp())
    >>> c.get("fit", "k1") is None, c.put("fit", "k1", {"law": "power_law"}), c.get("fit", "k1")
    (True, None, {'law': 'power_law'})
    >>> c.stats
    {'hits': 1, 'misses': 1, 'corrupt': 0, 'written': 1}
    """

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self.stats = {"hits": 0, "misses": 0, "corrupt": 0, "written": 0}
        self.by_kind: dict[tuple[str, str], int] = {}
        self._writable = self.root is not None

    @classmethod
    def for_folder(cls, folder: str | Path, *, enabled: bool = True) -> FitCache:
        """The cache of a samples folder (:func:`cache_root`), or a disabled one."""
        return cls(cache_root(folder) if enabled else None)

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def path(self, kind: str, key: str) -> Path:
        if self.root is None:
            raise ValueError("a disabled cache has no files")
        return self.root / kind / f"{key}.json"

    def get(self, kind: str, key: str):
        """The value stored under (kind, key), or None (missing, unreadable or another entry's)."""
        value = self._get(kind, key)
        for what in ("looked", "hits") if value is not None else ("looked",):
            self.by_kind[kind, what] = self.by_kind.get((kind, what), 0) + 1
        return value

    def _get(self, kind: str, key: str):
        if self.root is None:
            self.stats["misses"] += 1
            return None
        try:
            raw = self.path(kind, key).read_bytes()
        except FileNotFoundError:
            self.stats["misses"] += 1
            return None
        except OSError:
            raw = b""
        try:
            entry = json.loads(raw)
            if (entry["format"], entry["kind"], entry["key"]) != (_FORMAT, kind, key):
                raise ValueError("another entry")
            value = entry["value"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            self.stats["corrupt"] += 1  # ignored here, rewritten by the caller's put
            return None
        self.stats["hits"] += 1
        return value

    def put(self, kind: str, key: str, value) -> None:
        """Store ``value`` (JSON with NaN allowed); a folder that cannot be written is skipped."""
        if not self._writable:
            return
        entry = {"format": _FORMAT, "kind": kind, "key": key, "value": value}
        data = json.dumps(entry, default=_json_default, separators=(",", ":"))
        try:
            atomic_write(self.path(kind, key), data)
        except OSError:
            self._writable = False  # read-only data: keep computing, stop trying to write
            return
        self.stats["written"] += 1

    def mapping(self, kind: str, version: str = "") -> MutableMapping:
        """A dict-like view of ``kind`` for callers with their own keys (hashed with
        ``version``); values set are written by its ``save()``."""
        return _StoredMapping(self, kind, version)

    def describe(self) -> str:
        """What was reused so far, per kind: ``"reused 17 of 20 fits, 35 of 35 curve groups"``."""
        names = {"fit": "fits", "curves": "curve groups", "law": "planner laws"}
        parts = []
        for kind, name in names.items():
            hits, looked = self.by_kind.get((kind, "hits"), 0), self.by_kind.get((kind, "looked"), 0)
            if looked:
                parts.append(f"{hits} of {looked} {name}")
        return "reused " + ", ".join(parts) if parts else "nothing looked up"


class _StoredMapping(MutableMapping):
    """Entries of one kind under caller keys: read through on first use, written on ``save()``
    (so in-place updates of a value set earlier are kept)."""

    def __init__(self, store: FitCache, kind: str, version: str) -> None:
        self.store, self.kind, self.version = store, kind, version
        self.loaded: dict = {}
        self.dirty: set = set()

    def _key(self, key) -> str:
        return digest(self.version, key)

    def __getitem__(self, key):
        if key not in self.loaded:
            value = self.store.get(self.kind, self._key(key))
            if value is None:
                raise KeyError(key)
            self.loaded[key] = value
        return self.loaded[key]

    def __setitem__(self, key, value) -> None:
        self.loaded[key] = value
        self.dirty.add(key)

    def __delitem__(self, key) -> None:
        del self.loaded[key]
        self.dirty.discard(key)

    def __iter__(self) -> Iterator:
        return iter(self.loaded)

    def __len__(self) -> int:
        return len(self.loaded)

    def save(self) -> None:
        for key in sorted(self.dirty, key=str):
            self.store.put(self.kind, self._key(key), self.loaded[key])
        self.dirty.clear()


# ---- keys --------------------------------------------------------------------------------------


def digest(*parts) -> str:
    """A hex key of ``parts``: DataFrames by their content (columns, dtypes, index, values),
    bytes as they are, anything else as canonical JSON."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame):
            h.update(_frame_bytes(part))
        elif isinstance(part, bytes):
            h.update(part)
        elif part is None:
            h.update(b"null")
        else:
            h.update(json.dumps(part, sort_keys=True, default=_json_default).encode())
        h.update(b"\x1f")
    return h.hexdigest()[:40]


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    head = json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode()
    index = pd.util.hash_pandas_object(frame.index.to_frame(index=False), index=False).to_numpy()
    return head + index.tobytes() + _row_hashes(frame).tobytes()


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return repr(obj)


def _law_ids(laws: Sequence) -> list:
    return [[type(law).__name__, law.get_params()] for law in map(get_law, laws)]


# ---- group estimates ---------------------------------------------------------------------------


def _dump_group(est: GroupEstimate) -> dict:
    return {
        "key": list(est.key),
        "rows": est.rows,
        "per_question": {
            m: {
                "index": f.index.tolist(),
                "columns": f.columns.tolist(),
                "values": f.to_numpy(float).tolist(),
            }
            for m, f in est.per_question.items()
        },
        "notes": {"no_answers": est.notes.no_answers, "cut": est.notes.cut, "thin": est.notes.thin},
    }


def _load_group(value) -> GroupEstimate | None:
    if value is None:
        return None
    try:
        per_question = {
            m: pd.DataFrame(
                np.array(f["values"], dtype=float).reshape(len(f["index"]), len(f["columns"])),
                index=pd.Index(f["index"], name=S.QUESTION_ID),
                columns=pd.Index(f["columns"]),
            )
            for m, f in value["per_question"].items()
        }
        notes = Notes()
        notes.no_answers, notes.cut, notes.thin = (
            list(value["notes"][k]) for k in ("no_answers", "cut", "thin")
        )
        return GroupEstimate(tuple(value["key"]), list(value["rows"]), per_question, notes)
    except (KeyError, TypeError, ValueError):
        return None


def _estimates(samples, cache, *, n_boot, level, seed, pool_policy, progress) -> Iterator[GroupEstimate]:
    """Every group's estimate of all metrics, from the cache where its rows are unchanged."""
    groups = sample_groups(samples)
    settings = {
        "n_boot": n_boot,
        "level": level,
        "seed": seed,
        "pool_policy": pool_policy,
        "metrics": METRICS,
    }
    # one hash per sample row, computed once for the whole table (per-group hashing is ~50x slower)
    rows = _row_hashes(pd.concat([g for _, g in groups], ignore_index=True)) if groups else np.empty(0)
    ends = np.cumsum([len(g) for _, g in groups])
    head = json.dumps([[str(c), str(t)] for c, t in groups[0][1].dtypes.items()]) if groups else ""
    hits = 0
    with Progress("estimating curves", len(groups), unit="groups", enabled=progress) as bar:
        for (key, group), end in zip(groups, ends, strict=True):
            content = rows[end - len(group) : end].tobytes()
            k = digest("curves", code_version(), settings, list(map(str, key)), head, content)
            est = _load_group(cache.get("curves", k))
            if est is None:
                est = estimate_group(
                    key,
                    group,
                    metrics=METRICS,
                    n_boot=n_boot,
                    level=level,
                    seed=seed,
                    pool_policy=pool_policy,
                )
                cache.put("curves", k, _dump_group(est))
            else:
                hits += 1
            bar.advance(note=f"{hits} from the cache" if hits else "")
            yield est


def _matrix_bytes(frame: pd.DataFrame | None) -> bytes:
    """A per-question matrix (questions x k) as bytes: its index, columns and values."""
    if frame is None:
        return b"none"
    labels = json.dumps([frame.index.tolist(), frame.columns.tolist()], default=_json_default).encode()
    return labels + np.ascontiguousarray(frame.to_numpy(float)).tobytes()


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    try:
        return pd.util.hash_pandas_object(frame, index=False).to_numpy()
    except TypeError:  # unhashable cells (lists, dicts): hash their text
        return pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()


# ---- the pipeline ------------------------------------------------------------------------------


@dataclass
class CachedFit(FitOutput):
    """:class:`~fitting.pipeline.FitOutput` plus the per-question matrices (the held-out engine's
    input, ``(model, strategy, config, difficulty, metric) -> DataFrame``) and the cache used
    (``cache.stats``: what was read and what was computed)."""

    per_question: dict = field(default_factory=dict)
    cache: FitCache | None = None


def fit_curves_cached(
    curves: pd.DataFrame,
    per_question: dict | None,
    cache: FitCache,
    *,
    laws: Sequence = DEFAULT_LAWS,
    n_boot: int = 200,
    level: float = 0.9,
    seed: int = 0,
    progress: bool = False,
) -> list[dict]:
    """:func:`fitting.pipeline.fit_curves`, fitting only the curves the cache lacks.

    Each curve's key hashes its rows, its per-question matrix and the settings; missing curves
    are fitted in chunks (one progress step and one batch of cache writes each), and the
    records come back in :func:`~fitting.pipeline.fit_curves`' order, as JSON values (what
    ``fits.json`` holds), whether read or fitted.
    """
    curves = curves.reset_index(drop=True)
    units = curve_units(curves)
    settings = {
        "laws": _law_ids(laws),
        "n_boot": n_boot,
        "level": level,
        "seed": seed,
        "epsilon": DEFAULT_EPSILON,
        "min_points": MIN_POINTS,
    }
    head = json.dumps([[str(c), str(t)] for c, t in curves.dtypes.items()])
    row_hashes = _row_hashes(curves)  # once for the table; a unit's rows keep their positions
    keys, records = [], []
    for ident, rows, qkeys in units:
        matrices = [_matrix_bytes(per_question.get(q)) if per_question and n_boot > 0 else b"" for q in qkeys]
        content = row_hashes[rows.index.to_numpy()].tobytes()
        key = digest("fit", code_version(), settings, ident, head, content, *matrices)
        keys.append(key)
        record = cache.get("fit", key)
        records.append(record if isinstance(record, dict) and _same_curve(ident, record) else None)
    missing = [i for i, r in enumerate(records) if r is None]
    size = max(1, math.ceil(len(missing) / _CHUNKS))
    reused = len(units) - len(missing)
    note = f"{reused} from the cache" if reused else ""
    with Progress("fitting laws", len(units), unit="curves", enabled=progress) as bar:
        bar.update(reused, note=note)
        for start in range(0, len(missing), size):
            chunk = missing[start : start + size]
            subset = pd.concat([units[i][1] for i in chunk]).drop(columns="_base", errors="ignore")
            fitted = fit_curves(subset, per_question, laws=laws, n_boot=n_boot, level=level, seed=seed)
            same = len(fitted) == len(chunk)
            if not same or not all(_same_curve(units[i][0], f) for i, f in zip(chunk, fitted, strict=True)):
                raise RuntimeError("fit_curves_cached: fit_curves returned other curves than it was given")
            for i, record in zip(chunk, fitted, strict=True):
                records[i] = json.loads(json.dumps(record, default=_json_default))
                cache.put("fit", keys[i], records[i])
            bar.advance(len(chunk))
    return records


def _same_curve(ident: dict, record: dict) -> bool:
    return all(str(record.get(k)) == str(v) for k, v in ident.items())


def fit_samples_cached(
    samples: pd.DataFrame,
    cache: FitCache | None = None,
    *,
    laws: Sequence = DEFAULT_LAWS,
    n_boot: int = 200,
    level: float = 0.9,
    seed: int = 0,
    metrics: Sequence[str] = METRICS,
    pool_policy: str = "common",
    progress: bool = False,
) -> FitOutput:
    """:func:`fitting.pipeline.fit_samples` through the cache (module docstring), with the
    per-question matrices (``FitOutput.per_question``) kept for the held-out engine.

    Equal to ``fit_samples`` with the same arguments (the same curves table, warnings and fit
    records), whether the entries are read or computed; ``progress`` shows a count and an
    ETA per stage (:class:`common.progress.Progress`).

    Examples
    --------
    >>> import tempfile
    >>> from fitting.schema import read_samples
    >>> out = fit_samples_cached(read_samples("examples/samples"), FitCache(tempfile.mkdtemp()))  # doctest: +SKIP
    """
    check_args(metrics, pool_policy)
    cache = cache if cache is not None else FitCache(None)
    wanted = {*metrics, ACCURACY_METRIC}
    votes = any(m in metrics for m in (MAJORITY, WEIGHTED))
    rows: list[dict] = []
    per_question: dict[tuple[str, ...], pd.DataFrame] = {}
    notes = Notes()
    n_groups = 0
    for est in _estimates(
        samples, cache, n_boot=n_boot, level=level, seed=seed, pool_policy=pool_policy, progress=progress
    ):
        n_groups += 1
        rows += [r for r in est.rows if r[S.METRIC] in wanted]
        per_question.update({(*est.key, m): f for m, f in est.per_question.items() if m in wanted})
        if not votes:
            est.notes.no_answers = []
        notes.add(est.notes)
    notes.emit(n_groups)
    curves = curves_frame(rows)
    fits = fit_curves_cached(
        curves, per_question, cache, laws=laws, n_boot=n_boot, level=level, seed=seed, progress=progress
    )
    return CachedFit(curves=curves, fits=fits, per_question=per_question, cache=cache)


def fit_counts_cached(
    counts: pd.DataFrame,
    cache: FitCache | None = None,
    *,
    laws: Sequence = DEFAULT_LAWS,
    n_boot: int = 200,
    level: float = 0.9,
    seed: int = 0,
    pool_policy: str = "common",
    progress: bool = False,
) -> FitOutput:
    """:func:`fitting.pipeline.fit_counts` with its fits through the cache (the pass@k curves of
    counts are closed form and always recomputed)."""
    cache = cache if cache is not None else FitCache(None)
    curves = curves_from_counts(counts, n_boot=n_boot, level=level, seed=seed, pool_policy=pool_policy)
    per_q = per_question_pass(counts, pool_policy=pool_policy) if n_boot > 0 else None
    fits = fit_curves_cached(
        curves, per_q, cache, laws=laws, n_boot=n_boot, level=level, seed=seed, progress=progress
    )
    return FitOutput(curves=curves, fits=fits)
