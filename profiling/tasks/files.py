"""Tasks read from JSONL files: GSM8K-style and MATH-style problems.

* GSM8K style: ``{"question": ..., "answer": "<worked solution>\\n#### 18"}``; the reference is
  the number after ``####``; no difficulty levels (``"all"``).
* MATH style: ``{"problem": ..., "solution": "... \\boxed{...} ...", "answer": ..., "level": 3}``;
  the reference is ``answer`` (or, without it, the last ``\\boxed{}`` of ``solution``); the
  difficulty is ``level`` as a string ``"1"``..``"5"`` (``"Level 3"`` is read too).

Answers are compared after :func:`normalize_number` (GSM8K) or :func:`normalize_math` (MATH:
simple LaTeX canonicalisation, and equal values for plain numbers and fractions). Prompts state
the answer convention (``#### <number>`` or ``\\boxed{}``); ``few_shot=k`` puts the file's first
``k`` problems with their solutions before each question and leaves them out of
:meth:`~FileTask.problems`. Budget forcing appends :attr:`~FileTask.answer_trigger`; chat
templates are applied by the backend (``chat=True``), not here.

Errors name the file, the line and the field::

    data.jsonl line 3: field 'answer' must end with '#### <answer>', got 'about 5'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from ._base import Problem, Task

__all__ = [
    "TaskFileError",
    "FileTask",
    "GSM8KTask",
    "MathTask",
    "load_jsonl_task",
    "last_boxed",
    "normalize_number",
    "normalize_math",
    "math_answers_match",
]


class TaskFileError(ValueError):
    """A task file that cannot be read; the message names the file, line and field."""


# ---- answer extraction and normalisation ---------------------------------------------------
def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The content of the balanced ``{...}`` opening at ``text[start]`` and the index after it."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif text[i] == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, ``\\boxed 5``) in ``text``, nested braces kept.

    Examples
    --------
    >>> last_boxed(r"so $\\boxed{\\frac{1}{2}}$ and then \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.")
    '\\\\left( 3, \\\\frac{\\\\pi}{2} \\\\right)'
    >>> last_boxed("no box") is None
    True
    """
    best = None
    for match in re.finditer(r"\\(?:boxed|fbox)\s*", text):
        end = match.end()
        if end < len(text) and text[end] == "{":
            inner = _braced(text, end)
            if inner is not None:
                best = inner[0]
        elif match.group(0).endswith(" "):  # "\boxed 5": up to the next space or $
            word = re.match(r"[^\s$]+", text[end:])
            if word:
                best = word.group(0)
    return best


_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def _canonical_number(text: str) -> str | None:
    """``"1,234.50"`` -> ``"1234.5"``; None when ``text`` is not a plain number."""
    if not re.fullmatch(_NUMBER.pattern, text):
        return None
    value = text.replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
        if value.startswith("-."):
            value = "-0" + value[1:]
        elif value.startswith("."):
            value = "0" + value
    if value in ("-0", ""):
        value = "0"
    return value


def normalize_number(answer: str) -> str:
    """Canonical form of a GSM8K-style numeric answer: no ``$``, commas, units, trailing ``.0``.

    Falls back to the stripped text when no number is found.

    Examples
    --------
    >>> [normalize_number(a) for a in ["$1,200.00", "18 dollars", "-3.", " 0.50 kg", "1/2"]]
    ['1200', '18', '-3', '0.5', '1/2']
    """
    text = answer.strip().replace("$", "").replace("\\!", "")
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text).strip().rstrip(".").strip()
    exact = _canonical_number(text)
    if exact is not None:
        return exact
    # a number followed by units or a trailing word: "18 dollars", "5%"
    lead = re.match(rf"({_NUMBER.pattern})\s*(?:%|[A-Za-z][A-Za-z ./]*)?$", text)
    if lead:
        return _canonical_number(lead.group(1)) or text
    return re.sub(r"\s+", " ", text)


