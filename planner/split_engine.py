"""Repeated random splits of a profile's questions: plan on one half, measure on the other.

A plan chosen and scored on the same questions is optimistic: among many options, the one that
looks best is partly lucky. :class:`HeldOut` makes the honest check cheap. It computes once,
for every MEASURED option of a priced option space (an arm at one of its profiled knob values),
each question's accuracy (:func:`fitting.curves.per_question_curves`: the estimators of the
curves table, per question); a split of the questions into two halves (seeded, stratified by
difficulty: :func:`planner.search.split_questions`) is then only means over subsets of them,
so many random splits cost milliseconds each.

Costs are the option space's: the cost model fed with the whole profile's measured tokens,
each question at its own per-sample lengths (accuracy is what a split checks). An option's
cost is a mean over questions, which moves little between halves: pricing each half from its
own questions' tokens instead changed the priced costs of the report fixture's options (120
questions, lengths by difficulty and Poisson within) by a median 0.3% and at most 2.8%
(FLOPs, effective FLOPs, latency; six halves). A counts folder (per-question correct counts)
is split by question the same way, each question's pass@k from its counts
(:func:`fitting.counts.per_question_pass`). Accuracy intervals on a half (for ``risk="conservative"``) are percentile
bootstraps over its questions, combined over a mix of difficulties as the option space
combines them (weighted sums of the bins' interval ends).

``ttc evaluate`` (:mod:`planner.holdout`) and the headline findings
(:mod:`planner.report.findings`) are built on it.

**Intervals over repeated splits.** Random halves share questions, so the spread of the split
estimates understates the uncertainty of their mean. :func:`summarize` uses the corrected
resampled t interval of Nadeau & Bengio (2003, "Inference for the generalization error",
Machine Learning 52:239-281): variance ``(1/R + n_test/n_train) s^2``, ``s^2`` the variance of
the R split estimates, with the standard error over every question as its floor
(:meth:`HeldOut.full_se`). A difference smaller than its standard error is *within noise*.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from fitting import schema as S
from fitting.counts import per_question_pass
from fitting.curves import per_question_curves

from .constants import ACCURACY, ACCURACY_HI, ACCURACY_LO, ARM, COST_KEYS, KNOB_VALUE, MEMORY_BYTES, SOURCE
from .profile import PLANNING_POOLS, planning_metrics
from .search import split_questions
from .space.arms import arms_from_curves

__all__ = ["HeldOut", "SplitStat", "SplitTables", "split_seeds", "summarize", "most_common", "Key", "LEVEL"]

#: coverage of the intervals over splits (and of the curves' intervals)
LEVEL = 0.9

Key = tuple[str, float]  # an option: (arm key, knob value)


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

        return {
            "mean": num(self.mean),
            "se": num(self.se),
            "lo": num(self.lo),
            "hi": num(self.hi),
            "n_splits": self.n_splits,
        }


def summarize(
    values: Sequence[float],
    test_over_train: float = 1.0,
    level: float = LEVEL,
    bounds: tuple[float, float] = (-1.0, 1.0),
    floor: float = 0.0,
) -> SplitStat:
    """Mean of per-split estimates with the corrected resampled t interval (module docstring),
    clipped to ``bounds`` (an accuracy lies in [0, 1], a difference of two in [-1, 1]).

    ``floor`` is a lower bound of the standard error: the sampling error of the same quantity
    over every question (:meth:`HeldOut.full_se`). Splits of a few questions can agree by
    chance (all of them giving the same number), and no estimate from these questions is
    surer than one that uses all of them. NaN values (a split where the quantity is
    undefined) are left out.

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
    se = max(se, floor) if math.isfinite(floor) else se
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
    columns: dict[tuple[str, float], int] = field(default_factory=dict)


def _option_vectors(
    curves: pd.DataFrame, per_q: Mapping[tuple, pd.DataFrame], verifier: str | None = None
) -> dict[tuple, pd.Series]:
    """``(arm key, difficulty, knob value) -> per-question accuracy``, the arms read off the curves
    table as the option space reads them (:func:`planner.space.arms.arms_from_curves`)."""
    sources, _ = arms_from_curves(curves, include_simulated=True, verifier=verifier)
    out: dict[tuple, pd.Series] = {}
    for src in sources:
        per_x: dict[float, list[pd.Series]] = {}
        for (strategy, config, metric, diff), x in zip(src.curve_keys, src.curve_x, strict=True):
            frame = per_q.get((src.arm.model, str(strategy), str(config), str(diff), metric))
            if frame is None:
                continue
            frame = frame.set_axis(frame.index.map(str), axis=0)
            if x is None:  # a pool (however short): x = k
                for k in frame.columns:
                    per_x.setdefault(float(k), []).append(frame[k])
            else:  # one execution per question: x from the config, as the arm read it
                per_x.setdefault(float(x), []).append(frame.iloc[:, 0])
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


