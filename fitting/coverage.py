r"""Coverage far beyond the sampled k, from per-question counts (Bayesian beta-binomial).

pass@k at large k is governed by the per-question success rates, above all by how many
questions have a tiny rate (Levi 2024, "A simple model of inference scaling laws";
Schaeffer et al. 2025, "How do large language monkeys get their power (laws)?"). With
:math:`p_i \sim \mathrm{Beta}(a, b)` the counts are beta-binomial, and given question i's
:math:`c_i` correct of :math:`n_i`, its chance to be solved by K fresh samples is

.. math:: q_i(K) = 1 - \frac{B(a + c_i,\ b + n_i - c_i + K)}{B(a + c_i,\ b + n_i - c_i)}.

Point estimates of (a, b) are not enough far out: with a few samples per question the data
pin down the mean success rate but hardly the tail exponent ``a``, and the forecast at 100x
the sampled k moves by tens of points across the values of ``a`` the data allow. So
:class:`BetaBinomialPosterior` keeps the whole posterior of (a, b): a grid over
:math:`(\log a,\ \mathrm{logit}\ \mu)`, :math:`\mu = a / (a + b)`, under a flat prior on that
box (:data:`LOG_A_BOUNDS`, :data:`MU_BOUNDS`), refined around the likelihood's mass. A
forecast averages over it; its interval is the posterior interval of the pass@K of the
profiled questions (uncertainty in (a, b) and in each question's own rate, combined per
grid point with a normal approximation over questions).

Limits, said plainly: a beta puts no mass at p = 0, so questions that no number of samples
would solve make very-far forecasts optimistic; and when the data hold no correct sample at
all, nothing can be forecast (the records say so instead of guessing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import betaln, expit, logit, ndtr

from ._fitutil import json_safe
from ._laws_base import NotFittedError
from ._pool_pass import count_groups, pool_pass, smallest_k
from ._values import question_counts

__all__ = [
    "BetaBinomialPosterior",
    "CoverageForecast",
    "LOG_A_BOUNDS",
    "MU_BOUNDS",
    "TAIL_GRID",
    "TAIL_SPREADS",
    "shared_tail_prior",
    "tail_evidence",
]

#: prior box of log a (the Beta's left shape: pass@k ~ 1 - C k^-a far out)
LOG_A_BOUNDS = (math.log(0.005), math.log(50.0))
#: prior box of the mean success rate mu = a / (a + b)
MU_BOUNDS = (1e-9, 1.0 - 1e-9)
_GRID = 48  # points per axis of each refinement pass
_PASSES = 3  # coarse-to-fine passes over the posterior's mass
_DROP = 18.0  # log-likelihood below the maximum at which the grid stops following the mass


@dataclass(frozen=True)
class CoverageForecast:
    """A forecast of pass@K on the profiled questions: estimate and interval at ``level``."""

    k: float
    estimate: float
    lo: float
    hi: float
    level: float


class BetaBinomialPosterior:
    r"""Per-question success rates :math:`p_i \sim \mathrm{Beta}(a, b)`, with (a, b) integrated
    over their posterior given the counts, forecasting pass@K for any K.

    Parameters
    ----------
    grid_size : int
        Grid points per axis of each coarse-to-fine pass.
    log_a_prior : callable or None
        Log prior density of log a (added to the flat prior box), e.g. the evidence of other
        curves about a shared tail exponent (:func:`shared_tail_prior`); None: flat.

    Attributes (after ``fit``)
    --------------------------
    log_a_, logit_mu_ : ndarray
        The final grid axes.
    weights_ : ndarray of shape (len(log_a_), len(logit_mu_))
        Posterior probabilities of the grid points.
    params_ : dict
        Posterior means of ``a``, ``b``, ``mu`` (for reports).
    notes_ : list of str
        Anything a reader should know (posterior piled against its prior box, no correct sample).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.beta(0.4, 3.0, size=300)
    >>> model = BetaBinomialPosterior().fit(np.full(300, 16), rng.binomial(16, p))
    >>> truth = float(np.mean(1 - (1 - p) ** 1600))
    >>> f = model.forecast(1600)
    >>> f.lo <= truth <= f.hi, abs(f.estimate - truth) < 0.05
    (True, True)
    """

    def __init__(
        self, *, grid_size: int = _GRID, log_a_prior: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        self.grid_size = grid_size
        self.log_a_prior = log_a_prior

    # ---- fitting ---------------------------------------------------------------------------
    def fit(self, n, c) -> BetaBinomialPosterior:
        """Condition on ``c[i]`` correct samples out of ``n[i]`` for each question i (returns self)."""
        n, c = question_counts("BetaBinomialPosterior", n, c)
        self.n_, self.c_ = n, c
        pairs = pd.DataFrame({"n": n, "c": c}).value_counts().reset_index()
        un, uc, uw = (pairs[col].to_numpy(float) for col in ("n", "c", "count"))
        self.notes_ = []
        if c.sum() == 0:
            self.notes_.append("no correct sample in the data: pass@k beyond it cannot be forecast")
        box = (*LOG_A_BOUNDS, logit(MU_BOUNDS[0]), logit(MU_BOUNDS[1]))
        for _ in range(_PASSES):
            la = np.linspace(box[0], box[1], self.grid_size)
            lm = np.linspace(box[2], box[3], self.grid_size)
            loglik = _loglik(la, lm, un, uc, uw)
            if self.log_a_prior is not None:
                loglik = loglik + np.asarray(self.log_a_prior(la), dtype=float)[:, None]
            box = _mass_box(la, lm, loglik)
        w = np.exp(loglik - loglik.max())
        self.log_a_, self.logit_mu_, self.weights_ = la, lm, w / w.sum()
        self._pairs = (un, uc, uw)
        self._keep = self.weights_.ravel() > 1e-12  # grid points carrying posterior mass
        a, b = self._ab()
        self.params_ = {
            "a": float((self.weights_ * a).sum()),
            "b": float((self.weights_ * b).sum()),
            "mu": float((self.weights_ * expit(lm)[None, :]).sum()),
        }
        edge_a = self.weights_[[0, -1], :].sum(axis=1)
        for side, mass, bound in zip(("lower", "upper"), edge_a, np.exp(LOG_A_BOUNDS), strict=True):
            if mass > 0.05:
                self.notes_.append(
                    f"{mass:.0%} of the posterior of a lies at its {side} prior bound {bound:g}: "
                    "the data barely constrain the tail, so the interval leans on the prior box"
                )
        self.n_questions_ = len(c)
        return self

    def _check_fitted(self) -> None:
        if getattr(self, "weights_", None) is None:
            raise NotFittedError("BetaBinomialPosterior is not fitted yet: call fit(n, c) first")

    def _ab(self) -> tuple[np.ndarray, np.ndarray]:
        a = np.exp(self.log_a_)[:, None] * np.ones((1, len(self.logit_mu_)))
        mu = expit(self.logit_mu_)[None, :]
        return a, a * (1.0 - mu) / mu

    # ---- forecasts ---------------------------------------------------------------------------
    def forecast(self, k, level: float = 0.9) -> CoverageForecast:
        """pass@K on the profiled questions: an estimate that continues the measured pass@k,
        and an interval.

        ``k`` is one K for every question, or one per question (an array like ``n``). The
        estimate is the pass@K of a pool of K samples per question (:func:`pool_pass_at_k`):
        where a question's pool covers K, its unbiased pass@K (Chen et al. 2021); beyond it,
        the pool is the observed samples plus K - n fresh ones, so a question already solved
        counts 1 and an unsolved one its posterior chance to be solved by the K - n fresh
        samples. This is the expected value of what K samples per question would measure,
        given what was measured: it equals the measured pass@k at every k inside the pools,
        is continuous where the pools end and never decreases in K. (The posterior mean of
        each question's true pass@K, the other candidate, differs from the measured unbiased
        pass@k where they meet, so a forecast joined to the measured curve would jump down
        right past the pool.) The interval is the estimate's mixture over the posterior of
        (a, b) with the posterior spread of each question's true pass@K (a normal
        approximation over questions): it is not zero-wide inside the pools, where the
        questions' true pass@K is still uncertain. Without a single correct sample in the
        data, a K beyond the pools gets NaN: only the prior box would speak.
        """
        self._check_fitted()
        kq = np.broadcast_to(np.asarray(k, dtype=float), self.n_.shape)
        if np.any(kq < 1):
            raise ValueError(f"forecast: k must be >= 1, got {np.min(kq)}")
        k_out = float(kq[0]) if np.all(kq == kq[0]) else float(np.median(kq))
        if self.c_.sum() == 0 and np.any(kq > self.n_):  # only the prior would speak: say nothing
            return CoverageForecast(k_out, math.nan, math.nan, math.nan, level)
        means, variances, gw = self._moments(*count_groups(self.n_, self.c_, kq))
        estimate = float((gw * means).sum())
        sd = np.sqrt(np.maximum(variances, 1e-14))
        tail = (1.0 - level) / 2.0
        lo, hi = (_mixture_quantile(gw, means, sd, p) for p in (tail, 1.0 - tail))
        return CoverageForecast(k_out, estimate, min(lo, estimate), max(hi, estimate), level)

    def _moments(self, un, uc, uk, uw):
        """Per kept grid point: the mean over questions of the pool's pass@K (see
        :meth:`forecast`) and the variance of that mean; and the grid weights."""
        a, b = (v.ravel()[self._keep][:, None] for v in self._ab())
        base = betaln(a + uc, b + un - uc)
        m1 = np.exp(betaln(a + uc, b + un - uc + uk) - base)  # E[(1-p)^K | c of n]
        m2 = np.exp(betaln(a + uc, b + un - uc + 2.0 * uk) - base)
        v = np.maximum(m2 - m1**2, 0.0)  # posterior variance of the question's true pass@K
        q = pool_pass(un, uc, uk, lambda fresh: np.exp(betaln(a, b + un + fresh) - betaln(a, b + un)))
        total = uw.sum()
        means = (q * uw).sum(axis=1) / total
        variances = (v * uw).sum(axis=1) / total**2
        return means, variances, self._grid_weights()

    def predict(self, k) -> np.ndarray:
        """Expected pass@k of a NEW question from the same population (posterior mean of
        :math:`1 - B(a, b + k) / B(a, b)`), for each k >= 0."""
        self._check_fitted()
        k = np.asarray(k, dtype=float)
        a, b = (v.ravel()[:, None] for v in self._ab())
        miss = np.exp(betaln(a, b + k.ravel()[None, :]) - betaln(a, b))
        return ((1.0 - miss) * self.weights_.ravel()[:, None]).sum(axis=0).reshape(k.shape)

    def k_needed(self, target: float, level: float = 0.9, k_cap: float = 1e15) -> CoverageForecast:
        """Samples per question K at which pass@K of the profiled questions reaches ``target``.

        The estimate is the smallest whole K at which :meth:`forecast`'s estimate reaches it
        (the measured pass@k inside the pools); the interval is that of the K at which the
        questions' expected true pass@K reaches it over the posterior of (a, b), widened to
        hold the estimate. inf where ``target`` is not reached by ``k_cap``."""
        self._check_fitted()
        if not 0.0 < target < 1.0:
            raise ValueError(f"k_needed: target must be in (0, 1), got {target}")
        if self.c_.sum() == 0:  # only the prior would speak beyond the pools
            return CoverageForecast(target, math.nan, math.nan, math.nan, level)
        un, uc, uw = self._pairs
        estimate = smallest_k(
            lambda k: float(self._grid_weights() @ self._moments(un, uc, np.full_like(un, k), uw)[0]),
            target,
            k_cap,
        )
        gw = self._grid_weights()
        cap = math.log(k_cap)
        top = self._pass_each(np.full(len(gw), cap))
        lo_k, hi_k = np.zeros(len(gw)), np.full(len(gw), cap)
        for _ in range(50):  # bisection in log K, every grid point at once
            mid = (lo_k + hi_k) / 2.0
            below = self._pass_each(mid) < target
            lo_k, hi_k = np.where(below, mid, lo_k), np.where(below, hi_k, mid)
        k_each = np.where(top >= target, np.exp(hi_k), np.inf)
        order = np.argsort(k_each)
        cum = np.cumsum(gw[order])
        tail = (1.0 - level) / 2.0
        lo = float(k_each[order][min(np.searchsorted(cum, tail), len(cum) - 1)])
        hi = float(k_each[order][min(np.searchsorted(cum, 1.0 - tail), len(cum) - 1)])
        return CoverageForecast(target, estimate, min(lo, estimate), max(hi, estimate), level)

    def _grid_weights(self) -> np.ndarray:
        w = self.weights_.ravel()[self._keep]
        return w / w.sum()

    def _pass_each(self, log_k: np.ndarray) -> np.ndarray:
        """Mean of q_i(K) over the questions at each kept grid point g, with K = exp(log_k[g])."""
        un, uc, uw = self._pairs
        a, b = (v.ravel()[self._keep][:, None] for v in self._ab())
        k = np.exp(log_k)[:, None]
        base = betaln(a + uc, b + un - uc)
        q = 1.0 - np.exp(betaln(a + uc, b + un - uc + k) - base)
        return (q * uw).sum(axis=1) / uw.sum()

    # ---- reports -------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """JSON-safe description of the fit."""
        self._check_fitted()
        return json_safe(
            {
                "law": "beta_binomial_posterior",
                "formula": "pass@K = mean_i [1 - B(a + c_i, b + n_i - c_i + K) / B(a + c_i, b + n_i - c_i)], "
                "(a, b) integrated over their posterior",
                "params": dict(self.params_),
                "n_questions": self.n_questions_,
                "notes": list(self.notes_),
            }
        )

    def __repr__(self) -> str:
        p = getattr(self, "params_", None)
        return (
            f"BetaBinomialPosterior(a~{p['a']:.3g}, mu~{p['mu']:.3g})"
            if p
            else "BetaBinomialPosterior(unfitted)"
        )


#: the grid of log a on which the evidence about the tail exponent is tabulated
TAIL_GRID = np.linspace(*LOG_A_BOUNDS, 96)


def tail_evidence(n, c) -> np.ndarray:
    """The counts' marginal log-likelihood of each log a in :data:`TAIL_GRID` (the mean rate
    integrated out under its flat prior on the logit scale): what these questions say about
    the beta's tail exponent ``a``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> c = rng.binomial(50, rng.beta(0.3, 20.0, size=2000))
    >>> float(np.exp(TAIL_GRID[np.argmax(tail_evidence(np.full(2000, 50), c))])).__round__(1)
    0.3
    """
    c = np.asarray(c, dtype=float)
    n = np.broadcast_to(np.asarray(n, dtype=float), c.shape)
    pairs = pd.DataFrame({"n": n, "c": c}).value_counts().reset_index()
    un, uc, uw = (pairs[col].to_numpy(float) for col in ("n", "c", "count"))
    lm = np.linspace(logit(MU_BOUNDS[0]), logit(MU_BOUNDS[1]), 4 * _GRID)
    loglik = _loglik(TAIL_GRID, lm, un, uc, uw)
    peak = loglik.max(axis=1, keepdims=True)
    return (peak + np.log(np.exp(loglik - peak).mean(axis=1, keepdims=True)))[:, 0]


#: spreads of log a across curves the hierarchical prior weighs (uniformly): from nearly one shared tail to unrelated
TAIL_SPREADS = np.array([0.1, 0.2, 0.4, 0.8, 1.6, 3.2])


def shared_tail_prior(evidence: Sequence[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """A log prior of log a for one curve from other curves' :func:`tail_evidence`: a
    hierarchical model in which each curve's log a is drawn from N(h, tau^2).

    (h, tau) get a flat prior on a grid (h over :data:`TAIL_GRID`, tau over
    :data:`TAIL_SPREADS`) and their posterior from the other curves' evidence; the prior of
    this curve's log a is the predictive density, mixed over that posterior, interpolated
    between the points of :data:`TAIL_GRID`. When the other curves agree on their tails, the
    prior is as narrow as their agreement; when they disagree, it stays wide. With no other
    curve it is flat. With it, :class:`BetaBinomialPosterior` borrows strength about the tail
    that no curve pins down alone (each keeps its own mean rate).
    """
    if not len(evidence):
        return lambda log_a: np.zeros(np.shape(log_a))
    ev = np.asarray(evidence, dtype=float)
    ev = ev - ev.max(axis=1, keepdims=True)  # (curves, grid)
    hs = TAIL_GRID[::2]
    z = (TAIL_GRID[None, None, :] - hs[:, None, None]) / TAIL_SPREADS[None, :, None]
    log_k = -0.5 * z**2
    log_k = log_k - np.log(np.exp(log_k).sum(axis=2, keepdims=True))  # N(h, tau) on the grid, (h, tau, grid)
    peak = ev.max()
    lik = np.exp(ev - peak)  # (curves, grid)
    per_curve = np.log(np.maximum(np.einsum("cg,htg->cht", lik, np.exp(log_k)), 1e-300))
    post = per_curve.sum(axis=0)
    post = np.exp(post - post.max())
    post /= post.sum()
    prior = np.einsum("ht,htg->g", post, np.exp(log_k))
    log_prior = np.log(np.maximum(prior, 1e-300))
    log_prior -= log_prior.max()
    return lambda log_a: np.interp(log_a, TAIL_GRID, log_prior)


def _mixture_quantile(w: np.ndarray, means: np.ndarray, sd: np.ndarray, p: float) -> float:
    """The p-quantile in [0, 1] of a mixture of normals (bisection on its CDF, to 1e-6)."""
    lo, hi = 0.0, 1.0
    for _ in range(22):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if float(w @ ndtr((mid - means) / sd)) < p else (lo, mid)
    return (lo + hi) / 2.0


def _loglik(la: np.ndarray, lm: np.ndarray, n, c, w) -> np.ndarray:
    """Beta-binomial log-likelihood (without the binomial coefficients) on a (log a, logit mu) grid."""
    mu = expit(lm)[None, :, None]
    out = np.empty((len(la), len(lm)))
    for i, log_a in enumerate(la):  # one row at a time bounds memory at len(lm) x questions
        a = math.exp(log_a)
        b = a * (1.0 - mu) / mu
        out[i] = (w * (betaln(a + c, b + n - c) - betaln(a, b)))[0].sum(axis=-1)
    return out


def _mass_box(la: np.ndarray, lm: np.ndarray, loglik: np.ndarray) -> tuple[float, float, float, float]:
    """The grid box holding the likelihood's mass, one cell wider on every side, inside the prior box."""
    i, j = np.nonzero(loglik > loglik.max() - _DROP)
    da, dm = la[1] - la[0], lm[1] - lm[0]
    return (
        max(LOG_A_BOUNDS[0], la[i.min()] - da),
        min(LOG_A_BOUNDS[1], la[i.max()] + da),
        max(logit(MU_BOUNDS[0]), lm[j.min()] - dm),
        min(logit(MU_BOUNDS[1]), lm[j.max()] + dm),
    )
