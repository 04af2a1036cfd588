"""Adaptive profiling: spend a profiling budget where the decision needs it.

``ttc profile ... --adaptive --budget-samples N`` (or ``--budget-profile-tokens T``) runs rounds into
one run folder:

1. **seed round**: every model's pool strategy on every question, one block of ``block``
   samples each (:mod:`fitting.blocks`: a pool grown a block at a time reads back as one pool),
   and the run's other strategies (``--strategy greedy --strategy greedy:cot=false`` beside the
   pool: the cheap single-sample options a small budget picks) on every question of every model,
   so their options enter the plan and the expected regret. They are on every question of the
   run from the start, so later rounds grow only pools; while one of them has no measurement
   (an engine that returned none) the run does not stop on the regret: it profiles it once
   more, and stops saying which one is missing if it still has none;
2. **decide**: load the folder as the planner does (:func:`planner.profile.load_profile`), plan
   at every target budget (:func:`planner.recommend.plan`) and ask what to measure next
   (:func:`planner.what_to_measure.measure_next`: the probability that the choice is best, its
   expected regret, and the profiling actions with the largest expected regret reduction per
   unit of profiling cost);
3. **stop** when the expected regret is at most ``stop_regret`` points at every target budget,
   when the budget is spent, or when no action is left; **else** grow the model that the top
   action of each target budget names (ranked by regret reduction per sample drawn), and go
   to 2. Options are valued up to :data:`BELIEF_REACH` times past the planner's extrapolation
   limit, so a small model whose best pool is far beyond its seed is in view early.

**Allocation inside a pool** (:mod:`planner._pool_allocation`): a grown model's new samples go
to its questions in proportion to Kazdan et al. 2025's Theorem 1 shares at the candidate's
pool size (the rarely solved questions, where pass@k far out is decided; a question solved
several times already gets nothing), water-filled over the current pools. A round draws the
samples that bring the model's largest pool to the candidate's knob over the extrapolation
factor (where the candidate becomes choosable) under that allocation, at least doubling the
model's samples, within what is left of the budget; each round records every question's pool
before it runs.

Dominated models are never grown (no action points at them); a model whose choice is settled
stops early. Every round's plan is written to ``adaptive.json`` in the folder **before** it
runs, so a run killed at any point (Ctrl-C, kill -9) and started again finishes the recorded
round first (the profiler resumes its finished units) and then decides from exactly the data an
uninterrupted run would have had: it ends with the same samples. ``run.json`` gets the rounds
and why the run stopped under the key ``adaptive``.

Estimators stay valid on the uneven pools this produces: a block's samples are drawn
independently of the others and the choice of which pool grows looks only at samples already
seen, so each question's likelihood is that of a fixed pool of the same size (see
:mod:`fitting.blocks`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fitting import schema as S
from fitting.importer import read_input
from profiling.runner import profile as run_profile
from profiling.storage import read_run, write_run
from profiling.strategies import expand_specs

from ._adaptive_state import STATE_FILE, notify, open_state, start_round, write_state
from ._pool_allocation import (
    POOL,
    QuestionSubset,
    allocate_blocks,
    open_share,
    question_pools,
    samples_to_reach,
)
from .catalog import get_hardware
from .constants import DEFAULT_HARDWARE, MEMORY_BYTES
from .profile import load_profile
from .recommend import PlanError, build_space, plan
from .request import PlanRequest
from .search import Budget, objective_column, rank
from .space import MAX_EXTRAPOLATION, CostModel
from .what_to_measure import measure_next_in

__all__ = ["AdaptiveResult", "profile_adaptive", "spent", "STATE_FILE", "DEFAULT_BLOCK", "STOP_REGRET"]

#: the adaptive run's rounds, written before each round runs
#: samples per block (per question) when none is given
DEFAULT_BLOCK = 4
#: stop when the expected regret at every target budget is at most this (points)
STOP_REGRET = 0.5
#: the seed round spends at most 1/SEED_SHARE of a sample budget
SEED_SHARE = 8
#: budgets planned for when none is given (geometric between the cheapest and dearest option)
DEFAULT_BUDGETS = 5
#: how many times further than the planner's extrapolation limit a round values options: pools
#: grown a few questions at a time reach far cheaply, so the best option at a large budget (a
#: small model at a pool many times its seed) must be in view before it is in reach
BELIEF_REACH = MAX_EXTRAPOLATION**3
#: a model is grown for a candidate only while its open questions (not run out) hold at least
#: this share of the allocation's weight at the candidate's knob
MIN_OPEN_SHARE = 0.5


@dataclass
class AdaptiveResult:
    """What an adaptive run did: its rounds, the samples and tokens spent, and why it stopped."""

    out: Path
    rounds: list[dict] = field(default_factory=list)
    samples: int = 0
    tokens: float = 0.0
    stopped: str = ""
    regret: dict[str, float] = field(default_factory=dict)
    #: "model strategy" pairs of the run's strategies with no measurement when it stopped
    unmeasured: list[str] = field(default_factory=list)


def spent(folder: str | Path) -> tuple[int, float]:
    """Samples and generated tokens in a run folder (0, 0 when it holds nothing yet)."""
    folder = Path(folder)
    if not folder.is_dir() or not (S.counts_paths(folder) or S.has_samples(folder)):
        return 0, 0.0
    samples, counts = read_input(folder)
    n, tokens = 0, 0.0
    if samples is not None:
        n += len(samples)
        tokens += float(np.nansum(samples[S.COMPLETION_TOKENS].to_numpy(float)))
    if counts is not None:
        size = counts[S.N_SAMPLES].to_numpy(float)
        n += int(size.sum())
        tokens += float(np.nansum(size * counts[S.COMPLETION_TOKENS].to_numpy(float)))
    return n, tokens


def profile_adaptive(
    models: Sequence[str],
    task: Any,
    out: str | Path,
    request: PlanRequest,
    *,
    budgets: Sequence[dict[str, float]] | None = None,
    budget_samples: int | None = None,
    budget_tokens: float | None = None,
    stop_regret: float = STOP_REGRET,
    block: int = DEFAULT_BLOCK,
    pool_knobs: str = "",
    strategies: Sequence[str] = (),
    max_rounds: int = 50,
    n_boot: int = 100,
    seed: int = 0,
    runner: Callable[..., Any] = run_profile,
    runner_kwargs: dict | None = None,
    on_round: Callable[[dict], Any] | None = None,
) -> AdaptiveResult:
    """Profile ``models`` on ``task`` into ``out`` adaptively (module docstring).

    ``request`` holds the planning settings (hardware, verifier, difficulty, assumed lengths,
    model specs, ...); ``budgets`` the target budgets (each a budget mapping; default: a
    geometric grid over the options after the seed round, recorded and then kept).
    ``runner_kwargs`` go to :func:`profiling.runner.profile` (loader, executor, ...);
    ``pool_knobs`` (``",temperature=0.7"``) are the pool's other knobs; ``strategies`` the run's
    other (single-sample) strategies, full specs (``"greedy:cot=false"``), profiled on every
    question of every model in the seed round (:func:`_unmeasured` keeps the run going while
    one of them has no measurement).
    """
    if (budget_samples is None) == (budget_tokens is None):
        raise ValueError(
            "adaptive profiling needs one budget: --budget-samples N or --budget-profile-tokens T"
        )
    for name, value in (("--budget-samples", budget_samples), ("--budget-profile-tokens", budget_tokens)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not (math.isfinite(stop_regret) and stop_regret >= 0):
        raise ValueError(f"--stop-regret must be a finite number >= 0, got {stop_regret!r}")
    if block < 1:
        raise ValueError(f"--block must be an integer >= 1, got {block!r}")
    out = Path(out)
    kwargs = dict(runner_kwargs or {})
    settings = {
        "models": list(models),
        "block": int(block),
        "pool_knobs": pool_knobs,
        "budget_samples": budget_samples,
        "budget_tokens": budget_tokens,
        "stop_regret": float(stop_regret),
        "request": request.to_json(),
        "budgets": [dict(b) for b in budgets] if budgets else None,
        "seed": int(seed),
    }
    others = list(dict.fromkeys(strategies))
    if others:  # recorded only when given: a run without them keeps its state file as before
        settings["strategies"] = others
    state = open_state(out, settings)
    result = AdaptiveResult(out)

    def execute(r: dict, start: dict[str, int]) -> None:
        for model, specs in sorted(r.get("strategies", {}).items()):  # one sample per question each
            runner([model], task, specs, out, seed=seed, **kwargs)
        per_question = r.get("questions")
        for model in sorted(r["grow"]):
            if per_question is None:  # every question to the same pool (the seed round)
                groups = [(start.get(model, 0), r["grow"][model], task)]
            else:
                groups = _question_groups(per_question.get(model, {}), task)
            for first, stop, chosen in groups:
                specs = [f"pool:n={block},block={j}{pool_knobs}" for j in range(first, stop)]
                if specs:
                    runner([model], chosen, specs, out, seed=seed, **kwargs)

    def finish(r: dict, start: dict[str, int]) -> None:
        """Run a recorded round, mark it done and cap the questions it used up."""
        execute(r, start)
        r["done"] = True
        _cap_used_up(out, state, r, block)
        write_state(out, state)

    def run_round(r: dict) -> None:
        """Record a new round before it runs (a killed run finishes it first), run it, say so."""
        start_round(out, state, r)
        finish(r, {})
        notify(on_round, r)

    def budget_left() -> float:
        n, tokens = spent(out)
        result.samples, result.tokens = n, tokens
        if budget_samples is not None:
            return budget_samples - n
        return budget_tokens - tokens

    # finish a recorded round that a killed run left unfinished (the profiler resumes it)
    rounds = state["rounds"]
    for i, r in enumerate(rounds):
        if not r.get("done"):
            finish(r, _merge_max(rounds[:i]))
    if not rounds:
        seed_blocks = _seed_blocks(block, budget_samples, len(models), task, kwargs)
        first = {
            "round": 0,
            "grow": dict.fromkeys(models, seed_blocks),
            "why": f"seed: {seed_blocks * block} samples per question",
        }
        if others:
            first["strategies"] = dict.fromkeys(models, others)
            first["why"] += f" and {', '.join(others)}"
        run_round(first)
    coverage: dict = {}  # coverage forecasts keyed by their data: a model not grown is not refitted
    while True:
        left = budget_left()
        decision = _decide(out, request, state, budgets, n_boot, seed, coverage)
        result.regret = decision["regret"]
        worst = max(decision["regret"].values(), default=0.0)
        missing = _unmeasured(out, models, others)
        if missing:
            stop, measure = _measure_missing(missing, rounds, left)
        else:
            stop = _stop_reason(worst, stop_regret, left, decision, len(rounds), max_rounds)
        if stop is None and not missing:
            grow, per_question = _grow(decision, state, block, left, budget_samples, out)
            if not grow:
                stop = "the next profiling step does not fit in what is left of the budget"
        if stop is not None:
            if left < 0:  # a round (the seed's block on every question) is never cut short: say so
                unit = "samples" if budget_samples is not None else "generated tokens"
                stop += f"; {-left:,.0f} {unit} over the budget"
            state["stopped"] = stop
            state["regret"] = decision["regret"]
            write_state(out, state)
            _record_in_run(out, state)
            result.rounds, result.stopped = rounds, stop
            result.unmeasured = [f"{m} {spec}" for m, specs in sorted(missing.items()) for spec in specs]
            budget_left()
            return result
        if missing:
            r = {"round": len(rounds), "grow": {}, "strategies": measure, "why": "no measurement yet"}
            r["regret"], r["questions"] = decision["regret"], {}
        else:
            r = {"round": len(rounds), "grow": grow, "why": decision["why"], "regret": decision["regret"]}
            r["questions"] = per_question
        run_round(r)


def _stop_reason(
    worst: float, stop_regret: float, left: float, decision: dict, n_rounds: int, max_rounds: int
) -> str | None:
    """Why a run whose strategies all have measurements stops now (None: it goes on)."""
    if worst <= stop_regret:
        return f"expected regret {worst:.2f} <= {stop_regret:g} points at every target budget"
    if left <= 0:
        return "profiling budget spent"
    if not decision["targets"]:
        return "no profiling action left that would reduce the regret"
    if n_rounds >= max_rounds:
        return f"{max_rounds} rounds"
    return None


def _unmeasured(out: Path, models: Sequence[str], specs: Sequence[str]) -> dict[str, list[str]]:
    """Model -> the run's other strategies (full specs) with no row in ``out`` for it: the plan
    and its expected regret know nothing of them, so the run may not stop on the regret."""
    if not specs:
        return {}
    samples, counts = read_input(out)
    have = set()
    for table in (samples, counts):
        if table is not None:
            have |= set(zip(table[S.MODEL], table[S.STRATEGY], table[S.CONFIG], strict=True))
    keys = {spec: (s.name, s.config_json()) for spec, s in zip(specs, expand_specs(list(specs)), strict=True)}
    missing = {m: [spec for spec, (name, cfg) in keys.items() if (m, name, cfg) not in have] for m in models}
    return {m: specs for m, specs in missing.items() if specs}


def _measure_missing(missing: dict[str, list[str]], rounds: list[dict], left: float):
    """(why the run stops, None) or (None, model -> specs to profile in a round of their own):
    an unmeasured strategy is profiled once more (the profiler resumes what it finished); one
    still without a measurement after that, or with no budget left, stops the run saying so."""
    names = "; ".join(f"{m}: {', '.join(specs)}" for m, specs in sorted(missing.items()))
    tried = any(r.get("strategies") and not r.get("grow") for r in rounds)
    if tried:
        return f"no measurement of {names} after profiling it twice (the engine returned none)", None
    if left <= 0:
        return f"profiling budget spent before {names} had a measurement", None
    return None, missing


def _seed_blocks(block: int, budget_samples: int | None, n_models: int, task: Any, kwargs: dict) -> int:
    """Blocks of the seed round: the most (a power of two) whose samples stay within 1/8 of a
    sample budget, at least one; one with a token budget (lengths are not known yet)."""
    if budget_samples is None:
        return 1
    try:
        chosen = task.problems(
            split=kwargs.get("split", "eval"), per_level=kwargs.get("per_level"), limit=kwargs.get("limit")
        )
        questions = max(len(list(chosen)), 1)
    except Exception:  # a task that cannot list its questions up front: one block
        return 1
    blocks = 1
    while 2 * blocks * block * n_models * questions <= budget_samples / SEED_SHARE:
        blocks *= 2
    return blocks


def _cap_used_up(out: Path, state: dict, r: dict, block: int) -> None:
    """Record the questions whose pools did not grow as asked (a replayed recording used up,
    units the engine could not finish): no later round asks them for more; a model none of
    whose asked questions grew is capped whole."""
    pools = question_pools(out)
    capped = state.setdefault("capped", [])
    for model, blocks in r["grow"].items():
        have = pools.get(model)
        sizes = {} if have is None else dict(zip(have.index.astype(str), have["n"], strict=True))
        if r.get("questions") is None:  # the seed round: every question to the same pool
            asked = {q: [0, blocks] for q in sizes}
        else:
            asked = r["questions"].get(model, {})
        short = [q for q, (_, stop) in asked.items() if sizes.get(q, 0) < stop * block]
        if short:
            known = state.setdefault("capped_questions", {}).setdefault(model, [])
            known += sorted(set(short) - set(known))
        if (not sizes or len(short) == len(asked)) and model not in capped:
            capped.append(model)


def _question_groups(questions: dict[str, list[int]], task: Any) -> list[tuple[int, int, Any]]:
    """The profiler calls of one model's round: the questions growing to the same pool share
    one (blocks from the smallest start; blocks a question already holds are skipped)."""
    by_stop: dict[int, list[str]] = {}
    for q, (_, stop) in questions.items():
        by_stop.setdefault(int(stop), []).append(q)
    return [
        (min(questions[q][0] for q in qs), stop, QuestionSubset(task, qs))
        for stop, qs in sorted(by_stop.items())
    ]


def _merge_max(rounds: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rounds:
        for model, stop in r["grow"].items():
            out[model] = max(out.get(model, 0), int(stop))
    return out


def _record_in_run(out: Path, state: dict) -> None:
    meta = read_run(out)
    if meta is None:
        return
    meta["adaptive"] = {
        "rounds": [
            {k: r[k] for k in ("round", "grow", "strategies", "why") if k in r} for r in state["rounds"]
        ],
        "stopped": state.get("stopped"),
        "settings": state["settings"],
    }
    write_run(out, meta)


def _decide(
    out: Path, request: PlanRequest, state: dict, budgets, n_boot: int, seed: int, coverage: dict
) -> dict:
    """Plan at every target budget from the folder's data; the expected regret of each choice and
    the pool each budget's top action wants (model -> samples per question)."""
    profile = load_profile(
        out,
        model_specs=dict(request.model_specs) or None,
        n_boot=0,
        seed=seed,
        verifier=request.verifier,
        assumed=request.assumed_lengths,
        require_lengths=True,
    )
    profile.coverage_cache = coverage
    if budgets is None:
        budgets = state["settings"].get("budgets") or state.get("default_budgets")
    if budgets is None:
        budgets = _default_budgets(profile, request)
        state["default_budgets"] = budgets
    regret: dict[str, float] = {}
    targets: dict[str, float] = {}
    why = []
    pools = question_pools(out)
    knobs: dict[str, float] = {}
    shared: dict = {}  # the replicates of the round's space, drawn once for every budget
    for label, ctx in _contexts(profile, request, budgets, n_boot):
        mn = measure_next_in(profile, ctx, n_boot=n_boot, seed=seed, beliefs=shared, reach=BELIEF_REACH)
        if mn is None:
            continue
        r = float(mn.get("expected_regret_points") or 0.0)
        regret[label] = r
        if r <= state["settings"]["stop_regret"]:
            continue
        actions = [a for a in mn.get("actions", []) if a.get("model") not in state.get("capped", [])]
        best = _best_action(actions, pools, state["settings"]["block"], state.get("capped_questions", {}))
        if best is not None:
            model, size, action = best
            targets[model] = max(targets.get(model, 0.0), size)
            knobs[model] = max(knobs.get(model, 0.0), float(action["knobs"]["n"]))
            why.append(f"{label}: {model} {action.get('kind', '')} (regret {r:.2f})")
    return {"regret": regret, "targets": targets, "knobs": knobs, "why": "; ".join(why)}


