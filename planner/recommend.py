"""The recommendation: what to run for a budget and a kind of problem, what to expect, what it costs.

:func:`plan` ties the pieces together: a :class:`~planner.profile.Profile` (samples, curves,
specs), a cost model for the target hardware or API (:class:`~planner.space.pricing.CostModel`),
the option space (:class:`~planner.space.option_space.OptionSpace`), a search
(:mod:`planner.search.single`), per-difficulty allocation (:mod:`planner.search.allocate`) for a mix of
difficulties, and offline adaptive policies (:mod:`planner.search.adaptive`) when the difficulty
is unknown. It returns a :class:`Recommendation`, whose :meth:`~Recommendation.to_json` is
the object of DESIGN.md::

    {"request": {...}, "choice": {"model", "architecture", "strategy", "knobs"},
     "expected_accuracy", "accuracy_interval", "source", "cost": {"flops", "tokens",
     "latency_s", "usd", "kv_bytes"}, "binding_constraint", "runners_up": [...]}

plus one mode key where the mode needs it: ``pareto`` (``objective="pareto"``),
``allocation`` (a difficulty mix), ``policy`` (``difficulty="auto"``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .search.pareto import pareto_exhaustive, pareto_optuna
from .search.single import Budget, SearchResult, search
from .space.arms import COST_KEYS
from .space.option_space import ExtraModel, OptionSpace

__all__ = ["Recommendation", "PlanError", "plan", "family_of", "build_space"]

_REPORTED_COSTS = ("flops", "tokens", "latency_s", "usd", "kv_bytes")


class PlanError(ValueError):
    """A request the planner cannot answer (the message says why and what would work)."""


@dataclass
class Recommendation:
    """A recommendation; :meth:`to_json` gives the DESIGN.md object."""

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

    def to_json(self) -> dict:
        out = {
            "request": self.request,
            "choice": self.choice,
            "expected_accuracy": _num(self.expected_accuracy),
            "accuracy_interval": [_num(v) for v in self.accuracy_interval],
            "source": self.source,
            "cost": {k: _num(v) for k, v in self.cost.items()},
            "binding_constraint": self.binding_constraint,
            "runners_up": self.runners_up,
        }
        out.update(self.mode)
        return out


def _num(v):
    """A JSON number with 6 significant digits (None for missing or non-finite)."""
    if v is None:
        return None
    v = float(v)
    return float(f"{v:.6g}") if math.isfinite(v) else None


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


def build_space(profile, coster, *, include_simulated=False, extra_models: Sequence[ExtraModel] = (), **kw):
    """The option space of a profile (laws cached in the profile's folder)."""
    families = {m: family_of(m) for m in profile.specs}
    params = {m: p for m, p in profile.params.items() if m in set(profile.models)}
    space = OptionSpace.from_curves(
        profile.curves, coster, architectures=profile.architectures, include_simulated=include_simulated,
        extra_models=extra_models, model_params=params, families=families, fits=profile.fits,
        fit_cache=profile.fit_cache, **kw,
    )  # fmt: skip
    profile.save_fit_cache()
    return space


def _cost(row) -> dict[str, float | None]:
    return {k: (float(row[k]) if k in row and pd.notna(row[k]) else None) for k in _REPORTED_COSTS}


def _why_not(row, choice_row, budget: Budget, objective: str) -> str:
    over = [(k, row[k], lim) for k, lim in budget.limits.items() if k in row and row[k] > lim * (1 + 1e-12)]
    if over:
        k, v, lim = max(over, key=lambda t: t[1] / t[2])
        return f"over budget: {k} {v:.3g} > {lim:.3g}"
    a, b = float(row[objective]), float(choice_row[objective])
    name = "expected accuracy" if objective == "accuracy" else "lower bound of accuracy"
    if a < b - 1e-12 and row["source"] == "measured" and choice_row["source"] != "measured":
        return (
            f"{name} {a:.3f} < {b:.3f}, but measured; the choice is {choice_row['source']} "
            f"(interval {choice_row['accuracy_lo']:.3f}-{choice_row['accuracy_hi']:.3f})"
        )
    if a < b - 1e-12:
        key = budget.primary()
        ratio = choice_row[key] / row[key] if row[key] > 0 else math.inf
        extra = f", though {ratio:.2g}x cheaper in {key}" if ratio >= 1.1 else ""
        return f"{name} {a:.3f} < {b:.3f}{extra}"
    if row["source_rank"] > choice_row["source_rank"]:
        return f"same {name}, but {row['source']} rather than {choice_row['source']}"
    return f"same {name}, costs more {budget.primary()}"


def _runners_up(space: OptionSpace, res: SearchResult, best, budget: Budget, n: int = 2) -> list[dict]:
    """Two runners-up: when the choice is not measured, the best MEASURED feasible option first
    (what is known for sure); then the best feasible option of another model or strategy, the
    best over-budget option that would have been more accurate, or the next feasible one."""
    obj = res.objective
    picks = []
    ranked = res.ranked
    if best["source"] != "measured":
        measured = ranked[ranked["source"] == "measured"]
        if len(measured):
            picks.append(measured.iloc[0])
    other = ranked[(ranked["model"] != best["model"]) | (ranked["strategy"] != best["strategy"])]
    if len(other) and (
        not picks or (other.iloc[0]["arm"], other.iloc[0]["x"]) != (picks[0]["arm"], picks[0]["x"])
    ):
        picks.append(other.iloc[0])
    ev = res.evaluated if res.evaluated is not None else ranked
    if len(ev):
        over = ev[~budget.feasible(ev) & (ev[obj] > best[obj] + 1e-12)]
        if len(over):
            if "source_rank" not in over:
                over = over.assign(
                    source_rank=over["source"].map({"measured": 0, "fitted": 1, "extrapolated": 2})
                )
            picks.append(over.sort_values([obj, budget.primary()], ascending=[False, True]).iloc[0])
    seen = {(best["arm"], best["x"])} | {(p["arm"], p["x"]) for p in picks}
    for _, r in other.iterrows():
        if len(picks) >= n:
            break
        if (r["arm"], r["x"]) not in seen and r["arm"] not in {p["arm"] for p in picks}:
            picks.append(r)
            seen.add((r["arm"], r["x"]))
    out = []
    for r in picks[:n]:
        out.append({
            "choice": space.option_choice(space.arm_by_key(r["arm"]), r["x"]),
            "expected_accuracy": _num(r["accuracy"]),
            "accuracy_interval": [_num(r["accuracy_lo"]), _num(r["accuracy_hi"])],
            "source": r["source"],
            "cost": {k: _num(v) for k, v in _cost(r).items()},
            "why_not": _why_not(r, best, budget, obj),
        })  # fmt: skip
    return out


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
        label = f"{r['model']} {r['strategy']}" + (f" {r['knob']}={r['x']:g}" if r["knob"] else "")
        if r[k] > lim:
            parts.append(f"{k} <= {lim:.3g}: the cheapest option is {label} at {r[k]:.3g}")
    msg = (
        "no option fits the budget (" + "; ".join(parts) + ")"
        if parts
        else "no option fits every limit at once"
    )
    if not parts:
        for k in budget.limits:
            if k in table and not table[k].isna().all():
                others = Budget({j: v for j, v in budget.limits.items() if j != k and j in table})
                ok = table[others.feasible(table)] if others.limits else table
                if len(ok):
                    r = ok.loc[ok[k].idxmin()]
                    msg += (
                        f"; the cheapest option within the other limits is {r['model']} {r['strategy']}"
                        + (f" {r['knob']}={r['x']:g}" if r["knob"] else "")
                        + f" with {k} = {r[k]:.3g}"
                    )
                break
    return msg


def plan(
    profile,
    budget: Mapping[str, float] | Budget,
    *,
    difficulty: str | None = None,
    hardware: str | None = "h100",
    api: str | None = None,
    concurrency: int = 1,
    tp: int | None = 1,
    risk: str = "expected",
    objective: str = "accuracy",
    method: str = "auto",
    storage: str | None = None,
    n_trials: int = 60,
    seed: int = 0,
    include_simulated: bool = False,
    extra_models: Sequence[ExtraModel] = (),
    extra_specs: Mapping[str, object] | None = None,
    models: Sequence[str] | None = None,
    catalog_file: str | None = None,
) -> Recommendation:
    """Recommend an option (or a policy, or an allocation) for ``budget`` and ``difficulty``.

    Parameters
    ----------
    profile : :class:`~planner.profile.Profile`
    budget : mapping or Budget
        Per-query limits on ``flops``, ``tokens``, ``usd``, ``latency_s``, ``kv_bytes``.
        The GPU memory (weights plus KV at ``concurrency``) is always a limit on hardware.
    difficulty : str or None
        A difficulty label, ``"all"``/None (every question), a mix ``"1:0.2,3:0.8"``
        (adds a per-difficulty ``allocation``) or ``"auto"`` (an adaptive ``policy``).
    hardware, api : str or None
        Catalog names of the accelerator or hosted API to price on.
    risk : {"expected", "conservative"}
        Maximize expected accuracy or the lower end of its interval.
    objective : {"accuracy", "pareto"}
        ``pareto`` also returns the accuracy-versus-cost front (NSGA-II on large spaces).
    method, storage, n_trials, seed
        Search settings (see :func:`planner.search.single.search`).
    models : sequence of str or None
        Consider only these models (profiled or ``extra_models``).
    """
    from planner.catalog import CatalogError, load_catalog

    from .space.pricing import CostModel

    b = budget if isinstance(budget, Budget) else Budget(dict(budget))
    try:
        catalog = load_catalog(catalog_file)
        hw = catalog.gpu(hardware) if hardware else None
        price = catalog.api_price(api) if api else None
    except CatalogError as exc:
        raise PlanError(str(exc)) from None
    specs = {**profile.specs, **(extra_specs or {})}
    coster = CostModel(specs, hardware=hw, api=price, concurrency=concurrency, tp=tp)
    request = {"budget": b.as_dict(), "difficulty": str(difficulty or "all")}
    if hw is not None:
        request["hardware"] = hardware
    if price is not None:
        request["api"] = api
    if concurrency != 1:
        request["concurrency"] = concurrency
    if risk != "expected":
        request["risk"] = risk
    limits = dict(b.limits)
    if hw is not None and "memory_bytes" not in limits:
        limits["memory_bytes"] = coster.memory_limit_bytes()
    full = Budget(limits)

    if difficulty == "auto":
        return _plan_auto(profile, specs, b, request, seed)

    space = build_space(profile, coster, include_simulated=include_simulated, extra_models=extra_models)
    if models:
        known = sorted({a.model for a in space.curves})
        unknown = [m for m in models if m not in known]
        if unknown:
            raise PlanError(
                f"unknown model {unknown[0]!r}; the profile (and --extra-model) has: {', '.join(known)}"
            )
        space.curves = {a: c for a, c in space.curves.items() if a.model in set(models)}
        request["models"] = list(models)
    try:
        target = space.target(difficulty)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    kw = {"n_trials": n_trials, "seed": seed, "storage": storage}
    if objective == "pareto":
        big = method == "optuna" or storage is not None
        res = (pareto_optuna(space, target, full, risk=risk, seed=seed, storage=storage) if big
               else pareto_exhaustive(space, target, full, risk=risk))  # fmt: skip
        if res.evaluated is None:
            res.evaluated = space.table(target)
    elif objective == "accuracy":
        res = search(space, target, full, risk, method=method, **({} if method == "exhaustive" else kw))
    else:
        raise PlanError(f"objective must be 'accuracy' or 'pareto', got {objective!r}")
    best = res.best
    if best is None:
        raise PlanError(_cheapest_message(space, target, full))
    binding = res.binding
    if objective == "pareto":
        from .search.single import binding_constraint

        binding = binding_constraint(res.evaluated, best, full, res.objective)
    rec = Recommendation(
        request=request,
        choice=space.option_choice(space.arm_by_key(best["arm"]), best["x"]),
        expected_accuracy=float(best["accuracy"]),
        accuracy_interval=[float(best["accuracy_lo"]), float(best["accuracy_hi"])],
        source=str(best["source"]),
        cost=_cost(best),
        binding_constraint=binding,
        runners_up=_runners_up(space, res, best, full),
        search={
            "method": res.method,
            "evaluations": res.evaluations,
            "seconds": res.seconds,
            "space_size": space.size(target),
        },  # fmt: skip
        notes=list(space.notes),
    )
    if objective == "pareto":
        rec.mode["pareto"] = [
            {"choice": space.option_choice(space.arm_by_key(r["arm"]), r["x"]), "expected_accuracy": _num(r["accuracy"]),
             "accuracy_interval": [_num(r["accuracy_lo"]), _num(r["accuracy_hi"])], "source": r["source"],
             "cost": {k: _num(v) for k, v in _cost(r).items()}}
            for _, r in res.pareto.iterrows()
        ]  # fmt: skip
    if isinstance(difficulty, str) and ":" in difficulty and len(target) > 1:  # an explicit mix
        rec.mode["allocation"] = _allocation(space, target, full, risk, seed)
    return rec


def _allocation(space: OptionSpace, target, budget: Budget, risk: str, seed: int) -> dict:
    """Per-difficulty allocation for a mix: exact DP and Optuna, their gap, and what it saves."""
    from .search.allocate import allocate_exact, allocate_optuna, bin_tables, compare_with_single

    key = budget.primary()
    per_query = (
        Budget({k: v for k, v in budget.limits.items() if k != key}) if len(budget.limits) > 1 else None
    )
    tables = bin_tables(space, target, per_query)
    limit = budget.limits[key]
    exact = allocate_exact(tables, target, limit, key, risk)
    tpe = allocate_optuna(tables, target, limit, key, risk, seed=seed)
    cmp = compare_with_single(tables, target, limit, key, risk)
    bins = []
    for b, r in exact.choice.items():
        bins.append({"difficulty": b, "weight": _num(target[b]),
                     "choice": space.option_choice(space.arm_by_key(r["arm"]), r["x"]),
                     "expected_accuracy": _num(r["accuracy"]), "source": r["source"],
                     "cost": {k: _num(v) for k, v in _cost(r).items()}})  # fmt: skip
    return {
        "budget_key": key,
        "average_budget": limit,
        "bins": bins,
        "expected_accuracy": _num(exact.accuracy),
        "average_cost": _num(exact.cost),
        "optuna_expected_accuracy": _num(tpe.accuracy),
        "optuna_gap": _num(exact.accuracy - tpe.accuracy),
        "best_single_option": cmp["single_option"],
        "best_single_accuracy": _num(cmp["single_accuracy"]),
        "compute_ratio_at_equal_accuracy": _num(cmp["compute_ratio"]),
        "note": "other limits apply per query to every bin's option",
    }


def _plan_auto(profile, specs, budget: Budget, request: dict, seed: int) -> Recommendation:
    """Difficulty unknown: pick the adaptive policy with the best accuracy on training
    questions within budget, report its replay on held-out questions."""
    from .search.adaptive import ADAPTIVE_COST_KEYS, PoolReplay, adaptive_policies

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

    def item(r) -> dict:
        half = 1.6448536269514722 * float(r["test_accuracy_se"])
        return {"choice": {"policy": r["policy"], "params": r["params"]}, "expected_accuracy": _num(r["test_accuracy"]),
                "accuracy_interval": [_num(max(r["test_accuracy"] - half, 0)), _num(min(r["test_accuracy"] + half, 1))],
                "source": "measured", "cost": {"flops": _num(r["test_flops"]), "tokens": _num(r["test_tokens"])}}  # fmt: skip

    head = item(best)
    runners = []
    for _, r in table.iloc[1:3].iterrows():
        it = item(r)
        it["why_not"] = f"training accuracy {r['train_accuracy']:.4f} < {best['train_accuracy']:.4f}"
        runners.append(it)
    return Recommendation(
        request=request, choice=head["choice"], expected_accuracy=head["expected_accuracy"],
        accuracy_interval=head["accuracy_interval"], source="measured", cost=head["cost"],
        binding_constraint=key, runners_up=runners,
        mode={"policy": {"table": table.replace({np.nan: None}).to_dict("records"),
                         "note": "chosen on half of the questions, replayed on the other half (seeded split)"}},
    )  # fmt: skip


__all__ += ["COST_KEYS"]
