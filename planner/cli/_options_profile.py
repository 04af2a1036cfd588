"""The options of ``ttc profile`` (its run, its scale-out and ``--adaptive``), ``ttc merge`` and
``ttc demo``, each declared once as a typer ``Annotated`` type (see :mod:`planner.cli._options`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import ADAPTIVE, INPUT, MODELS, OUTPUT, RUN, SCALE

# ruff: noqa: UP045 - typer reads the annotations at run time, on Python 3.10 too

# ttc profile: what to measure -----------------------------------------------------------------

Task = Annotated[
    Optional[str],
    typer.Option(
        "--task",
        "-t",
        help="Built-in task (lab-arith) or a JSONL file path; with --backend replay, the recording's own.",
        rich_help_panel=INPUT,
        show_default=False,
    ),
]
Backend = Annotated[
    Optional[str],
    typer.Option(
        "--backend",
        help="replay: draw recorded samples from --source instead of generating (default: the --model "
        "spec picks the engine).",
        rich_help_panel=MODELS,
        show_default=False,
    ),
]
Source = Annotated[
    Optional[Path],
    typer.Option(
        "--source",
        help="--backend replay: a samples or counts folder, or a file `ttc import` reads.",
        rich_help_panel=INPUT,
        show_default=False,
    ),
]
Questions = Annotated[
    Optional[int],
    typer.Option(
        "--questions",
        "-q",
        min=1,
        help="First N questions per difficulty level (default 20; --backend replay: all).",
        rich_help_panel=INPUT,
        show_default=False,
    ),
]
QuestionsOverall = Annotated[
    bool,
    typer.Option(
        "--questions-overall",
        help="Take the first --questions questions overall, not per level.",
        rich_help_panel=INPUT,
    ),
]
Split = Annotated[
    str, typer.Option("--split", help="Task split to draw questions from.", rich_help_panel=INPUT)
]
Engine = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Local checkpoints: fast (the fast decode loop of small Llama/Mixtral models), hf "
        "(transformers' generate) or auto (fast where it runs and the model is small).",
        rich_help_panel=MODELS,
    ),
]
Device = Annotated[
    Optional[str],
    typer.Option(
        "--device",
        help="hf models: cpu, cuda, cuda:1 (default: cuda if any).",
        rich_help_panel=MODELS,
        show_default=False,
    ),
]

# ttc profile: the run ---------------------------------------------------------------------------

MaxNewTokens = Annotated[
    int,
    typer.Option("--max-new-tokens", min=1, help="Token cap of each generation call.", rich_help_panel=RUN),
]
BatchSize = Annotated[
    int,
    typer.Option(
        "--batch-size", min=1, help="Questions per strategy call (batched requests).", rich_help_panel=RUN
    ),
]
WaitLock = Annotated[
    bool,
    typer.Option(
        "--wait-lock",
        help="If another ttc profile is writing --out, wait for it to finish (then resume) instead of stopping.",
        rich_help_panel=RUN,
    ),
]
ShowProgress = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.", rich_help_panel=OUTPUT)
]

# ttc profile: beyond one machine -----------------------------------------------------------------

Shard = Annotated[
    str,
    typer.Option(
        "--shard",
        help="i/n: profile only the questions of worker i of n; auto: i/n of this Slurm or Grid Engine array task.",
        rich_help_panel=SCALE,
    ),
]
Executor = Annotated[
    str,
    typer.Option("--executor", help="local (this process) or ray (a Ray cluster).", rich_help_panel=SCALE),
]
RayAddress = Annotated[
    Optional[str],
    typer.Option(
        "--ray-address",
        help="Ray cluster to join (HOST:6379, ray://HOST:10001, auto: this machine's `ray start` cluster); "
        "default: RAY_ADDRESS, else a new local cluster.",
        rich_help_panel=SCALE,
        show_default=False,
    ),
]
Workers = Annotated[
    Optional[int],
    typer.Option(
        "--workers",
        min=1,
        help="Ray actors (model replicas); default: as many as the cluster's GPUs or CPUs hold.",
        rich_help_panel=SCALE,
        show_default=False,
    ),
]
GpusPerWorker = Annotated[
    float,
    typer.Option(
        "--gpus-per-worker",
        min=0.0,
        help="GPUs of each Ray actor (vllm: its tensor-parallel size).",
        rich_help_panel=SCALE,
    ),
]
CpusPerWorker = Annotated[
    float,
    typer.Option(
        "--cpus-per-worker", min=0.0, help="CPUs of each Ray actor (torch threads).", rich_help_panel=SCALE
    ),
]

# ttc profile --adaptive ---------------------------------------------------------------------------

Adaptive = Annotated[
    bool,
    typer.Option(
        "--adaptive",
        help="Profile in rounds where the decision needs it (with one --strategy pool, grown in rounds, any "
        "other --strategy profiled on every question in the first round, --budget-samples or "
        "--budget-profile-tokens, and the budgets to plan for).",
        rich_help_panel=ADAPTIVE,
    ),
]
BudgetSamples = Annotated[
    Optional[int],
    typer.Option(
        "--budget-samples",
        min=1,
        metavar="N",
        help="--adaptive: samples to spend in all (every model and question of the run).",
        rich_help_panel=ADAPTIVE,
        show_default=False,
    ),
]
BudgetProfileTokens = Annotated[
    Optional[float],
    typer.Option(
        "--budget-profile-tokens",
        metavar="T",
        help="--adaptive: generated tokens to spend on profiling in all (instead of --budget-samples).",
        rich_help_panel=ADAPTIVE,
        show_default=False,
    ),
]
StopRegret = Annotated[
    float,
    typer.Option(
        "--stop-regret",
        min=0.0,
        metavar="POINTS",
        help="--adaptive: stop once the expected regret at every target budget is at most this.",
        rich_help_panel=ADAPTIVE,
    ),
]
Block = Annotated[
    int,
    typer.Option(
        "--block",
        min=1,
        metavar="N",
        help="--adaptive: samples per question in one block of a pool (pools grow a block at a time).",
        rich_help_panel=ADAPTIVE,
    ),
]
ForecastAt = Annotated[
    Optional[int],
    typer.Option(
        "--forecast-at",
        min=1,
        metavar="K",
        help="--adaptive: spend --budget-samples to narrow each model's pass@K forecast interval "
        "(samples go to the questions that narrow it most) instead of planning.",
        rich_help_panel=ADAPTIVE,
        show_default=False,
    ),
]

# ttc merge ----------------------------------------------------------------------------------------

MergeOut = Annotated[Path, typer.Argument(help="New folder for the merged run.", show_default=False)]
MergeInputs = Annotated[
    list[Path],
    typer.Argument(help="Run folders to combine (e.g. the workers of --shard i/n).", show_default=False),
]
Dedupe = Annotated[
    bool,
    typer.Option(
        "--dedupe",
        help="Keep the first copy of a unit found in more than one shard (a folder written by two "
        "profilers at once) instead of refusing.",
        rich_help_panel=INPUT,
    ),
]
AllowMixed = Annotated[
    bool,
    typer.Option(
        "--allow-mixed",
        help="Merge runs of different models or question selections, or part of a sharded run, on purpose "
        "(refused otherwise).",
        rich_help_panel=INPUT,
    ),
]

# ttc demo -----------------------------------------------------------------------------------------

Full = Annotated[
    bool,
    typer.Option(
        "--full",
        help="The thorough version: more questions, bigger pools, all strategies.",
        rich_help_panel=RUN,
    ),
]
Preset = Annotated[
    Optional[str],
    typer.Option(
        "--preset",
        help="quick (default), full (same as --full) or tiny (a few questions: a smoke test).",
        rich_help_panel=RUN,
        show_default=False,
    ),
]
