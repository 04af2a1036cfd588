"""Small helpers shared by the CLI subcommands."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console

# Tables stay readable when output is piped or logged (rich would otherwise fall back to 80 columns).
_PIPE_WIDTH = None if sys.stdout.isatty() else 200
console = Console(width=_PIPE_WIDTH)
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` as an error on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    sys.exit(code)
