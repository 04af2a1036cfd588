"""One writer per run folder: an exclusive OS advisory lock on ``ttc profile --out``.

Two ``ttc profile`` processes writing one folder would both run every unit (each reads the
finished units before the other has written them), leaving every unit twice. The process
that writes shards therefore holds an exclusive ``flock`` on ``FOLDER/.ttc-lock`` for as
long as it runs (the Ray driver included; its actors never write):

* A second process on the same folder **refuses** at once, in one line naming the holder
  (pid, host, when it started): :class:`RunLocked`. With ``wait=True`` (``ttc profile
  --wait-lock``) it waits for the holder to finish instead, then resumes: it reads the
  finished units only after it holds the lock, so it runs only what is left.
* The lock is the kernel's, attached to the open file: it **dies with its process**, however
  that process ends (``kill -9``, OOM, a lost node's reboot), so a stale lock file never
  blocks a resume. The file stays in the folder (deleting it on release would let a waiting
  process and a new one both lock, one of them on the deleted file); it is not a lock unless
  a living process holds it, and its content (the holder's pid, host, start time and
  command line) is only there to name the holder.
* On network filesystems ``flock`` is as good as the mount: NFSv4 on Linux emulates it with
  byte-range locks that work across clients; Lustre needs the ``flock`` mount option. A
  filesystem without locks is a one-line error, not a silent unlocked run.

Examples
--------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with run_lock(folder) as holder:
...     holder["pid"] == os.getpid()
True
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:  # POSIX only: on Windows there is no flock and the folder is not locked
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "RunLocked", "run_lock", "read_lock", "lock_holder"]

LOCK_FILE = ".ttc-lock"


class RunLocked(RuntimeError):
    """Another living process holds the run folder's lock."""


def lock_holder(folder: str | Path) -> dict | None:
    """What the lock file of ``folder`` says about its last holder (pid, host, started,
    command), or None when there is no lock file or it is empty. It says nothing about
    whether that process still holds the lock: only trying to take it does."""
    path = Path(folder) / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return None
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return None
    return info if isinstance(info, dict) else None


def _describe(folder: Path, info: dict | None) -> str:
    if not info:
        return f"another process holds the lock on {folder} (it has not written its pid yet)"
    where = f" on {info['host']}" if info.get("host") and info.get("host") != socket.gethostname() else ""
    since = f", since {info['started']}" if info.get("started") else ""
    return f"another ttc profile (pid {info.get('pid', '?')}{where}{since}) is writing {folder}"


@contextlib.contextmanager
def run_lock(
    folder: str | Path,
    *,
    wait: bool = False,
    timeout_s: float | None = None,
    poll_s: float = 0.2,
    on_wait: Callable[[str], object] | None = None,
    command: list[str] | None = None,
) -> Iterator[dict]:
    """Hold the exclusive lock of run folder ``folder`` (created if needed) inside the block.

    Parameters
    ----------
    folder : the run folder
    wait : False: raise :class:`RunLocked` at once when another process holds the lock;
        True: wait for it (polling every ``poll_s``), up to ``timeout_s`` (None: forever)
    on_wait : called once with a line naming the holder when the lock is busy and ``wait``
    command : the command line recorded for other processes to see (default ``sys.argv``)

    Yields the holder record written into the lock file (pid, host, started, command).
    Raises :class:`RunLocked` (one line: who holds it, what to do) or ``OSError`` naming
    the folder when the filesystem has no locks.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(command) if command is not None else list(sys.argv),
    }
    # no O_TRUNC: opening must not wipe the holder's record before we know we hold the lock
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            _acquire(fd, folder, wait=wait, timeout_s=timeout_s, poll_s=poll_s, on_wait=on_wait)
        data = (json.dumps(me) + "\n").encode()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)
        yield me
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(
    fd: int,
    folder: Path,
    *,
    wait: bool,
    timeout_s: float | None,
    poll_s: float,
    on_wait: Callable[[str], object] | None,
) -> None:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as exc:  # ENOLCK / EOPNOTSUPP: a filesystem without locks
            raise OSError(
                exc.errno,
                f"{folder}: cannot lock the run folder ({exc.strerror}); use a local or lock-capable "
                "filesystem (NFSv4; Lustre mounted with -o flock)",
            ) from None
        holder = _describe(folder, lock_holder(folder))
        if not wait:
            raise RunLocked(
                f"{holder}; wait for it (or add --wait-lock to queue behind it), or give this run its own --out"
            )
        if deadline is not None and time.monotonic() >= deadline:
            raise RunLocked(f"{holder}; still locked after {timeout_s:g} s")
        if not told and on_wait is not None:
            on_wait(f"{holder}; waiting for it to finish")
            told = True
        time.sleep(poll_s)


@contextlib.contextmanager
def read_lock(folder: str | Path) -> Iterator[None]:
    """Hold a shared lock on ``folder`` while reading it (``ttc merge`` of its inputs): raise
    :class:`RunLocked` when a ``ttc profile`` is still writing it, and keep one from starting
    meanwhile. Opens the lock file read-only and does nothing when there is none (a folder
    never profiled by a locking version, or on read-only media), so reading never writes."""
    folder = Path(folder)
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLocked(
                    f"{_describe(folder, lock_holder(folder))}; wait for it to finish before reading the folder"
                ) from None
            except OSError:
                pass  # a filesystem without locks: nothing to coordinate with
        yield
    finally:
        os.close(fd)
