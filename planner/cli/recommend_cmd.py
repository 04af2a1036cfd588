"""``ttc recommend`` (what to run for a budget) and ``ttc evaluate`` (is the planner right?)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from ..report.format import format_cost
from ._common import console, fail

_EXAMPLE = "ttc recommend --profile runs/lab --budget-flops 1e13 --difficulty 4 --gpu h100"


def _choice_text(choice: dict) -> str:
    if "policy" in choice:
        return f"{choice['policy']}: {choice['params']}"
    knobs = ",".join(f"{k}={v}" for k, v in choice.get("knobs", {}).items())
    text = f"{choice['model']} ({choice['architecture']}) {choice['strategy']}" + (
        f" {knobs}" if knobs else ""
    )
    return text + (f" [simulated: {choice['simulated']}]" if choice.get("simulated") else "")


def _parse_pairs(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for v in values or []:
        name, sep, spec = v.partition("=")
        if not sep or not name or not spec:
            fail(f"{what} must look like NAME=VALUE, got {v!r}")
        out[name.strip()] = spec.strip()
    return out


def recommend(
    profile: Path = typer.Option(
        ..., "--profile", "-p", help="Samples folder (from `ttc profile` or `ttc import`)."
    ),
    budget_flops: float = typer.Option(None, "--budget-flops", help="FLOPs per query."),
    budget_usd: float = typer.Option(
        None, "--budget-usd", help="US$ per query (GPU time on --gpu, or --api bill)."
    ),
    budget_tokens: float = typer.Option(None, "--budget-tokens", help="Prompt + generated tokens per query."),
    latency_s: float = typer.Option(
        None, "--latency-s", help="Roofline latency per query on --gpu, seconds."
    ),
    budget_kv_bytes: float = typer.Option(None, "--budget-kv-bytes", help="KV-cache bytes at --concurrency."),
    gpu: str = typer.Option(
        None, "--gpu", "-g", help="Accelerator from the catalog (default h100 unless --api)."
    ),
    api: str = typer.Option(None, "--api", help="Price on a hosted API instead (deepseek-r1, o1, o3...)."),
    difficulty: str = typer.Option(
        None,
        "--difficulty",
        "-d",
        help="A difficulty label, `all` (default) or `auto` (unknown: adaptive policy).",
    ),
    mix: str = typer.Option(
        None, "--mix", help="Difficulty mix LABEL:WEIGHT,... (adds a per-difficulty allocation)."
    ),
    risk: str = typer.Option(
        "expected", "--risk", help="expected | conservative (maximize the interval's lower end)."
    ),
    objective: str = typer.Option(
        "accuracy", "--objective", help="accuracy | pareto (the accuracy-cost front)."
    ),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, help="Queries served together."),
    tp: int = typer.Option(1, "--tp", min=1, help="GPUs per replica (tensor parallel)."),
    method: str = typer.Option("auto", "--method", help="auto | exhaustive | optuna."),
    storage: str = typer.Option(
        None,
        "--storage",
        help="Optuna storage shared by workers: sqlite:///x.db, postgresql://..., journal:PATH.",
    ),
    trials: int = typer.Option(60, "--trials", min=1, help="Optuna trials (per worker)."),
    seed: int = typer.Option(0, "--seed", help="Seed of samplers and splits (give workers different seeds)."),
    allow_simulated: bool = typer.Option(
        False, "--allow-simulated", help="Also consider strategies scored by an oracle or simulated verifier."
    ),
    model: list[str] = typer.Option(None, "--model", "-m", help="Consider only this model (repeatable)."),
    extra_model: list[str] = typer.Option(
        None,
        "--extra-model",
        help="Unprofiled model of a profiled family: NAME=CATALOG_NAME_OR_CONFIG (repeat).",
    ),
    model_spec: list[str] = typer.Option(
        None, "--model-spec", help="Spec of a profiled model: NAME=CATALOG_NAME_OR_CONFIG (imported samples)."
    ),
    catalog_file: Path = typer.Option(None, "--catalog-file", help="User TOML catalog."),
    n_boot: int = typer.Option(
        200, "--n-boot", min=0, help="Question-bootstrap replicates of curves and laws."
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Recompute curves and laws (do not read or write the cache)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the recommendation JSON (DESIGN.md)."),
) -> None:
    """Recommend a model, strategy and knobs for a per-query budget and a kind of problem:
    the expected accuracy with its interval (measured, fitted or extrapolated), the cost, the
    constraint that binds, and two runners-up with why they lost.

    Example:

        ttc recommend --profile runs/lab --budget-flops 1e13 --difficulty 4 --gpu h100

        ttc recommend --profile runs/lab --budget-tokens 2000 --difficulty auto --json

        ttc recommend --profile runs/lab --budget-flops 1e13 --mix 1:0.2,3:0.5,5:0.3
    """
    from planner.profile import load_profile
    from planner.recommend import PlanError, family_of, plan
    from planner.space.option_space import ExtraModel

    budget = {k: v for k, v in (("flops", budget_flops), ("usd", budget_usd), ("tokens", budget_tokens),
                                 ("latency_s", latency_s), ("kv_bytes", budget_kv_bytes)) if v is not None}  # fmt: skip
    if not budget:
        fail(
            f"give at least one budget (--budget-flops, --budget-usd, --budget-tokens, --latency-s); e.g.\n  {_EXAMPLE}"
        )
    if difficulty and mix:
        fail("give --difficulty or --mix, not both")
    if gpu and api:
        fail("give --gpu or --api, not both")
    if risk not in ("expected", "conservative"):
        fail(f"--risk must be expected or conservative, got {risk!r}")
    if objective not in ("accuracy", "pareto"):
        fail(f"--objective must be accuracy or pareto, got {objective!r}")
    hardware = gpu or (None if api else "h100")
    try:
        prof = load_profile(
            profile,
            model_specs=_parse_pairs(model_spec, "--model-spec"),
            n_boot=n_boot,
            use_cache=not no_cache,
        )
        extras, extra_specs = _extra_models(
            _parse_pairs(extra_model, "--extra-model"), prof, family_of, ExtraModel
        )
        rec = plan(
            prof, budget, difficulty=mix or difficulty, hardware=hardware, api=api, concurrency=concurrency, tp=tp,
            risk=risk, objective=objective, method=method, storage=storage, n_trials=trials, seed=seed,
            include_simulated=allow_simulated, extra_models=extras, extra_specs=extra_specs, models=model or None,
            catalog_file=str(catalog_file) if catalog_file else None,
        )  # fmt: skip
    except PlanError as exc:
        fail(str(exc))
    except ValueError as exc:  # SchemaError, SpecError and bad requests are ValueErrors
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(rec.to_json(), indent=2))
        return
    _print(rec)


def _extra_models(pairs: dict[str, str], prof, family_of, ExtraModel):
    from planner.costs import ModelSpec

    extras, specs = [], {}
    for name, ref in pairs.items():
        spec = ModelSpec.resolve(ref)
        family = family_of(name)
        if family not in {family_of(m) for m in prof.models}:
            raise ValueError(
                f"--extra-model {name}: family {family!r} has no profiled model (profiled: {', '.join(prof.models)})"
            )
        extras.append(ExtraModel(name, family, float(spec.params_active), spec.architecture))
        specs[name] = spec
    return extras, specs


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
    for k in ("flops", "tokens", "latency_s", "usd", "kv_bytes"):
        t.add_column(k, justify="right")
    t.add_column("why not")

    def add(label, item, why=""):
        a = item["expected_accuracy"]
        ilo, ihi = item["accuracy_interval"]
        cost = item["cost"]
        t.add_row(label, _choice_text(item["choice"]), f"{a:.3f} [{ilo:.3f}, {ihi:.3f}]", item["source"],
                  *(format_cost(k, cost.get(k)) for k in ("flops", "tokens", "latency_s", "usd", "kv_bytes")), why)  # fmt: skip

    add("choice", d)
    for i, r in enumerate(d["runners_up"], 1):
        add(f"runner-up {i}", r, r["why_not"])
    console.print(t)
    console.print(f"binding constraint: [bold]{d['binding_constraint']}[/]   expected accuracy {d['expected_accuracy']:.3f} "
                  f"(interval {lo:.3f}-{hi:.3f}, {d['source']})", highlight=False)  # fmt: skip
    if rec.search:
        s = rec.search
        console.print(f"search: {s['method']}, {s['evaluations']} evaluations of {s['space_size']} options, "
                      f"{s['seconds']:.2f} s", style="dim", highlight=False)  # fmt: skip
    if "allocation" in d:
        a = d["allocation"]
        at = Table(
            title=f"per-difficulty allocation (average {a['budget_key']} <= {format_cost(a['budget_key'], a['average_budget'])})"
        )
        for c in ("difficulty", "weight", "option", "expected accuracy", "source", a["budget_key"]):
            at.add_column(c)
        for b in a["bins"]:
            at.add_row(b["difficulty"], f"{b['weight']:.2f}", _choice_text(b["choice"]), f"{b['expected_accuracy']:.3f}",
                       b["source"], format_cost(a["budget_key"], b["cost"].get(a["budget_key"])))  # fmt: skip
        console.print(at)
        console.print(
            f"allocation: {a['expected_accuracy']:.3f} at {format_cost(a['budget_key'], a['average_cost'])} per query "
            f"(Optuna {a['optuna_expected_accuracy']:.3f}, gap {a['optuna_gap']:.4f}); best single option "
            f"{a['best_single_option']}: {a['best_single_accuracy']}; compute ratio at equal accuracy "
            f"{a['compute_ratio_at_equal_accuracy']}", highlight=False,
        )  # fmt: skip
    if "pareto" in d:
        pt = Table(title="accuracy-cost Pareto front")
        for c in ("option", "expected accuracy", "source", "flops", "usd"):
            pt.add_column(c)
        for r in d["pareto"]:
            pt.add_row(_choice_text(r["choice"]), f"{r['expected_accuracy']:.3f}", r["source"],
                       format_cost("flops", r["cost"]["flops"]), format_cost("usd", r["cost"]["usd"]))  # fmt: skip
        console.print(pt)
    if "policy" in d:
        console.print(f"adaptive policy ({d['policy']['note']})", style="dim")
    for n in rec.notes[:5]:
        console.print(f"note: {n}", style="dim", highlight=False)
    if len(rec.notes) > 5:
        console.print(f"note: ... and {len(rec.notes) - 5} more", style="dim")


def evaluate(
    profile: Path = typer.Option(..., "--profile", "-p", help="Samples folder."),
    cost_key: str = typer.Option(
        "flops", "--budget-key", help="Budgeted cost: flops, tokens, usd, latency_s."
    ),
    budgets: str = typer.Option(
        None, "--budgets", help="Comma-separated budgets (default: six from cheap to dear)."
    ),
    gpu: str = typer.Option(None, "--gpu", "-g", help="Accelerator (default h100 unless --api)."),
    api: str = typer.Option(None, "--api", help="Hosted API prices instead."),
    risk: str = typer.Option("expected", "--risk", help="expected | conservative."),
    seed: int = typer.Option(0, "--seed", help="Seed of the question split."),
    allow_simulated: bool = typer.Option(
        False, "--allow-simulated", help="Let the planner use simulated scorers."
    ),
    model_spec: list[str] = typer.Option(
        None, "--model-spec", help="NAME=CATALOG_NAME_OR_CONFIG (imported samples)."
    ),
    n_boot: int = typer.Option(200, "--n-boot", min=0, help="Question-bootstrap replicates of the curves."),
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON records."),
) -> None:
    """Check the planner on held-out questions: plan on a seeded half of the questions,
    measure the recommendations' accuracy and cost on the other half, and report the regret
    against the hindsight-best option and fixed baselines at several budgets.

    Example:

        ttc evaluate --profile runs/lab --budget-key flops
    """
    from planner.holdout import evaluate_profile
    from planner.profile import load_profile

    try:
        values = [float(v) for v in budgets.split(",")] if budgets else None
    except ValueError:
        fail(f"--budgets must be comma-separated numbers, got {budgets!r}")
    try:
        prof = load_profile(profile, model_specs=_parse_pairs(model_spec, "--model-spec"), n_boot=n_boot)
        table = evaluate_profile(prof, values, cost_key=cost_key, hardware=gpu or (None if api else "h100"), api=api,
                                 risk=risk, seed=seed, include_simulated=allow_simulated)  # fmt: skip
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(table.to_json(orient="records", indent=2))
        return
    from rich.table import Table

    t = Table(title=f"ttc evaluate · plan on half the questions, realized on the other half (seed {seed})")
    for c in table.columns:
        t.add_column(c, justify="right" if table[c].dtype.kind in "fi" else "left")
    for _, r in table.iterrows():
        t.add_row(*(format_cost(cost_key, v) if c.startswith("budget_") or c == "realized_cost"
                    else (f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else ("-" if isinstance(v, float) else str(v)))
                    for c, v in r.items()))  # fmt: skip
    console.print(t)
    if "regret" in table and table["regret"].notna().any():
        console.print(f"mean regret vs hindsight best: {table['regret'].mean():.4f} accuracy "
                      f"(max {table['regret'].max():.4f})", highlight=False)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("recommend", short_help="Recommend model, strategy and knobs for a budget.")(recommend)
    app.command("evaluate", short_help="Plan on half the questions, measure on the other half.")(evaluate)
