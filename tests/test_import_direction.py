"""DESIGN.md's import direction: fitting <- profiling <- planner; fitting never imports torch."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "; import sys; print(' '.join(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    return set(out.stdout.split())


def test_fitting_imports_neither_torch_nor_the_other_packages():
    mods = imported_after("import fitting, fitting.pipeline, fitting.importer, fitting.curves")
    assert not {m for m in mods if m.split(".")[0] in ("torch", "profiling", "planner", "transformers")}


def test_profiling_does_not_import_planner():
    mods = imported_after("import profiling.runner, profiling.strategies, profiling.backends, profiling.tasks")
    assert not {m for m in mods if m.split(".")[0] == "planner"}
