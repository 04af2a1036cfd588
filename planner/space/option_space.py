"""The evaluated option space: arms with predictors and costs, for one difficulty target.

:class:`OptionSpace` is what the searches (:mod:`planner.search`) talk to. It answers two
questions: *evaluate this option* (one arm at one knob value: the Optuna path, one trial at a
time) and *evaluate every option* (the exhaustive enumerator, vectorized per arm). Both
return the same numbers for the same option. Unprofiled sizes of a profiled family
(:class:`ExtraModel`) are added with the family law (:class:`~planner.space.predict.FamilyPredictor`).

A difficulty *target* is a mapping ``{difficulty label: weight}`` (weights sum to 1): one
bin (``{"4": 1.0}``), every question (``{"all": 1.0}``) or a mix. Accuracy and cost of an
option under a mix are the weighted means over the bins (costs are per query, averaged).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fitting import schema as S

from ..constants import (
    ACCURACY,
    ACCURACY_HI,
    ACCURACY_LO,
    ARCHITECTURE,
    ARM,
    COST_KEYS,
    KNOB,
    KNOB_VALUE,
    MODEL,
    SIMULATED,
    SOURCE,
    SOURCE_RANK,
    SOURCES,
    STRATEGY,
)
from .arms import VERIFIED, Arm, ArmSource, Option, arm_display_knobs, arms_from_curves, knob_grid
from .curve import ArmCurve, Coster, FamilyCurve
from .predict import (
    MAX_EXTRAPOLATION,
    ExtrapolationRefused,
    FamilyLawFailed,
    FamilyPredictor,
    coverage_predictor,
    mix_predictions,
    predictor_for_points,
)
from .question_table import QuestionTable, chain_lengths

__all__ = ["OptionSpace", "ExtraModel", "parse_target", "ALL"]

ALL = "all"


@dataclass(frozen=True)
class ExtraModel:
    """A model that was not profiled but belongs to a profiled family (predicted by the joint law).

    ``params`` is the parameter count the family law uses (active parameters for MoE).
    """

    name: str
    family: str
    params: float
    architecture: str = "dense"


def parse_target(spec: str | Mapping[str, float] | None, bins: Mapping[str, float]) -> dict[str, float]:
    """A difficulty target as ``{label: weight}`` (weights sum to 1).

    ``spec`` is a label (``"4"``), ``"all"`` (every question: the ``all`` curve when the table
    has one, else the bins weighted by their question counts ``bins``), a mix string
    ``"1:0.2,3:0.5,5:0.3"`` or a mapping.

    Examples
    --------
    >>> parse_target("1:1,2:3", {"1": 10, "2": 10})
    {'1': 0.25, '2': 0.75}
    >>> parse_target("1.0", {"1": 10, "2": 10})
    {'1': 1.0}
    """
    if spec is None or spec == ALL:
        if ALL in bins:
            return {ALL: 1.0}
        spec = dict(bins)
    if isinstance(spec, str):
        if ":" in spec:
            out: dict[str, float] = {}
            for part in spec.split(","):
                label, _, w = part.partition(":")
                try:
                    out[label.strip()] = float(w)
                except ValueError:
                    raise ValueError(
                        f"difficulty mix {spec!r}: weight of {label!r} must be a number, got {w!r}"
                    ) from None
            spec = out
        else:
            spec = {spec.strip(): 1.0}
    spelled: dict[str, float] = {}
    for label, w in spec.items():  # a label is spelled as the samples' labels are: "1.0" is "1"
        key = str(S.difficulty_labels(pd.Series([label])).iloc[0]) if str(label).strip() else str(label)
        spelled[key] = spelled.get(key, 0.0) + float(w)
    spec = spelled
    total = float(sum(spec.values()))
    if not (total > 0 and math.isfinite(total)) or any(w < 0 for w in spec.values()):
        raise ValueError(f"difficulty weights must be non-negative with a positive sum, got {dict(spec)}")
    unknown = [d for d in spec if d not in bins]
    if unknown:
        raise ValueError(f"unknown difficulty {unknown[0]!r}; profiled difficulties: {sorted(bins)}")
    return {d: float(w) / total for d, w in spec.items() if w > 0}


def _fit_for(src: ArmSource, fit_index: dict) -> Mapping | None:
    """The ``ttc fit`` record of an arm's curve: by its curve key for a pool metric; for a
    sweep of one-execution configs by the config without the swept knob (sweeps whose axis is
    offset, refinement's rounds + 1, are fitted here instead: the record's axis is rounds)."""
    if not fit_index:
        return None
    if len(src.curve_keys) == 1 and src.arm.knob == "n":
        return fit_index.get((src.arm.model, *src.curve_keys[0]))
    desc = src.arm.descriptor
    if src.arm.knob is None or desc is None or desc.knob_offset:
        return None
    strategy, config, metric, diff = src.curve_keys[0]
    try:
        cfg = json.loads(config)
    except json.JSONDecodeError:
        return None
    cfg.pop(src.arm.knob, None)
    return fit_index.get((src.arm.model, strategy, json.dumps(cfg, sort_keys=True), metric, diff))


def _points_hash(points: pd.DataFrame) -> str:
    data = points[[KNOB_VALUE, ACCURACY, ACCURACY_LO, ACCURACY_HI]].to_numpy(float).round(12).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def _set_base_prompts(curves: dict[Arm, dict[str, ArmCurve]]) -> None:
    """Give multi-call arms the question prompt length measured by a one-call arm (pool,
    greedy) of the same model and difficulty (their summed prompt counts resent contexts)."""
    base: dict[tuple[str, str], float] = {}
    for arm, per in curves.items():
        for d, c in per.items():
            if _one_call(arm, c.points[KNOB_VALUE]):
                v = c.points[S.MEAN_PROMPT_TOKENS].dropna() if S.MEAN_PROMPT_TOKENS in c.points else []
                if len(v):
                    base[(arm.model, d)] = float(v.mean())
    for arm, per in curves.items():
        for d, c in per.items():
            c.base_prompt_tokens = base.get((arm.model, d))


def _question_mixes(src: ArmSource, questions: QuestionTable, notes: list[str]) -> list | None:
    """The questions of each curve of an arm (:attr:`ArmCurve.token_mixes`); None when a curve
    has no per-question tokens (the arm is then priced from its mean tokens)."""
    arm, out = src.arm, []
    for (strategy, config, _metric, diff), x in zip(src.curve_keys, src.curve_x, strict=True):
        group = questions.get(arm.model, strategy, config, diff)
        if group is None:
            return None
        value = x if x is not None else float(src.points[KNOB_VALUE].iloc[0])
        shape = arm.workload_shape(value) if arm.descriptor is not None else None
        prompts = None
        if shape is not None and shape.calls > 1:  # summed resent contexts: the one-call prompt
            base = questions.question_prompts(arm.model, group)
            prompts = np.where(np.isfinite(base), base, group.prompts)
        mix = group.mix(chain_lengths(x is not None, shape), prompts)
        if mix is None:
            return None
        if not group.prompt_known(prompts):
            notes.append(
                f"{arm.model} {arm.strategy} [{diff}]: no prompt tokens measured for some questions; "
                "only their generated tokens are priced"
            )
        out.append((x, mix))
    return out


def _coverage(src: ArmSource, questions: QuestionTable, max_factor: float, label: str, cache: dict | None):
    """The coverage predictor of a verified arm from its questions' correct counts (None when
    they cannot forecast); cached by the counts."""
    ((strategy, config, _metric, diff),) = src.curve_keys
    group = questions.get(src.arm.model, strategy, config, diff)
    if group is None:
        return None
    key = (label, max_factor, group.n_samples.tobytes(), group.n_correct.tobytes(), _points_hash(src.points))
    if cache is not None and key in cache:
        return cache[key]
    points = _every_question(src.points)
    reach = max_factor * src.points[KNOB_VALUE].max() / points[KNOB_VALUE].max()  # as far as the largest pool
    out = coverage_predictor(points, group.n_samples, group.n_correct, max_factor=reach, label=label)
    if cache is not None:
        cache[key] = out
    return out


def _every_question(points: pd.DataFrame) -> pd.DataFrame:
    """The points of a pool measured on every question (k up to the smallest pool): beyond it
    the coverage forecast, which takes each question's pool as far as it goes and its posterior
    past that, speaks for every question rather than a measured mean over the larger pools."""
    nq = points[S.N_QUESTIONS].to_numpy(float)
    if not np.isfinite(nq).any():
        return points
    return points[~(nq < np.nanmax(nq))].reset_index(drop=True)


def _one_call(arm: Arm, values) -> bool:
    """Whether every profiled execution of ``arm`` was one engine call (its measured prompt
    tokens are the question's prompt)."""
    if arm.descriptor is None:
        return False
    return all(arm.workload_shape(v).calls == 1 for v in values)


@dataclass
class OptionSpace:
    """Arms with predictors and a coster; evaluates options for a difficulty target.

    Build it with :meth:`from_curves`. ``curves[arm][difficulty]`` is an
    :class:`~planner.space.arms.ArmCurve` (or a family curve for an unprofiled model).
    """

    curves: dict[Arm, dict[str, ArmCurve]]
    coster: Coster
    bins: dict[str, float]
    density: str = "coarse"
    notes: list[str] = field(default_factory=list)
    evaluations: int = 0
    measured_only: bool = False

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_curves(
        cls,
        curves: pd.DataFrame,
        coster: Coster,
        *,
        fits: Iterable[Mapping] | None = None,
        architectures: Mapping[str, str] | None = None,
        include_simulated: bool = False,
        extra_models: Iterable[ExtraModel] = (),
        model_params: Mapping[str, float] | None = None,
        families: Mapping[str, str] | None = None,
        density: str = "coarse",
        max_factor: float = MAX_EXTRAPOLATION,
        fit_if_missing: bool = True,
        fit_cache: dict[str, dict] | None = None,
        measured_only: bool = False,
        questions: QuestionTable | None = None,
        verifier: str | None = None,
        coverage_cache: dict | None = None,
    ) -> OptionSpace:
        """Read arms off a curves table, attach predictors (fits when given) and the coster.

        Parameters
        ----------
        curves : DataFrame
            The curves table (columns of ``fitting/schema.py``).
        coster : callable
            ``coster(arm, values, usage) -> {cost key: array}`` (see :mod:`planner.space.pricing`).
        fits : iterable of dict
            Fit records of ``ttc fit`` keyed by model, strategy, config, metric, difficulty.
        extra_models, model_params, families
            Unprofiled models to predict with a family law; the parameter count and family
            of each profiled model (needed only with ``extra_models``).
        density : {"coarse", "fine"}
            Knob grid (see :func:`planner.space.arms.knob_grid`).
        fit_cache : dict or None
            Laws selected here for arms without a ``ttc fit`` record, keyed by arm,
            difficulty and a hash of the points; read and updated in place (the caller
            may persist it), so a second build skips the fitting.
        measured_only : bool
            Knob grids hold only profiled values (no interpolation or extrapolation): what
            an honest held-out evaluation can check.
        questions : :class:`~planner.space.question_table.QuestionTable` or None
            Each question's measured tokens (from the samples table): options are priced
            question by question from them; without it, from the curves' mean tokens.
        verifier : {"none", "exact"} or None
            ``"exact"``: the deployment checks answers exactly, pass@k curves become
            ``verified`` arms (:func:`~planner.space.arms.arms_from_curves`), predicted from
            each question's correct count (:func:`~planner.space.predict.coverage_predictor`)
            when ``questions`` has them, else by the curve's law.
        coverage_cache : dict or None
            Coverage forecasters already fitted (by arm, difficulty and counts), read and
            updated in place.
        """
        sources, notes = arms_from_curves(
            curves, architectures=architectures, include_simulated=include_simulated, verifier=verifier
        )
        fit_index = {}
        for f in fits or ():
            fit_index[(f[S.MODEL], f[S.STRATEGY], f[S.CONFIG], f[S.METRIC], str(f[S.DIFFICULTY]))] = f
        out: dict[Arm, dict[str, ArmCurve]] = {}
        for src in sources:
            fit = _fit_for(src, fit_index)
            label = f"{src.arm.key} [{src.difficulty}]"
            ckey = f"{label}|{_points_hash(src.points)}"
            if fit is None and fit_cache is not None and ckey in fit_cache:
                fit = fit_cache[ckey]
            covered = None
            if src.arm.strategy.endswith(VERIFIED) and questions is not None:
                covered = _coverage(src, questions, max_factor, label, coverage_cache)
            if covered is not None:
                pred, note = covered
            else:
                pred, note = predictor_for_points(
                    src.points, fit, fit_if_missing=fit_if_missing, max_factor=max_factor, label=label
                )
            if fit_cache is not None and fit is None and fit_if_missing and covered is None:
                law = pred.law
                fit_cache[ckey] = {"law": None, "note": note}
                if law is not None:
                    fit_cache[ckey].update(
                        law=law.name, params=dict(law.params_), extrapolation_error=pred.extrapolation_error
                    )
            curve = ArmCurve(src.arm, src.difficulty, src.points, pred, note)
            if questions is not None:
                curve.token_mixes = _question_mixes(src, questions, notes)
            out.setdefault(src.arm, {})[src.difficulty] = curve
        _set_base_prompts(out)
        bins = (
            curves.groupby(S.DIFFICULTY)[S.N_QUESTIONS].max().astype(float).to_dict()
            if S.N_QUESTIONS in curves
            else dict.fromkeys(curves[S.DIFFICULTY].unique(), 1.0)
        )
        space = cls(out, coster, {str(k): v for k, v in bins.items()}, density, sorted(set(notes)))
        space.measured_only = measured_only
        if extra_models:
            space._add_family_models(
                list(extra_models), model_params or {}, families or {}, max_factor, fit_cache
            )
        return space

    def _add_family_models(self, extra, model_params, families, max_factor, cache=None) -> None:
        by_sig: dict[tuple, dict[str, dict[str, ArmCurve]]] = {}
        for arm, per_diff in self.curves.items():
            if arm.model not in model_params:
                continue
            sig = (
                families.get(arm.model),
                arm.architecture,
                arm.strategy,
                arm.fixed,
                arm.metric,
                arm.profiled_strategy,
            )
            by_sig.setdefault(sig, {})[arm.model] = per_diff
        for em in extra:
            if em.name in model_params:
                raise ValueError(f"extra model {em.name!r} is profiled; predict it from its own curves")
            made = 0
            for sig, members in by_sig.items():
                if sig[0] != em.family or sig[1] != em.architecture or len(members) < 3:
                    continue
                ref_arm = next(iter(members.values()))
                arm0 = next(iter(ref_arm.values())).arm
                arm = Arm(
                    em.name,
                    arm0.strategy,
                    arm0.knob,
                    arm0.fixed,
                    arm0.profiled_strategy,
                    arm0.metric,
                    em.architecture,
                    arm0.simulated,
                )
                for diff in set.intersection(*(set(m) for m in members.values())):
                    cols = [KNOB_VALUE, ACCURACY, ACCURACY_LO, ACCURACY_HI]
                    pts = {m: tuple(c[diff].points[col] for col in cols) for m, c in members.items()}
                    try:
                        fam = FamilyPredictor(
                            {m: model_params[m] for m in members},
                            pts,
                            max_size_factor=max_factor,
                            max_factor=max_factor,
                            label=f"{arm.key} [{diff}]",
                            cache=cache,
                        )
                    except FamilyLawFailed as exc:
                        self.notes.append(f"extra model {em.name}: {exc}")
                        continue
                    nearest = min(members, key=lambda m: abs(math.log(model_params[m] / em.params)))
                    self.curves.setdefault(arm, {})[diff] = FamilyCurve(
                        arm, diff, fam, em.params, members[nearest][diff]
                    )
                    made += 1
            if not made:
                self.notes.append(
                    f"extra model {em.name}: no arm of family {em.family!r} ({em.architecture}) has 3 profiled sizes"
                )

    # ---- queries ---------------------------------------------------------------------------
    def target(self, spec: str | Mapping[str, float] | None) -> dict[str, float]:
        """Parse a difficulty target against this space's bins (see :func:`parse_target`)."""
        return parse_target(spec, self.bins)

    def arms(self, target: Mapping[str, float]) -> list[Arm]:
        """Arms that have a curve in every bin of ``target``, in a stable order."""
        return sorted(
            (a for a, per in self.curves.items() if all(d in per for d in target)), key=lambda a: a.key
        )

    def grid(self, arm: Arm, target: Mapping[str, float]) -> np.ndarray:
        """The knob values of ``arm`` valid in every bin of ``target``."""
        grids = []
        for d in target:
            c = self.curves[arm][d]
            limit = c.predictor.x_limit
            xs = c.points[KNOB_VALUE].to_numpy(float)
            integer = bool(np.all(np.equal(np.mod(xs, 1), 0)))
            if self.measured_only:
                grids.append(xs)
                continue
            factor = limit / xs.max()
            g = knob_grid(
                xs,
                integer=integer,
                can_extrapolate=factor > 1,
                max_factor=max(factor, 1.0),
                density=self.density,
            )
            grids.append(g)
        out = grids[0]
        for g in grids[1:]:
            out = np.intersect1d(out, g)
        return out

    def size(self, target: Mapping[str, float]) -> int:
        """Number of options for ``target``."""
        return int(sum(len(self.grid(a, target)) for a in self.arms(target)))

    def evaluate_values(self, arm: Arm, values, target: Mapping[str, float]) -> dict[str, np.ndarray]:
        """Accuracy, interval, source and costs of ``arm`` at knob ``values`` (vectorized)."""
        values = np.atleast_1d(np.asarray(values, dtype=float))
        preds, costs = [], {k: np.zeros(len(values)) for k in COST_KEYS}
        usages = {d: self.curves[arm][d].usage(values) for d in target}
        per_bin = {d: self.coster(arm, values, u) for d, u in usages.items()}
        tps = [np.asarray(c["tp"], dtype=float) for c in per_bin.values() if "tp" in c]
        if len(tps) > 1 and not all(np.array_equal(t, tps[0]) for t in tps):
            # one deployment serves every bin: the degree that fits them all
            tp = np.max(tps, axis=0)
            per_bin = {d: self.coster(arm, values, u, tp=tp) for d, u in usages.items()}
        for d, w in target.items():
            preds.append((w, self.curves[arm][d].predict(values)))
            for k, v in per_bin[d].items():
                costs[k] = costs.get(k, np.zeros(len(values))) + w * np.asarray(v, dtype=float)
        p = preds[0][1] if len(preds) == 1 else mix_predictions(preds)
        self.evaluations += len(values)
        return {
            KNOB_VALUE: values,
            ACCURACY: p.accuracy,
            ACCURACY_LO: p.lo,
            ACCURACY_HI: p.hi,
            SOURCE: p.source,
            **costs,
        }

    def evaluate(self, option: Option, target: Mapping[str, float]) -> dict[str, object]:
        """One option as a dict (the Optuna path)."""
        out = self.evaluate_values(option.arm, [option.value], target)
        return {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in out.items()}

    def table(self, target: Mapping[str, float]) -> pd.DataFrame:
        """Every option for ``target`` with its prediction and costs (the exhaustive enumeration).

        Columns: those of :mod:`planner.constants` (``arm``, ``model``, ``architecture``,
        ``strategy``, ``knob``, ``knob_value``, ``accuracy``, ``accuracy_lo``, ``accuracy_hi``,
        ``source``, ``source_rank``, ``simulated``) and one column per cost key.
        """
        frames = []
        for arm in self.arms(target):
            grid = self.grid(arm, target)
            if len(grid) == 0:
                continue
            try:
                ev = self.evaluate_values(arm, grid, target)
            except ExtrapolationRefused as exc:  # a bin with a narrower range
                self.notes.append(str(exc))
                continue
            df = pd.DataFrame(ev)
            df.insert(0, ARM, arm.key)
            df.insert(1, MODEL, arm.model)
            df.insert(2, ARCHITECTURE, arm.architecture)
            df.insert(3, STRATEGY, arm.strategy)
            df.insert(4, KNOB, arm.knob)
            df[SIMULATED] = arm.simulated or ""
            frames.append(df)
        if not frames:
            return pd.DataFrame(columns=[ARM, MODEL, KNOB_VALUE, ACCURACY, *COST_KEYS])
        out = pd.concat(frames, ignore_index=True)
        out[SOURCE_RANK] = out[SOURCE].map(SOURCES.index)
        return out

    def restrict(self, models: Iterable[str]) -> None:
        """Keep only the arms of ``models`` (ValueError naming an unknown one)."""
        models = list(models)
        known = sorted({a.model for a in self.curves})
        unknown = [m for m in models if m not in known]
        if unknown:
            raise ValueError(
                f"unknown model {unknown[0]!r}; the profile (and --extra-model) has: {', '.join(known)}"
            )
        self.curves = {a: c for a, c in self.curves.items() if a.model in set(models)}

    def arm_by_key(self, key: str) -> Arm:
        for arm in self.curves:
            if arm.key == key:
                return arm
        raise KeyError(f"no arm {key!r}")

    def display_knobs(self) -> dict[Arm, tuple[str, ...]]:
        return arm_display_knobs(self.curves)

    def option_choice(self, arm: Arm, value: float) -> dict[str, object]:
        return Option(arm, float(value)).choice(self.display_knobs().get(arm, ()))
