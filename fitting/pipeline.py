"""Samples -> curves -> fitted laws: what ``ttc fit`` runs.

:func:`fit_samples` computes the curves table (:func:`fitting.curves.curves_from_samples`),
then fits a law to every curve with enough points (:func:`fitting.fit_curve`: held-out
extrapolation error and AIC pick among the candidate laws), bootstraps it over QUESTIONS
(:func:`fitting.bootstrap_questions`) for parameter intervals, a prediction band and the
saturation point N*, and returns one JSON-safe fit record per curve. The bootstrap refits of
all curves run together (:func:`fitting.uncertainty.bootstrap_questions_many`).

A curve is

* a pool metric (``pass@k``, ``majority@k``, ``best_of@k``, ``weighted@k``) of one
  (model, strategy, config, difficulty) group, against k = 1..pool size; or
* a one-execution strategy (``beam``, ``refine``, ``budget``) of one (model, difficulty)
  swept over its knob (configs that differ only in that knob form one curve).

Fit records (``fits.json``) hold: ``model``, ``strategy``, ``config`` (with the swept knob
removed for sweeps), ``metric``, ``difficulty``, ``knob``, ``law``, ``params``,
``params_ci``, ``band`` (``x``, ``estimate``, ``lo``, ``hi``: the bootstrap prediction band up
to :data:`BAND_FACTOR` times the largest profiled k), ``saturation`` (N* with its interval),
``rmse``, ``extrapolation_error`` (the winner's far-end RMSE when fitted on the low end only,
:func:`fitting.fit_curve`), ``extrapolation_ratio`` (how far that score extrapolated), ``k_min``, ``k_max``,
``n_points``, ``n_questions``, ``converged``, ``candidates`` (every law's scores) and ``note``.
A curve with too few points, or whose laws all fail, gets a record with ``law`` None and a
``note`` saying why, never a silent bad fit.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_write

from . import schema as S
from ._fitutil import json_safe
from ._laws_base import ConvergenceWarning
from .counts import curves_from_counts, per_question_pass
from .curves import ACCURACY_METRIC, METRICS, curves_and_per_question, k_grid
from .laws import binomial_weights, get_law
from .select import DEFAULT_LAWS, fit_curve_many
from .uncertainty import DEFAULT_EPSILON, METHODS, bootstrap_questions_many

__all__ = ["FitOutput", "fit_samples", "fit_counts", "fit_curves", "curve_units", "MIN_POINTS", "BAND_FACTOR"]

#: fewest distinct knob values a curve needs before a 3-parameter law is fitted to it
MIN_POINTS = 4
#: the prediction band reaches this multiple of the largest profiled knob value
BAND_FACTOR = 4.0
#: laws are fitted to every k of a pool curve up to this, then to this many k per decade
#: (log-balanced: a 10,000-sample curve is not fitted to its first decades' thousand points)
FIT_DENSE_K = 64
FIT_PER_DECADE = 48
_BAND_POINTS = 40


@dataclass
class FitOutput:
    """What :func:`fit_samples` returns: the curves table and one fit record per curve."""

    curves: pd.DataFrame
    fits: list[dict]

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``curves.parquet``, ``curves.csv`` and ``fits.json`` (what ``ttc fit`` writes)."""
        out = Path(out_dir)
        return [
            atomic_write(out / "curves.parquet", lambda fh: self.curves.to_parquet(fh, index=False)),
            atomic_write(out / "curves.csv", self.curves.to_csv(index=False)),
            atomic_write(out / "fits.json", json.dumps(self.fits, indent=1) + "\n"),
        ]

    def fits_frame(self) -> pd.DataFrame:
        """The fit records as a table (one row per curve; nested fields as JSON text)."""
        rows = []
        for f in self.fits:
            row = {k: v for k, v in f.items() if k not in ("band", "candidates", "params_ci")}
            row["params"] = json.dumps(f["params"]) if f["params"] is not None else None
            sat = f.get("saturation") or {}
            row["saturation"] = sat.get("estimate")
            rows.append(row)
        return pd.DataFrame(rows)


def _curve_groups(curves: pd.DataFrame):
    """Yield (record identity, curve rows, per-question lookup key(s)) for every curve."""
    pool = curves[curves[S.METRIC].isin(METRICS)]
    for key, rows in pool.groupby([*S.GROUP_KEYS, S.METRIC], sort=True):
        ident = dict(zip([*S.GROUP_KEYS, S.METRIC], key, strict=True))
        ident["knob"] = "k"
        yield ident, rows.sort_values(S.K), [tuple(map(str, key))]
    single = curves[curves[S.METRIC] == ACCURACY_METRIC].copy()
    if single.empty:
        return
    single["_base"] = [_config_without(c, k) for c, k in zip(single[S.CONFIG], single[S.KNOB], strict=True)]
    for key, rows in single.groupby([S.MODEL, S.STRATEGY, "_base", S.DIFFICULTY, S.KNOB], sort=True):
        model, strategy, base, difficulty, knob = key
        if knob in (None, "", "none") or rows[S.K].nunique() < 2:
            continue
        ident = {S.MODEL: model, S.STRATEGY: strategy, S.CONFIG: base, S.DIFFICULTY: difficulty}
        ident |= {S.METRIC: ACCURACY_METRIC, "knob": knob}
        rows = rows.sort_values(S.K)
        keys = [(model, strategy, c, difficulty, ACCURACY_METRIC) for c in rows[S.CONFIG]]
        yield ident, rows, keys


