"""``ttc evaluate``: is the planner right? Plan on one half of the questions, measure on the other,
over repeated random splits (:mod:`planner.split_engine`), at several budgets.

For each budget and split: the planner's choice on the train half (measured options only: an
interpolated knob value has no held-out measurement to check it against), its accuracy on the
test half, the best option of the test half within the budget (hindsight) and the regret
between them, fixed baselines and the per-difficulty allocation; then means over the splits
with intervals (:func:`planner.split_engine.summarize`).

A counts folder (per-question correct counts, ``ttc import`` of counts) is split by question
like samples; its options are best-of-n with an exact checker (``verifier="exact"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .catalog import load_catalog
from .constants import ACCURACY, ARM, DEFAULT_HARDWARE, KNOB_VALUE, MEMORY_BYTES, MODEL, STRATEGY
from .costs import DEFAULT_CONCURRENCY
from .profile import Profile
from .search import Budget, InfeasibleBudget, allocate_exact, search_exhaustive
from .space import CostModel, OptionSpace
from .split_engine import LEVEL, HeldOut, Key, SplitStat, SplitTables, most_common, split_seeds, summarize

__all__ = ["Evaluation", "evaluate_profile", "label_of"]


# ---- ttc evaluate --------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """What :func:`evaluate_profile` measured.

    ``table``: one row per budget, means over the splits with intervals (:func:`summarize`);
    ``splits``: one row per (split, budget), the raw values; ``baselines``: column name ->
    what the baseline is; ``serving``: the cost model's serving assumptions (``checker_cost``
    with ``verifier="exact"``: the exact checker's cost per checked sample, empty = free).
    """

    table: pd.DataFrame
    splits: pd.DataFrame
    cost_key: str
    n_splits: int
    n_train: int
    n_test: int
    stats: dict[float, dict[str, SplitStat]] = field(default_factory=dict)
    baselines: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    serving: dict[str, object] = field(default_factory=dict)
    #: token lengths assumed for questions without measured ones (:meth:`LengthCoverage.to_json`)
    assumptions: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict:
        rows = []
        for _, r in self.table.iterrows():
            b = float(r["budget"])
            rows.append(
                {
                    "budget": {self.cost_key: b},
                    "choice": r["choice"],
                    "choice_share": r["choice_share"],
                    "predicted_accuracy": _num(r["predicted_accuracy"]),
                    **{k: s.to_json() for k, s in self.stats.get(b, {}).items()},
                    "hindsight_best": r["hindsight_best"],
                    "baseline_models": {name: r[f"{name} model"] for name in self.baselines},
                }
            )
        return {
            "method": "repeated random half splits, stratified by difficulty; plan on one half, measure on the other",
            "interval": f"{LEVEL:.0%} corrected resampled t (Nadeau & Bengio 2003)",
            "n_splits": self.n_splits,
            "questions": {"train": self.n_train, "test": self.n_test},
            "cost_key": self.cost_key,
            "baselines": self.baselines,
            "serving": self.serving,
            "budgets": rows,
            "notes": self.notes,
            **({"assumptions": self.assumptions} if self.assumptions else {}),
        }


def _num(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return float(f"{v:.6g}") if math.isfinite(v) else None


def label_of(space: OptionSpace, arm_key: str, x: float) -> str:
    """``model strategy knob=value,...`` of an option (the knobs that tell arms apart; a
    ``verified`` option says ``(exact checker)``)."""
    c = space.option_choice(space.arm_by_key(arm_key), float(x))
    knobs = " ".join(f"{k}={v}" for k, v in c["knobs"].items())
    checker = " (exact checker)" if c.get("verifier") == "exact" else ""
    return f"{c['model']} {c['strategy']}" + (f" {knobs}" if knobs else "") + checker


def _by_option(table: pd.DataFrame) -> dict[tuple[str, float], float]:
    return {
        (a, float(x)): float(v)
        for a, x, v in zip(table[ARM], table[KNOB_VALUE], table[ACCURACY], strict=True)
    }


def evaluate_profile(
    profile: Profile,
    budgets: Sequence[float] | None = None,
    *,
    cost_key: str = "flops",
    hardware: str | None = DEFAULT_HARDWARE,
    api: str | None = None,
    risk: str = "expected",
    seed: int = 0,
    n_splits: int = 20,
    n_boot: int = 200,
    include_simulated: bool = False,
    verifier: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    tp: int | None = None,
    checker_cost: Mapping[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Plan on a random half of the questions, measure on the other half, at each budget, over
    ``n_splits`` random splits (module docstring).

    The planner searches the measured options of the train half (profiled knob values only:
    an interpolated value has no held-out measurement) for every question (difficulty bins
    weighted by their question counts). For each budget and split it records the choice's
    accuracy on the test half, the best option of the test half within the budget (hindsight,
    an optimistic reference: the best of many noisy options) and the regret between them,
    fixed baselines (greedy, majority vote and best-of at the largest profiled pool, each with
    the model the train half finds most accurate within the budget) and the per-difficulty
    allocation. Costs are the cost model's on the whole profile's measured tokens, each question
    priced at its own per-sample lengths (:mod:`planner.space.pricing`; the split checks
    accuracy: :mod:`planner.split_engine` says why the whole profile's tokens are used).

    ``verifier``, ``concurrency``, ``tp`` and ``checker_cost`` are as for
    :class:`~planner.request.PlanRequest`: ``verifier="exact"`` offers best-of-n with an exact
    checker (``verified``), the only option of a counts folder.

    Returns
    -------
    :class:`Evaluation`

    Examples
    --------
    >>> ev = evaluate_profile(load_profile("runs/lab"), n_splits=20)  # doctest: +SKIP
    >>> ev.table[["budget", "choice", "regret", "regret_lo", "regret_hi"]]  # doctest: +SKIP
    """
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    catalog = load_catalog()
    hw = catalog.gpu(hardware) if hardware else None
    price = catalog.api_price(api) if api else None
    if profile.is_counts and verifier != "exact":
        raise ValueError(
            "per-question counts give pass@k only, which a deployment can use only with an exact "
            "checker: add --verifier exact"
        )
    profile.lengths.check()  # one line naming the flags, before anything is priced
    coster = CostModel(
        profile.specs,
        hardware=hw,
        api=price,
        concurrency=concurrency,
        tp=tp,
        checker_cost=dict(checker_cost or {}),
    )
    space = OptionSpace.from_curves(
        profile.curves,
        coster,
        architectures=profile.architectures,
        measured_only=True,
        fit_if_missing=False,
        include_simulated=include_simulated,
        questions=profile.questions,
        verifier=verifier,
    )
    mix = space.target(None)
    targets = {"mix": mix, **{b: {b: 1.0} for b in mix}}
    held = HeldOut(
        space,
        profile.curves,
        profile.samples,
        targets,
        counts=profile.counts,
        verifier=verifier,
        per_question=profile.per_question,
    )
    full = held.full["mix"]
    if full.empty:
        raise ValueError("no measured option covers every difficulty of the profile: nothing to evaluate")
    if cost_key not in full or not np.isfinite(full[cost_key].to_numpy(float)).any():
        raise ValueError(
            f"the cost model gives no {cost_key!r} here (a budget on usd or latency_s needs --gpu or --api)"
        )
    if budgets is None:
        lo, hi = float(full[cost_key].min()), float(full[cost_key].max())
        budgets = np.geomspace(lo * 1.05, hi, 6) if hi > lo * 1.05 else [hi]
    budgets = [float(b) for b in budgets]
    memory = coster.memory_limit_bytes() if hw is not None else None
    extra = {MEMORY_BYTES: float(memory)} if memory else {}
    pools = full.loc[full[STRATEGY].isin(["majority", "best_of"]), KNOB_VALUE]
    n_max = float(pools.max()) if len(pools) else math.nan
    baselines = {"greedy": ("greedy", None)}
    if math.isfinite(n_max):
        baselines.update(
            {f"majority n={n_max:g}": ("majority", n_max), f"best_of n={n_max:g}": ("best_of", n_max)}
        )
    records = []
    n_train = n_test = 0
    seeds = split_seeds(seed, n_splits)
    setting = _Setting(held, space, mix, cost_key, extra, risk, baselines)
    for r, (train, test) in enumerate(
        held.splits(n_splits, seed, n_boot=n_boot if risk == "conservative" else 0)
    ):
        n_train, n_test = len(train.questions), len(test.questions)
        halves = _Halves.of(train, test, mix, memory, r)
        for B in budgets:
            rec = _one_budget(setting, halves, B)
            rec["split_seed"] = seeds[r]
            records.append(rec)
        if progress is not None:
            progress(r + 1, n_splits)
    splits = pd.DataFrame(records)
    ratio = n_test / max(n_train, 1)
    rows, all_stats = [], {}
    for B in budgets:
        part = splits[np.isclose(splits["budget"], B)]
        choice, count = most_common(part.get("choice", pd.Series(dtype=object)).tolist())
        hind, _ = most_common(part.get("hindsight_best", pd.Series(dtype=object)).tolist())
        st = {}
        for c in [
            "realized_accuracy",
            "hindsight_accuracy",
            "regret",
            "allocation",
            *baselines,
            *(f"planner - {n}" for n in [*baselines, "allocation"]),
        ]:
            if c not in part:
                continue
            diff = c == "regret" or c.startswith("planner - ")
            floor = float(np.nanmean(part[f"{c} floor"])) if part[f"{c} floor"].notna().any() else 0.0
            st[c] = summarize(part[c], ratio, bounds=(-1.0, 1.0) if diff else (0.0, 1.0), floor=floor)
        all_stats[B] = st
        row = {
            "budget": B,
            "choice": choice or "nothing fits",
            "choice_share": f"{count}/{len(part)}",
            "choice_cost": float(part["choice_cost"].mean()) if "choice_cost" in part else math.nan,
            "predicted_accuracy": float(part["predicted_accuracy"].mean())
            if "predicted_accuracy" in part
            else math.nan,
            "hindsight_best": hind,
        }
        for c, stat in st.items():
            row[c], row[f"{c}_lo"], row[f"{c}_hi"], row[f"{c}_se"] = stat.mean, stat.lo, stat.hi, stat.se
        for name in baselines:
            row[f"{name} model"] = most_common(part.get(f"{name} model", pd.Series(dtype=object)).tolist())[0]
        rows.append(row)
    notes = [
        "costs: the cost model on the whole profile's measured tokens (each question at its own lengths); "
        "accuracy: measured on the held-out half",
        "hindsight best: the most accurate option of the held-out half within the budget (optimistic: the best of "
        "many noisy options), so regret is an upper estimate",
    ]
    described = {
        name: f"{s} at {'any knob' if x is None else f'n={x:g}'}, model picked on the planning half"
        for name, (s, x) in baselines.items()
    }
    serving = coster.serving()
    if verifier == "exact":
        serving["checker_cost"] = dict(coster.checker_cost)  # empty: assumed free
    ev = Evaluation(
        pd.DataFrame(rows), splits, cost_key, n_splits, n_train, n_test, all_stats, described, notes, serving
    )
    lengths = profile.lengths.to_json()
    if lengths is not None:
        ev.assumptions["lengths"] = lengths
    return ev


