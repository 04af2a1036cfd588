"""Tests of :mod:`profiling`: tasks, backends (hf, openai, vllm with a fake engine), strategies,
storage and the ``ttc profile`` command. Helpers: ``scripted_backend.py`` (a deterministic
backend and task), ``backend_helpers.py`` (a scripted OpenAI-compatible server and
``transformers serve``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from profiling.lab.task import LabArithTask


@pytest.fixture(scope="session")
def task() -> LabArithTask:
    """The built-in lab task (multi-step arithmetic), shared by the lab's tests."""
    return LabArithTask()


@pytest.fixture(scope="module")
def cluster():
    """A local 2-CPU Ray cluster, in this process, whose workers import this checkout and the
    test helpers; yields its address (for ``--ray-address``). Skips without Ray."""
    ray = pytest.importorskip("ray")
    here = Path(__file__).parent
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(here.parents[1]), str(here)] + ([saved] if saved else []))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    finally:  # the cluster's processes have the path; later tests get the environment back
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    yield context.address_info["address"]
    ray.shutdown()