def _config_without(config: str, knob) -> str:
    try:
        parsed = json.loads(config)
    except (TypeError, json.JSONDecodeError):
        return str(config)
    if isinstance(parsed, dict) and isinstance(knob, str):
        parsed.pop(knob, None)
    return json.dumps(parsed, sort_keys=True)


def _per_question_matrix(per_q: dict, keys: list[tuple], ks: np.ndarray) -> pd.DataFrame | None:
    """Questions x k matrix for one curve (sweeps: one column per config, joined on question)."""
    frames = [per_q.get(k) for k in keys]
    if any(f is None for f in frames):
        return None
    if len(frames) == 1:
        m = frames[0]
        return m.loc[:, [c for c in m.columns if float(c) in set(ks.tolist())]]
    joined = pd.concat(
        [f.iloc[:, :1].set_axis([float(k)], axis=1) for f, k in zip(frames, ks, strict=True)], axis=1
    )
    return joined.dropna()


def fit_curves(
    curves: pd.DataFrame,
    per_question: dict | None = None,
    *,
    laws: Sequence = DEFAULT_LAWS,
    n_boot: int = 200,
    level: float = 0.9,
    epsilon: float = DEFAULT_EPSILON,
    min_points: int = MIN_POINTS,
    seed: int = 0,
    method: str = "batched",
) -> list[dict]:
    """Fit a law to every curve of a curves table; one record per curve (see module doc).

    ``per_question`` is :func:`fitting.curves.per_question_curves` of the same samples; it
    enables the question bootstrap (without it, or with ``n_boot=0``, no intervals).
    ``method`` is how laws are fitted: "batched" (the selection fits with
    ``Law(solver="batched")``, the bootstrap's replicates of all curves together, see
    :func:`fitting.bootstrap_questions`) or "scipy" (one ``least_squares`` run per start and
    per replicate: the reference path).
    """
    if method not in METHODS:
        raise ValueError(f"fit_curves: method must be one of {METHODS}, got {method!r}")
    records, pending = [], []
    # selection's fits with the same solver as the bootstrap ("batched": all starts of a fit
    # in one batched solve; fit_curve_many clones the instances with their settings)
    solver = "batched" if method == "batched" else "scipy"
    candidates = [get_law(spec).set_params(solver=solver) for spec in laws]
    for ident, rows, keys in _curve_groups(curves):
        if ident["knob"] == "k":  # pool curves: fit on a log-balanced subset of a long k grid
            rows = rows[rows[S.K].isin(k_grid(int(rows[S.K].max()), FIT_DENSE_K, FIT_PER_DECADE))]
        x = rows[S.K].to_numpy(float)
        y = rows[S.ACCURACY].to_numpy(float)
        nq = rows[S.N_QUESTIONS].to_numpy(float)
        rec = {
            **ident,
            "law": None,
            "params": None,
            "params_ci": None,
            "band": None,
            "saturation": None,
            "rmse": None,
            "extrapolation_error": None,
            "k_min": float(x.min()),
            "k_max": float(x.max()),
            "n_points": int(len(x)),
            "n_questions": int(nq.max()),
            "converged": False,
            "candidates": [],
            "note": "",
        }
        records.append(rec)
        if len(np.unique(x)) < min_points:
            rec["note"] = f"{len(np.unique(x))} knob values (< {min_points}): measured points only, no law"
            continue
        if np.ptp(y) == 0:
            why = " (no correct sample)" if y[0] == 0 else ""
            rec["note"] = f"flat curve at {y[0]:g}{why}: measured points only, no law"
            continue
        pending.append((rec, x, y, nq, keys))
    # law selection of every curve at once (batched: one solve per law class for all their fits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        selected = fit_curve_many([(x, y, binomial_weights(y, nq)) for _, x, y, nq, _ in pending], candidates)
    boots = []
    for (rec, x, _, nq, keys), (law, table) in zip(pending, selected, strict=True):
        cols = ["law", "rmse", "aic", "extrapolation_error", "extrapolation_ratio", "converged", "message"]
        rec["candidates"] = json_safe(table[cols].to_dict("records"))
        if not law.converged_:
            rec["note"] = f"no law converged (best try {law.name}: {law.convergence_message_})"
            continue
        chosen = table[table["selected"]].iloc[0]
        rec |= {
            "law": law.name,
            "params": json_safe(law.params_),
            "rmse": json_safe(chosen["rmse"]),
            "extrapolation_error": json_safe(chosen["extrapolation_error"]),
            "extrapolation_ratio": json_safe(chosen["extrapolation_ratio"]),
            "converged": True,
            "note": f"{law.name} selected among {len(table)} laws by far-end extrapolation error and AIC",
        }
        matrix = _per_question_matrix(per_question, keys, x) if per_question and n_boot > 0 else None
        if matrix is not None and matrix.isna().any().any():  # uneven pools, policy "available"
            matrix = matrix.dropna(axis=1)  # the bootstrap refits on the k every question covers
            if matrix.shape[1] < min_points:
                matrix = None
        if matrix is None or matrix.shape[0] < 2:
            rec["note"] += "; no bootstrap (per-question estimates unavailable)"
            continue
        grid = np.unique(np.concatenate([x, np.geomspace(x.min(), BAND_FACTOR * x.max(), _BAND_POINTS)]))
        request = {
            "per_question": matrix.to_numpy(float),
            "x": matrix.columns.to_numpy(float),
            "n_boot": n_boot,
            "level": level,
            "grid": grid,
            # the same binomial weights as the selection fit, so the band is centred on the
            # same law as ``params`` (the default "auto" weights could pick another optimum)
            "sample_weight": binomial_weights(matrix.mean(axis=0).to_numpy(float), nq.max()),
            "epsilon": epsilon,
            "rng": seed,
        }
        boots.append((rec, (law, request)))
    # every curve's replicates refitted together (one batched solve per law class)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = bootstrap_questions_many([req for _, req in boots], method=method)
    for (rec, _), boot in zip(boots, results, strict=True):
        rec["params_ci"] = json_safe({name: [row["lo"], row["hi"]] for name, row in boot.params.iterrows()})
        band = boot.prediction
        rec["band"] = json_safe({c: band[c].tolist() for c in ("x", "estimate", "lo", "hi")})
        if boot.saturation is not None:
            rec["saturation"] = json_safe(boot.saturation.as_dict())
        rec["n_boot"] = n_boot
        rec["n_boot_failed"] = int(boot.n_failed)
    return records


