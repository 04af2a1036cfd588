"""Estimate and fit: the samples schema, all-k estimators, scaling laws, bootstrap.

Never imports torch, :mod:`profiling` or :mod:`planner`.
"""

from __future__ import annotations

from ._estimator import FittedEstimator
from .betabinom import BetaBinomial, beta_pass_at_k
from .counts import counts_from_samples, curves_from_counts
from .coverage import BetaBinomialPosterior
from .curves import (
    DataWarning,
    assign_difficulty,
    curves_from_samples,
    difficulty_bins,
    k_grid,
    per_question_curves,
)
from .estimators import (
    VoteEstimate,
    best_of_curve,
    best_of_k,
    majority_at_k,
    majority_curve,
    majority_estimate,
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
from .schema import SchemaError, read_counts, read_samples, validate_counts, validate_samples
from .select import fit_curve
from .uncertainty import BootstrapResult, Interval, bootstrap_questions, compute_to_target, saturation_point

__all__ = ["SchemaError", "read_counts", "read_samples", "validate_counts", "validate_samples"]
__all__ += [
    "DataWarning",
    "VoteEstimate",
    "assign_difficulty",
    "best_of_curve",
    "best_of_k",
    "counts_from_samples",
    "curves_from_counts",
    "curves_from_samples",
    "difficulty_bins",
    "k_grid",
    "majority_at_k",
    "majority_curve",
    "majority_estimate",
    "pass_at_k",
    "per_question_curves",
    "weighted_vote_at_k",
]
__all__ += [
    "LAWS",
    "BetaBinomial",
    "BetaBinomialPosterior",
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
