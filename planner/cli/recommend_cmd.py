"""``ttc recommend``: what to run for a budget and a kind of problem.

The flags build one :class:`planner.request.PlanRequest` (validated once); ``--config
plan.toml`` reads one from a file first, and the flags given override it.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ..constants import COST_KEYS
from ..report.format import UNITS, format_budget, format_cost, format_serving, strict_json
from ..report.what_to_measure import measure_next_lines
from ._common import console, fail, not_none, one_value, parse_pairs, samples_folder
from ._options import (
    AllowSimulated,
    Api,
    AssumeCompletionTokens,
    AssumePromptTokens,
    BudgetFlops,
    BudgetUsd,
    CatalogFile,
    Concurrency,
    Difficulty,
    Gpu,
    Json,
    Method,
    Mix,
    Model,
    ModelSpec,
    NBoot,
    NoCache,
    ProfileAlias,
    Risk,
    Samples,
    SamplesArg,
    Seed,
    Tp,
    Verifier,
)
from ._options_cmd import (
    BudgetEflops,
    BudgetKvBytes,
    BudgetTokens,
    CheckerCost,
    Config,
    ExtraModel,
    LatencyS,
    Objective,
    Storage,
    Trials,
    Wide,
)

_EXAMPLE = "ttc recommend runs/lab --budget-flops 1e13 --difficulty 4 --gpu h100"


def _choice_text(choice: dict) -> str:
    if choice.get("strategy") in ("probe", "early_stop", "oracle_bins"):
        from planner.search.adaptive import describe_policy

        return describe_policy(choice)
    knobs = ",".join(f"{k}={v}" for k, v in choice.get("knobs", {}).items())
    text = f"{choice['model']} ({choice['architecture']}) {choice['strategy']}" + (
        f" {knobs}" if knobs else ""
    )
    if choice.get("verifier") == "exact":
        text += " (exact checker)"
    return text + (f" [simulated: {choice['simulated']}]" if choice.get("simulated") else "")


def recommend(
    samples_arg: SamplesArg = None,
    samples: Samples = None,
    profile: ProfileAlias = None,
    config: Config = None,
    budget_flops: BudgetFlops = None,
    budget_eflops: BudgetEflops = None,
    budget_usd: BudgetUsd = None,
    budget_tokens: BudgetTokens = None,
    latency_s: LatencyS = None,
    budget_kv_bytes: BudgetKvBytes = None,
    difficulty: Difficulty = None,
    mix: Mix = None,
    risk: Risk = None,
    objective: Objective = None,
    gpu: Gpu = None,
    api: Api = None,
    concurrency: Concurrency = None,
    tp: Tp = None,
    catalog_file: CatalogFile = None,
    assume_prompt_tokens: AssumePromptTokens = None,
    assume_completion_tokens: AssumeCompletionTokens = None,
    model: Model = None,
    extra_model: ExtraModel = None,
    model_spec: ModelSpec = None,
    allow_simulated: AllowSimulated = False,
    verifier: Verifier = None,
    checker_cost: CheckerCost = None,
    method: Method = None,
    storage: Storage = None,
    trials: Trials = None,
    seed: Seed = None,
    n_boot: NBoot = None,
    no_cache: NoCache = False,
    as_json: Json = False,
    wide: Wide = False,
) -> None:
    """Recommend a model, strategy and knobs for a per-query budget and a kind of problem:
    the expected accuracy with its interval (measured, fitted or extrapolated), the cost, the
    constraint that binds, and two runners-up with why they lost.

    Example:

        ttc recommend runs/lab --budget-flops 1e13 --difficulty 4 --gpu h100

        ttc recommend runs/lab --budget-tokens 2000 --difficulty auto --json

        ttc recommend runs/lab --budget-flops 1e13 --mix 1:0.2,3:0.5,5:0.3

        ttc recommend runs/math --budget-eflops 1e15 --verifier exact --gpu h100 --tp 2

        ttc recommend --config plan.toml --risk conservative
    """
    folder = samples_folder(samples_arg, samples, profile, required=False)
    budget = _budget(budget_flops, budget_eflops, budget_usd, budget_tokens, latency_s, budget_kv_bytes)
    if not budget and config is None:
        fail(
            "give at least one budget (--budget-flops, --budget-eflops, --budget-usd, --budget-tokens, "
            f"--latency-s); e.g. {_EXAMPLE}"
        )
    if difficulty and mix:
        fail("give --difficulty or --mix, not both")
    flags = {
        "budget": budget or None,
        "difficulty": mix or difficulty,
        "hardware": gpu,
        "api": api,
        "concurrency": concurrency,
        "tp": tp,
        "risk": risk,
        "objective": objective,
        "method": method,
        "storage": storage,
        "n_trials": trials,
        "seed": seed,
        "include_simulated": allow_simulated or None,
        "verifier": verifier,
        "checker_cost": _checker_cost(checker_cost),
        "models": tuple(model) if model else None,
        "extra_models": parse_pairs(extra_model, "--extra-model") or None,
        "model_specs": parse_pairs(model_spec, "--model-spec") or None,
        "catalog_file": str(catalog_file) if catalog_file else None,
        "profile": str(folder) if folder else None,
        "n_boot": n_boot,
        "use_cache": False if no_cache else None,
        "assume_prompt_tokens": assume_prompt_tokens,
        "assume_completion_tokens": assume_completion_tokens,
    }
    rec = _plan(_request(config, flags))
    if as_json:
        typer.echo(strict_json(rec.to_json(), indent=2))
        return
    _print(rec, wide)


def _budget(flops, eflops, usd, tokens, latency_s, kv_bytes) -> dict[str, float]:
    """The per-query budget of the flags given (``--budget-flops`` and ``--budget-usd`` once each:
    other commands repeat them)."""
    pairs = {
        "flops": one_value("--budget-flops", flops),
        "effective_flops": eflops,
        "usd": one_value("--budget-usd", usd),
        "tokens": tokens,
        "latency_s": latency_s,
        "kv_bytes": kv_bytes,
    }
    return not_none(**pairs)


def _request(config: Path | None, flags: dict):
    """The plan request: ``--config`` (if given) with the flags given on top of it."""
    from planner.request import PlanRequest

    if config is not None:
        request = PlanRequest.from_toml(config).replace(**flags)
    else:
        request = PlanRequest(**not_none(**flags))
    if not request.profile:
        fail(f"missing the samples folder (the output of `ttc profile` or `ttc import`); e.g. {_EXAMPLE}")
    return request


def _plan(request):
    """Load the request's samples folder, plan, and say what to measure next."""
    from planner.profile import load_profile
    from planner.recommend import plan
    from planner.what_to_measure import measure_next

    _check_storage(request.storage)
    prof = load_profile(
        request.profile,
        model_specs=request.model_specs,
        n_boot=request.n_boot,
        use_cache=request.use_cache,
        progress=True,
        verifier=request.verifier,
        assumed=request.assumed_lengths,
        require_lengths=request.models or True,
    )
    rec = plan(prof, request)
    measure_next(prof, rec)
    return rec


