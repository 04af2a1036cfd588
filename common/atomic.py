"""The one way this project writes a file: atomically and durably.

:func:`atomic_write` writes to a temporary file in the target's folder, flushes and
``fsync``-s it, renames it over the target with :func:`os.replace` (atomic on POSIX and
Windows) and ``fsync``-s the folder, so after a crash the target holds either its old
content or the whole new one, and the rename itself survives a power loss. A failure
removes the temporary file. Every writer of the three packages goes through it: samples
shards and ``run.json`` (:mod:`profiling.storage`), imported shards
(:mod:`fitting.importer`), ``ttc fit`` outputs (:mod:`fitting.pipeline`), the planner's
cache, the report, the CPU calibration cache.

Temporary files are named ``_tmp-*`` (or ``tmp_prefix``), which the samples readers skip.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]


def atomic_write(
    path: str | Path, data: bytes | str | Callable[[BinaryIO], object], *, tmp_prefix: str = "_tmp-"
) -> Path:
    """Replace ``path`` with ``data`` atomically (module docstring); returns the path.

    Parameters
    ----------
    path : path
        The file to write; its folder is created if needed.
    data : bytes, str or callable
        The content (a str is written as UTF-8), or a function that writes it to the binary
        file object it is given (e.g. ``lambda fh: pyarrow.parquet.write_table(table, fh)``).
    tmp_prefix : str
        Name prefix of the temporary file (a writer that cleans up after a killed process
        can use its own).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "a.json", '{"x": 1}').read_text()
    '{"x": 1}'
    >>> sorted(p.name for p in folder.iterdir())
    ['a.json']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse to sync a folder
        pass
    finally:
        os.close(fd)
