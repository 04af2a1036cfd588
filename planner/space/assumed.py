"""Token lengths ASSUMED for questions whose data has none, and which questions were measured.

Most published repeated-sampling data gives per-question correct counts and no lengths, so the
cost model has nothing to price an option with. :class:`AssumedLengths` is a stated assumption,
``--assume-prompt-tokens N`` and ``--assume-completion-tokens N`` (the fields
``assume_prompt_tokens`` / ``assume_completion_tokens`` of :class:`~planner.request.PlanRequest`):
each sample (a row of a samples table, or each sample of a counts row) of a question that has
no measured length gets N prompt and N generated tokens. :meth:`AssumedLengths.fill` applies it
to the input table before curves are computed, so every cost (FLOPs, latency, dollars, tokens)
is priced from it by the same code as measured lengths.

It never overrides a measurement: a length is filled only for a question none of whose rows in
its group (model, strategy, config, difficulty) has that length measured. A mix of measured and
assumed questions is allowed; :class:`LengthCoverage` counts them per model, and every output
that used an assumption states it (:meth:`LengthCoverage.line`, :meth:`LengthCoverage.to_json`).
Without an assumption, questions without completion lengths stop the plan with one line that
names the flags (:meth:`LengthCoverage.check`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fitting import schema as S

__all__ = ["AssumedLengths", "LengthCoverage", "MissingLengths", "FLAGS", "describe"]

#: the command-line flags of the assumption, as the error names them
FLAGS = "--assume-prompt-tokens N --assume-completion-tokens N"
_GROUP = [S.MODEL, S.STRATEGY, S.CONFIG, S.DIFFICULTY, S.QUESTION_ID]


class MissingLengths(ValueError):
    """Questions without completion lengths and no assumption to price them with."""


@dataclass(frozen=True)
class AssumedLengths:
    """Per-sample prompt and generated tokens assumed where the data has none (None: no assumption).

    Examples
    --------
    >>> a = AssumedLengths(256, 256)
    >>> a.words()
    '256 prompt + 256 generated tokens per sample'
    >>> AssumedLengths(completion_tokens=0)
    Traceback (most recent call last):
    ...
    ValueError: assume_completion_tokens must be an integer >= 1, got 0
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "completion_tokens"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() or v < 1:
                raise ValueError(f"assume_{name} must be an integer >= 1, got {v!r}")
            object.__setattr__(self, name, int(v))

    def __bool__(self) -> bool:
        return self.prompt_tokens is not None or self.completion_tokens is not None

    def words(self) -> str:
        parts = []
        if self.prompt_tokens is not None:
            parts.append(f"{self.prompt_tokens} prompt")
        if self.completion_tokens is not None:
            parts.append(f"{self.completion_tokens} generated")
        return " + ".join(parts) + " tokens per sample" if parts else "nothing"

    def fill(self, table: pd.DataFrame) -> tuple[pd.DataFrame, LengthCoverage]:
        """``table`` (samples or counts) with the assumed lengths where a question has none, and
        the coverage (module docstring). The table is copied only when something is filled.

        Examples
        --------
        >>> t = pd.DataFrame({"model": ["m"] * 3, "strategy": ["pool"] * 3, "config": ["{}"] * 3,
        ...                   "difficulty": ["all"] * 3, "question_id": ["a", "b", "c"],
        ...                   "prompt_tokens": [10.0, None, None], "completion_tokens": [90.0, 80.0, None]})
        >>> out, cov = AssumedLengths(256, 512).fill(t)
        >>> out["prompt_tokens"].tolist(), out["completion_tokens"].tolist()
        ([10.0, 256.0, 256.0], [90.0, 80.0, 512.0])
        >>> cov.counts("m")
        {'questions': 3, 'prompt_measured': 1, 'prompt_assumed': 2, 'completion_measured': 2, 'completion_assumed': 1}
        """
        missing = {}
        out = table
        for col, value in (
            (S.PROMPT_TOKENS, self.prompt_tokens),
            (S.COMPLETION_TOKENS, self.completion_tokens),
        ):
            lacks = _lacking(table, col)
            per_q = lacks.groupby([table[S.MODEL].astype(str), table[S.QUESTION_ID].astype(str)]).any()
            missing[col] = per_q.groupby(level=0).sum().astype(int).to_dict()
            if value is not None and lacks.any():
                if out is table:
                    out = table.copy()
                out.loc[lacks.to_numpy(), col] = value
        questions = table.groupby(table[S.MODEL].astype(str))[S.QUESTION_ID].nunique().astype(int).to_dict()
        return out, LengthCoverage(self, questions, missing[S.PROMPT_TOKENS], missing[S.COMPLETION_TOKENS])