def _contexts(profile, request: PlanRequest, budgets, n_boot: int):
    """(label, plan context) at every budget that some option fits: :func:`planner.plan`'s
    exhaustive search, its option space built and priced once for all budgets (the first
    budget that plans gives the space, the cost model and the memory limit)."""
    first = None
    for b in budgets:
        label = ",".join(f"{k}={v:.3g}" for k, v in b.items())
        req = request.replace(budget=dict(b), n_boot=n_boot, method="exhaustive")
        if first is None:
            try:
                first = plan(profile, req).context
            except PlanError:
                continue
            table = first["space"].table(first["target"])
            yield label, first
            continue
        limits = dict(req.budget_limits().limits)
        if first["hardware"] is not None and MEMORY_BYTES not in limits:
            limits[MEMORY_BYTES] = first["coster"].memory_limit_bytes()
        full = Budget(limits)
        ranked = rank(table[full.feasible(table)], objective_column(req.risk), full.primary())
        if not ranked.empty:
            yield label, {**first, "budget": full, "request": req, "best": ranked.iloc[0]}


def _best_action(actions: list[dict], pools: dict, block: int, capped: dict):
    """The pool action worth most per sample it makes this run draw (:func:`_samples_to_add`):
    (model, pool size, action), or None. A model whose questions that decide pass@k at the
    candidate's knob can take no more samples (less than :data:`MIN_OPEN_SHARE` of the
    allocation's weight on questions still open) is not grown for it.

    ``measure_next`` ranks by GPU-seconds on the target GPU; a profiling budget counts samples
    (or tokens), so the run ranks its own way: a small model's cheap GPU-seconds do not make
    its samples cheaper."""
    best, best_rate = None, 0.0
    for action in actions:
        want = _pool_wanted(action)
        if want is None or want[0] not in pools:
            continue
        model, size = want
        knob, pool = float(action["knobs"]["n"]), pools[model]
        if (
            open_share(pool["n"], pool["c"], knob, ~pool.index.astype(str).isin(capped.get(model, [])))
            < MIN_OPEN_SHARE
        ):
            continue
        draws = _samples_to_add(pool, size, knob, block)
        rate = float(action.get("expected_regret_reduction_points") or 0.0) / draws
        if rate > best_rate:
            best, best_rate = (model, size, action), rate
    return best


