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
from fitting.importer import read_input
from profiling.storage import read_run

from .constants import VERIFIERS, check_choice
from .costs import ModelSpec, SpecError
from .space.arms import POOL_METRICS
from .space.assumed import AssumedLengths, LengthCoverage, MissingLengths
from .space.question_table import QuestionTable

__all__ = [
    "Profile",
    "load_profile",
    "profile_from_tables",
    "planning_metrics",
    "CACHE_DIR",
    "DEPLOYABLE_METRICS",
    "PLANNING_POOLS",
    "check_disjoint",
]

#: why a counts-only profile is planned only with an exact checker
COUNTS_NEED_EXACT = (
    "per-question counts give pass@k only, which a deployment can use only with an exact checker: "
    "add --verifier exact (majority and weighted vote need each sample's answer)"
)
#: metrics the planner can deploy without an exact checker (pass@k needs one to pick the sample)
DEPLOYABLE_METRICS = tuple(m for m, strategy in POOL_METRICS.items() if strategy is not None)
#: uneven pools (``fitting.curves_from_samples``): each k is measured on the questions whose pool
#: holds k samples, so one short pool does not cut every curve of its group to its size; a
#: verified arm's forecast instead uses every question (:func:`planner.space.predict.coverage_predictor`)
PLANNING_POOLS = "available"


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
    _raw: tuple | None = field(default=None, repr=False)

    @property
    def questions(self) -> QuestionTable:
        """Each question's measured tokens and correct counts
        (:class:`~planner.space.question_table.QuestionTable`), read once from the samples and the
        counts: what options are priced and forecast from."""
        if self._questions is None:
            parts = [QuestionTable.from_samples(self.samples)]
            if self.counts is not None:
                parts.append(QuestionTable.from_counts(self.counts))
            self._questions = QuestionTable.merged(parts)
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
        """The models of the samples and of the counts."""
        tables = [self.samples] + ([self.counts] if self.counts is not None else [])
        return sorted({str(m) for t in tables for m in t[S.MODEL].unique()})

    @property
    def counts_models(self) -> list[str]:
        """The models known only by per-question counts (pass@k only: planned with an exact checker)."""
        if self.counts is None:
            return []
        return sorted(
            set(map(str, self.counts[S.MODEL].unique())) - set(map(str, self.samples[S.MODEL].unique()))
        )

    def assuming(self, assumed: AssumedLengths) -> Profile:
        """This profile with ``assumed`` lengths for the questions whose data has none (the
        curves recomputed through the same cache); itself when that changes nothing."""
        if assumed == self.lengths.assumed:
            return self
        raw = self._raw if self._raw is not None else (self.samples, self.counts)
        filled, coverage = _fill(assumed, raw)
        unchanged = all(a is b for a, b in zip(filled, raw, strict=True))
        if unchanged and self._raw is None:
            return replace(self, lengths=coverage)
        cfg = self._settings or {"n_boot": 0, "seed": 0, "metrics": DEPLOYABLE_METRICS}
        cache = self.cache if self.cache is not None else FitCache(None)
        return _assemble(
            filled, self.specs, self.folder, self.run, cache, coverage, raw, cfg, False, self.fit_cache
        )

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
    ETA for the estimation and fitting stages (:class:`common.progress.Progress`).
    ``verifier="exact"`` also computes the pass@k curves (:func:`planning_metrics`). A folder
    of per-question counts (``ttc import`` of counts: ``counts-*.parquet``) gives pass@k curves
    only (:func:`fitting.pipeline.fit_counts`): its options are best-of-n with an exact checker,
    and the profile's ``counts`` holds the table. A folder may hold both, for different models
    (:func:`check_disjoint`): each model is planned from what it has. Raises
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
    samples, counts = read_input(folder)
    if samples is None:
        samples = S.validate_samples(pd.DataFrame({S.QUESTION_ID: [], S.CORRECT: []}))
    if counts is not None:
        check_disjoint(samples, counts, folder)
    models = sorted({str(m) for t in (samples, counts) if t is not None for m in t[S.MODEL].unique()})
    run = read_run(folder) if (folder / "run.json").exists() else None
    specs = _specs(models, run, model_specs)
    cache = FitCache.for_folder(folder, enabled=use_cache)
    raw = (samples, counts)
    filled, coverage = _fill(assumed or AssumedLengths(), raw)
    if require_lengths is not False:
        if samples.empty and counts is not None and (verifier or "none") != "exact":
            raise ValueError(f"{folder}: {COUNTS_NEED_EXACT}")  # the first thing to fix, before lengths
        try:
            coverage.check(() if require_lengths is True else require_lengths)
        except MissingLengths as exc:
            raise MissingLengths(f"{folder}: {exc}") from None
    laws = cache.mapping("law", code_version("fitting", "planner/space")) if use_cache else {}
    cfg = {"n_boot": n_boot, "seed": seed, "metrics": metrics}
    kept = raw if any(a is not b for a, b in zip(filled, raw, strict=True)) else None
    return _assemble(filled, specs, folder, run, cache, coverage, kept, cfg, progress, laws)


