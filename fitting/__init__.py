"""Estimate and fit: the samples schema, all-k estimators, scaling laws, bootstrap.

Never imports torch, :mod:`profiling` or :mod:`planner`.
"""

from __future__ import annotations

from .betabinom import BetaBinomial, beta_pass_at_k
from .joint import JointPowerLaw
from .laws import (
    LAWS,
    ConvergenceWarning,
    ExpDecay,
    ExpPowerLaw,
    Law,
    Logistic,
    NotFittedError,
    PowerLaw,
    UnreachableTargetWarning,
    binomial_weights,
    get_law,
)
from .schema import SchemaError, read_samples, validate_samples
from .select import fit_curve
from .uncertainty import BootstrapResult, Interval, bootstrap_questions, compute_to_target, saturation_point

__all__ = ["SchemaError", "read_samples", "validate_samples"]
__all__ += [
    "LAWS",
    "BetaBinomial",
    "BootstrapResult",
    "ConvergenceWarning",
    "ExpDecay",
    "ExpPowerLaw",
    "Interval",
    "JointPowerLaw",
    "Law",
    "Logistic",
    "NotFittedError",
    "PowerLaw",
    "UnreachableTargetWarning",
    "beta_pass_at_k",
    "binomial_weights",
    "bootstrap_questions",
    "compute_to_target",
    "fit_curve",
    "get_law",
    "saturation_point",
]
