"""Process rewards: scores of partial solutions that guide beam search, refinement and best-of-N.

A process reward scores each step of a (partial) chain of thought; the score of a chain is
the minimum of its step scores (a chain is as good as its worst step).

Three kinds, chosen by a knob value (``prm=...``, ``verifier=...``, ``reward=...``):

``oracle``
    The task's exact step checker (:meth:`Task.check_steps`): a step scores 1 when it is
    right and 0 when it is wrong. On the lab this is a *perfect* process reward model;
    no real PRM is that good, so results with it are an upper bound.
``noisy:P``
    A **simulated** imperfect PRM: each oracle step verdict flipped with probability ``P``
    (a right step scored 0, a wrong step scored 1). The flip of step ``i`` is a
    deterministic function of the run seed, the question and the text up to step ``i``, so
    the same partial always gets the same scores (as a real PRM would) and extending a
    partial does not change its earlier steps' scores. Same definition as
    :func:`profiling.lab.task.simulated_noisy_step_checker`. Rows produced with it say
    ``simulated`` in their ``config``.
``NAME`` or ``module:function``
    Any callable ``score(problem, partial_text) -> float`` (higher is better): a name
    registered with :func:`register_reward`, or a function imported from a module. This is
    how a real reward model plugs in, e.g. one loaded with transformers::

        # my_prm.py (on PYTHONPATH)
        from functools import cache

        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        @cache
        def _load():
            tok = AutoTokenizer.from_pretrained("/models/my-prm")
            model = AutoModelForSequenceClassification.from_pretrained("/models/my-prm").eval()
            return tok, model

        def score(problem, partial_text):
            tok, model = _load()
            enc = tok(problem.question, partial_text, return_tensors="pt", truncation=True)
            with torch.no_grad():
                return torch.sigmoid(model(**enc).logits[0, -1]).item()

    then ``ttc profile ... --strategy beam:width=4,prm=my_prm:score``. Step scores of a
    callable are the scores of each step prefix (one call per step).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from ..tasks import Problem, Task
from ._base import derive_seed, split_steps

__all__ = [
    "ProcessReward",
    "OracleReward",
    "NoisyOracleReward",
    "CallableReward",
    "get_reward",
    "register_reward",
]

ScoreFn = Callable[[Problem, str], float]
_REGISTRY: dict[str, ScoreFn] = {}


def register_reward(name: str, fn: ScoreFn) -> None:
    """Make ``fn(problem, partial_text) -> float`` available as ``prm=NAME`` / ``reward=NAME``.

    Examples
    --------
    >>> register_reward("length", lambda problem, text: -len(text))
    >>> get_reward("length", task=None).score(None, "abc")
    -3.0
    """
    if name in ("oracle", "none") or name.startswith("noisy"):
        raise ValueError(f"reward name {name!r} is reserved")
    _REGISTRY[name] = fn


class ProcessReward(ABC):
    """Scores of the steps of a partial solution; see the module docstring."""

    #: stored in ``config``: where the scores come from
    source: str = ""

    def __init__(self, task: Task | None) -> None:
        self.task = task

    @property
    def delimiter(self) -> str:
        return self.task.step_delimiter if self.task is not None else "\n"

    @abstractmethod
    def step_scores(self, problem: Problem, text: str) -> list[float] | None:
        """One score per step of ``text``, or None when this reward cannot judge the task."""

    def score(self, problem: Problem, text: str) -> float | None:
        """Score of the whole partial solution: ``min_i s_i`` (1.0 before the first step)."""
        scores = self.step_scores(problem, text)
        if scores is None:
            return None
        return float(min(scores)) if scores else 1.0


class OracleReward(ProcessReward):
    """The task's exact step checker as a process reward (0/1 per step)."""

    source = "oracle-step-checker"

    def step_scores(self, problem: Problem, text: str) -> list[float] | None:
        verdicts = self.task.check_steps(text, problem)
        return None if verdicts is None else [1.0 if v else 0.0 for v in verdicts]


class NoisyOracleReward(OracleReward):
    """SIMULATED imperfect PRM: oracle verdicts, each flipped with probability ``flip_prob``."""

    def __init__(self, task: Task, flip_prob: float, seed: int) -> None:
        super().__init__(task)
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"noisy reward: flip probability must be in [0, 1], got {flip_prob!r}")
        self.flip_prob = float(flip_prob)
        self.seed = int(seed)
        self.source = f"simulated:noisy-oracle(flip_prob={self.flip_prob:g})"

    def step_scores(self, problem: Problem, text: str) -> list[float] | None:
        clean = super().step_scores(problem, text)
        if clean is None:
            return None
        steps = split_steps(text, self.delimiter)
        out = []
        for i, v in enumerate(clean):
            prefix = self.delimiter.join(steps[: i + 1])
            u = np.random.default_rng(derive_seed(self.seed, problem.id, prefix)).random()
            out.append(1.0 - v if u < self.flip_prob else v)
        return out


class CallableReward(ProcessReward):
    """A user function ``score(problem, partial_text) -> float``; step scores score each prefix."""

    def __init__(self, fn: ScoreFn, source: str, task: Task | None = None) -> None:
        super().__init__(task)
        self.fn = fn
        self.source = f"callable:{source}"

    def step_scores(self, problem: Problem, text: str) -> list[float] | None:
        steps = split_steps(text, self.delimiter)
        return [float(self.fn(problem, self.delimiter.join(steps[: i + 1]))) for i in range(len(steps))]

    def score(self, problem: Problem, text: str) -> float | None:
        return float(self.fn(problem, text))


def get_reward(spec: str, task: Task | None, seed: int = 0) -> ProcessReward | None:
    """The process reward named by ``spec`` (see the module docstring); None for ``"none"``.

    Raises ``ValueError`` for an unknown name or a module function that cannot be imported.

    Examples
    --------
    >>> get_reward("none", task=None) is None
    True
    """
    text = str(spec).strip()
    if text in ("", "none"):
        return None
    if text == "oracle":
        return OracleReward(task)
    if text.startswith("noisy:"):
        try:
            flip_prob = float(text.partition(":")[2])
        except ValueError:
            raise ValueError(
                f"reward {spec!r}: expected noisy:P with a probability, e.g. noisy:0.2"
            ) from None
        return NoisyOracleReward(task, flip_prob, seed)
    if text in _REGISTRY:
        return CallableReward(_REGISTRY[text], text, task)
    module, sep, attr = text.partition(":")
    if sep and module and attr:
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"reward {spec!r}: cannot import {attr!r} from module {module!r}: {exc}"
            ) from None
        if not callable(fn):
            raise ValueError(f"reward {spec!r}: {module}.{attr} is not callable")
        return CallableReward(fn, text, task)
    known = ", ".join(["oracle", "noisy:P", "module:function", *sorted(_REGISTRY)])
    raise ValueError(f"unknown reward {spec!r}; expected one of: {known}")


def is_required_reward_spec(value: str) -> bool:
    """:func:`is_valid_reward_spec` without ``none``: for knobs that need a reward (beam, refine)."""
    return str(value).strip() not in ("", "none") and is_valid_reward_spec(value)


def is_valid_reward_spec(value: str) -> bool:
    """Cheap syntactic check used by knob validation (imports happen later)."""
    text = str(value).strip()
    if text in ("none", "oracle") or text in _REGISTRY:
        return True
    if text.startswith("noisy:"):
        try:
            return 0.0 <= float(text[6:]) <= 1.0
        except ValueError:
            return False
    module, sep, attr = text.partition(":")
    return bool(sep and module and attr)
