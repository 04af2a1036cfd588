"""How sure are we? Bootstrap over questions, the saturation point N*, compute to a target.

Questions, not points, are the unit of resampling: every point of an accuracy curve is
computed from the same questions, so the points are correlated and resampling points
would understate the uncertainty. :func:`bootstrap_questions` takes the per-question
matrix the estimators produce (one row per question, one column per compute value, each
entry that question's expected accuracy at that compute), resamples rows with
replacement, refits the law from the point estimate (warm start, one optimizer run per
replicate) and reports percentile intervals.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from ._laws_base import ConvergenceWarning, Law, UnreachableTargetWarning
from .laws import get_law

__all__ = [
    "BootstrapResult",
    "Interval",
    "bootstrap_questions",
    "saturation_point",
    "compute_to_target",
    "question_weights",
]

#: Default epsilon of the saturation point: half an accuracy point per doubling.
DEFAULT_EPSILON = 0.005


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile interval at ``level``."""

    estimate: float
    lo: float
    hi: float
    level: float

    def as_dict(self) -> dict[str, float | None]:
        out = {"estimate": self.estimate, "lo": self.lo, "hi": self.hi}
        return {k: (v if math.isfinite(v) else None) for k, v in out.items()} | {"level": self.level}


@dataclass(frozen=True)
class BootstrapResult:
    """What :func:`bootstrap_questions` returns.

    Attributes
    ----------
    law : Law
        The point estimate (fitted on the mean over all questions).
    params : DataFrame
        Index: parameter names; columns ``estimate``, ``lo``, ``hi``.
    prediction : DataFrame
        Columns ``x``, ``estimate``, ``lo``, ``hi`` on the requested grid.
    param_samples : DataFrame
        One row per converged replicate.
    saturation : Interval or None
        The saturation point N* (see :func:`saturation_point`).
    to_target : DataFrame or None
        Columns ``target``, ``estimate``, ``lo``, ``hi``: compute to reach each target
        (inf where the ceiling, or the upper quantile of it, lies below the target).
    n_boot, n_failed : int
        Replicates drawn and replicates whose refit did not converge (left out).
    """

    law: Law
    level: float
    params: pd.DataFrame
    prediction: pd.DataFrame
    param_samples: pd.DataFrame
    n_boot: int
    n_failed: int
    saturation: Interval | None = None
    to_target: pd.DataFrame | None = None
    epsilon: float | None = None
    _laws: list[Law] = field(default_factory=list, repr=False)

    def interval(self, fn: Callable[[Law], float]) -> Interval:
        """Point estimate and percentile interval of any quantity derived from the law."""
        values = np.array([_quiet(fn, law) for law in self._laws], dtype=float)
        lo, hi = _percentiles(values, self.level)
        return Interval(float(_quiet(fn, self.law)), lo, hi, self.level)


def _quiet(fn, law):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreachableTargetWarning)
        return fn(law)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval; "lower"/"higher" so that inf values are never interpolated."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    q = (1.0 - level) / 2.0
    return float(np.quantile(values, q, method="lower")), float(np.quantile(values, 1 - q, method="higher"))


def question_weights(per_question: np.ndarray) -> np.ndarray:
    """Inverse-variance weights of the column means of a per-question matrix.

    .. math:: w_j = 1 / \\max(\\widehat{\\mathrm{Var}}(M_{\\cdot j}) / q,\\ 1 / (4 q^2))

    The floor (a standard error of half a question) keeps columns where every question
    agrees from getting infinite weight.
    """
    m = np.asarray(per_question, dtype=float)
    q = m.shape[0]
    var = m.var(axis=0, ddof=1) / q if q > 1 else np.zeros(m.shape[1])
    return 1.0 / np.maximum(var, 1.0 / (4.0 * q * q))