@dataclass(frozen=True)
class _Setting:
    """What every split and budget of one evaluation shares."""

    held: HeldOut
    space: OptionSpace
    mix: dict[str, float]
    cost_key: str
    extra: dict[str, float]
    risk: str
    baselines: dict[str, tuple[str, float | None]]


@dataclass(frozen=True)
class _Halves:
    """One split's two halves and the option tables every budget reads from them."""

    train: SplitTables
    test: SplitTables
    t_train: pd.DataFrame
    acc_test: dict
    bins_train: dict[str, pd.DataFrame]
    bins_test: dict[str, dict]
    split: int

    @classmethod
    def of(cls, train, test, mix, memory, split: int) -> _Halves:
        """The planning half's tables (per bin: within the GPU's memory when there is one) and
        the held-out half's accuracy per option."""
        bins_train = {b: train.table({b: 1.0}) for b in mix}
        if memory:
            bins_train = {b: t[t[MEMORY_BYTES] <= memory] for b, t in bins_train.items()}
        bins_test = {b: _by_option(test.table({b: 1.0})) for b in mix}
        return cls(train, test, train.table(mix), _by_option(test.table(mix)), bins_train, bins_test, split)


def _one_budget(setting: _Setting, halves: _Halves, B: float) -> dict:
    """One split at one budget: the planner's choice, the hindsight best, the baselines and the
    allocation, each measured on the test half, with the floor of each one's standard error
    (:meth:`HeldOut.full_se`)."""
    held, space, mix, cost_key, risk = (
        setting.held,
        setting.space,
        setting.mix,
        setting.cost_key,
        setting.risk,
    )
    acc_test, t_train, bins_test = halves.acc_test, halves.t_train, halves.bins_test
    budget = Budget({cost_key: B, **setting.extra})
    rec: dict[str, object] = {"split": halves.split, "budget": B}
    plan = search_exhaustive(halves.train, mix, budget, risk)
    hind = search_exhaustive(halves.test, mix, budget, "expected")

    def floor(*terms: tuple[float, Key | Mapping[str, Key]]) -> float:
        by_bin = {b: [(c, k[b] if isinstance(k, Mapping) else k) for c, k in terms] for b in mix}
        return held.full_se(by_bin, mix)

    choice = None
    if plan.best is not None:
        best = plan.best
        choice = (best[ARM], float(best[KNOB_VALUE]))
        rec.update(
            choice=label_of(space, *choice),
            choice_arm=choice[0],
            choice_x=choice[1],
            choice_cost=float(best[cost_key]),
            predicted_accuracy=float(best[ACCURACY]),
            realized_accuracy=acc_test.get(choice, math.nan),
        )
        rec["realized_accuracy floor"] = floor((1.0, choice))
    if hind.best is not None:
        h = (hind.best[ARM], float(hind.best[KNOB_VALUE]))
        rec.update(hindsight_best=label_of(space, *h), hindsight_accuracy=float(hind.best[ACCURACY]))
        rec["hindsight_accuracy floor"] = floor((1.0, h))
        rec["regret"] = rec["hindsight_accuracy"] - rec.get("realized_accuracy", math.nan)
        rec["regret floor"] = floor((1.0, h), (-1.0, choice)) if choice else math.nan
    ok = budget.feasible(t_train)
    for name, (strategy, x) in setting.baselines.items():
        cand = t_train[ok & (t_train[STRATEGY] == strategy).to_numpy()]
        if x is not None:
            cand = cand[np.isclose(cand[KNOB_VALUE], x)]
        if cand.empty:
            continue
        pick = cand.sort_values([ACCURACY, cost_key], ascending=[False, True]).iloc[0]
        key = (pick[ARM], float(pick[KNOB_VALUE]))
        rec[name], rec[f"{name} model"], rec[f"{name} floor"] = (
            acc_test.get(key, math.nan),
            pick[MODEL],
            floor((1.0, key)),
        )
        if choice:
            rec[f"planner - {name}"] = rec.get("realized_accuracy", math.nan) - rec[name]
            rec[f"planner - {name} floor"] = floor((1.0, choice), (-1.0, key))
    try:
        alloc = allocate_exact(halves.bins_train, mix, B, cost_key, risk)
    except InfeasibleBudget:
        return rec
    picks = {b: (row[ARM], float(row[KNOB_VALUE])) for b, row in alloc.choice.items()}
    rec["allocation"] = sum(mix[b] * bins_test[b].get(k, math.nan) for b, k in picks.items())
    rec["allocation floor"] = floor((1.0, picks))
    if choice:
        rec["planner - allocation"] = rec.get("realized_accuracy", math.nan) - rec["allocation"]
        rec["planner - allocation floor"] = floor((1.0, choice), (-1.0, picks))
    return rec
