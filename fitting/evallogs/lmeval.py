"""lm-evaluation-harness output (``lm-eval run ... --log_samples``) as a samples table.

Reads a results folder (searched recursively), one ``samples_<task>_<time>.jsonl`` or one
``results_<time>.json``: each samples file is paired with the ``results_<time>.json`` of the
same time in its folder. Plain JSON: lm_eval itself is not needed.

* **One row per (doc, repeat)**: every raw response in ``resps`` (the samples file has one
  line per doc and filter; all lines of a doc carry the same responses), ``sample_idx`` the
  repeat, ``question_id`` ``<task>/<doc_id>``, ``task`` the task, ``reference`` the target.
* **Scored again**: the answer is extracted as lm-eval's ``regex`` filter does (the first
  filter of the task's ``filter_list`` with a regex step, as recorded in the results file;
  ``--answer-regex`` replaces it) and compared with the target as its ``exact_match`` does
  (with the metric's ``regexes_to_ignore``, ``ignore_case``, ``ignore_punctuation``,
  ``ignore_numbers``). No match is no answer (an abstention in majority vote; lm-eval's
  ``majority_vote`` counts its ``[invalid]`` fallback as an answer). A task without a regex
  filter is scored on the whole response, as lm-eval scores it.
* **Identity**: ``model`` from the results' ``model_name`` (else ``model_args``' ``pretrained``,
  else the folder lm-eval named after the model), ``run_id`` ``lm-eval/<time>``, strategy
  ``pool``, ``config`` {``n``: repeats, ``temperature``, ``max_gen_toks``} from the request's
  generation arguments (``do_sample: false`` is temperature 0).
* **Tokens**: with a token counter (``ttc import --tokenizer``), ``completion_tokens`` is each
  response tokenized without special tokens (the stop sequence is not in the response) and
  ``prompt_tokens`` the request's context with the tokenizer's special tokens; without one
  both are left empty and a note says so.
* **Log-likelihood tasks** (``loglikelihood``, ``multiple_choice``) score fixed choices and
  generate nothing, so there is no pool to estimate k samples from and nothing to price: they
  are refused with that reason (skipped with a note beside generative tasks).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import schema as S
from ..importer import ImportResult
from ._common import config_json, json_lines, read_json, samples_result

__all__ = ["Extractor", "read_lmeval", "is_lmeval_path", "TokenCounter"]

#: counts the tokens of each text: (texts, with the tokenizer's special tokens) -> counts
TokenCounter = Callable[[list[str], bool], list[int]]

_TIME = r"(?P<time>\d{4}-\d{2}-\d{2}T[0-9.:-]+)"
SAMPLES_NAME = re.compile(rf"samples_(?P<task>.+)_{_TIME}\.jsonl")
RESULTS_NAME = re.compile(rf"results_{_TIME}\.json")
#: lm-eval's RegexFilter defaults
DEFAULT_REGEX, DEFAULT_FALLBACK = r"#### (\-?[0-9\.\,]+)", "[invalid]"
_LOGLIKELIHOOD = ("loglikelihood", "multiple_choice", "loglikelihood_rolling")


@dataclass(frozen=True)
class Extractor:
    """lm-eval's ``regex`` filter and ``exact_match`` metric: a response -> (answer, verdict).

    Examples
    --------
    >>> e = Extractor(re.compile(r"Answer: (-?[0-9]+)"))
    >>> e.answer("3+4=7\\nAnswer: 7"), e.answer("no answer")
    ('7', None)
    >>> e.correct("7", "7"), e.correct(None, "7")
    (True, False)
    """

    pattern: re.Pattern | None  # None: the whole response is the answer (no regex filter)
    group_select: int = 0
    fallback: str = DEFAULT_FALLBACK
    ignore: tuple[str, ...] = ()
    ignore_case: bool = False
    ignore_punctuation: bool = False
    ignore_numbers: bool = False

    def answer(self, response: str) -> str | None:
        """The extracted answer, or None where lm-eval would give its fallback."""
        if self.pattern is None:
            return response
        found = self.pattern.findall(response)
        if not found:
            return None
        match = found[self.group_select] if -len(found) <= self.group_select < len(found) else None
        if isinstance(match, tuple):
            match = next((m for m in match if m), None)
        return None if match is None else match.strip()

    def normalize(self, text: str) -> str:
        for pattern in self.ignore:
            text = re.sub(pattern, "", text)
        if self.ignore_case:
            text = text.lower()
        if self.ignore_punctuation:
            text = text.translate(str.maketrans("", "", string.punctuation))
        if self.ignore_numbers:
            text = text.translate(str.maketrans("", "", string.digits))
        return text

    def correct(self, answer: str | None, targets: list[str]) -> bool:
        got = self.normalize(self.fallback if answer is None else answer)
        return any(got == self.normalize(t) for t in targets)


def is_lmeval_path(path: Path) -> bool:
    """Whether a file is lm-eval output (by its name, or a samples line's fields)."""
    if SAMPLES_NAME.fullmatch(path.name) or RESULTS_NAME.fullmatch(path.name):
        return True
    if path.suffix.lower() != ".jsonl":
        return False
    with path.open(encoding="utf-8", errors="replace") as fh:
        head = fh.readline()
    return '"doc_id"' in head and '"resps"' in head


def read_lmeval(
    path: str | Path, *, count_tokens: TokenCounter | None = None, answer_regex: str | None = None
) -> ImportResult:
    """Read lm-eval output (a folder, a samples file or a results file) as samples; see the
    module docstring. Raises :class:`~fitting.schema.SchemaError` naming file and line."""
    path = Path(path)
    custom = _compile(answer_regex) if answer_regex is not None else None
    notes: list[str] = []
    rows: list[dict] = []
    refused: list[str] = []
    for samples_file, results_file in _pairs(path, notes):
        results = _results(results_file) if results_file else None
        task = SAMPLES_NAME.fullmatch(samples_file.name)["task"]
        cfg = _task_config(results, task, results_file)
        if (cfg or {}).get("output_type") in _LOGLIKELIHOOD:
            refused.append(f"{samples_file.name} ({cfg['output_type']})")
            continue
        extractor = _extractor(cfg, custom, samples_file, notes)
        new = _rows(samples_file, task, results, extractor)
        if new is None:
            refused.append(f"{samples_file.name} (loglikelihood)")
            continue
        rows += new
    if refused and not rows:
        raise S.SchemaError(f"{path}: {_refusal(refused)}")
    if refused:
        notes.append(f"skipped {_refusal(refused)}")
    if answer_regex is not None:
        notes.append(f"answers extracted with --answer-regex {answer_regex!r} (not the tasks' own filters)")
    _count_tokens(rows, count_tokens, notes)
    return samples_result(rows, path, notes)


def _refusal(refused: list[str]) -> str:
    return (
        f"log-likelihood (multiple-choice) tasks score fixed choices and generate nothing, so they "
        f"have no samples to vote over or price: {', '.join(refused)}"
    )


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise S.SchemaError(f"--answer-regex {pattern!r}: not a regular expression ({exc})") from None


def _pairs(path: Path, notes: list[str]) -> list[tuple[Path, Path | None]]:
    """(samples file, its results file or None) for every samples file the path names."""
    if path.is_dir():
        samples = sorted(p for p in path.rglob("samples_*.jsonl") if SAMPLES_NAME.fullmatch(p.name))
        results = sorted(p for p in path.rglob("results_*.json") if RESULTS_NAME.fullmatch(p.name))
    elif SAMPLES_NAME.fullmatch(path.name):
        samples, results = [path], []
    elif RESULTS_NAME.fullmatch(path.name):
        time = RESULTS_NAME.fullmatch(path.name)["time"]
        samples = sorted(
            p for p in path.parent.glob(f"samples_*_{time}.jsonl") if SAMPLES_NAME.fullmatch(p.name)
        )
        results = [path]
    else:
        raise S.SchemaError(
            f"{path}: not lm-eval output (expected a results folder, samples_<task>_<time>.jsonl "
            "or results_<time>.json)"
        )
    pairs = []
    for s in samples:
        r = s.parent / f"results_{SAMPLES_NAME.fullmatch(s.name)['time']}.json"
        if not r.is_file():
            notes.append(f"{s}: no {r.name} beside it: model named after its folder, task settings unknown")
        pairs.append((s, r if r.is_file() else None))
    paired = {r for _, r in pairs}
    lone = [r.name for r in results if r not in paired]
    if lone and not pairs:
        raise S.SchemaError(
            f"{path}: {', '.join(lone)} without samples files; run lm-eval with --log_samples"
        )
    if lone:
        notes.append(f"no samples files for {', '.join(lone)} (run without --log_samples?)")
    if not pairs:
        raise S.SchemaError(f"{path}: no lm-eval samples files (samples_<task>_<time>.jsonl) found")
    return pairs


def _results(path: Path) -> dict:
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("configs", {}), dict):
        raise S.SchemaError(f"{path}: not an lm-eval results file (expected an object with 'configs')")
    return doc


