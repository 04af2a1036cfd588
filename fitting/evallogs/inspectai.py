"""Inspect AI logs (``inspect eval ... --epochs N``, ``.eval`` or ``.json``) as a samples table.

Read through ``inspect_ai.log`` (the ``evals`` extra; imported when a log is read). A path is one
log or a folder of logs (searched recursively); logs of several models or tasks are kept apart
by their ``model`` and ``task``.

* **One row per (sample, epoch)**: ``question_id`` ``<task>/<sample id>``, ``sample_idx`` the
  epoch - 1, ``reference`` the target, ``run_id`` ``inspect/<eval id>``, strategy ``pool``,
  ``config`` {``n``: epochs, ``temperature``, ``max_tokens``, ``top_p``} from the generate config.
* **Correctness** from one scorer (``--scorer NAME``; default: the log's first), its value
  mapped as Inspect's ``value_to_float`` maps it: ``C`` 1, ``P`` 0.5, ``I`` and ``N`` 0,
  booleans 0/1, numbers as they are, ``yes``/``true`` 1, ``no``/``false`` 0, numeric strings;
  a sample is correct when that number is >= ``threshold`` (default 1: only fully correct).
  Anything else (a list or dict of values) is refused, naming the log and sample.
* **Answers** from the score's ``answer`` (none: an abstention in majority vote).
* **Tokens** from the sample's usage of the evaluated model: ``prompt_tokens`` = input tokens
  (cache reads and writes included), ``completion_tokens`` = output tokens plus reasoning
  tokens where the provider reports them apart from the output (total = input + output +
  reasoning), else the output tokens alone (they already include reasoning).
* **Latency** ``latency_s`` = the sample's working time (its total time when absent).
* **Model** ``model_path`` of the model arguments when given (``hf/local``, ``vllm/local``),
  else the log's model name; **task** the log's task.

Samples that errored without a score are skipped and counted in a note; a log that is not a
readable Inspect log stops the import with one line naming it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from .. import schema as S
from ..importer import ImportResult
from ._common import config_json, samples_result

__all__ = ["read_inspect", "score_to_float", "is_inspect_json", "MISSING_INSPECT"]

MISSING_INSPECT = "reading Inspect AI logs needs inspect_ai: pip install 'ttc-planner[evals]'"
_LETTERS = {"C": 1.0, "P": 0.5, "I": 0.0, "N": 0.0}
_WORDS = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}


def is_inspect_json(path: Path) -> bool:
    """Whether a ``.json`` file is an Inspect log: it opens with its ``version`` and ``eval``."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        head = fh.read(4096)
    return head.lstrip().startswith("{") and '"version"' in head and '"eval"' in head


def score_to_float(value: object) -> float | None:
    """A scalar score value as a number (see the module docstring), None when it has none.

    Examples
    --------
    >>> [score_to_float(v) for v in ("C", "P", "I", True, 0.25, "yes", "0.5")]
    [1.0, 0.5, 0.0, 1.0, 0.25, 1.0, 0.5]
    >>> score_to_float({"a": 1}) is None
    True
    """
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    if value in _LETTERS:
        return _LETTERS[value]
    if value.lower() in _WORDS:
        return _WORDS[value.lower()]
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def read_inspect(path: str | Path, *, scorer: str | None = None, threshold: float = 1.0) -> ImportResult:
    """Read one Inspect log or a folder of them as samples; see the module docstring."""
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise ImportError(MISSING_INSPECT) from None
    path = Path(path)
    files = _log_files(path)
    rows, notes = [], []
    for file in files:
        try:
            log = read_eval_log(str(file))
        except Exception as exc:  # a truncated zip, corrupt JSON, a foreign file: many types
            raise S.SchemaError(_unreadable(file, exc)) from None
        rows += _log_rows(log, file, scorer, threshold, notes)
    return samples_result(rows, path, notes)


