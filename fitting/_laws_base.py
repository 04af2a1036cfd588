"""The machinery shared by every one-variable scaling law: robust bounded least squares
from several data-driven starts and bound bookkeeping.

A law is a :class:`~fitting._estimator.FittedEstimator` (``fit`` returns ``self``, learned
state ends in ``_``: ``params_``, ``converged_``, ``rmse_``, ``aic_``, ...; reports, JSON
summaries and the :class:`ConvergenceWarning` of a failed or degenerate fit come from there).

Fitting happens on ``u = x / x_ref`` (``x_ref`` the geometric mean of ``x`` for the
power-type laws, ``max(x)`` for the exponential), so that compute measured in FLOPs
(1e12..1e18) and samples (1..256) are equally well conditioned; every default bound is
invariant under that rescaling, and ``params_`` are always reported for the raw ``x``.
"""

from __future__ import annotations

import inspect
import math
import warnings
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import least_squares

from ._batchfit import fit_laws
from ._estimator import ConvergenceWarning, FittedEstimator, NotFittedError, UnreachableTargetWarning
from ._fitutil import ROBUST_ROUNDS, as_1d, binomial_weights, bound_hits, inside_bounds, robust_f_scale

__all__ = [
    "ConvergenceWarning",
    "UnreachableTargetWarning",
    "NotFittedError",
    "Law",
    "binomial_weights",
]


