"""The recommendation: what to run for a budget and a kind of problem, what to expect, what it costs.

:func:`plan` ties the pieces together: a :class:`~planner.profile.Profile` (samples, curves,
specs), a :class:`~planner.request.PlanRequest` (validated once), a cost model for the target
hardware or API (:class:`~planner.space.CostModel`), the option space
(:class:`~planner.space.OptionSpace`), a search (:mod:`planner.search`), per-difficulty
allocation for a mix of difficulties, and offline adaptive policies when the difficulty is
unknown. It returns a :class:`Recommendation`, whose :meth:`~Recommendation.to_json` is the
object of docs/design.md::

    {"request": {...}, "choice": {"model", "architecture", "strategy", "knobs"},
     "expected_accuracy", "accuracy_interval", "source", "cost": {"flops", "effective_flops",
     "tokens", "latency_s", "usd", "kv_bytes"}, "binding_constraint", "runners_up": [...],
     "serving": {"concurrency", "prefix_sharing", "gpu", "tp", "tp_source", "memory_bytes_per_gpu"}}

``serving`` says how the choice is served (priced on a GPU or an API); a ``verified`` choice
(best-of-n with an exact checker, whose ``choice`` carries ``"verifier": "exact"``) adds
``assumptions`` (the checker's cost per checked sample), and token lengths assumed for
questions whose data has none add ``assumptions.lengths`` (:mod:`planner.space.assumed`). Plus one mode key where the mode
needs it: ``pareto`` (``objective="pareto"``), ``allocation`` (a difficulty mix), ``policy``
(``difficulty="auto"``). ``measure_next`` (how sure the choice is and what to profile next)
is added once :func:`planner.what_to_measure.measure_next` has run on it (``ttc recommend`` runs it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fitting import schema as S

from .alternatives import calls_note, json_number, option_cost, option_item, runners_up
from .catalog import CatalogError, load_catalog
from .constants import (
    ACCURACY,
    ACCURACY_HI,
    ACCURACY_LO,
    ARM,
    KNOB,
    KNOB_VALUE,
    MEMORY_BYTES,
    MODEL,
    SOURCE,
    STRATEGY,
)
from .costs import ModelSpec
from .profile import COUNTS_NEED_EXACT, Profile
from .request import PlanRequest
from .search import (
    ADAPTIVE_COST_KEYS,
    Budget,
    PoolReplay,
    adaptive_policies,
    allocate_exact,
    allocate_optuna,
    best_single,
    bin_tables,
    binding_constraint,
    compare_with_single,
    describe_policy,
    pareto_exhaustive,
    pareto_optuna,
    search,
)
from .space import CostModel, ExtraModel, OptionSpace
from .space.predict import Z90

__all__ = ["Recommendation", "PlanError", "plan", "family_of", "build_space", "resolve_extra_models"]


class PlanError(ValueError):
    """A request the planner cannot answer (the message says why and what would work)."""


@dataclass
class Recommendation:
    """A recommendation; :meth:`to_json` gives the docs/design.md object."""

    request: dict
    choice: dict
    expected_accuracy: float
    accuracy_interval: list[float]
    source: str
    cost: dict[str, float | None]
    binding_constraint: str
    runners_up: list[dict]
    mode: dict = field(default_factory=dict)  # "pareto" / "allocation" / "policy" -> content
    search: dict = field(default_factory=dict)  # method, evaluations, seconds (human output only)
    notes: list[str] = field(default_factory=list)
    #: what to measure next (:func:`planner.what_to_measure.measure_next`), None until computed
    measure_next: dict | None = None
    #: what the plan was made from (option space, target, budget, cost model, request, the
    #: chosen row): what :func:`planner.what_to_measure.measure_next` reads; not part of the JSON
    context: dict = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict:
        out = {
            "request": self.request,
            "choice": self.choice,
            "expected_accuracy": json_number(self.expected_accuracy),
            "accuracy_interval": [json_number(v) for v in self.accuracy_interval],
            "source": self.source,
            "cost": {k: json_number(v) for k, v in self.cost.items()},
            "binding_constraint": self.binding_constraint,
            "runners_up": self.runners_up,
        }
        out.update(self.mode)
        if self.measure_next is not None:
            out["measure_next"] = self.measure_next
        return out


def family_of(name: str) -> str:
    """A model's family from its name: the name without its last ``-size`` part.

    Examples
    --------
    >>> family_of("lab-m"), family_of("qwen2.5-7b"), family_of("llama-3.1-70b-instruct")
    ('lab', 'qwen2.5', 'llama-3.1')
    """
    parts = name.split("-")
    for i in range(len(parts) - 1, 0, -1):
        if re.fullmatch(r"(\d+(\.\d+)?[bmk]|x*[sml]|xs|xl|xxl|a\d+(\.\d+)?b)", parts[i].lower()):
            return "-".join(parts[:i])
    return name


def resolve_extra_models(
    refs: Mapping[str, str], profile: Profile, catalog_file: str | None = None
) -> tuple[list[ExtraModel], dict[str, ModelSpec]]:
    """Unprofiled models ``name -> catalog name or config path`` as :class:`ExtraModel` and
    their specs; each must belong to the family of a profiled model (:func:`family_of`)."""
    extras, specs = [], {}
    profiled = {family_of(m) for m in profile.models}
    for name, ref in refs.items():
        spec = ModelSpec.resolve(ref, extra_file=catalog_file)
        family = family_of(name)
        if family not in profiled:
            raise ValueError(
                f"--extra-model {name}: family {family!r} has no profiled model "
                f"(profiled: {', '.join(profile.models)})"
            )
        extras.append(ExtraModel(name, family, float(spec.params_active), spec.architecture))
        specs[name] = spec
    return extras, specs


def build_space(
    profile: Profile,
    coster,
    *,
    include_simulated=False,
    extra_models: Sequence[ExtraModel] = (),
    verifier: str | None = None,
    **kw,
) -> OptionSpace:
    """The option space of a profile (laws cached in the profile's folder), priced from each
    question's measured tokens; ``verifier="exact"`` offers best-of-n with an exact checker
    (the profile must hold pass@k curves: ``load_profile(..., verifier="exact")``)."""
    if verifier == "exact" and not (profile.curves[S.METRIC] == "pass@k").any():
        raise PlanError(
            "--verifier exact needs pass@k curves, which this profile was loaded without "
            "(load_profile(..., verifier='exact')), or its samples hold no pool of samples"
        )
    families = {m: family_of(m) for m in profile.specs}
    params = {m: p for m, p in profile.params.items() if m in set(profile.models)}
    space = OptionSpace.from_curves(
        profile.curves,
        coster,
        architectures=profile.architectures,
        include_simulated=include_simulated,
        extra_models=extra_models,
        model_params=params,
        families=families,
        fits=profile.fits,
        fit_cache=profile.fit_cache,
        questions=profile.questions,
        verifier=verifier,
        coverage_cache=profile.coverage_cache,
        **kw,
    )
    profile.save_fit_cache()
    return space


def _option_label(r) -> str:
    return f"{r[MODEL]} {r[STRATEGY]}" + (f" {r[KNOB]}={r[KNOB_VALUE]:g}" if r[KNOB] else "")


def _cheapest_message(space: OptionSpace, target, budget: Budget) -> str:
    table = space.table(target)
    if table.empty:
        return "no option is available for this difficulty"
    parts = []
    for k, lim in budget.limits.items():
        if k not in table or table[k].isna().all():
            parts.append(f"the cost model gives no {k} (give --gpu for latency and GPU dollars, or --api)")
            continue
        r = table.loc[table[k].idxmin()]
        if r[k] > lim:
            parts.append(f"{k} <= {lim:.3g}: the cheapest option is {_option_label(r)} at {r[k]:.3g}")
    if parts:
        return "no option fits the budget (" + "; ".join(parts) + ")"
    msg = "no option fits every limit at once"
    for k in budget.limits:
        if k in table and not table[k].isna().all():
            others = Budget({j: v for j, v in budget.limits.items() if j != k and j in table})
            ok = table[others.feasible(table)] if others.limits else table
            if len(ok):
                r = ok.loc[ok[k].idxmin()]
                msg += f"; the cheapest option within the other limits is {_option_label(r)} with {k} = {r[k]:.3g}"
            break
    return msg


def plan(
    profile: Profile,
    request: PlanRequest | Mapping[str, float] | Budget,
    *,
    extra_models: Sequence[ExtraModel] = (),
    extra_specs: Mapping[str, ModelSpec] | None = None,
    **settings,
) -> Recommendation:
    """Recommend an option (or a policy, or an allocation) for a request.

    Parameters
    ----------
    profile : :class:`~planner.profile.Profile`
    request : PlanRequest, or a budget (mapping or Budget)
        What to plan for. A budget alone takes the other fields from ``settings``
        (``difficulty=``, ``hardware=``, ``risk=``, ... : the fields of
        :class:`~planner.request.PlanRequest`); with a request, ``settings`` override it.
        The GPU memory (weights plus KV at ``concurrency``) is always a limit on hardware.
    extra_models, extra_specs
        Unprofiled family members already resolved (else the request's ``extra_models``
        references are resolved here).

    Examples
    --------
    >>> rec = plan(profile, {"flops": 2e8}, difficulty="5", hardware="h100")  # doctest: +SKIP
    >>> rec.to_json()["choice"]  # doctest: +SKIP
    """
    req = _request(request, settings)
    profile = _with_lengths(profile, req)
    extra_models, extra_specs = _extras(req, profile, extra_models, extra_specs)
    hw, price = _pricing(req)
    specs = {**profile.specs, **(extra_specs or {})}
    coster = CostModel(
        specs, hardware=hw, api=price, concurrency=req.concurrency, tp=req.tp, checker_cost=req.checker_cost
    )
    full = _full_budget(req, coster, hw)
    _check_counts(profile, req)
    if req.difficulty == "auto":
        return _stated(_plan_auto(profile, specs, req.budget_limits(), req.to_json(), req.seed), profile, req)
    space, target = _space(profile, coster, req, extra_models)
    res, best, binding = _search(space, target, full, req)
    rec = _recommendation(space, target, full, coster, req, res, best, binding)
    rec.context = {
        "space": space,
        "target": target,
        "budget": full,
        "coster": coster,
        "hardware": hw,
        "request": req,
        "best": best,
    }
    _stated(rec, profile, req)
    _add_modes(rec, space, target, full, coster, req, res)
    return rec


def _request(request: PlanRequest | Mapping[str, float] | Budget, settings: Mapping) -> PlanRequest:
    """The request: a :class:`PlanRequest` with ``settings`` overriding its fields, or one
    built from a budget (mapping or :class:`Budget`) and ``settings``."""
    if isinstance(request, PlanRequest):
        return request.replace(**settings)
    budget = request.as_dict() if isinstance(request, Budget) else dict(request)
    return PlanRequest(budget, **settings)


def _extras(
    req: PlanRequest,
    profile: Profile,
    extra_models: Sequence[ExtraModel],
    extra_specs: Mapping[str, ModelSpec] | None,
) -> tuple[Sequence[ExtraModel], Mapping[str, ModelSpec] | None]:
    """The unprofiled family members: those given, else the request's references resolved."""
    if not req.extra_models or extra_models:
        return extra_models, extra_specs
    try:
        return resolve_extra_models(req.extra_models, profile, req.catalog_file)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def _pricing(req: PlanRequest):
    """The catalog GPU and API price the request names (either may be None)."""
    try:
        catalog = load_catalog(req.catalog_file)
        hw = catalog.gpu(req.gpu) if req.gpu else None
        price = catalog.api_price(req.api) if req.api else None
    except CatalogError as exc:
        raise PlanError(str(exc)) from None
    return hw, price


def _full_budget(req: PlanRequest, coster: CostModel, hw) -> Budget:
    """The request's limits plus, on a GPU, its memory (weights plus KV at the concurrency)."""
    limits = dict(req.budget_limits().limits)
    if "effective_flops" in limits and hw is None:
        raise PlanError("a budget on effective_flops (Kinetics) needs a GPU to price on (--gpu)")
    if hw is not None and MEMORY_BYTES not in limits:
        limits[MEMORY_BYTES] = coster.memory_limit_bytes()
    return Budget(limits)


def _check_counts(profile: Profile, req: PlanRequest) -> None:
    """Refuse what per-question counts cannot answer: anything but an exact-checker
    deployment (counts give pass@k only) and ``--difficulty auto`` (no answers to replay)."""
    if profile.is_counts:
        where = f"{profile.folder}: " if profile.folder else ""
        if req.verifier != "exact":
            raise PlanError(f"{where}{COUNTS_NEED_EXACT}")
        if req.difficulty == "auto":
            raise PlanError(f"{where}--difficulty auto replays each sample's answer; counts have none")
    counted = sorted(set(req.models) & set(profile.counts_models))
    if counted and req.verifier != "exact":
        raise PlanError(
            f"{', '.join(counted)}: per-question counts give pass@k only, which a deployment can use only "
            "with an exact checker: add --verifier exact"
        )


def _space(profile: Profile, coster: CostModel, req: PlanRequest, extra_models: Sequence[ExtraModel]):
    """The option space (restricted to the request's models) and the difficulty target."""
    space = build_space(
        profile,
        coster,
        include_simulated=req.include_simulated,
        extra_models=extra_models,
        verifier=req.verifier,
    )
    try:
        if req.models:
            space.restrict(req.models)
        return space, space.target(req.difficulty)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def _search(space: OptionSpace, target, full: Budget, req: PlanRequest):
    """Run the request's search: the result, its best row and the binding constraint;
    PlanError naming the cheapest option when nothing fits."""
    if req.objective == "pareto":
        if req.method == "optuna" or req.storage is not None:
            res = pareto_optuna(space, target, full, risk=req.risk, seed=req.seed, storage=req.storage)
        else:
            res = pareto_exhaustive(space, target, full, risk=req.risk)
            res.evaluated = space.table(target)
    else:
        kw = (
            {}
            if req.method == "exhaustive"
            else {"n_trials": req.n_trials, "seed": req.seed, "storage": req.storage}
        )
        res = search(space, target, full, req.risk, method=req.method, **kw)
    best = res.best
    if best is None:
        raise PlanError(_cheapest_message(space, target, full))
    binding = res.binding
    if req.objective == "pareto":
        binding = binding_constraint(res.evaluated, best, full, res.objective)
    return res, best, binding


def _recommendation(
    space, target, full: Budget, coster, req: PlanRequest, res, best, binding
) -> Recommendation:
    """The chosen row as a :class:`Recommendation`: choice, accuracy, cost, runners-up, search
    and serving (and the checker's assumptions, when a checker is used)."""
    head = option_item(space, best, coster)
    rec = Recommendation(
        request=req.to_json(),
        choice=head["choice"],
        expected_accuracy=float(best[ACCURACY]),
        accuracy_interval=[float(best[ACCURACY_LO]), float(best[ACCURACY_HI])],
        source=str(best[SOURCE]),
        cost=option_cost(best),
        binding_constraint=binding,
        runners_up=runners_up(space, res, best, full, coster=coster),
        search={
            "method": res.method,
            "evaluations": res.evaluations,
            "seconds": res.seconds,
            "space_size": space.size(target),
        },
        notes=calls_note(space, best) + list(space.notes),
    )
    for key in ("serving", "assumptions"):
        if key in head:
            rec.mode[key] = head[key]
    return rec


def _add_modes(rec: Recommendation, space, target, full: Budget, coster, req: PlanRequest, res) -> None:
    """The mode keys: the Pareto front (``objective="pareto"``), the allocation (a mix)."""
    if req.objective == "pareto":
        rec.mode["pareto"] = [option_item(space, r, coster) for _, r in res.pareto.iterrows()]
    if ":" in (req.difficulty or "") and len(target) > 1:  # an explicit mix
        rec.mode["allocation"] = _allocation(space, target, full, req.risk, req.seed)


def _with_lengths(profile: Profile, req: PlanRequest) -> Profile:
    """The profile with the request's assumed lengths (questions without measured ones only);
    PlanError in one line naming the flags when a considered model's questions have no
    completion lengths and nothing is assumed (before any search starts)."""
    if req.assumed_lengths and req.assumed_lengths != profile.lengths.assumed:
        profile = profile.assuming(req.assumed_lengths)
    try:
        profile.lengths.check(req.models)
    except ValueError as exc:
        where = f"{profile.folder}: " if profile.folder else ""
        raise PlanError(where + str(exc)) from None
    return profile


def _stated(rec: Recommendation, profile: Profile, req: PlanRequest) -> Recommendation:
    """``rec`` with the assumed lengths it was priced with in its ``assumptions`` (if any)."""
    lengths = profile.lengths.to_json(req.models)
    if lengths is not None:
        rec.mode["assumptions"] = {**rec.mode.get("assumptions", {}), "lengths": lengths}
    return rec


def _allocation(space: OptionSpace, target, budget: Budget, risk: str, seed: int) -> dict:
    """Per-difficulty allocation for a mix: exact DP and Optuna, their gap, and what it saves."""
    key = budget.primary()
    tables = bin_tables(space, target, budget.without(key))
    limit = budget.limits[key]
    exact = allocate_exact(tables, target, limit, key, risk)
    tpe = allocate_optuna(tables, target, limit, key, risk, seed=seed)
    cmp = compare_with_single(tables, target, limit, key, risk)
    bins = []
    for b, r in exact.choice.items():
        item = option_item(space, r)
        bins.append(
            {
                "difficulty": b,
                "weight": json_number(target[b]),
                "choice": item["choice"],
                "expected_accuracy": item["expected_accuracy"],
                "source": item["source"],
                "cost": item["cost"],
            }
        )
    single = best_single(tables, target, limit, key, risk)
    out = {
        "budget_key": key,
        "average_budget": limit,
        "bins": bins,
        "expected_accuracy": json_number(exact.accuracy),
        "average_cost": json_number(exact.cost),
        "optuna_expected_accuracy": json_number(tpe.accuracy),
        "optuna_gap": json_number(exact.accuracy - tpe.accuracy),
        "best_single_option": None,
        "best_single_accuracy": json_number(cmp["single_accuracy"]),
        "best_single_cost": json_number(cmp["single_cost"]),
        "compute_ratio_at_equal_accuracy": json_number(cmp["compute_ratio"]),
        "compute_ratio_means": f"the single option's {key} over the least average {key} at which an allocation "
        "is as accurate (above 1: the allocation needs that many times less)",
        "note": "other limits apply per query to every bin's option",
    }
    if single is not None:
        first = next(iter(single.choice.values()))
        out["best_single_option"] = space.option_choice(space.arm_by_key(first[ARM]), first[KNOB_VALUE])
        se_alloc = _mix_se(exact.choice, target)
        se_single = _mix_se(single.choice, target)
        diff = float(exact.accuracy - single.accuracy)
        se = math.hypot(se_alloc, se_single)
        out["difference"] = {
            "accuracy": json_number(diff),
            "se": json_number(se),
            "within_noise": bool(abs(diff) <= se),
            "se_from": "the options' 90% intervals, bins and options taken as independent",
        }
    return out


def _mix_se(choice: Mapping[str, pd.Series], target: Mapping[str, float]) -> float:
    """Standard error of a mix's accuracy from each bin's option interval (90%, as a normal)."""
    var = 0.0
    for b, r in choice.items():
        lo, hi = float(r[ACCURACY_LO]), float(r[ACCURACY_HI])
        se = (hi - lo) / (2 * Z90) if math.isfinite(lo) and math.isfinite(hi) else math.nan
        var += (target[b] * se) ** 2
    return math.sqrt(var)


def _plan_auto(profile: Profile, specs, budget: Budget, request: dict, seed: int) -> Recommendation:
    """Difficulty unknown: pick the adaptive policy with the best accuracy on training
    questions within budget, report its replay on held-out questions."""
    key = budget.primary()
    if key not in ADAPTIVE_COST_KEYS:
        raise PlanError(
            f"--difficulty auto replays pools offline and holds them to a flops or tokens budget, got {key!r}"
        )
    replay = PoolReplay(profile.samples, specs, seed=seed)
    table = adaptive_policies(replay, budget.limits[key], key, seed=seed)
    table = table[table["policy"] != "oracle_bins"].reset_index(drop=True)
    if table.empty:
        raise PlanError(f"no adaptive policy fits an average {key} budget of {budget.limits[key]:.3g}")
    table = table.sort_values("train_accuracy", ascending=False).reset_index(drop=True)
    best = table.iloc[0]

    head = _policy_item(best, specs)
    runners = []
    for _, r in table.iloc[1:3].iterrows():
        it = _policy_item(r, specs)
        v = _versus(r, best)
        noise = "within noise" if v["within_noise"] else "beyond one standard error"
        it["why_not"] = (
            f"less accurate on the planning half ({100 * r['train_accuracy']:.1f}% vs "
            f"{100 * best['train_accuracy']:.1f}%); on the held-out half the choice is "
            f"{100 * abs(v['difference']):.1f} points {'ahead' if v['difference'] >= 0 else 'behind'} "
            f"(SE {100 * v['se']:.1f}: {noise})"
        )
        runners.append(it)
    policy = {
        "description": head.pop("description"),
        "table": table.replace({np.nan: None}).to_dict("records"),
        "note": "chosen on half of the questions, replayed on the other half (seeded split)",
    }
    fixed = table[table["policy"] == "fixed"]
    if best["policy"] != "fixed" and len(fixed):
        policy["versus_fixed"] = {
            "fixed": describe_policy(fixed.iloc[0]["choice"]),
            **_versus(fixed.iloc[0], best),
        }
    for r in runners:
        r.pop("description", None)
    return Recommendation(
        request=request,
        choice=head["choice"],
        expected_accuracy=head["expected_accuracy"],
        accuracy_interval=head["accuracy_interval"],
        source="measured",
        cost=head["cost"],
        binding_constraint=key,
        runners_up=runners,
        mode={"policy": policy},
    )


def _policy_item(r, specs) -> dict:
    """An adaptive policy's row as a choice with its held-out accuracy (90% interval), cost
    and description."""
    half = Z90 * float(r["test_accuracy_se"])
    acc = r["test_accuracy"]
    choice = dict(r["choice"])
    spec = specs.get(choice.get("model"))
    choice = {
        "model": choice.get("model"),
        "architecture": getattr(spec, "architecture", None),
        "strategy": choice.get("strategy"),
        "knobs": choice.get("knobs") or {},
    }
    return {
        "choice": choice,
        "expected_accuracy": json_number(acc),
        "accuracy_interval": [json_number(max(acc - half, 0)), json_number(min(acc + half, 1))],
        "source": "measured",
        "cost": {"flops": json_number(r["test_flops"]), "tokens": json_number(r["test_tokens"])},
        "description": describe_policy(r["choice"]),
    }


def _versus(r, ref) -> dict:
    """Held-out accuracy difference of ``ref`` minus ``r``, its standard error (from the two
    accuracies' standard errors) and whether it is within noise."""
    diff = float(ref["test_accuracy"] - r["test_accuracy"])
    se = math.hypot(float(ref["test_accuracy_se"]), float(r["test_accuracy_se"]))
    return {"difference": json_number(diff), "se": json_number(se), "within_noise": bool(abs(diff) <= se)}
