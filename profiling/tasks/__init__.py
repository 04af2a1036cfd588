"""Tasks: problems, answer extraction and verification (see :mod:`profiling.tasks._base`).

:func:`get_task` resolves a built-in name (``lab-arith``) or a JSONL file path.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ._base import Problem, Task
from .files import load_jsonl_task

__all__ = ["Problem", "Task", "get_task", "BUILTIN_TASKS"]

#: built-in task name -> "module:Class" (imported lazily)
BUILTIN_TASKS: dict[str, str] = {
    "lab-arith": "profiling.lab.task:LabArithTask",
}


def get_task(spec: str, **kwargs) -> Task:
    """A task by built-in name or JSONL path (GSM8K-style or MATH-style, detected from fields).

    Examples
    --------
    >>> task = get_task("lab-arith")  # doctest: +SKIP
    >>> task = get_task("data/gsm8k_test.jsonl")  # doctest: +SKIP
    """
    if spec in BUILTIN_TASKS:
        module, cls = BUILTIN_TASKS[spec].split(":")
        return getattr(importlib.import_module(module), cls)(**kwargs)
    path = Path(spec)
    if path.suffix == ".jsonl" or path.is_file():
        return load_jsonl_task(path, **kwargs)
    known = ", ".join(sorted(BUILTIN_TASKS))
    raise ValueError(f"unknown task {spec!r}: expected a built-in name ({known}) or a path to a .jsonl file")
