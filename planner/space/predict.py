"""Predicted accuracy of an option, with an interval and a label saying where it comes from.

Three sources, in order of trust (docs/design.md, "Measured, then modeled"):

``measured``
    The knob value was profiled: the curve's own point and confidence interval.
``fitted``
    Between profiled knob values: the curve's fitted law (or, when a curve has too few
    points for a law, linear interpolation in ``log k``), with the law's bootstrap band.
``extrapolated``
    Beyond the largest profiled knob value, up to ``max_factor`` times it (4 by default), or
    a model of a profiled family that was not profiled (a :class:`FamilyPredictor`: a joint
    law in model size and compute, :class:`fitting.FamilyLaw`, fitted across the family's
    profiled sizes). Intervals are widened (see each class). Anything further out is refused
    with :class:`ExtrapolationRefused`, never silently predicted.

Where a curve's law comes from is :func:`predictor_for_points` (a ``ttc fit`` record, or a
law selected here); a mix of difficulty bins is :func:`mix_predictions`. All predictors take
and return numpy arrays so the exhaustive enumerator can evaluate a whole knob grid in one call.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fitting import BetaBinomialPosterior, ConvergenceWarning, FamilyLaw, binomial_weights, fit_curve, get_law
from fitting import schema as S

from ..constants import ACCURACY, ACCURACY_HI, ACCURACY_LO, KNOB_VALUE, SOURCES

__all__ = [
    "SOURCES",
    "MAX_EXTRAPOLATION",
    "MIN_POINTS_TO_EXTRAPOLATE",
    "ExtrapolationRefused",
    "FamilyLawFailed",
    "Predictions",
    "CurvePredictor",
    "CoverageLaw",
    "coverage_predictor",
    "FamilyPredictor",
    "mix_predictions",
    "predictor_for_points",
    "worst_source",
    "Z90",
]

#: default limit of extrapolation in the compute knob: 4x the largest profiled value
MAX_EXTRAPOLATION = 4.0
#: a law extrapolates only when its curve has this many points: fit_curve then holds out the
#: top quarter (at least 2 points) to test its extrapolation; with fewer, one held-out point
#: (or none) is no test (a 4-point budget sweep extrapolated 0.06 -> 0.89 on the lab)
MIN_POINTS_TO_EXTRAPOLATE = 6
#: z of a two-sided 90 % normal interval (used where an interval is built from an RMSE or a standard error)
Z90 = 1.6448536269514722


class ExtrapolationRefused(ValueError):
    """A prediction was asked for outside the range the planner is allowed to extrapolate to."""


class FamilyLawFailed(ValueError):
    """The family law of an unprofiled size did not converge: it is not used."""


def worst_source(sources) -> str:
    """The most speculative label among ``sources`` (``measured`` < ``fitted`` < ``extrapolated``)."""
    return SOURCES[max(SOURCES.index(s) for s in sources)]


@dataclass(frozen=True)
class Predictions:
    """Predictions at several knob values (arrays of one length)."""

    x: np.ndarray
    accuracy: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    source: np.ndarray  # of str, one of SOURCES

    def __len__(self) -> int:
        return len(self.x)


def mix_predictions(parts: list[tuple[float, Predictions]]) -> Predictions:
    """Weighted mix of per-bin predictions at the same knob values (weights sum to 1).

    Accuracy and both interval ends are the weighted sums (the interval treats the bins'
    errors as moving together, which is conservative); the source is the most speculative.
    """
    x = parts[0][1].x
    acc = sum(w * p.accuracy for w, p in parts)
    lo = sum(w * p.lo for w, p in parts)
    hi = sum(w * p.hi for w, p in parts)
    src = np.array([worst_source([p.source[i] for _, p in parts]) for i in range(len(x))])
    return Predictions(x, acc, lo, hi, src)


def _interp_log(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Linear interpolation in ``log x`` (xp sorted, positive); flat outside the range."""
    return np.interp(np.log(x), np.log(xp), fp)


