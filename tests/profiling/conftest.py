"""Tests of :mod:`profiling`: tasks, backends (hf, openai, vllm with a fake engine), strategies,
storage and the ``ttc profile`` command. Helpers: ``scripted_backend.py`` (a deterministic
backend and task), ``backend_helpers.py`` (a scripted OpenAI-compatible server and
``transformers serve``)."""

from __future__ import annotations

import pytest

from profiling.lab.task import LabArithTask


@pytest.fixture(scope="session")
def task() -> LabArithTask:
    """The built-in lab task (multi-step arithmetic), shared by the lab's tests."""
    return LabArithTask()
