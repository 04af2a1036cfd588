"""``ttc import``: per-sample results or per-question counts (JSONL/CSV/Parquet), or lm-eval and
Inspect AI logs -> a Parquet shard."""

from __future__ import annotations

import typer

from ._common import console
from ._options import Out
from ._options_cmd import AnswerRegex, Format, ImportFile, Scorer, ScoreThreshold, Tokenizer


def import_samples(
    file: ImportFile,
    out: Out,
    fmt: Format = "auto",
    tokenizer: Tokenizer = None,
    answer_regex: AnswerRegex = None,
    scorer: Scorer = None,
    score_threshold: ScoreThreshold = None,
) -> None:
    """Import per-sample eval results, or per-question counts, into a folder for `ttc fit`.

    Samples: required `question_id`, `correct` (true/false). Optional: `sample_idx`, `answer`,
    `reference`, `model`, `strategy`, `config` (JSON object), `difficulty`, `prompt_tokens`,
    `completion_tokens`, `latency_s`, `ttft_s`, `kv_bytes_peak`, `flops`, `logprob`, `reward`.

    Counts (published coverage data; told apart by `n_samples` and `n_correct` without
    `correct`): required `question_id`, `n_samples`, `n_correct`; optional `model`,
    `strategy`, `config`, `difficulty` and per-sample MEANS of `prompt_tokens`,
    `completion_tokens`, `latency_s`, `kv_bytes_peak`, `flops`. Stored as one row per question.

    CSV: comma, semicolon, tab or `|` delimiters, a UTF-8 byte-order mark (Excel) and spaces
    after delimiters are detected (and said when unusual); a column given twice is refused.

    Evaluation logs: lm-eval output (`lm-eval run ... --log_samples`: one sample per doc and
    repeat, every response scored again with the task's own answer filter; `--tokenizer` counts
    its tokens) and Inspect AI logs (one sample per sample and epoch; `--scorer` picks the
    verdict; tokens and latency from the log) are detected by their names and first bytes
    (`--format` forces one). See docs/importing-data.md.

    The shard is keyed on the file's full path (its metadata records the path and a hash of
    the content): importing the same file again (e.g. after correcting it) replaces its own
    earlier import and nothing else; a file elsewhere, even of the same name, is kept beside
    it. Rows another shard already holds (a copy of a file imported before) are refused,
    naming that shard and its source. Bad input stops with the file, line (row) and field;
    unknown fields are reported and dropped; nothing half-written is left behind.

    Counts up to 1e15 per row are accepted (sums over rows are exact at any size). Without
    token lengths, pricing the data (recommend, evaluate, report, costs) needs
    `--assume-prompt-tokens N --assume-completion-tokens N`; the summary says so.

    Examples:

        ttc import results.jsonl --out runs/imported && ttc fit runs/imported --out out/fit

        ttc import monkeys_gsm8k_pythia_counts.csv --out runs/pythia && ttc forecast runs/pythia --at 10000

        ttc import lm-eval-out/ --tokenizer meta-llama/Llama-3.1-8B --out runs/llama && ttc fit runs/llama
    """
    from fitting.importer import import_file

    from ._errors import claim_output
    from ._evallogs import log_reader

    read = log_reader(
        file, fmt, tokenizer=tokenizer, answer_regex=answer_regex, scorer=scorer, threshold=score_threshold
    )
    claim_output(out, "folder")
    result, shard = import_file(file, out, read=read)
    df = result.table
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if result.replaced:
        console.print(
            f"replaced the earlier import of {file.resolve()} ({', '.join(p.name for p in result.replaced)})",
            highlight=False,
        )
    if result.unknown_fields:
        console.print(f"[yellow]ignored unknown field(s):[/] {', '.join(sorted(result.unknown_fields))}")
    if result.kind == "counts":
        total = sum(map(int, df["n_samples"]))  # Python ints: 9,300 rows of 1e15 pass int64
        what = f"counts of {len(df)} (model, question) pairs, {total:,} samples in all,"
    else:
        what = f"{len(df)} samples"
    console.print(
        f"imported {what} of {df['question_id'].nunique()} questions "
        f"({df['model'].nunique()} model(s), {df['strategy'].nunique()} strategy(ies)) -> {shard}"
        f"{_lengths_note(df)}",
        highlight=False,
        soft_wrap=True,
    )


def _lengths_note(df) -> str:
    """What pricing these rows will need when some have no token lengths ("" when all have)."""
    lengths = ["prompt_tokens", "completion_tokens"]
    missing = df[lengths].isna().any(axis=1)
    if not missing.any():
        return ""
    none = df[lengths].isna().all(axis=None)
    which = (
        "no rows have token lengths"
        if none
        else f"{int(missing.sum())} of {len(df)} rows lack a token length"
    )
    means = " as per-sample means" if "n_samples" in df.columns else ""
    return (
        f"; {which}: costs (recommend, evaluate, report, costs) will need "
        "--assume-prompt-tokens N --assume-completion-tokens N, or give prompt_tokens and "
        f"completion_tokens columns{means} in the file"
    )


def register(app: typer.Typer) -> None:
    app.command(
        "import", short_help="Import per-sample results, per-question counts, or lm-eval / Inspect AI logs."
    )(import_samples)
