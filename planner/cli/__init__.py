"""The ``ttc`` command line. Each subcommand lives in its own small module and registers
itself here; heavy imports (torch, transformers, optuna, altair) happen inside the
command bodies so that ``ttc --help`` stays fast.
"""

from __future__ import annotations

import typer
from typer.core import TyperOption

from ._errors import ErrorBoundary
from ._options import Version

_display_type_rich = TyperOption.display_type_rich


def _no_type_for_flags(self: TyperOption, ctx) -> str | None:
    """Typer 0.29's rich help prints a value type even for flags that take none
    ("--help <bool>"); a flag shows no type (every other option keeps typer's)."""
    return None if self.is_flag else _display_type_rich(self, ctx)


TyperOption.display_type_rich = _no_type_for_flags

app = typer.Typer(
    name="ttc",
    cls=ErrorBoundary,
    help=(
        "ttc-planner: measure, fit and plan test-time compute.\n\n"
        "Typical flow: `ttc profile` (or `ttc import`) writes a samples folder, `ttc fit` turns it into "
        "curves and scaling laws, `ttc recommend` picks model, strategy and knobs for a budget.\n\n"
        "A bad input or flag stops with one line on stderr and exit status 2; `--debug` (anywhere "
        "on the command line) or `TTC_DEBUG=1` also shows the traceback."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(version: Version = False) -> None:
    """Keeps `ttc` a command group even while only one subcommand is registered; takes `--version`."""


# Subcommand modules: each defines register(app). Keep this list in the order of the workflow.
_COMMAND_MODULES = [
    "demo_cmd",
    "profile_cmd",
    "merge_cmd",
    "import_cmd",
    "fit_cmd",
    "forecast_cmd",
    "costs_cmd",
    "recommend_cmd",
    "evaluate_cmd",
    "report_cmd",
]


def _register_all() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(app)


_register_all()


def main() -> None:  # console-script entry point
    app()
