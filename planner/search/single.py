"""Search the option space: an exhaustive enumerator and an Optuna study over the same grid.

Both maximize the predicted accuracy (``risk="expected"``) or its lower interval end
(``risk="conservative"``) of one option, subject to per-query budgets on any cost key
(``flops``, ``tokens``, ``usd``, ``latency_s``, ``kv_bytes``, ``memory_bytes``): an option is
feasible when every cost is at most its limit. Ties go to the less speculative source
(measured, then fitted, then extrapolated), then to the cheaper option.

The Optuna study (Optuna 5, TPE) chooses the arm with three categorical parameters: ``model``,
``strategy`` and ``variant:<strategy>`` (the fixed knobs, e.g. the temperature), so what it
learns about a model or a variant carries over to the arms sharing it. The knob value of a
trial is found along the arm's affordable frontier: every cost grows with the knob, so a
binary search finds the largest value within budget, and a few values below it are checked
too (accuracy need not grow with the knob). Each budget is a constraint
``(cost - limit) / limit <= 0`` set with ``trial.set_constraint`` (``constraints_func`` is
deprecated). A first design made the knob a free ``position`` parameter; on spaces of ~8,000
options it missed the optimum by up to 8 accuracy points in 200 trials, because the
sampler rarely hit the narrow affordable band of the right arm (benchmarks/optimizer.py). With ``storage``
(an RDB URL such as ``sqlite:///study.db``, or ``journal:PATH`` for several processes on
one machine) several workers share one study and each reads every worker's trials.

The multi-objective mode (NSGA-II, the Pareto front of accuracy against one cost) is in
:mod:`planner.search.pareto`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..space.arms import COST_KEYS
from ..space.option_space import OptionSpace

__all__ = [
    "RISKS",
    "Budget",
    "SearchResult",
    "search",
    "search_exhaustive",
    "search_optuna",
    "open_storage",
    "binding_constraint",
    "ENUMERATE_MAX_OPTIONS",
]

RISKS = {"expected": "accuracy", "conservative": "accuracy_lo"}
#: spaces up to this many options are enumerated by ``method="auto"``. Measured with
#: benchmarks/optimizer.py (H100 cost model, 2-core CPU, one query): the lab profile's 188
#: options took 0.31 s to enumerate and 0.43 s with Optuna, its 540-option fine grid 0.71 s
#: versus 0.58 s; synthetic spaces of 1,824 / 8,448 / 16,896 options 1.3 / 6.0 / 8.1 s versus
#: 0.56 / 1.3 / 1.4 s; Optuna found the exhaustive optimum in all 105 (space, budget, seed) runs.
ENUMERATE_MAX_OPTIONS = 500
_BUDGET_KEYS = (*COST_KEYS, "memory_bytes")
_HINT = {
    "latency_s": " (roofline latency needs an accelerator: --gpu)",
    "usd": " (dollars need --gpu or --api)",
}


@dataclass(frozen=True)
class Budget:
    """Per-query limits on cost keys, e.g. ``Budget({"flops": 1e13, "latency_s": 5})``."""

    limits: Mapping[str, float]

    def __post_init__(self) -> None:
        for k, v in self.limits.items():
            if k not in _BUDGET_KEYS:
                raise ValueError(f"unknown budget {k!r}; valid: {', '.join(_BUDGET_KEYS)}")
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"budget {k} must be a positive number, got {v!r}")

    def excess(self, costs: Mapping[str, float]) -> dict[str, float]:
        """``(cost - limit) / limit`` per limit (<= 0 is within budget); a missing cost is an error."""
        out = {}
        for k, lim in self.limits.items():
            c = costs.get(k)
            if c is None or not math.isfinite(float(c)):
                raise ValueError(
                    f"budget on {k!r} but the cost model gives no {k} for this option{_HINT.get(k, '')}"
                )
            out[k] = (float(c) - lim) / lim
        return out

    def feasible(self, table: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of an option table within every limit."""
        mask = np.ones(len(table), dtype=bool)
        for k, lim in self.limits.items():
            if k not in table:
                raise ValueError(
                    f"budget on {k!r} but the cost model gives no {k} (columns: {list(table.columns)})"
                )
            vals = table[k].to_numpy(float)
            if np.any(~np.isfinite(vals)):
                raise ValueError(
                    f"budget on {k!r} but the cost model gives no {k} for some options{_HINT.get(k, '')}"
                )
            mask &= vals <= lim * (1 + 1e-12)
        return mask

    def primary(self) -> str:
        """The first limit given (the cost used for tie-breaks and Pareto fronts)."""
        return next(iter(self.limits))

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.limits.items()}


@dataclass
class SearchResult:
    """What a search returns. ``ranked`` holds the feasible options it evaluated, best first."""

    ranked: pd.DataFrame
    method: str
    evaluations: int
    seconds: float
    objective: str
    budget: Budget
    binding: str = "none"
    evaluated: pd.DataFrame | None = None
    study: object = None
    pareto: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> pd.Series | None:
        return None if self.ranked.empty else self.ranked.iloc[0]


