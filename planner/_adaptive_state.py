"""The state file of an adaptive profiling run (``adaptive.json``), shared by the planning mode
(:mod:`planner.adaptive_profiling`) and the forecast mode (:mod:`planner.adaptive_forecast`).

A round is written to the state, marked not done, BEFORE its samples are drawn, so a run killed
mid-round finishes that round first when rerun; the state is replaced atomically after each
round. A rerun with other settings is refused, except for a larger budget, which continues.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from common.atomic import atomic_write

__all__ = ["STATE_FILE", "read_state", "write_state", "open_state", "start_round", "notify"]

STATE_FILE = "adaptive.json"
#: settings a resumed run may change: a larger budget continues a finished run
MAY_CHANGE = ("budget_samples", "budget_tokens")


def read_state(folder: Path) -> dict:
    """The state in ``folder``, or ``{}`` when it holds no adaptive run."""
    path = folder / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_state(folder: Path, state: dict) -> None:
    text = json.dumps(state, indent=1, sort_keys=True, allow_nan=False)
    atomic_write(folder / STATE_FILE, lambda fh: fh.write(text.encode()))


def open_state(folder: Path, settings: dict, may_change: Sequence[str] = MAY_CHANGE) -> dict:
    """The run's state: the one in ``folder`` (same ``settings`` up to ``may_change``), or a new one.

    Raises ValueError, naming the folder and its settings, when it holds a run with other settings.
    """
    state = read_state(folder)

    def fixed(s: dict) -> dict:
        return {k: v for k, v in s.items() if k not in may_change}

    if state and fixed(state.get("settings", {})) != fixed(settings):
        theirs = json.dumps(state.get("settings"), sort_keys=True)
        raise ValueError(
            f"{folder} holds an adaptive run with other settings ({theirs}); use another --out or the same flags"
        )
    state = state or {"settings": settings, "rounds": []}
    state["settings"] = settings  # the budget may have grown (a resumed run keeps going)
    state.pop("stopped", None)
    return state


def start_round(folder: Path, state: dict, r: dict) -> None:
    """Record a round (not done yet) before it runs, so a killed run finishes it first."""
    r["done"] = False
    state["rounds"].append(r)
    folder.mkdir(parents=True, exist_ok=True)
    write_state(folder, state)


def notify(on_round: Callable[[dict], None] | None, r: dict) -> None:
    if on_round is not None:
        on_round(r)
