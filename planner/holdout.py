"""Honest evaluation of the planner: plan on half of the questions, measure on the other half.

:func:`evaluate_profile` splits the questions of a profile in two (seeded, stratified by
difficulty), computes curves on each half, plans on the first half (``train``) and looks up
the realized accuracy and cost of each recommendation on the second (``test``), at several
budgets. It reports the regret against the hindsight-best option (the best option on the
test half within the same budget, with test costs) and against fixed baselines: always
greedy, always majority@16, always best-of-16 (each with the model that the train half
finds most accurate within the budget), and the per-difficulty allocation.

Only PROFILED knob values are planned over here (``measured_only``): an interpolated or
extrapolated knob value has no held-out measurement to check it against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fitting import schema as S
from fitting.counts import curves_from_counts
from fitting.curves import curves_from_samples

from .catalog import load_catalog
from .constants import ACCURACY, ARM, KNOB_VALUE, STRATEGY, within_budget
from .costs import DEFAULT_CONCURRENCY
from .profile import Profile
from .search import Budget, InfeasibleBudget, allocate_exact, bin_tables, search_exhaustive, split_questions
from .space import CostModel, OptionSpace
from .space.questions import QuestionTable

__all__ = ["evaluate_profile", "BASELINES"]

#: fixed baselines: name -> (strategy, knob value or None for any)
BASELINES = {"greedy": ("greedy", None), "majority@16": ("majority", 16.0), "best_of@16": ("best_of", 16.0)}


def _halves(profile: Profile, seed: int):
    """Curves and per-question tables of a seeded half of the questions and of the other half
    (from the samples, or from the counts of a counts folder)."""
    s = profile.counts if profile.is_counts else profile.samples
    diff = s.groupby(S.QUESTION_ID)[S.DIFFICULTY].first().astype(str).to_dict()
    train, test = split_questions(list(diff), diff, seed)
    halves, tables = [], []
    for qs in (train, test):
        part = s[s[S.QUESTION_ID].astype(str).isin(qs)]
        if profile.is_counts:
            halves.append(curves_from_counts(part, n_boot=200, seed=seed))
            tables.append(QuestionTable.from_counts(part))
        else:
            halves.append(curves_from_samples(part, n_boot=200, seed=seed))
            tables.append(QuestionTable.from_samples(part))
    return halves, tables


def _label(space: OptionSpace, row) -> str:
    """``model strategy knob=value,...`` of an option row (with the knobs that tell arms apart)."""
    c = space.option_choice(space.arm_by_key(row[ARM]), row[KNOB_VALUE])
    knobs = ",".join(f"{k}={v}" for k, v in c["knobs"].items())
    checker = " (exact checker)" if c.get("verifier") == "exact" else ""
    return f"{c['model']} {c['strategy']}" + (f" {knobs}" if knobs else "") + checker


def _lookup(table: pd.DataFrame, arm: str, x: float) -> pd.Series | None:
    hit = table[(table[ARM] == arm) & np.isclose(table[KNOB_VALUE], x)]
    return None if hit.empty else hit.iloc[0]


def evaluate_profile(
    profile: Profile,
    budgets: Sequence[float] | None = None,
    *,
    cost_key: str = "flops",
    hardware: str | None = "h100",
    api: str | None = None,
    risk: str = "expected",
    seed: int = 0,
    include_simulated: bool = False,
    verifier: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    tp: int | None = None,
) -> pd.DataFrame:
    """Plan on a seeded half of the questions, realize on the other half, at each budget.

    Parameters
    ----------
    profile : :class:`~planner.profile.Profile`
    budgets : sequence of float or None
        Per-query limits on ``cost_key``; default six budgets spaced geometrically from the
        cheapest to the most expensive profiled option (of the train half).
    cost_key : str
        The budgeted cost (``flops``, ``effective_flops``, ``tokens``, ``usd``, ``latency_s``).
    verifier, concurrency, tp
        As for :class:`~planner.request.PlanRequest`: ``verifier="exact"`` offers best-of-n
        with an exact checker; each half's options are priced from its own questions' tokens.

    Returns
    -------
    DataFrame, one row per budget: the planner's choice, predicted (train) and realized
    (test) accuracy and cost, the hindsight-best test option and the regret, the realized
    accuracy of each baseline and of the per-difficulty allocation.
    """
    catalog = load_catalog()
    hw = catalog.gpu(hardware) if hardware else None
    price = catalog.api_price(api) if api else None
    coster = CostModel(profile.specs, hardware=hw, api=price, concurrency=concurrency, tp=tp)
    if profile.is_counts and verifier != "exact":
        raise ValueError(
            "per-question counts give pass@k only, which a deployment can use only with an exact "
            "checker: add --verifier exact"
        )
    (c_train, c_test), (qt_train, qt_test) = _halves(profile, seed)
    kw = {"architectures": profile.architectures, "measured_only": True, "fit_if_missing": False}
    kw["verifier"] = verifier
    sp_train = OptionSpace.from_curves(
        c_train, coster, include_simulated=include_simulated, questions=qt_train, **kw
    )
    sp_test = OptionSpace.from_curves(
        c_test, coster, include_simulated=include_simulated, questions=qt_test, **kw
    )
    base_train = OptionSpace.from_curves(c_train, coster, include_simulated=True, questions=qt_train, **kw)
    base_test = OptionSpace.from_curves(c_test, coster, include_simulated=True, questions=qt_test, **kw)
    target_train, target_test = sp_train.target(None), sp_test.target(None)
    t_train, t_test = sp_train.table(target_train), sp_test.table(target_test)
    b_train, b_test = base_train.table(target_train), base_test.table(target_test)
    if budgets is None:
        lo, hi = t_train[cost_key].min(), t_train[cost_key].max()
        budgets = np.geomspace(lo * 1.05, hi, 6)
    rows = []
    per_bin_train = bin_tables(sp_train, target_train)
    per_bin_test = bin_tables(sp_test, target_test)
    for B in budgets:
        budget = Budget({cost_key: float(B)})
        row: dict[str, object] = {f"budget_{cost_key}": float(B)}
        plan = search_exhaustive(sp_train, target_train, budget, risk)
        hind = search_exhaustive(sp_test, target_test, budget, "expected")
        if plan.best is None:
            row["choice"] = "infeasible"
            rows.append(row)
            continue
        best = plan.best
        real = _lookup(t_test, best[ARM], best[KNOB_VALUE])
        row.update(
            choice=_label(sp_train, best),
            predicted_accuracy=float(best[ACCURACY]),
            realized_accuracy=float(real[ACCURACY]) if real is not None else np.nan,
            realized_cost=float(real[cost_key]) if real is not None else np.nan,
        )  # fmt: skip
        if hind.best is not None:
            h = hind.best
            row["hindsight_best"] = _label(sp_test, h)
            row["hindsight_accuracy"] = float(h[ACCURACY])
            row["regret"] = float(h[ACCURACY]) - row["realized_accuracy"]
        for name, (strategy, x) in BASELINES.items():
            cand = b_train[(b_train[STRATEGY] == strategy) & within_budget(b_train[cost_key], B)]
            if x is not None:
                cand = cand[np.isclose(cand[KNOB_VALUE], x)]
            if cand.empty:
                row[name] = np.nan
                continue
            pick = cand.sort_values([ACCURACY, cost_key], ascending=[False, True]).iloc[0]
            got = _lookup(b_test, pick[ARM], pick[KNOB_VALUE])
            row[name] = float(got[ACCURACY]) if got is not None else np.nan
        try:
            alloc = allocate_exact(per_bin_train, target_train, float(B), cost_key, risk)
            acc = 0.0
            for b, r in alloc.choice.items():
                got = _lookup(per_bin_test[b], r[ARM], r[KNOB_VALUE]) if b in per_bin_test else None
                acc += target_test.get(b, 0.0) * (float(got[ACCURACY]) if got is not None else np.nan)
            row["allocation_realized"] = acc
        except InfeasibleBudget:
            row["allocation_realized"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)