def _rank(table: pd.DataFrame, objective: str, cost_key: str) -> pd.DataFrame:
    t = table.copy()
    if "source_rank" not in t:
        from ..space.predict import SOURCES

        t["source_rank"] = t["source"].map(SOURCES.index)
    t["_obj"] = t[objective].round(12)
    t = t.sort_values(
        ["_obj", "source_rank", cost_key, "arm", "x"], ascending=[False, True, True, True, True]
    )
    return t.drop(columns="_obj").reset_index(drop=True)


def binding_constraint(
    evaluated: pd.DataFrame, best: pd.Series | None, budget: Budget, objective: str
) -> str:
    """The limit that keeps a better option out: the one whose removal (alone) lets the most
    accurate evaluated option in. ``"none"`` if the best option overall is affordable;
    ``"several"`` if no single limit's removal helps but removing all does."""
    if best is None:
        return "infeasible"
    better = evaluated[evaluated[objective] > best[objective] + 1e-12]
    if better.empty:
        return "none"
    gains = {}
    for k in budget.limits:
        others = Budget({j: v for j, v in budget.limits.items() if j != k})
        ok = others.feasible(better) if others.limits else np.ones(len(better), dtype=bool)
        if ok.any():
            gains[k] = float(better.loc[ok, objective].max())
    return max(gains, key=gains.get) if gains else "several"


def search_exhaustive(
    space: OptionSpace, target: Mapping[str, float], budget: Budget, risk: str = "expected"
) -> SearchResult:
    """Evaluate every option of the grid and return the feasible ones, best first."""
    objective = _objective(risk)
    t0 = time.perf_counter()
    table = space.table(target)
    mask = budget.feasible(table) if len(table) else np.zeros(0, dtype=bool)
    ranked = _rank(table[mask], objective, budget.primary())
    seconds = time.perf_counter() - t0
    best = None if ranked.empty else ranked.iloc[0]
    binding = binding_constraint(table, best, budget, objective)
    return SearchResult(ranked, "exhaustive", len(table), seconds, objective, budget, binding, table)


def _objective(risk: str) -> str:
    if risk not in RISKS:
        raise ValueError(f"risk must be one of {list(RISKS)}, got {risk!r}")
    return RISKS[risk]


def open_storage(url: str | None):
    """An Optuna storage for ``url``: None (in memory), ``journal:PATH`` (a journal file that
    several processes on one machine can share), or any RDB URL Optuna accepts
    (``sqlite:///study.db``, ``postgresql://user@host/db``)."""
    if url is None:
        return None
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = url.removeprefix("journal:")
        if not path:
            raise ValueError("journal storage needs a path: journal:PATH")
        return JournalStorage(JournalFileBackend(path))
    return url


def _study_name(space: OptionSpace, target, budget: Budget, objective: str, kind: str, arms) -> str:
    text = json.dumps(
        [kind, objective, budget.as_dict(), target, [a.key for a in arms], space.density], sort_keys=True
    )
    return f"ttc-{kind}-" + hashlib.sha256(text.encode()).hexdigest()[:16]


class _Evaluator:
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
        self.variants = {s: sorted({_variant(a) for a in arms if a.strategy == s}) for s in self.strategies}
        self.lookup = {(a.model, a.strategy, _variant(a)): a.key for a in arms}

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
            out[f"variant:{a.strategy}"] = _variant(a)
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
            hit.update(arm=key, model=arm.model, architecture=arm.architecture, strategy=arm.strategy,
                       knob=arm.knob, simulated=arm.simulated or "")  # fmt: skip
            self.cache[(key, i)] = hit
        return hit

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.cache.values()))


def _variant(arm) -> str:
    return ",".join(f"{k}={v}" for k, v in arm.fixed) or "-"


def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def _trial_fn(ev: _Evaluator, budget: Budget, values):
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


def _frontier(ev: _Evaluator, key: str, budget: Budget, objective: str, scan: int) -> tuple[dict | None, int]:
    """Best option of one arm within budget: binary search for the largest affordable knob
    value (every cost grows with the knob), then the values just below it and ``scan``
    log-spaced values under it (accuracy need not grow with the knob)."""

    def fits(i: int) -> bool:
        return all(v <= 0 for v in budget.excess(ev(key, i)).values())

    lo, hi = 0, len(ev.grids[key]) - 1
    if not fits(lo):
        return None, -1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    cand = {lo, lo - 1, lo - 2, *np.unique(np.round(np.geomspace(1, lo + 1, scan)) - 1).astype(int).tolist()}
    cand = sorted(i for i in cand if 0 <= i <= lo)
    rows = [(ev(key, i), i) for i in cand]
    rows = [(r, i) for r, i in rows if all(v <= 0 for v in budget.excess(r).values())]
    r, i = max(rows, key=lambda t: (round(t[0][objective], 12), -t[0][budget.primary()]))
    return r, i


