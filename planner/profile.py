"""Load a samples folder for planning: samples, curves, model specs, and a cache beside it.

``ttc recommend DIR``, ``ttc evaluate DIR`` and ``ttc report DIR`` take a folder written by
``ttc profile`` or ``ttc import``. The curves table and the ``ttc fit`` records (laws with
question-bootstrap prediction bands, :func:`fitting.pipeline.fit_samples`), plus the laws the
planner selects itself for curves without a record, are computed on demand and cached in ``DIR/.ttc-cache/``
under a fingerprint of the shards (names, sizes, modification times), ``run.json`` and the
settings, so a new or rewritten shard invalidates the cache. Cache files start with a dot,
so the samples readers never mistake them for shards. A read-only folder is simply not
cached.

Model specs come from ``run.json`` (the HF config the profiler recorded for each model,
:meth:`planner.costs.ModelSpec.from_run_metadata`), else from ``model_specs`` given by the
caller (catalog names or config paths), else by resolving the model name itself (catalog
name, config path or lab checkpoint).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fitting import schema as S
from fitting.atomic import atomic_write
from fitting.pipeline import fit_counts, fit_samples
from profiling.storage import read_run

from .constants import VERIFIERS, check_choice
from .costs import ModelSpec, SpecError
from .space.arms import POOL_METRICS
from .space.questions import QuestionTable

__all__ = [
    "Profile",
    "load_profile",
    "profile_from_tables",
    "planning_metrics",
    "CACHE_DIR",
    "DEPLOYABLE_METRICS",
]

CACHE_DIR = ".ttc-cache"
_CACHE_VERSION = 2
#: metrics the planner can deploy without an exact checker (pass@k needs one to pick the sample)
DEPLOYABLE_METRICS = tuple(m for m, strategy in POOL_METRICS.items() if strategy is not None)


def planning_metrics(verifier: str | None = None) -> tuple[str, ...]:
    """The pool metrics a plan needs: the deployable ones, plus ``pass@k`` with an exact checker
    (``verifier="exact"``: best-of-n verified).

    Examples
    --------
    >>> planning_metrics("exact")
    ('majority@k', 'best_of@k', 'weighted@k', 'pass@k')
    """
    verifier = check_choice("verifier", verifier or "none", VERIFIERS)
    return DEPLOYABLE_METRICS + (("pass@k",) if verifier == "exact" else ())


@dataclass
class Profile:
    """Everything the planner needs from one samples folder (or one counts folder: then
    ``counts`` holds the per-question counts and ``samples`` is empty)."""

    samples: pd.DataFrame
    curves: pd.DataFrame
    specs: dict[str, object]
    folder: Path | None = None
    run: dict | None = None
    fits: list[dict] | None = None
    fit_cache: dict[str, dict] = field(default_factory=dict)
    _cache_path: Path | None = None
    _questions: QuestionTable | None = None
    counts: pd.DataFrame | None = None
    #: fitted coverage forecasters of verified arms (in memory; see planner.space.predict)
    coverage_cache: dict = field(default_factory=dict, repr=False)

    @property
    def questions(self) -> QuestionTable:
        """Each question's measured tokens and correct counts
        (:class:`~planner.space.questions.QuestionTable`), read once from the samples (or the
        counts): what options are priced and forecast from."""
        if self._questions is None:
            if self.counts is not None:
                self._questions = QuestionTable.from_counts(self.counts)
            else:
                self._questions = QuestionTable.from_samples(self.samples)
        return self._questions

    @property
    def is_counts(self) -> bool:
        """Whether the profile holds per-question counts only (no per-sample rows)."""
        return self.counts is not None and self.samples.empty

    @property
    def architectures(self) -> dict[str, str]:
        return {m: s.architecture for m, s in self.specs.items()}

    @property
    def params(self) -> dict[str, float]:
        """Parameters a family law uses: active parameters (all of them for dense models)."""
        return {m: float(s.params_active) for m, s in self.specs.items()}

    @property
    def models(self) -> list[str]:
        table = self.counts if self.is_counts else self.samples
        return sorted(table[S.MODEL].unique())

    def save_fit_cache(self) -> None:
        """Persist the laws selected while building option spaces (no-op without a folder)."""
        if self._cache_path is None:
            return
        path = self._cache_path.with_suffix(".fits.json")
        _write_quietly(path, json.dumps(self.fit_cache, sort_keys=True).encode())


def _fingerprint(folder: Path, extra: dict) -> str:
    h = hashlib.sha256(json.dumps([_CACHE_VERSION, extra], sort_keys=True).encode())
    for p in S.shard_paths(folder) if S.has_samples(folder) else S.counts_paths(folder):
        st = p.stat()
        h.update(f"{p.relative_to(folder)}|{st.st_size}|{st.st_mtime_ns}".encode())
    run = folder / "run.json"
    if run.exists():
        h.update(run.read_bytes())
    return h.hexdigest()[:20]


def _write_quietly(path: Path, data: bytes) -> None:
    """:func:`~fitting.atomic.atomic_write` that gives up silently on a read-only folder (the
    cache is optional)."""
    try:
        atomic_write(path, data)
    except OSError:
        pass


def _specs(models, run: dict | None, model_specs: Mapping[str, str] | None) -> dict[str, ModelSpec]:
    out, missing = {}, []
    known = (run or {}).get("models", {})
    for m in models:
        try:
            if model_specs and m in model_specs:
                out[m] = ModelSpec.resolve(model_specs[m], name=m)
            elif m in known and isinstance(known[m].get("config"), Mapping):
                meta = {**known[m], "model": m}
                out[m] = ModelSpec.from_run_metadata(meta)
            else:
                out[m] = ModelSpec.resolve(m)
        except SpecError as exc:
            missing.append(f"{m} ({exc})")
    if missing:
        raise ValueError(
            "no model spec for: "
            + "; ".join(missing)
            + ". Profiles written by `ttc profile` keep each model's "
            "config in run.json; for imported samples pass --model-spec NAME=CATALOG_NAME_OR_CONFIG_PATH "
            "or its numbers, NAME=params:8.0e9,layers:32,kv_heads:8,head_dim:128"
        )
    return out


def load_profile(
    folder: str | Path,
    *,
    model_specs: Mapping[str, str] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    use_cache: bool = True,
    verifier: str | None = None,
) -> Profile:
    """Read a samples folder, its curves (cached) and its models' specs.

    ``verifier="exact"`` also computes the pass@k curves (:func:`planning_metrics`). A folder
    of per-question counts (``ttc import`` of counts: ``counts-*.parquet``, no samples) gives
    pass@k curves only (:func:`fitting.pipeline.fit_counts`): its options are best-of-n with an
    exact checker, and the profile's ``counts`` holds the table. Raises
    :class:`fitting.SchemaError` for a missing or unreadable folder and ValueError for models
    without a spec.
    """
    folder = Path(folder)
    metrics = planning_metrics(verifier)
    counts = None
    if folder.is_dir() and not S.has_samples(folder) and S.counts_paths(folder):
        counts = S.read_counts(folder)
        samples = S.validate_samples(pd.DataFrame({S.QUESTION_ID: [], S.CORRECT: []}))
        metrics = ("pass@k",)
    else:
        samples = S.read_samples(folder)
    table = counts if counts is not None else samples
    run = read_run(folder) if (folder / "run.json").exists() else None
    specs = _specs(sorted(table[S.MODEL].unique()), run, model_specs)
    extra = {"n_boot": n_boot, "seed": seed}
    if metrics != DEPLOYABLE_METRICS:
        extra["metrics"] = list(metrics)
    fp = _fingerprint(folder, extra)
    cache = folder / CACHE_DIR / f".curves-{fp}.parquet"
    curves = None
    if use_cache and cache.exists():
        try:
            curves = pd.read_parquet(cache)
        except Exception:  # a damaged cache is recomputed
            curves = None
    fits_file = folder / CACHE_DIR / f".ttcfit-{fp}.json"
    fits = None
    if curves is not None and fits_file.exists():
        try:
            fits = json.loads(fits_file.read_text())
        except (OSError, json.JSONDecodeError):
            fits = None
    if curves is None or fits is None:
        if counts is not None:
            out = fit_counts(counts, n_boot=n_boot, seed=seed)
            curves, fits = out.curves, out.fits
        else:
            curves, fits = _fit(samples, n_boot, seed, metrics)
        if use_cache:
            buf = io.BytesIO()
            curves.to_parquet(buf, index=False)
            _write_quietly(cache, buf.getvalue())
            _write_quietly(fits_file, json.dumps(fits).encode())
    fit_cache: dict[str, dict] = {}
    fits_path = cache.with_suffix(".fits.json")
    if use_cache and fits_path.exists():
        try:
            fit_cache = json.loads(fits_path.read_text())
        except (OSError, json.JSONDecodeError):
            fit_cache = {}
    return Profile(
        samples, curves, specs, folder, run, fits, fit_cache, cache if use_cache else None, counts=counts
    )


def _fit(
    samples: pd.DataFrame, n_boot: int, seed: int, metrics=DEPLOYABLE_METRICS
) -> tuple[pd.DataFrame, list[dict]]:
    """Curves and ``ttc fit`` records (laws with question-bootstrap bands) of the planning
    metrics (:func:`planning_metrics`)."""
    out = fit_samples(samples, n_boot=n_boot, seed=seed, metrics=metrics)
    return out.curves, out.fits


def profile_from_tables(
    samples: pd.DataFrame,
    specs: Mapping[str, object],
    *,
    n_boot: int = 100,
    seed: int = 0,
    verifier: str | None = None,
) -> Profile:
    """A profile from in-memory tables (no folder, no cache): for tests and notebooks."""
    samples = S.validate_samples(samples)
    curves, fits = _fit(samples, n_boot, seed, planning_metrics(verifier))
    return Profile(samples, curves, dict(specs), fits=fits)
