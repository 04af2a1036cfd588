"""Tasks: problems, answer extraction and verification (see :mod:`profiling.tasks._base`)."""

from __future__ import annotations

from ._base import Problem, Task

__all__ = ["Problem", "Task"]