def search_optuna(
    space: OptionSpace,
    target: Mapping[str, float],
    budget: Budget,
    risk: str = "expected",
    *,
    n_trials: int = 60,
    seed: int = 0,
    storage: str | None = None,
    study_name: str | None = None,
    scan: int = 8,
) -> SearchResult:
    """Optuna TPE study over the arms (model, strategy, variant), each trial's knob value found
    by a search along the arm's affordable frontier.

    Each trial picks an arm with three categorical parameters (what the sampler learns about
    a model or a variant carries over to the arms that share it); its knob value is the best
    of :func:`_frontier` (a binary search for the largest value within every budget, plus a
    few values below it), and its constraints are the budgets' excess at that value (all
    positive when even the smallest value is over budget). When there are at most
    ``n_trials / 2`` arms, each is enqueued once before the sampler's own trials. The result
    ranks every feasible
    option evaluated; with ``storage``, the best option of every worker's trials is included.
    """
    optuna = _quiet_optuna()
    objective = _objective(risk)
    t0 = time.perf_counter()
    arms = [a for a in space.arms(target) if len(space.grid(a, target))]
    if not arms:
        raise ValueError("no option is available for this difficulty")
    ev = _Evaluator(space, target, arms)
    name = study_name or _study_name(space, target, budget, objective, "single", arms)
    sampler = optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, n_startup_trials=min(10, n_trials)
    )
    study = optuna.create_study(
        study_name=name, storage=open_storage(storage), sampler=sampler, direction="maximize", load_if_exists=True
    )  # fmt: skip

    def run(trial) -> float:
        key = ev.suggest_arm(trial)
        row, i = (None, -1) if key is None else _frontier(ev, key, budget, objective, scan)
        if row is None:
            smallest = budget.excess(ev(key, 0)) if key is not None else dict.fromkeys(budget.limits, 1.0)
            for k, v in smallest.items():
                trial.set_constraint(k, max(v, 1e-9))
            trial.set_user_attr("arm", key)
            trial.set_user_attr("index", 0 if key is not None else -1)
            return -1.0
        for k, v in budget.excess(row).items():
            trial.set_constraint(k, v)
        trial.set_user_attr("arm", key)
        trial.set_user_attr("index", i)
        return float(row[objective])

    if len(arms) <= n_trials // 2 and not study.trials:
        # few arms: cover each once first (a sampler can miss a lone variant, e.g. the only
        # affordable model's direct-answer greedy); the rest of the trials are the sampler's
        for key in ev.arms:
            study.enqueue_trial(ev.arm_params(key))
    study.optimize(run, n_trials=n_trials)
    table = _study_table(study, ev)
    if len(ev.cache):
        table = pd.concat([table, ev.table()], ignore_index=True).drop_duplicates(["arm", "x"])
    mask = budget.feasible(table) if len(table) else np.zeros(0, dtype=bool)
    ranked = _rank(table[mask], objective, budget.primary()) if len(table) else table
    best = None if ranked.empty else ranked.iloc[0]
    binding = binding_constraint(table, best, budget, objective) if len(table) else "infeasible"
    seconds = time.perf_counter() - t0
    return SearchResult(ranked, "optuna", len(ev.cache), seconds, objective, budget, binding, table, study)


def _study_table(study, ev: _Evaluator) -> pd.DataFrame:
    """Every completed trial of the study (all workers) as option rows, deduplicated."""
    rows = {}
    for t in study.get_trials(deepcopy=False):
        key = t.user_attrs.get("arm")
        if t.state.name != "COMPLETE" or key not in ev.grids or t.user_attrs.get("index", -1) < 0:
            continue
        i = int(t.user_attrs["index"])
        rows[(key, i)] = ev(key, i)
    return pd.DataFrame(list(rows.values()))


def search(
    space: OptionSpace,
    target: Mapping[str, float],
    budget: Budget,
    risk: str = "expected",
    *,
    method: str = "auto",
    **optuna_kwargs,
) -> SearchResult:
    """``method="auto"`` enumerates spaces up to :data:`ENUMERATE_MAX_OPTIONS` options (and
    always when a storage is not given and the space is small), else runs Optuna;
    ``"exhaustive"`` or ``"optuna"`` force one."""
    if method not in ("auto", "exhaustive", "optuna"):
        raise ValueError(f"method must be auto, exhaustive or optuna, got {method!r}")
    if method == "auto":
        use_optuna = optuna_kwargs.get("storage") is not None or space.size(target) > ENUMERATE_MAX_OPTIONS
        method = "optuna" if use_optuna else "exhaustive"
    if method == "exhaustive":
        return search_exhaustive(space, target, budget, risk)
    return search_optuna(space, target, budget, risk, **optuna_kwargs)
