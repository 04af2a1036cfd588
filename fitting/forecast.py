"""Forecast accuracy far beyond the profiled k: what ``ttc forecast`` prints.

For each (model, strategy, config, difficulty) curve and each requested K:

* **pass@k** (from counts, or from samples reduced to counts) is forecast from the
  per-question counts with a model of the population of per-question success rates
  (:data:`POPULATION_METHODS`). ``auto`` is ``pooled``, the most accurate of them on the
  real-data benchmark ``benchmarks/forecast.py``: :class:`fitting.coverage.BetaBinomialPosterior`
  (per-question rates ~ Beta(a, b), (a, b) integrated over their posterior) whose tail exponent
  ``a`` has a hierarchical prior learned from the other curves forecast together
  (:func:`fitting.coverage.shared_tail_prior`; method ``beta_binomial_posterior_shared_tail``,
  or ``beta_binomial_posterior`` when there is no other curve); ``posterior`` is the same
  without sharing; ``gmodel`` and ``logitnormal`` are the estimators of
  :mod:`fitting.population`. The forecast is the pass@K of a pool of K samples per question
  that holds the observed ones: questions whose pool already covers K contribute their
  measured unbiased pass@K, questions already solved 1, the others their posterior chance to
  be solved by the K - n fresh samples. It is therefore the measured pass@k inside the pools,
  continuous where they end and never decreasing in K (:meth:`BetaBinomialPosterior.forecast`
  says why this and not the posterior mean of the true pass@K, which jumps down right past the
  pool). The interval is each model's (see there); ``k_needed`` is the smallest whole K whose
  forecast reaches the target, with the posterior interval of the K at which the questions'
  true pass@K does.
* **majority@k, best_of@k, weighted@k** (samples with answers / scores) have no per-question
  count model; they are forecast by the law :func:`fitting.fit_curve` selects for the
  aggregate curve (method ``law:<name>``), with a question-bootstrap interval widened by the
  law's far-end backtest error. ``method="law"`` forecasts pass@k this way too. The law
  continues the measured curve: beyond the data it is moved by the gap between the measured
  value and the law at the largest k, so the forecast is continuous there (and, every law
  being non-decreasing in k, a pass@k forecast never falls).

Missing numbers are None (null in JSON, never NaN or inf) and the record's ``note`` (for
``k_needed``: ``k_needed_note``) says why: no forecast possible, no backtest, a target not
reached by 1e15 samples or beyond the law's ceiling.

Every record says how far it went (``ratio`` = K / ``k_max``, the smallest pool) and carries
an honest error estimate measured on the data itself (``extrapolation_error`` at
``backtest_ratio``): for the beta-binomial posterior, each question's pool is subsampled
(seeded, hypergeometric) to 1/``backtest_ratio`` of its size, the forecast of pass@n from the
subsample is compared with the measured pass@n, and the absolute errors are averaged over
``backtest_reps`` subsamples; for a law, it is its far-end RMSE when fitted on the low end of
the curve (:func:`fitting.fit_curve`). The backtest ratio is the requested ratio when the pools
allow it, else the largest that leaves :data:`MIN_BACKTEST_SAMPLES` samples per question.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd

from . import schema as S
from ._fitutil import json_safe
from ._laws_base import ConvergenceWarning, UnreachableTargetWarning
from ._pools import k_grid
from .counts import counts_from_samples, curves_from_counts, per_question_pass, pooled_counts
from .coverage import BetaBinomialPosterior, shared_tail_prior, tail_evidence
from .curves import BEST_OF, MAJORITY, PASS, WEIGHTED, DataWarning, curves_from_samples, per_question_curves
from .estimators import pass_at_k
from .laws import binomial_weights
from .population import GModel, LogitNormal
from .select import fit_curve
from .uncertainty import bootstrap_questions

__all__ = ["forecast", "FORECAST_METHODS", "MIN_BACKTEST_SAMPLES", "POPULATION_METHODS", "RECORD_KEYS"]

#: the per-question population models of pass@k: ``--method`` name -> (estimator, record label)
POPULATION_METHODS = {
    "posterior": (BetaBinomialPosterior, "beta_binomial_posterior"),
    "gmodel": (GModel, "g_model"),
    "logitnormal": (LogitNormal, "logit_normal"),
    "pooled": (BetaBinomialPosterior, "beta_binomial_posterior_shared_tail"),
}
#: "auto" (= "pooled", the most accurate on the real-data benchmark), or one population model, for
#: pass@k (the other metrics use their law); "law": every curve from its fitted law
FORECAST_METHODS = ("auto", *POPULATION_METHODS, "law")
#: the backtest subsamples keep at least this many samples per question (typical pool / ratio)
MIN_BACKTEST_SAMPLES = 8
#: the exact backtest subsampler of pools past numpy's hypergeometric limit handles at most
#: this many samples of the rarer kind (correct or wrong) per question
MAX_EXACT_SUBSAMPLE = 10_000_000
_NUMPY_HYPERGEOMETRIC = 1_000_000_000  # numpy's hypergeometric takes fewer good and bad items than this
#: keys of every forecast record (``target``, ``k_needed``, ``k_needed_lo``, ``k_needed_hi``,
#: ``k_needed_note`` added with a target)
RECORD_KEYS = (
    S.MODEL,
    S.STRATEGY,
    S.CONFIG,
    S.METRIC,
    S.DIFFICULTY,
    "at",
    "estimate",
    "lo",
    "hi",
    "level",
    "method",
    "k_max",
    "n_max",
    "ratio",
    "n_questions",
    "extrapolation_error",
    "backtest_ratio",
    "note",
)
_FIT_DENSE_K, _FIT_PER_DECADE = 64, 48  # as fitting.pipeline: log-balanced fit points


def forecast(
    samples: pd.DataFrame | None = None,
    counts: pd.DataFrame | None = None,
    at: Sequence[float] = (),
    *,
    target: float | None = None,
    level: float = 0.9,
    method: str = "auto",
    metrics: Sequence[str] = (PASS, MAJORITY, BEST_OF, WEIGHTED),
    n_boot: int = 200,
    backtest_reps: int = 5,
    seed: int = 0,
) -> list[dict]:
    """Forecast every curve's accuracy at each K in ``at`` (and the K reaching ``target``).

    Parameters
    ----------
    samples, counts : DataFrame or None
        A samples table and/or a counts table (see :mod:`fitting.schema`).
    at : sequence of whole numbers >= 1
        Samples per question (the curve's k) to forecast at; may be far beyond the data.
    target : float in (0, 1) or None
        Also report ``k_needed``: the k at which the forecast reaches this accuracy.
    level : float
        Coverage of the intervals.
    method : {"auto", "posterior", "gmodel", "logitnormal", "pooled", "law"}
        See :data:`FORECAST_METHODS`.
    metrics : sequence of str
        Which curves to forecast (pass@k, and from samples majority@k, best_of@k, weighted@k
        where the data allow them).
    n_boot : int
        Question-bootstrap replicates of the law forecasts.
    backtest_reps : int
        Subsamples averaged in the beta-binomial backtest (0: no backtest).
    seed : int
        Seeds the backtest subsamples and the bootstrap.

    Returns
    -------
    list of dict
        One JSON-safe record per (curve, K) with the keys :data:`RECORD_KEYS`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> p = rng.beta(0.5, 4.0, size=200)
    >>> counts = pd.DataFrame({"question_id": range(200), "n_samples": 20, "n_correct": rng.binomial(20, p)})
    >>> rec = forecast(counts=counts, at=[2000], backtest_reps=0)[0]
    >>> rec["method"], rec["ratio"], rec["lo"] <= float(np.mean(1 - (1 - p) ** 2000)) <= rec["hi"]
    ('beta_binomial_posterior', 100.0, True)
    """
    if method not in FORECAST_METHODS:
        raise ValueError(f"forecast: method must be one of {list(FORECAST_METHODS)}, got {method!r}")
    at = [float(k) for k in at]
    if not at:
        raise ValueError("forecast: give at least one K (at=...)")
    if any(not math.isfinite(k) or k < 1 or k != math.floor(k) for k in at):
        raise ValueError(f"forecast: every K must be a whole number >= 1 (samples per question), got {at}")
    if target is not None and not 0.0 < target < 1.0:
        raise ValueError(f"forecast: target must be in (0, 1), got {target}")
    if samples is None and counts is None:
        raise ValueError("forecast: give samples and/or counts")
    records: list[dict] = []
    if PASS in metrics:
        parts = [
            c for c in (counts, None if samples is None else counts_from_samples(samples)) if c is not None
        ]
        pass_counts = pd.concat(parts, ignore_index=True) if parts else None
        if pass_counts is not None and len(pass_counts):
            if method != "law":
                pop = POPULATION_METHODS["pooled" if method == "auto" else method]
                records += _pass_records(pass_counts, at, target, level, backtest_reps, seed, pop)
            else:
                curves = curves_from_counts(pass_counts, n_boot=0, seed=seed)
                records += _law_records(
                    curves, per_question_pass(pass_counts), at, target, level, n_boot, seed
                )
    others = [m for m in metrics if m != PASS]
    if samples is not None and others:
        curves = curves_from_samples(samples, metrics=others, n_boot=0, seed=seed)
        pools = curves[curves[S.KNOB] == "samples"]
        if len(pools):
            with warnings.catch_warnings():  # already said by curves_from_samples
                warnings.simplefilter("ignore", DataWarning)
                per_q = per_question_curves(samples, metrics=others, seed=seed)
            records += _law_records(pools, per_q, at, target, level, n_boot, seed)
    if target is not None:  # a record that could not say how far the target is says why
        empty = dict.fromkeys(("k_needed", "k_needed_lo", "k_needed_hi"))
        records = [
            r if "k_needed" in r else r | {"target": target, **empty, "k_needed_note": r["note"]}
            for r in records
        ]
    return [json_safe(r) for r in records]


# ---- pass@k from counts: the beta-binomial posterior ------------------------------------------


def _pass_records(counts, at, target, level, reps, seed, population) -> list[dict]:
    make, label = population
    groups = list(pooled_counts(counts).groupby(list(S.GROUP_KEYS), sort=True, dropna=False))
    makers, labels = [make] * len(groups), [label] * len(groups)
    if label == POPULATION_METHODS["pooled"][1]:  # one tail exponent shared by every curve forecast here
        evidence = {}
        for i, (_, table) in enumerate(groups):
            n, c = table[S.N_SAMPLES].to_numpy(np.int64), table[S.N_CORRECT].to_numpy(np.int64)
            if len(n) >= 2 and c.sum() > 0:
                evidence[i] = tail_evidence(n, c)
        for i in range(len(groups)):
            others = [e for j, e in evidence.items() if j != i]
            makers[i] = partial(BetaBinomialPosterior, log_a_prior=shared_tail_prior(others))
            if not others:  # nothing to share: the plain posterior, and the record says so
                labels[i] = POPULATION_METHODS["posterior"][1]
    out = []
    for (key, table), make, label in zip(groups, makers, labels, strict=True):
        ident = dict(zip(S.GROUP_KEYS, key, strict=True)) | {S.METRIC: PASS}
        n = table[S.N_SAMPLES].to_numpy(np.int64)
        c = table[S.N_CORRECT].to_numpy(np.int64)
        k_max, n_max = int(n.min()), int(n.max())
        base = {**ident, "level": level, "k_max": k_max, "n_max": n_max, "n_questions": len(n)}
        if len(n) < 2 or c.sum() == 0:
            why = "fewer than 2 questions" if len(n) < 2 else "no correct sample in the data"
            for k in at:
                rec = _empty(base, k, f"{why}: pass@k beyond the data cannot be forecast")
                if k <= k_max:  # inside every pool: the measured value
                    est = float(np.mean(pass_at_k(n, c, int(k))))
                    rec |= {
                        "estimate": est,
                        "lo": est,
                        "hi": est,
                        "method": "measured",
                        "extrapolation_error": 0.0,
                    }
                out.append(rec)
            continue
        with warnings.catch_warnings():  # a non-converged population fit is said in the note
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = make().fit(n, c)
        notes = list(model.notes_)
        if not getattr(model, "converged_", True):
            notes.append(f"the fit did not converge: {model.convergence_message_}")
        note = "; ".join(notes)
        for k in at:
            f = model.forecast(k, level)
            rec = {**base, "at": k, "estimate": f.estimate, "lo": f.lo, "hi": f.hi, "ratio": k / k_max}
            if k <= k_max:
                rec |= {
                    "method": "measured",
                    "extrapolation_error": 0.0,
                    "backtest_ratio": None,
                    "note": note,
                }
            else:
                err, ratio, why = _backtest(n, c, k / k_max, reps, seed, make)
                how = label if k > n_max else f"measured+{label}"
                said = "; ".join(x for x in (note, why) if x)
                rec |= {"method": how, "extrapolation_error": err, "backtest_ratio": ratio, "note": said}
            out.append(rec)
        if target is not None:
            needed = _pass_target(model, target, level)
            for rec in out[len(out) - len(at) :]:
                rec |= needed
    return out


def _pass_target(model, target, level) -> dict:
    """The k at which pass@k reaches ``target`` (the measured pass@k inside the pools) and the
    interval of the k at which the questions' true pass@k reaches it (see the models' ``k_needed``)."""
    f = model.k_needed(target, level)
    return _target_fields(target, f.estimate, f.lo, f.hi, "not reached by 1e15 samples per question")


def _target_fields(target: float, est, lo, hi, unreached: str) -> dict:
    """A record's ``k_needed`` fields; ``k_needed_note`` says why any of them is missing."""
    vals = {"k_needed": est, "k_needed_lo": lo, "k_needed_hi": hi}
    gone = [key for key, v in vals.items() if v is None or not math.isfinite(v)]
    return {"target": target, **vals, "k_needed_note": f"{', '.join(gone)}: {unreached}" if gone else ""}


