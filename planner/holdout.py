"""Held-out checks of the planner: plan on some questions, measure on the others, many times over.

A plan chosen and scored on the same questions is optimistic: among many options, the one that
looks best is partly lucky. :class:`HeldOut` makes the honest check cheap. It computes once,
for every MEASURED option of a priced option space (an arm at one of its profiled knob values),
each question's accuracy (:func:`fitting.curves.per_question_curves`: the estimators of the
curves table, per question); a split of the questions into two halves (seeded, stratified by
difficulty: :func:`planner.search.split_questions`) is then only means over subsets of them,
so many random splits cost milliseconds each.

Costs are the option space's: the cost model fed with the whole profile's measured tokens
(token counts are means over many samples and move little between halves; accuracy is what a
split checks). Accuracy intervals on a half (for ``risk="conservative"``) are percentile
bootstraps over its questions, combined over a mix of difficulties as the option space
combines them (weighted sums of the bins' interval ends).

:func:`evaluate_profile` (``ttc evaluate``) plans on one half at several budgets and measures
on the other half, over ``n_splits`` random splits; :mod:`planner.report.findings` checks the
headline findings the same way.

**Intervals over repeated splits.** Random halves share questions, so the spread of the split
estimates understates the uncertainty of their mean. :func:`summarize` uses the corrected
resampled t interval of Nadeau & Bengio (2003, "Inference for the generalization error",
Machine Learning 52:239-281): variance ``(1/R + n_test/n_train) s^2``, ``s^2`` the variance of
the R split estimates. A difference smaller than its standard error is *within noise*.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from fitting import schema as S
from fitting.curves import per_question_curves

from .catalog import load_catalog
from .constants import (
    ACCURACY,
    ACCURACY_HI,
    ACCURACY_LO,
    ARM,
    COST_KEYS,
    KNOB_VALUE,
    MEMORY_BYTES,
    MODEL,
    SOURCE,
    STRATEGY,
)
from .profile import DEPLOYABLE_METRICS, Profile
from .search import Budget, InfeasibleBudget, allocate_exact, search_exhaustive, split_questions
from .space import CostModel, OptionSpace
from .space.arms import arms_from_curves, single_knob_value

__all__ = [
    "HeldOut",
    "SplitStat",
    "SplitTables",
    "Evaluation",
    "evaluate_profile",
    "summarize",
    "most_common",
    "label_of",
    "LEVEL",
]

#: coverage of the intervals over splits (and of the curves' intervals)
LEVEL = 0.9


@dataclass(frozen=True)
class SplitStat:
    """One quantity over repeated random splits: its mean, standard error and interval
    (:func:`summarize`). ``se``, ``lo`` and ``hi`` are NaN with fewer than two splits."""

    mean: float
    se: float
    lo: float
    hi: float
    n_splits: int

    @property
    def within_noise(self) -> bool:
        """Whether the mean (a difference) is no larger than its standard error."""
        return bool(math.isfinite(self.se) and abs(self.mean) <= self.se)

    def to_json(self) -> dict[str, float | int | None]:
        def num(v: float) -> float | None:
            return float(f"{v:.6g}") if math.isfinite(v) else None

        return {"mean": num(self.mean), "se": num(self.se), "lo": num(self.lo), "hi": num(self.hi),
                "n_splits": self.n_splits}  # fmt: skip


def summarize(
    values: Sequence[float],
    test_over_train: float = 1.0,
    level: float = LEVEL,
    bounds: tuple[float, float] = (-1.0, 1.0),
) -> SplitStat:
    """Mean of per-split estimates with the corrected resampled t interval (module docstring),
    clipped to ``bounds`` (an accuracy lies in [0, 1], a difference of two in [-1, 1]).

    NaN values (a split where the quantity is undefined) are left out.

    Examples
    --------
    >>> s = summarize([0.1, 0.3, 0.2, 0.2])
    >>> round(s.mean, 3), round(s.se, 4), s.n_splits
    (0.2, 0.0913, 4)
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return SplitStat(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if len(v) < 2:
        return SplitStat(mean, math.nan, math.nan, math.nan, 1)
    se = math.sqrt((1.0 / len(v) + test_over_train) * float(v.var(ddof=1)))
    t = float(stats.t.ppf(0.5 + level / 2.0, len(v) - 1))
    lo, hi = max(mean - t * se, bounds[0]), min(mean + t * se, bounds[1])
    return SplitStat(mean, se, lo, hi, len(v))


def _target_key(target: Mapping[str, float]) -> tuple:
    return tuple(sorted((str(d), round(float(w), 12)) for d, w in target.items()))


@dataclass
class SplitTables:
    """Option tables of one half of the questions, answered like an option space: the searches
    (:func:`planner.search.search_exhaustive`, :func:`planner.search.bin_tables`) only call
    ``table(target)``."""

    tables: dict[tuple, pd.DataFrame]
    questions: frozenset[str]

    def table(self, target: Mapping[str, float]) -> pd.DataFrame:
        try:
            return self.tables[_target_key(target)]
        except KeyError:
            raise KeyError(f"no held-out table for target {dict(target)}") from None


@dataclass
class _Part:
    """One bin of a target: its label and weight, its questions and their accuracy on each option (Q x O)."""

    bin: str
    weight: float
    questions: np.ndarray
    matrix: np.ndarray


def _option_vectors(curves: pd.DataFrame, per_q: Mapping[tuple, pd.DataFrame]) -> dict[tuple, pd.Series]:
    """``(arm key, difficulty, knob value) -> per-question accuracy``, the arms read off the curves
    table as the option space reads them (:func:`planner.space.arms.arms_from_curves`)."""
    sources, _ = arms_from_curves(curves, include_simulated=True)
    out: dict[tuple, pd.Series] = {}
    for src in sources:
        per_x: dict[float, list[pd.Series]] = {}
        for strategy, config, metric, diff in src.curve_keys:
            frame = per_q.get((src.arm.model, str(strategy), str(config), str(diff), metric))
            if frame is None:
                continue
            frame = frame.set_axis(frame.index.map(str), axis=0)
            if len(src.curve_keys) == 1 and frame.shape[1] > 1:  # a pool: x = k
                for k in frame.columns:
                    per_x.setdefault(float(k), []).append(frame[k])
            else:  # one execution per question: x from the config
                x = single_knob_value(str(strategy), json.loads(str(config)) if config else {})[1]
                per_x.setdefault(x, []).append(frame.iloc[:, 0])
        for x, v in per_x.items():
            out[(src.arm.key, str(src.difficulty), x)] = (
                pd.concat(v, axis=1).mean(axis=1) if len(v) > 1 else v[0]
            )
    return out


def _mix_table(parts: list[tuple[float, pd.DataFrame]]) -> pd.DataFrame:
    """The options measured in every bin of a mix, with the weighted mean of the bins' costs
    (what :meth:`planner.space.OptionSpace.evaluate_values` computes for a mix)."""
    w0, first = parts[0]
    keys = first[[ARM, KNOB_VALUE]]
    for _, t in parts[1:]:
        keys = keys.merge(t[[ARM, KNOB_VALUE]], on=[ARM, KNOB_VALUE])
    out = keys.merge(first, on=[ARM, KNOB_VALUE], how="left")
    costs = [k for k in (*COST_KEYS, MEMORY_BYTES) if k in first]
    out[costs] = 0.0
    for w, t in parts:
        out[costs] += w * keys.merge(t, on=[ARM, KNOB_VALUE], how="left")[costs].to_numpy(float)
    return out


def _split_seeds(seed: int, n: int) -> list[int]:
    """Seeds of ``n`` splits; the first is ``seed`` itself (one split = the seeded half/half split)."""
    rest = np.random.default_rng(seed).integers(0, 2**31 - 1, size=max(n - 1, 0)).tolist()
    return [int(seed), *map(int, rest)]


class HeldOut:
    """Per-question accuracy of every measured option of a priced option space (module docstring).

    Parameters
    ----------
    space : OptionSpace or planner.report.data.PlanContext
        Anything with ``table(target)`` returning priced options (its measured rows are used).
    curves, samples : DataFrame
        The curves table the space was built from and the samples behind it.
    targets : mapping
        ``label -> {difficulty: weight}``: what the checks plan for (each bin, a mix).
    seed : int
        Seed of the Monte Carlo estimates of ``weighted@k`` (as for the curves table).
    """

    def __init__(self, space, curves: pd.DataFrame, samples: pd.DataFrame,
                 targets: Mapping[str, Mapping[str, float]], *, seed: int = 0) -> None:  # fmt: skip
        vectors = _option_vectors(curves, per_question_curves(samples, metrics=DEPLOYABLE_METRICS, seed=seed))
        diff = samples.groupby(S.QUESTION_ID)[S.DIFFICULTY].first()
        self.difficulty: dict[str, str] = {str(q): str(d) for q, d in diff.items()}
        by_bin: dict[str, list[str]] = {}
        for q, d in sorted(self.difficulty.items()):
            by_bin.setdefault(d, []).append(q)
        position = {b: {q: i for i, q in enumerate(qs)} for b, qs in by_bin.items()}
        aligned: dict[tuple, np.ndarray] = {}

        def column(arm: str, b: str, x: float) -> np.ndarray:
            """One option's accuracy on each question of bin ``b`` (NaN: not measured there)."""
            key = (arm, b, float(x))
            if key not in aligned:
                col = np.full(len(by_bin.get(b, [])), np.nan)
                v = vectors.get(key)
                if v is not None:
                    pos = [position[b].get(q, -1) for q in v.index] if b in position else []
                    ok = np.asarray(pos, dtype=int) >= 0
                    col[np.asarray(pos, dtype=int)[ok]] = v.to_numpy(float)[ok]
                aligned[key] = col
            return aligned[key]

        self.targets = {label: {str(d): float(w) for d, w in t.items()} for label, t in targets.items()}
        self.full: dict[str, pd.DataFrame] = {}
        self._parts: dict[str, list[_Part]] = {}
        singles = {next(iter(t)): label for label, t in self.targets.items() if len(t) == 1}
        for label, target in sorted(self.targets.items(), key=lambda kv: len(kv[1])):
            if len(target) > 1 and all(b in singles for b in target):  # a mix: weighted bin costs
                table = _mix_table([(w, self.full[singles[b]]) for b, w in target.items()])
            else:
                table = space.table(target)
                table = table[table[SOURCE] == "measured"].reset_index(drop=True)
            parts = []
            for b, w in target.items():
                cols = [column(a, b, x) for a, x in zip(table[ARM], table[KNOB_VALUE], strict=True)]
                matrix = np.column_stack(cols) if cols else np.zeros((len(by_bin.get(b, [])), 0))
                parts.append(_Part(b, w, np.asarray(by_bin.get(b, []), dtype=object), matrix))
            self.full[label] = table
            self._parts[label] = parts

    @property
    def questions(self) -> list[str]:
        return sorted(self.difficulty)

    def split(self, seed: int) -> tuple[set[str], set[str]]:
        """A seeded half/half split of the questions, stratified by difficulty."""
        return split_questions(self.questions, self.difficulty, seed)

    def tables(
        self, questions: Iterable[str], *, n_boot: int = 0, level: float = LEVEL, seed: int = 0
    ) -> SplitTables:
        """Every target's measured options with their accuracy on ``questions`` only. With
        ``n_boot`` the interval is a percentile bootstrap over those questions (one draw per
        bin, shared by every target), else the interval columns are NaN. Options with no
        question in the subset are left out."""
        rng = np.random.default_rng(seed)
        keep = frozenset(map(str, questions))
        alpha = (1.0 - level) / 2.0
        draws: dict[str, np.ndarray] = {}
        out = {}
        for label, parts in self._parts.items():
            table = self.full[label].copy()
            acc = np.zeros(len(table))
            lo = np.zeros(len(table)) if n_boot else np.full(len(table), np.nan)
            hi = lo.copy()
            for p in parts:
                mask = np.fromiter((q in keep for q in p.questions), dtype=bool, count=len(p.questions))
                seen = np.isfinite(p.matrix[mask])
                values = np.where(seen, p.matrix[mask], 0.0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    acc += p.weight * values.sum(axis=0) / seen.sum(axis=0)
                    if n_boot:
                        n = int(mask.sum())
                        if p.bin not in draws:
                            draws[p.bin] = (
                                rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
                                if n
                                else np.zeros((n_boot, 0))
                            )
                        w = draws[p.bin]
                        boot = (w @ values) / (w @ seen.astype(float))
                        lo += p.weight * np.nanquantile(boot, alpha, axis=0, method="lower")
                        hi += p.weight * np.nanquantile(boot, 1.0 - alpha, axis=0, method="higher")
            table[ACCURACY], table[ACCURACY_LO], table[ACCURACY_HI] = acc, lo, hi
            out[_target_key(self.targets[label])] = table[np.isfinite(acc)].reset_index(drop=True)
        return SplitTables(out, keep)

    def splits(
        self, n_splits: int, seed: int = 0, *, n_boot: int = 0
    ) -> Iterator[tuple[SplitTables, SplitTables]]:
        """``n_splits`` random (train, test) halves: train tables with bootstrap intervals when
        ``n_boot`` (what ``risk="conservative"`` plans with), test tables without."""
        for s in _split_seeds(seed, n_splits):
            train, test = self.split(s)
            yield self.tables(train, n_boot=n_boot, seed=s), self.tables(test)

    def test_over_train(self) -> float:
        """Questions in a test half over questions in a train half (for :func:`summarize`)."""
        train, test = self.split(0)
        return len(test) / max(len(train), 1)


# ---- ttc evaluate --------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """What :func:`evaluate_profile` measured.

    ``table``: one row per budget, means over the splits with intervals (:func:`summarize`);
    ``splits``: one row per (split, budget), the raw values; ``baselines``: column name ->
    what the baseline is.
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

    def to_json(self) -> dict:
        rows = []
        for _, r in self.table.iterrows():
            b = float(r["budget"])
            rows.append({
                "budget": {self.cost_key: b}, "choice": r["choice"], "choice_share": r["choice_share"],
                "predicted_accuracy": _num(r["predicted_accuracy"]),
                **{k: s.to_json() for k, s in self.stats.get(b, {}).items()},
                "hindsight_best": r["hindsight_best"],
                "baseline_models": {name: r[f"{name} model"] for name in self.baselines},
            })  # fmt: skip
        return {"method": "repeated random half splits, stratified by difficulty; plan on one half, measure on the other",
                "interval": f"{LEVEL:.0%} corrected resampled t (Nadeau & Bengio 2003)",
                "n_splits": self.n_splits, "questions": {"train": self.n_train, "test": self.n_test},
                "cost_key": self.cost_key, "baselines": self.baselines, "budgets": rows, "notes": self.notes}  # fmt: skip


def _num(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return float(f"{v:.6g}") if math.isfinite(v) else None


def label_of(space: OptionSpace, arm_key: str, x: float) -> str:
    """``model strategy knob=value,...`` of an option (the knobs that tell arms apart)."""
    c = space.option_choice(space.arm_by_key(arm_key), float(x))
    knobs = " ".join(f"{k}={v}" for k, v in c["knobs"].items())
    return f"{c['model']} {c['strategy']}" + (f" {knobs}" if knobs else "")


def most_common(values: Sequence) -> tuple[object, int]:
    """The most frequent value (ties: the first seen) and its count; None and NaN are skipped.

    Examples
    --------
    >>> most_common(["b", "a", None, "a", "b"])
    ('b', 2)
    """
    kept = [v for v in values if v is not None and v == v and v != ""]
    if not kept:
        return None, 0
    counts = Counter(kept)
    top = max(counts.values())
    return next(v for v in kept if counts[v] == top), top


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
    hardware: str | None = "h100",
    api: str | None = None,
    risk: str = "expected",
    seed: int = 0,
    n_splits: int = 20,
    n_boot: int = 200,
    include_simulated: bool = False,
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
    allocation. Costs are the cost model's on the whole profile's measured tokens.

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
    coster = CostModel(profile.specs, hardware=hw, api=price)
    space = OptionSpace.from_curves(profile.curves, coster, architectures=profile.architectures, measured_only=True,
                                    fit_if_missing=False, include_simulated=include_simulated)  # fmt: skip
    mix = space.target(None)
    targets = {"mix": mix, **{b: {b: 1.0} for b in mix}}
    held = HeldOut(space, profile.curves, profile.samples, targets)
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
    for r, (train, test) in enumerate(
        held.splits(n_splits, seed, n_boot=n_boot if risk == "conservative" else 0)
    ):
        n_train, n_test = len(train.questions), len(test.questions)
        t_train, t_test = train.table(mix), test.table(mix)
        acc_test = _by_option(t_test)
        bins_train = {b: train.table({b: 1.0}) for b in mix}
        bins_test = {b: _by_option(test.table({b: 1.0})) for b in mix}
        if memory:
            bins_train = {b: t[t[MEMORY_BYTES] <= memory] for b, t in bins_train.items()}
        for B in budgets:
            budget = Budget({cost_key: B, **extra})
            rec: dict[str, object] = {"split": r, "budget": B}
            plan = search_exhaustive(train, mix, budget, risk)
            hind = search_exhaustive(test, mix, budget, "expected")
            if plan.best is not None:
                best = plan.best
                rec.update(choice=label_of(space, best[ARM], best[KNOB_VALUE]), choice_cost=float(best[cost_key]),
                           predicted_accuracy=float(best[ACCURACY]),
                           realized_accuracy=acc_test.get((best[ARM], float(best[KNOB_VALUE])), math.nan))  # fmt: skip
            if hind.best is not None:
                h = hind.best
                rec.update(
                    hindsight_best=label_of(space, h[ARM], h[KNOB_VALUE]),
                    hindsight_accuracy=float(h[ACCURACY]),
                )
                rec["regret"] = rec["hindsight_accuracy"] - rec.get("realized_accuracy", math.nan)
            ok = budget.feasible(t_train)
            for name, (strategy, x) in baselines.items():
                cand = t_train[ok & (t_train[STRATEGY] == strategy).to_numpy()]
                if x is not None:
                    cand = cand[np.isclose(cand[KNOB_VALUE], x)]
                if cand.empty:
                    continue
                pick = cand.sort_values([ACCURACY, cost_key], ascending=[False, True]).iloc[0]
                rec[name] = acc_test.get((pick[ARM], float(pick[KNOB_VALUE])), math.nan)
                rec[f"{name} model"] = pick[MODEL]
            try:
                alloc = allocate_exact(bins_train, mix, B, cost_key, risk)
                rec["allocation"] = sum(
                    mix[b] * bins_test[b].get((row[ARM], float(row[KNOB_VALUE])), math.nan)
                    for b, row in alloc.choice.items()
                )
            except InfeasibleBudget:
                pass
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
        cols = ["realized_accuracy", "hindsight_accuracy", "regret", "allocation", *baselines]
        st = {c: summarize(part[c] if c in part else [], ratio, bounds=(-1.0, 1.0) if c == "regret" else (0.0, 1.0))
              for c in cols}  # fmt: skip
        if "realized_accuracy" in part:
            for name in [*baselines, "allocation"]:
                if name in part:
                    st[f"planner - {name}"] = summarize(part["realized_accuracy"] - part[name], ratio)
        all_stats[B] = st
        row = {"budget": B, "choice": choice or "nothing fits", "choice_share": f"{count}/{len(part)}",
               "choice_cost": float(part["choice_cost"].mean()) if "choice_cost" in part else math.nan,
               "predicted_accuracy": float(part["predicted_accuracy"].mean()) if "predicted_accuracy" in part else math.nan,
               "hindsight_best": hind}  # fmt: skip
        for c, s in st.items():
            row[c], row[f"{c}_lo"], row[f"{c}_hi"], row[f"{c}_se"] = s.mean, s.lo, s.hi, s.se
        for name in baselines:
            row[f"{name} model"] = most_common(part.get(f"{name} model", pd.Series(dtype=object)).tolist())[0]
        rows.append(row)
    notes = [
        "costs: the cost model on the whole profile's measured tokens; accuracy: measured on the held-out half",
        "hindsight best: the most accurate option of the held-out half within the budget (optimistic: the best of "
        "many noisy options), so regret is an upper estimate",
    ]
    described = {name: f"{s} at {'any knob' if x is None else f'n={x:g}'}, model picked on the planning half"
                 for name, (s, x) in baselines.items()}  # fmt: skip
    return Evaluation(
        pd.DataFrame(rows), splits, cost_key, n_splits, n_train, n_test, all_stats, described, notes
    )
