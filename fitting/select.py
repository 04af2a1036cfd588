"""Choose a law for a curve: fit every candidate, score its extrapolation on held-out
high-compute points, break near-ties by AIC, refit the winner on all points.

Extrapolation is what the planner uses laws for, so that is the primary criterion; AIC
(in-sample fit penalized by parameter count) decides between laws that extrapolate about
equally well, and is the only criterion when there are too few points to hold any out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._fitutil import as_1d
from ._laws_base import ConvergenceWarning, Law
from .laws import get_law

__all__ = ["fit_curve", "DEFAULT_LAWS"]

_COLUMNS = (
    "law",
    "params",
    "rmse",
    "aic",
    "extrapolation_error",
    "converged",
    "holdout_converged",
    "selected",
    "message",
)

#: The candidates tried by default.
DEFAULT_LAWS = ("power_law", "exp_decay", "exp_power_law", "logistic")


def fit_curve(
    x,
    y,
    laws: Sequence[str | Law | type[Law]] = DEFAULT_LAWS,
    sample_weight=None,
    holdout_frac: float = 0.25,
    tie_tol: float = 0.1,
) -> tuple[Law, pd.DataFrame]:
    """Fit every candidate law and select the one that extrapolates best.

    Each law is fitted on the low-compute points (all but the ``holdout_frac`` largest x)
    and scored by the RMSE of its predictions on the held-out high-compute points
    (``extrapolation_error``, in the units of y). Among converged laws, those within
    ``tie_tol`` (relative) of the smallest extrapolation error count as tied and the one
    with the lowest AIC wins. The winner is refitted on all points.

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
        Fraction of points (at least one) held out at the high-compute end. A law whose
        low-compute part has fewer points than its parameters plus one is not scored
        (``extrapolation_error`` NaN); then AIC alone decides between all candidates.
    tie_tol : float
        Relative tolerance under which extrapolation errors are considered equal.

    Returns
    -------
    winner : Law
        The selected law, fitted on all points.
    table : pandas.DataFrame
        One row per candidate, best first: ``law``, ``params`` (dict), ``rmse`` (all
        points), ``aic``, ``extrapolation_error``, ``converged``, ``holdout_converged``,
        ``selected``, ``message``.

    Examples
    --------
    >>> import numpy as np
    >>> k = 2.0 ** np.arange(9)
    >>> law, table = fit_curve(k, 0.9 - 0.5 * k**-0.4)
    >>> law.name, table.loc[0, "law"]
    ('power_law', 'power_law')
    """
    x = as_1d("x", x)
    y = as_1d("y", y, len(x))
    w = None if sample_weight is None else as_1d("sample_weight", sample_weight, len(x))
    if not 0.0 <= holdout_frac < 1.0:
        raise ValueError(f"holdout_frac must be in [0, 1), got {holdout_frac}")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    w = None if w is None else w[order]
    n_hold = max(1, math.ceil(holdout_frac * len(x))) if holdout_frac > 0 else 0
    n_fit = len(x) - n_hold

    rows, fitted = [], []
    for spec in laws:
        law = get_law(spec)
        k = len(law.param_names)
        try:
            law._check_x(x)
        except ValueError as exc:  # e.g. a power law cannot take x = 0: skip it, say why
            rows.append({"law": law.name, "params": {}, "rmse": math.nan, "aic": math.nan,
                         "extrapolation_error": math.nan, "converged": False, "holdout_converged": None,
                         "message": f"not applicable: {exc}"})  # fmt: skip
            fitted.append(None)
            continue
        extrap, hold_ok, notes = math.nan, None, []
        if n_hold and n_fit >= k + 1:
            low = law.clone()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                low.fit(x[:n_fit], y[:n_fit], None if w is None else w[:n_fit])
            hold_ok = low.converged_
            notes += [
                f"holdout fit: {c.message}" for c in caught if issubclass(c.category, ConvergenceWarning)
            ]
            extrap = float(np.sqrt(np.mean((low.predict(x[n_fit:]) - y[n_fit:]) ** 2)))
        elif n_hold:
            notes.append(f"only {n_fit} low-compute points for {k} parameters: not scored on held-out points")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            law.fit(x, y, w)
        notes += [str(c.message) for c in caught if issubclass(c.category, ConvergenceWarning)]
        fitted.append(law)
        rows.append(
            {
                "law": law.name,
                "params": dict(law.params_),
                "rmse": law.rmse_,
                "aic": law.aic_,
                "extrapolation_error": extrap,
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