def saturation_point(
    law: Law, epsilon: float = DEFAULT_EPSILON, x_min: float | None = None, max_doublings: int = 200
) -> float:
    """The saturation point N*: the compute beyond which a doubling gains less than ``epsilon``.

    .. math:: N^* = \\min\\{x \\ge x_{\\min} : f(2x') - f(x') < \\epsilon \\ \\forall x' \\ge x\\}

    "For every larger x" matters for S-shaped and exponential curves, whose doublings
    also gain little *before* they take off. Found by scanning 64 points per doubling
    from ``x_min`` (default: the smallest compute the law was fitted on) over
    ``max_doublings`` doublings, then solving ``f(2x) - f(x) = epsilon`` with brentq.

    Returns ``x_min`` if no doubling from there on gains ``epsilon``, inf if doublings
    still gain ``epsilon`` after ``max_doublings`` doublings.

    Examples
    --------
    >>> from fitting.laws import PowerLaw
    >>> law = PowerLaw().with_params({"ceiling": 0.9, "scale": 0.5, "alpha": 0.5})
    >>> round(saturation_point(law, 0.005, x_min=1.0))  # (0.5 (1 - 2**-0.5) / 0.005)**2
    858
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if x_min is None:
        x_min = getattr(law, "x_range_", (1.0, 1.0))[0]
    if x_min <= 0:
        x_min = 1e-9 * max(getattr(law, "x_range_", (1.0, 1.0))[1], 1.0)
    grid = x_min * np.exp2(np.linspace(0.0, max_doublings, max_doublings * 64 + 1))

    def gain(x):
        return law.predict(2.0 * np.asarray(x)) - law.predict(x)

    with np.errstate(all="ignore"):
        g = gain(grid)
    above = np.flatnonzero(~(g < epsilon))  # NaN counts as "not saturated"
    if len(above) == 0:
        return float(x_min)
    i = int(above[-1])
    if i == len(grid) - 1:
        return math.inf
    return float(
        brentq(lambda x: float(gain(x)) - epsilon, grid[i], grid[i + 1], xtol=1e-12 * grid[i], rtol=1e-12)
    )


def compute_to_target(law, target) -> np.ndarray | float:
    """Compute needed for accuracy ``target`` (inf where the ceiling is below it; see ``Law.inverse``)."""
    out = law.inverse(target)
    return float(out) if np.ndim(out) == 0 else out


def bootstrap_questions(
    law: str | Law | type[Law],
    per_question,
    x=None,
    *,
    n_boot: int = 200,
    level: float = 0.9,
    grid=None,
    sample_weight="auto",
    epsilon: float | None = DEFAULT_EPSILON,
    targets: Sequence[float] = (),
    rng: int | np.random.Generator = 0,
) -> BootstrapResult:
    """Bootstrap a law over questions: intervals for parameters, predictions, N* and targets.

    Parameters
    ----------
    law : str, Law class or Law
        The law to fit (a fresh copy is fitted; the settings of an instance are kept).
    per_question : array (n_questions, n_x) or DataFrame
        Each question's expected accuracy at each compute value (e.g. its unbiased pass@k).
        A DataFrame's columns are taken as ``x`` when ``x`` is None.
    x : array (n_x,) or None
        The compute values of the columns.
    n_boot : int
        Replicates. Each resamples the questions with replacement (multinomial counts from
        the seeded generator) and refits from the point estimate.
    level : float
        Coverage of the percentile intervals (0.9 gives the 5th and 95th percentiles).
    grid : array or None
        Where to report prediction intervals; default 50 points from min(x) to 16 max(x).
    sample_weight : "auto", array or None
        "auto" uses :func:`question_weights` of the full matrix (the same weights for every
        replicate, so the fits are on a homoscedastic scale).
    epsilon : float or None
        Saturation threshold for N* (None skips it).
    targets : sequence of float
        Accuracies for which to report compute-to-target intervals.
    rng : int or numpy.random.Generator
        Seed or generator.

    Returns
    -------
    BootstrapResult

    Examples
    --------
    >>> import numpy as np
    >>> from fitting.betabinom import beta_pass_at_k
    >>> gen = np.random.default_rng(0)
    >>> p = gen.beta(0.6, 2.0, size=300)           # per-question success rates
    >>> k = 2.0 ** np.arange(7)
    >>> per_q = 1 - (1 - p[:, None]) ** k          # each question's pass@k
    >>> res = bootstrap_questions("exp_power_law", per_q, k, n_boot=50)
    >>> bool(res.prediction["lo"].iloc[-1] <= res.prediction["estimate"].iloc[-1] <= res.prediction["hi"].iloc[-1])
    True
    """
    if isinstance(per_question, pd.DataFrame):
        if x is None:
            x = per_question.columns.to_numpy(dtype=float)
        per_question = per_question.to_numpy(dtype=float)
    m = np.asarray(per_question, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"per_question must be 2-D (questions x compute values), got shape {m.shape}")
    if x is None:
        raise ValueError("bootstrap_questions: give x (the compute value of each column)")
    x = np.asarray(x, dtype=float)
    if x.shape != (m.shape[1],):
        raise ValueError(f"x has shape {x.shape} but per_question has {m.shape[1]} columns")
    if not np.all(np.isfinite(m)):
        raise ValueError("per_question has non-finite entries")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    q = m.shape[0]
    if isinstance(sample_weight, str):
        if sample_weight != "auto":
            raise ValueError(f"sample_weight must be 'auto', an array or None, got {sample_weight!r}")
        w = question_weights(m)
    else:
        w = sample_weight

    point = get_law(law).fit(x, m.mean(axis=0), w)
    if grid is None:
        grid = np.geomspace(x.min(), 16 * x.max(), 50) if x.min() > 0 else np.linspace(0, 16 * x.max(), 50)
    grid = np.asarray(grid, dtype=float)

    counts = gen.multinomial(q, np.full(q, 1.0 / q), size=n_boot)  # (n_boot, q)
    y_boot = counts @ m / q  # (n_boot, n_x)
    laws, rows, failed = [], [], 0
    for yb in y_boot:
        rep = point.clone().set_params(warm_start=True)
        rep.params_, rep.f_scale_ = dict(point.params_), point.f_scale_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            rep.fit(x, yb, w)
        if not rep.converged_:
            failed += 1
            continue
        laws.append(rep)
        rows.append(rep.params_)
    if failed > 0.1 * n_boot:
        warnings.warn(
            f"bootstrap: {failed} of {n_boot} refits of {type(point).__name__} did not converge and were left "
            "out; the intervals may be too narrow",
            ConvergenceWarning,
            stacklevel=2,
        )
    samples = pd.DataFrame(rows, columns=list(point.param_names))
    params = pd.DataFrame(
        [(p, point.params_[p], *_percentiles(samples[p].to_numpy(), level)) for p in point.param_names],
        columns=["param", "estimate", "lo", "hi"],
    ).set_index("param")
    preds = np.array([rep.predict(grid) for rep in laws]) if laws else np.full((0, len(grid)), np.nan)
    bands = [_percentiles(preds[:, j], level) for j in range(len(grid))]
    prediction = pd.DataFrame(
        {"x": grid, "estimate": point.predict(grid), "lo": [b[0] for b in bands], "hi": [b[1] for b in bands]}
    )
    result = BootstrapResult(
        point, level, params, prediction, samples, n_boot, failed, epsilon=epsilon, _laws=laws
    )
    x_min = float(x.min()) if x.min() > 0 else None
    saturation = None
    if epsilon is not None:
        saturation = result.interval(lambda law: saturation_point(law, epsilon, x_min=x_min))
    to_target = None
    if len(targets):
        ivs = [result.interval(lambda law, t=t: compute_to_target(law, t)) for t in targets]
        to_target = pd.DataFrame(
            {
                "target": list(targets),
                "estimate": [i.estimate for i in ivs],
                "lo": [i.lo for i in ivs],
                "hi": [i.hi for i in ivs],
            }
        )
    return BootstrapResult(
        point, level, params, prediction, samples, n_boot, failed, saturation, to_target, epsilon, laws
    )