def _backtest(n, c, ratio: float, reps: int, seed: int, make) -> tuple[float | None, float | None, str]:
    """Mean |forecast - measured| of pass@n_i from 1/ratio of each pool (see the module doc),
    the ratio, and why there is no backtest when there is none."""
    ratio = min(ratio, float(np.median(n)) / MIN_BACKTEST_SAMPLES)
    if reps <= 0:
        return None, None, "no backtest: backtest_reps is 0"
    if ratio < 2.0:
        return (
            None,
            None,
            f"no backtest: pools under {2 * MIN_BACKTEST_SAMPLES} samples are too small to subsample",
        )
    rng = np.random.default_rng([seed, 1729])
    m = np.maximum(1, np.round(n / ratio)).astype(np.int64)
    if np.any(np.minimum(c, n - c) > MAX_EXACT_SUBSAMPLE):
        why = f"over {MAX_EXACT_SUBSAMPLE:.0e} correct and over {MAX_EXACT_SUBSAMPLE:.0e} wrong samples"
        return None, None, f"no backtest: a pool with {why} is beyond the exact subsampler"
    measured = float(np.mean(c > 0))  # pass@n_i of question i on its whole pool
    errors = []
    for _ in range(reps):
        sub = _subsample(rng, n, c, m)
        if sub.sum() == 0:
            errors.append(abs(0.0 - measured))  # nothing to forecast from: count the miss in full
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            errors.append(abs(make().fit(m, sub).forecast(n).estimate - measured))
    return float(np.mean(errors)), ratio, ""


