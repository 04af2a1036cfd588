"""Choose a law for a curve: fit every candidate, score how well it extrapolates, break
near-ties by AIC, refit the winner on all points.

Extrapolation is what laws are used for (the planner predicts beyond the profiled k,
``ttc forecast`` far beyond it), so that is the primary criterion, scored the way it is
used: on a log-spaced range of compute, each law is fitted on the LOW end only (all points
up to a cut) and scored on the FAR end (the points in the top ``far`` fraction of the log
range), for several cuts; the score is the mean RMSE over cuts. A law that fits the first
decade well but bends the wrong way beyond it loses, whatever its in-sample fit. AIC
(in-sample fit penalized by parameter count) decides between laws that extrapolate about
equally well, and is the only criterion when there are too few points to score any cut.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._batchfit import fit_laws
from ._fitutil import as_1d
from ._laws_base import ConvergenceWarning, Law
from .laws import get_law

__all__ = ["fit_curve", "fit_curve_many", "DEFAULT_LAWS", "DEFAULT_CUTS", "FAR_FRACTION"]

_COLUMNS = (
    "law",
    "params",
    "rmse",
    "aic",
    "extrapolation_error",
    "extrapolation_ratio",
    "converged",
    "holdout_converged",
    "selected",
    "message",
)

#: The candidates tried by default.
DEFAULT_LAWS = ("power_law", "exp_decay", "exp_power_law", "logistic")
#: Where the fit set ends, as fractions of the log range of x (the scored cuts).
DEFAULT_CUTS = (0.25, 0.4, 0.55)
#: The far end scored: points in the top fraction of the log range of x.
FAR_FRACTION = 0.15


def fit_curve(
    x,
    y,
    laws: Sequence[str | Law | type[Law]] = DEFAULT_LAWS,
    sample_weight=None,
    holdout_frac: float = 0.25,
    tie_tol: float = 0.1,
    cuts: Sequence[float] | None = DEFAULT_CUTS,
    far: float = FAR_FRACTION,
) -> tuple[Law, pd.DataFrame]:
    """Fit every candidate law and select the one that extrapolates best.

    For each cut c in ``cuts`` every law is fitted on the points with
    ``log x <= log x_min + c * (log x_max - log x_min)`` (the low end) and scored by the RMSE
    of its predictions on the far end (``log x >= log x_max - far * log range``); its
    ``extrapolation_error`` is the mean over the cuts. A cut is used when its low end holds
    at least one point more than the candidate with the most parameters has parameters, so
    that every candidate is scored on the same extrapolations. Among converged laws,
    those within ``tie_tol`` (relative) of the smallest extrapolation error count as tied and
    the one with the lowest AIC wins. The winner is refitted on all points.

    When no cut leaves enough points (short curves), or x is not positive, or ``cuts`` is
    None, the ``holdout_frac`` largest-x points are held out instead (fit on the rest, RMSE
    on them).

    Parameters
    ----------
    x, y : arrays of shape (n,)
        Compute and accuracy.
    laws : sequence
        Registry names (see :data:`fitting.laws.LAWS`), Law classes or Law instances
        (cloned, so their settings are kept).
    sample_weight : array of shape (n,) or None
        Inverse-variance weights passed to every fit (e.g. :func:`fitting.binomial_weights`).
    holdout_frac : float
        The fallback scheme's fraction of points (at least one) held out at the high end.
        A law with fewer fitted points than its parameters plus one is not scored
        (``extrapolation_error`` NaN); then AIC alone decides between all candidates.
    tie_tol : float
        Relative tolerance under which extrapolation errors are considered equal.
    cuts : sequence of float in (0, 1), or None
        Ends of the fit sets as fractions of the log range of x.
    far : float in (0, 1)
        The scored far end, as a fraction of the log range of x.

    Returns
    -------
    winner : Law
        The selected law, fitted on all points.
    table : pandas.DataFrame
        One row per candidate, best first: ``law``, ``params`` (dict), ``rmse`` (all
        points), ``aic``, ``extrapolation_error``, ``extrapolation_ratio`` (geometric mean
        over the scored cuts of far-end x over the cut's largest fitted x: how far the score
        extrapolated), ``converged``, ``holdout_converged`` (the low-end fits converged for
        most cuts), ``selected``, ``message``.

    Examples
    --------
    >>> import numpy as np
    >>> k = 2.0 ** np.arange(9)
    >>> law, table = fit_curve(k, 0.9 - 0.5 * k**-0.4)
    >>> law.name, table.loc[0, "law"]
    ('power_law', 'power_law')
    """
    return fit_curve_many(
        [(x, y, sample_weight)], laws, holdout_frac=holdout_frac, tie_tol=tie_tol, cuts=cuts, far=far
    )[0]


def fit_curve_many(
    curves: Sequence[tuple],
    laws: Sequence[str | Law | type[Law]] = DEFAULT_LAWS,
    *,
    holdout_frac: float = 0.25,
    tie_tol: float = 0.1,
    cuts: Sequence[float] | None = DEFAULT_CUTS,
    far: float = FAR_FRACTION,
) -> list[tuple[Law, pd.DataFrame]]:
    """:func:`fit_curve` of many curves ``[(x, y, sample_weight), ...]``, one result per curve.

    The same selection as one :func:`fit_curve` call per curve. Every fit it needs (each
    candidate on each cut's low end and on all points, of every curve) is set up first and
    then run together: laws with ``solver="batched"`` in one :func:`fitting.fit_laws` call
    (one batched solve per law class), the others one ``fit`` at a time.

    Examples
    --------
    >>> import numpy as np
    >>> from fitting.laws import get_law
    >>> k = 2.0 ** np.arange(9)
    >>> laws = [get_law(n).set_params(solver="batched") for n in DEFAULT_LAWS]
    >>> out = fit_curve_many([(k, 0.9 - 0.5 * k**-0.4, None), (k, 0.8 - 0.7 * np.exp(-0.05 * k), None)], laws)
    >>> [law.name for law, _ in out]
    ['power_law', 'exp_decay']
    """
    if not 0.0 <= holdout_frac < 1.0:
        raise ValueError(f"holdout_frac must be in [0, 1), got {holdout_frac}")
    if cuts is not None and not all(0.0 < c < 1.0 for c in cuts):
        raise ValueError(f"cuts must lie in (0, 1), got {list(cuts)}")
    if not 0.0 < far < 1.0:
        raise ValueError(f"far must be in (0, 1), got {far}")
    n_params = max(len(get_law(spec).param_names) for spec in laws)
    plans, problems = [], []
    for x, y, sample_weight in curves:
        x = as_1d("x", x)
        y = as_1d("y", y, len(x))
        w = None if sample_weight is None else as_1d("sample_weight", sample_weight, len(x))
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        w = None if w is None else w[order]
        # one set of splits for every candidate (sized for the law with the most parameters), so
        # that every law is scored on the same extrapolations
        splits = _splits(x, n_params, cuts, far, holdout_frac)
        entries = []
        for spec in laws:
            law = get_law(spec)
            try:
                law._check_x(x)
            except ValueError as exc:  # e.g. a power law cannot take x = 0: skip it, say why
                entries.append((law, None, f"not applicable: {exc}"))
                continue
            lows = [law.clone() for _ in splits]
            problems += [
                (low, x[:n], y[:n], None if w is None else w[:n])
                for low, (n, _) in zip(lows, splits, strict=True)
            ]
            problems.append((law, x, y, w))
            entries.append((law, lows, None))
        plans.append((x, y, splits, entries))
    _fit_all(problems)
    return [_choose(x, y, splits, entries, holdout_frac, tie_tol) for x, y, splits, entries in plans]


def _fit_all(problems: list[tuple]) -> None:
    """Fit every ``(law, x, y, w)`` in place: the batched-solver laws together, the rest one by one."""
    batched = [p for p in problems if p[0].solver == "batched"]
    with warnings.catch_warnings():  # each fit's verdict is on the law (converged_, its message)
        warnings.simplefilter("ignore", ConvergenceWarning)
        if batched:
            fit_laws(batched)
        for law, x, y, w in problems:
            if law.solver != "batched":
                law.fit(x, y, w)


def _failure(law: Law) -> list[str]:
    """The note of a fit that did not converge (the text of its ConvergenceWarning)."""
    if law.converged_:
        return []
    return [f"{type(law).__name__} fit did not converge: {law.convergence_message_}"]


def _choose(x, y, splits, entries, holdout_frac: float, tie_tol: float) -> tuple[Law, pd.DataFrame]:
    """One curve's table of candidates (from the fitted laws) and its winner."""
    rows, fitted = [], []
    for law, lows, reason in entries:
        if lows is None:
            rows.append(
                {
                    "law": law.name,
                    "params": {},
                    "rmse": math.nan,
                    "aic": math.nan,
                    "extrapolation_error": math.nan,
                    "extrapolation_ratio": math.nan,
                    "converged": False,
                    "holdout_converged": None,
                    "message": reason,
                }
            )
            fitted.append(None)
            continue
        extrap, ratio, hold_ok, notes = _score(lows, x, y, splits)
        if not splits and len(x) > 1 and holdout_frac > 0:
            notes.append(f"too few low-compute points for {len(law.param_names)} parameters: not scored")
        notes += _failure(law)
        fitted.append(law)
        rows.append(
            {
                "law": law.name,
                "params": dict(law.params_),
                "rmse": law.rmse_,
                "aic": law.aic_,
                "extrapolation_error": extrap,
                "extrapolation_ratio": ratio,
                "converged": law.converged_,
                "holdout_converged": hold_ok,
                "message": "; ".join(notes) if notes else "ok",
            }
        )
    table = pd.DataFrame(rows)
    winner_idx = _select(table, tie_tol)
    table["selected"] = False
    table.loc[winner_idx, "selected"] = True
    winner = fitted[winner_idx]
    rank = _rank(table, winner_idx)
    table = table.iloc[rank].reset_index(drop=True)
    return winner, table[list(_COLUMNS)]


def _splits(x: np.ndarray, n_params: int, cuts, far: float, holdout_frac: float) -> list[tuple]:
    """(number of low-end points fitted, far-end mask) for each usable cut (x sorted).

    Log-range cuts when x is positive with a range; else, or when no cut leaves
    ``n_params + 1`` points, one split holding out the ``holdout_frac`` largest points.
    """
    out = []
    if cuts is not None and x[0] > 0 and x[-1] > x[0]:
        u = np.log(x)
        span = u[-1] - u[0]
        far_mask = u >= u[-1] - far * span - 1e-12
        for c in cuts:
            n_fit = int(np.searchsorted(u, u[0] + c * span + 1e-12, side="right"))
            if n_fit >= n_params + 1 and not far_mask[:n_fit].any():
                out.append((n_fit, far_mask))
        if out:
            return out
    n_hold = max(1, math.ceil(holdout_frac * len(x))) if holdout_frac > 0 else 0
    n_fit = len(x) - n_hold
    if n_hold and n_fit >= n_params + 1:
        mask = np.zeros(len(x), dtype=bool)
        mask[n_fit:] = True
        out.append((n_fit, mask))
    return out


def _score(lows: list[Law], x, y, splits) -> tuple[float, float, bool | None, list[str]]:
    """Mean far-end RMSE over the splits (``lows``: the law fitted on each split's low end), the
    geometric-mean extrapolation ratio, whether most low-end fits converged, and notes."""
    if not splits:
        return math.nan, math.nan, None, []
    errors, ratios, ok, notes = [], [], [], []
    for low, (n_fit, far_mask) in zip(lows, splits, strict=True):
        ok.append(low.converged_)
        notes += [f"low-end fit (x <= {x[n_fit - 1]:g}): {text}" for text in _failure(low)]
        errors.append(float(np.sqrt(np.mean((low.predict(x[far_mask]) - y[far_mask]) ** 2))))
        ratios.append(float(np.exp(np.mean(np.log(x[far_mask]))) / x[n_fit - 1]))
    return float(np.mean(errors)), float(np.exp(np.mean(np.log(ratios)))), sum(ok) * 2 > len(ok), notes


def _select(table: pd.DataFrame, tie_tol: float) -> int:
    ok = table["converged"].to_numpy(bool) & (table["holdout_converged"].fillna(True).to_numpy(bool))
    if not table["aic"].notna().any():
        raise ValueError(f"fit_curve: no candidate law applies to these data: {'; '.join(table['message'])}")
    if not ok.any():
        warnings.warn(
            "fit_curve: no candidate law converged; returning the least bad one (see the table's message column)",
            ConvergenceWarning,
            stacklevel=3,
        )
        ok = table["aic"].notna().to_numpy()
    cand = table[ok]
    err = cand["extrapolation_error"]
    if err.notna().all():  # else some law could not be scored: AIC alone compares them fairly
        best = float(err.min())
        cand = cand[err <= best * (1.0 + tie_tol) + 1e-12]
    return int(cand["aic"].idxmin())


def _rank(table: pd.DataFrame, winner_idx: int) -> list[int]:
    rest = table.drop(index=winner_idx)
    rest = rest.assign(_ok=~rest["converged"], _e=rest["extrapolation_error"].fillna(np.inf))
    rest = rest.sort_values(["_ok", "_e", "aic"], kind="stable")
    return [winner_idx, *rest.index.tolist()]
