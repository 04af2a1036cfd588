"""Small numeric helpers shared by the law modules: input checks, weights, log-space
line fits for initial guesses, and JSON-safe conversion."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def binomial_weights(accuracy, n_questions, floor: float | None = None) -> np.ndarray:
    """Inverse-variance weights for accuracies measured on ``n_questions`` questions.

    .. math:: w_i = n_i / (p_i (1 - p_i)),\\qquad p_i \\in [\\tfrac{1}{2n_i}, 1 - \\tfrac{1}{2n_i}]

    With these as ``sample_weight`` the weighted residuals of a law are on a common
    (homoscedastic) scale: a point measured on more questions, or nearer 0 or 1, counts more.
    The clip keeps a point measured at exactly 0 or 1 from getting infinite weight.

    Examples
    --------
    >>> binomial_weights([0.5, 0.9], [100, 100]).round(1).tolist()
    [400.0, 1111.1]
    """
    p = np.asarray(accuracy, dtype=float)
    n = np.broadcast_to(np.asarray(n_questions, dtype=float), p.shape)
    if np.any(n <= 0) or not np.all(np.isfinite(n)):
        raise ValueError(f"n_questions must be positive and finite, got {n_questions!r}")
    lo = 0.5 / n if floor is None else np.full_like(n, floor)
    p = np.clip(p, lo, 1.0 - lo)
    return n / (p * (1.0 - p))


def as_1d(name: str, values, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values but x has {n}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}[{bad}] = {arr[bad]!r} is not finite")
    return arr


def json_safe(value: Any) -> Any:
    """Turn numpy scalars into Python ones and non-finite floats into None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def fmt_params(params: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in params.items())


def line_fit(t: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """Least-squares line ``z = intercept + slope * t`` (the log-space guesses)."""
    ok = np.isfinite(t) & np.isfinite(z)
    if ok.sum() < 2 or np.ptp(t[ok]) == 0:
        return float(np.mean(z[ok])) if ok.any() else 0.0, 0.0
    slope, intercept = np.polyfit(t[ok], z[ok], 1)
    return float(intercept), float(slope)


def ceiling_candidates(y: np.ndarray, bounds: tuple[float, float]) -> list[float]:
    """Plausible ceilings just above the data, clipped inside ``bounds``."""
    top = float(np.max(y))
    span = float(np.ptp(y)) or max(abs(top), 1.0) * 0.1
    lo, hi = bounds
    out = []
    for f in (0.05, 0.25, 1.0, 0.01, 3.0):
        c = min(top + f * span, hi - 1e-9 * max(1.0, abs(hi)))
        c = max(c, lo + 1e-9 * max(1.0, abs(lo)))
        if all(abs(c - d) > 1e-12 for d in out):
            out.append(c)
    return out


def accuracy_bounds(y: np.ndarray) -> tuple[float, float]:
    """Ceiling bounds: [0, 1] when the data look like accuracies, else a wide data-driven range."""
    if np.all((y >= 0) & (y <= 1)):
        return (0.0, 1.0)
    span = float(np.ptp(y)) or 1.0
    return (float(np.min(y) - 10 * span), float(np.max(y) + 10 * span))


def bound_hits(
    theta: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    param_names: tuple[str, ...],
    user_bounded,
    level_params: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Which fitted parameters sit on a search bound, and which of those hits mean failure.

    ``theta``, ``lo`` and ``hi`` have shape (B, p) (one row per fit). A parameter is at a bound
    when within 1e-6 (relative) of it. A hit is legitimate for a bound the user set and for a
    ceiling at an upper bound of exactly 1 (accuracy cannot exceed 1); any other hit means the
    optimizer ran into a search bound, a degenerate fit.

    Returns
    -------
    at, bad : (B, p, 2) bool
        ``[..., 0]`` the lower bound, ``[..., 1]`` the upper; ``bad`` the hits that are not
        legitimate (``bad.any(axis=(1, 2))``: the fits that failed).

    Examples
    --------
    >>> at, bad = bound_hits(np.array([[1.0, 0.2, 0.5], [0.9, 0.2, 10.0]]), np.zeros(3),
    ...     np.array([1.0, np.inf, 10.0]), ("ceiling", "scale", "alpha"), (), ("ceiling",))
    >>> at[:, :, 1].tolist(), bad.any(axis=(1, 2)).tolist()
    ([[True, False, False], [False, False, True]], [False, True])
    """
    theta = np.atleast_2d(theta)
    bounds = np.stack([np.broadcast_to(lo, theta.shape), np.broadcast_to(hi, theta.shape)], axis=-1)
    with np.errstate(invalid="ignore"):
        near = np.abs(theta[..., None] - bounds) <= 1e-6 * np.maximum(1.0, np.abs(bounds))
    at = np.isfinite(bounds) & near
    user = np.array([p in user_bounded for p in param_names])[None, :, None]
    level = np.array([p in level_params for p in param_names])[None, :]
    legit = user | np.stack(
        [np.zeros_like(bounds[..., 1], dtype=bool), level & (bounds[..., 1] == 1.0)], axis=-1
    )
    return at, at & ~legit


#: Re-estimations of the robust loss's ``f_scale`` in a two-stage fit (see ``Law.fit``).
ROBUST_ROUNDS = 4


def robust_f_scale(residuals: np.ndarray, y: np.ndarray) -> float:
    """The robust loss's scale from a fit's weighted residuals: 1.35 robust standard
    deviations (MAD), floored at 1e-6 of the range of ``y``.

    Examples
    --------
    >>> robust_f_scale(np.array([-1.0, 0.0, 1.0]), np.array([0.0, 1.0]))  # doctest: +ELLIPSIS
    2.001...
    """
    r = np.asarray(residuals, dtype=float)
    floor = 1e-6 * (float(np.ptp(y)) or 1.0)
    return max(1.35 * 1.4826 * float(np.median(np.abs(r - np.median(r)))), floor)


def inside_bounds(theta: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Move a start strictly inside the bounds (``least_squares`` requires it); a non-finite
    entry becomes the middle of its bounds (or 1 above a lone lower bound, or 0).

    Examples
    --------
    >>> inside_bounds(np.array([0.0, np.nan, 5.0]), np.zeros(3), np.array([1.0, np.inf, 2.0])).round(6).tolist()
    [0.0, 1.0, 2.0]
    """
    with np.errstate(invalid="ignore"):
        span = np.where(np.isfinite(hi - lo), hi - lo, np.maximum(np.abs(np.nan_to_num(theta)), 1.0))
        mid = np.where(np.isfinite(lo + hi), (lo + hi) / 2, np.where(np.isfinite(lo), lo + 1.0, 0.0))
    margin = 1e-9 * span + 1e-12
    return np.clip(np.where(np.isfinite(theta), theta, mid), lo + margin, hi - margin)
