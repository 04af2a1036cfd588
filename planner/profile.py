"""Load a samples folder for planning: samples, curves, fits, model specs, through the one cache.

``ttc recommend DIR``, ``ttc evaluate DIR``, ``ttc report DIR`` and ``ttc demo`` take a folder
written by ``ttc profile`` or ``ttc import``. Its curves table, per-question matrices and
``ttc fit`` records (laws with question-bootstrap prediction bands) come from
:func:`fitting.cache.fit_samples_cached`: every (model, strategy, config, difficulty) group's
curves and every curve's fit are cached under a hash of exactly their input rows and settings
(``DIR/.ttc-cache/`` by default, :func:`fitting.cache.cache_root`), so a rerun on unchanged data
fits nothing and a new or rewritten shard recomputes only the curves it touches. The laws the
planner selects itself for curves without a record are kept in the same cache. A read-only
folder is simply not cached (``TTC_CACHE_DIR`` puts the cache elsewhere).

Model specs come from ``run.json`` (the HF config the profiler recorded for each model,
:meth:`planner.costs.ModelSpec.from_run_metadata`), else from ``model_specs`` given by the
caller (catalog names or config paths), else by resolving the model name itself (catalog
name, config path or lab checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from fitting import schema as S
from fitting.cache import CACHE_DIR, FitCache, code_version, fit_counts_cached, fit_samples_cached
from profiling.storage import read_run

from .constants import VERIFIERS, check_choice
from .costs import ModelSpec, SpecError
from .space.arms import POOL_METRICS
from .space.assumed import AssumedLengths, LengthCoverage, MissingLengths
from .space.questions import QuestionTable

__all__ = [
    "Profile",
    "load_profile",
    "profile_from_tables",
    "planning_metrics",
    "CACHE_DIR",
    "DEPLOYABLE_METRICS",
]

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
    ``counts`` holds the per-question counts and ``samples`` is empty).

    ``per_question`` holds each curve's per-question matrix (the held-out engine's input,
    :func:`fitting.curves.per_question_curves`); ``fit_cache`` the laws the planner selects
    for curves without a fit record (a view of the cache, or a plain dict without one);
    ``cache`` the :class:`fitting.cache.FitCache` used (``cache.stats``: what was reused).
    """

    samples: pd.DataFrame
    curves: pd.DataFrame
    specs: dict[str, object]
    folder: Path | None = None
    run: dict | None = None
    fits: list[dict] | None = None
    fit_cache: MutableMapping = field(default_factory=dict)
    per_question: dict | None = None
    cache: FitCache | None = None
    _questions: QuestionTable | None = None
    counts: pd.DataFrame | None = None
    #: fitted coverage forecasters of verified arms (in memory; see planner.space.predict)
    coverage_cache: dict = field(default_factory=dict, repr=False)
    #: which questions have measured lengths and which were assumed (planner.space.assumed)
    lengths: LengthCoverage = field(default_factory=LengthCoverage)
    #: how the curves were computed and the table before any assumption (for :meth:`assuming`)
    _settings: dict = field(default_factory=dict, repr=False)
    _raw: pd.DataFrame | None = field(default=None, repr=False)

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

    def assuming(self, assumed: AssumedLengths) -> Profile:
        """This profile with ``assumed`` lengths for the questions whose data has none (the
        curves recomputed through the same cache); itself when that changes nothing."""
        if assumed == self.lengths.assumed:
            return self
        raw = self._raw if self._raw is not None else (self.counts if self.is_counts else self.samples)
        filled, coverage = assumed.fill(raw)
        if filled is raw and self._raw is None:
            return replace(self, lengths=coverage)
        cfg = self._settings or {"n_boot": 0, "seed": 0, "metrics": DEPLOYABLE_METRICS}
        return _assemble(filled, self.is_counts, self.specs, self.folder, self.run, self.cache if self.cache is not None else FitCache(None),
                         coverage, raw, cfg, False, self.fit_cache)  # fmt: skip

    def save_fit_cache(self) -> None:
        """Persist the laws selected while building option spaces (no-op without a cache)."""
        save = getattr(self.fit_cache, "save", None)
        if save is not None:
            save()


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
    progress: bool = False,
    verifier: str | None = None,
    assumed: AssumedLengths | None = None,
    require_lengths: bool | Sequence[str] = False,
) -> Profile:
    """Read a samples folder, its curves and fits (through the cache) and its models' specs.

    ``use_cache=False`` neither reads nor writes the cache; ``progress`` shows a count and an
    ETA for the estimation and fitting stages (:class:`fitting.progress.Progress`).
    ``verifier="exact"`` also computes the pass@k curves (:func:`planning_metrics`). A folder
    of per-question counts (``ttc import`` of counts: ``counts-*.parquet``, no samples) gives
    pass@k curves only (:func:`fitting.pipeline.fit_counts`): its options are best-of-n with an
    exact checker, and the profile's ``counts`` holds the table. Raises
    :class:`fitting.SchemaError` for a missing or unreadable folder and ValueError for models
    without a spec. ``assumed`` gives questions without token lengths the assumed ones
    (:class:`~planner.space.assumed.AssumedLengths`; measured lengths are kept): the profile's
    ``lengths`` says which questions were measured and which assumed. ``require_lengths``
    (True: every model; or the names of the models to plan with) raises
    :class:`~planner.space.assumed.MissingLengths` in one line naming the flags, before
    anything is computed, when one of their questions has no completion length, measured or
    assumed.
    """
    folder = Path(folder)
    metrics = planning_metrics(verifier)
    counts = None
    if folder.is_dir() and not S.has_samples(folder) and S.counts_paths(folder):
        counts = S.read_counts(folder)
        metrics = ("pass@k",)
    else:
        samples = S.read_samples(folder)
    raw = counts if counts is not None else samples
    run = read_run(folder) if (folder / "run.json").exists() else None
    specs = _specs(sorted(raw[S.MODEL].unique()), run, model_specs)
    cache = FitCache.for_folder(folder, enabled=use_cache)
    table, coverage = (assumed or AssumedLengths()).fill(raw)
    if require_lengths is not False:
        try:
            coverage.check(() if require_lengths is True else require_lengths)
        except MissingLengths as exc:
            raise MissingLengths(f"{folder}: {exc}") from None
    laws = cache.mapping("law", code_version("fitting", "planner/space")) if use_cache else {}
    cfg = {"n_boot": n_boot, "seed": seed, "metrics": metrics}
    return _assemble(table, counts is not None, specs, folder, run, cache, coverage,
                     raw if table is not raw else None, cfg, progress, laws)  # fmt: skip


