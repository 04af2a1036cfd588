"""What every fitted model of :mod:`fitting` shares: the one-variable laws
(:class:`~fitting.laws.PowerLaw` and friends), :class:`~fitting.joint.JointPowerLaw`,
:class:`~fitting.betabinom.BetaBinomial` and :class:`~fitting.family.FamilyLaw`.

An estimator in the scikit-learn sense (docs/design.md, "Conventions"): ``__init__`` only stores keyword-only
settings, :meth:`FittedEstimator.fit` returns ``self``, and learned state ends in ``_``
(``params_``, ``converged_``, ``convergence_message_``, ``at_bounds_``). A failed or
degenerate fit is never returned silently: :meth:`FittedEstimator._record_convergence` sets
``converged_ = False``, says why in ``convergence_message_`` and raises a
:class:`ConvergenceWarning`. :meth:`~FittedEstimator.report` (for people) and
:meth:`~FittedEstimator.summary` (JSON-safe) are built here from each model's hooks.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ._fitutil import fmt_params, json_safe

__all__ = ["ConvergenceWarning", "UnreachableTargetWarning", "NotFittedError", "FittedEstimator"]


class ConvergenceWarning(UserWarning):
    """A fit did not converge, or converged to a degenerate solution (a shape parameter
    stuck at a search bound). The estimator's ``converged_`` is False and its
    ``convergence_message_`` says why."""


class UnreachableTargetWarning(UserWarning):
    """A requested target lies at or above the fitted ceiling: no finite compute reaches it."""


class NotFittedError(ValueError, AttributeError):
    """A method that needs fitted parameters was called before ``fit``."""


class FittedEstimator(ABC):
    """Base of every fitted model: ``fit`` returning ``self``, the fitted check, the
    convergence bookkeeping, :meth:`report`, :meth:`summary` and ``repr``.

    Subclasses set :attr:`name` (the ``law`` field of :meth:`summary`), :attr:`param_names`,
    :attr:`formula_text` and :attr:`fit_call` (how to fit, for the not-fitted error), and
    may extend :meth:`_report_lines` and :meth:`_summary_fields`.
    """

    name: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ()
    formula_text: ClassVar[str] = ""
    #: how to fit this model, quoted by :class:`NotFittedError`
    fit_call: ClassVar[str] = "fit(x, y)"

    @abstractmethod
    def fit(self, *args: Any, **kwargs: Any) -> FittedEstimator:
        """Estimate ``params_`` from data; returns ``self``."""

    # ---- state -----------------------------------------------------------------------------
    def _check_fitted(self) -> dict[str, float]:
        """The fitted ``params_``, or :class:`NotFittedError` before :meth:`fit`."""
        params = getattr(self, "params_", None)
        if params is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call {self.fit_call} first")
        return params

    def _record_convergence(self, reasons: list[str], ok: str, *, stacklevel: int = 3) -> None:
        """Set ``converged_`` and ``convergence_message_`` from the ``reasons`` the fit failed
        (none: ``ok``), and warn with a :class:`ConvergenceWarning` when there are any."""
        self.converged_ = not reasons
        self.convergence_message_ = "; ".join(reasons) if reasons else ok
        if reasons:
            params = getattr(self, "params_", None)
            warnings.warn(
                f"{type(self).__name__} fit did not converge: {self.convergence_message_}"
                + (f" (params {fmt_params(params)})" if params else ""),
                ConvergenceWarning,
                stacklevel=stacklevel,
            )

    # ---- for people and for JSON ----------------------------------------------------------
    def _report_lines(self, params: dict[str, float]) -> list[str]:
        """The lines between the formula and the convergence verdict (default: one per parameter)."""
        width = max(len(p) for p in self.param_names)
        return [f"  {p:<{width}} = {params[p]:.6g}" for p in self.param_names]

    def _report_notes(self, params: dict[str, float]) -> list[str]:
        """Closing remarks of :meth:`report` (default: none)."""
        return []

    def report(self) -> str:
        """A human-readable fit report naming parameters stuck at a bound."""
        params = self._check_fitted()
        lines = [f"{type(self).__name__}: {self.formula_text}", *self._report_lines(params)]
        lines.append(f"  converged: {'yes' if self.converged_ else 'NO'} ({self.convergence_message_})")
        for p, side, b in getattr(self, "at_bounds_", []):
            where = f" {b:.4g}" if b is not None else ""
            lines.append(f"  at a bound: {p} = {params[p]:.6g} (its {side} bound{where})")
        lines += self._report_notes(params)
        return "\n".join(lines)

    def _summary_fields(self) -> dict[str, Any]:
        """Model-specific entries of :meth:`summary` (fit statistics)."""
        return {}

    def summary(self) -> dict[str, Any]:
        """JSON-safe description of the fit (non-finite numbers become None)."""
        params = self._check_fitted()
        return json_safe(
            {
                "law": self.name,
                "formula": self.formula_text,
                "params": dict(params),
                "converged": self.converged_,
                "message": self.convergence_message_,
                "at_bounds": [
                    {"param": p, "side": s, "bound": b} for p, s, b in getattr(self, "at_bounds_", [])
                ],
                **self._summary_fields(),
            }
        )

    def __repr__(self) -> str:
        params = getattr(self, "params_", None)
        return f"{type(self).__name__}({fmt_params(params) if params else 'unfitted'})"
