"""Evaluation logs of other tools as samples: lm-evaluation-harness and Inspect AI.

:func:`detect_format` tells what a path holds; :func:`reader` gives the function that
``fitting.importer.import_file`` reads it with (``ttc import --format``). The lm-eval reader
is plain JSON; the Inspect reader imports ``inspect_ai`` (the ``evals`` extra) when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from .. import schema as S
from ..importer import ImportResult
from .inspectai import MISSING_INSPECT, is_inspect_json, read_inspect, score_to_float
from .lmeval import Extractor, TokenCounter, is_lmeval_path, read_lmeval

__all__ = [
    "FORMATS",
    "TABLE",
    "LM_EVAL",
    "INSPECT",
    "detect_format",
    "reader",
    "read_lmeval",
    "read_inspect",
    "score_to_float",
    "Extractor",
    "TokenCounter",
    "MISSING_INSPECT",
]

TABLE, LM_EVAL, INSPECT = "table", "lm-eval", "inspect"
#: what ``ttc import --format`` accepts: ``auto`` tells them apart by :func:`detect_format`
FORMATS = ("auto", TABLE, LM_EVAL, INSPECT)


def detect_format(path: str | Path) -> str:
    """``"lm-eval"``, ``"inspect"`` or ``"table"`` (JSONL/CSV/Parquet records) for a file or
    folder, by names and first bytes. A folder holding both tools' logs raises a
    :class:`~fitting.schema.SchemaError` (import them one at a time, or give ``--format``).

    Examples
    --------
    >>> detect_format("tests/data/evallogs/lm-eval")
    'lm-eval'
    >>> detect_format("examples/samples.jsonl")
    'table'
    """
    p = Path(path)
    if p.is_dir():
        lm = any(
            is_lmeval_path(q)
            for q in p.rglob("*.json*")
            if q.is_file() and q.name.startswith(("samples_", "results_"))
        )
        ins = any(p.rglob("*.eval")) or any(is_inspect_json(q) for q in p.rglob("*.json") if q.is_file())
        if lm and ins:
            raise S.SchemaError(
                f"{p}: holds both lm-eval output and Inspect AI logs; import each folder on its own, "
                "or give --format lm-eval|inspect"
            )
        if lm or ins:
            return LM_EVAL if lm else INSPECT
        raise S.SchemaError(
            f"{p}: a folder, but it holds no lm-eval output (samples_<task>_<time>.jsonl) and no Inspect AI "
            "logs (*.eval); ttc import takes such a folder or a JSONL/CSV/Parquet file"
        )
    if not p.is_file():
        return TABLE  # the table reader says "no such file"
    if p.suffix.lower() == ".eval" or (p.suffix.lower() == ".json" and is_inspect_json(p)):
        return INSPECT
    if p.suffix.lower() in (".json", ".jsonl") and is_lmeval_path(p):
        return LM_EVAL
    return TABLE


def reader(
    fmt: str,
    *,
    count_tokens: TokenCounter | None = None,
    answer_regex: str | None = None,
    scorer: str | None = None,
    threshold: float = 1.0,
) -> Callable[[Path], ImportResult] | None:
    """The reader of a detected format with its options, or None for a table (the importer's own)."""
    if fmt == LM_EVAL:
        return partial(read_lmeval, count_tokens=count_tokens, answer_regex=answer_regex)
    if fmt == INSPECT:
        return partial(read_inspect, scorer=scorer, threshold=threshold)
    if fmt == TABLE:
        return None
    raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