def _assemble(table, is_counts, specs, folder, run, cache, coverage, raw, cfg, progress, laws) -> Profile:
    """A profile of a (filled) samples or counts table, its curves and fits through ``cache``."""
    if is_counts:
        out = fit_counts_cached(table, cache, n_boot=cfg["n_boot"], seed=cfg["seed"], progress=progress)
        samples = S.validate_samples(pd.DataFrame({S.QUESTION_ID: [], S.CORRECT: []}))
        per_question, counts = None, table
    else:
        out = _fit(table, cfg["n_boot"], cfg["seed"], cache, progress, cfg["metrics"])
        samples, per_question, counts = table, out.per_question, None
    return Profile(samples, out.curves, dict(specs), folder, run, out.fits, laws, per_question, cache,
                   counts=counts, lengths=coverage, _settings=cfg, _raw=raw)  # fmt: skip


def _fit(samples: pd.DataFrame, n_boot: int, seed: int, cache: FitCache, progress: bool = False,
         metrics=DEPLOYABLE_METRICS):  # fmt: skip
    """Curves and ``ttc fit`` records (laws with question-bootstrap bands) of the planning
    metrics (:func:`planning_metrics`; pass@k only with an exact checker)."""
    return fit_samples_cached(samples, cache, n_boot=n_boot, seed=seed, metrics=metrics, progress=progress)


def profile_from_tables(
    samples: pd.DataFrame,
    specs: Mapping[str, object],
    *,
    n_boot: int = 100,
    seed: int = 0,
    verifier: str | None = None,
    assumed: AssumedLengths | None = None,
) -> Profile:
    """A profile from in-memory tables (no folder, no cache): for tests and notebooks
    (``assumed`` as in :func:`load_profile`)."""
    samples = S.validate_samples(samples)
    table, coverage = (assumed or AssumedLengths()).fill(samples)
    cfg = {"n_boot": n_boot, "seed": seed, "metrics": planning_metrics(verifier)}
    raw = samples if table is not samples else None
    return _assemble(table, False, specs, None, None, FitCache(None), coverage, raw, cfg, False, {})