def _subsample(rng: np.random.Generator, n: np.ndarray, c: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Correct samples in a uniformly random subset of ``m[i]`` of each pool (hypergeometric,
    exact). numpy's sampler takes fewer than 1e9 correct and 1e9 wrong samples; a larger pool
    places its rarer kind (at most :data:`MAX_EXACT_SUBSAMPLE` samples) at random positions
    of the shuffled pool and counts those among the first ``m[i]``."""
    small = (c < _NUMPY_HYPERGEOMETRIC) & (n - c < _NUMPY_HYPERGEOMETRIC)
    out = np.empty_like(c)
    out[small] = rng.hypergeometric(c[small], (n - c)[small], m[small])
    for i in np.flatnonzero(~small):
        rare = int(min(c[i], n[i] - c[i]))
        hits = int(np.count_nonzero(rng.choice(int(n[i]), rare, replace=False) < m[i]))
        out[i] = hits if c[i] <= n[i] - c[i] else m[i] - hits
    return out


def _empty(base: dict, k: float, note: str) -> dict:
    return {
        **base,
        "at": k,
        "estimate": None,
        "lo": None,
        "hi": None,
        "method": None,
        "ratio": k / base["k_max"],
        "extrapolation_error": None,
        "backtest_ratio": None,
        "note": note,
    }


# ---- any curve: the selected law ----------------------------------------------------------------


def _law_records(curves, per_question, at, target, level, n_boot, seed) -> list[dict]:
    out = []
    keys = [*S.GROUP_KEYS, S.METRIC]
    for key, rows in curves.groupby(keys, sort=True, dropna=False):
        ident = dict(zip(keys, key, strict=True))
        rows = rows.sort_values(S.K)
        full_x, full_y = rows[S.K].to_numpy(float), rows[S.ACCURACY].to_numpy(float)
        rows = rows[rows[S.K].isin(_fit_grid(int(rows[S.K].max())))]
        x = rows[S.K].to_numpy(float)
        y = rows[S.ACCURACY].to_numpy(float)
        nq = int(rows[S.N_QUESTIONS].max())
        k_max = float(x.max())
        base = {**ident, "level": level, "k_max": k_max, "n_max": k_max, "n_questions": nq}
        if len(x) < 4 or np.ptp(y) == 0:
            why = "fewer than 4 points" if len(x) < 4 else f"a flat curve at {y[0]:g}"
            out += [_empty(base, k, f"{why}: no law to forecast with") for k in at]
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            law, table = fit_curve(x, y, sample_weight=binomial_weights(y, nq))
        chosen = table[table["selected"]].iloc[0]
        err = float(chosen["extrapolation_error"]) if np.isfinite(chosen["extrapolation_error"]) else None
        ratio = float(chosen["extrapolation_ratio"]) if np.isfinite(chosen["extrapolation_ratio"]) else None
        matrix = per_question.get(tuple(map(str, key)))
        # the law continues the measured curve from its last point: its value there is moved to
        # the measured one, so the forecast is continuous where the data end (and, the laws being
        # non-decreasing in k, a pass@k forecast never falls below the measured curve)
        shift = float(full_y[-1]) - float(law.predict(full_x[-1]))
        inside = None if target is None else _measured_k(full_x, full_y, target)
        lo_hi, k_needed = _law_bootstrap(
            law, matrix, x, nq, at, target, level, n_boot, seed, 0.0 if inside else shift
        )
        if inside is not None:  # reached inside the data: the measured k, the bootstrap's interval around it
            k_needed = {
                "k_needed": inside,
                "k_needed_lo": float(np.fmin(k_needed["k_needed_lo"], inside)),
                "k_needed_hi": float(np.fmax(k_needed["k_needed_hi"], inside)),
            }
        if target is not None:
            why = f"not reached by the law {law.name} (ceiling {law.asymptote():.3g} before its move to the data)"
            k_needed = _target_fields(target, *k_needed.values(), why)
        note = "" if law.converged_ else f"the law did not converge: {law.convergence_message_}"
        for j, k in enumerate(at):
            rec = {**base, "at": k, "ratio": k / k_max, "note": note}
            if k <= k_max:  # inside the data: the measured curve (log-k interpolation between grid points)
                est = float(np.interp(np.log(k), np.log(full_x), full_y))
                rec |= {"method": "measured", "extrapolation_error": 0.0, "backtest_ratio": None}
                widen, moved = 0.0, 0.0
            else:  # the law, its bootstrap interval widened by its backtest error, scaled to how far K is
                est = float(np.clip(law.predict(k) + shift, 0.0, 1.0))
                rec |= {"method": f"law:{law.name}", "extrapolation_error": err, "backtest_ratio": ratio}
                if err is None:
                    rec["note"] = "; ".join(
                        x for x in (note, "no backtest: too few points to hold any out") if x
                    )
                widen = (err or 0.0) * (math.log(k / k_max) / math.log(ratio) if ratio and ratio > 1 else 1.0)
                moved = shift
            lo, hi = (lo_hi[j][0] + moved, lo_hi[j][1] + moved) if lo_hi is not None else (est, est)
            rec |= {
                "estimate": est,
                "lo": max(0.0, min(lo, est) - widen),
                "hi": min(1.0, max(hi, est) + widen),
            }
            if target is not None:
                rec |= k_needed
            out.append(rec)
    return out


def _measured_k(x: np.ndarray, y: np.ndarray, target: float) -> float | None:
    """The smallest measured k whose accuracy reaches ``target`` (None: the data never do)."""
    hit = np.flatnonzero(y >= target)
    return float(x[hit[0]]) if len(hit) else None


def _law_bootstrap(law, matrix, x, nq, at, target, level, n_boot, seed, shift=0.0):
    """Bootstrap intervals of the law's prediction at each K and of the k reaching ``target``
    on the law moved by ``shift`` (the law's own target is ``target - shift``)."""
    needed = {"k_needed": None, "k_needed_lo": None, "k_needed_hi": None}
    own = None if target is None else min(max(target - shift, 1e-12), 1.0)
    if own is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnreachableTargetWarning)
            est = float(law.inverse(own))
        needed = {"k_needed": est, "k_needed_lo": est, "k_needed_hi": est}
    if matrix is None or n_boot <= 0 or not at:
        return None, needed
    cols = [c for c in matrix.columns if float(c) in set(x.tolist())]
    m = matrix.loc[:, cols].dropna(axis=1)
    if m.shape[0] < 2 or m.shape[1] < 4:
        return None, needed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UnreachableTargetWarning)
        boot = bootstrap_questions(
            law,
            m.to_numpy(float),
            m.columns.to_numpy(float),
            n_boot=n_boot,
            level=level,
            grid=np.asarray(at),
            sample_weight=binomial_weights(m.mean(axis=0).to_numpy(float), nq),
            epsilon=None,
            targets=[own] if own is not None else (),
            rng=seed,
        )
    pred = boot.prediction.set_index("x")
    lo_hi = [(float(pred.loc[k, "lo"]), float(pred.loc[k, "hi"])) for k in at]
    if target is not None and boot.to_target is not None:
        row = boot.to_target.iloc[0]
        est = needed["k_needed"]
        needed |= {
            "k_needed_lo": float(np.fmin(row["lo"], est)),
            "k_needed_hi": float(np.fmax(row["hi"], est)),
        }
    return lo_hi, needed


def _fit_grid(k_max: int) -> np.ndarray:
    return k_grid(k_max, _FIT_DENSE_K, _FIT_PER_DECADE)