def _checker_cost(values: list[str] | None) -> dict[str, float] | None:
    """``--checker-cost KEY=VALUE`` pairs as numbers (None when not given)."""
    pairs = parse_pairs(values, "--checker-cost")
    out = {}
    for k, v in pairs.items():
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = math.nan
        if not (math.isfinite(out[k]) and out[k] >= 0):
            fail(f"--checker-cost {k}={v}: the value must be a finite number >= 0")
    return out or None


#: what each accuracy source means, in words
_SOURCE_WORDS = {
    "measured": "measured on the profile",
    "fitted": "fitted: predicted by the curve's law between profiled values",
    "extrapolated": "extrapolated: predicted by a fitted law beyond the profiled range",
}


def _acc(item: dict) -> str:
    lo, hi = item["accuracy_interval"]
    a = item["expected_accuracy"]
    if a is None:
        return "-"
    return f"{a:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{a:.3f}"


def _costs_text(cost: dict) -> str:
    keys = [k for k in COST_KEYS if cost.get(k) is not None]
    return " · ".join(f"{format_cost(k, cost[k])} {_UNIT_WORDS.get(k, k)}".strip() for k in keys)


_UNIT_WORDS = {
    "flops": "FLOPs",
    "effective_flops": "effective FLOPs",
    "tokens": "tokens",
    "latency_s": "",
    "usd": "",
    "kv_bytes": "KV",
}