_TEXT_MACROS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{")


def _unwrap_macros(text: str) -> str:
    """``\\text{Evelyn}`` -> ``Evelyn`` (nested braces kept) for the text-like macros."""
    for _ in range(50):  # bounded: each pass removes one macro
        match = _TEXT_MACROS.search(text)
        if not match:
            break
        inner = _braced(text, match.end() - 1)
        if inner is None:
            break
        text = text[: match.start()] + inner[0] + text[inner[1] :]
    return text


def _brace_fracs(text: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac{1}2`` -> ``\\frac{1}{2}``, ``\\sqrt2`` -> ``\\sqrt{2}``."""
    text = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", text)
    out, i = [], 0
    while True:
        j = text.find("\\frac", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i : j + 5])
        k = j + 5
        for _ in range(2):
            if k < len(text) and text[k] == "{":
                inner = _braced(text, k)
                if inner is None:
                    break
                out.append("{" + inner[0] + "}")
                k = inner[1]
            elif k < len(text) and text[k] not in "\\}":
                out.append("{" + text[k] + "}")
                k += 1
        i = k
    return "".join(out)


def normalize_math(answer: str) -> str:
    """Canonical form of a MATH-style answer (simple LaTeX rules, applied in order).

    Unwraps ``\\boxed{}`` and ``$``; drops ``\\left``/``\\right``, ``\\!``, ``\\,``-style spaces,
    degrees (``^\\circ``), ``\\%``, ``\\$``; ``\\dfrac``/``\\tfrac`` -> ``\\frac``; keeps the content
    of ``\\text{}``-like macros; braces ``\\frac12``; drops a leading ``x =``, trailing ``.``, a
    unit word after a number, all whitespace; plain numbers lose commas and trailing zeros;
    ``a/b`` of integers becomes ``\\frac{a}{b}``.

    Examples
    --------
    >>> normalize_math(r"\\left( 3, \\dfrac{\\pi}{2} \\right)")
    '(3,\\\\frac{\\\\pi}{2})'
    >>> [normalize_math(a) for a in [r"90^\\circ", r"\\$1,000.00", r"x = 5", r"\\text{(C)}", "3/4", r"10\\%"]]
    ['90', '1000', '5', '(C)', '\\\\frac{3}{4}', '10']
    """
    text = answer.strip()
    boxed = last_boxed(text)
    if boxed is not None:
        text = boxed
    text = text.strip().strip("$").strip()
    text = text.replace("\\!", "").replace("\\left", "").replace("\\right", "")
    text = re.sub(r"\\[,;: ]|~", " ", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°", "", text)
    text = text.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    text = _unwrap_macros(text)
    text = re.sub(r"\s*(?:degrees?|units?|cm|inches|inch|feet|meters?)\s*$", "", text)
    text = re.sub(r"^[a-zA-Z]\s*=\s*(?=\S)", "", text)  # "x = 5" -> "5"
    text = text.strip().rstrip(".").strip()
    text = re.sub(r"\s+", "", text)
    text = _brace_fracs(text)
    number = _canonical_number(text)
    if number is not None:
        return number
    frac = re.fullmatch(r"(-?\d+)/(\d+)", text)
    if frac:
        return f"\\frac{{{frac.group(1)}}}{{{frac.group(2)}}}"
    return text


def _math_value(text: str) -> Fraction | None:
    """The exact value of a normalized plain number or integer fraction, else None."""
    number = _canonical_number(text)
    if number is not None:
        return Fraction(number)
    match = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(\d+)\}", text)
    if match and int(match.group(3)) != 0:
        value = Fraction(int(match.group(2)), int(match.group(3)))
        return -value if match.group(1) else value
    return None


def math_answers_match(a: str, b: str) -> bool:
    """Equal after :func:`normalize_math`, or both plain numbers/fractions of equal value.

    Examples
    --------
    >>> math_answers_match("0.5", r"\\frac{1}{2}"), math_answers_match(r"-\\frac{3}{6}", "-0.5"), math_answers_match("2", "3")
    (True, True, False)
    """
    na, nb = normalize_math(a), normalize_math(b)
    if na == nb:
        return True
    va, vb = _math_value(na), _math_value(nb)
    return va is not None and va == vb


_MARKERS = re.compile(r"(?:final answer(?: is)?|the answer is|answer)\s*[:：]?\s*", re.IGNORECASE)


def _after_marker(text: str) -> str | None:
    """The rest of the line after the last 'final answer' / 'the answer is' / 'Answer:' marker."""
    found = None
    for match in _MARKERS.finditer(text):
        line = text[match.end() :].split("\n", 1)[0].strip()
        if line:
            found = line
    return found


# ---- tasks ---------------------------------------------------------------------------------
class FileTask(Task):
    """Problems read from a JSONL file (see :func:`load_jsonl_task`)."""

    step_delimiter = "\n"
    supports_direct = True
    kind = ""
    #: instruction stating the answer convention, put before the (few-shot) questions
    instruction = ""

    def __init__(self, problems: list[Problem], *, name: str, few_shot: int = 0, source: str = "") -> None:
        if few_shot < 0 or few_shot >= max(len(problems), 1):
            raise ValueError(
                f"{source or name}: few_shot must be in [0, {len(problems) - 1}], got {few_shot}"
            )
        self.name = name
        self.source = source
        self.exemplars = problems[:few_shot]
        self._problems = problems[few_shot:]

    def __len__(self) -> int:
        return len(self._problems)

    def problems(
        self, split: str = "eval", per_level: int | None = None, limit: int | None = None
    ) -> Iterator[Problem]:
        """The file's problems (``split`` ``"eval"``, ``"test"`` or ``"all"``: a file has one split).

        ``per_level`` keeps the first ``per_level`` of each difficulty, levels in numeric order;
        ``limit`` keeps the first ``limit`` overall (after ``per_level``).
        """
        if split not in ("eval", "test", "all"):
            raise ValueError(f"{self.source or self.name}: a file task has one split ('eval'), got {split!r}")
        chosen = self._problems
        if per_level is not None:
            by_level: dict[str, list[Problem]] = {}
            for p in chosen:
                by_level.setdefault(p.difficulty, []).append(p)
            order = sorted(by_level, key=lambda d: (not d.isdigit(), int(d) if d.isdigit() else 0, d))
            chosen = [p for d in order for p in by_level[d][:per_level]]
        if limit is not None:
            chosen = chosen[:limit]
        yield from chosen

    def _shots(self, cot: bool) -> str:
        return "".join(self._exemplar(p, cot) + "\n\n" for p in self.exemplars)

    def _exemplar(self, problem: Problem, cot: bool) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


class GSM8KTask(FileTask):
    """GSM8K-style problems: numeric answers, ``#### <number>`` convention."""

    kind = "gsm8k"
    answer_trigger = "\n#### "
    instruction = (
        "Solve the math word problem. Reason step by step, then give the final answer as a number "
        "on its own line in the form '#### <number>'.\n\n"
    )
    direct_instruction = "Give only the final answer, as a number in the form '#### <number>'.\n\n"

    def format_prompt(self, problem: Problem, cot: bool = True) -> str:
        head = self.instruction if cot else self.direct_instruction
        tail = f"Question: {problem.question}\nAnswer:" + ("" if cot else " ####")
        return head + self._shots(cot) + tail

    def _exemplar(self, problem: Problem, cot: bool) -> str:
        if not cot:
            return f"Question: {problem.question}\nAnswer: #### {problem.answer}"
        solution = re.sub(r"<<[^<>]*>>", "", problem.meta["solution"])  # calculator annotations
        return f"Question: {problem.question}\nAnswer: {solution}"

    def normalize(self, answer: str) -> str:
        return normalize_number(answer)

    def extract_answer(self, completion: str) -> str | None:
        """After the last ``####``; else the last ``\\boxed{}``; else after an answer marker;
        else the last number in the text."""
        candidate = None
        if "####" in completion:
            candidate = completion.rsplit("####", 1)[1].strip().split("\n", 1)[0]
        if not candidate:
            candidate = last_boxed(completion)
        if not candidate:
            candidate = _after_marker(completion)
        if not candidate:  # no convention followed: the last number in the text
            numbers = _NUMBER.findall(completion)
            return _canonical_number(numbers[-1]) if numbers else None
        answer = normalize_number(candidate)
        if _canonical_number(answer) is None:  # words around the number: take the first number
            numbers = _NUMBER.findall(candidate.replace("$", ""))
            answer = _canonical_number(numbers[0]) if numbers else answer
        return answer or None


class MathTask(FileTask):
    """MATH-style problems: LaTeX answers in ``\\boxed{}``, difficulty from ``level``."""

    kind = "math"
    answer_trigger = "\nFinal answer: "
    instruction = "Solve the problem. Reason step by step, and put the final answer in \\boxed{}.\n\n"
    direct_instruction = "Give only the final answer, in \\boxed{}.\n\n"

    def format_prompt(self, problem: Problem, cot: bool = True) -> str:
        head = self.instruction if cot else self.direct_instruction
        tail = f"Problem: {problem.question}\nSolution:" + ("" if cot else " Final answer: ")
        return head + self._shots(cot) + tail

    def _exemplar(self, problem: Problem, cot: bool) -> str:
        if not cot:
            return f"Problem: {problem.question}\nSolution: Final answer: $\\boxed{{{problem.answer}}}$"
        return f"Problem: {problem.question}\nSolution: {problem.meta['solution']}"

    def normalize(self, answer: str) -> str:
        return normalize_math(answer)

    def extract_answer(self, completion: str) -> str | None:
        """The last ``\\boxed{}``; else the rest of the line after an answer marker; normalized."""
        candidate = last_boxed(completion)
        if candidate is None:
            candidate = _after_marker(completion)
        if candidate is None:
            return None
        answer = normalize_math(candidate)
        return answer or None

    def is_correct(self, answer: str | None, problem: Problem) -> bool:
        """Equal normalized forms, or equal values of plain numbers and fractions."""
        return answer is not None and math_answers_match(answer, problem.answer)


# ---- loading -------------------------------------------------------------------------------
def _str_field(record: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        got = "missing" if key not in record else f"{type(value).__name__} {str(value)[:40]!r}"
        raise TaskFileError(f"{where}: field {key!r} must be a non-empty string, got {got}")
    return value


def _level(record: dict[str, Any], where: str) -> str:
    if "level" not in record or record["level"] is None:
        return "all"
    value = record["level"]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(?:level\s*)?(\d+)\s*", value, re.IGNORECASE)
        if match:
            return str(int(match.group(1)))
    raise TaskFileError(f"{where}: field 'level' must be an integer or 'Level N', got {str(value)[:40]!r}")


def _gsm8k_problem(record: dict[str, Any], where: str, ident: str) -> Problem:
    question = _str_field(record, "question", where) or ""
    solution = _str_field(record, "answer", where) or ""
    tail = solution.rsplit("####", 1)[1].strip() if "####" in solution else ""
    reference = normalize_number(tail) if tail else ""
    if not reference:
        raise TaskFileError(f"{where}: field 'answer' must end with '#### <answer>', got {solution[-40:]!r}")
    return Problem(ident, question, reference, "all", {"solution": solution, "line": int(ident)})


def _math_problem(record: dict[str, Any], where: str, ident: str) -> Problem:
    problem = _str_field(record, "problem", where) or ""
    solution = _str_field(record, "solution", where, required=False)
    answer = _str_field(record, "answer", where, required=False) if "answer" in record else None
    reference = answer if answer is not None else (last_boxed(solution) if solution else None)
    if reference is None or not normalize_math(reference):
        raise TaskFileError(
            f"{where}: no reference answer: field 'answer' is missing and field 'solution' has no \\boxed{{...}}"
        )
    meta = {"solution": solution or "", "line": int(ident), "subject": record.get("subject")}
    if isinstance(record.get("unique_id"), str):
        meta["unique_id"] = record["unique_id"]
    return Problem(ident, problem, reference, _level(record, where), meta)


def _detect_kind(record: dict[str, Any], where: str) -> str:
    if "question" in record and "answer" in record:
        return "gsm8k"
    if "problem" in record and ("solution" in record or "answer" in record):
        return "math"
    fields = ", ".join(sorted(map(str, record))[:10])
    raise TaskFileError(
        f"{where}: cannot tell the task kind from fields [{fields}]; expected 'question' and 'answer' "
        "(GSM8K style) or 'problem' with 'solution' or 'answer' (MATH style)"
    )


def load_jsonl_task(
    path: str | Path, kind: str = "auto", *, name: str | None = None, few_shot: int = 0
) -> FileTask:
    """A task from a JSONL file of GSM8K-style or MATH-style problems.

    Parameters
    ----------
    path : str or Path
        One JSON object per line; blank lines are skipped.
    kind : {"auto", "gsm8k", "math"}
        ``"auto"`` detects the style from the first record's fields.
    name : str, optional
        Task name for the samples table; default the file's stem.
    few_shot : int, default 0
        Use the first ``few_shot`` problems as worked examples in every prompt (they are then
        not among :meth:`~FileTask.problems`).

    Raises
    ------
    TaskFileError
        (a ``ValueError``) naming the file, line and field of the first problem found.

    Examples
    --------
    >>> task = load_jsonl_task("data/gsm8k_test.jsonl")  # doctest: +SKIP
    >>> p = next(task.problems(limit=1)); p.answer  # doctest: +SKIP
    '18'
    """
    if kind not in ("auto", "gsm8k", "math"):
        raise ValueError(f"kind must be 'auto', 'gsm8k' or 'math', got {kind!r}")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise TaskFileError(f"{path}: cannot read the file: {err.strerror or err}") from err
    problems: list[Problem] = []
    for lineno, line_bytes in enumerate(raw.split(b"\n"), start=1):
        where = f"{path.name} line {lineno}"
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as err:
            raise TaskFileError(f"{where}: not valid UTF-8 ({err.reason} at byte {err.start})") from err
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise TaskFileError(f"{where}: invalid JSON ({str(err)[:80]})") from err
        if not isinstance(record, dict):
            raise TaskFileError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if kind == "auto":
            kind = _detect_kind(record, where)
        make = _gsm8k_problem if kind == "gsm8k" else _math_problem
        problems.append(make(record, where, str(lineno)))
    if not problems:
        raise TaskFileError(f"{path}: no problems (the file is empty)")
    cls = GSM8KTask if kind == "gsm8k" else MathTask
    return cls(problems, name=name or path.stem, few_shot=few_shot, source=path.name)