def _unreadable(file: Path, exc: Exception) -> str:
    """One line for a log Inspect cannot read: its line where the JSON parser gave one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    why = "; ".join(lines[:3]) or type(exc).__name__
    at = re.search(r"at line (\d+) column \d+", why)
    where = f"{file} line {at[1]}" if at else str(file)
    return f"{where}: not a readable Inspect AI log, a truncated or corrupt file? ({why})"


def _log_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise S.SchemaError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*.eval") if p.is_file())
    files += sorted(p for p in path.rglob("*.json") if p.is_file() and is_inspect_json(p))
    if not files:
        raise S.SchemaError(f"{path}: no Inspect AI logs (*.eval, or *.json logs) found")
    return files


def _log_rows(log, file: Path, scorer: str | None, threshold: float, notes: list[str]) -> list[dict]:
    if not log.samples:
        raise S.SchemaError(
            f"{file}: the log holds no samples (status {log.status}; run without --no-log-samples)"
        )
    names = [s.name for s in (log.results.scores if log.results else [])]
    names += [n for s in log.samples for n in (s.scores or {}) if n not in names]
    name = scorer or (names[0] if names else None)
    if name not in names:
        have = ", ".join(names) or "none"
        raise S.SchemaError(f"{file}: --scorer {name!r} is not in this log; its scorers: {have}")
    ident = {
        S.RUN_ID: f"inspect/{log.eval.eval_id}",
        S.MODEL: str((log.eval.model_args or {}).get("model_path") or log.eval.model),
        S.BACKEND: "inspect",
        S.TASK: log.eval.task,
        S.STRATEGY: "pool",
        S.CONFIG: config_json(_knobs(log)),
    }
    rows, skipped = [], 0
    for sample in log.samples:
        score = (sample.scores or {}).get(name)
        if score is None:
            skipped += 1
            continue
        row = _sample_row(sample, score, log.eval.model, file, name, threshold)
        rows.append({**ident, **row, S.QUESTION_ID: f"{log.eval.task}/{sample.id}"})
    if skipped:
        notes.append(f"{file.name}: {skipped} sample(s) without a {name!r} score (errored?) skipped")
    if log.status != "success":
        notes.append(f"{file.name}: the log's status is {log.status!r}; imported the samples it holds")
    return rows


def _sample_row(sample, score, model: str, file: Path, scorer: str, threshold: float) -> dict:
    value = score_to_float(score.value)
    if value is None:
        raise S.SchemaError(
            f"{file} sample {sample.id!r} epoch {sample.epoch}: scorer {scorer!r} gave {score.value!r}; "
            "expected C/I/P/N, a boolean, a number or yes/no"
        )
    prompt, completion = _tokens((sample.model_usage or {}).get(model))
    target = sample.target if isinstance(sample.target, str) else ", ".join(sample.target)
    time = sample.working_time if sample.working_time is not None else sample.total_time
    return {
        S.SAMPLE_IDX: sample.epoch - 1,
        S.ANSWER: score.answer,
        S.REFERENCE: target,
        S.CORRECT: value >= threshold,
        S.PROMPT_TOKENS: prompt,
        S.COMPLETION_TOKENS: completion,
        S.LATENCY_S: time,
    }


def _tokens(usage) -> tuple[int | None, int | None]:
    """(prompt tokens, generated tokens) of a model usage record (module docstring)."""
    if usage is None:
        return None, None
    prompt = usage.input_tokens + (usage.input_tokens_cache_read or 0) + (usage.input_tokens_cache_write or 0)
    reasoning = usage.reasoning_tokens or 0
    apart = reasoning and usage.total_tokens >= prompt + usage.output_tokens + reasoning
    return prompt, usage.output_tokens + (reasoning if apart else 0)


def _knobs(log) -> dict:
    gen = log.plan.config if log.plan else None
    base = log.eval.model_generate_config

    def knob(name: str):
        value = getattr(gen, name, None)
        return value if value is not None else getattr(base, name, None)

    return {
        "n": log.eval.config.epochs or 1,
        "temperature": knob("temperature"),
        "max_tokens": knob("max_tokens"),
        "top_p": knob("top_p"),
    }
