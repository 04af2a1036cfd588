"""``ttc import`` of other tools' evaluation logs: the format, its flags, the tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

#: which flags belong to which log format (a flag given for another format is refused)
_FLAGS = {
    "--tokenizer": "lm-eval",
    "--answer-regex": "lm-eval",
    "--scorer": "inspect",
    "--score-threshold": "inspect",
}


def log_reader(
    file: Path,
    fmt: str,
    *,
    tokenizer: str | None,
    answer_regex: str | None,
    scorer: str | None,
    threshold: float | None,
) -> Callable | None:
    """The reader of ``file`` for ``fitting.importer.import_file`` (None: a table, the importer's own).

    Raises ``ValueError`` (one line) for a flag that the format does not use."""
    from fitting import evallogs

    if fmt not in evallogs.FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(evallogs.FORMATS)}")
    found = evallogs.detect_format(file) if fmt == "auto" else fmt
    given = {"--tokenizer": tokenizer, "--answer-regex": answer_regex, "--scorer": scorer}
    given["--score-threshold"] = threshold
    for flag, value in given.items():
        if value is not None and _FLAGS[flag] != found:
            raise ValueError(f"{flag} applies to {_FLAGS[flag]} logs; {file} is read as {found}")
    count = token_counter(tokenizer) if tokenizer is not None else None
    return evallogs.reader(
        found,
        count_tokens=count,
        answer_regex=answer_regex,
        scorer=scorer,
        threshold=1.0 if threshold is None else threshold,
    )


def token_counter(spec: str) -> Callable[[list[str], bool], list[int]]:
    """Token counts of texts by the tokenizer ``spec`` (a Hugging Face name or folder):
    ``count(texts, special)`` with or without the tokenizer's special tokens."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"--tokenizer {spec}: cannot load a tokenizer ({first})") from None

    def count(texts: list[str], special: bool) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in tok(texts, add_special_tokens=special)["input_ids"]]

    return count
