"""A power law in two variables, the joint law the planner uses to predict unprofiled sizes.

.. math:: y = E + A\\, x_1^{-\\alpha} + B\\, x_2^{-\\beta}

In the lab, ``x1`` is the model's parameter count, ``x2`` the number of samples k and
``y`` the error ``1 - accuracy``; in Chinchilla (Hoffmann et al. 2022) ``x1 = N``
parameters, ``x2 = D`` training tokens and ``y`` the loss. :class:`JointPowerLaw`
reproduces the published replication fit of the Chinchilla data (Besiroglu et al. 2024) in
well under a second: see ``tests/fitting/test_chinchilla.py``.

How the fit works (fast and global enough without thousands of starts):

1. Variable projection: for fixed exponents the law is linear in ``(E, A, B)``, so a grid
   of ``(alpha, beta)`` pairs each gets its best non-negative ``(E, A, B)`` from one small
   NNLS solve (rows scaled by ``1 / y`` in log space, so the residuals are relative).
2. Every grid point is scored by the real objective; the best few distinct ones start
3. L-BFGS-B on the real objective with its analytic gradient, in the parameterization
   ``A = exp(a)``, ``B = exp(b)``, ``E = exp(e)`` (positive by construction) with ``log x``
   centered for conditioning.

The objective (``space="log"``, the default, as in the replication) is

.. math:: \\sum_i w_i\\, \\rho_\\delta\\big(\\mathrm{LSE}(a - \\alpha \\ln x_{1i},\\ b - \\beta \\ln x_{2i},\\ e)
          - \\ln y_i\\big)

with :math:`\\rho_\\delta` the Huber loss (quadratic below ``delta``, linear above:
robust to outliers) or ``loss="squared"``. ``space="linear"`` uses
:math:`\\rho_\\delta(\\hat y_i - y_i)` instead (needed when some ``y`` are 0; then set
``delta`` in the units of ``y``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.optimize import minimize, nnls

from ._estimator import FittedEstimator, UnreachableTargetWarning
from ._fitutil import as_1d

__all__ = ["JointPowerLaw", "joint_objective"]

_PARAMS = ("E", "A", "B", "alpha", "beta")


def joint_objective(theta, l1, l2, logy, w, space: str = "log", loss: str = "huber", delta: float = 1e-3):
    """The fit objective and its gradient at ``theta = (a, b, e, alpha, beta)``.

    ``l1``, ``l2`` are the (centered) logs of the two variables, ``logy`` the log of y
    (``space="log"``) or y itself (``space="linear"``), ``w`` the per-point weights.

    Returns
    -------
    (float, ndarray of shape (5,))
    """
    a, b, e, alpha, beta = theta
    t1 = a - alpha * l1
    t2 = b - beta * l2
    m = np.maximum(np.maximum(t1, t2), e)
    e1, e2, e3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(e - m)
    s = e1 + e2 + e3
    lse = m + np.log(s)  # log of the prediction
    if space == "log":
        r = lse - logy
        scale = np.ones_like(r)
    else:
        pred = np.exp(lse)
        r = pred - logy
        scale = pred  # d pred / d lse
    if loss == "huber":
        ar = np.abs(r)
        f = np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))
        psi = np.clip(r, -delta, delta)
    else:
        f = 0.5 * r * r
        psi = r
    g = w * psi * scale / s
    grad = np.array([g @ e1, g @ e2, g @ e3, -(g * e1) @ l1, -(g * e2) @ l2])
    return float(w @ f), grad


class JointPowerLaw(FittedEstimator):
    r"""Two-variable power law with an irreducible term.

    .. math:: y = E + A\, x_1^{-\alpha} + B\, x_2^{-\beta},\qquad E, A, B \ge 0,\ 0 < \alpha, \beta \le 10

    Parameters
    ----------
    space : {"log", "linear"}
        Where residuals are measured: ``log y_hat - log y`` (relative errors; needs y > 0;
        the Chinchilla replication's choice) or ``y_hat - y``.
    loss : {"huber", "squared"}
        Huber loss with threshold ``delta`` (robust to outlying runs) or squared error.
    delta : float
        Huber threshold in residual units (log units for ``space="log"``: 1e-3 is 0.1 %).
    grid_size : int
        Points per exponent on the variable-projection grid (``grid_size**2`` NNLS solves).
    exponent_max : float
        Largest exponent on the grid (the optimizer may go up to 10).
    n_refine : int
        How many of the best grid points start an L-BFGS-B run.
    max_iter : int
        Iteration budget of each L-BFGS-B run.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([10 ** rng.uniform(5, 7, 60), 2.0 ** rng.integers(0, 9, 60)])
    >>> y = 0.05 + 300 * X[:, 0] ** -0.5 + 0.4 * X[:, 1] ** -0.7
    >>> law = JointPowerLaw().fit(X, y)
    >>> round(law.params_["alpha"], 3), round(law.params_["beta"], 3)
    (0.5, 0.7)
    """

    name = "joint_power_law"
    param_names = _PARAMS
    formula_text = "y = E + A * x1**(-alpha) + B * x2**(-beta)"
    fit_call = "fit(X, y)"

    def __init__(
        self,
        *,
        space: str = "log",
        loss: str = "huber",
        delta: float = 1e-3,
        grid_size: int = 40,
        exponent_max: float = 2.5,
        n_refine: int = 8,
        max_iter: int = 10_000,
    ) -> None:
        self.space = space
        self.loss = loss
        self.delta = delta
        self.grid_size = grid_size
        self.exponent_max = exponent_max
        self.n_refine = n_refine
        self.max_iter = max_iter

    def _check_X(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"JointPowerLaw: X must have shape (n, 2) = (x1, x2) columns, got {X.shape}")
        if not np.all(np.isfinite(X)) or np.any(X <= 0):
            raise ValueError("JointPowerLaw: X must be positive and finite (model size, compute)")
        return X

    def fit(self, X, y, sample_weight=None) -> JointPowerLaw:
        """Fit to rows ``X[i] = (x1_i, x2_i)`` with targets ``y_i`` (returns self)."""
        if self.space not in ("log", "linear"):
            raise ValueError(f"JointPowerLaw: space must be 'log' or 'linear', got {self.space!r}")
        if self.loss not in ("huber", "squared"):
            raise ValueError(f"JointPowerLaw: loss must be 'huber' or 'squared', got {self.loss!r}")
        X = self._check_X(X)
        y = as_1d("y", y, len(X))
        if len(y) < 5:
            raise ValueError(f"JointPowerLaw has 5 parameters but got only {len(y)} points")
        if self.space == "log" and np.any(y <= 0):
            raise ValueError(
                "JointPowerLaw(space='log') needs y > 0 (a zero error or loss); use space='linear'"
            )
        w = np.ones_like(y) if sample_weight is None else as_1d("sample_weight", sample_weight, len(y))
        if np.any(w < 0) or w.sum() <= 0:
            raise ValueError("sample_weight must be non-negative with a positive sum")
        w = w / w.mean()
        L1, L2 = np.log(X[:, 0]), np.log(X[:, 1])
        m1, m2 = float(L1.mean()), float(L2.mean())
        l1, l2 = L1 - m1, L2 - m2
        target = np.log(y) if self.space == "log" else y

        starts = self._grid_starts(l1, l2, y, w, target)
        bounds = [(None, None)] * 3 + [(0.0, 10.0)] * 2
        best = None
        for theta0 in starts:
            with np.errstate(all="ignore"):
                res = minimize(
                    joint_objective,
                    theta0,
                    args=(l1, l2, target, w, self.space, self.loss, self.delta),
                    jac=True,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"maxiter": self.max_iter, "ftol": 1e-15, "gtol": 1e-12},
                )
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
        a, b, e, alpha, beta = best.x
        self.params_ = {
            "E": float(np.exp(e)),
            "A": float(np.exp(a + alpha * m1)),
            "B": float(np.exp(b + beta * m2)),
            "alpha": float(alpha),
            "beta": float(beta),
        }
        self.objective_ = float(best.fun)
        self.n_points_ = len(y)
        reasons = []
        # ABNORMAL line-search ends are common at a flat optimum; count them as converged
        # when the projected gradient is tiny relative to the objective.
        gnorm = float(np.max(np.abs(best.jac)))
        if not (best.success or gnorm <= 1e-6 * max(best.fun, 1e-12) + 1e-10):
            reasons.append(f"L-BFGS-B stopped: {best.message}")
        self.at_bounds_ = []
        for name, v in (("alpha", alpha), ("beta", beta)):
            for side, bound in (("lower", 0.0), ("upper", 10.0)):
                if abs(v - bound) <= 1e-6:
                    self.at_bounds_.append((name, side, bound))
                    reasons.append(f"{name} stuck at its {side} search bound {bound}")
        pred = self.predict(X)
        if not np.all(np.isfinite(pred)):
            reasons.append("non-finite predictions")
        self.rmse_ = float(np.sqrt(np.mean((pred - y) ** 2)))
        self.rmse_log_ = float(
            np.sqrt(np.mean((np.log(np.maximum(pred, 1e-300)) - np.log(np.abs(y) + 1e-300)) ** 2))
        )
        self._record_convergence(reasons, f"ok ({best.message})")
        return self

    def _grid_starts(self, l1, l2, y, w, target) -> list[np.ndarray]:
        """Variable projection on an (alpha, beta) grid, scored by the true objective."""
        exps = np.linspace(self.exponent_max / self.grid_size, self.exponent_max, self.grid_size)
        row = np.sqrt(w) / (y if self.space == "log" else 1.0)
        ones = np.ones_like(l1)
        floor = 1e-8 * float(np.mean(np.abs(y)))
        cands = []
        for alpha in exps:
            u = np.exp(-alpha * l1)
            for beta in exps:
                v = np.exp(-beta * l2)
                coef, _ = nnls(np.column_stack([ones, u, v]) * row[:, None], y * row)
                E, A, B = np.maximum(coef, floor)
                cands.append((np.log(A), np.log(B), np.log(E), alpha, beta))
        cands = np.array(cands)  # (g*g, 5)
        # vectorized objective for every candidate
        a, b, e, al, be = (cands[:, i : i + 1] for i in range(5))
        pred_log = np.logaddexp(np.logaddexp(a - al * l1, b - be * l2), e)
        r = pred_log - target if self.space == "log" else np.exp(pred_log) - target
        if self.loss == "huber":
            ar = np.abs(r)
            f = np.where(ar <= self.delta, 0.5 * r * r, self.delta * (ar - 0.5 * self.delta))
        else:
            f = 0.5 * r * r
        scores = f @ w
        order = np.argsort(scores)
        chosen: list[np.ndarray] = []
        step = exps[1] - exps[0] if len(exps) > 1 else 1.0
        for i in order:
            c = cands[i]
            # keep starts apart in (alpha, beta) so they explore different basins
            if all(max(abs(c[3] - d[3]), abs(c[4] - d[4])) > 1.5 * step for d in chosen):
                chosen.append(c)
            if len(chosen) >= self.n_refine:
                break
        return chosen

    def predict(self, X) -> np.ndarray:
        """The fitted surface at rows ``X[i] = (x1_i, x2_i)``."""
        p = self._check_fitted()
        X = self._check_X(X)
        return p["E"] + p["A"] * X[:, 0] ** -p["alpha"] + p["B"] * X[:, 1] ** -p["beta"]

    def inverse(self, target, x1) -> np.ndarray:
        r"""The ``x2`` (e.g. samples k) at which ``y`` falls to ``target`` for a given ``x1``.

        .. math:: x_2 = \big(B / (\mathrm{target} - E - A x_1^{-\alpha})\big)^{1/\beta}

        inf (with an :class:`UnreachableTargetWarning`) where the floor
        ``E + A x1**-alpha`` is at or above the target.
        """
        p = self._check_fitted()
        t, x1 = np.broadcast_arrays(np.asarray(target, dtype=float), np.asarray(x1, dtype=float))
        floor = p["E"] + p["A"] * x1 ** -p["alpha"]
        with np.errstate(all="ignore"):
            x2 = (p["B"] / (t - floor)) ** (1.0 / p["beta"])
        bad = t <= floor
        if np.any(bad):
            warnings.warn(
                f"target {float(np.min(t[bad])):.4g} is at or below the floor E + A*x1**-alpha = "
                f"{float(np.max(floor[bad])):.4g} at that x1: no x2 reaches it (returned inf)",
                UnreachableTargetWarning,
                stacklevel=2,
            )
        return np.where(bad, np.inf, x2)

    def _report_lines(self, params: dict[str, float]) -> list[str]:
        return [
            f"  {self.n_points_} points, space {self.space}, loss {self.loss} (delta {self.delta:g})",
            *super()._report_lines(params),
            f"  objective {self.objective_:.6g}, rmse {self.rmse_:.4g}, rmse(log) {self.rmse_log_:.4g}",
        ]

    def _report_notes(self, params: dict[str, float]) -> list[str]:
        top = max(params["E"], params["A"], params["B"])
        return [
            f"  note: {name} is ~0 (that term does not explain the data)"
            for name in ("E", "A", "B")
            if params[name] < 1e-6 * top
        ]

    def _summary_fields(self) -> dict[str, Any]:
        return {
            "objective": self.objective_,
            "rmse": self.rmse_,
            "space": self.space,
            "loss": self.loss,
            "delta": self.delta,
            "n_points": self.n_points_,
        }
