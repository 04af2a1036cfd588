"""How sure are we? Bootstrap over questions, the saturation point N*, compute to a target.

Questions, not points, are the unit of resampling: every point of an accuracy curve is
computed from the same questions, so the points are correlated and resampling points
would understate the uncertainty. :func:`bootstrap_questions` takes the per-question
matrix the estimators produce (one row per question, one column per compute value, each
entry that question's expected accuracy at that compute), resamples rows with
replacement (all replicates in one matrix product), refits the law from the point estimate
for all replicates at once (a batched Levenberg-Marquardt solve, :mod:`fitting._batchfit`;
``least_squares`` only for replicates it does not converge on) and reports percentile
intervals. The saturation point N*, the prediction band and compute-to-target are computed
for all replicates in array operations too.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import elementwise

from ._batchfit import RefitTask, fit_laws, refit_laws
from ._laws_base import ConvergenceWarning, Law, UnreachableTargetWarning
from .laws import get_law

__all__ = [
    "BootstrapResult",
    "Interval",
    "bootstrap_questions",
    "bootstrap_questions_many",
    "saturation_point",
    "saturation_points",
    "compute_to_target",
    "question_weights",
]

#: Default epsilon of the saturation point: half an accuracy point per doubling.
DEFAULT_EPSILON = 0.005
#: How bootstrap replicates are refitted (see :func:`bootstrap_questions`).
METHODS = ("batched", "scipy")


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
        One row per converged replicate, indexed by the replicate's number (0..n_boot-1).
    saturation : Interval or None
        The saturation point N* (see :func:`saturation_point`).
    to_target : DataFrame or None
        Columns ``target``, ``estimate``, ``lo``, ``hi``: compute to reach each target
        (inf where the ceiling, or the upper quantile of it, lies below the target).
    n_boot, n_failed : int
        Replicates drawn and replicates whose refit did not converge (left out).
    n_scipy : int
        Replicates refitted one by one with ``least_squares`` (all of them with
        ``method="scipy"``; with "batched", those the batched solver did not converge on).
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
    n_scipy: int = 0

    def replicate_laws(self) -> list[Law]:
        """One law per converged replicate (parameters set from :attr:`param_samples`)."""
        laws = []
        for row in self.param_samples.to_dict("records"):
            rep = self.law.with_params(row)
            if hasattr(self.law, "x_range_"):
                rep.x_range_, rep.n_points_ = self.law.x_range_, self.law.n_points_
            laws.append(rep)
        return laws

    def interval(self, fn: Callable[[Law], float]) -> Interval:
        """Point estimate and percentile interval of any quantity derived from the law."""
        values = np.array([_quiet(fn, law) for law in self.replicate_laws()], dtype=float)
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


def _percentile_columns(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_percentiles` of every column of a (replicates, points) array at once."""
    if values.shape[0] == 0:
        return np.full(values.shape[1], math.nan), np.full(values.shape[1], math.nan)
    q = (1.0 - level) / 2.0
    if not np.isnan(values).any():  # the usual case, and much faster than nanquantile
        return np.quantile(values, q, axis=0, method="lower"), np.quantile(
            values, 1 - q, axis=0, method="higher"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column gives NaN
        return (
            np.nanquantile(values, q, axis=0, method="lower"),
            np.nanquantile(values, 1 - q, axis=0, method="higher"),
        )


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
    ``max_doublings`` doublings, then solving ``f(2x) - f(x) = epsilon`` in the last
    bracket where a doubling still gains ``epsilon`` (see :func:`saturation_points`).

    Returns ``x_min`` if no doubling from there on gains ``epsilon``, inf if doublings
    still gain ``epsilon`` after ``max_doublings`` doublings.

    Examples
    --------
    >>> from fitting.laws import PowerLaw
    >>> law = PowerLaw().with_params({"ceiling": 0.9, "scale": 0.5, "alpha": 0.5})
    >>> round(saturation_point(law, 0.005, x_min=1.0))  # (0.5 (1 - 2**-0.5) / 0.005)**2
    858
    """
    if x_min is None:
        x_min = getattr(law, "x_range_", (1.0, 1.0))[0]
    if x_min <= 0:
        x_min = 1e-9 * max(getattr(law, "x_range_", (1.0, 1.0))[1], 1.0)
    params = law._check_fitted()
    theta = np.array([[params[p] for p in law.param_names]])
    return float(saturation_points(law, theta, epsilon, x_min, max_doublings)[0])


def saturation_points(law: Law, params, epsilon: float, x_min, max_doublings: int = 200) -> np.ndarray:
    """:func:`saturation_point` of many parameter sets of one law at once.

    ``params`` has shape (B, p) (``law.param_names`` order; ``law`` gives only the formula);
    ``x_min`` is a float or one value per row.
    The scan runs a few doublings at a time for all rows together and stops for a row as
    soon as no later doubling can gain ``epsilon``: for a non-decreasing law (every law
    here is, within its bounds) ``f(2x') - f(x') <= f(X) - f(x)`` for every ``x' >= x`` up
    to the end ``X`` of the scan, so once ``f(X) - f(x) < epsilon`` the rest of the grid is
    below ``epsilon`` too. The crossing in the last bracket is then solved for all rows with
    :func:`scipy.optimize.elementwise.find_root`.

    Examples
    --------
    >>> from fitting.laws import PowerLaw
    >>> theta = np.array([[0.9, 0.5, 0.5], [0.9, 0.5, 1.0], [0.9, 0.001, 0.5]])
    >>> saturation_points(PowerLaw(), theta, 0.005, 1.0).round(2).tolist()  # closed form: (s (1 - 2**-a) / eps)**(1/a)
    [857.86, 50.0, 1.0]
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    theta = np.atleast_2d(np.asarray(params, dtype=float))
    x_min = np.broadcast_to(np.asarray(x_min, dtype=float), (len(theta),))
    steps, chunk = 64, 8 * 64  # grid points per doubling; points scanned per pass
    n_grid = max_doublings * steps + 1  # grid point i is x_min * 2**(i / steps)
    last = np.full(len(theta), -1)  # last grid point where a doubling still gains epsilon

    def curve(x, rows):
        return law.formula(x, *theta[rows].T[:, :, None])

    with np.errstate(all="ignore"):
        f_end = curve(x_min[:, None] * 2.0 ** (max_doublings + 1), slice(None))[:, 0]
        pending = np.arange(len(theta))
        for start in range(0, n_grid, chunk):
            stop = min(start + chunk, n_grid)
            f = curve(
                x_min[pending, None] * np.exp2(np.arange(start, stop + steps)[None, :] / steps), pending
            )
            above = ~(f[:, steps:] - f[:, :-steps] < epsilon)  # NaN counts as "not saturated"
            hit = above.any(axis=1)
            last[pending[hit]] = stop - 1 - np.argmax(above[hit, ::-1], axis=1)
            pending = pending[~(f_end[pending] - f[:, stop - start - 1] < epsilon)]
            if pending.size == 0:
                break
    out = np.where(last < 0, x_min, np.inf)
    inner = np.flatnonzero((last >= 0) & (last < n_grid - 1))
    if inner.size:
        lo = x_min[inner] * np.exp2(last[inner] / steps)
        hi = x_min[inner] * np.exp2((last[inner] + 1) / steps)
        cols = tuple(theta[inner].T)

        def excess(x, *p):
            return law.formula(2.0 * x, *p) - law.formula(x, *p) - epsilon

        root = elementwise.find_root(excess, (lo, hi), args=cols, tolerances={"xrtol": 1e-12})
        out[inner] = np.where(excess(lo, *cols) == 0.0, lo, root.x)
    return out


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
    method: str = "batched",
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
    method : {"batched", "scipy"}
        "batched" refits all replicates together (:func:`fitting._batchfit.refit_laws`) and
        only those it does not converge on (within the law's ``max_nfev`` iterations)
        with ``least_squares``; "scipy" refits every
        replicate with ``least_squares`` (the reference path: same replicates, same
        optimum, about 100x slower).

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
    request = dict(per_question=per_question, x=x, n_boot=n_boot, level=level, grid=grid)
    request |= dict(sample_weight=sample_weight, epsilon=epsilon, targets=targets, rng=rng)
    return bootstrap_questions_many([(law, request)], method=method)[0]


def bootstrap_questions_many(
    requests: Sequence[tuple[str | Law | type[Law], dict]], *, method: str = "batched"
) -> list[BootstrapResult]:
    """:func:`bootstrap_questions` of many curves, refitted together.

    Each request is ``(law, keyword arguments of bootstrap_questions)``. With
    ``method="batched"`` the point fits of every curve go into one batched multi-start fit
    (:func:`fitting._batchfit.fit_laws`) and the replicates of every curve into one batched
    solve per law class (:func:`fitting._batchfit.refit_laws`), so the solver's
    per-iteration overhead is paid once for all curves; results are the same as one call
    per curve.

    Examples
    --------
    >>> k = 2.0 ** np.arange(6)
    >>> m = 1 - (1 - np.random.default_rng(0).beta(0.6, 2.0, size=(200, 1))) ** k
    >>> a, b = bootstrap_questions_many([("power_law", {"per_question": m, "x": k, "n_boot": 40}),
    ...                                  ("exp_power_law", {"per_question": m, "x": k, "n_boot": 40})])
    >>> a.law.name, b.law.name, a.n_boot
    ('power_law', 'exp_power_law', 40)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    prepared = [_prepare(law, **kwargs) for law, kwargs in requests]
    # the point estimates: law.fit each ("scipy"), or all curves' multi-start fits together
    points = [(p.point, p.x, p.y, p.weights) for p in prepared]
    if method == "batched":
        fit_laws(points)
    else:
        for law, x, y, w in points:
            law._fit_least_squares(x, y, w)
    if method == "batched":
        tasks = [RefitTask(p.point, p.x, p.y_boot, p.weights, p.start, p.f_scale) for p in prepared]
        fits = [(r.params, r.ok, np.flatnonzero(~r.solved)) for r in refit_laws(tasks)]
    else:
        fits = [
            (
                np.empty((len(p.y_boot), len(p.start))),
                np.zeros(len(p.y_boot), dtype=bool),
                np.arange(len(p.y_boot)),
            )
            for p in prepared
        ]
    for p, (theta, ok, redo) in zip(prepared, fits, strict=True):
        for i in redo:
            rep = _refit_one(p.point, p.x, p.y_boot[i], p.weights)
            theta[i], ok[i] = [rep.params_[name] for name in p.point.param_names], rep.converged_
    n_stars = _saturation_of_all(prepared, [theta[ok] for theta, ok, _ in fits])
    return [
        _summarize(p, theta, ok, n_star, len(redo))
        for p, (theta, ok, redo), n_star in zip(prepared, fits, n_stars, strict=True)
    ]


def _saturation_of_all(prepared: list[_Prepared], thetas: list[np.ndarray]) -> list[np.ndarray | None]:
    """N* of each curve's point estimate and converged replicates: one scan per law class."""
    out: list[np.ndarray | None] = [None] * len(prepared)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        if p.epsilon is not None:
            groups.setdefault((type(p.point), p.epsilon), []).append(i)
    for (_, epsilon), members in groups.items():
        rows, x_mins = [], []
        for i in members:
            p = prepared[i]
            x_min = float(p.x.min()) if p.x.min() > 0 else 1e-9 * max(float(p.x.max()), 1.0)
            rows.append(np.vstack([p.start, thetas[i]]))
            x_mins.append(np.full(len(rows[-1]), x_min))
        n_star = saturation_points(
            prepared[members[0]].point, np.vstack(rows), epsilon, np.concatenate(x_mins)
        )
        edges = np.cumsum([0, *(len(r) for r in rows)])
        for j, i in enumerate(members):
            out[i] = n_star[edges[j] : edges[j + 1]]
    return out


@dataclass(frozen=True)
class _Prepared:
    """One curve's bootstrap before the refits: the point fit and the resampled curves."""

    point: Law  # fitted to (x, y) by bootstrap_questions_many
    x: np.ndarray
    y: np.ndarray  # the mean over questions
    y_boot: np.ndarray  # (n_boot, n_x)
    weights: np.ndarray | None
    grid: np.ndarray
    level: float
    epsilon: float | None
    targets: Sequence[float]

    @property
    def start(self) -> np.ndarray:
        return np.array([self.point.params_[p] for p in self.point.param_names])

    @property
    def f_scale(self) -> float:
        return self.point.f_scale if self.point.f_scale is not None else self.point.f_scale_


def _prepare(
    law,
    per_question,
    x=None,
    *,
    n_boot=200,
    level=0.9,
    grid=None,
    sample_weight="auto",
    epsilon=DEFAULT_EPSILON,
    targets=(),
    rng=0,
) -> _Prepared:
    """Check the inputs and draw the replicates (one matrix product); the point fit comes later."""
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

    if grid is None:
        grid = np.geomspace(x.min(), 16 * x.max(), 50) if x.min() > 0 else np.linspace(0, 16 * x.max(), 50)
    counts = gen.multinomial(q, np.full(q, 1.0 / q), size=n_boot)  # (n_boot, q)
    y_boot = counts @ m / q  # (n_boot, n_x)
    weights = None if w is None else np.asarray(w, dtype=float)
    grid = np.asarray(grid, dtype=float)
    return _Prepared(get_law(law), x, m.mean(axis=0), y_boot, weights, grid, level, epsilon, targets)


def _summarize(p: _Prepared, theta: np.ndarray, ok: np.ndarray, n_star, n_scipy: int) -> BootstrapResult:
    """Intervals of one curve from its replicates' parameters (``ok``: the converged ones) and
    N* of the point estimate then of the converged replicates (None without ``epsilon``)."""
    point, level, grid, names = p.point, p.level, p.grid, list(p.point.param_names)
    n_boot = len(ok)
    failed = int(n_boot - ok.sum())
    if failed > 0.1 * n_boot:
        warnings.warn(
            f"bootstrap: {failed} of {n_boot} refits of {type(point).__name__} did not converge and were left "
            "out; the intervals may be too narrow",
            ConvergenceWarning,
            stacklevel=4,
        )
    theta = theta[ok]
    samples = pd.DataFrame(theta, columns=names, index=pd.Index(np.flatnonzero(ok), name="replicate"))
    params = pd.DataFrame(
        [(name, point.params_[name], *_percentiles(theta[:, j], level)) for j, name in enumerate(names)],
        columns=["param", "estimate", "lo", "hi"],
    ).set_index("param")
    with np.errstate(all="ignore"):
        preds = point.formula(grid[None, :], *theta.T[:, :, None])  # (replicates, grid)
    bands = _percentile_columns(preds, level)
    prediction = pd.DataFrame({"x": grid, "estimate": point.predict(grid), "lo": bands[0], "hi": bands[1]})
    saturation = None
    if p.epsilon is not None:
        saturation = Interval(float(n_star[0]), *_percentiles(n_star[1:], level), level)
    to_target = None
    if len(p.targets):
        reps = dict(zip(names, theta.T, strict=True))
        ivs = []
        for t in p.targets:
            with np.errstate(all="ignore"):
                values = point._inverse(np.float64(t), reps) if len(theta) else np.empty(0)
            estimate = float(_quiet(lambda law, t=t: compute_to_target(law, t), point))
            ivs.append(Interval(estimate, *_percentiles(np.asarray(values, dtype=float), level), level))
        to_target = pd.DataFrame(
            {
                "target": list(p.targets),
                "estimate": [i.estimate for i in ivs],
                "lo": [i.lo for i in ivs],
                "hi": [i.hi for i in ivs],
            }
        )
    return BootstrapResult(
        point, level, params, prediction, samples, n_boot, failed, saturation, to_target, p.epsilon, n_scipy
    )


def _refit_one(point: Law, x: np.ndarray, y: np.ndarray, w) -> Law:
    """One replicate refitted by ``least_squares`` from the point estimate (warm start)."""
    rep = point.clone().set_params(warm_start=True, solver="scipy")
    rep.params_, rep.f_scale_ = dict(point.params_), point.f_scale_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return rep.fit(x, y, w)
