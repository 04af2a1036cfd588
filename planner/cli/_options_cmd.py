"""The options of one command each (``ttc costs``, ``fit``, ``forecast``, ``import``,
``recommend``, ``report``), declared once as typer ``Annotated`` types (see
:mod:`planner.cli._options`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import BUDGET, EVAL_LOGS, FITTING, INPUT, MODELS, OUTPUT, PRICING, SEARCH, TARGET, WORKLOAD

# ruff: noqa: UP045 - typer reads the annotations at run time, on Python 3.10 too

# ttc costs ----------------------------------------------------------------------------------------

PromptTokens = Annotated[
    int,
    typer.Option(
        "--prompt-tokens",
        "-p",
        min=0,
        help="Prompt tokens P (default 0: the generated tokens only).",
        rich_help_panel=WORKLOAD,
    ),
]
GenTokens = Annotated[
    str,
    typer.Option(
        "--gen-tokens",
        "-n",
        help="Generated tokens per chain G (sample, beam solution, attempt): a number (1e6 works), "
        "per-sample lengths 100,10000, @FILE (one per line), or mean=..,mean_sq=..,max=..",
        rich_help_panel=WORKLOAD,
        show_default=False,
    ),
]
PrefixSharing = Annotated[
    bool,
    typer.Option(
        "--prefix-sharing/--no-prefix-sharing",
        help="The backend shares common prefixes (vLLM/SGLang) or not (HF generate).",
        rich_help_panel=WORKLOAD,
    ),
]
Dtype = Annotated[
    Optional[str],
    typer.Option(
        "--dtype",
        help="Override weight and KV dtype (bf16, fp16, fp8, fp32).",
        rich_help_panel=MODELS,
        show_default=False,
    ),
]
MaxGpus = Annotated[
    Optional[int],
    typer.Option(
        "--max-gpus",
        min=1,
        help="Most GPUs one replica may span (default 64).",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]
TpEfficiency = Annotated[
    float,
    typer.Option(
        "--tp-efficiency", help="ASSUMED efficiency of tensor parallelism, (0, 1].", rich_help_panel=PRICING
    ),
]
PriceUsdPerHour = Annotated[
    Optional[float],
    typer.Option(
        "--price-usd-per-hour",
        min=0.0,
        help="Override the GPU's $/GPU-hour.",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]
InputUsdPerMtok = Annotated[
    Optional[float],
    typer.Option(
        "--input-usd-per-mtok",
        min=0.0,
        help="Override the API's input price ($/M tokens); alone: a custom API.",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]
OutputUsdPerMtok = Annotated[
    Optional[float],
    typer.Option(
        "--output-usd-per-mtok",
        min=0.0,
        help="Override the API's output price ($/M tokens).",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]
LatencySloS = Annotated[
    Optional[float],
    typer.Option(
        "--latency-slo-s",
        help="Latency target per execution for --qps, seconds.",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]

# ttc fit ------------------------------------------------------------------------------------------

Bins = Annotated[
    int,
    typer.Option(
        "--bins",
        help="Replace difficulty labels by N quantile bins of per-question pass rate (0: keep labels).",
        rich_help_panel=FITTING,
    ),
]
Pools = Annotated[
    str,
    typer.Option(
        "--pools",
        help="Uneven pool sizes: `common` stops curves at the smallest pool (every question at every k); "
        "`available` runs to the largest pool, each k averaged over the questions with that many samples.",
        rich_help_panel=FITTING,
    ),
]

# ttc forecast -------------------------------------------------------------------------------------

At = Annotated[
    list[float],
    typer.Option(
        "--at",
        metavar="K",
        help="Samples per question to forecast at, a whole number (repeat for several).",
        rich_help_panel=TARGET,
        show_default=False,
    ),
]
Target = Annotated[
    Optional[float],
    typer.Option(
        "--target",
        help="Also report the k needed to reach this accuracy (e.g. 0.9).",
        rich_help_panel=TARGET,
        show_default=False,
    ),
]
Metric = Annotated[
    list[str],
    typer.Option(
        "--metric",
        metavar="METRIC",
        help="Only these metrics (pass@k, majority@k, best_of@k, weighted@k); default all.",
        rich_help_panel=TARGET,
        show_default=False,
    ),
]
BacktestReps = Annotated[
    int,
    typer.Option(
        "--backtest-reps",
        help="Subsamples averaged in the per-question backtest (0: none).",
        rich_help_panel=FITTING,
    ),
]

# ttc import ---------------------------------------------------------------------------------------

ImportFile = Annotated[
    Path,
    typer.Argument(
        help="JSONL, CSV or Parquet file (one sample per line/row, or one question's counts per row); "
        "or lm-eval output (a results folder, a samples_*.jsonl or results_*.json file); or Inspect AI "
        "logs (.eval/.json, or their folder).",
        show_default=False,
    ),
]
Format = Annotated[
    str,
    typer.Option("--format", help="auto (default) | table | lm-eval | inspect.", rich_help_panel=INPUT),
]
Tokenizer = Annotated[
    Optional[str],
    typer.Option(
        "--tokenizer",
        help="lm-eval: count tokens with this tokenizer (name or folder).",
        rich_help_panel=EVAL_LOGS,
        show_default=False,
    ),
]
AnswerRegex = Annotated[
    Optional[str],
    typer.Option(
        "--answer-regex",
        help="lm-eval: extract answers with this regex instead of the task's filter.",
        rich_help_panel=EVAL_LOGS,
        show_default=False,
    ),
]
Scorer = Annotated[
    Optional[str],
    typer.Option(
        "--scorer",
        help="Inspect: the scorer that decides correctness (default: the first).",
        rich_help_panel=EVAL_LOGS,
        show_default=False,
    ),
]
ScoreThreshold = Annotated[
    Optional[float],
    typer.Option(
        "--score-threshold",
        help="Inspect: correct when the score (C=1, P=0.5, I=0) is >= this (default 1).",
        rich_help_panel=EVAL_LOGS,
        show_default=False,
    ),
]

# ttc recommend ------------------------------------------------------------------------------------

Config = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        help="A plan request in TOML (keys are the long option names; flags override it).",
        rich_help_panel=INPUT,
        show_default=False,
    ),
]
BudgetEflops = Annotated[
    Optional[float],
    typer.Option(
        "--budget-eflops",
        help="Effective FLOPs per query (Kinetics: FLOPs + bytes moved x the GPU's FLOP/byte; needs --gpu).",
        rich_help_panel=BUDGET,
        show_default=False,
    ),
]
BudgetTokens = Annotated[
    Optional[float],
    typer.Option(
        "--budget-tokens",
        help="Prompt + generated tokens per query.",
        rich_help_panel=BUDGET,
        show_default=False,
    ),
]
LatencyS = Annotated[
    Optional[float],
    typer.Option(
        "--latency-s",
        help="Roofline latency per query on --gpu, seconds.",
        rich_help_panel=BUDGET,
        show_default=False,
    ),
]
BudgetKvBytes = Annotated[
    Optional[float],
    typer.Option(
        "--budget-kv-bytes",
        help="Peak KV-cache bytes of one query.",
        rich_help_panel=BUDGET,
        show_default=False,
    ),
]
Objective = Annotated[
    Optional[str],
    typer.Option(
        "--objective",
        help="accuracy (default) | pareto (the accuracy-cost front).",
        rich_help_panel=TARGET,
        show_default=False,
    ),
]
ExtraModel = Annotated[
    Optional[list[str]],
    typer.Option(
        "--extra-model",
        metavar="NAME=SPEC",
        help="Unprofiled model of a profiled family: NAME=CATALOG_NAME_OR_CONFIG (repeat).",
        rich_help_panel=MODELS,
        show_default=False,
    ),
]
CheckerCost = Annotated[
    Optional[list[str]],
    typer.Option(
        "--checker-cost",
        metavar="KEY=VALUE",
        help="Cost of the exact checker per checked sample, KEY=VALUE (flops, usd, latency_s...; "
        "repeat). Default: free, stated as an assumption.",
        rich_help_panel=MODELS,
        show_default=False,
    ),
]
Storage = Annotated[
    Optional[str],
    typer.Option(
        "--storage",
        help="Optuna storage shared by workers: sqlite:///x.db, postgresql://..., journal:PATH.",
        rich_help_panel=SEARCH,
        show_default=False,
    ),
]
Trials = Annotated[
    Optional[int],
    typer.Option(
        "--trials",
        min=1,
        help="Optuna trials per worker (default 60).",
        rich_help_panel=SEARCH,
        show_default=False,
    ),
]
Wide = Annotated[
    bool,
    typer.Option(
        "--wide", help="Every cost column in the tables (wider than 100 columns).", rich_help_panel=OUTPUT
    ),
]

# ttc report ---------------------------------------------------------------------------------------

NoPng = Annotated[bool, typer.Option("--no-png", help="Do not write the PNGs.", rich_help_panel=OUTPUT)]
