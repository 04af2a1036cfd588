"""Command-line options shared by several commands, declared once as typer ``Annotated`` types.

A command takes one by annotating a parameter with it (``prompt: AssumePromptTokens = None``),
so its flag, help text, bounds and help panel are the same everywhere.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ._common import PRICING

__all__ = [
    "AssumePromptTokens",
    "AssumeCompletionTokens",
    "ADAPTIVE",
    "BudgetSamples",
    "BudgetProfileTokens",
    "StopRegret",
    "Block",
    "ForecastAt",
]

_ASSUMED = "only for questions whose data has no lengths (measured ones are kept); the output says so"

AssumePromptTokens = Annotated[
    Optional[int],  # noqa: UP045 - typer reads the annotation at run time on Python 3.10 too
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
    Optional[int],  # noqa: UP045
    typer.Option(
        "--assume-completion-tokens",
        min=1,
        metavar="N",
        help=f"ASSUME N generated tokens per sample, {_ASSUMED}.",
        rich_help_panel=PRICING,
        show_default=False,
    ),
]

ADAPTIVE = "Adaptive profiling (--adaptive)"

BudgetSamples = Annotated[
    Optional[int],  # noqa: UP045
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
    Optional[float],  # noqa: UP045
    typer.Option(
        "--budget-tokens",
        metavar="T",
        help="--adaptive: generated tokens to spend in all (instead of --budget-samples).",
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
    Optional[int],  # noqa: UP045
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
