"""Estimate and fit: the samples schema, all-k estimators, scaling laws, bootstrap.

Never imports torch, :mod:`profiling` or :mod:`planner`.
"""

from __future__ import annotations

from ._estimator import FittedEstimator
from .betabinom import BetaBinomial, beta_pass_at_k
from .curves import assign_difficulty, curves_from_samples, difficulty_bins, per_question_curves
from .estimators import (
    VoteEstimate,
    best_of_curve,
    best_of_k,
    majority_at_k,
    majority_curve,
    pass_at_k,
    weighted_vote_at_k,
)
from .family import FamilyLaw
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
    "VoteEstimate",
    "assign_difficulty",
    "best_of_curve",
    "best_of_k",
    "curves_from_samples",
    "difficulty_bins",
    "majority_at_k",
    "majority_curve",
    "pass_at_k",
    "per_question_curves",
    "weighted_vote_at_k",
]
__all__ += [
    "LAWS",
    "BetaBinomial",
    "BootstrapResult",
    "ConvergenceWarning",
    "ExpDecay",
    "ExpPowerLaw",
    "FamilyLaw",
    "FittedEstimator",
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
