"""Optuna plumbing shared by the searches of this package (single-objective, Pareto,
allocation): the study's view of the option space (:class:`Evaluator`), study names and
storages, and the objective of a trial. Private to :mod:`planner.search`.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pandas as pd

from ..constants import ARCHITECTURE, ARM, KNOB, MODEL, SIMULATED, STRATEGY
from ..space import OptionSpace
from .budget import Budget

__all__ = ["Evaluator", "open_storage", "quiet_optuna", "default_study_name", "study_table", "trial_fn"]


def open_storage(url: str | None):
    """An Optuna storage for ``url``: None (in memory), ``journal:PATH`` (a journal file that
    several processes on one machine can share), or any RDB URL Optuna accepts
    (``sqlite:///study.db``, ``postgresql://user@host/db``), opened (and so checked) here.

    Raises ``ValueError`` in one line naming the URL when the storage cannot be opened (a
    malformed URL, a missing driver, a database that does not answer); ``OSError`` for a
    journal file that cannot be written.
    """
    if url is None:
        return None
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = url.removeprefix("journal:")
        if not path:
            raise ValueError("journal storage needs a path: journal:PATH")
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise ValueError(
            f"storage {url!r}: expected journal:PATH, sqlite:///PATH or an RDB URL such as postgresql://USER@HOST/DB"
        )
    from optuna.storages import RDBStorage

    try:
        return RDBStorage(url)
    except Exception as exc:  # sqlalchemy and the database drivers raise many types
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ValueError(f"storage {url!r}: cannot open it ({reason})") from exc


def default_study_name(space: OptionSpace, target, budget: Budget, objective: str, kind: str, arms) -> str:
    text = json.dumps(
        [kind, objective, budget.as_dict(), target, [a.key for a in arms], space.density], sort_keys=True
    )
    return f"ttc-{kind}-" + hashlib.sha256(text.encode()).hexdigest()[:16]


class Evaluator:
    """The study's view of the space: factored arm parameters, log-scaled knob positions, and a
    cache of option evaluations.

    An arm is chosen by three categorical parameters, ``model``, ``strategy`` and (when the
    strategy has several) ``variant:<strategy>`` (its fixed knobs, e.g. the temperature), so
    that what the sampler learns about a model or a temperature carries over to the other
    arms that share it. A combination no arm has is an infeasible trial. The knob is
    ``position`` in ``[0, 1]``: the grid value nearest to ``x_min * (x_max / x_min) ** position``
    (log-uniform, as compute knobs are).
    """

    def __init__(self, space: OptionSpace, target, arms):
        self.space, self.target = space, target
        self.arms = {a.key: a for a in arms}
        self.grids = {a.key: space.grid(a, target) for a in arms}
        self.cache: dict[tuple[str, int], dict] = {}
        self.models = sorted({a.model for a in arms})
        self.strategies = sorted({a.strategy for a in arms})
        self.variants = {s: sorted({variant_of(a) for a in arms if a.strategy == s}) for s in self.strategies}
        self.lookup = {(a.model, a.strategy, variant_of(a)): a.key for a in arms}

    def index(self, key: str, position: float) -> int:
        g = self.grids[key]
        if len(g) == 1 or g[0] <= 0:
            return int(round(position * (len(g) - 1)))
        target = np.log(g[0]) + position * (np.log(g[-1]) - np.log(g[0]))
        return int(np.argmin(np.abs(np.log(g) - target)))

    def position(self, key: str, i: int) -> float:
        g = self.grids[key]
        if len(g) == 1:
            return 0.0
        if g[0] <= 0:
            return i / (len(g) - 1)
        return float((np.log(g[i]) - np.log(g[0])) / (np.log(g[-1]) - np.log(g[0])))

    def params(self, key: str, i: int) -> dict:
        a = self.arms[key]
        out = {"model": a.model, "strategy": a.strategy, "position": self.position(key, i)}
        if len(self.variants[a.strategy]) > 1:
            out[f"variant:{a.strategy}"] = variant_of(a)
        return out

    def suggest_arm(self, trial) -> str | None:
        m = trial.suggest_categorical("model", self.models)
        s = trial.suggest_categorical("strategy", self.strategies)
        vs = self.variants[s]
        v = trial.suggest_categorical(f"variant:{s}", vs) if len(vs) > 1 else vs[0]
        return self.lookup.get((m, s, v))

    def arm_params(self, key: str) -> dict:
        out = self.params(key, 0)
        out.pop("position")
        return out

    def suggest(self, trial) -> tuple[str | None, int]:
        m = trial.suggest_categorical("model", self.models)
        s = trial.suggest_categorical("strategy", self.strategies)
        vs = self.variants[s]
        v = trial.suggest_categorical(f"variant:{s}", vs) if len(vs) > 1 else vs[0]
        u = trial.suggest_float("position", 0.0, 1.0)
        key = self.lookup.get((m, s, v))
        return key, (self.index(key, u) if key is not None else -1)

    def __call__(self, key: str, i: int) -> dict:
        hit = self.cache.get((key, i))
        if hit is None:
            arm = self.arms[key]
            ev = self.space.evaluate_values(arm, [self.grids[key][i]], self.target)
            hit = {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in ev.items()}
            hit.update(
                {
                    ARM: key,
                    MODEL: arm.model,
                    ARCHITECTURE: arm.architecture,
                    STRATEGY: arm.strategy,
                    KNOB: arm.knob,
                    SIMULATED: arm.simulated or "",
                }
            )
            self.cache[(key, i)] = hit
        return hit

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.cache.values()))


def variant_of(arm) -> str:
    """The fixed knobs of an arm as one category value (``-`` for none)."""
    return ",".join(f"{k}={v}" for k, v in arm.fixed) or "-"


def quiet_optuna():
    """Optuna, its logging at ERROR: a failed trial's warning and traceback never print (the
    error itself propagates out of ``study.optimize`` to the caller's one-line error)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def trial_fn(ev: Evaluator, budget: Budget, values):
    """An Optuna objective: the option of the trial's parameters, its budgets as constraints.

    ``values(row)`` gives the objective value(s); a parameter combination that is no arm is
    infeasible on every budget (constraint 1.0) with the worst value(s).
    """

    def run(trial):
        key, i = ev.suggest(trial)
        if key is None:
            for k in budget.limits:
                trial.set_constraint(k, 1.0)
            trial.set_user_attr("arm", None)
            return values(None)
        row = ev(key, i)
        for k, v in budget.excess(row).items():
            trial.set_constraint(k, v)
        trial.set_user_attr("arm", key)
        trial.set_user_attr("index", i)
        return values(row)

    return run


def study_table(study, ev: Evaluator) -> pd.DataFrame:
    """Every completed trial of the study (all workers) as option rows, deduplicated."""
    rows = {}
    for t in study.get_trials(deepcopy=False):
        key = t.user_attrs.get("arm")
        if t.state.name != "COMPLETE" or key not in ev.grids or t.user_attrs.get("index", -1) < 0:
            continue
        i = int(t.user_attrs["index"])
        rows[(key, i)] = ev(key, i)
    return pd.DataFrame(list(rows.values()))
