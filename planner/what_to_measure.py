r"""What to measure next: how sure a recommendation is, and which profiling would settle it.

:func:`measure_next` reads a :class:`~planner.recommend.Recommendation` (its option space,
target, budget and cost model) and the profile behind it, and returns

* ``p_best``: the probability that the choice is the most accurate feasible option;
* ``expected_regret_points``: the expected accuracy lost to the best feasible option, in points;
* ``p_best_beyond_reach``: the probability that the best feasible option lies beyond the
  planner's extrapolation limit (options it refuses to recommend today);
* ``actions``: up to 3 runnable ``ttc profile`` commands with the largest expected reduction
  in regret per unit of profiling cost.

**The replicates** (:mod:`planner.search.value` for the formulas). Every option of the space,
plus the options up to :data:`~planner.space.MAX_EXTRAPOLATION` times further than the
planner's limit (each arm's predictor allowed that much more reach: the same law, its interval
widened with every doubling), gets ``B`` replicate accuracies:

* a measured option: its accuracy in replicate ``b`` of the joint question bootstrap
  (:meth:`planner.split_engine.HeldOut.replicates`: questions drawn with replacement once per
  replicate and shared by every option, the draw of ``ttc evaluate``'s intervals);
* a predicted option (fitted, extrapolated, beyond reach): its prediction plus a normal
  deviation whose standard deviation ``s`` is its 90% interval's half-width over
  :math:`z_{0.95}`, split into a question part, :math:`s\rho z_b` with :math:`z_b` the
  standardized replicate of the arm's largest measured option (so it moves with the same
  question draw) and :math:`\rho = \min(1, \mathrm{sd}_b / s)`, and a law part
  :math:`s\sqrt{1-\rho^2}\,e_{b}` with one standard normal :math:`e_b` per arm and replicate
  (the law's error moves the arm's whole curve).

**The actions** of each profiled arm, valued by preposterior simulation
(:func:`planner.search.value.preposterior_value`, updating the arm's own options):

* *further*: profile the arm's strategy up to a feasible knob value beyond its largest
  profiled one, on the same questions. It would show the option's law part (the question part
  is what the same questions cannot tell), with the sampling noise of a pool of that size on
  ``Q`` questions, at most :math:`\mu(1-\mu)/Q`; its options up to the extrapolation limit from
  there become choosable;
* *more questions*: double the questions of the arm's profiled configuration; the new mean
  has the noise of a replicate (its bootstrap variance, ``Q`` new questions like the old).

Its cost is the profiling's generated tokens (the measured mean tokens per query, per
difficulty, times the questions to run) and, on a GPU, its GPU-seconds from the cost model
(:meth:`planner.space.CostModel.gpu_seconds`: the profiled workload on the target GPU at the
request's concurrency). Actions are ranked by regret reduction per GPU-second (per generated
token without a GPU); each is a ``ttc profile`` command into the profile's own folder, which
resumes the run and adds the new configuration (:func:`profiling.storage.add_strategies`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shlex
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fitting import schema as S
from fitting.blocks import BLOCK
from profiling.strategy_spec import StrategySpec, parse_strategy_spec

from .alternatives import json_number
from .constants import ACCURACY, ACCURACY_HI, ACCURACY_LO, ARM, KNOB_VALUE, SOURCE
from .profile import Profile
from .search.value import expected_regret, p_best, preposterior_value
from .space import MAX_EXTRAPOLATION, CostModel
from .space.arms import arms_from_curves
from .space.curve import ArmCurve
from .space.predict import Z90
from .split_engine import HeldOut

__all__ = ["measure_next", "measure_next_in", "MAX_ACTIONS", "MIN_VALUE_POINTS"]

#: actions reported
MAX_ACTIONS = 3
#: an action worth less than this (regret reduction, points) is not reported: Monte Carlo noise
MIN_VALUE_POINTS = 0.01
#: replicates of the joint question bootstrap (the request's n_boot, within these bounds)
MIN_BOOT, MAX_BOOT = 100, 400
#: knob values tried per arm for the "further" action (spread over the feasible ones)
TARGETS_PER_ARM = 6


@dataclass
class _Beliefs:
    """Every option (feasible or not) with its replicates: ``A`` (truth), ``same`` (what
    profiling the same questions further would show), the estimate ``mu`` and masks, and the
    profiled config of each arm (:func:`_profiled_configs`; like the replicates, it does not
    depend on the budget)."""

    table: pd.DataFrame
    A: np.ndarray
    same: np.ndarray
    mu: np.ndarray
    feasible: np.ndarray
    reachable: np.ndarray
    n_boot: int
    configs: dict[str, str]


def measure_next(
    profile: Profile,
    rec,
    *,
    n_boot: int | None = None,
    seed: int | None = None,
    max_actions: int = MAX_ACTIONS,
) -> dict | None:
    """What to measure next for ``rec`` (module docstring); also stored as ``rec.measure_next``.

    None for a recommendation without one option to question (``--difficulty auto``, the
    Pareto objective) or made without :func:`planner.plan`'s context.
    """
    out = measure_next_in(profile, rec.context, n_boot=n_boot, seed=seed, max_actions=max_actions)
    if out is not None:
        rec.measure_next = out
    return out


def measure_next_in(
    profile: Profile,
    ctx: dict,
    *,
    n_boot: int | None = None,
    seed: int | None = None,
    max_actions: int = MAX_ACTIONS,
    beliefs: dict | None = None,
    reach: float = MAX_EXTRAPOLATION,
) -> dict | None:
    """:func:`measure_next` of a plan's context (``space``, ``target``, ``budget``, ``coster``,
    ``hardware``, ``request``, ``best``: what :func:`planner.plan` keeps in ``rec.context``).

    ``beliefs`` is a dict shared by the calls that plan on the same space and target at other
    budgets: the replicates do not depend on the budget, so they are drawn once (the same
    draws as a call of its own) and only feasibility is redone. ``reach``: how many times
    further than the planner's extrapolation limit the options valued go (the same laws, their
    intervals widened with every doubling)."""
    req = ctx.get("request") if ctx else None
    if req is None or req.objective == "pareto" or ctx.get("best") is None:
        return None
    seed = req.seed if seed is None else seed
    B = int(np.clip(req.n_boot if n_boot is None else n_boot, MIN_BOOT, MAX_BOOT))
    key = (id(ctx["space"]), tuple(sorted(ctx["target"].items())), B, seed, reach)
    held = beliefs.get(key) if beliefs is not None else None
    if held is None:
        held = _beliefs(profile, ctx, B, seed, reach)
        if beliefs is not None:
            beliefs[key] = held
    beliefs_now = dataclasses.replace(held, feasible=ctx["budget"].feasible(held.table))
    t, F = beliefs_now.table, beliefs_now.feasible
    best = ctx["best"]
    choice = np.flatnonzero(
        F
        & (t[ARM].to_numpy() == best[ARM])
        & np.isclose(t[KNOB_VALUE].to_numpy(float), float(best[KNOB_VALUE]))
    )
    if len(choice) == 0:
        return None
    Af = beliefs_now.A[:, F]
    c = int(np.searchsorted(np.flatnonzero(F), choice[0]))
    top = np.argmax(Af, axis=1)
    return {
        "p_best": json_number(p_best(Af, c)),
        "expected_regret_points": json_number(100 * expected_regret(Af, c)),
        "p_best_beyond_reach": json_number(float(np.mean(~beliefs_now.reachable[F][top]))),
        "actions": _actions(profile, ctx, beliefs_now, seed)[:max_actions],
        "method": _method(B, ctx.get("hardware")),
    }


def _method(B: int, hardware) -> str:
    per = f"GPU-second of profiling on {hardware.name}" if hardware is not None else "generated token"
    return (
        f"joint question bootstrap ({B} replicates, questions shared by every option); predicted options "
        "from their 90% intervals, split into a question part that moves with the arm's largest measured "
        f"option and a law part shared along the arm; options up to {MAX_EXTRAPOLATION:g}x beyond the "
        "extrapolation limit predicted by the same laws; actions valued by preposterior simulation "
        f"(knowledge gradient, the acted arm's options updated) and ranked per {per}"
    )


# ---- the replicates ---------------------------------------------------------------------------
def _reach_space(space, factor: float):
    """A copy of ``space`` whose profiled arms extrapolate ``factor`` times further (the same
    laws; intervals widen with every doubling past the profiled range)."""
    wide = copy.copy(space)
    wide.notes = []
    curves = {}
    for arm, per in space.curves.items():
        curves[arm] = {}
        for d, curve in per.items():
            if isinstance(curve, ArmCurve):
                pred = copy.copy(curve.predictor)
                pred.max_factor = pred.max_factor * factor
                curve = dataclasses.replace(curve, predictor=pred)
            curves[arm][d] = curve
    wide.curves = curves
    return wide


def _limit(space, arm_key: str, target) -> float:
    arm = space.arm_by_key(arm_key)
    return min(float(space.curves[arm][d].predictor.x_limit) for d in target)


def _beliefs(profile: Profile, ctx: dict, B: int, seed: int, reach: float = MAX_EXTRAPOLATION) -> _Beliefs:
    space, target, req = ctx["space"], ctx["target"], ctx["request"]
    table = _reach_space(space, reach).table(target)
    table = table[np.isfinite(table[ACCURACY].to_numpy(float))].reset_index(drop=True)
    limits = {a: _limit(space, a, target) for a in table[ARM].unique()}
    x = table[KNOB_VALUE].to_numpy(float)
    reachable = x <= table[ARM].map(limits).to_numpy(float) * (1 + 1e-9)
    held = HeldOut(
        space,
        profile.curves,
        profile.samples,
        {"t": target},
        seed=seed,
        verifier=req.verifier,
        counts=profile.counts if profile.is_counts else None,
        per_question=profile.per_question,
    )
    measured, M = held.replicates("t", B, seed)
    column = {
        (a, float(v)): j for j, (a, v) in enumerate(zip(measured[ARM], measured[KNOB_VALUE], strict=True))
    }
    mu = table[ACCURACY].to_numpy(float)
    A, same = np.tile(mu, (B, 1)), np.tile(mu, (B, 1))
    rng = np.random.default_rng([seed, 1])
    for arm_key, rows in table.groupby(ARM).indices.items():
        mine = [(v, j) for (a, v), j in column.items() if a == arm_key and np.isfinite(M[:, j]).all()]
        ref = M[:, max(mine)[1]] if mine else np.zeros(B)
        sd = float(ref.std())
        z = (ref - ref.mean()) / sd if sd > 0 else np.zeros(B)
        e = rng.standard_normal(B)
        for i in rows:
            j = column.get((arm_key, float(x[i])))
            if table[SOURCE].iat[i] == "measured" and j is not None and np.isfinite(M[:, j]).all():
                A[:, i] = M[:, j]
                continue
            lo, hi = float(table[ACCURACY_LO].iat[i]), float(table[ACCURACY_HI].iat[i])
            s = (hi - lo) / (2 * Z90) if math.isfinite(lo) and math.isfinite(hi) else 0.0
            rho = min(sd / s, 1.0) if s > 0 else 0.0
            law = s * math.sqrt(1.0 - rho * rho) * e
            A[:, i] = np.clip(mu[i] + s * rho * z + law, 0.0, 1.0)
            same[:, i] = np.clip(mu[i] + law, 0.0, 1.0)
    feasible = ctx["budget"].feasible(table)
    return _Beliefs(table, A, same, mu, feasible, reachable, B, _profiled_configs(profile, ctx))


# ---- the actions ------------------------------------------------------------------------------
def _questions(space, arm) -> dict[str, int]:
    """Questions profiled per difficulty of ``arm`` (every bin it has, not only the target's)."""
    out = {}
    for d, curve in space.curves[arm].items():
        n = curve.points[S.N_QUESTIONS].max() if S.N_QUESTIONS in curve.points else math.nan
        out[d] = int(n) if np.isfinite(n) else 1
    return out


def _cost(ctx: dict, arm, x_of_bin: dict[str, float], n_of_bin: dict[str, int]) -> tuple[float, float]:
    """Generated tokens and GPU-seconds of profiling ``arm`` at knob ``x_of_bin[d]`` on
    ``n_of_bin[d]`` questions of each difficulty (measured mean tokens per query)."""
    space, req, hw = ctx["space"], ctx["request"], ctx.get("hardware")
    gpu = CostModel(ctx["coster"].specs, hardware=hw, concurrency=req.concurrency, tp=req.tp) if hw else None
    tokens, seconds = 0.0, 0.0
    for d, n in n_of_bin.items():
        curve = space.curves[arm][d]
        usage = curve.usage([x_of_bin[d]])
        tokens += n * float(usage.completion_tokens[0])
        seconds += n * float(gpu.gpu_seconds(arm, [x_of_bin[d]], usage)[0]) if gpu else math.nan
    return tokens, seconds


def _actions(profile: Profile, ctx: dict, b: _Beliefs, seed: int) -> list[dict]:
    space, target = ctx["space"], ctx["target"]
    F = b.feasible
    Af, muf, reach = b.A[:, F], b.mu[F], b.reachable[F]
    eps = np.random.default_rng([seed, 2]).standard_normal(b.n_boot)
    t = b.table
    xs, arms = t[KNOB_VALUE].to_numpy(float), t[ARM].to_numpy()
    configs = b.configs
    found: dict[str, dict] = {}
    for arm in space.arms(target):
        if not all(isinstance(space.curves[arm][d], ArmCurve) for d in target) or arm.descriptor is None:
            continue  # an unprofiled family member or an imported strategy: nothing to profile
        mine = arms == arm.key
        if not (mine & F).any():
            continue
        x_max = min(float(space.curves[arm][d].points[KNOB_VALUE].max()) for d in target)
        q = _questions(space, arm)
        tq = {d: q[d] for d in target}
        weights = sum(w * w / tq[d] for d, w in target.items())
        updated = mine[F]
        further = np.unique(xs[mine & F & (xs > x_max * (1 + 1e-9))])
        if len(further) > TARGETS_PER_ARM:
            further = further[
                np.unique(np.linspace(0, len(further) - 1, TARGETS_PER_ARM).round().astype(int))
            ]
        factor = space.curves[arm][next(iter(target))].predictor.max_factor
        for x in further:
            i = int(np.flatnonzero(mine & (xs == x))[0])
            noise = b.mu[i] * (1 - b.mu[i]) * weights
            after = reach | (updated & (xs[F] <= factor * x * (1 + 1e-9)))
            value = preposterior_value(
                Af, muf, b.same[:, i], noise, updated=updated, before=reach, after=after, eps=eps
            )
            hint = "beyond the extrapolation limit" if not b.reachable[i] else "where the law extrapolates"
            _keep(found, ctx, profile, configs, arm, "further", x, q, value, hint)
        ref = np.flatnonzero(mine & (t[SOURCE].to_numpy() == "measured") & (xs == x_max))
        if len(ref):
            y = b.A[:, ref[0]]
            value = preposterior_value(Af, muf, y, float(y.var()), updated=updated, before=reach, eps=eps)
            _keep(found, ctx, profile, configs, arm, "more questions", x_max, q, value, "twice the questions")
    ranked = sorted(found.values(), key=lambda a: -a["_rate"])
    return [{k: v for k, v in a.items() if k != "_rate"} for a in ranked]


def _keep(found, ctx, profile, configs, arm, kind, x, q, value, hint) -> None:
    """Add an action (the best value per command is kept)."""
    points = 100.0 * value
    if not points >= MIN_VALUE_POINTS:
        return
    space = ctx["space"]
    more = kind == "more questions"
    x_of_bin = {
        d: (float(c.points[KNOB_VALUE].max()) if more else float(x)) for d, c in space.curves[arm].items()
    }
    command, knobs, questions, n_of_bin = _command(profile, arm, float(x), q, more, configs)
    tokens, seconds = _cost(ctx, arm, x_of_bin, n_of_bin)
    cost = seconds if ctx.get("hardware") is not None else tokens  # one unit for every action
    rate = points / cost if math.isfinite(cost) and cost > 0 else 0.0
    # one action per (model, profiled strategy, kind): the knob value worth most per unit of cost
    key = f"{arm.model}|{arm.profiled_strategy}|{configs.get(arm.key)}|{kind}"
    if key in found and found[key]["_rate"] >= rate:
        return
    found[key] = {
        "command": command,
        "kind": kind,
        "model": arm.model,
        "strategy": arm.profiled_strategy,
        "knobs": knobs,
        "questions": questions,
        "informs": f"{arm.strategy} options of {arm.model} ({hint})",
        "predicted_generated_tokens": json_number(tokens),
        "predicted_gpu_seconds": json_number(seconds),
        "expected_regret_reduction_points": json_number(points),
        "_rate": rate,
    }
    missing = _not_runnable(profile, arm.model)
    if missing:
        found[key]["note"] = missing


# ---- the command ------------------------------------------------------------------------------
def _profiled_configs(profile: Profile, ctx: dict) -> dict[str, str]:
    """Arm key -> the config JSON of its largest profiled execution (a pool's config; a sweep's
    config at its largest knob value)."""
    req = ctx["request"]
    sources, _ = arms_from_curves(profile.curves, include_simulated=True, verifier=req.verifier)
    out = {}
    for src in sources:
        xs = [x if x is not None else math.inf for x in src.curve_x]
        out.setdefault(src.arm.key, src.curve_keys[int(np.argmax(xs))][1])
    return out


def _not_runnable(profile: Profile, model: str) -> str | None:
    """Why the printed command needs editing before it runs (None when it runs as printed)."""
    run = profile.run
    if run is None:
        return "the folder has no run.json (imported): give the model's path or engine and the task in place of the names"
    if model not in run.get("model_specs", {}).values():
        return f"run.json does not say how {model} was loaded: give its path or engine in place of the name"
    return None


def _strategy(profile: Profile, arm, x: float, config: str | None) -> StrategySpec:
    """The ``--strategy`` of ``arm`` at knob ``x``: the run's own spec of the profiled config
    (run.json) with the compute knob set, else the arm's profiled knobs."""
    knobs = {k: v for k, v in arm.profiled_knobs(x).items() if k != BLOCK}  # blocks are the profiler's
    for s in (profile.run or {}).get("strategies", []):
        if s.get("name") == arm.profiled_strategy and json.dumps(s.get("config"), sort_keys=True) == config:
            spec = parse_strategy_spec(str(s.get("spec", s["name"])))
            given = {k: (s["config"].get(k, v) if "|" in str(v) else v) for k, v in spec.knobs.items()}
            given = {k: v for k, v in given.items() if k != BLOCK}
            compute = {arm.knob: knobs[arm.knob]} if arm.knob in knobs else {}  # greedy has none
            return StrategySpec(spec.name, {**given, **compute})
    return StrategySpec(arm.profiled_strategy, knobs)


def _command(profile: Profile, arm, x: float, q: dict[str, int], more: bool, configs):
    """The ``ttc profile`` command into the profile's folder, the strategy's knobs, the question
    selection and the questions it profiles per difficulty: the arm's questions (a configuration
    already profiled skips them), twice as many with ``more``."""
    run = profile.run or {}
    specs = {name: spec for spec, name in run.get("model_specs", {}).items()}
    strategy = _strategy(profile, arm, x, configs.get(arm.key))
    task = run.get("task", {}) or {}
    task_spec = task.get("spec") or run.get("signature", {}).get("task")
    if not task_spec:
        table = profile.counts if profile.is_counts else profile.samples
        names = sorted(set(table[S.TASK].dropna()) - {"unknown"}) if S.TASK in table else []
        task_spec = names[0] if len(names) == 1 else "TASK"
    selections = run.get("questions") or []
    overall = bool(selections) and all(s.get("per_level") is None and s.get("limit") for s in selections)
    scale = 2 if more else 1
    if overall:
        n = scale * sum(q.values())
        runs = dict(q)  # the new questions, assumed spread over difficulties as the old ones
    else:
        n = scale * max(q.values())
        runs = {d: n - v for d, v in q.items()} if more else dict.fromkeys(q, n)
    questions = {"overall": n} if overall else {"per_level": n}
    if "adaptive" in run:  # an adaptive run grows its pools itself: give it more budget
        return _more_adaptive(run, n * x), dict(strategy.knobs), questions, runs
    replay = (run.get("models", {}).get(arm.model) or {}).get("replay")
    if replay:  # a replayed recording: draw more of it
        engine = ["--backend", "replay", "--source", str(replay.get("source")), "--model", arm.model]
    else:
        engine = ["--model", specs.get(arm.model, arm.model), "--task", str(task_spec)]
    args = ["ttc", "profile", *engine, "--strategy", str(strategy), "--questions", str(n)]
    if overall:
        args.append("--questions-overall")
    sig = run.get("signature", {})
    if "seed" in sig:
        args += ["--seed", str(sig["seed"])]
    if "max_new_tokens" in sig:
        args += ["--max-new-tokens", str(sig["max_new_tokens"])]
    if task.get("split") and task["split"] != "eval":
        args += ["--split", str(task["split"])]
    args += ["--out", str(profile.folder) if profile.folder is not None else "PROFILE_FOLDER"]
    return shlex.join(args), dict(strategy.knobs), questions, runs


def _more_adaptive(run: dict, samples: float) -> str:
    """The adaptive run's own command with its sample budget raised by ``samples`` (a rerun
    resumes it and keeps growing the pools where the decision needs them)."""
    commands = [c for c in run.get("commands", []) if "--adaptive" in c]
    args = ["ttc", *list(commands[-1])[1:]] if commands else ["ttc", "profile", "--adaptive"]
    if args[1] != "profile":
        args = (
            ["ttc", *args[args.index("profile") :]] if "profile" in args else ["ttc", "profile", "--adaptive"]
        )
    budget = run.get("adaptive", {}).get("settings", {}).get("budget_samples")
    if budget is not None and "--budget-samples" in args:
        args[args.index("--budget-samples") + 1] = str(int(budget + math.ceil(samples)))
    return shlex.join(args)
