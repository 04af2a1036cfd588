"""The questions a workload serves: each question's prompt and its chains' length distribution.

A deployment answers many questions, each with its own prompt length and its own spread of
generated lengths. Pricing the average question (one prompt, one pooled length
distribution) gets the additive costs nearly right but not the ones that stay inside a
question: a pool of ``n`` samples of ONE question waits for the longest of those ``n``
(``E[max]`` within the question, not over the whole set), holds their KV together, and
its attention FLOPs pair the question's own prompt with its own lengths. A
:class:`QuestionMix` keeps the questions apart: every cost of a workload over a mix
(:meth:`planner.costs.Workload.for_questions`) is the question-weighted mean of the cost
of each question, each question's chains priced at their own lengths
(:mod:`planner.costs.lengths`), except the roofline step time, which is that of a batch
mixing the questions (a serving replica's running batch mixes them;
:mod:`planner.costs.latency`).

:meth:`QuestionMix.atoms` flattens the mix into ``(prompt, length, probability)`` atoms with
their question index, which :func:`planner.costs.execution.tally` prices in one numpy pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .lengths import TokenLengths, expected_max_flat

__all__ = ["QuestionMix", "Atoms"]


@dataclass(frozen=True, eq=False)
class Atoms:
    """A mix flattened (:meth:`QuestionMix.atoms`): arrays over atoms, atoms of a question
    contiguous and ascending in length.

    Attributes
    ----------
    prompt, length : the atom's prompt tokens and chain length (tokens).
    weight : its probability over the whole mix (question weight x within-question weight).
    starts, sizes : first atom and number of atoms of each question.
    question_weight : each question's share of the queries.
    """

    prompt: np.ndarray
    length: np.ndarray
    weight: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    question_weight: np.ndarray

    def per_question(self, values: np.ndarray) -> np.ndarray:
        """Within-question expectation of a per-atom array (one value per question)."""
        within = self.weight / np.repeat(self.question_weight, self.sizes)
        return np.add.reduceat(within * values, self.starts)

    def survival(self) -> np.ndarray:
        """``P(L >= v)`` within each atom's question (:meth:`TokenLengths.survival`, per question)."""
        within = self.weight / np.repeat(self.question_weight, self.sizes)
        cum = np.cumsum(within)
        before = cum - within - np.repeat(cum[self.starts] - within[self.starts], self.sizes)
        return np.clip(1.0 - before, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class QuestionMix:
    """Questions with their prompt tokens, chain-length distributions and query shares.

    Parameters
    ----------
    prompts : prompt tokens of each question (>= 0; 0 when unknown).
    lengths : each question's :class:`~planner.costs.TokenLengths` (one chain's generated tokens).
    weights : each question's share of the queries (default equal; normalized to sum to 1).

    Examples
    --------
    >>> mix = QuestionMix.from_samples([10, 30], [[100, 10_000], [50]])
    >>> mix.mean_prompt, mix.mean_length
    (20.0, 2550.0)
    """

    prompts: np.ndarray
    lengths: tuple[TokenLengths, ...]
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        p = np.atleast_1d(np.asarray(self.prompts, dtype=float))
        lengths = tuple(self.lengths)
        if p.ndim != 1 or p.size == 0 or p.size != len(lengths):
            raise ValueError("QuestionMix needs one prompt length per question and at least one question")
        if not (np.all(np.isfinite(p)) and np.all(p >= 0)):
            raise ValueError("QuestionMix prompt tokens must be finite and >= 0")
        if not all(isinstance(d, TokenLengths) for d in lengths):
            raise ValueError("QuestionMix lengths must be TokenLengths")
        w = np.full(p.size, 1.0) if self.weights is None else np.asarray(self.weights, dtype=float)
        if w.shape != p.shape or np.any(~np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
            raise ValueError("QuestionMix weights must be >= 0 with a positive sum, one per question")
        object.__setattr__(self, "prompts", p)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "weights", w / w.sum())

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def single(cls, prompt_tokens: float, lengths: TokenLengths) -> QuestionMix:
        """One question."""
        return cls(np.array([float(prompt_tokens)]), (lengths,))

    @classmethod
    def from_samples(
        cls,
        prompts: Sequence[float] | np.ndarray,
        lengths: Sequence[Sequence[float] | np.ndarray],
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> QuestionMix:
        """Questions from each one's prompt tokens and its measured per-sample chain lengths."""
        return cls(
            np.asarray(prompts, dtype=float), tuple(TokenLengths.from_samples(x) for x in lengths), weights
        )

    def scaled(self, factor: float) -> QuestionMix:
        """Every chain length multiplied by ``factor`` (same prompts and weights)."""
        return QuestionMix(self.prompts, tuple(d.scaled(factor) for d in self.lengths), self.weights)

    # ---- statistics ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.prompts.size)

    @property
    def mean_prompt(self) -> float:
        """Query-weighted mean prompt tokens."""
        return float(self.weights @ self.prompts)

    @cached_property
    def mean_length(self) -> float:
        """Query-weighted mean chain length, tokens."""
        return float(self.weights @ np.array([d.mean for d in self.lengths]))

    @cached_property
    def max_length(self) -> float:
        """The longest chain of any question, tokens."""
        return max(d.max for d in self.lengths)

    @cached_property
    def longest(self) -> np.ndarray:
        """Each question's longest chain, tokens."""
        return np.array([d.max for d in self.lengths])

    def expected_max(self, n: int) -> np.ndarray:
        """Each question's ``E[max of n chains]`` (:meth:`TokenLengths.expected_max`)."""
        at = self._atoms
        within = at.weight / np.repeat(at.question_weight, at.sizes)
        return expected_max_flat(at.length, within, at.sizes, self._counts, n)

    @cached_property
    def _counts(self) -> np.ndarray:
        return np.array([d.count if d.kind == "samples" and d.count is not None else 0 for d in self.lengths])

    @cached_property
    def _atoms(self) -> Atoms:
        sizes = np.array([d.values.size for d in self.lengths])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        within = np.concatenate([d.weights for d in self.lengths])
        return Atoms(
            prompt=np.repeat(self.prompts, sizes),
            length=np.concatenate([d.values for d in self.lengths]),
            weight=within * np.repeat(self.weights, sizes),
            starts=starts,
            sizes=sizes,
            question_weight=self.weights,
        )

    def atoms(self) -> Atoms:
        """The mix flattened into ``(prompt, length, probability)`` atoms (:class:`Atoms`)."""
        return self._atoms

    def describe(self) -> str:
        """Short text, e.g. ``30 questions: prompt 120, chains mean 5,050, max 30,767 tokens``."""
        return (
            f"{len(self)} questions: prompt {self.mean_prompt:,.0f}, chains mean "
            f"{self.mean_length:,.0f}, max {self.max_length:,.0f} tokens"
        )

    def summary(self) -> dict[str, object]:
        """JSON-safe statistics (the ``gen_lengths`` of a cost estimate over a mix)."""
        return dict(self._summary)

    @cached_property
    def _summary(self) -> dict[str, object]:
        mean_sq = float(self.weights @ np.array([d.mean_sq for d in self.lengths]))
        return {
            "kind": "questions",
            "questions": len(self),
            "mean_prompt": self.mean_prompt,
            "mean": self.mean_length,
            "rms": math.sqrt(mean_sq),
            "max": self.max_length,
            "samples": int(sum(d.count or 0 for d in self.lengths)) or None,
        }