def split_seeds(seed: int, n: int) -> list[int]:
    """Seeds of ``n`` random splits; the first is ``seed`` itself (one split = the seeded half/half
    split of :func:`planner.search.split_questions`).

    Examples
    --------
    >>> split_seeds(7, 3)[0], len(split_seeds(7, 3))
    (7, 3)
    """
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
    per_question : mapping, optional
        The per-question matrices of ``samples`` with that seed, when the caller has them
        (``Profile.per_question``, from the cache); computed here otherwise (also when they
        lack the pass@k an exact checker needs).
    verifier : str or None
        ``"exact"``: the space offers ``verified`` options (pass@k per question too).
    counts : DataFrame or None
        A counts table (per-question correct counts) read beside ``samples`` (which may be
        empty): each question's pass@k (:func:`fitting.counts.per_question_pass`).
    """

    def __init__(
        self,
        space,
        curves: pd.DataFrame,
        samples: pd.DataFrame,
        targets: Mapping[str, Mapping[str, float]],
        *,
        seed: int = 0,
        verifier: str | None = None,
        counts: pd.DataFrame | None = None,
        per_question: Mapping | None = None,
    ) -> None:
        metrics = planning_metrics(verifier)
        per_q: dict = {}
        tables = [t for t in (samples, counts) if t is not None and not t.empty]
        if samples is not None and not samples.empty:
            have = {key[-1] for key in per_question} if per_question is not None else set()
            if per_question is None or ("pass@k" in metrics and "pass@k" not in have):
                per_question = per_question_curves(
                    samples, metrics=metrics, seed=seed, pool_policy=PLANNING_POOLS
                )
            per_q.update(per_question)
        if counts is not None:
            per_q.update(per_question_pass(counts, pool_policy=PLANNING_POOLS))
        vectors = _option_vectors(curves, per_q, verifier)
        table = pd.concat([t[[S.QUESTION_ID, S.DIFFICULTY]] for t in tables], ignore_index=True)
        diff = table.groupby(S.QUESTION_ID)[S.DIFFICULTY].first()
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
                columns = {
                    (a, float(x)): j
                    for j, (a, x) in enumerate(zip(table[ARM], table[KNOB_VALUE], strict=True))
                }
                parts.append(_Part(b, w, np.asarray(by_bin.get(b, []), dtype=object), matrix, columns))
            self.full[label] = table
            self._parts[label] = parts
        self._bin_part = {
            next(iter(t)): self._parts[label][0] for label, t in self.targets.items() if len(t) == 1
        }

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
        bin, shared by every target), else the interval columns are NaN. A bin of a mix with
        none of the questions drops out of it (the other bins' weights are renormalized);
        options with no question in the subset are left out."""
        rng = np.random.default_rng(seed)
        keep = frozenset(map(str, questions))
        alpha = (1.0 - level) / 2.0
        draws: dict[str, np.ndarray] = {}
        out = {}
        for label, parts in self._parts.items():
            table = self.full[label].copy()
            acc, lo, hi, weight = (np.zeros(len(table)) for _ in range(4))
            for p in parts:
                mask = np.fromiter((q in keep for q in p.questions), dtype=bool, count=len(p.questions))
                seen = np.isfinite(p.matrix[mask])
                values = np.where(seen, p.matrix[mask], 0.0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    a = values.sum(axis=0) / seen.sum(axis=0)
                    ok = np.isfinite(a)  # a bin with none of these questions drops out of the mix
                    acc += np.where(ok, p.weight * a, 0.0)
                    weight += np.where(ok, p.weight, 0.0)
                    if n_boot:
                        if p.bin not in draws:
                            draws[p.bin] = _draw(rng, int(mask.sum()), n_boot)
                        boot = _replicate_means(draws[p.bin], values, seen)
                        lo += np.where(
                            ok, p.weight * np.nanquantile(boot, alpha, axis=0, method="lower"), 0.0
                        )
                        hi += np.where(
                            ok, p.weight * np.nanquantile(boot, 1.0 - alpha, axis=0, method="higher"), 0.0
                        )
            with np.errstate(invalid="ignore", divide="ignore"):
                table[ACCURACY] = np.where(weight > 0, acc / weight, np.nan)
                table[ACCURACY_LO] = np.where(weight > 0, lo / weight, np.nan) if n_boot else np.nan
                table[ACCURACY_HI] = np.where(weight > 0, hi / weight, np.nan) if n_boot else np.nan
            out[_target_key(self.targets[label])] = table[np.isfinite(table[ACCURACY])].reset_index(drop=True)
        return SplitTables(out, keep)

    def replicates(self, label: str, n_boot: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
        """The measured options of target ``label`` (the rows of :attr:`full`) and their accuracy
        over every question in ``n_boot`` replicates of the joint question bootstrap, an array
        (n_boot, options): each replicate draws each bin's questions with replacement once and
        every option is averaged over that same draw (the draw of :meth:`tables`), so options
        measured on the same questions stay correlated; a mix weights its bins as
        :meth:`tables` does (a bin where an option has no question drops out of its mix)."""
        rng = np.random.default_rng(seed)
        table = self.full[label]
        total, weight = np.zeros((n_boot, len(table))), np.zeros(len(table))
        for p in self._parts[label]:
            seen = np.isfinite(p.matrix)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot = _replicate_means(
                    _draw(rng, len(p.questions), n_boot), np.where(seen, p.matrix, 0.0), seen
                )
            ok = seen.any(axis=0)
            # a replicate that drew none of an option's questions: that option's mean over replicates
            boot = np.where(np.isfinite(boot), boot, np.nanmean(np.where(ok, boot, 0.0), axis=0))
            total += np.where(ok, p.weight * boot, 0.0)
            weight += np.where(ok, p.weight, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return table, np.where(weight > 0, total / weight, np.nan)

    def full_se(
        self, terms: Mapping[str, Sequence[tuple[float, Key]]], weights: Mapping[str, float]
    ) -> float:
        """Standard error, over EVERY question, of a linear combination of options' accuracies:
        ``terms[bin]`` lists ``(coefficient, (arm key, knob value))`` (each bin must be a target
        of its own); a bin's per-question values are combined, their variance over the bin's
        questions divided by their number, and the bins weighted by ``weights``. One option:
        its accuracy's standard error; ``[(1, a), (-1, b)]``: the paired difference's. NaN
        when an option is missing.

        It is the floor of a held-out standard error (:func:`summarize`)."""
        var = 0.0
        for b, items in terms.items():
            p = self._bin_part.get(str(b))
            if p is None:
                return math.nan
            combo = np.zeros(len(p.questions))
            for coef, key in items:
                j = p.columns.get((key[0], float(key[1])))
                if j is None:
                    return math.nan
                combo = combo + coef * p.matrix[:, j]
            combo = combo[np.isfinite(combo)]
            if len(combo) < 2:
                return math.nan
            var += float(weights.get(b, 0.0)) ** 2 * float(combo.var(ddof=1)) / len(combo)
        return math.sqrt(var)

    def splits(
        self, n_splits: int, seed: int = 0, *, n_boot: int = 0
    ) -> Iterator[tuple[SplitTables, SplitTables]]:
        """``n_splits`` random (train, test) halves: train tables with bootstrap intervals when
        ``n_boot`` (what ``risk="conservative"`` plans with), test tables without."""
        for s in split_seeds(seed, n_splits):
            train, test = self.split(s)
            yield self.tables(train, n_boot=n_boot, seed=s), self.tables(test)

    def test_over_train(self) -> float:
        """Questions in a test half over questions in a train half (for :func:`summarize`)."""
        train, test = self.split(0)
        return len(test) / max(len(train), 1)


def _draw(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """How often each of ``n`` questions is drawn in each of ``n_boot`` bootstrap replicates."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) if n else np.zeros((n_boot, 0))


def _replicate_means(draw: np.ndarray, values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Each option's mean over the questions of each replicate (questions it was not measured on
    left out): ``draw`` (replicates x questions), ``values`` and ``seen`` (questions x options)."""
    return (draw @ values) / (draw @ seen.astype(float))


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
