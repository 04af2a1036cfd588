"""Each question's measured tokens and correct counts: what every option is priced and checked from.

The curves table keeps means over questions, but the costs that grow faster than linearly
in a chain's length (attention FLOPs, KV reads and memory) and the wait of a pool for its
longest sample depend on each question's own per-sample lengths
(:mod:`planner.costs.question_mix`), and a forecast of coverage far beyond the sampled k
depends on each question's own correct count. :class:`QuestionTable` reads them once from
the samples table, one :class:`GroupQuestions` per curve group (model, strategy, config,
difficulty), and :meth:`GroupQuestions.mix` turns a group into the
:class:`~planner.costs.QuestionMix` an option is priced on: each question's prompt and its
chains' lengths.

A row's completion tokens are one chain for a pool (one sample) and, for a hybrid, one chain
refined ``rounds`` times (its chain length is recovered with the strategy's
:meth:`~profiling.strategies.WorkloadShape.chain_tokens`); for a one-execution strategy
(greedy, beam, refine, budget) the row is the whole execution, whose chain length is solved
the same way. The prompt of a question is the smallest ``prompt_tokens`` of its rows (the
prefix a pool shares); multi-call strategies sum the contexts they resend, so their
question prompt comes from a one-call strategy of the same model (:attr:`QuestionTable.base_prompts`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fitting import schema as S
from fitting.counts import pooled_counts
from profiling.strategies import DESCRIPTORS

from ..costs import QuestionMix, TokenLengths

__all__ = ["GroupQuestions", "QuestionTable", "GroupKey", "chain_lengths"]

#: (model, strategy, config, difficulty), as in the curves table
GroupKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class GroupQuestions:
    """The measured tokens of one curve group, per question.

    Attributes
    ----------
    questions : question ids.
    prompts : each question's prompt tokens (the smallest of its rows; NaN when not measured).
    completions : each question's rows' completion tokens (one array per question).
    n_samples, n_correct : each question's rows and correct rows.
    """

    questions: tuple[str, ...]
    prompts: np.ndarray
    completions: tuple[np.ndarray, ...]
    n_samples: np.ndarray
    n_correct: np.ndarray

    def mix(
        self,
        chain: Callable[[np.ndarray], np.ndarray],
        prompts: np.ndarray | None = None,
    ) -> QuestionMix | None:
        """The questions as a :class:`~planner.costs.QuestionMix`: every question with measured
        completions, its chains' lengths ``chain(completions)`` (negative ones clipped to 0) and
        its prompt (``prompts`` when given, else :attr:`prompts`; unknown prompts count 0 and are
        reported by :meth:`prompt_known`). None when no question has completion tokens."""
        prompts = self.prompts if prompts is None else np.asarray(prompts, dtype=float)
        keep, lengths = [], []
        for i, c in enumerate(self.completions):
            c = c[np.isfinite(c)]
            if c.size:
                keep.append(i)
                lengths.append(TokenLengths.from_samples(np.maximum(chain(c), 0.0)))
        if not keep:
            return None
        return QuestionMix(np.nan_to_num(prompts[keep], nan=0.0), tuple(lengths))

    def prompt_known(self, prompts: np.ndarray | None = None) -> bool:
        """Whether every question's prompt tokens were measured."""
        p = self.prompts if prompts is None else np.asarray(prompts, dtype=float)
        return bool(np.all(np.isfinite(p)))


