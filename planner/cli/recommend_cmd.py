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
from ._common import (
    BUDGET,
    INPUT,
    MODELS,
    OUTPUT,
    PRICING,
    SEARCH,
    TARGET,
    console,
    fail,
    parse_pairs,
    profile_folder,
)
from ._options import AssumeCompletionTokens, AssumePromptTokens

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
    profile: Path = typer.Argument(
        None, help="Samples folder (from `ttc profile` or `ttc import`).", show_default=False
    ),
    profile_option: Path = typer.Option(None, "--profile", "-p", hidden=True, help="Same as the argument."),
    config: Path = typer.Option(
        None, "--config", help="A plan request in TOML (flags override it).", rich_help_panel=INPUT
    ),
    budget_flops: float = typer.Option(
        None, "--budget-flops", help="FLOPs per query.", rich_help_panel=BUDGET
    ),
    budget_eflops: float = typer.Option(
        None,
        "--budget-eflops",
        help="Effective FLOPs per query (Kinetics: FLOPs + bytes moved x the GPU's FLOP/byte; needs --gpu).",
        rich_help_panel=BUDGET,
    ),
    budget_usd: float = typer.Option(
        None, "--budget-usd", help="US$ per query (GPU time on --gpu, or --api bill).", rich_help_panel=BUDGET
    ),
    budget_tokens: float = typer.Option(
        None, "--budget-tokens", help="Prompt + generated tokens per query.", rich_help_panel=BUDGET
    ),
    latency_s: float = typer.Option(
        None, "--latency-s", help="Roofline latency per query on --gpu, seconds.", rich_help_panel=BUDGET
    ),
    budget_kv_bytes: float = typer.Option(
        None, "--budget-kv-bytes", help="Peak KV-cache bytes of one query.", rich_help_panel=BUDGET
    ),
    difficulty: str = typer.Option(
        None,
        "--difficulty",
        "-d",
        help="A difficulty label, `all` (default) or `auto` (unknown: adaptive policy).",
        rich_help_panel=TARGET,
    ),
    mix: str = typer.Option(
        None,
        "--mix",
        help="Difficulty mix LABEL:WEIGHT,... (adds a per-difficulty allocation).",
        rich_help_panel=TARGET,
    ),
    risk: str = typer.Option(
        None,
        "--risk",
        help="expected (default) | conservative (maximize the interval's lower end).",
        rich_help_panel=TARGET,
    ),
    objective: str = typer.Option(
        None,
        "--objective",
        help="accuracy (default) | pareto (the accuracy-cost front).",
        rich_help_panel=TARGET,
    ),
    gpu: str = typer.Option(
        None,
        "--gpu",
        "-g",
        help="Accelerator from the catalog (default h100 unless --api).",
        rich_help_panel=PRICING,
    ),
    api: str = typer.Option(
        None, "--api", help="Price on a hosted API instead (deepseek-r1, o1, o3...).", rich_help_panel=PRICING
    ),
    concurrency: int = typer.Option(
        None,
        "--concurrency",
        "-c",
        min=1,
        help="Sequences one replica decodes per step, as in `ttc costs` (default 64; a pool of n fills n).",
        rich_help_panel=PRICING,
    ),
    tp: int = typer.Option(
        None,
        "--tp",
        min=1,
        help="GPUs per replica (default: the fewest that hold each option's weights and KV).",
        rich_help_panel=PRICING,
    ),
    catalog_file: Path = typer.Option(
        None, "--catalog-file", help="User TOML catalog.", rich_help_panel=PRICING
    ),
    assume_prompt_tokens: AssumePromptTokens = None,
    assume_completion_tokens: AssumeCompletionTokens = None,
    model: list[str] = typer.Option(
        None, "--model", "-m", help="Consider only this model (repeatable).", rich_help_panel=MODELS
    ),
    extra_model: list[str] = typer.Option(
        None,
        "--extra-model",
        help="Unprofiled model of a profiled family: NAME=CATALOG_NAME_OR_CONFIG (repeat).",
        rich_help_panel=MODELS,
    ),
    model_spec: list[str] = typer.Option(
        None,
        "--model-spec",
        help="Spec of a profiled model: NAME=CATALOG_NAME_OR_CONFIG, or its numbers "
        "NAME=params:8e9,layers:32,kv_heads:8,head_dim:128 (imported samples).",
        rich_help_panel=MODELS,
    ),
    allow_simulated: bool = typer.Option(
        False,
        "--allow-simulated",
        help="Also consider strategies scored by an oracle or simulated verifier.",
        rich_help_panel=MODELS,
    ),
    verifier: str = typer.Option(
        None,
        "--verifier",
        help="exact: the deployment checks answers exactly (answer checker, unit tests), so best-of-n "
        "`verified` (accuracy pass@n) is offered. none (default): best-of-n ranks by reward or log-prob.",
        rich_help_panel=MODELS,
    ),
    checker_cost: list[str] = typer.Option(
        None,
        "--checker-cost",
        help="Cost of the exact checker per checked sample, KEY=VALUE (flops, usd, latency_s...; "
        "repeat). Default: free, stated as an assumption.",
        rich_help_panel=MODELS,
    ),
    method: str = typer.Option(
        None, "--method", help="auto (default) | exhaustive | optuna.", rich_help_panel=SEARCH
    ),
    storage: str = typer.Option(
        None,
        "--storage",
        help="Optuna storage shared by workers: sqlite:///x.db, postgresql://..., journal:PATH.",
        rich_help_panel=SEARCH,
    ),
    trials: int = typer.Option(
        None, "--trials", min=1, help="Optuna trials per worker (default 60).", rich_help_panel=SEARCH
    ),
    seed: int = typer.Option(
        None,
        "--seed",
        help="Seed of samplers and splits (give workers different seeds).",
        rich_help_panel=SEARCH,
    ),
    n_boot: int = typer.Option(
        None,
        "--n-boot",
        min=0,
        help="Question-bootstrap replicates of curves and laws (default 200).",
        rich_help_panel=SEARCH,
    ),
    no_cache: bool = typer.Option(
        False,
        "--no-cache",
        help="Recompute curves and laws (do not read or write the cache).",
        rich_help_panel=SEARCH,
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the recommendation JSON (docs/design.md).", rich_help_panel=OUTPUT
    ),
    wide: bool = typer.Option(
        False,
        "--wide",
        help="Every cost column in the tables (wider than 100 columns).",
        rich_help_panel=OUTPUT,
    ),
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
    from planner.profile import load_profile
    from planner.recommend import plan
    from planner.request import PlanRequest
    from planner.what_to_measure import measure_next

    folder = profile_folder(profile, profile_option, required=False)
    pairs = (("flops", budget_flops), ("effective_flops", budget_eflops), ("usd", budget_usd))
    pairs += (("tokens", budget_tokens), ("latency_s", latency_s), ("kv_bytes", budget_kv_bytes))
    budget = {k: v for k, v in pairs if v is not None}
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
    if config is not None:
        request = PlanRequest.from_toml(config).replace(**flags)
    else:
        request = PlanRequest(**{k: v for k, v in flags.items() if v is not None})
    if not request.profile:
        fail(f"missing the samples folder (the output of `ttc profile` or `ttc import`); e.g. {_EXAMPLE}")
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
    if as_json:
        typer.echo(strict_json(rec.to_json(), indent=2))
        return
    _print(rec, wide)


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
