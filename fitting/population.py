r"""The population of per-question success rates on a grid: Efron's g-modeling and the logit-normal.

pass@K far beyond the data is governed by the distribution g of the per-question success
rates, above all by its mass between 1/K and the rates the pools resolve (Levi 2024;
Schaeffer et al. 2025, "How do large language monkeys get their power (laws)?"). Both
estimators here put g on one fixed grid of rates :math:`\theta_j` (even in
:math:`\mathrm{logit}\,\theta` over :data:`LOGIT_BOUNDS`, so the grid's bottom acts as the
mass of questions that no feasible K solves), so each question's likelihood is a row of
:math:`L_{ij} = \theta_j^{c_i} (1 - \theta_j)^{n_i - c_i}`. Given g, question i's rate has the
posterior :math:`w_{ij} \propto g_j L_{ij}` and its chance to be solved by K fresh samples is

.. math:: q_i(K) = \sum_j w_{ij} \left[1 - (1 - \theta_j)^K\right].

* :class:`GModel` (Efron 2016, "Empirical Bayes deconvolution estimates", Biometrika 103):
  :math:`\log g = Q\alpha - \mathrm{const}`, Q a natural cubic spline basis in
  :math:`\mathrm{logit}\,\theta`, :math:`\alpha` maximizing the marginal likelihood minus
  :math:`c_0 \lVert\alpha\rVert`. The spline's boundary knots sit at the smallest and largest
  rates the pools resolve (1/n and 1 - 1/n at the median pool), and a natural spline is linear
  beyond them: below the data :math:`\log g` is linear in :math:`\log\theta`, a power-law
  density near zero, which is what gives power-law pass@K.
* :class:`LogitNormal`: :math:`\mathrm{logit}\,\theta \sim N(\mu, \sigma^2)`, fitted by
  maximum marginal likelihood; its left tail is lighter than any power law.

Forecasts continue the measured pass@k: the pass@K forecast is that of a pool of K samples
per question holding the observed ones, so a question whose pool covers K contributes its
measured unbiased pass@K, one already solved contributes 1, and an unsolved one its chance
:math:`q_i(K - n_i)` to be solved by the K - n_i fresh samples (continuous where the pools
end, never decreasing in K; :meth:`fitting.coverage.BetaBinomialPosterior.forecast` says why).

Intervals: the parameters' Laplace approximation (the Hessian of the penalized negative
log-likelihood at the optimum) is sampled with a seeded generator; each draw gives every
question's pool pass@K, and the interval is the predictive interval of the pass@K that
K samples per question would measure on these questions: a mixture over draws of normals
with mean :math:`\bar q` and the Bernoulli variance :math:`\sum_i q_i (1 - q_i) / N^2`
of the unsolved questions (measured and solved ones are known).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline
from scipy.optimize import minimize
from scipy.special import expit, logit, logsumexp, ndtr, xlogy

from ._estimator import FittedEstimator
from ._pool_pass import count_groups, pool_pass, smallest_k
from ._values import count_arrays, question_counts
from .coverage import CoverageForecast

__all__ = ["GModel", "LogitNormal", "LOGIT_BOUNDS", "natural_spline_basis"]

#: the rate grid spans logit(1e-12) .. logit(1 - 1e-9): its bottom is "never solved" for any feasible K
LOGIT_BOUNDS = (float(logit(1e-12)), float(logit(1.0 - 1e-9)))
_GRID = 320  # grid points (spacing ~0.14 in logit: finer than a pool of ~50 correct resolves)
_DRAWS = 200  # Laplace draws of the parameters behind every interval
_HESS_STEP = 1e-4
_LOG_SIGMA_BOUNDS = (-4.0, 3.0)  # search bounds of the logit-normal's log sigma


def natural_spline_basis(x, knots) -> np.ndarray:
    """The natural cubic spline basis on ``knots`` evaluated at ``x``: column k is the natural
    spline through the k-th unit vector, linear beyond the boundary knots.

    Examples
    --------
    >>> B = natural_spline_basis([-1.0, 0.0, 0.5, 3.0], [0.0, 1.0, 2.0])
    >>> B.sum(axis=1).round(12).tolist()  # the columns add up to the constant 1
    [1.0, 1.0, 1.0, 1.0]
    """
    x = np.asarray(x, dtype=float)
    knots = np.asarray(knots, dtype=float)
    spline = CubicSpline(knots, np.eye(len(knots)), bc_type="natural", axis=0)
    out = spline(np.clip(x, knots[0], knots[-1]))
    for edge, side in ((knots[0], x < knots[0]), (knots[-1], x > knots[-1])):
        out[side] = spline(edge)[None, :] + (x[side] - edge)[:, None] * spline(edge, 1)[None, :]
    return out


class _GridPopulation(FittedEstimator):
    """What both grid populations share: the data check, the likelihood matrix, the Laplace
    draws, forecasts, ``k_needed`` and ``predict``. Subclasses define the parameters
    (:meth:`_start`, :meth:`_log_g`, :meth:`_objective`) and set ``params_``."""

    fit_call: ClassVar[str] = "fit(n, c)"

    def __init__(self, *, grid_size: int = _GRID, draws: int = _DRAWS, seed: int = 0) -> None:
        self.grid_size = grid_size
        self.draws = draws
        self.seed = seed

    # ---- what a subclass defines ------------------------------------------------------------
    def _start(self) -> np.ndarray:
        raise NotImplementedError

    def _log_g(self, x: np.ndarray) -> np.ndarray:
        """Normalized log g on the grid for parameters ``x`` (shape (p,) or (S, p))."""
        raise NotImplementedError

    def _objective(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Penalized negative log-likelihood and its gradient."""
        raise NotImplementedError

    def _bounds(self) -> list[tuple[float | None, float | None]] | None:
        """Search bounds of the parameters (None: unbounded)."""
        return None

    # ---- fitting ----------------------------------------------------------------------------
    def fit(self, n, c) -> _GridPopulation:
        """Fit to ``c[i]`` correct samples out of ``n[i]`` for each question i (returns self)."""
        n, c = question_counts(type(self).__name__, n, c)
        self.u_ = np.linspace(*LOGIT_BOUNDS, self.grid_size)
        self.theta_ = expit(self.u_)
        self._set_counts(n, c)
        self._prepare(n)
        res = minimize(
            self._objective,
            self._start(),
            jac=True,
            method="L-BFGS-B",
            bounds=self._bounds(),
            options={"maxiter": 1000},
        )
        self.x_ = res.x
        self.loglik_ = float(self._loglik(self._log_g(res.x)))
        self.g_ = np.exp(self._log_g(res.x))
        self._draw_params(res.x)
        self.n_questions_ = len(c)
        self.solved_any_ = bool(c.sum() > 0)
        self.notes_ = []
        if c.sum() == 0:
            self.notes_.append("no correct sample in the data: pass@k beyond it cannot be forecast")
        reasons = [] if res.success else [f"L-BFGS-B stopped: {res.message}"]
        self.params_ = self._params(res.x)
        self._record_convergence(reasons, "ok")
        return self

    def _prepare(self, n: np.ndarray) -> None:
        """Anything the parameterization needs from the data (the spline's knots)."""

    def _set_counts(self, n: np.ndarray, c: np.ndarray) -> None:
        self.n_, self.c_ = n, c
        pairs = pd.DataFrame({"n": n, "c": c}).value_counts().reset_index()
        self._un, self._uc, self._uw = (pairs[col].to_numpy(float) for col in ("n", "c", "count"))
        self._logL = self._log_lik_rows(self._un, self._uc)  # (pairs, grid)

    def _log_lik_rows(self, n: np.ndarray, c: np.ndarray) -> np.ndarray:
        """log L_ij = c_i log theta_j + (n_i - c_i) log(1 - theta_j), one row per count pair."""
        return xlogy(c[:, None], self.theta_[None, :]) + xlogy((n - c)[:, None], 1.0 - self.theta_[None, :])

    def _loglik(self, log_g: np.ndarray) -> float:
        return float(self._uw @ logsumexp(self._logL + log_g[None, :], axis=1))

    def _posterior_rows(self, log_g: np.ndarray) -> np.ndarray:
        """Each count pair's posterior over the grid under ``log_g`` (pairs, grid)."""
        z = self._logL + log_g[None, :]
        return np.exp(z - logsumexp(z, axis=1, keepdims=True))

    def _draw_params(self, x: np.ndarray) -> None:
        """Laplace draws (seeded): N(x, H^-1), H the objective's Hessian by central differences."""
        p = len(x)
        hess = np.empty((p, p))
        for j in range(p):
            step = np.zeros(p)
            step[j] = _HESS_STEP
            hess[:, j] = (self._objective(x + step)[1] - self._objective(x - step)[1]) / (2 * _HESS_STEP)
        hess = (hess + hess.T) / 2.0
        basis = np.eye(p)
        null = self._null_direction()
        if null is not None:  # a shift that leaves g unchanged: no spread along it
            basis = np.linalg.svd(np.eye(p) - np.outer(null, null))[0][:, : p - 1]
        vals, rot = np.linalg.eigh(basis.T @ hess @ basis)
        vecs = basis @ rot
        vals = np.maximum(vals, 1e-6)  # a flat direction gets a wide (not infinite) spread
        rng = np.random.default_rng(self.seed)
        z = rng.standard_normal((self.draws, vecs.shape[1]))
        self.cov_ = (vecs / vals) @ vecs.T
        self.x_draws_ = x[None, :] + (z / np.sqrt(vals)) @ vecs.T
        self._log_g_draws = self._log_g(self.x_draws_)

    def _params(self, x: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def _null_direction(self) -> np.ndarray | None:
        """A unit direction of the parameters along which g does not change (None: none)."""
        return None

    def loglik(self, n, c) -> float:
        """Marginal log-likelihood (without binomial coefficients) of other counts under the fitted g."""
        return self.with_counts(n, c)._loglik(np.log(np.maximum(self.g_, 1e-300)))

    # ---- forecasts ----------------------------------------------------------------------------
    def with_counts(self, n, c) -> _GridPopulation:
        """The same fitted population, conditioned on other questions' counts (for oracles and
        for forecasting new questions from a population fitted elsewhere)."""
        self._check_fitted()
        n, c = count_arrays(n, c)
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other._set_counts(n, c)
        other.n_questions_ = len(c)
        return other

    def _chances(self, kq: np.ndarray, log_g: np.ndarray):
        """Per draw (rows of ``log_g``): each group's pass@K of its pool of K samples (the
        measured pass@K inside the pool; beyond it, 1 if solved, else the chance that K - n
        fresh samples solve it), the group weights, and which groups' values are known."""
        un, uc, uk, uw = count_groups(self.n_, self.c_, kq)
        log_l = self._log_lik_rows(un, uc)
        log_miss = np.log1p(-self.theta_)[None, :]

        def unsolved_miss(fresh: np.ndarray) -> np.ndarray:  # E[(1 - theta)^fresh | c of n] under each draw
            miss = np.exp(fresh[:, None] * log_miss)  # (groups, grid)
            out = np.empty((len(log_g), len(un)))
            for s, lg in enumerate(log_g):  # one draw at a time bounds memory at groups x grid
                z = log_l + lg[None, :]
                out[s] = (np.exp(z - logsumexp(z, axis=1, keepdims=True)) * miss).sum(axis=1)
            return out

        q = pool_pass(un, uc, uk, unsolved_miss)
        known = (uk <= un) | (uc > 0)  # measured, or solved already: no predictive spread
        return np.clip(q, 0.0, 1.0), uw, known

    def forecast(self, k, level: float = 0.9) -> CoverageForecast:
        """pass@K on the profiled questions: estimate and predictive interval at ``level``.

        ``k`` is one K for every question, or one per question (an array like ``n``). The
        estimate is the pass@K of a pool of K samples per question that holds the observed
        ones (:func:`fitting.coverage.BetaBinomialPosterior.forecast` says why): the measured
        pass@k inside the pools, continuous where they end and never decreasing in K. When
        the data the population was fitted to held no correct sample, a K beyond the pools
        gets NaN.
        """
        self._check_fitted()
        kq = np.broadcast_to(np.asarray(k, dtype=float), self.n_.shape)
        if np.any(kq < 1):
            raise ValueError(f"forecast: k must be >= 1, got {np.min(kq)}")
        k_out = float(kq[0]) if np.all(kq == kq[0]) else float(np.median(kq))
        if not self.solved_any_ and np.any(kq > self.n_):  # the fit saw no success: only the grid would speak
            return CoverageForecast(k_out, math.nan, math.nan, math.nan, level)
        estimate = self._estimate(kq)
        q, uw, known = self._chances(kq, self._log_g_draws)
        total = uw.sum()
        means = q @ uw / total
        bern = np.where(known[None, :], 0.0, q * (1.0 - q))
        sd = np.sqrt(np.maximum(bern @ uw / total**2, 1e-14))
        tail = (1.0 - level) / 2.0
        lo, hi = (_mixture_quantile(means, sd, p) for p in (tail, 1.0 - tail))
        floor = float(q[0, known] @ uw[known]) / total  # the known part: no measurement falls below it
        lo, hi = max(lo, floor), min(hi, floor + float(uw[~known].sum()) / total)
        return CoverageForecast(k_out, estimate, min(lo, estimate), max(hi, estimate), level)

    def _estimate(self, kq: np.ndarray) -> float:
        q_hat, uw, _ = self._chances(kq, self._log_g(self.x_)[None, :])
        return float(q_hat[0] @ uw / uw.sum())

    def predict(self, k) -> np.ndarray:
        """Expected pass@k of a NEW question from the fitted population, for each k >= 0."""
        self._check_fitted()
        k = np.asarray(k, dtype=float)
        miss = np.exp(k.ravel()[:, None] * np.log1p(-self.theta_)[None, :])
        return (1.0 - miss @ self.g_).reshape(k.shape)

    def k_needed(self, target: float, level: float = 0.9, k_cap: float = 1e15) -> CoverageForecast:
        """Samples per question K at which pass@K of the profiled questions reaches ``target``:
        the smallest whole K at which :meth:`forecast`'s estimate reaches it (the measured
        pass@k inside the pools), with the interval over the parameter draws of the K at which
        the questions' expected true pass@K reaches it, widened to hold the estimate (inf: not
        by ``k_cap``)."""
        self._check_fitted()
        if not 0.0 < target < 1.0:
            raise ValueError(f"k_needed: target must be in (0, 1), got {target}")
        if not self.solved_any_:  # the fit saw no success: only the grid would speak
            return CoverageForecast(target, math.nan, math.nan, math.nan, level)
        est = smallest_k(lambda k: self._estimate(np.full(self.n_.shape, float(k))), target, k_cap)
        rows = [self._posterior_rows(lg) for lg in self._log_g_draws]
        uw = self._uw / self._uw.sum()
        log_miss = np.log1p(-self.theta_)

        def curve(log_k: np.ndarray) -> np.ndarray:  # expected true pass@exp(log_k[s]) under draw s
            miss = np.exp(np.exp(log_k)[:, None] * log_miss[None, :])
            return np.array([1.0 - uw @ (w @ m) for w, m in zip(rows, miss, strict=True)])

        cap = math.log(k_cap)
        top = curve(np.full(len(rows), cap))
        lo_k, hi_k = np.zeros(len(rows)), np.full(len(rows), cap)
        for _ in range(50):  # bisection in log K, every draw at once
            mid = (lo_k + hi_k) / 2.0
            below = curve(mid) < target
            lo_k, hi_k = np.where(below, mid, lo_k), np.where(below, hi_k, mid)
        k_each = np.where(top >= target, np.exp(hi_k), np.inf)
        tail = (1.0 - level) / 2.0
        lo, hi = np.quantile(k_each, [tail, 1.0 - tail], method="inverted_cdf")
        return CoverageForecast(target, est, min(float(lo), est), max(float(hi), est), level)

    # ---- reports ------------------------------------------------------------------------------
    def _summary_fields(self) -> dict[str, Any]:
        return {"loglik": self.loglik_, "n_questions": self.n_questions_, "notes": list(self.notes_)}

    def _report_notes(self, params: dict[str, float]) -> list[str]:
        mass = float(self.g_[self.theta_ < 1e-6].sum())
        return [
            f"  {self.n_questions_} questions, log-likelihood {self.loglik_:.6g}; "
            f"mass below a rate of 1e-6: {mass:.3g}",
            *(f"  note: {n}" for n in self.notes_),
        ]


class GModel(_GridPopulation):
    r"""Efron's g-modeling of per-question success rates, forecasting pass@K for any K.

    .. math:: g_j \propto \exp\big((Q\alpha)_j\big),\qquad
              \hat\alpha = \arg\max_\alpha \sum_i \log \sum_j g_j L_{ij} - \mathrm{pen}(\alpha)

    Q is the natural cubic spline basis with ``df`` knots evenly spaced in logit rate between
    logit(1/n) and logit(1 - 1/n) (n the median pool): linear beyond them, so the left tail
    of g is a power law in the rate. With ``carrier="beta"`` Q also holds log(theta) and
    log(1 - theta) (unpenalized): g is a beta times a smooth deviation, and a strong penalty
    gives back the maximum-likelihood beta.

    Parameters
    ----------
    df : int
        Knots of the spline (its degrees of freedom).
    c0 : float
        Weight of the penalty on the spline's coefficients (its knot values).
    penalty : {"curvature", "efron"}
        ``curvature``: :math:`\tfrac{c_0}{2}\lVert D_2\alpha\rVert^2` (second differences of the
        knot values: toward a log density linear in logit rate, a power law); ``efron``:
        :math:`c_0\lVert\alpha\rVert` (Efron's choice: toward the flat g, or the beta carrier).
    carrier : {"flat", "beta"}
        What the spline deviates from (see above).
    grid_size, draws, seed
        Grid points, Laplace draws behind the intervals and their seed.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.beta(0.4, 3.0, size=300)
    >>> model = GModel().fit(np.full(300, 16), rng.binomial(16, p))
    >>> truth = float(np.mean(1 - (1 - p) ** 1600))
    >>> f = model.forecast(1600)
    >>> abs(f.estimate - truth) < 0.05, f.lo <= f.estimate <= f.hi
    (True, True)
    """

    name = "g_model"
    formula_text = (
        "pass@K = mean_i sum_j w_ij [1 - (1 - theta_j)^K], g = exp(spline(logit theta)), penalized ML"
    )

    def __init__(
        self,
        *,
        df: int = 5,
        c0: float = 1.0,
        penalty: str = "curvature",
        carrier: str = "flat",
        grid_size: int = _GRID,
        draws: int = _DRAWS,
        seed: int = 0,
    ) -> None:
        super().__init__(grid_size=grid_size, draws=draws, seed=seed)
        self.df = df
        self.c0 = c0
        self.penalty = penalty
        self.carrier = carrier

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        beta = ("a", "b") if self.carrier == "beta" else ()
        return (*beta, *(f"alpha{j}" for j in range(self.df)))

    def _prepare(self, n: np.ndarray) -> None:
        if self.df < 3:
            raise ValueError(f"GModel: df must be >= 3, got {self.df}")
        if self.penalty not in ("curvature", "efron") or self.carrier not in ("flat", "beta"):
            raise ValueError(
                "GModel: penalty must be 'curvature' or 'efron' and carrier 'flat' or 'beta', "
                f"got {self.penalty!r} and {self.carrier!r}"
            )
        edge = float(logit(1.0 / max(float(np.median(n)), 2.0)))
        self.knots_ = np.linspace(edge, -edge, self.df) if edge < 0 else np.linspace(-1.0, 1.0, self.df)
        q = natural_spline_basis(self.u_, self.knots_)
        if (
            self.carrier == "beta"
        ):  # log g = a log theta + b log(1 - theta) + spline: a beta times a smooth deviation
            q = np.column_stack([np.log(self.theta_), np.log1p(-self.theta_), q])
        self._Q = q - q.mean(axis=0, keepdims=True)  # centred columns: alpha = 0 is the flat g
        self._free = 2 if self.carrier == "beta" else 0  # leading coefficients left unpenalized
        self._D2 = np.diff(np.eye(self.df), 2, axis=0)  # second differences of the knot values

    def _start(self) -> np.ndarray:
        return np.zeros(self.df + self._free)

    def _null_direction(self) -> np.ndarray:
        d = np.zeros(self.df + self._free)
        d[self._free :] = 1.0 / math.sqrt(self.df)  # the spline's columns add up to a constant
        return d

    def _log_g(self, x: np.ndarray) -> np.ndarray:
        eta = np.asarray(x) @ self._Q.T
        return eta - logsumexp(eta, axis=-1, keepdims=True)

    def _objective(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        log_g = self._log_g(x)
        z = self._logL + log_g[None, :]
        lse = logsumexp(z, axis=1, keepdims=True)
        post = np.exp(z - lse)  # (pairs, grid)
        # d log f_i / d alpha = Q^T (post_i - g)
        grad = -self._Q.T @ (self._uw @ post - self._uw.sum() * np.exp(log_g))
        nll = -float(self._uw @ lse[:, 0])
        s = x[self._free :]
        pen = np.zeros_like(x)
        if self.penalty == "efron":  # c0 ||alpha||: toward a g flat in logit rate (or the beta carrier)
            norm = math.sqrt(float(s @ s) + 1e-10)
            pen[self._free :] = self.c0 * s / norm
            return nll + self.c0 * norm, grad + pen
        d2 = self._D2 @ s  # c0 ||D2 alpha||^2 / 2: toward log g linear in logit rate (a power law)
        pen[self._free :] = self.c0 * (self._D2.T @ d2)
        return nll + 0.5 * self.c0 * float(d2 @ d2), grad + pen

    def _params(self, x: np.ndarray) -> dict[str, float]:
        return {name: float(v) for name, v in zip(self.param_names, x, strict=True)}

    def _summary_fields(self) -> dict[str, Any]:
        return super()._summary_fields() | {"knots_logit": self.knots_.tolist(), "c0": self.c0}


class LogitNormal(_GridPopulation):
    r"""Per-question success rates with :math:`\mathrm{logit}\,p \sim N(\mu, \sigma^2)`,
    discretized on the rate grid, fitted by maximum marginal likelihood.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> p = 1 / (1 + np.exp(-rng.normal(-4.0, 1.5, size=400)))
    >>> model = LogitNormal().fit(np.full(400, 50), rng.binomial(50, p))
    >>> abs(model.params_["mu"] + 4.0) < 0.4, abs(model.params_["sigma"] - 1.5) < 0.4
    (True, True)
    """

    name = "logit_normal"
    param_names = ("mu", "sigma")
    formula_text = "pass@K = mean_i sum_j w_ij [1 - (1 - theta_j)^K], logit theta ~ N(mu, sigma^2)"

    def _start(self) -> np.ndarray:
        rate = (self.c_ + 0.5) / (self.n_ + 1.0)
        z = logit(rate)
        return np.array([float(np.mean(z)), math.log(max(float(np.std(z)), 0.3))])

    def _log_g(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        mu = np.clip(x[..., 0:1], *LOGIT_BOUNDS)  # Laplace draws may step past the search bounds
        log_s = np.clip(x[..., 1:2], *_LOG_SIGMA_BOUNDS)
        lg = -0.5 * ((self.u_ - mu) / np.exp(log_s)) ** 2
        return lg - logsumexp(lg, axis=-1, keepdims=True)

    def _nll(self, x: np.ndarray) -> float:
        return -self._loglik(self._log_g(x))

    def _bounds(self) -> list[tuple[float | None, float | None]]:
        return [LOGIT_BOUNDS, _LOG_SIGMA_BOUNDS]

    def _objective(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        f = self._nll(x)
        grad = np.empty(2)
        for j in range(2):  # two parameters: central differences are cheap and accurate enough
            step = np.zeros(2)
            step[j] = 1e-5
            grad[j] = (self._nll(x + step) - self._nll(x - step)) / 2e-5
        return f, grad

    def _params(self, x: np.ndarray) -> dict[str, float]:
        return {"mu": float(x[0]), "sigma": float(math.exp(x[1]))}


def _mixture_quantile(means: np.ndarray, sd: np.ndarray, p: float) -> float:
    """The p-quantile in [0, 1] of an equal-weight mixture of normals (bisection, to 1e-6)."""
    lo, hi = 0.0, 1.0
    for _ in range(22):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if float(np.mean(ndtr((mid - means) / sd))) < p else (lo, mid)
    return (lo + hi) / 2.0