def _task_config(results: dict | None, task: str, where: Path | None) -> dict | None:
    if results is None:
        return None
    cfg = results.get("configs", {}).get(task)
    if cfg is not None and not isinstance(cfg, dict):
        raise S.SchemaError(f"{where}: configs[{task!r}] must be an object")
    return cfg


def _extractor(
    cfg: dict | None, custom: re.Pattern | None, samples_file: Path, notes: list[str]
) -> Extractor:
    """The task's own answer filter and exact_match options, ``custom`` replacing its regex."""
    if cfg is None and custom is None:
        raise S.SchemaError(
            f"{samples_file}: no results file beside it to read the task's answer filter from; "
            "give --answer-regex REGEX (e.g. 'Answer: (-?[0-9]+)') or import the whole results folder"
        )
    options = {}
    for metric in (cfg or {}).get("metric_list") or []:
        if isinstance(metric, dict) and metric.get("metric") == "exact_match":
            options = metric
    kw = dict(
        ignore=tuple(str(r) for r in options.get("regexes_to_ignore") or ()),
        ignore_case=bool(options.get("ignore_case")),
        ignore_punctuation=bool(options.get("ignore_punctuation")),
        ignore_numbers=bool(options.get("ignore_numbers")),
    )
    if custom is not None:
        return Extractor(custom, **kw)
    step = _regex_step(cfg)
    if step is None:
        notes.append(f"{samples_file.name}: the task has no regex filter; answers are the whole responses")
        return Extractor(None, **kw)
    try:
        pattern = re.compile(str(step.get("regex_pattern", DEFAULT_REGEX)))
    except re.error as exc:
        raise S.SchemaError(f"{samples_file}: the task's regex filter does not compile ({exc})") from None
    group = step.get("group_select", 0)
    if isinstance(group, bool) or not isinstance(group, int):
        raise S.SchemaError(
            f"{samples_file}: the task's regex filter has group_select {group!r}; expected an integer"
        )
    return Extractor(pattern, group, str(step.get("fallback", DEFAULT_FALLBACK)), **kw)


