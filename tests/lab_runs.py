"""The ``ttc profile`` command line of a small lab run, shared by the tests that profile one."""

from __future__ import annotations

from pathlib import Path


def profile_args(out: Path, *strategies: str, model: str = "lab-s", questions: int = 1) -> list[str]:
    """``profile --model MODEL --task lab-arith --strategy S... --questions Q --out OUT``."""
    args = ["profile", "--model", model, "--task", "lab-arith"]
    for spec in strategies:
        args += ["--strategy", spec]
    return [*args, "--questions", str(questions), "--out", str(out)]
