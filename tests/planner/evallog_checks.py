"""What an imported evaluation log must agree on with the tool that wrote it (lm-eval, Inspect AI):
per-question verdicts against the tool's own per-doc metrics, token counts against the tokenizer.
Used on the committed logs and on logs the tools write during the test (test_import_lmeval.py, test_import_inspect.py, test_evaltools_round_trip.py)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from tokenizers import Tokenizer
from typer.testing import CliRunner

from fitting import majority_at_k
from fitting import schema as S
from planner.cli import app

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "evallogs"
LAB_L = ROOT / "profiling" / "lab" / "checkpoints" / "lab-l"
MAX_TOKENS = 96  # run_tools.sh: max_gen_toks (lm-eval) and --max-tokens (Inspect)


def ttc(*args):
    """A ttc command run from the repository root: the tools name the lab model by its path from
    there (run_tools.sh runs them there), and so do the imported logs."""
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    finally:
        os.chdir(here)


def one(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def import_fit_forecast_recommend(log: Path, out: Path, *flags) -> None:
    """The commands a user runs on a log: each exits 0 and gives strict JSON where asked."""
    r = ttc("import", log, "--out", out, *flags)
    assert r.exit_code == 0, r.output
    r = ttc("fit", out, "--out", out / "fit")
    assert r.exit_code == 0, r.output
    r = ttc("forecast", out, "--at", "1000", "--json")
    assert r.exit_code == 0, r.output
    forecasts = json.loads(r.output, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert {f["metric"] for f in forecasts} == {"pass@k", "majority@k"}
    assert all(f["at"] == 1000 and f["k_max"] == 8 for f in forecasts)
    r = ttc("recommend", out, "--budget-tokens", "1000", "--json", "--n-boot", "30")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert plan["choice"]["model"] == "profiling/lab/checkpoints/lab-l"
    assert plan["cost"]["tokens"] <= 1000


def _answers(group: pd.DataFrame) -> list[str | None]:
    return [None if pd.isna(a) else a for a in group.sort_values(S.SAMPLE_IDX)[S.ANSWER].astype(object)]


def lmeval_agrees(table: pd.DataFrame, samples_file: Path, results_file: Path) -> int:
    """Assert that repeat 0's verdicts are lm-eval's take-first exact_match (per doc and in the
    aggregate), and our majority@k over all repeats is its maj@k wherever its vote has one winner
    that is an answer (it counts its ``[invalid]`` fallback as an answer; we abstain). Returns
    how many docs the majority comparison covered."""
    lines = [json.loads(line) for line in samples_file.read_text().splitlines() if line.strip()]
    task = table[S.TASK].iloc[0]
    theirs = {(r["filter"], f"{task}/{r['doc_id']}"): r["exact_match"] for r in lines}
    first = table[table[S.SAMPLE_IDX] == 0].set_index(S.QUESTION_ID)[S.CORRECT]
    assert {q: float(ok) for q, ok in first.items()} == {
        q: m for (f, q), m in theirs.items() if f == "take-first"
    }
    aggregate = json.loads(results_file.read_text())["results"][task]["exact_match,take-first"]
    assert first.mean() == pytest.approx(aggregate, abs=1e-12)
    compared = 0
    for q, group in table.groupby(S.QUESTION_ID):
        answers = _answers(group)
        votes = Counter("[invalid]" if a is None else a for a in answers).most_common()
        if votes[0][0] == "[invalid]" or (len(votes) > 1 and votes[1][1] == votes[0][1]):
            continue
        ours = majority_at_k(answers, group[S.REFERENCE].iloc[0], len(answers))
        assert float(ours) == pytest.approx(theirs[(f"maj@{len(answers)}", q)], abs=1e-12), q
        compared += 1
    return compared


def lmeval_tokens_agree(table: pd.DataFrame, samples_file: Path, tokenizer_json: Path) -> None:
    """Assert that each row's completion_tokens is its response tokenized without special tokens,
    and prompt_tokens the context with them (the tokenizer read with ``tokenizers`` directly)."""
    tok = Tokenizer.from_file(str(tokenizer_json))
    lines = {}
    for line in samples_file.read_text().splitlines():
        rec = json.loads(line)
        lines.setdefault(rec["doc_id"], rec)
    task = table[S.TASK].iloc[0]
    for row in table.itertuples():
        rec = lines[int(row.question_id.removeprefix(f"{task}/"))]
        response = rec["resps"][0][row.sample_idx]
        assert row.completion_tokens == len(tok.encode(response, add_special_tokens=False).ids)
        assert row.prompt_tokens == len(tok.encode(rec["arguments"]["gen_args_0"]["arg_0"]).ids)


def inspect_agrees(table: pd.DataFrame, log, tokenizer_json: Path, max_tokens: int) -> None:
    """Assert that the per-question mean verdict is Inspect's epoch reduction (mean) of each
    sample and its accuracy metric their mean; and that completion_tokens is the completion
    tokenized plus its end-of-sequence token (absent only when cut at ``max_tokens``)."""
    task = table[S.TASK].iloc[0]
    ours = table.groupby(S.QUESTION_ID)[S.CORRECT].mean()
    (reduction,) = log.reductions
    assert ours.to_dict() == pytest.approx(
        {f"{task}/{s.sample_id}": s.value for s in reduction.samples}, abs=1e-12
    )
    assert ours.mean() == pytest.approx(log.results.scores[0].metrics["accuracy"].value, abs=1e-12)
    tok = Tokenizer.from_file(str(tokenizer_json))
    rows = table.set_index([S.QUESTION_ID, S.SAMPLE_IDX])
    for sample in log.samples:
        generated = rows.loc[(f"{task}/{sample.id}", sample.epoch - 1), S.COMPLETION_TOKENS]
        text = len(tok.encode(sample.output.completion, add_special_tokens=False).ids)
        assert generated == text + 1 or (generated == max_tokens and text <= max_tokens), sample.id