def _samples_to_add(pool, size: float, knob: float, block: int) -> float:
    """Samples a model's round draws: its largest pool brought to ``size`` (where its candidate
    at ``knob`` becomes choosable) under the allocation, and at least doubling its samples."""
    n, c = pool["n"].to_numpy(float), pool["c"].to_numpy(float)
    return max(samples_to_reach(n, c, size, knob), float(n.sum()), float(block))


def _pool_wanted(action: dict) -> tuple[str, float] | None:
    """(model, samples per question) a pool action asks for: its knob over the planner's
    extrapolation factor for a candidate beyond the pool; None for a non-pool action."""
    if action.get("strategy") != "pool":
        return None
    n = (action.get("knobs") or {}).get("n")
    if n is None:
        return None
    n = float(n)
    if action.get("kind") == "more questions":
        return action["model"], 2 * n
    return action["model"], n / MAX_EXTRAPOLATION


def _grow(decision: dict, state: dict, block: int, left: float, budget_samples, out: Path):
    """The round's growth: blocks each targeted model adds (:func:`_samples_to_add`, scaled down
    to what is left of the budget), spread over its
    questions by :func:`planner._pool_allocation.allocate_blocks` at the knob its decision asks
    about. Returns (model -> its largest pool in blocks, model -> {question: [from, to]})."""
    pools = question_pools(out)
    add = {
        m: _samples_to_add(pools[m], size, decision["knobs"][m], block) / block
        for m, size in decision["targets"].items()
    }
    cost = dict.fromkeys(add, float(block))
    if budget_samples is None:
        tokens = _tokens_per_sample(out)
        cost = {m: block * tokens.get(m, 0.0) for m in add}
    total = sum(add[m] * cost[m] for m in add)
    scale = min(1.0, left / total) if total > 0 else 0.0
    grow, per_question = {}, {}
    for model in sorted(add):
        t = pools[model]
        ids = t.index.astype(str)
        capped = set(state.get("capped_questions", {}).get(model, []))
        stop = allocate_blocks(
            t["n"],
            t["c"],
            int(math.floor(add[model] * scale)),
            block,
            decision["knobs"][model],
            ~ids.isin(capped),
        )
        have = (t["n"].to_numpy() // block).astype(int)
        moved = {q: [int(h), int(s)] for q, h, s in zip(ids, have, stop, strict=True) if s > h}
        if moved:
            grow[model], per_question[model] = int(stop.max()), moved
    return grow, per_question


def _tokens_per_sample(out: Path) -> dict[str, float]:
    """Model -> mean generated tokens of one pool sample (the grown strategy's rows only)."""
    samples, counts = read_input(out)
    samples, counts = (t if t is None else t[t[S.STRATEGY].astype(str) == POOL] for t in (samples, counts))
    out_: dict[str, float] = {}
    if samples is not None:
        out_.update(samples.groupby(S.MODEL)[S.COMPLETION_TOKENS].mean().fillna(0.0).to_dict())
    if counts is not None:
        out_.update(counts.groupby(S.MODEL)[S.COMPLETION_TOKENS].mean().fillna(0.0).to_dict())
    return out_


def _default_budgets(profile, request: PlanRequest) -> list[dict[str, float]]:
    """A geometric grid of FLOPs budgets over the measured options (the demo's budget grid)."""
    coster = CostModel(profile.specs, hardware=get_hardware(request.gpu or DEFAULT_HARDWARE))
    space = build_space(profile, coster, verifier=request.verifier, measured_only=True, fit_if_missing=False)
    table = space.table(space.target(None))
    vals = table[S.FLOPS].to_numpy(float)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    lo, hi = float(vals.min()) * 1.05, float(vals.max()) * MAX_EXTRAPOLATION
    return [{"flops": float(v)} for v in np.geomspace(lo, max(hi, lo), DEFAULT_BUDGETS)]