def _regex_step(cfg: dict) -> dict | None:
    """The regex step of the first filter of the task's filter_list that has one."""
    for flt in cfg.get("filter_list") or []:
        for step in (flt.get("filter") or []) if isinstance(flt, dict) else []:
            if isinstance(step, dict) and step.get("function") == "regex":
                return step
    return None


def _model(results: dict | None, samples_file: Path) -> str:
    if results:
        name = results.get("model_name")
        if isinstance(name, str) and name:
            return name
        args = (results.get("config") or {}).get("model_args")
        if isinstance(args, dict) and args.get("pretrained"):
            return str(args["pretrained"])
        if isinstance(args, str):
            found = re.search(r"(?:^|,)\s*pretrained=([^,]+)", args)
            if found:
                return found[1]
    return samples_file.parent.name


def _rows(samples_file: Path, task: str, results: dict | None, extractor: Extractor) -> list[dict] | None:
    """One row per (doc, repeat) of a samples file; None for a log-likelihood task's file."""
    time = SAMPLES_NAME.fullmatch(samples_file.name)["time"]
    ident = {
        S.RUN_ID: f"lm-eval/{time}",
        S.MODEL: _model(results, samples_file),
        S.BACKEND: "lm-eval",
        S.TASK: task,
        S.STRATEGY: "pool",
    }
    rows, seen = [], {}
    for lineno, rec in json_lines(samples_file):
        where = f"{samples_file} line {lineno}"
        doc_id, responses, gen, context = _doc(rec, where)
        if responses is None:
            return None
        targets = _targets(rec, where)
        if doc_id in seen:  # the same doc under another filter: the same responses
            if seen[doc_id][1] != responses:
                raise S.SchemaError(
                    f"{where}: doc {doc_id} has other responses than on line {seen[doc_id][0]}"
                )
            continue
        seen[doc_id] = (lineno, responses)
        config = config_json(_knobs(gen, len(responses)))
        for i, text in enumerate(responses):
            answer = extractor.answer(text)
            rows.append(
                {
                    **ident,
                    S.CONFIG: config,
                    S.QUESTION_ID: f"{task}/{doc_id}",
                    S.SAMPLE_IDX: i,
                    S.ANSWER: answer,
                    S.REFERENCE: targets[0],
                    S.CORRECT: extractor.correct(answer, targets),
                    "_completion": text,
                    "_prompt": context,
                }
            )
    return rows