def _lacking(table: pd.DataFrame, col: str) -> pd.Series:
    """Per row: whether no row of its question in its group has ``col`` measured."""
    if col not in table:
        return pd.Series(True, index=table.index)
    has = pd.Series(np.isfinite(table[col].to_numpy(dtype=float, na_value=np.nan)), index=table.index)
    keys = [table[k].astype(str) for k in _GROUP if k in table]
    return ~has.groupby(keys, sort=False).transform("any")


@dataclass(frozen=True)
class LengthCoverage:
    """Per model: its questions, and how many lack a measured prompt or completion length.

    Questions are counted per model (a question of two models counts twice in the totals).
    """

    assumed: AssumedLengths = field(default_factory=AssumedLengths)
    questions: Mapping[str, int] = field(default_factory=dict)
    prompt_missing: Mapping[str, int] = field(default_factory=dict)
    completion_missing: Mapping[str, int] = field(default_factory=dict)

    def counts(self, model: str) -> dict[str, int]:
        """Questions of ``model`` with measured and assumed prompt and completion lengths (a
        question neither measured nor assumed is in neither count)."""
        n = int(self.questions.get(model, 0))
        out = {"questions": n}
        for what, missing, value in (
            ("prompt", self.prompt_missing, self.assumed.prompt_tokens),
            ("completion", self.completion_missing, self.assumed.completion_tokens),
        ):
            m = int(missing.get(model, 0))
            out[f"{what}_measured"] = n - m
            out[f"{what}_assumed"] = m if value is not None else 0
        return out

    def _models(self, models: Iterable[str] = ()) -> list[str]:
        wanted = set(models)
        return [m for m in sorted(self.questions) if not wanted or m in wanted]

    def assumed_questions(self, model: str) -> int:
        """Questions of ``model`` with an assumed prompt or completion length (at least one)."""
        c = self.counts(model)
        return max(c["prompt_assumed"], c["completion_assumed"])

    def used(self, models: Iterable[str] = ()) -> bool:
        """Whether any question of ``models`` (all when empty) is priced from the assumption."""
        return any(self.assumed_questions(m) for m in self._models(models))

    def check(self, models: Iterable[str] = ()) -> None:
        """Raise :class:`MissingLengths` (one line naming the flags) when a question of
        ``models`` (all when empty) has no completion length, measured or assumed."""
        if self.assumed.completion_tokens is not None:
            return
        short = [(m, self.completion_missing.get(m, 0)) for m in self._models(models)]
        short = [(m, k) for m, k in short if k]
        if not short:
            return
        which = ", ".join(f"{m} ({k} of {self.questions[m]} questions)" for m, k in short)
        raise MissingLengths(
            f"no token lengths to price with: {which} have no completion token counts; give {FLAGS} "
            "to assume N tokens per sample for questions without lengths (measured lengths are kept), "
            "or add per-sample mean prompt_tokens and completion_tokens columns to the imported file"
        )

    def line(self, models: Iterable[str] = ()) -> str:
        """The assumption in one line (:func:`describe`); empty when nothing was assumed."""
        data = self.to_json(models)
        return describe(data) if data is not None else ""

    def to_json(self, models: Iterable[str] = ()) -> dict | None:
        """The ``lengths`` entry of a JSON ``assumptions`` object (None when nothing was assumed)."""
        models = self._models(models)
        if not self.used(models):
            return None
        return {
            "prompt_tokens_per_sample": self.assumed.prompt_tokens,
            "completion_tokens_per_sample": self.assumed.completion_tokens,
            "applies_to": "questions whose data has no lengths; measured lengths are kept",
            "questions": sum(int(self.questions[m]) for m in models),
            "questions_assumed": sum(self.assumed_questions(m) for m in models),
            "per_model": {m: self.counts(m) for m in models},
        }


def describe(lengths: Mapping) -> str:
    """An ``assumptions.lengths`` JSON object (:meth:`LengthCoverage.to_json`) in one line.

    Examples
    --------
    >>> describe({"prompt_tokens_per_sample": 256, "completion_tokens_per_sample": 256, "questions": 256,
    ...           "questions_assumed": 200, "per_model": {
    ...     "m1": {"questions": 128, "prompt_assumed": 128, "completion_assumed": 128},
    ...     "m2": {"questions": 128, "prompt_assumed": 72, "completion_assumed": 72}}})
    'lengths assumed: 256 prompt + 256 generated tokens per sample for 200 of 256 questions (m1: 128 assumed, 0 measured; m2: 72 assumed, 56 measured)'
    """
    words = AssumedLengths(
        lengths.get("prompt_tokens_per_sample"), lengths.get("completion_tokens_per_sample")
    ).words()
    per = []
    for m, c in lengths["per_model"].items():
        k = max(c["prompt_assumed"], c["completion_assumed"])
        per.append(f"{m}: {k} assumed, {c['questions'] - k} measured")
    return (
        f"lengths assumed: {words} for {lengths['questions_assumed']} of {lengths['questions']} questions "
        f"({'; '.join(per)})"
    )