class Law(FittedEstimator):
    """A monotone accuracy-versus-compute curve with named parameters.

    Subclasses define the formula (:meth:`formula` and its Jacobian), a data-driven
    :meth:`guess`, default bounds and the closed-form :meth:`inverse`.

    Parameters
    ----------
    loss : {"soft_l1", "huber", "cauchy", "arctan", "linear"}
        Robust loss of ``scipy.optimize.least_squares`` applied to the weighted residuals
        ``sqrt(w_i) * (f(x_i) - y_i)``; "linear" is ordinary least squares.
    f_scale : float or None
        Residual size where the robust loss turns from quadratic to linear, in units of y
        (weights are normalized to mean 1, so a weighted residual is ``sqrt(w_i / mean w)``
        times the raw one). None picks
        it from the data: 1.35 robust standard deviations (MAD) of a first least-squares fit.
    n_starts : int
        How many starting points (data-driven guesses for several ceilings, then seeded
        random perturbations of the best guess).
    bounds : dict or None
        ``{param: (lo, hi)}`` overriding the default bounds. Only parameters that do not
        change when ``x`` is rescaled may be bounded (the ceiling and exponents); hitting
        a bound you set is reported, not treated as failure.
    max_nfev : int
        Evaluation budget of each ``least_squares`` run.
    warm_start : bool
        If True and the law was fitted before, refit from the previous ``params_`` only
        (one start, same ``f_scale_``): how the bootstrap refits quickly.
    random_state : int
        Seed of the ``numpy.random.Generator`` drawing the perturbed starts.
    solver : {"scipy", "batched"}
        "scipy" runs ``scipy.optimize.least_squares`` from each start in turn; "batched" runs
        all starts in one batched Levenberg-Marquardt solve of the same objective
        (:func:`fitting._batchfit.fit_laws`, ``least_squares`` only if it does not converge):
        several times faster; on well-posed data the same optimum (near-degenerate data can
        end in a different local optimum, usually a lower one).
    """

    name: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ()
    #: Parameters unchanged by rescaling x (the only ones a user may bound).
    invariant_params: ClassVar[tuple[str, ...]] = ()
    #: Parameters whose default bound on the y scale comes from the data (the ceiling).
    level_params: ClassVar[tuple[str, ...]] = ()
    x_must_be_positive: ClassVar[bool] = True
    formula_text: ClassVar[str] = ""

    def __init__(
        self,
        *,
        loss: str = "soft_l1",
        f_scale: float | None = None,
        n_starts: int = 6,
        bounds: dict[str, tuple[float, float]] | None = None,
        max_nfev: int = 2000,
        warm_start: bool = False,
        random_state: int = 0,
        solver: str = "scipy",
    ) -> None:
        self.loss = loss
        self.f_scale = f_scale
        self.n_starts = n_starts
        self.bounds = bounds
        self.max_nfev = max_nfev
        self.warm_start = warm_start
        self.random_state = random_state
        self.solver = solver

    # ---- to be defined by each law -----------------------------------------------------------
    @staticmethod
    @abstractmethod
    def formula(x: np.ndarray, *params: float) -> np.ndarray:
        """The curve at ``x`` for parameters in :attr:`param_names` order."""

    @staticmethod
    @abstractmethod
    def jacobian(x: np.ndarray, *params: float) -> np.ndarray:
        """d formula / d params, shape ``x.shape + (n_params,)``.

        With ``x`` of shape (B, n) and each parameter of shape (B, 1) this is the Jacobian of
        B curves at once (what :mod:`fitting._batchfit` calls).
        """

    @staticmethod
    @abstractmethod
    def rescale(params: dict[str, float], factor: float) -> dict[str, float]:
        """Parameters describing the same curve in the variable ``x / factor``."""

    @abstractmethod
    def _default_bounds(self, y: np.ndarray) -> dict[str, tuple[float, float]]:
        """Search bounds on the rescaled problem; must be invariant under rescaling."""

    @abstractmethod
    def _guesses(self, u: np.ndarray, y: np.ndarray, bounds) -> list[dict[str, float]]:
        """Data-driven starts (log-space line fits) on the rescaled variable ``u``."""

    @abstractmethod
    def _inverse(self, target: np.ndarray, params: dict[str, float]) -> np.ndarray:
        """Compute reaching ``target`` (inf above the ceiling, 0 below the zero-compute value)."""

    @abstractmethod
    def asymptote(self) -> float:
        """The accuracy approached at infinite compute (the ceiling)."""

    # ---- sklearn-style plumbing --------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The constructor settings (not the fitted parameters)."""
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self"}

    def set_params(self, **settings: Any) -> Law:
        valid = self.get_params()
        for k, v in settings.items():
            if k not in valid:
                raise ValueError(f"{type(self).__name__} has no setting {k!r}; valid: {sorted(valid)}")
            setattr(self, k, v)
        return self

    def clone(self) -> Law:
        """An unfitted copy with the same settings."""
        return type(self)(**self.get_params())

    def with_params(self, params: dict[str, float]) -> Law:
        """A copy whose fitted parameters are ``params`` (for bootstrap replicates and tests)."""
        law = self.clone()
        law.params_ = {k: float(params[k]) for k in self.param_names}
        law.converged_ = True
        law.convergence_message_ = "parameters set directly"
        law.at_bounds_ = []
        return law

    def _check_x(self, x, name: str = "x") -> np.ndarray:
        arr = np.asarray(x, dtype=float)
        if self.x_must_be_positive and np.any(arr <= 0):
            raise ValueError(
                f"{type(self).__name__}: {name} must be positive (compute), got min {arr.min()!r}"
            )
        if not self.x_must_be_positive and np.any(arr < 0):
            raise ValueError(f"{type(self).__name__}: {name} must be non-negative, got min {arr.min()!r}")
        return arr

    def _x_ref(self, x: np.ndarray) -> float:
        return float(np.exp(np.mean(np.log(x))))

    def guess(self, x, y) -> dict[str, float]:
        """A data-driven starting point: the best of the log-space line fits.

        Examples
        --------
        >>> import numpy as np
        >>> from fitting.laws import PowerLaw
        >>> x = np.array([1.0, 2, 4, 8, 16])
        >>> g = PowerLaw().guess(x, 0.9 - 0.5 * x**-0.5)
        >>> 0.3 < g["alpha"] < 1.0  # a start for the optimizer, not the fit (0.5)
        True
        """
        x = self._check_x(as_1d("x", x))
        y = as_1d("y", y, len(x))
        x_ref = self._x_ref(x)
        u = x / x_ref
        bounds = self._bounds(y)
        best = min(self._guesses(u, y, bounds), key=lambda g: self._sse(u, y, g))
        return self.rescale(best, 1.0 / x_ref)

    def _sse(self, u, y, params) -> float:
        r = self.formula(u, *[params[k] for k in self.param_names]) - y
        return float(np.sum(r * r)) if np.all(np.isfinite(r)) else math.inf

    def _bounds(self, y: np.ndarray) -> dict[str, tuple[float, float]]:
        bounds = dict(self._default_bounds(y))
        for k, (lo, hi) in (self.bounds or {}).items():
            if k not in self.param_names:
                raise ValueError(f"{type(self).__name__}: bounds for unknown parameter {k!r}")
            if k not in self.invariant_params:
                raise ValueError(
                    f"{type(self).__name__}: bounds on {k!r} are not supported (it changes when x is "
                    f"rescaled); boundable: {list(self.invariant_params)}"
                )
            if not lo < hi:
                raise ValueError(
                    f"{type(self).__name__}: bounds for {k!r} must satisfy lo < hi, got {(lo, hi)}"
                )
            bounds[k] = (float(lo), float(hi))
        return bounds

    # ---- fitting ------------------------------------------------------------------------------
    def fit(self, x, y, sample_weight=None) -> Law:
        """Fit the law to points ``(x_i, y_i)`` by robust weighted least squares.

        Parameters
        ----------
        x : array of shape (n,)
            Compute (samples k, tokens, FLOPs...): positive (non-negative for exponential decay).
        y : array of shape (n,)
            Accuracy at each x.
        sample_weight : array of shape (n,) or None
            Inverse-variance weights (e.g. :func:`binomial_weights`); only ratios matter.

        Returns
        -------
        self
        """
        if self.solver == "batched":
            return fit_laws([(self, x, y, sample_weight)])[0]
        if self.solver != "scipy":
            raise ValueError(
                f"{type(self).__name__}: solver must be 'scipy' or 'batched', got {self.solver!r}"
            )
        return self._fit_least_squares(x, y, sample_weight)

    def _fit_least_squares(self, x, y, sample_weight) -> Law:
        """:meth:`fit` with ``scipy.optimize.least_squares`` from each start."""
        x, y, w, x_ref, bounds, lo, hi = self._setup(x, y, sample_weight)
        sw = np.sqrt(w)
        u = x / x_ref

        def resid(theta):
            return sw * (self.formula(u, *theta) - y)

        def jac(theta):
            return sw[:, None] * self.jacobian(u, *theta)

        def run(theta0, loss, f_scale):
            theta0 = inside_bounds(np.asarray(theta0, dtype=float), lo, hi)
            with np.errstate(all="ignore"):
                return least_squares(
                    resid,
                    theta0,
                    jac=jac,
                    bounds=(lo, hi),
                    loss=loss,
                    f_scale=f_scale,
                    method="trf",
                    x_scale="jac",
                    max_nfev=self.max_nfev,
                )

        previous = getattr(self, "params_", None)
        if self.warm_start and previous is not None:
            scaled = self.rescale(previous, x_ref)
            starts = [np.array([scaled[p] for p in self.param_names])]
            f_scale = self.f_scale if self.f_scale is not None else getattr(self, "f_scale_", 1.0)
            best = run(starts[0], self.loss, f_scale)
        else:
            starts = self._starts(u, y, bounds, lo, hi)
            two_stage = self.loss != "linear" and self.f_scale is None
            first_loss = "linear" if two_stage else self.loss
            f_scale = 1.0 if self.f_scale is None else float(self.f_scale)
            results = [run(s, first_loss, f_scale) for s in starts]
            best = min(results, key=lambda r: r.cost if np.isfinite(r.cost) else math.inf)
            if two_stage:
                # f_scale from the residuals' robust spread (MAD), re-estimated from the robust
                # fit's own residuals until it settles: an outlier inflates the first estimate.
                for _ in range(ROBUST_ROUNDS):
                    new = robust_f_scale(best.fun, y)
                    if first_loss == self.loss and abs(new - f_scale) <= 0.1 * f_scale:
                        break
                    f_scale, first_loss = new, self.loss
                    best = run(best.x, self.loss, f_scale)
        self.f_scale_ = float(f_scale)
        self._finish(best, x, y, w, x_ref, lo, hi, bounds)
        return self

    def _setup(self, x, y, sample_weight):
        """Checked inputs of :meth:`fit`: ``x, y``, weights normalized to mean 1, ``x_ref``,
        the bounds (dict and ``lo``/``hi`` arrays in ``param_names`` order)."""
        x = self._check_x(as_1d("x", x))
        y = as_1d("y", y, len(x))
        k = len(self.param_names)
        if len(x) < k:
            raise ValueError(f"{type(self).__name__} has {k} parameters but got only {len(x)} points")
        if sample_weight is None:
            w = np.ones_like(y)
        else:
            w = as_1d("sample_weight", sample_weight, len(x))
            if np.any(w < 0) or w.sum() <= 0:
                raise ValueError("sample_weight must be non-negative with a positive sum")
        bounds = self._bounds(y)
        lo = np.array([bounds[p][0] for p in self.param_names])
        hi = np.array([bounds[p][1] for p in self.param_names])
        return x, y, w / w.mean(), self._x_ref(x), bounds, lo, hi

    def _starts(self, u, y, bounds, lo, hi) -> list[np.ndarray]:
        guesses = self._guesses(u, y, bounds)
        guesses.sort(key=lambda g: self._sse(u, y, g))
        starts = [np.array([g[p] for p in self.param_names], dtype=float) for g in guesses]
        starts = [s for s in starts if np.all(np.isfinite(s))][: max(1, self.n_starts)]
        if not starts:
            starts = [
                inside_bounds(np.where(np.isfinite(lo + hi), (lo + hi) / 2, np.maximum(lo, 0) + 1.0), lo, hi)
            ]
        rng = np.random.default_rng(self.random_state)
        base = starts[0]
        while len(starts) < self.n_starts:
            starts.append(base * np.exp(rng.normal(0.0, 0.5, size=base.shape)))
        return starts

    def _finish(self, res, x, y, w, x_ref, lo, hi, bounds) -> None:
        theta = res.x
        internal = dict(zip(self.param_names, (float(t) for t in theta), strict=True))
        self.params_ = self.rescale(internal, 1.0 / x_ref)
        self.n_points_ = len(x)
        self.x_range_ = (float(x.min()), float(x.max()))
        at, bad = bound_hits(theta, lo, hi, self.param_names, set(self.bounds or {}), self.level_params)
        hits, failures = [], []
        for i, p in enumerate(self.param_names):
            for j, (side, b) in enumerate((("lower", lo[i]), ("upper", hi[i]))):
                if at[0, i, j]:
                    known = p in self.invariant_params or b == 0.0
                    hits.append((p, side, float(b) if known else None))
                    if bad[0, i, j]:
                        failures.append(f"{p} stuck at its {side} search bound")
        self.at_bounds_ = hits
        pred = self.predict(x)
        ok = bool(res.status > 0) and np.all(np.isfinite(theta)) and np.all(np.isfinite(pred))
        reasons = []
        if not res.status > 0:
            reasons.append(f"least_squares stopped: {res.message}")
        if not np.all(np.isfinite(pred)):
            reasons.append("non-finite predictions")
        reasons += failures
        if not ok and not reasons:  # non-finite parameters with finite predictions
            reasons.append("non-finite parameters")
        resid = pred - y
        self.rmse_ = float(np.sqrt(np.mean(resid**2)))
        wrss = float(np.sum(w * resid**2))
        n, k = len(y), len(self.param_names)
        self.aic_ = float(n * np.log(max(wrss / n, 1e-300)) + 2 * k)
        self.cost_ = float(res.cost)
        self.nfev_ = int(res.nfev)
        self._record_convergence(reasons, f"ok ({res.message})", stacklevel=4)

    # ---- using a fitted law -------------------------------------------------------------------
    def predict(self, x) -> np.ndarray:
        """The fitted curve at ``x``."""
        params = self._check_fitted()
        x = self._check_x(x)
        return self.formula(x, *[params[k] for k in self.param_names])

    def inverse(self, target) -> np.ndarray:
        """Compute needed to reach accuracy ``target``: the inverse of :meth:`predict`.

        Returns inf (with an :class:`UnreachableTargetWarning` naming the ceiling) for
        targets at or above the ceiling, and 0 for targets already met at zero compute.
        """
        params = self._check_fitted()
        t = np.asarray(target, dtype=float)
        out = self._inverse(t, params)
        ceiling = self.asymptote()
        unreachable = np.atleast_1d(t >= ceiling)
        if np.any(unreachable):
            worst = float(np.max(np.atleast_1d(t)[unreachable]))
            warnings.warn(
                f"target {worst:.4g} is at or above the fitted ceiling {ceiling:.4g} of {type(self).__name__}: "
                "no finite compute reaches it (returned inf)",
                UnreachableTargetWarning,
                stacklevel=2,
            )
        return out

    def _report_lines(self, params: dict[str, float]) -> list[str]:
        lines = []
        if hasattr(self, "n_points_"):
            lines.append(
                f"  {self.n_points_} points, x in [{self.x_range_[0]:.4g}, {self.x_range_[1]:.4g}], "
                f"loss {self.loss} (f_scale {self.f_scale_:.3g})"
            )
        lines += super()._report_lines(params)
        if hasattr(self, "rmse_"):
            lines.append(f"  rmse {self.rmse_:.4g}, AIC {self.aic_:.4g}, ceiling {self.asymptote():.4g}")
        return lines

    def _summary_fields(self) -> dict[str, Any]:
        return {
            "ceiling": self.asymptote(),
            "rmse": getattr(self, "rmse_", None),
            "aic": getattr(self, "aic_", None),
            "n_points": getattr(self, "n_points_", None),
            "x_range": list(getattr(self, "x_range_", ())) or None,
        }