def _doc(rec: dict, where: str) -> tuple[int, list[str] | None, dict, str | None]:
    """(doc_id, responses or None for a log-likelihood request, generation arguments, context)."""
    doc_id = rec.get("doc_id")
    if isinstance(doc_id, bool) or not isinstance(doc_id, int) or doc_id < 0:
        raise S.SchemaError(f"{where}: field 'doc_id' must be a non-negative integer, got {doc_id!r}")
    resps = rec.get("resps")
    if not isinstance(resps, list) or not resps or not isinstance(resps[0], list) or not resps[0]:
        raise S.SchemaError(f"{where}: field 'resps' must be a list holding a non-empty list of responses")
    responses = resps[0]
    args = (rec.get("arguments") or {}).get("gen_args_0") if isinstance(rec.get("arguments"), dict) else None
    args = args if isinstance(args, dict) else {}
    if any(isinstance(r, list) for r in responses) or not isinstance(args.get("arg_1", {}), dict):
        return doc_id, None, {}, None
    bad = next((r for r in responses if not isinstance(r, str)), None)
    if bad is not None:
        raise S.SchemaError(f"{where}: every response in 'resps' must be a string, got {bad!r}")
    context = args.get("arg_0")
    return doc_id, responses, args.get("arg_1") or {}, context if isinstance(context, str) else None


def _targets(rec: dict, where: str) -> list[str]:
    target = rec.get("target")
    targets = target if isinstance(target, list) else [target]
    if not targets or any(isinstance(t, bool) or not isinstance(t, (str, int, float)) for t in targets):
        raise S.SchemaError(
            f"{where}: field 'target' must be a string or number (or a list of them), got {target!r}"
        )
    return [str(t) for t in targets]


def _knobs(gen: dict, repeats: int) -> dict:
    temperature = gen.get("temperature")
    if gen.get("do_sample") is False:
        temperature = 0.0
    number = (int, float)
    return {
        "n": repeats,
        "temperature": float(temperature) if isinstance(temperature, number) else None,
        "max_gen_toks": gen.get("max_gen_toks") if isinstance(gen.get("max_gen_toks"), int) else None,
    }


def _count_tokens(rows: list[dict], count: TokenCounter | None, notes: list[str]) -> None:
    """Fill the token columns from the responses and contexts kept on the rows, then drop them."""
    completions = [row.pop("_completion") for row in rows]
    prompts = [row.pop("_prompt") for row in rows]
    if count is None:
        notes.append(
            "no --tokenizer: prompt_tokens and completion_tokens left empty (lm-eval logs no token "
            "counts; give --tokenizer NAME_OR_PATH to count them)"
        )
        return
    for row, n in zip(rows, count(completions, False), strict=True):
        row[S.COMPLETION_TOKENS] = n
    unique = sorted({p for p in prompts if p is not None})
    lengths = dict(zip(unique, count(unique, True), strict=True))
    for row, prompt in zip(rows, prompts, strict=True):
        row[S.PROMPT_TOKENS] = lengths.get(prompt)
