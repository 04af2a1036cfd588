"""The command-line options of several commands, each declared once as a typer ``Annotated`` type.

A command takes one by annotating a parameter with it (``prompt: AssumePromptTokens = None``),
so its flag, help text, bounds and help panel are the same everywhere; the parameter's default
is the command's. Options of one command live in :mod:`planner.cli._options_cmd` and
:mod:`planner.cli._options_profile`.
``tests/planner/test_cli_vocabulary.py`` checks that no flag is declared anywhere else, or twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import (
    BUDGET,
    FITTING,
    INPUT,
    MODELS,
    OUTPUT,
    PRICING,
    RUN,
    SEARCH,
    STRATEGIES,
    TARGET,
    fail,
)

# typer reads the annotations at run time, on Python 3.10 too: Optional[X], not X | None
# ruff: noqa: UP045


def _at_least_zero(flag: str, what: str):
    """A typer callback refusing a negative value in one line naming ``flag``."""

    def check(value):
        if value is not None and value < 0:
            fail(f"{flag} must be >= 0 ({what}), got {value}")
        return value

    return check


def _coverage(value: float | None) -> float | None:
    if value is not None and not 0 < value < 1:
        fail(f"--level must be a coverage in (0, 1), e.g. 0.9, got {value:g}")
    return value


# input: the samples folder --------------------------------------------------------------

SamplesArg = Annotated[
    Optional[Path],
    typer.Argument(
        metavar="SAMPLES",
        help="Samples folder (from `ttc profile` or `ttc import`); `ttc fit` and `ttc forecast` also "
        "read a JSONL/CSV/Parquet file of samples or counts.",
        show_default=False,
    ),
]
Samples = Annotated[
    Optional[Path],
    typer.Option(
        "--samples",
        metavar="SAMPLES",
        help="The samples folder, when not given as the argument.",
        rich_help_panel=INPUT,
        show_default=False,
    ),
]
ProfileAlias = Annotated[
    Optional[Path],
    typer.Option(
        "--profile",
        "-p",
        metavar="SAMPLES",
        hidden=True,
        help="--profile is an alias of --samples, kept for compatibility.",
    ),
]
Out = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="Where the command writes: its output folder (created; `ttc profile`: rerun to resume), "
        "or the HTML file of `ttc report`.",
        rich_help_panel=OUTPUT,
    ),
]

# models and strategies ------------------------------------------------------------------

Model = Annotated[
    Optional[list[str]],
    typer.Option(
        "--model",
        "-m",
        metavar="MODEL",
        help="A model: to profile (lab name such as lab-s, checkpoint folder, vllm:PATH, "
        "openai:URL/MODEL; NAME@attn_blocks=K decodes with block top-k sparse attention, K blocks of "
        "16 tokens + the recent one; replay: a model of --source, default all), to price in `ttc costs` "
        "(catalog name, config.json, or NAME=params:8e9,layers:32,kv_heads:8,head_dim:128), or the "
        "only ones `ttc recommend` considers. Repeatable (`ttc costs`: one).",
        rich_help_panel=MODELS,
        show_default=False,
    ),
]
ModelSpec = Annotated[
    Optional[list[str]],
    typer.Option(
        "--model-spec",
        metavar="NAME=SPEC",
        help="Spec of a model without a config (imported samples, or a model no catalog knows): "
        "NAME=CATALOG_NAME_OR_CONFIG, or its numbers NAME=params:8e9,layers:32,kv_heads:8,head_dim:128 "
        "(optional: active_params, experts, experts_per_token, heads, hidden, context, dtype). Repeatable.",
        rich_help_panel=MODELS,
        show_default=False,
    ),
]
Verifier = Annotated[
    Optional[str],
    typer.Option(
        "--verifier",
        help="exact: the deployment checks answers exactly (answer checker, unit tests), so best-of-n "
        "`verified` (accuracy pass@n) is offered. none (default): best-of-n ranks by reward or log-prob.",
        rich_help_panel=MODELS,
        show_default=False,
    ),
]
AllowSimulated = Annotated[
    bool,
    typer.Option(
        "--allow-simulated",
        help="Also consider strategies scored by an oracle or simulated verifier.",
        rich_help_panel=MODELS,
    ),
]
Strategy = Annotated[
    list[str],
    typer.Option(
        "--strategy",
        "-s",
        metavar="NAME:KNOBS",
        help="NAME:key=value,... e.g. pool:n=16, beam:width=4,expansions=2,steps=8 "
        "(`ttc profile`: repeatable, see the list above; `ttc costs`: one).",
        rich_help_panel=STRATEGIES,
    ),
]

# budgets (per query) ----------------------------------------------------------------------

BudgetFlops = Annotated[
    Optional[list[float]],
    typer.Option(
        "--budget-flops",
        metavar="FLOPS",
        help="FLOPs per query (`ttc profile --adaptive`: a budget to plan for, repeatable).",
        rich_help_panel=BUDGET,
        show_default=False,
    ),
]
BudgetUsd = Annotated[
    Optional[list[float]],
    typer.Option(
        "--budget-usd",
        metavar="USD",
        help="US$ per query: GPU time on --gpu, or the --api bill (`ttc profile --adaptive`: a budget "
        "to plan for, repeatable).",
        rich_help_panel=BUDGET,
        show_default=False,
    ),
]

# what to plan for -------------------------------------------------------------------------

Difficulty = Annotated[
    Optional[str],
    typer.Option(
        "--difficulty",
        "-d",
        help="The difficulty to plan for: a label, `all` (default) or `auto` (unknown: adaptive policy).",
        rich_help_panel=TARGET,
        show_default=False,
    ),
]
Mix = Annotated[
    Optional[str],
    typer.Option(
        "--mix",
        help="Difficulty mix LABEL:WEIGHT,... (adds a per-difficulty allocation; default: every question).",
        rich_help_panel=TARGET,
        show_default=False,
    ),
]
Risk = Annotated[
    Optional[str],
    typer.Option(
        "--risk",
        help="expected (default) | conservative (maximize the interval's lower end).",
        rich_help_panel=TARGET,
        show_default=False,
    ),
]
BudgetKey = Annotated[
    str,
    typer.Option(
        "--budget-key",
        help="Budgeted cost: flops, effective_flops, tokens, usd, latency_s.",
        rich_help_panel=TARGET,
    ),
]
Budgets = Annotated[
    Optional[str],
    typer.Option(
        "--budgets",
        metavar="B1,B2,...",
        help="Comma-separated per-query budgets of --budget-key (default: a range from cheap to dear).",
        rich_help_panel=TARGET,
        show_default=False,
    ),
]

# pricing ----------------------------------------------------------------------------------

Gpu = Annotated[
    Optional[str],
    typer.Option(
        "--gpu",
        "-g",
        help="Accelerator from the catalog to price on (h100, a100, h200, l4, mi300x, b200, cpu; "
        "default h100 unless --api); a plan request and its JSON call it `hardware`.",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]
Api = Annotated[
    Optional[str],
    typer.Option(
        "--api",
        help="Price on a hosted API (deepseek-r1, o1, o3, o3-mini, o4-mini) instead of GPU time "
        "(`ttc costs`: as well).",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]
Concurrency = Annotated[
    Optional[int],
    typer.Option(
        "--concurrency",
        "-c",
        min=1,
        help="Sequences one replica decodes per step (default 64; a pool of n fills n of them). "
        "Weights are read once per step for all of them, KV per sequence.",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]
Tp = Annotated[
    Optional[int],
    typer.Option(
        "--tp",
        min=1,
        help="GPUs per replica, tensor parallel (default: the fewest that hold the weights and KV).",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]
Qps = Annotated[
    Optional[float],
    typer.Option(
        "--qps",
        help="Plan capacity too: GPUs for this many queries (executions) per second.",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]
CatalogFile = Annotated[
    Optional[Path],
    typer.Option(
        "--catalog-file",
        help="User TOML catalog ([hardware.X], [api.X], [models.X]).",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]

_ASSUMED = "only for questions whose data has no lengths (measured ones are kept); the output says so"

AssumePromptTokens = Annotated[
    Optional[int],
    typer.Option(
        "--assume-prompt-tokens",
        min=1,
        metavar="N",
        help=f"ASSUME N prompt tokens per sample, {_ASSUMED}.",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]
AssumeCompletionTokens = Annotated[
    Optional[int],
    typer.Option(
        "--assume-completion-tokens",
        min=1,
        metavar="N",
        help=f"ASSUME N generated tokens per sample, {_ASSUMED}.",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]

# curves and laws, search, run ---------------------------------------------------------------

NBoot = Annotated[
    Optional[int],
    typer.Option(
        "--n-boot",
        help="Question-bootstrap replicates of curves and laws (default 200; 0: no intervals).",
        rich_help_panel=FITTING,
        callback=_at_least_zero("--n-boot", "0: no intervals"),
        show_default=False,
    ),
]
Level = Annotated[
    float,
    typer.Option("--level", help="Coverage of the intervals.", rich_help_panel=FITTING, callback=_coverage),
]
NoCache = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Recompute curves and laws: do not read or write the fit cache (.ttc-cache/ in the samples "
        "folder, or in --out for a file; $TTC_CACHE_DIR/fits when set).",
        rich_help_panel=FITTING,
    ),
]
Method = Annotated[
    Optional[str],
    typer.Option(
        "--method",
        help="How the command computes: `ttc recommend` searches auto (default) | exhaustive | optuna; "
        "`ttc forecast` extrapolates auto | posterior | gmodel | logitnormal | law (see its help).",
        rich_help_panel=SEARCH,
        show_default=False,
    ),
]
Splits = Annotated[
    int,
    typer.Option(
        "--splits",
        min=1,
        help="Random half splits of the questions (plan on one half, measure on the other) to average over.",
        rich_help_panel=SEARCH,
    ),
]
Seed = Annotated[
    Optional[int],
    typer.Option(
        "--seed",
        help="Seed of every random choice (sampling, question splits, bootstrap, samplers); give "
        "parallel workers different seeds. Default 0.",
        rich_help_panel=RUN,
        show_default=False,
    ),
]

# output -------------------------------------------------------------------------------------

Json = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print strict JSON (no NaN: a missing number is null) instead of tables.",
        rich_help_panel=OUTPUT,
    ),
]


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"ttc-planner {version('ttc-planner')}")
        raise typer.Exit()


Version = Annotated[
    bool,
    typer.Option(
        "--version",
        help="Print ttc-planner's version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
]
