"""``ttc recommend``: what to run for a budget and a kind of problem.

The flags build one :class:`planner.request.PlanRequest` (validated once); ``--config
plan.toml`` reads one from a file first, and the flags given override it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..constants import COST_KEYS
from ..report.format import format_cost
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

_EXAMPLE = "ttc recommend runs/lab --budget-flops 1e13 --difficulty 4 --gpu h100"


def _choice_text(choice: dict) -> str:
    if "policy" in choice:
        return f"{choice['policy']}: {choice['params']}"
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
        False, "--json", help="Print the recommendation JSON (DESIGN.md).", rich_help_panel=OUTPUT
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
    from planner.recommend import PlanError, plan
    from planner.request import PlanRequest

    folder = profile_folder(profile, profile_option, required=False)
    pairs = (("flops", budget_flops), ("effective_flops", budget_eflops), ("usd", budget_usd))
    pairs += (("tokens", budget_tokens), ("latency_s", latency_s), ("kv_bytes", budget_kv_bytes))
    budget = {k: v for k, v in pairs if v is not None}
    if not budget and config is None:
        fail(
            "give at least one budget (--budget-flops, --budget-eflops, --budget-usd, --budget-tokens, "
            f"--latency-s); e.g.\n  {_EXAMPLE}"
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
    }
    try:
        if config is not None:
            request = PlanRequest.from_toml(config).replace(**flags)
        else:
            request = PlanRequest(**{k: v for k, v in flags.items() if v is not None})
        if not request.profile:
            fail(
                f"missing the samples folder (the output of `ttc profile` or `ttc import`); e.g.\n  {_EXAMPLE}"
            )
        prof = load_profile(
            request.profile,
            model_specs=request.model_specs,
            n_boot=request.n_boot,
            use_cache=request.use_cache,
            verifier=request.verifier,
        )
        rec = plan(prof, request)
    except PlanError as exc:
        fail(str(exc))
    except ValueError as exc:  # SchemaError, SpecError and bad requests are ValueErrors
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(rec.to_json(), indent=2))
        return
    _print(rec)


def _checker_cost(values: list[str] | None) -> dict[str, float] | None:
    """``--checker-cost KEY=VALUE`` pairs as numbers (None when not given)."""
    pairs = parse_pairs(values, "--checker-cost")
    out = {}
    for k, v in pairs.items():
        try:
            out[k] = float(v)
        except ValueError:
            fail(f"--checker-cost {k}={v}: the value must be a number")
    return out or None


def _print(rec) -> None:
    from rich.table import Table

    d = rec.to_json()
    req = d["request"]
    where = req.get("hardware") or req.get("api") or "?"
    budget = ", ".join(f"{k} <= {format_cost(k, v)}" for k, v in req["budget"].items())
    lo, hi = d["accuracy_interval"]
    t = Table(title=f"Recommendation · {budget} · difficulty {req['difficulty']} · {where}", show_header=True)
    t.add_column("")
    t.add_column("option")
    t.add_column("expected accuracy", justify="right")
    t.add_column("source")
    for k in COST_KEYS:
        t.add_column(k, justify="right")
    t.add_column("why not")

    def add(label, item, why=""):
        a = item["expected_accuracy"]
        ilo, ihi = item["accuracy_interval"]
        cost = item["cost"]
        costs = (format_cost(k, cost.get(k)) for k in COST_KEYS)
        t.add_row(
            label,
            _choice_text(item["choice"]),
            f"{a:.3f} [{ilo:.3f}, {ihi:.3f}]",
            item["source"],
            *costs,
            why,
        )

    add("choice", d)
    for i, r in enumerate(d["runners_up"], 1):
        add(f"runner-up {i}", r, r["why_not"])
    console.print(t)
    console.print(
        f"binding constraint: [bold]{d['binding_constraint']}[/]   expected accuracy {d['expected_accuracy']:.3f} "
        f"(interval {lo:.3f}-{hi:.3f}, {d['source']})",
        highlight=False,
    )
    if "serving" in d:
        console.print(_serving_text(d["serving"]), style="dim", highlight=False)
    if "assumptions" in d:
        cost = d["assumptions"]["checker_cost_per_sample"]
        console.print(
            f"assumption: exact checker cost per checked sample {cost}", style="dim", highlight=False
        )
    if rec.search:
        s = rec.search
        console.print(
            f"search: {s['method']}, {s['evaluations']} evaluations of {s['space_size']} options, {s['seconds']:.2f} s",
            style="dim",
            highlight=False,
        )
    if "allocation" in d:
        _print_allocation(d["allocation"])
    if "pareto" in d:
        pt = Table(title="accuracy-cost Pareto front")
        for c in ("option", "expected accuracy", "source", "flops", "usd"):
            pt.add_column(c)
        for r in d["pareto"]:
            pt.add_row(
                _choice_text(r["choice"]),
                f"{r['expected_accuracy']:.3f}",
                r["source"],
                format_cost("flops", r["cost"]["flops"]),
                format_cost("usd", r["cost"]["usd"]),
            )
        console.print(pt)
    if "policy" in d:
        console.print(f"adaptive policy ({d['policy']['note']})", style="dim")
    for n in rec.notes[:5]:
        console.print(f"note: {n}", style="dim", highlight=False)
    if len(rec.notes) > 5:
        console.print(f"note: ... and {len(rec.notes) - 5} more", style="dim")


def _serving_text(serving: dict) -> str:
    """``served on h100 x 2 (tp auto), 64 sequences per step, prefix sharing``."""
    where = serving.get("api") or serving.get("gpu") or "?"
    if "gpu" in serving and isinstance(serving.get("tp"), int):
        where += f" x {serving['tp']} (tp {serving.get('tp_source', 'given')})"
    sharing = "prefix sharing" if serving.get("prefix_sharing") else "no prefix sharing"
    return f"served on {where}, {serving.get('concurrency')} sequences per step, {sharing}"


def _print_allocation(a: dict) -> None:
    from rich.table import Table

    key = a["budget_key"]
    at = Table(title=f"per-difficulty allocation (average {key} <= {format_cost(key, a['average_budget'])})")
    for c in ("difficulty", "weight", "option", "expected accuracy", "source", key):
        at.add_column(c)
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
    console.print(
        f"allocation: {a['expected_accuracy']:.3f} at {format_cost(key, a['average_cost'])} per query "
        f"(Optuna {a['optuna_expected_accuracy']:.3f}, gap {a['optuna_gap']:.4f}); best single option "
        f"{a['best_single_option']}: {a['best_single_accuracy']}; compute ratio at equal accuracy "
        f"{a['compute_ratio_at_equal_accuracy']}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("recommend", short_help="Recommend model, strategy and knobs for a budget.")(recommend)
