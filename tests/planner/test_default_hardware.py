"""The default accelerator is one fact: ``planner.constants.DEFAULT_HARDWARE``. Every function
default and fallback of the planner reads it, so changing it changes every default at once."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import planner
from planner import constants, request
from planner.demo import run_demo
from planner.holdout import evaluate_profile
from planner.report import build_report
from planner.report.data import planning_context
from planner.report.findings import headline_findings, next_steps

ROOT = Path(planner.__file__).parent


def _literals(path: Path, value: str) -> list[int]:
    """Lines of ``path`` where ``value`` is a string literal in code (docstrings not counted)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and n.value == value and id(n) not in docstrings
    ]


def test_the_default_hardware_is_spelled_only_in_constants():
    found = {
        str(p.relative_to(ROOT)): lines
        for p in sorted(ROOT.rglob("*.py"))
        if (lines := _literals(p, constants.DEFAULT_HARDWARE))
    }
    assert set(found) == {"constants.py"}
    assert request.DEFAULT_HARDWARE is constants.DEFAULT_HARDWARE


@pytest.mark.parametrize(
    ("function", "parameter"),
    [
        (run_demo, "gpu"),
        (evaluate_profile, "hardware"),
        (build_report, "gpu"),
        (planning_context, "gpu"),
        (headline_findings, "gpu"),
        (next_steps, "gpu"),
    ],
)
def test_function_defaults_are_the_constant(function, parameter):
    assert inspect.signature(function).parameters[parameter].default == constants.DEFAULT_HARDWARE


def test_a_request_without_gpu_or_api_is_priced_on_the_default():
    assert request.PlanRequest({"flops": 1.0}).gpu == constants.DEFAULT_HARDWARE
    assert request.PlanRequest({"flops": 1.0}, api="o3-mini").gpu is None
