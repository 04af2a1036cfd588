"""Progress a person can see: a count and an ETA for every step that takes more than a moment.

One helper for every long step (profiling units, estimating curves, fitting laws, held-out
splits, the demo's stages). Where it writes decides how:

* **a terminal**: a rich bar on stderr with the count, the rate or a note, and the time left;
* **anything else** (a log file, a pipe, CI): once the step has run 2 s, one plain line every
  10 s or each tenth of the total, whichever comes first, and one line when the step ends::

      fitting laws: 24/80 curves (30%), 12 s elapsed, ETA 28 s
      fitting laws: 80/80 curves in 41 s

``TTC_PROGRESS=0`` in the environment turns every progress display off (for scripts that read
stderr; the tests run with it). The helper lives in ``fitting`` (the bottom of the import graph)
so that all three packages share it.

Examples
--------
>>> bar = Progress("fitting laws", 20, unit="curves", clock=lambda: 0.0).start()
>>> bar.done = 4
>>> bar.line(now=12.0)
'fitting laws: 4/20 curves (20%), 12 s elapsed, ETA 48 s'
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import IO

__all__ = ["Progress", "format_duration", "EVERY_S", "EVERY_FRACTION", "MIN_S", "PROGRESS_ENV"]

#: a log gets a progress line at least this often (seconds) ...
EVERY_S = 10.0
#: ... and each time this fraction of the total is done
EVERY_FRACTION = 0.1
#: environment variable: "0" turns progress displays off
PROGRESS_ENV = "TTC_PROGRESS"
#: no periodic line before the step has run this long (a quick step writes only its last line)
MIN_S = 2.0


def format_duration(seconds: float) -> str:
    """Seconds for people: ``"8.2 s"``, ``"41 s"``, ``"3 min 20 s"``, ``"1 h 05 min"``.

    Examples
    --------
    >>> format_duration(8.24), format_duration(41.2), format_duration(200), format_duration(3900)
    ('8.2 s', '41 s', '3 min 20 s', '1 h 05 min')
    """
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class Progress:
    """A count and an ETA for one step: a bar on a terminal, periodic lines in a log.

    Use it as a context manager, call :meth:`advance` per unit (or :meth:`update` with a
    count), or pass the object where a ``progress(done, total)`` callback is expected.

    Parameters
    ----------
    label : str
        What the step does ("fitting laws").
    total : int
        How many units of work the step has (may be changed with :meth:`update`).
    unit : str
        What a unit is ("curves", "units", "splits").
    stream : file, optional
        Where to write (default ``sys.stderr``, read when the step starts).
    enabled : bool
        False: write nothing (the counts are still kept). ``TTC_PROGRESS=0`` makes it False.
    every_s, every_fraction, min_s : float
        A log line at least every ``every_s`` seconds and each ``every_fraction`` of the total,
        once the step has run ``min_s`` seconds (every step writes its last line).
    terminal : bool, optional
        Force the bar (True) or the lines (False); default: whether ``stream`` is a terminal.
    clock : callable
        Seconds, monotonic (tests pass a fake clock).
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "",
        stream: IO[str] | None = None,
        enabled: bool = True,
        every_s: float = EVERY_S,
        every_fraction: float = EVERY_FRACTION,
        min_s: float = MIN_S,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit = label, int(total), unit
        self.stream, self.terminal = stream, terminal
        self.enabled = enabled and os.environ.get(PROGRESS_ENV, "").strip() != "0"
        self.every_s, self.every_fraction, self.min_s, self.clock = every_s, every_fraction, min_s, clock
        self.done = 0
        self.note = ""
        self.t0: float | None = None
        self._last_line = 0.0
        self._last_fraction = 0.0
        self._bar = None
        self._task = None
        self._closed = False

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Progress:
        if self.t0 is not None:
            return self
        self.t0 = self._last_line = self.clock()
        if not self.enabled:
            return self
        stream = self.stream if self.stream is not None else sys.stderr
        self.stream = stream
        if self.terminal is None:
            self.terminal = bool(getattr(stream, "isatty", lambda: False)())
        if self.terminal:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TextColumn("{task.fields[note]}"),
                TimeRemainingColumn(),
                console=Console(file=stream),
            )
            self._task = self._bar.add_task(self.label, total=self.total, note=self.note)
            self._bar.start()
        return self

    def close(self, message: str | None = None) -> None:
        """End the step: stop the bar, or write the last line (``message`` replaces it)."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self.t0 is None and message is not None:  # never started: the message alone, no empty bar
            print(message, file=self.stream if self.stream is not None else sys.stderr, flush=True)
            return
        self.start()
        if self._bar is not None:
            self._refresh()
            self._bar.stop()
            if message:
                print(message, file=self.stream, flush=True)
            return
        elapsed = format_duration(self.clock() - self.t0)
        line = message or f"{self.label}: {self._count()}{self._note()} in {elapsed}"
        print(line, file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- counting ----------------------------------------------------------------------------
    def advance(self, n: int = 1, *, note: str | None = None) -> None:
        """``n`` more units done (``note``: a short status after the count, e.g. a rate)."""
        self.update(self.done + n, note=note)

    def update(self, done: int | None = None, *, total: int | None = None, note: str | None = None) -> None:
        """Set the count done, the total, or the note; writes a log line when one is due."""
        self.start()
        if done is not None:
            self.done = int(done)
        if total is not None:
            self.total = int(total)
        if note is not None:
            self.note = note
        if not self.enabled:
            return
        if self._bar is not None:
            self._refresh()
            return
        now = self.clock()
        fraction = self.done / self.total if self.total > 0 else 0.0
        due = now - self._last_line >= self.every_s
        due |= fraction - self._last_fraction >= self.every_fraction - 1e-12
        if due and self.done < self.total and now - self.t0 >= self.min_s:
            self._last_line, self._last_fraction = now, fraction
            print(self.line(now), file=self.stream, flush=True)

    def __call__(self, done: int, total: int) -> None:
        """The ``progress(done, total)`` callback shape the library's long loops take."""
        self.update(done, total=total)

    # ---- text --------------------------------------------------------------------------------
    def line(self, now: float | None = None) -> str:
        """The one-line state: ``label: done/total unit (pct%), elapsed, ETA``."""
        now = self.clock() if now is None else now
        elapsed = now - (self.t0 if self.t0 is not None else now)
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total > 0 else ""
        eta = (
            f", ETA {format_duration(elapsed / self.done * (self.total - self.done))}"
            if 0 < self.done < self.total
            else ""
        )
        return f"{self.label}: {self._count()}{pct}{self._note()}, {format_duration(elapsed)} elapsed{eta}"

    def _count(self) -> str:
        return f"{self.done}/{self.total}" + (f" {self.unit}" if self.unit else "")

    def _note(self) -> str:
        return f", {self.note}" if self.note else ""

    def _refresh(self) -> None:
        self._bar.update(self._task, completed=self.done, total=self.total, note=self.note)