class CurvePredictor:
    r"""Accuracy versus one compute knob for one curve (model, strategy, config, metric, difficulty).

    Parameters
    ----------
    x, accuracy, lo, hi : arrays of shape (n,)
        The profiled knob values (positive) and the measured accuracy with its interval.
    law : object with ``predict(x)`` or None
        The curve's fitted law (e.g. from :func:`fitting.fit_curve` or the ``ttc fit`` fits).
        None: values between profiled points are interpolated linearly in ``log x`` and
        nothing beyond the largest is predicted.
    band : mapping with arrays ``x``, ``lo``, ``hi`` (and ``estimate``) or None
        The law's bootstrap prediction band. Its ``estimate`` (interpolated in ``log x``) is
        the prediction, and ``lo``/``hi`` its interval. Without a band, the law's value with
        the offsets of the measured intervals interpolated around it (a stated approximation:
        the law is taken to be as uncertain as the nearest measurements).
    extrapolation_error : float or None
        The law's held-out extrapolation RMSE (accuracy units). Beyond the profiled range, an
        interval is widened by it times the number of doublings past the largest profiled
        value. None or NaN (the curve had too few points to hold any out) means the law's
        extrapolation is untested: the predictor then interpolates only.
    max_factor : float
        Largest knob value predicted, as a multiple of the largest profiled value.

    Notes
    -----
    Beyond the profiled range (``x_max < x <= max_factor * x_max``) the prediction is the law
    moved by its gap to the measured accuracy at ``x_max`` (continuous there, and never below it
    for a non-decreasing law), and the interval is

    .. math:: [\hat y + (o_{lo}(x) - e\,d),\ \hat y + (o_{hi}(x) + e\,d)],\qquad
              d = 1 + \log_2(x / x_{max}),

    with :math:`o` the wider of the band offsets and the measured offsets at ``x_max``
    multiplied by ``d``, and :math:`e` the held-out extrapolation error (0 when the law's
    extrapolation could not be tested).

    Examples
    --------
    >>> import numpy as np
    >>> p = CurvePredictor([1, 2, 4], [0.5, 0.6, 0.7], [0.45, 0.55, 0.65], [0.55, 0.65, 0.75])
    >>> pr = p.predict([2, 3])
    >>> pr.source.tolist(), round(float(pr.accuracy[1]), 3)
    (['measured', 'fitted'], 0.658)
    """

    def __init__(
        self,
        x,
        accuracy,
        lo,
        hi,
        *,
        law=None,
        band: Mapping[str, np.ndarray] | None = None,
        extrapolation_error: float | None = 0.0,
        max_factor: float = MAX_EXTRAPOLATION,
        label: str = "",
    ) -> None:
        x = np.asarray(x, dtype=float)
        order = np.argsort(x)
        self.x_ = x[order]
        self.accuracy_ = np.asarray(accuracy, dtype=float)[order]
        self.lo_ = np.asarray(lo, dtype=float)[order]
        self.hi_ = np.asarray(hi, dtype=float)[order]
        if len(self.x_) == 0:
            raise ValueError(f"CurvePredictor{_where(label)}: no profiled points")
        if np.any(self.x_ <= 0) or np.any(np.diff(self.x_) == 0):
            raise ValueError(f"CurvePredictor{_where(label)}: knob values must be positive and distinct")
        bad_ci = ~np.isfinite(self.lo_) | ~np.isfinite(self.hi_)
        self.lo_ = np.where(bad_ci, self.accuracy_, self.lo_)
        self.hi_ = np.where(bad_ci, self.accuracy_, self.hi_)
        self.law = law
        self.band = None if band is None else {k: np.asarray(v, dtype=float) for k, v in band.items()}
        # a law whose extrapolation was never tested on held-out points (None/NaN: too few
        # points) interpolates only: it is not trusted beyond the profiled range
        tested = extrapolation_error is not None and math.isfinite(float(extrapolation_error))
        self.extrapolation_error = float(extrapolation_error) if tested else 0.0
        self.extrapolation_tested = tested
        if max_factor < 1:
            raise ValueError(f"max_factor must be >= 1, got {max_factor}")
        self.max_factor = float(max_factor)
        self.label = label

    @property
    def x_min(self) -> float:
        return float(self.x_[0])

    @property
    def x_max(self) -> float:
        return float(self.x_[-1])

    @property
    def x_limit(self) -> float:
        """The largest knob value this predictor answers for."""
        return (
            self.x_max * self.max_factor if self.law is not None and self.extrapolation_tested else self.x_max
        )

    def _law(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.law.predict(x), dtype=float)

    def _center(self, x: np.ndarray) -> np.ndarray:
        """The predicted accuracy: the band's own point estimate where there is a band (so the
        interval is centred on the curve it was bootstrapped around), else the law."""
        b = self.band
        if b is not None and "estimate" in b:
            return _interp_log(x, b["x"], b["estimate"])
        return self._law(x)

    def _measured_offsets(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            _interp_log(x, self.x_, self.lo_ - self.accuracy_),
            _interp_log(x, self.x_, self.hi_ - self.accuracy_),
        )

    def _offsets(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.band is not None:
            b = self.band
            est = b.get("estimate")
            if est is None:
                est = self._law(b["x"])
            return _interp_log(x, b["x"], b["lo"] - est), _interp_log(x, b["x"], b["hi"] - est)
        return self._measured_offsets(x)

    def predict(self, x) -> Predictions:
        """Predictions at knob values ``x`` (raises :class:`ExtrapolationRefused` outside the range)."""
        x = np.atleast_1d(np.asarray(x, dtype=float))
        if np.any(x < self.x_min * (1 - 1e-9)):
            raise ExtrapolationRefused(
                f"{self.label or 'curve'}: knob value {float(x.min()):g} is below the smallest profiled "
                f"value {self.x_min:g}; the planner does not extrapolate downwards"
            )
        if np.any(x > self.x_limit * (1 + 1e-9)):
            if self.law is None:
                why = f"the largest profiled value {self.x_max:g} (no fitted law to extrapolate with)"
            elif not self.extrapolation_tested:
                why = f"the largest profiled value {self.x_max:g} (the law's extrapolation was never tested)"
            else:
                why = f"{self.max_factor:g}x the largest profiled value {self.x_max:g}"
            raise ExtrapolationRefused(
                f"{self.label or 'curve'}: knob value {float(x.max()):g} is beyond {why}"
            )
        idx = np.searchsorted(self.x_, x)
        idx_c = np.minimum(idx, len(self.x_) - 1)
        measured = np.isclose(self.x_[idx_c], x, rtol=1e-9, atol=0)
        beyond = x > self.x_max * (1 + 1e-9)
        acc = np.empty_like(x)
        lo = np.empty_like(x)
        hi = np.empty_like(x)
        source = np.where(measured, "measured", np.where(beyond, "extrapolated", "fitted")).astype(object)
        acc[measured] = self.accuracy_[idx_c[measured]]
        lo[measured] = self.lo_[idx_c[measured]]
        hi[measured] = self.hi_[idx_c[measured]]
        other = ~measured
        if other.any():
            xo = x[other]
            if self.law is None:
                est = _interp_log(xo, self.x_, self.accuracy_)
                o_lo = _interp_log(xo, self.x_, self.lo_ - self.accuracy_)
                o_hi = _interp_log(xo, self.x_, self.hi_ - self.accuracy_)
            else:
                est = self._center(xo)
                o_lo, o_hi = self._offsets(xo)
                past = xo > self.x_max
                # beyond the profiled range the law continues the last measured point (moved by its
                # gap there), so a prediction past x_max does not jump away from the measurement
                gap = self.accuracy_[-1] - float(self._center(np.array([self.x_max]))[0])
                est = np.where(past, est + gap, est)
                d = 1.0 + np.log2(np.maximum(xo / self.x_max, 1.0))
                # beyond the profiled range never narrower than the measured interval at x_max
                # scaled by the doublings (a bootstrap band can collapse on step-like curves)
                m_lo, m_hi = self._measured_offsets(xo)
                o_lo = np.where(past, np.minimum(o_lo, m_lo * d), o_lo)
                o_hi = np.where(past, np.maximum(o_hi, m_hi * d), o_hi)
                widen = np.where(past, self.extrapolation_error * d, 0.0)
                o_lo, o_hi = o_lo - widen, o_hi + widen
            est = np.clip(est, 0.0, 1.0)
            acc[other] = est
            lo[other] = np.clip(est + np.minimum(o_lo, 0.0), 0.0, 1.0)
            hi[other] = np.clip(est + np.maximum(o_hi, 0.0), 0.0, 1.0)
        return Predictions(x, acc, lo, hi, source.astype(str))


def _where(label: str) -> str:
    return f" ({label})" if label else ""


class FamilyPredictor:
    r"""Accuracy of an unprofiled model size of a family, from the family law.

    The law (:class:`fitting.FamilyLaw`: :math:`1 - \mathrm{acc}(P, k) = E + A P^{-\alpha} +
    B k^{-\beta}` across the profiled sizes, Wu et al. 2024) and its leave-one-size-out
    errors are estimated in :mod:`fitting`; this class turns them into predictions, every
    one labelled ``extrapolated``. The interval is :math:`\hat y \pm z_{0.95}\, r\, (1 +
    \log_2 f)`, with :math:`r` the leave-one-size-out RMSE of interior sizes for a size
    inside the profiled range and of the end sizes outside it, and ``f >= 1`` the factor by
    which ``P`` lies outside the profiled sizes (1 inside) times the one by which ``k`` lies
    beyond the profiled knob values. It also never is narrower than the widest measured
    interval of the family at that knob value.

    Parameters
    ----------
    sizes : mapping model -> parameter count
    points : mapping model -> (k, accuracy, lo, hi) arrays
    max_size_factor, max_factor : float
        Sizes are predicted in ``[min / f, max * f]`` of the profiled sizes, knob values up to
        ``max_factor`` times the largest profiled one; anything else is refused.
    cache : dict or None
        :meth:`fitting.FamilyLaw.state` by a hash of the points; read and updated in place
        (the caller may persist it).

    Raises
    ------
    ValueError
        With fewer than 3 profiled sizes (the leave-one-size-out check needs 2 left).
    FamilyLawFailed
        When the family law did not converge (it raised a ConvergenceWarning when fitted).
    """

    def __init__(
        self,
        sizes: Mapping[str, float],
        points: Mapping[str, tuple],
        *,
        max_size_factor: float = MAX_EXTRAPOLATION,
        max_factor: float = MAX_EXTRAPOLATION,
        label: str = "",
        cache: dict | None = None,
    ) -> None:
        models = [m for m in points if m in sizes]
        if len({float(sizes[m]) for m in models}) < 3:
            raise ValueError(
                f"FamilyPredictor{_where(label)}: needs at least 3 profiled sizes, got {sorted(models)}"
            )
        self.label = label
        self.sizes = {m: float(sizes[m]) for m in models}
        rows = []
        for m in models:
            k, acc, lo, hi = (np.asarray(a, dtype=float) for a in points[m])
            rows += [(self.sizes[m], ki, ai, li, hi_) for ki, ai, li, hi_ in zip(k, acc, lo, hi, strict=True)]
        data = np.array(rows, dtype=float)
        owner = [m for m in models for _ in range(len(np.atleast_1d(points[m][0])))]
        P, K, acc = data[:, 0], data[:, 1], data[:, 2]
        digest = hashlib.sha256(data.round(12).tobytes()).hexdigest()[:20]
        key = f"family|{digest}"
        hit = cache.get(key) if cache is not None else None
        if isinstance(hit, dict) and "converged" in hit:  # an identical earlier fit (fits are deterministic)
            self.law_ = FamilyLaw.from_state(hit)
        else:
            self.law_ = FamilyLaw().fit(np.column_stack([P, K]), acc, owner)
            if cache is not None:
                cache[key] = self.law_.state()
        if not self.law_.converged_:
            raise FamilyLawFailed(
                f"{label or 'family'}: the family law did not converge ({self.law_.convergence_message_})"
            )
        self.k_max, self.k_min = float(K.max()), float(K.min())
        self.p_min, self.p_max = float(P.min()), float(P.max())
        self.max_size_factor = float(max_size_factor)
        self.max_factor = float(max_factor)
        self._half_k = K
        self._half = (data[:, 4] - data[:, 3]) / 2.0

    @property
    def loo_rmse_inside_(self) -> float:
        return self.law_.loo_rmse_inside_

    @property
    def loo_rmse_outside_(self) -> float:
        return self.law_.loo_rmse_outside_

    @property
    def loo_rmse_(self) -> float:
        return self.law_.loo_rmse_

    @property
    def loo_notes(self) -> list[str]:
        """Leave-one-out refits that did not converge (their errors count as they are)."""
        return list(self.law_.loo_notes_)

    def check(self, size: float, k) -> None:
        """Raise :class:`ExtrapolationRefused` if ``(size, k)`` is outside the stated range."""
        k = np.atleast_1d(np.asarray(k, dtype=float))
        lo_p, hi_p = self.p_min / self.max_size_factor, self.p_max * self.max_size_factor
        if not lo_p <= size <= hi_p:
            raise ExtrapolationRefused(
                f"{self.label or 'family'}: model size {size:.3g} parameters is outside "
                f"[{lo_p:.3g}, {hi_p:.3g}] ({self.max_size_factor:g}x the profiled sizes)"
            )
        if np.any(k > self.k_max * self.max_factor) or np.any(k < self.k_min):
            raise ExtrapolationRefused(
                f"{self.label or 'family'}: knob value outside [{self.k_min:g}, "
                f"{self.max_factor:g} x {self.k_max:g}]"
            )

    def predict(self, size: float, k) -> Predictions:
        """Predictions for a model of ``size`` parameters at knob values ``k``."""
        k = np.atleast_1d(np.asarray(k, dtype=float))
        self.check(size, k)
        acc = self.law_.predict(np.column_stack([np.full_like(k, size), k]))
        f_size = max(size / self.p_max, self.p_min / size, 1.0)
        f_k = np.maximum(k / self.k_max, 1.0)
        rmse = self.loo_rmse_inside_ if f_size == 1.0 else self.loo_rmse_outside_
        half = Z90 * rmse * (1.0 + np.log2(f_size * f_k))
        widest = np.array([self._half[np.isclose(self._half_k, ki)].max(initial=0.0) for ki in k])
        half = np.maximum(half, widest)
        lo, hi = np.clip(acc - half, 0.0, 1.0), np.clip(acc + half, 0.0, 1.0)
        return Predictions(k, acc, lo, hi, np.full(len(k), "extrapolated"))


# ---- where a curve's predictor comes from ---------------------------------------------------------
def _band(band) -> dict[str, np.ndarray] | None:
    """A ``ttc fit`` record's prediction band as arrays sorted by the knob (None if unusable)."""
    if band is None:
        return None
    df = pd.DataFrame(band)
    if "x" not in df and S.K in df:
        df = df.rename(columns={S.K: "x"})
    if not {"x", "lo", "hi"} <= set(df.columns):
        return None
    df = df.sort_values("x")
    return {c: df[c].to_numpy(float) for c in ("x", "estimate", "lo", "hi") if c in df}


class CoverageLaw:
    r"""The law of a ``verified`` arm (best-of-n with an exact checker, accuracy pass@n): the
    coverage of the profiled questions forecast from their correct counts.

    :class:`fitting.BetaBinomialPosterior` (per-question success rates
    :math:`p_i \sim \mathrm{Beta}(a, b)`, (a, b) integrated over their posterior; Levi 2024,
    Schaeffer et al. 2025) gives, at each k, each question's unbiased pass@k where its pool
    covers k and beyond it 1 if solved, else its posterior chance to be solved by the k - n
    fresh samples, with an interval: continuous with the measured points where the pools end
    and never falling, so a larger n is never predicted worse than the pool. Coverage far out
    depends on how many questions have a tiny success rate, which a per-question model sees
    and a law fitted to the aggregate curve does not (on the real Pythia GSM8K counts, planning
    from 1/8 of each pool, its forecasts at the planner's choices erred by 2.4 points on average,
    up to 11 points low at 8x the pool: ``benchmarks/real_regret.py``). The forecast is tabulated once on a log grid of k
    (:attr:`band`); :meth:`predict` interpolates it in ``log k``.
    """

    name = "beta-binomial posterior"

    def __init__(self, n, c, x_max: float, *, level: float = 0.9, reach: float = 1e4) -> None:
        self.posterior_ = BetaBinomialPosterior().fit(n, c)
        self.params_ = dict(self.posterior_.params_)
        # integer k (pass@k is defined there; a question's pool covers k or not) and the smallest
        # and largest pool, where the estimates switch from measured to posterior
        pools = np.asarray(n, dtype=float)[[np.argmin(n), np.argmax(n)]]
        grid = np.unique(np.concatenate([np.round(np.geomspace(1.0, float(x_max) * reach, 64)), pools]))
        f = [self.posterior_.forecast(float(k), level) for k in grid]
        self.band = {
            "x": grid,
            "estimate": np.array([v.estimate for v in f]),
            "lo": np.array([v.lo for v in f]),
            "hi": np.array([v.hi for v in f]),
        }
        self.x_range_ = (1.0, float(x_max))
        self.notes_ = list(self.posterior_.notes_)

    def predict(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return _interp_log(np.maximum(x, 1.0), self.band["x"], self.band["estimate"])


def coverage_predictor(
    points: pd.DataFrame, n, c, *, max_factor: float = MAX_EXTRAPOLATION, label: str = ""
) -> tuple[CurvePredictor, str] | None:
    """A :class:`CurvePredictor` of a verified arm from each question's pool size ``n`` and
    correct count ``c`` (:class:`CoverageLaw`): measured points where profiled, the posterior
    forecast (and its interval) between and beyond them, up to ``max_factor`` x the largest
    profiled k. None when the counts cannot forecast (fewer than 2 questions, or no correct
    sample at all: only the prior would speak)."""
    n, c = np.asarray(n, dtype=float), np.asarray(c, dtype=float)
    if len(n) < 2 or c.sum() == 0:
        return None
    x = points[KNOB_VALUE].to_numpy(float)
    law = CoverageLaw(n, c, float(x.max()))
    args = (x, points[ACCURACY], points[ACCURACY_LO], points[ACCURACY_HI])
    pred = CurvePredictor(
        *args, law=law, band=law.band, extrapolation_error=0.0, max_factor=max_factor, label=label
    )
    note = f"beta-binomial posterior of {len(n)} questions' correct counts (a={law.params_['a']:.3g})"
    return pred, "; ".join([note, *law.notes_])


def predictor_for_points(
    points: pd.DataFrame,
    fit: Mapping | None = None,
    *,
    fit_if_missing: bool = True,
    max_factor: float = MAX_EXTRAPOLATION,
    label: str = "",
) -> tuple[CurvePredictor, str]:
    """A :class:`CurvePredictor` for an arm's profiled points and a note on its law.

    ``fit`` is a fit record of ``ttc fit`` (``law``, ``params``, optional ``band`` and
    ``extrapolation_error``). Without one, and with ``fit_if_missing``, a law is selected
    with :func:`fitting.fit_curve` (binomial weights) when there are at least 4 points;
    a law that does not converge is not used (interpolation only, nothing beyond the
    largest profiled value) and the note says so.
    """
    args = (points[KNOB_VALUE], points[ACCURACY], points[ACCURACY_LO], points[ACCURACY_HI])
    if fit is not None and not fit.get("law"):
        note = fit.get("note", "interpolation only")
        return CurvePredictor(*args, max_factor=max_factor, label=label), note
    if fit is not None and fit.get("law"):
        law = get_law(fit["law"]).with_params(fit["params"])
        band = _band(fit.get("band"))
        err = fit.get("extrapolation_error") if len(points) >= MIN_POINTS_TO_EXTRAPOLATE else None
        pred = CurvePredictor(
            *args, law=law, band=band, extrapolation_error=err, max_factor=max_factor, label=label
        )
        return pred, fit.get("note") or f"law {fit['law']} (ttc fit)"
    x = points[KNOB_VALUE].to_numpy(float)
    if fit_if_missing and len(x) >= 4:
        nq = points[S.N_QUESTIONS].fillna(points[S.N_QUESTIONS].max()).fillna(100).to_numpy(float)
        acc = points[ACCURACY].to_numpy(float)
        # the selection's ConvergenceWarnings are summarized in the note below, not lost
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            law, table = fit_curve(x, acc, sample_weight=binomial_weights(acc, nq))
        if law.converged_:
            err = float(table.loc[table["selected"], "extrapolation_error"].iloc[0])
            err = err if len(x) >= MIN_POINTS_TO_EXTRAPOLATE else None
            pred = CurvePredictor(*args, law=law, extrapolation_error=err, max_factor=max_factor, label=label)
            return pred, f"law {law.name} (fitted here, no band: measured intervals used)"
        note = f"no converged law ({law.convergence_message_}): interpolation only"
        return CurvePredictor(*args, max_factor=max_factor, label=label), note
    return CurvePredictor(*args, max_factor=max_factor, label=label), f"{len(x)} points: interpolation only"
