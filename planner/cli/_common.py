"""Small helpers shared by the CLI subcommands: consoles, the one error exit, ``NAME=VALUE``
pairs, the profile folder argument (positional, ``--profile`` kept as an alias) and the
names of the help panels that group each command's options."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import NoReturn

from rich.console import Console, ConsoleDimensions
from rich.markup import escape


class _Console(Console):
    """A console as wide as ``COLUMNS`` says whenever it is set (read at every print, not only
    when the module is imported), else the terminal, else 200 columns when output is piped or
    logged (rich would otherwise fall back to 80)."""

    @property
    def size(self) -> ConsoleDimensions:
        columns = os.environ.get("COLUMNS", "")
        size = Console.size.fget(self)
        return ConsoleDimensions(int(columns), size.height) if columns.isdigit() else size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = _Console(width=None if sys.stdout.isatty() else 200)
err_console = _Console(stderr=True)

# help panels (typer's rich_help_panel), in the order a reader needs them
INPUT = "Input"
BUDGET = "Budget (per query)"
TARGET = "What to plan for"
PRICING = "Pricing: hardware or API"
MODELS = "Models"
SEARCH = "Search"
FITTING = "Curves and laws"
STRATEGIES = "Strategies"
RUN = "Run"
SCALE = "Beyond one machine"
ADAPTIVE = "Adaptive profiling (--adaptive)"
WORKLOAD = "Workload"
EVAL_LOGS = "Evaluation logs (lm-eval, Inspect AI)"
OUTPUT = "Output"


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` as one line (its lines joined with "; ") on stderr and exit with ``code``."""
    # the message is text, not markup: "pip install 'ttc-planner[ray]'" keeps its brackets; one line
    err_console.print(
        f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True, markup=True
    )
    sys.exit(code)


def finite_option(flag: str, value: float | None, *, positive: bool = False) -> float | None:
    """``value`` of option ``flag``, refused (one line naming the flag) when not a finite
    number >= 0, or > 0 with ``positive``; None passes (the option was not given).

    Examples
    --------
    >>> finite_option("--qps", 2.5, positive=True), finite_option("--qps", None)
    (2.5, None)
    """
    if value is None:
        return None
    ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        fail(f"{flag} must be a finite number {'> 0' if positive else '>= 0'}, got {value:g}")
    return value


def one_line(text: str) -> str:
    """``text`` on one line: its lines joined with "; " (blank ones dropped).

    Examples
    --------
    >>> one_line("cannot open x\\n  (background: y)\\n")
    'cannot open x; (background: y)'
    """
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def parse_pairs(values: list[str] | None, what: str) -> dict[str, str]:
    """``["a=b", ...]`` as ``{"a": "b"}``; a malformed pair fails naming the option ``what``."""
    out = {}
    for v in values or []:
        name, sep, spec = v.partition("=")
        if not sep or not name.strip() or not spec.strip():
            fail(f"{what} must look like NAME=VALUE, got {v!r}")
        out[name.strip()] = spec.strip()
    return out


def samples_folder(
    positional: Path | None, samples: Path | None, profile: Path | None = None, required: bool = True
) -> Path | None:
    """The samples folder: the positional argument, ``--samples``, or ``--profile`` (the
    spelling of earlier versions, kept as a hidden alias); all that are given must agree."""
    given = {"argument": positional, "--samples": samples, "--profile": profile}
    given = {k: Path(v) for k, v in given.items() if v is not None}
    if len(set(given.values())) > 1:
        got = " and ".join(f"{k} {v}" for k, v in given.items())
        fail(f"give the samples folder once (got {got})")
    if not given and required:
        fail("missing the samples folder (the output of `ttc profile` or `ttc import`)")
    return next(iter(given.values()), None)


def profile_loading(
    model_spec: list[str] | None,
    n_boot: int,
    no_cache: bool,
    verifier: str | None,
    assume_prompt_tokens: float | None,
    assume_completion_tokens: float | None,
) -> dict:
    """The keyword arguments of :func:`planner.profile.load_profile` (which ``build_report``
    takes too) that ``--model-spec``, ``--n-boot``, ``--no-cache``, ``--verifier`` and the
    ``--assume-*-tokens`` flags give, with the fit stages' progress shown."""
    from planner.space.assumed import AssumedLengths

    return {
        "model_specs": parse_pairs(model_spec, "--model-spec"),
        "n_boot": n_boot,
        "use_cache": not no_cache,
        "progress": True,
        "verifier": verifier,
        "assumed": AssumedLengths(assume_prompt_tokens, assume_completion_tokens),
    }


def parse_budgets(text: str | None) -> list[float] | None:
    """``--budgets 1e12,1e13`` as numbers (None when not given); one line naming the flag otherwise.

    Examples
    --------
    >>> parse_budgets("1e12, 2e12"), parse_budgets(None)
    ([1000000000000.0, 2000000000000.0], None)
    """
    if not text:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        fail(f"--budgets must be comma-separated numbers, got {text!r}")


def one_value(flag: str, values: list | None):
    """The one value of an option that other commands repeat (None when not given); given
    twice, one line naming ``flag``."""
    if values and len(values) > 1:
        fail(f"give {flag} once here, got {len(values)} values")
    return values[0] if values else None


def not_none(**kwargs) -> dict:
    """The keyword arguments that were given (not None), so the callee's own defaults apply.

    Examples
    --------
    >>> not_none(risk=None, seed=0)
    {'seed': 0}
    """
    return {k: v for k, v in kwargs.items() if v is not None}
