r"""Accuracy across a model family: a joint power law in size and compute, with a
leave-one-size-out test of how well it predicts a size it has not seen.

.. math:: 1 - \mathrm{acc}(P, k) = E + A P^{-\alpha} + B k^{-\beta}

with ``P`` the parameter count (active parameters for an MoE family) and ``k`` the compute
knob (Wu et al. 2024, "Inference scaling laws"), fitted with :class:`~fitting.joint.JointPowerLaw`
to every point of one (strategy, config, metric, difficulty) across the family's models.

The law is refitted without each model in turn; the RMSE of its predictions of that model's
points measures how well the family law predicts an unseen size. Held-out interior sizes give
the error inside the profiled range (interpolation), the held-out smallest and largest sizes the
error outside it (extrapolation; with three sizes that rests on two, so it is usually large, as
it should be). :mod:`planner.space.family` turns these errors into prediction intervals.

Every fit is checked. The joint fit is what predicts: if it does not converge, ``converged_``
is False, ``convergence_message_`` says why and a :class:`~fitting.ConvergenceWarning` is
raised (the planner then does not use the law). A leave-one-out refit that ends degenerate
is part of what is measured (with two sizes left the size exponent is often not identified
and runs to its bound): its prediction error counts in the RMSE as it is, and the failure
is listed in ``loo_notes_`` (and in :meth:`~FamilyLaw.report` and the planner's notes).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._estimator import ConvergenceWarning, FittedEstimator
from ._fitutil import as_1d
from .joint import JointPowerLaw

__all__ = ["FamilyLaw", "MIN_SIZES"]

#: distinct model sizes a family law needs (leaving one out must leave two)
MIN_SIZES = 3


class FamilyLaw(FittedEstimator):
    r"""Joint power law across a model family with leave-one-size-out errors (module docstring).

    Parameters
    ----------
    grid_size, n_refine, max_iter : int
        Settings of each :class:`~fitting.joint.JointPowerLaw` fit (a coarser grid and fewer
        starts than its defaults: a family has few points, and 1 + sizes fits are made).
    loo_max_iter : int
        Iteration budget of the leave-one-out refits: with one size left out the size term is
        barely identified and L-BFGS-B can crawl along a flat valley; a short budget only
        makes the measured error larger.

    Attributes
    ----------
    params_ : dict
        ``E, A, B, alpha, beta`` of the law fitted to every model.
    law_ : JointPowerLaw
        That fit.
    space_ : {"log", "linear"}
        Where residuals were measured (log needs every error > 0).
    loo_rmse_inside_, loo_rmse_outside_ : float
        Leave-one-size-out RMSE (accuracy units) of the interior and of the end sizes.
    loo_notes_ : list of str
        The leave-one-out refits that did not converge, and why.
    sizes_ : dict
        Model -> parameter count.

    Examples
    --------
    >>> import numpy as np
    >>> sizes, ks = [1e6, 4e6, 1.6e7, 6.4e7], [1.0, 2, 4, 8, 16]
    >>> P, K = (a.ravel() for a in np.meshgrid(sizes, ks, indexing="ij"))
    >>> acc = 1 - (0.05 + 30 * P**-0.3 + 0.2 * K**-0.5)
    >>> fam = FamilyLaw().fit(np.column_stack([P, K]), acc, np.repeat(["s", "m", "l", "xl"], 5))
    >>> fam.converged_, round(fam.params_["alpha"], 2), fam.loo_rmse_ < 1e-3
    (True, 0.3, True)
    """

    name = "family_power_law"
    param_names = ("E", "A", "B", "alpha", "beta")
    formula_text = "1 - accuracy = E + A * size**(-alpha) + B * k**(-beta)"
    fit_call = "fit(X, accuracy, groups)"

    def __init__(
        self, *, grid_size: int = 16, n_refine: int = 3, max_iter: int = 3000, loo_max_iter: int = 400
    ) -> None:
        self.grid_size = grid_size
        self.n_refine = n_refine
        self.max_iter = max_iter
        self.loo_max_iter = loo_max_iter

    def _law(self, max_iter: int | None = None) -> JointPowerLaw:
        delta = 1e-3 if self.space_ == "log" else 1e-2
        return JointPowerLaw(
            space=self.space_,
            delta=delta,
            grid_size=self.grid_size,
            n_refine=self.n_refine,
            max_iter=max_iter or self.max_iter,
        )

    def _fit_one(self, X: np.ndarray, err: np.ndarray, max_iter: int, what: str, notes: list[str]):
        """One joint fit; its :class:`ConvergenceWarning`, if any, becomes one of ``notes``."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            law = self._law(max_iter).fit(X, err)
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                notes.append(f"{what}: {law.convergence_message_}")
            else:  # anything else is not ours to swallow
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return law

    def fit(self, X, accuracy, groups: Sequence[str]) -> FamilyLaw:
        """Fit to rows ``X[i] = (size_i, k_i)`` with measured ``accuracy[i]`` of model ``groups[i]``.

        Raises ValueError with fewer than :data:`MIN_SIZES` distinct sizes or a model whose
        rows disagree on its size.
        """
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"FamilyLaw: X must have shape (n, 2) = (size, k) columns, got {X.shape}")
        acc = as_1d("accuracy", accuracy, len(X))
        owner = np.asarray([str(g) for g in groups])
        if owner.shape != (len(X),):
            raise ValueError(f"FamilyLaw: groups must have one entry per row ({len(X)}), got {owner.shape}")
        sizes = {}
        for g in dict.fromkeys(owner.tolist()):
            vals = np.unique(X[owner == g, 0])
            if len(vals) != 1:
                raise ValueError(f"FamilyLaw: model {g!r} has several sizes {vals.tolist()}")
            sizes[g] = float(vals[0])
        if len(set(sizes.values())) < MIN_SIZES:
            raise ValueError(
                f"FamilyLaw needs at least {MIN_SIZES} model sizes (one is left out in turn), got {sizes}"
            )
        err = 1.0 - acc
        self.space_ = "log" if np.all(err > 0) else "linear"
        reasons: list[str] = []
        self.law_ = self._fit_one(X, err, self.max_iter, "joint fit", reasons)
        p_min, p_max = min(sizes.values()), max(sizes.values())
        inside, outside, self.loo_notes_ = [], [], []
        for g, size in sizes.items():
            keep = owner != g
            law = self._fit_one(X[keep], err[keep], self.loo_max_iter, f"refit without {g}", self.loo_notes_)
            pred = np.clip(law.predict(X[~keep]), 0.0, 1.0)
            (inside if p_min < size < p_max else outside).append((pred - err[~keep]) ** 2)
        self.sizes_ = sizes
        self.params_ = dict(self.law_.params_)
        self.loo_rmse_inside_ = float(np.sqrt(np.mean(np.concatenate(inside)))) if inside else float("nan")
        self.loo_rmse_outside_ = float(np.sqrt(np.mean(np.concatenate(outside))))
        self.n_points_ = len(X)
        self._record_convergence(reasons, self.law_.convergence_message_)
        return self

    @property
    def loo_rmse_(self) -> float:
        """The larger of the two leave-one-size-out errors."""
        return float(np.nanmax([self.loo_rmse_inside_, self.loo_rmse_outside_]))

    def predict(self, X) -> np.ndarray:
        """Predicted accuracy at rows ``X[i] = (size_i, k_i)``, clipped to [0, 1]."""
        self._check_fitted()
        return np.clip(1.0 - self.law_.predict(X), 0.0, 1.0)

    def state(self) -> dict[str, Any]:
        """What :meth:`from_state` needs to rebuild this fit without refitting (JSON-safe)."""
        self._check_fitted()
        return {
            "params": dict(self.params_),
            "space": self.space_,
            "loo_inside": self.loo_rmse_inside_,
            "loo_outside": self.loo_rmse_outside_,
            "sizes": dict(self.sizes_),
            "converged": self.converged_,
            "message": self.convergence_message_,
            "loo_notes": list(self.loo_notes_),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], **settings: Any) -> FamilyLaw:
        """A fitted family law from :meth:`state` (e.g. a cache of an identical earlier fit)."""
        fam = cls(**settings)
        fam.space_ = state["space"]
        fam.law_ = fam._law()
        fam.law_.params_ = {k: float(state["params"][k]) for k in cls.param_names}
        fam.params_ = dict(fam.law_.params_)
        fam.loo_rmse_inside_ = float(state["loo_inside"])
        fam.loo_rmse_outside_ = float(state["loo_outside"])
        fam.sizes_ = {k: float(v) for k, v in state["sizes"].items()}
        fam.converged_ = bool(state["converged"])
        fam.convergence_message_ = str(state["message"])
        fam.loo_notes_ = [str(n) for n in state.get("loo_notes", [])]
        return fam

    def _report_lines(self, params: dict[str, float]) -> list[str]:
        sizes = ", ".join(f"{g} {p:.3g}" for g, p in self.sizes_.items())
        return [
            f"  sizes: {sizes}; residuals in {self.space_} space",
            *super()._report_lines(params),
            f"  leave-one-size-out RMSE: inside {self.loo_rmse_inside_:.4g}, outside {self.loo_rmse_outside_:.4g}",
        ]

    def _report_notes(self, params: dict[str, float]) -> list[str]:
        return [f"  leave-one-out {n}" for n in self.loo_notes_]

    def _summary_fields(self) -> dict[str, Any]:
        return {
            "space": self.space_,
            "loo_rmse_inside": self.loo_rmse_inside_,
            "loo_rmse_outside": self.loo_rmse_outside_,
            "sizes": dict(self.sizes_),
            "loo_notes": list(self.loo_notes_),
        }