def _fill(assumed: AssumedLengths, tables: tuple) -> tuple[tuple, LengthCoverage]:
    """The (samples, counts) tables with ``assumed`` lengths where a question has none, and the
    coverage of both (their models are disjoint: :func:`check_disjoint`)."""
    samples, counts = tables
    filled_samples, cov = assumed.fill(samples)
    if counts is None:
        return (filled_samples, None), cov
    filled_counts, cov_counts = assumed.fill(counts)
    merged = LengthCoverage(
        assumed,
        {**cov.questions, **cov_counts.questions},
        {**cov.prompt_missing, **cov_counts.prompt_missing},
        {**cov.completion_missing, **cov_counts.completion_missing},
    )
    return (filled_samples, filled_counts), merged


def _assemble(tables, specs, folder, run, cache, coverage, raw, cfg, progress, laws) -> Profile:
    """A profile of the (filled) samples and counts tables, their curves and fits through ``cache``."""
    samples, counts = tables
    parts, per_question = [], None
    if not samples.empty:
        parts.append(_fit(samples, cfg["n_boot"], cfg["seed"], cache, progress, cfg["metrics"]))
        per_question = parts[-1].per_question
    if counts is not None:
        parts.append(
            fit_counts_cached(
                counts,
                cache,
                n_boot=cfg["n_boot"],
                seed=cfg["seed"],
                progress=progress,
                pool_policy=PLANNING_POOLS,
            )
        )
    curves = pd.concat([p.curves for p in parts], ignore_index=True)
    fits = [f for p in parts for f in p.fits]
    return Profile(
        samples,
        curves,
        dict(specs),
        folder,
        run,
        fits,
        laws,
        per_question,
        cache,
        counts=counts,
        lengths=coverage,
        _settings=cfg,
        _raw=raw,
    )


def check_disjoint(samples: pd.DataFrame, counts: pd.DataFrame, where: object) -> None:
    """Refuse a (model, strategy) held both as samples and as counts: its curves would be
    estimated twice from overlapping data (ValueError naming them)."""
    keys = list(S.GROUP_KEYS)
    both = set(map(tuple, samples[keys].astype(str).drop_duplicates().to_numpy().tolist()))
    both &= set(map(tuple, counts[keys].astype(str).drop_duplicates().to_numpy().tolist()))
    if both:
        model, strategy = sorted(both)[0][:2]
        raise ValueError(
            f"{where}: holds both samples and counts of model {model!r} strategy {strategy!r}; "
            "import them into separate folders"
        )


def _fit(
    samples: pd.DataFrame,
    n_boot: int,
    seed: int,
    cache: FitCache,
    progress: bool = False,
    metrics=DEPLOYABLE_METRICS,
):
    """Curves and ``ttc fit`` records (laws with question-bootstrap bands) of the planning
    metrics (:func:`planning_metrics`; pass@k only with an exact checker)."""
    return fit_samples_cached(
        samples,
        cache,
        n_boot=n_boot,
        seed=seed,
        metrics=metrics,
        progress=progress,
        pool_policy=PLANNING_POOLS,
    )


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
    raw = (S.validate_samples(samples), None)
    filled, coverage = _fill(assumed or AssumedLengths(), raw)
    cfg = {"n_boot": n_boot, "seed": seed, "metrics": planning_metrics(verifier)}
    kept = raw if filled[0] is not raw[0] else None
    return _assemble(filled, specs, None, None, FitCache(None), coverage, kept, cfg, False, {})
