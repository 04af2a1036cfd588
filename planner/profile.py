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

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fitting import schema as S
from fitting.cache import CACHE_DIR, FitCache, code_version, fit_samples_cached
from profiling.storage import read_run

from .costs import ModelSpec, SpecError
from .space.arms import POOL_METRICS

__all__ = ["Profile", "load_profile", "profile_from_tables", "CACHE_DIR", "DEPLOYABLE_METRICS"]

#: metrics the planner can deploy (pass@k needs an oracle to pick the sample)
DEPLOYABLE_METRICS = tuple(m for m, strategy in POOL_METRICS.items() if strategy is not None)


@dataclass
class Profile:
    """Everything the planner needs from one samples folder.

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

    @property
    def architectures(self) -> dict[str, str]:
        return {m: s.architecture for m, s in self.specs.items()}

    @property
    def params(self) -> dict[str, float]:
        """Parameters a family law uses: active parameters (all of them for dense models)."""
        return {m: float(s.params_active) for m, s in self.specs.items()}

    @property
    def models(self) -> list[str]:
        return sorted(self.samples[S.MODEL].unique())

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
                out[m] = ModelSpec.resolve(model_specs[m])
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
            "config in run.json; for imported samples pass --model-spec NAME=CATALOG_NAME_OR_CONFIG_PATH"
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
) -> Profile:
    """Read a samples folder, its curves and fits (through the cache) and its models' specs.

    ``use_cache=False`` neither reads nor writes the cache; ``progress`` shows a count and an
    ETA for the estimation and fitting stages (:class:`fitting.progress.Progress`).
    Raises :class:`fitting.SchemaError` for a missing or unreadable folder and ValueError
    for models without a spec.
    """
    folder = Path(folder)
    samples = S.read_samples(folder)
    run = read_run(folder) if (folder / "run.json").exists() else None
    specs = _specs(sorted(samples[S.MODEL].unique()), run, model_specs)
    cache = FitCache.for_folder(folder, enabled=use_cache)
    out = _fit(samples, n_boot, seed, cache, progress)
    laws = cache.mapping("law", code_version("fitting", "planner/space")) if use_cache else {}
    return Profile(samples, out.curves, specs, folder, run, out.fits, laws, out.per_question, cache)


def _fit(samples: pd.DataFrame, n_boot: int, seed: int, cache: FitCache, progress: bool = False):
    """Curves and ``ttc fit`` records (laws with question-bootstrap bands) of the deployable
    metrics (pass@k needs an oracle, so it is left out)."""
    return fit_samples_cached(samples, cache, n_boot=n_boot, seed=seed, metrics=DEPLOYABLE_METRICS,
                              progress=progress)  # fmt: skip


def profile_from_tables(
    samples: pd.DataFrame, specs: Mapping[str, object], *, n_boot: int = 100, seed: int = 0
) -> Profile:
    """A profile from in-memory tables (no folder, no cache): for tests and notebooks."""
    samples = S.validate_samples(samples)
    out = _fit(samples, n_boot, seed, FitCache(None))
    return Profile(samples, out.curves, dict(specs), fits=out.fits, per_question=out.per_question)
