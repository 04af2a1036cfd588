"""An arm's data in one difficulty bin: its profiled points, the work one query measured
(:class:`Usage`, what the coster prices) and the predictor of its accuracy.

:class:`ArmCurve` is a profiled arm; :class:`FamilyCurve` an unprofiled size of a profiled
family (predicted by the family law, with the nearest profiled size's measured usage).
Mean usage between profiled knob values is interpolated linearly and extrapolated linearly
beyond them (exact for a pool, whose cost is linear in n).

Each question's own tokens (:attr:`Usage.mixes`, a :class:`~planner.costs.QuestionMix` per
knob value, from :mod:`planner.space.question_table`) are what options are priced from. A pool's
samples do not depend on n, so every n is priced on the same questions and chains (a pool
of n draws n of a question's samples). A one-execution arm (greedy, beam, refine, budget)
has one mix per profiled knob value; between and beyond them the nearest profiled value's
per-question lengths are scaled to the interpolated mean (the spread of lengths is assumed
to scale with their mean).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fitting import schema as S

from ..constants import KNOB_VALUE
from ..costs import QuestionMix
from .arms import Arm
from .predict import CurvePredictor, FamilyPredictor, Predictions

__all__ = ["Usage", "Coster", "ArmCurve", "FamilyCurve"]


@dataclass(frozen=True)
class Usage:
    """Measured work of one query of an option (arrays over knob values).

    Attributes
    ----------
    prompt_tokens : prompt tokens processed per query (a pool shares one prompt).
    completion_tokens : generated tokens per query, over all its samples or calls.
    sequences : sequences decoded at the same time for one query (n of a pool, width x
        expansions of a beam step, 1 for sequential strategies; from the strategy's descriptor).
    latency_s : measured wall time per query on the profiling machine (NaN if unknown).
    kv_bytes : measured peak KV-cache bytes per query on the profiling machine (NaN if unknown).
    base_prompt_tokens : the question's prompt length (what a cost workload starts from); the
        measured ``prompt_tokens`` of a multi-call strategy sums every call's resent context.
    mixes : per knob value, the questions with their prompts and per-sample chain lengths
        (:class:`~planner.costs.QuestionMix`; None where only the means are known).
    """

    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    sequences: np.ndarray
    latency_s: np.ndarray
    kv_bytes: np.ndarray
    base_prompt_tokens: np.ndarray | None = None
    mixes: tuple[QuestionMix | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.base_prompt_tokens is None:
            object.__setattr__(self, "base_prompt_tokens", self.prompt_tokens)

    def __len__(self) -> int:
        return len(self.prompt_tokens)


#: a coster: (arm, knob values, measured usage at those values) -> {cost key: array}; a coster
#: that reports a ``tp`` column also takes ``tp=`` (one degree per knob value) to pin it
Coster = Callable[..., Mapping[str, np.ndarray]]


def _extrap_linear(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Linear interpolation, extended linearly beyond the last point (slope of the last two)."""
    out = np.interp(x, xp, fp)
    if len(xp) >= 2:
        slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
        out = np.where(x > xp[-1], fp[-1] + slope * (x - xp[-1]), out)
    else:
        out = np.where(x > xp[-1], fp[-1] * x / xp[-1], out)
    return out


def _shape_of(arm: Arm, value: float):
    """The workload shape of ``arm`` at knob ``value``; None for a strategy without a descriptor."""
    return arm.workload_shape(value) if arm.descriptor is not None else None


@dataclass
class ArmCurve:
    """An arm's data for one difficulty: profiled points, their usage, and a predictor.

    ``points`` has columns :data:`~planner.constants.KNOB_VALUE`, ``accuracy``,
    ``accuracy_lo``, ``accuracy_hi``, ``n_questions`` and the mean-cost columns of the
    curves table, one row per profiled knob value.
    """

    arm: Arm
    difficulty: str
    points: pd.DataFrame
    predictor: CurvePredictor
    fit_note: str = ""
    base_prompt_tokens: float | None = None  # the question prompt, from a one-call arm of the model
    #: each question's tokens: (knob value, mix) per profiled value, or one (None, mix) for a pool
    token_mixes: list[tuple[float | None, QuestionMix]] | None = None

    def usage(self, x) -> Usage:
        """Measured usage at knob values ``x`` (module docstring)."""
        x = np.atleast_1d(np.asarray(x, dtype=float))
        p = self.points
        xp = p[KNOB_VALUE].to_numpy(float)

        def col(name: str) -> np.ndarray:
            if name not in p or p[name].isna().all():
                return np.full(len(x), np.nan)
            fp = p[name].astype(float).ffill().bfill().to_numpy()
            return np.maximum(_extrap_linear(x, xp, fp), 0.0)

        prompt = col(S.MEAN_PROMPT_TOKENS)
        completion = col(S.MEAN_COMPLETION_TOKENS)
        if np.all(np.isnan(completion)) and S.MEAN_TOKENS in p:
            completion = col(S.MEAN_TOKENS) - np.nan_to_num(prompt)
        shapes = [_shape_of(self.arm, v) for v in x]
        if shapes and shapes[0] is not None:
            seqs = np.array([s.sequences for s in shapes], dtype=float)
            multi_call = np.array([s.calls > 1 for s in shapes])
        else:  # a strategy no descriptor knows (imported samples): a pool-like arm decodes n at once
            seqs = x.copy() if self.arm.knob == "n" else np.ones_like(x)
            multi_call = np.zeros(len(x), dtype=bool)
        base = None
        if self.base_prompt_tokens is not None and multi_call.any():
            base = np.where(multi_call, float(self.base_prompt_tokens), prompt)
        mixes = None
        if self.token_mixes:
            chains = [
                s.chain_tokens(c) if s is not None else c for s, c in zip(shapes, completion, strict=True)
            ]
            mixes = tuple(self._mix_at(v, g) for v, g in zip(x, chains, strict=True))
        return Usage(prompt, completion, seqs, col(S.MEAN_LATENCY_S), col(S.MEAN_KV_BYTES), base, mixes)

    def _mix_at(self, x: float, mean_chain: float) -> QuestionMix:
        """The questions at knob value ``x`` (module docstring): a pool's own; else the nearest
        profiled value's, lengths scaled to the interpolated mean chain ``mean_chain``."""
        mixes = self.token_mixes
        if mixes[0][0] is None:
            return mixes[0][1]
        xs = np.array([v for v, _ in mixes], dtype=float)
        i = int(np.argmin(np.abs(xs - x)))
        ref = mixes[i][1]
        if xs[i] == x or not (mean_chain > 0 and ref.mean_length > 0):
            return ref
        return ref.scaled(mean_chain / ref.mean_length)

    def predict(self, x) -> Predictions:
        return self.predictor.predict(x)


class FamilyCurve:
    """An unprofiled model's arm curve: the family law's predictions, the nearest profiled
    size's measured usage (tokens are assumed to carry over; labelled extrapolated)."""

    def __init__(self, arm: Arm, difficulty: str, family: FamilyPredictor, size: float, nearest: ArmCurve):
        self.arm, self.difficulty, self.family, self.size = arm, difficulty, family, size
        self.points = nearest.points
        self._nearest = nearest
        self.fit_note = (
            f"joint law over sizes (leave-one-size-out RMSE {family.loo_rmse_:.3f}); "
            f"tokens of {nearest.arm.model}"
        )
        if family.loo_notes:
            self.fit_note += f"; {len(family.loo_notes)} leave-one-out refit(s) degenerate"

    @property
    def predictor(self) -> FamilyCurve:
        return self

    @property
    def x_limit(self) -> float:
        return self.family.k_max * self.family.max_factor

    def predict(self, x) -> Predictions:
        return self.family.predict(self.size, x)

    def usage(self, x) -> Usage:
        return self._nearest.usage(x)
