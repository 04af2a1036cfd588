"""What is possible and what it is worth: arms and options (:mod:`.arms`), their measured
usage (:mod:`.curve`), predicted accuracy and where it comes from (:mod:`.predict`), pricing
with the cost model (:mod:`.pricing`) and the evaluated option space (:mod:`.option_space`)."""

from __future__ import annotations

from .arms import Arm, ArmSource, Option, arm_display_knobs, arms_from_curves, knob_grid, simulated_reason
from .curve import ArmCurve, Coster, FamilyCurve, Usage
from .option_space import ALL, ExtraModel, OptionSpace, parse_target
from .predict import (
    MAX_EXTRAPOLATION,
    MIN_POINTS_TO_EXTRAPOLATE,
    CurvePredictor,
    ExtrapolationRefused,
    FamilyLawFailed,
    FamilyPredictor,
    Predictions,
    mix_predictions,
    predictor_for_points,
    worst_source,
)
from .pricing import GPU_MEMORY_USABLE, CostModel, workload_for

__all__ = [
    "ALL",
    "MAX_EXTRAPOLATION",
    "MIN_POINTS_TO_EXTRAPOLATE",
    "Arm",
    "ArmCurve",
    "ArmSource",
    "CostModel",
    "Coster",
    "CurvePredictor",
    "ExtraModel",
    "ExtrapolationRefused",
    "FamilyCurve",
    "FamilyLawFailed",
    "FamilyPredictor",
    "GPU_MEMORY_USABLE",
    "Option",
    "OptionSpace",
    "Predictions",
    "Usage",
    "arm_display_knobs",
    "arms_from_curves",
    "knob_grid",
    "mix_predictions",
    "parse_target",
    "predictor_for_points",
    "simulated_reason",
    "workload_for",
    "worst_source",
]