def fit_samples(
    samples: pd.DataFrame,
    *,
    laws: Sequence = DEFAULT_LAWS,
    n_boot: int = 200,
    level: float = 0.9,
    seed: int = 0,
    metrics: Sequence[str] = METRICS,
    pool_policy: str = "common",
    method: str = "batched",
) -> FitOutput:
    """Curves and fitted laws of a samples table.

    Warns :class:`fitting.curves.DataWarning` for curves not produced (no answers) or cut
    short (uneven pools; ``pool_policy`` as in :func:`fitting.curves_from_samples`).

    Examples
    --------
    >>> from fitting.schema import read_samples
    >>> out = fit_samples(read_samples("examples/samples"), n_boot=50)  # doctest: +SKIP
    >>> out.curves.head(); out.fits[0]["law"]  # doctest: +SKIP
    """
    curves, per_q = curves_and_per_question(
        samples,
        metrics=metrics,
        n_boot=n_boot,
        level=level,
        seed=seed,
        pool_policy=pool_policy,
        per_question=n_boot > 0,
    )
    fits = fit_curves(curves, per_q, laws=laws, n_boot=n_boot, level=level, seed=seed, method=method)
    return FitOutput(curves=curves, fits=fits)


def fit_counts(
    counts: pd.DataFrame,
    *,
    laws: Sequence = DEFAULT_LAWS,
    n_boot: int = 200,
    level: float = 0.9,
    seed: int = 0,
    pool_policy: str = "common",
    method: str = "batched",
) -> FitOutput:
    """Pass@k curves and fitted laws of a counts table (one row per question).

    The same records as :func:`fit_samples` gives for ``pass@k``; majority and weighted
    vote need answers and are never estimated from counts.

    Examples
    --------
    >>> import pandas as pd
    >>> counts = pd.DataFrame({"question_id": range(40), "n_samples": 64, "n_correct": [i % 9 for i in range(40)]})
    >>> out = fit_counts(counts, n_boot=0)
    >>> out.fits[0]["metric"], out.fits[0]["k_max"], out.fits[0]["converged"]
    ('pass@k', 64.0, True)
    """
    curves = curves_from_counts(counts, n_boot=n_boot, level=level, seed=seed, pool_policy=pool_policy)
    per_q = per_question_pass(counts, pool_policy=pool_policy) if n_boot > 0 else None
    fits = fit_curves(curves, per_q, laws=laws, n_boot=n_boot, level=level, seed=seed, method=method)
    return FitOutput(curves=curves, fits=fits)


def curve_units(curves: pd.DataFrame) -> list[tuple[dict, pd.DataFrame, list[tuple]]]:
    """The curves :func:`fit_curves` fits, in its order: (record identity, the curve's rows,
    the per-question keys it reads). Fitting the rows of a subset of them gives their records
    (what :mod:`fitting.cache` relies on)."""
    return list(_curve_groups(curves))