@dataclass
class QuestionTable:
    """Measured tokens per curve group and question (module docstring).

    ``groups`` maps a :data:`GroupKey` to its :class:`GroupQuestions`; ``base_prompts`` maps
    ``(model, question)`` to the question's prompt tokens as a one-call strategy of the model
    measured them (what multi-call strategies start from).
    """

    groups: dict[GroupKey, GroupQuestions] = field(default_factory=dict)
    base_prompts: dict[tuple[str, str], float] = field(default_factory=dict)

    @classmethod
    def from_samples(cls, samples: pd.DataFrame) -> QuestionTable:
        """Per-question tokens of every group of a (validated) samples table.

        Examples
        --------
        >>> import pandas as pd
        >>> df = S.validate_samples(pd.DataFrame({"question_id": ["a", "a", "b"], "correct": [True, False, True],
        ...                                       "prompt_tokens": [10, 10, 30], "completion_tokens": [100, 10_000, 50]}))
        >>> t = QuestionTable.from_samples(df)
        >>> g = t.groups[("unknown", "pool", "{}", "all")]
        >>> g.prompts.tolist(), [c.tolist() for c in g.completions], g.n_correct.tolist()
        ([10.0, 30.0], [[100.0, 10000.0], [50.0]], [1, 1])
        """
        out = cls()
        cols = [S.MODEL, S.STRATEGY, S.CONFIG, S.DIFFICULTY, S.QUESTION_ID]
        df = samples[cols].astype(str)
        df[S.PROMPT_TOKENS] = samples[S.PROMPT_TOKENS].to_numpy(dtype=float, na_value=np.nan)
        df[S.COMPLETION_TOKENS] = samples[S.COMPLETION_TOKENS].to_numpy(dtype=float, na_value=np.nan)
        df[S.CORRECT] = samples[S.CORRECT].to_numpy(dtype=bool)
        one_call: dict[tuple[str, str], bool] = {}
        for (model, strategy, config, diff), g in df.groupby(cols[:4], sort=True):
            by_q = g.groupby(S.QUESTION_ID, sort=True)
            prompts = by_q[S.PROMPT_TOKENS].min().to_numpy(float)  # NaN when none measured
            completions = tuple(v.to_numpy(float) for _, v in by_q[S.COMPLETION_TOKENS])
            questions = tuple(by_q.groups)
            counts = by_q[S.CORRECT].agg(["size", "sum"]).to_numpy(np.int64)
            out.groups[(model, strategy, config, diff)] = GroupQuestions(
                questions, prompts, completions, counts[:, 0], counts[:, 1]
            )
            key = (strategy, config)
            if key not in one_call:
                one_call[key] = _one_call(strategy, config)
            if one_call[key]:
                for q, p in zip(questions, prompts, strict=True):
                    if math.isfinite(p):
                        prev = out.base_prompts.get((model, q))
                        out.base_prompts[(model, q)] = p if prev is None else min(prev, p)
        return out

    @classmethod
    def from_counts(cls, counts: pd.DataFrame) -> QuestionTable:
        """Per-question counts and tokens of a counts table (rows of one question from several
        runs pooled, :func:`fitting.counts.pooled_counts`). A counts row keeps only the MEAN
        tokens of its samples, so each question's chains all get its mean length (the spread
        within a question is unknown; the spread across questions is kept).

        Examples
        --------
        >>> import pandas as pd
        >>> c = pd.DataFrame({"question_id": ["a", "b"], "n_samples": [8, 8], "n_correct": [1, 0],
        ...                   "completion_tokens": [120.0, 40.0]})
        >>> g = QuestionTable.from_counts(c).groups[("unknown", "pool", "{}", "all")]
        >>> g.n_correct.tolist(), [x.tolist() for x in g.completions]
        ([1, 0], [[120.0], [40.0]])
        """
        out = cls()
        pooled = pooled_counts(counts)
        keys = [S.MODEL, S.STRATEGY, S.CONFIG, S.DIFFICULTY]
        for key, g in pooled.groupby(keys, sort=True):
            g = g.sort_values(S.QUESTION_ID)
            questions = tuple(g[S.QUESTION_ID].astype(str))
            prompts = g[S.PROMPT_TOKENS].to_numpy(dtype=float, na_value=np.nan)
            completions = tuple(
                np.array([v]) for v in g[S.COMPLETION_TOKENS].to_numpy(dtype=float, na_value=np.nan)
            )
            n, c = (g[col].to_numpy(np.int64) for col in (S.N_SAMPLES, S.N_CORRECT))
            group = GroupQuestions(questions, prompts, completions, n, c)
            out.groups[tuple(str(k) for k in key)] = group
            for q, p in zip(questions, prompts, strict=True):
                if math.isfinite(p):
                    out.base_prompts[(str(key[0]), q)] = p
        return out

    @classmethod
    def merged(cls, tables: list[QuestionTable]) -> QuestionTable:
        """One table of several (a folder's samples and its counts): their groups side by side,
        and each (model, question)'s smallest one-call prompt."""
        out = cls()
        for t in tables:
            out.groups.update(t.groups)
            for key, p in t.base_prompts.items():
                out.base_prompts[key] = min(p, out.base_prompts.get(key, p))
        return out

    def get(self, model: str, strategy: str, config: str, difficulty: str) -> GroupQuestions | None:
        return self.groups.get((model, strategy, config, difficulty))

    def question_prompts(self, model: str, group: GroupQuestions) -> np.ndarray:
        """The one-call prompt of each question of ``group`` for ``model`` (NaN where unknown)."""
        return np.array([self.base_prompts.get((model, q), np.nan) for q in group.questions])


def _one_call(strategy: str, config: str) -> bool:
    """Whether an execution of ``strategy`` with ``config`` is one engine call (its prompt
    tokens are then the question's prompt); strategies without a descriptor count as one."""
    desc = DESCRIPTORS.get(strategy)
    if desc is None:
        return True
    try:
        cfg = json.loads(config) if config else {}
        known = {*desc.knobs, *desc.assumptions, *desc.aliases}
        return desc.workload_shape({k: v for k, v in cfg.items() if k in known}).calls == 1
    except (ValueError, TypeError):
        return False


def chain_lengths(one_row_per_execution: bool, shape) -> Callable[[np.ndarray], np.ndarray]:
    """The chain length of each row's completion tokens (module docstring): a pool row is one
    chain of a ``shape.sequences``-chain execution, a one-execution row the whole execution
    (``shape`` None, a strategy without a descriptor: the row is one chain)."""
    if shape is None:
        return lambda c: np.asarray(c, dtype=float)
    if one_row_per_execution:
        return lambda c: shape.chain_tokens(np.asarray(c, dtype=float))
    return lambda c: shape.chain_tokens(np.asarray(c, dtype=float) * shape.sequences)