def _print(rec, wide: bool = False) -> None:
    from rich.table import Table

    d = rec.to_json()
    req = d["request"]
    key = next(iter(req["budget"]), "flops")
    where = req.get("hardware") or req.get("api") or "no GPU"
    budget = ", ".join(f"{k} <= {format_budget(k, v)}" for k, v in req["budget"].items())
    console.print(
        f"[bold]Recommendation[/] · difficulty {req['difficulty']} · {budget} · priced on {where}",
        highlight=False,
    )
    if "lengths" in d.get("assumptions", {}):
        from planner.space.assumed import describe

        console.print(describe(d["assumptions"]["lengths"]), highlight=False, soft_wrap=True)
    if "policy" in d:
        _print_policy(d, key)
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("choice", _choice_text(d["choice"]))
    grid.add_row("accuracy", f"{_acc(d)} (90% interval), {_SOURCE_WORDS.get(d['source'], d['source'])}")
    assumed = d.get("assumptions", {})
    tokens = "measured and ASSUMED tokens" if "lengths" in assumed else "measured tokens"
    grid.add_row("cost per query", _costs_text(d["cost"]) + f" (cost model, from {tokens})")
    binding = d["binding_constraint"]
    why = {"none": "none: the most accurate option fits the budget", "infeasible": "infeasible"}.get(
        binding, f"{binding}: a more accurate option needs more {binding}"
    )
    grid.add_row("binding", why)
    if "serving" in d:
        grid.add_row("served", format_serving(d["serving"]))
    if "checker_cost_per_sample" in assumed:
        cost = assumed["checker_cost_per_sample"]
        grid.add_row("assumption", f"exact checker cost per checked sample: {cost}")

    if rec.search:
        s = rec.search
        grid.add_row(
            "search",
            f"{s['method']}, {s['evaluations']} evaluations of {s['space_size']} options, "
            f"{s['seconds']:.2f} s",
        )
    console.print(grid)
    if d["runners_up"]:
        console.print(_runners_table(d["runners_up"], key, wide))
    if "allocation" in d:
        _print_allocation(d["allocation"])
    if "pareto" in d:
        pt = Table(title="accuracy-cost Pareto front", box=_box(), title_justify="left")
        pt.add_column("option", overflow="fold")
        pt.add_column("accuracy [90%]", no_wrap=True)
        pt.add_column("source", no_wrap=True)
        for k in COST_KEYS if wide else dict.fromkeys([key, "usd"]):
            pt.add_column(UNITS.get(k, k), justify="right", no_wrap=True)
        for r in d["pareto"]:
            costs = [
                format_cost(k, r["cost"].get(k)) for k in (COST_KEYS if wide else dict.fromkeys([key, "usd"]))
            ]
            pt.add_row(_choice_text(r["choice"]), _acc(r), r["source"], *costs)
        console.print(pt)
    for line in measure_next_lines(d["measure_next"]) if "measure_next" in d else ():
        console.print(line, highlight=False, soft_wrap=True)
    for n in rec.notes[:5]:
        console.print(f"note: {n}", style="dim", highlight=False)
    if len(rec.notes) > 5:
        console.print(f"note: ... and {len(rec.notes) - 5} more", style="dim")


def _box():
    from rich import box

    return box.SIMPLE_HEAD


def _runners_table(runners: list[dict], key: str, wide: bool, title: str = "runner-ups"):
    """Runner-ups in as few columns as fit 100: option, accuracy, source, the budgeted cost, why not
    (``wide``: every cost)."""
    from rich.table import Table

    keys = list(COST_KEYS) if wide else [key]
    t = Table(title=title, box=_box(), title_justify="left", pad_edge=False)
    t.add_column("option", overflow="fold", ratio=2)
    t.add_column("accuracy [90%]", no_wrap=True)
    t.add_column("source", no_wrap=True)
    for k in keys:
        t.add_column(UNITS.get(k, k), justify="right", no_wrap=True)
    t.add_column("why not", overflow="fold", ratio=3)
    for r in runners:
        t.add_row(
            _choice_text(r["choice"]),
            _acc(r),
            r["source"],
            *(format_cost(k, r["cost"].get(k)) for k in keys),
            r.get("why_not", ""),
        )
    return t


