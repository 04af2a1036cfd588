r"""How sure is a choice, and what is one more measurement worth? (value of information)

Everything here reads one matrix ``A`` of shape (B, O): replicate ``b`` of the joint question
bootstrap (:meth:`planner.split_engine.HeldOut.replicates`: the questions resampled once per
replicate and shared by every option, so correlations between options are kept) gives each
of the ``O`` feasible options an accuracy ``A[b, o]``. Taking each replicate as a possible
truth:

.. math:: P(\text{best}) = \frac1B \sum_b 1[A_{b,c} = \max_o A_{b,o}], \qquad
          \mathrm{E}[\text{regret}] = \frac1B \sum_b \big(\max_o A_{b,o} - A_{b,c}\big)

for the choice ``c`` (ties count as best).

:func:`preposterior_value` is the expected reduction in regret from one measurement, by
preposterior simulation (the knowledge gradient with correlated beliefs; Frazier, Powell and
Dayanik 2009, "The knowledge-gradient policy for correlated normal beliefs", INFORMS J.
Computing 21:599-613). Replicate ``b`` is the truth; the measurement would show ``y[b]`` plus
noise of variance ``noise_var``; each updated option's estimate moves by the linear (Gaussian)
update with the covariance of the replicates,

.. math:: \mu'_{b,o} = \mu_o + \frac{\mathrm{Cov}_b(A_{\cdot,o}, y)}{\mathrm{Var}_b(y) + v}
          \,(y_b + \sqrt{v}\,\varepsilon_b - \bar y),

the planner re-chooses the option with the largest ``mu'`` among those it may then choose, and
the regret of that choice under the truth ``b`` is averaged over ``b``. A measurement that
cannot change the choice is worth exactly 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["p_best", "expected_regret", "best_of", "preposterior_value"]

#: two accuracies this close are a tie (the choice counts as best)
TIE = 1e-12


def _check(A: np.ndarray, choice: int) -> np.ndarray:
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[1] == 0:
        raise ValueError(f"A must be (replicates, options) with at least one option, got shape {A.shape}")
    if not 0 <= choice < A.shape[1]:
        raise ValueError(f"choice {choice} is not a column of A ({A.shape[1]} options)")
    if not np.all(np.isfinite(A)):
        raise ValueError("A has non-finite entries")
    return A


def p_best(A, choice: int) -> float:
    """Share of replicates in which option ``choice`` is (one of) the most accurate.

    Examples
    --------
    >>> p_best([[0.5, 0.4], [0.5, 0.6], [0.7, 0.7]], 0)
    0.6666666666666666
    """
    A = _check(A, choice)
    return float(np.mean(A[:, choice] >= A.max(axis=1) - TIE))


def expected_regret(A, choice: int) -> float:
    """Mean over replicates of the best accuracy minus the choice's (accuracy units).

    Examples
    --------
    >>> round(expected_regret([[0.5, 0.4], [0.5, 0.6]], 0), 6)
    0.05
    """
    A = _check(A, choice)
    return float(np.mean(A.max(axis=1) - A[:, choice]))


def best_of(mu, allowed) -> int:
    """The column with the largest estimate among the ``allowed`` ones (first on ties)."""
    mu = np.asarray(mu, dtype=float)
    allowed = np.asarray(allowed, dtype=bool)
    if not allowed.any():
        raise ValueError("no option is allowed")
    return int(np.argmax(np.where(allowed, mu, -np.inf)))


def preposterior_value(A, mu, y, noise_var: float, *, updated, before, after=None, eps=None) -> float:
    """Expected reduction in regret (accuracy units) from observing ``y`` (module docstring).

    Parameters
    ----------
    A : (B, O) replicates of the options' accuracy (each replicate a possible truth).
    mu : (O,) the current estimates; the current choice is the best of them among ``before``.
    y : (B,) what the measurement would show under each truth (before noise).
    noise_var : variance of the measurement's noise.
    updated : (O,) bool, the options whose estimates the measurement informs.
    before, after : (O,) bool, the options the planner may choose now, and after the
        measurement (default: the same), e.g. a larger pool brings further options in reach.
    eps : (B,) standard normal draws of the noise (default: none, a noiseless measurement).
    """
    A = np.asarray(A, dtype=float)
    mu, y = np.asarray(mu, dtype=float), np.asarray(y, dtype=float)
    updated, before = np.asarray(updated, dtype=bool), np.asarray(before, dtype=bool)
    after = before if after is None else np.asarray(after, dtype=bool)
    B = A.shape[0]
    if mu.shape != (A.shape[1],) or y.shape != (B,):
        raise ValueError(f"mu must have shape ({A.shape[1]},) and y ({B},), got {mu.shape} and {y.shape}")
    c0 = best_of(mu, before)
    top = A.max(axis=1)
    now = float(np.mean(top - A[:, c0]))
    yc = y - y.mean()
    denominator = float(yc @ yc) / B + float(noise_var)
    cov = (A[:, updated] - A[:, updated].mean(axis=0)).T @ yc / B
    gain = cov / denominator if denominator > 0 else np.zeros(int(updated.sum()))
    shown = yc + (np.sqrt(noise_var) * np.asarray(eps, dtype=float) if eps is not None else 0.0)
    post = np.broadcast_to(np.where(after, mu, -np.inf), A.shape).copy()
    post[:, updated & after] += (shown[:, None] * gain[None, :])[:, after[updated]]
    pick = np.argmax(post, axis=1)
    later = float(np.mean(top - A[np.arange(B), pick]))
    return now - later
