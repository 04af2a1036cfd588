"""Scaling laws of accuracy versus compute: one small class per curve family.

Each law is an estimator (see :class:`fitting._laws_base.Law` for the shared settings,
the robust multi-start fit and the learned attributes)::

    law = PowerLaw().fit(k, pass_at_k, sample_weight=binomial_weights(pass_at_k, n_questions))
    law.params_            # {"ceiling": ..., "scale": ..., "alpha": ...}
    law.predict([512])     # extrapolated accuracy
    law.inverse(0.9)       # compute needed for 90 % (inf if the ceiling is lower)
    print(law.report())    # names any parameter stuck at a bound

The two-variable law lives in :mod:`fitting.joint`, the per-question beta-binomial view in
:mod:`fitting.betabinom`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from ._fitutil import accuracy_bounds, binomial_weights, ceiling_candidates, line_fit
from ._laws_base import (
    ConvergenceWarning,
    Law,
    NotFittedError,
    UnreachableTargetWarning,
)

__all__ = [
    "ConvergenceWarning",
    "UnreachableTargetWarning",
    "NotFittedError",
    "Law",
    "PowerLaw",
    "ExpDecay",
    "ExpPowerLaw",
    "Logistic",
    "LAWS",
    "get_law",
    "binomial_weights",
]

_TINY = 1e-12


class PowerLaw(Law):
    r"""Accuracy approaching a ceiling as a power of compute.

    .. math:: \mathrm{acc}(C) = \mathrm{ceiling} - \mathrm{scale}\, C^{-\alpha},
              \qquad \mathrm{scale} > 0,\ 0 < \alpha \le 10

    ``scale`` is the gap to the ceiling at ``C = 1``. The guess fits the line
    ``log(ceiling - y) = log(scale) - alpha log C`` for several candidate ceilings.
    """

    name = "power_law"
    param_names = ("ceiling", "scale", "alpha")
    invariant_params = ("ceiling", "alpha")
    level_params = ("ceiling",)
    formula_text = "acc(C) = ceiling - scale * C**(-alpha)"

    @staticmethod
    def formula(x, ceiling, scale, alpha):
        return ceiling - scale * np.power(x, -alpha)

    @staticmethod
    def jacobian(x, ceiling, scale, alpha):
        p = np.power(x, -alpha)
        return np.stack([np.ones_like(x), -p, scale * p * np.log(x)], axis=-1)

    @staticmethod
    def rescale(params, factor):
        return {**params, "scale": params["scale"] * factor ** (-params["alpha"])}

    def _default_bounds(self, y):
        return {"ceiling": accuracy_bounds(y), "scale": (0.0, np.inf), "alpha": (0.0, 10.0)}

    def _guesses(self, u, y, bounds):
        out = []
        for c in ceiling_candidates(y, bounds["ceiling"]):
            intercept, slope = line_fit(np.log(u), np.log(np.maximum(c - y, _TINY)))
            out.append(
                {"ceiling": c, "scale": float(np.exp(intercept)), "alpha": float(np.clip(-slope, 1e-3, 9.0))}
            )
        return out

    def _inverse(self, target, params):
        c, s, a = params["ceiling"], params["scale"], params["alpha"]
        with np.errstate(all="ignore"):
            # alpha = 0: a flat law, reached at once or never (1 / 0 is inf, not an error)
            x = np.power(s / (c - target), np.divide(1.0, a))
        return np.where(target >= c, np.inf, x)

    def asymptote(self):
        return float(self._check_fitted()["ceiling"])


class ExpDecay(Law):
    r"""Accuracy approaching a ceiling exponentially in compute (e.g. best-of-N with a
    good verifier, where the error falls like :math:`e^{-cN}`).

    .. math:: \mathrm{acc}(N) = \mathrm{ceiling} - \mathrm{scale}\, e^{-\mathrm{rate}\, N},
              \qquad \mathrm{scale} > 0,\ \mathrm{rate} > 0

    ``ceiling - scale`` is the accuracy at zero compute. The guess fits the line
    ``log(ceiling - y) = log(scale) - rate N``.
    """

    name = "exp_decay"
    param_names = ("ceiling", "scale", "rate")
    invariant_params = ("ceiling", "scale")
    level_params = ("ceiling",)
    x_must_be_positive = False
    formula_text = "acc(N) = ceiling - scale * exp(-rate * N)"

    @staticmethod
    def formula(x, ceiling, scale, rate):
        return ceiling - scale * np.exp(-rate * x)

    @staticmethod
    def jacobian(x, ceiling, scale, rate):
        e = np.exp(-rate * x)
        return np.stack([np.ones_like(x), -e, scale * x * e], axis=-1)

    @staticmethod
    def rescale(params, factor):
        return {**params, "rate": params["rate"] * factor}

    def _x_ref(self, x):
        top = float(np.max(x))
        if top <= 0:
            raise ValueError("ExpDecay: x must contain a positive value")
        return top

    def _default_bounds(self, y):
        return {"ceiling": accuracy_bounds(y), "scale": (0.0, np.inf), "rate": (0.0, np.inf)}

    def _guesses(self, u, y, bounds):
        out = []
        for c in ceiling_candidates(y, bounds["ceiling"]):
            intercept, slope = line_fit(u, np.log(np.maximum(c - y, _TINY)))
            out.append({"ceiling": c, "scale": float(np.exp(intercept)), "rate": float(max(-slope, 1e-2))})
        return out

    def _inverse(self, target, params):
        c, s, r = params["ceiling"], params["scale"], params["rate"]
        with np.errstate(all="ignore"):
            x = np.divide(np.log(s / (c - target)), r)  # rate = 0: a flat law, reached at once or never
        return np.where(target >= c, np.inf, np.fmax(x, 0.0))

    def asymptote(self):
        return float(self._check_fitted()["ceiling"])


class ExpPowerLaw(Law):
    r"""Coverage (pass@k) as the exponential of a power law (Brown et al. 2024,
    "Large Language Monkeys"): the log of the failure-free fraction falls as a power of k.

    .. math:: \mathrm{coverage}(k) = \exp(-a\, k^{-b}), \qquad a > 0,\ 0 < b \le 10

    The ceiling is 1 and ``exp(-a)`` is the coverage at ``k = 1``. The guess fits the line
    ``log(-log y) = log(a) - b log k``.
    """

    name = "exp_power_law"
    param_names = ("a", "b")
    invariant_params = ("b",)
    formula_text = "coverage(k) = exp(-a * k**(-b))"

    @staticmethod
    def formula(x, a, b):
        return np.exp(-a * np.power(x, -b))

    @staticmethod
    def jacobian(x, a, b):
        p = np.power(x, -b)
        f = np.exp(-a * p)
        return np.stack([-p * f, a * p * np.log(x) * f], axis=-1)

    @staticmethod
    def rescale(params, factor):
        return {**params, "a": params["a"] * factor ** (-params["b"])}

    def _default_bounds(self, y):
        return {"a": (0.0, np.inf), "b": (0.0, 10.0)}

    def _guesses(self, u, y, bounds):
        yc = np.clip(y, 1e-9, 1 - 1e-9)
        intercept, slope = line_fit(np.log(u), np.log(-np.log(yc)))
        return [{"a": float(np.exp(intercept)), "b": float(np.clip(-slope, 1e-3, 9.0))}]

    def _inverse(self, target, params):
        a, b = params["a"], params["b"]
        with np.errstate(all="ignore"):
            # b = 0: flat at exp(-a), reached at once or never (1 / 0 is inf, not an error)
            x = np.power(a / -np.log(target), np.divide(1.0, b))
        return np.where(target >= 1.0, np.inf, np.where(target <= 0.0, 0.0, x))

    def asymptote(self):
        self._check_fitted()
        return 1.0


class Logistic(Law):
    r"""An S-curve in log-compute: flat, then rising, then saturating (emergent-looking
    abilities, sequential revision).

    .. math:: \mathrm{acc}(C) = \frac{\mathrm{ceiling}}{1 + \exp(-\mathrm{slope}\,(\ln C - \mathrm{midpoint}))},
              \qquad 0 < \mathrm{slope} \le 100

    ``midpoint`` is the natural log of the compute at half the ceiling; ``slope`` is per
    unit of ``ln C``. The guess fits the line ``logit(y / ceiling) = slope (ln C - midpoint)``.
    """

    name = "logistic"
    param_names = ("ceiling", "midpoint", "slope")
    invariant_params = ("ceiling", "slope")
    level_params = ("ceiling",)
    formula_text = "acc(C) = ceiling / (1 + exp(-slope * (ln C - midpoint)))"

    @staticmethod
    def formula(x, ceiling, midpoint, slope):
        return ceiling * expit(slope * (np.log(x) - midpoint))

    @staticmethod
    def jacobian(x, ceiling, midpoint, slope):
        d = np.log(x) - midpoint
        s = expit(slope * d)
        g = ceiling * s * (1 - s)
        return np.stack([s, -slope * g, d * g], axis=-1)

    @staticmethod
    def rescale(params, factor):
        return {**params, "midpoint": params["midpoint"] - float(np.log(factor))}

    def _default_bounds(self, y):
        return {"ceiling": accuracy_bounds(y), "midpoint": (-np.inf, np.inf), "slope": (0.0, 100.0)}

    def _guesses(self, u, y, bounds):
        out = []
        for c in ceiling_candidates(y, bounds["ceiling"]):
            if c <= 0:
                continue
            z = logit(np.clip(y / c, 1e-6, 1 - 1e-6))
            intercept, slope = line_fit(np.log(u), z)
            slope = float(np.clip(slope, 1e-2, 50.0))
            out.append({"ceiling": c, "midpoint": -intercept / slope, "slope": slope})
        return out

    def _inverse(self, target, params):
        c, m, s = params["ceiling"], params["midpoint"], params["slope"]
        with np.errstate(all="ignore"):
            x = np.exp(m + np.divide(logit(target / c), s))  # slope = 0: flat at ceiling / 2
        return np.where(target >= c, np.inf, np.where((target <= 0.0) | np.isnan(x), 0.0, x))

    def asymptote(self):
        return float(self._check_fitted()["ceiling"])


#: Registry of the one-variable laws by name (what ``fit_curve(laws=...)`` accepts).
LAWS: dict[str, type[Law]] = {cls.name: cls for cls in (PowerLaw, ExpDecay, ExpPowerLaw, Logistic)}


def get_law(spec: str | Law | type[Law]) -> Law:
    """A fresh law from a registry name, a class or an instance (cloned, settings kept).

    Examples
    --------
    >>> get_law("power_law")
    PowerLaw(unfitted)
    """
    if isinstance(spec, Law):
        return spec.clone()
    if isinstance(spec, type) and issubclass(spec, Law):
        return spec()
    if isinstance(spec, str) and spec in LAWS:
        return LAWS[spec]()
    raise ValueError(f"unknown law {spec!r}; choose from {sorted(LAWS)} or pass a Law")