def _print_policy(d: dict, key: str) -> None:
    """``--difficulty auto``: the adaptive policy in words, its held-out accuracy and costs."""
    p = d["policy"]
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("policy", f"{d['choice']['strategy']}: {p['description']}")
    grid.add_row("accuracy", f"{_acc(d)} (90% interval) on held-out questions: {p['note']}")
    grid.add_row("cost per query", _costs_text(d["cost"]) + " (mean over the held-out questions)")
    if "versus_fixed" in p:
        v = p["versus_fixed"]
        noise = "within noise" if v["within_noise"] else "more than one standard error"
        grid.add_row(
            "vs fixed",
            f"{100 * v['difference']:+.1f} points against the best fixed option ({v['fixed']}): "
            f"{noise} (SE {100 * v['se']:.1f} points)",
        )
    console.print(grid)
    if d["runners_up"]:
        console.print(_runners_table(d["runners_up"], key, False, "other policies"))


def _print_allocation(a: dict) -> None:
    from rich.table import Table

    key = a["budget_key"]
    at = Table(
        title=f"per-difficulty allocation (average {key} <= {format_budget(key, a['average_budget'])})",
        box=_box(),
        title_justify="left",
    )
    for c in ("difficulty", "weight", "option", "accuracy", "source", UNITS.get(key, key)):
        at.add_column(c, overflow="fold" if c == "option" else "ellipsis", no_wrap=c != "option")
    for b in a["bins"]:
        at.add_row(
            b["difficulty"],
            f"{b['weight']:.2f}",
            _choice_text(b["choice"]),
            f"{b['expected_accuracy']:.3f}",
            b["source"],
            format_cost(key, b["cost"].get(key)),
        )
    console.print(at)
    text = (
        f"One option per difficulty (exact DP) reaches {a['expected_accuracy']:.3f} expected accuracy at "
        f"{format_budget(key, a['average_cost'])} on average."
    )
    if a.get("best_single_option"):
        diff = a.get("difference") or {}
        noise = ""
        if diff.get("se") is not None:
            verdict = "within noise" if diff["within_noise"] else "more than one standard error"
            noise = f": {100 * diff['accuracy']:+.1f} points, {verdict} (SE {100 * diff['se']:.1f} points)"
        text += (
            f" The best single option within the same budget, {_choice_text(a['best_single_option'])}, reaches "
            f"{a['best_single_accuracy']:.3f}{noise}."
        )
        ratio = a.get("compute_ratio_at_equal_accuracy")
        if ratio is not None and ratio >= 1:
            text += f" At equal accuracy the allocation needs {ratio:.2f}x less {key} than that option."
        elif ratio is not None:
            text += f" At equal accuracy the allocation needs {1 / ratio:.2f}x more {key} than that option."
    else:
        text += " No single option fits the budget at every difficulty."
    text += f" Optuna's allocation: {a['optuna_expected_accuracy']:.3f} (gap {a['optuna_gap']:.4f} to the exact DP)."
    console.print(text, highlight=False, soft_wrap=False)


def _check_storage(storage: str | None) -> None:
    """Open ``--storage`` before any work: a bad URL, a database that does not answer or a
    journal that cannot be written stops here in one line; a file it creates is removed if
    the command fails."""
    if not storage:
        return
    from planner.search import open_storage

    from ._errors import claim_output

    for prefix in ("journal:", "sqlite:///"):
        if storage.startswith(prefix) and storage.removeprefix(prefix):
            claim_output(Path(storage.removeprefix(prefix)), "file")
    open_storage(storage)


def register(app: typer.Typer) -> None:
    app.command("recommend", short_help="Recommend model, strategy and knobs for a budget.")(recommend)
