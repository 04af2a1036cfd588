"""The per-question view of repeated sampling: question difficulties follow a Beta law.

Each question i has its own success probability :math:`p_i`; if the :math:`p_i` follow
:math:`\\mathrm{Beta}(a, b)`, the correct counts :math:`c_i` out of :math:`n_i` samples are
beta-binomial, and the expected coverage after k samples has a closed form (Levi 2024,
"A simple model of inference scaling laws"; Schaeffer et al. 2025, "How do large language
monkeys get their power (laws)?"):

.. math:: \\mathrm{pass@}k = 1 - \\mathbb{E}[(1 - p)^k] = 1 - \\frac{B(a, b + k)}{B(a, b)}

For large k this behaves like :math:`1 - \\frac{\\Gamma(a+b)}{\\Gamma(b)} k^{-a}`: a power law
whose exponent is the Beta's left shape ``a`` (how much mass sits near p = 0), which is why
fitting (a, b) on a few samples per question forecasts coverage far beyond them.
Limitation: a Beta puts no mass at exactly p = 0, so questions the model can never solve
make the forecast too optimistic at very large k.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.optimize import brentq, minimize
from scipy.special import betaln, digamma
from scipy.stats import betabinom

from ._estimator import FittedEstimator, UnreachableTargetWarning
from ._values import question_counts

__all__ = ["BetaBinomial", "beta_pass_at_k"]

_LOG_BOUNDS = (np.log(1e-4), np.log(1e4))


def beta_pass_at_k(k, a: float, b: float) -> np.ndarray:
    r"""Expected pass@k when per-question success probabilities are Beta(a, b).

    .. math:: 1 - B(a, b + k) / B(a, b)

    Examples
    --------
    >>> round(float(beta_pass_at_k(1, 2.0, 3.0)), 6)  # pass@1 = mean = a / (a + b)
    0.4
    """
    k = np.asarray(k, dtype=float)
    return -np.expm1(betaln(a, b + k) - betaln(a, b))


class BetaBinomial(FittedEstimator):
    r"""Beta-binomial model of per-question correct counts, forecasting pass@k for any k.

    .. math:: c_i \sim \mathrm{BetaBinomial}(n_i, a, b),\qquad
              \mathrm{pass@}k = 1 - B(a, b + k) / B(a, b)

    Fitted by maximum likelihood (``scipy.stats.betabinom``) over ``(log a, log b)`` with
    L-BFGS-B and the analytic (digamma) gradient, started from the method of moments.

    Parameters
    ----------
    max_iter : int
        Iteration budget of L-BFGS-B.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.beta(0.5, 2.0, size=2000)
    >>> law = BetaBinomial().fit(np.full(2000, 32), rng.binomial(32, p))
    >>> abs(law.params_["a"] - 0.5) < 0.05, abs(law.params_["b"] - 2.0) < 0.2
    (True, True)
    """

    name = "beta_binomial"
    param_names = ("a", "b")
    formula_text = "pass@k = 1 - B(a, b + k) / B(a, b)"
    fit_call = "fit(n, c)"

    def __init__(self, *, max_iter: int = 1000) -> None:
        self.max_iter = max_iter

    def fit(self, n, c) -> BetaBinomial:
        """Fit to ``c[i]`` correct samples out of ``n[i]`` for each question i (returns self)."""
        n, c = question_counts("BetaBinomial", n, c)

        def nll(theta):
            a, b = np.exp(theta)
            ll = betabinom.logpmf(c, n, a, b).sum()
            da = digamma(c + a) - digamma(n + a + b) - digamma(a) + digamma(a + b)
            db = digamma(n - c + b) - digamma(n + a + b) - digamma(b) + digamma(a + b)
            return -ll, -np.array([da.sum() * a, db.sum() * b])

        p = c / n
        mean = float(np.clip(p.mean(), 1e-3, 1 - 1e-3))
        var = float(p.var())
        # method of moments, allowing for the binomial noise inside var(c/n)
        inner = max(var - mean * (1 - mean) * float(np.mean(1.0 / n)), 1e-4)
        total = float(np.clip(mean * (1 - mean) / inner - 1.0, 1e-2, 1e3))
        theta0 = np.clip(np.log([mean * total, (1 - mean) * total]), *_LOG_BOUNDS)
        res = minimize(
            nll,
            theta0,
            jac=True,
            method="L-BFGS-B",
            bounds=[_LOG_BOUNDS] * 2,
            options={"maxiter": self.max_iter},
        )
        a, b = np.exp(res.x)
        self.params_ = {"a": float(a), "b": float(b)}
        self.loglik_ = float(-res.fun)
        self.aic_ = float(2 * 2 - 2 * self.loglik_)
        self.n_questions_ = len(c)
        self.samples_per_question_ = float(n.mean())
        reasons = [] if res.success else [f"L-BFGS-B stopped: {res.message}"]
        self.at_bounds_ = []
        for name, v in zip(("a", "b"), res.x, strict=True):
            for side, bound in (("lower", _LOG_BOUNDS[0]), ("upper", _LOG_BOUNDS[1])):
                if abs(v - bound) < 1e-6:
                    self.at_bounds_.append((name, side, float(np.exp(bound))))
                    reasons.append(f"{name} stuck at its {side} search bound {np.exp(bound):g}")
        if np.all(c == 0) or np.all(c == n):
            reasons.append("every question was all-wrong or all-right: the Beta shape is not identifiable")
        self._record_convergence(reasons, f"ok ({res.message})")
        return self

    def predict(self, k) -> np.ndarray:
        """Expected pass@k (coverage) for each k >= 0 (k may be non-integer)."""
        p = self._check_fitted()
        k = np.asarray(k, dtype=float)
        if np.any(k < 0):
            raise ValueError("BetaBinomial.predict: k must be non-negative")
        return beta_pass_at_k(k, p["a"], p["b"])

    def inverse(self, target) -> np.ndarray:
        """Samples k needed for expected coverage ``target`` (inf for target >= 1, 0 for target <= 0)."""
        self._check_fitted()
        t = np.atleast_1d(np.asarray(target, dtype=float))
        out = np.empty_like(t)
        for i, ti in enumerate(t):
            if ti >= 1.0:
                out[i] = np.inf
            elif ti <= 0.0:
                out[i] = 0.0
            else:
                hi = 1.0
                while float(self.predict(hi)) < ti:
                    hi *= 2.0
                out[i] = brentq(lambda k, ti=ti: float(self.predict(k)) - ti, 0.0, hi, xtol=1e-12, rtol=1e-12)
        if np.any(t >= 1.0):
            warnings.warn(
                "coverage 1 is only reached in the limit k -> inf (returned inf)",
                UnreachableTargetWarning,
                stacklevel=2,
            )
        return out.reshape(np.shape(target))

    def asymptote(self) -> float:
        self._check_fitted()
        return 1.0

    def _report_lines(self, params: dict[str, float]) -> list[str]:
        a, b = params["a"], params["b"]
        return [
            f"  {self.n_questions_} questions, {self.samples_per_question_:.4g} samples each on average",
            f"  a = {a:.6g}   (tail exponent: pass@k ~ 1 - const * k**-a)",
            f"  b = {b:.6g}",
            f"  pass@1 = {a / (a + b):.4g}, log-likelihood {self.loglik_:.6g}, AIC {self.aic_:.6g}",
        ]

    def _summary_fields(self) -> dict[str, Any]:
        return {"loglik": self.loglik_, "aic": self.aic_, "n_questions": self.n_questions_}
