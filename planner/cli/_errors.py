"""The one error boundary of the ``ttc`` commands.

Every command runs inside :class:`ErrorBoundary` (the ``ttc`` group's class), which turns
what a user can cause into one line on stderr and exit status 2:

* bad input and bad flags (``ValueError`` and the project's errors derived from it:
  ``SchemaError``, ``SpecError``, ``PlanError``, ``RunMismatch``, ...), a busy run folder
  (``RunLocked``), a server that does not answer, failed profiling jobs;
* the filesystem (``OSError``): a missing file, an ``--out`` that is a file or lies under
  one, a read-only or full disk, no permission;
* a missing optional package (``ImportError``) and not enough memory (``MemoryError``);
* usage errors of the command line (an unknown option, a missing argument).

Anything else is a bug: its traceback is shown (exit 1). ``--debug`` (anywhere on the
command line) or ``TTC_DEBUG=1`` shows the traceback of a known error too.

A warning raised while a command runs (a ``DataWarning`` about the data, say) is one line on
stderr, ``warning: ...``, not Python's ``file.py:198: DataWarning`` and source line (shown
with ``--debug``).

On any failure, the outputs a command claimed with :func:`claim_output` and that did not
exist before it ran are removed, so a failed command leaves nothing a user did not ask for
(``ttc profile`` keeps a run folder that holds finished units, for the rerun to resume; its
runner removes the rest itself).
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import traceback
import warnings
from pathlib import Path

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ._common import err_console, fail, one_line

#: the command-line flag (accepted anywhere before ``--``) and the variable that show tracebacks
DEBUG_FLAG = "--debug"
DEBUG_ENV = "TTC_DEBUG"

# paths created by the running command, removed if it fails (see claim_output)
_created: list[Path] = []
_debug = False

_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exhausted; free some space or write elsewhere",
    errno.EROFS: "the filesystem is read-only; write elsewhere",
    errno.EACCES: "no permission; write elsewhere or fix the permissions",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "expected a file, not a folder",
}


def debug_enabled() -> bool:
    """Whether tracebacks are wanted (``--debug`` or ``TTC_DEBUG`` set to anything but 0/empty)."""
    return _debug or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def claim_output(path: str | Path, kind: str = "folder", *, remove_on_failure: bool = True) -> Path:
    """Check that ``path`` can be written as a ``kind`` (``"folder"`` or ``"file"``) and
    remember what does not exist yet, to be removed if the command fails (unless
    ``remove_on_failure`` is False: ``ttc profile`` keeps finished units and cleans up itself).

    Raises ``ValueError`` (one line) when the path is a file where a folder is expected (or
    the reverse), lies under a file, or its nearest existing folder is on a read-only
    filesystem or not writable.
    """
    path = Path(path)
    what = "a folder" if kind == "folder" else "a file path"
    if path.exists():
        if kind == "folder" and not path.is_dir():
            raise ValueError(f"{path}: is a file; expected {what} (give a new or existing folder)")
        if kind == "file" and path.is_dir():
            raise ValueError(f"{path}: is a folder; expected {what} (e.g. {path / 'report.html'})")
    top, parent = None, path
    while not parent.exists():
        top, parent = parent, parent.parent
    if top is None:  # the path exists: it is written in, or replaced in its folder
        folder = path if path.is_dir() else path.parent
    elif not parent.is_dir():
        raise ValueError(f"{path}: {parent} is a file, not a folder; choose another output path")
    else:
        folder = parent
    _check_writable(folder, path)
    if top is not None and remove_on_failure:
        _created.append(top)
    return path


def _check_writable(folder: Path, path: Path) -> None:
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): let the write say so
        read_only = False
    if read_only:
        raise ValueError(f"{path}: {folder} is on a read-only filesystem; write elsewhere")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: no permission to write in {folder}; write elsewhere")


def _remove_created() -> None:
    while _created:
        path = _created.pop()
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def user_message(exc: BaseException) -> str | None:
    """The one line a user sees for ``exc``, or None when ``exc`` is not a known kind of
    error (a bug: its traceback is shown)."""
    from profiling.backends.openai import OpenAIBackendError
    from profiling.executor import ExecutorError
    from profiling.lock import RunLocked

    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError) and exc.errno is not None:
        return _os_message(exc)
    if isinstance(exc, MemoryError):
        return f"not enough memory ({exc or 'MemoryError'}); use a smaller input or a larger machine"
    if isinstance(exc, ModuleNotFoundError):
        return f"needs the package {exc.name!r}, which is not installed ({exc})"
    known = (
        ValueError,
        ImportError,
        OverflowError,
        ConnectionError,
        RunLocked,
        ExecutorError,
        OpenAIBackendError,
        TimeoutError,
    )
    if isinstance(exc, known) or type(exc).__name__ == "CatalogError":
        return one_line(str(exc) or type(exc).__name__)
    return None


def _os_message(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    reason = exc.strerror or str(exc)
    hint = _OS_HINTS.get(exc.errno)
    text = f"{where}: {reason}" if where else reason
    if hint and hint.lower() != reason.lower():
        text += f" ({hint})"
    return one_line(text)


class ErrorBoundary(TyperGroup):
    """The ``ttc`` group: runs a command and turns known errors into one line (module doc)."""

    def main(self, args=None, *rest, **kwargs):
        global _debug
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)
        _debug = DEBUG_FLAG in args[:end]
        args = [a for i, a in enumerate(args) if i >= end or a != DEBUG_FLAG]
        _created.clear()
        return super().main(args, *rest, **kwargs)

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except Exception as exc:
            if _click_kind(exc) == "usage":
                _usage_error(exc)
            raise

    def invoke(self, ctx):
        with warnings.catch_warnings():  # restores Python's printer when the command ends
            warnings.showwarning = _show_warning
            return self._invoke(ctx)

    def _invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SystemExit as exc:
            if exc.code not in (0, None):
                _remove_created()
            raise
        except KeyboardInterrupt:
            _remove_created()
            raise
        except Exception as exc:
            kind = _click_kind(exc)
            if kind == "usage":
                _usage_error(exc)
            if kind is not None:  # help, exit, abort: click's own
                raise
            _remove_created()
            message = user_message(exc)
            if message is None:
                raise
            if debug_enabled():
                traceback.print_exc()
            fail(message)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line on stderr (``warning: ...``); Python's own form with ``--debug``."""
    if debug_enabled():
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
        return
    err_console.print(
        f"[yellow]warning:[/] {escape(one_line(str(message)))}", highlight=False, soft_wrap=True
    )


def _click_kind(exc: BaseException) -> str | None:
    """``"usage"`` for a command-line usage error, ``"click"`` for click's other control
    flow (help shown for no arguments, ``Exit``, ``Abort``), else None. (Typer bundles its
    own click, so its exception classes are told by name.)"""
    names = {c.__name__ for c in type(exc).__mro__}
    if isinstance(exc, (typer.Exit, typer.Abort)) or "NoArgsIsHelpError" in names:
        return "click"
    if "UsageError" in names:
        return "usage"
    return "click" if "ClickException" in names else None


def _usage_error(exc) -> None:
    """A command-line usage error as one line naming the command's help."""
    command = exc.ctx.command_path if exc.ctx is not None else "ttc"
    fail(f"{one_line(exc.format_message())} (see `{command} --help`)")
