"""The one error boundary of ``ttc``: a table of bad invocations across every command,
each of which must exit 2 with ONE line on stderr, no traceback and no file left behind; the
traceback on demand (``--debug``, ``TTC_DEBUG=1``); bugs keep theirs; simulated full and
read-only disks. docs/errors.md ("What happens on bad input") lists this table."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import report_fixtures as F
from typer.testing import CliRunner

from fitting import importer
from planner.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A folder of inputs: a samples folder ``S`` (and its source ``s.jsonl``), a profile
    ``P`` (two fixture models), two run folders of different models ``R1``/``R2``, a plain
    file ``afile``, and bad input files."""
    b = tmp_path_factory.mktemp("bad-input")
    lines = [
        json.dumps({"question_id": f"q{i % 4}", "correct": i % 3 == 0, "difficulty": 1 + i % 2})
        for i in range(16)
    ]
    (b / "s.jsonl").write_text("\n".join(lines) + "\n")
    importer.import_file(b / "s.jsonl", b / "S")
    F.write_profile(b / "P", models=("fix-s", "fix-m"), n_questions=2)
    F.write_profile(b / "R1", models=("fix-s",), n_questions=2)
    F.write_profile(b / "R2", models=("fix-m",), n_questions=2)
    (b / "afile").write_text("not a folder\n")
    (b / "NORUN").mkdir()
    (b / "big.jsonl").write_text(
        '{"question_id": "q", "correct": true, "prompt_tokens": 99999999999999999999999}\n'
    )
    (b / "bigc.csv").write_text("question_id,n_samples,n_correct\nq,99999999999999999999999,1\n")
    (b / "dup.csv").write_text("question_id,correct,correct\nq1,1,0\n")
    (b / "dupkey.jsonl").write_text('{"question_id": "q", "correct": true, "correct": false}\n')
    (b / "latin1.csv").write_bytes("question_id,correct\ncaf\xe9,1\n".encode("latin-1"))
    (b / "yes.jsonl").write_text('{"question_id": "q", "correct": "yes"}\n')
    (b / "empty.jsonl").write_text("")
    (b / "cells.csv").write_text("question_id,correct\nq1,1,extra\n")
    (b / "blank.jsonl").write_text('{"question_id": " ", "correct": true}\n')
    (b / "notes.txt").write_text("question_id,correct\n")
    (b / "counts.csv").write_text("question_id,n_samples,n_correct\nq1,4,9\n")
    return b


# (id, arguments, a piece of the expected message); relative paths are inside ``base``
BAD = [
    # ttc import
    ("import-missing-file", "import nofile.jsonl --out O", "nofile.jsonl: no such file"),
    ("import-extension", "import notes.txt --out O", "unsupported extension '.txt'"),
    ("import-out-is-file", "import s.jsonl --out afile", "afile: is a file; expected a folder"),
    ("import-out-under-file", "import s.jsonl --out afile/sub", "afile is a file, not a folder"),
    ("import-beyond-int64", "import big.jsonl --out O", "field 'prompt_tokens' must be at most 1e+15"),
    ("import-counts-beyond-int64", "import bigc.csv --out O", "field 'n_samples' must be at most 1e+15"),
    ("import-duplicated-column", "import dup.csv --out O", "column 'correct' appears twice"),
    ("import-duplicated-json-field", "import dupkey.jsonl --out O", "field 'correct' appears twice"),
    ("import-not-utf8", "import latin1.csv --out O", "not UTF-8 text"),
    ("import-bad-verdict", "import yes.jsonl --out O", "field 'correct' must be true/false"),
    ("import-empty", "import empty.jsonl --out O", "no records found"),
    ("import-extra-cells", "import cells.csv --out O", "more cells than header columns"),
    ("import-blank-id", "import blank.jsonl --out O", "'question_id' must not be blank"),
    ("import-counts-over", "import counts.csv --out O", "'n_correct' must be <= n_samples"),
    # ttc fit
    ("fit-level-above-1", "fit S --out O --level 1.5", "--level must be a coverage in (0, 1)"),
    ("fit-level-0", "fit S --out O --level 0", "--level must be a coverage in (0, 1)"),
    ("fit-bins-negative", "fit S --out O --bins -3", "--bins must be >= 0"),
    ("fit-n-boot-negative", "fit S --out O --n-boot -1", "--n-boot must be >= 0"),
    ("fit-pools", "fit S --out O --pools most", "--pools must be common or available"),
    ("fit-out-is-file", "fit S --out afile", "afile: is a file; expected a folder"),
    ("fit-out-under-file", "fit S --out afile/x", "afile is a file, not a folder"),
    ("fit-missing-input", "fit nowhere --out O", "nowhere: no such samples folder or file"),
    ("fit-no-shards", "fit NORUN --out O", "no Parquet shards found"),
    # ttc forecast
    ("forecast-at-0", "forecast S --at 0", "--at must be >= 1"),
    ("forecast-target", "forecast S --at 10 --target 1.5", "--target must be an accuracy in (0, 1)"),
    ("forecast-missing", "forecast nowhere --at 10", "nowhere: no such samples folder or file"),
    # ttc costs
    ("costs-tp-heads", "costs --model llama-3.1-8b --gpu h100 --gen-tokens 100 --tp 3", "does not divide"),
    (
        "costs-tp-1000",
        "costs --model llama-3.1-8b --gpu h100 --gen-tokens 100 --tp 1000",
        "--tp 1000 exceeds",
    ),
    (
        "costs-slo-negative",
        "costs --model llama-3.1-8b --gpu h100 --gen-tokens 100 --qps 1 --latency-slo-s -1",
        "--latency-slo-s must be > 0 seconds",
    ),
    (
        "costs-slo-without-qps",
        "costs --model llama-3.1-8b --gpu h100 --gen-tokens 100 --latency-slo-s 5",
        "give --qps too",
    ),
    ("costs-unknown-model", "costs --model llama-9b --gpu h100 --gen-tokens 100", "llama-9b"),
    ("costs-gen-tokens", "costs --model llama-3.1-8b --gen-tokens abc", "--gen-tokens"),
    ("costs-unknown-gpu", "costs --model llama-3.1-8b --gpu h1000 --gen-tokens 100", "h1000"),
    # ttc profile
    (
        "profile-device-tpu",
        "profile -m lab-s -t lab-arith --device tpu --out O",
        "device 'tpu': not a device name",
    ),
    ("profile-device-cuda", "profile -m lab-s -t lab-arith --device cuda:7 --out O", "device 'cuda:7'"),
    ("profile-unknown-model", "profile -m lab-xl -t lab-arith --out O", "unknown model 'lab-xl'"),
    ("profile-unknown-strategy", "profile -m lab-s -t lab-arith -s poll:n=4 --out O", "poll"),
    ("profile-bad-knob", "profile -m lab-s -t lab-arith -s pool:n=0 --out O", "pool"),
    ("profile-shard", "profile -m lab-s -t lab-arith --shard 3/2 --out O", "3/2"),
    (
        "profile-out-is-file",
        "profile -m lab-s -t lab-arith --out afile",
        "afile: is a file; expected a folder",
    ),
    (
        "profile-executor",
        "profile -m lab-s -t lab-arith --executor slurm --out O",
        "--executor must be local or ray",
    ),
    ("profile-task-missing", "profile -m lab-s -t nope.jsonl --out O", "nope.jsonl"),
    # ttc merge
    ("merge-mixed-models", "merge O R1 R2", "profiled model(s) ['fix-m'] but R1 profiled ['fix-s']"),
    ("merge-out-is-file", "merge afile R1", "afile: is a file; expected a folder"),
    ("merge-not-a-run", "merge O NORUN", "NORUN: no run.json"),
    # ttc recommend
    (
        "recommend-storage-url",
        "recommend P --budget-flops 1e12 --storage notaurl://x",
        "storage 'notaurl://x': cannot open it",
    ),
    (
        "recommend-storage-missing-dir",
        "recommend P --budget-flops 1e12 --storage journal:nodir/x.log",
        "No such file or directory",
    ),
    (
        "recommend-storage-sqlite-dir",
        "recommend P --budget-flops 1e12 --storage sqlite:///nodir/x.db",
        "cannot open it",
    ),
    (
        "recommend-storage-unreachable",
        "recommend P --budget-flops 1e12 --storage postgresql://u@127.0.0.1:9/db",
        "storage 'postgresql://u@127.0.0.1:9/db': cannot open it",
    ),
    ("recommend-no-budget", "recommend P", "give at least one budget"),
    ("recommend-difficulty-and-mix", "recommend P --budget-flops 1e12 --difficulty 1 --mix 1:1", "not both"),
    # ttc evaluate
    ("evaluate-budget-key", "evaluate P --budget-key joules", "--budget-key must be one of"),
    ("evaluate-budgets", "evaluate P --budgets a,b", "--budgets must be comma-separated numbers"),
    # ttc report
    ("report-out-dir", "report P --out NORUN", "expected an HTML file path"),
    ("report-budgets", "report P --out r.html --budgets x", "--budgets must be comma-separated numbers"),
    ("report-budget-key", "report P --out r.html --budget-key joules", "joules"),
    # ttc demo
    ("demo-preset", "demo --preset huge --out O", "--preset must be one of"),
    # usage errors
    ("usage-unknown-option", "fit S --out O --nope", "No such option: --nope"),
    ("usage-missing-option", "fit S", "Missing option '--out'"),
    ("usage-unknown-command", "fitt S", "No such command 'fitt'"),
    ("usage-bad-number", "fit S --out O --level high", "Invalid value for '--level'"),
]


def snapshot(folder: Path) -> set[str]:
    """Every path under ``folder`` except the planner's cache."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if ".ttc-cache" not in p.parts}


def ttc(args, env=None):
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", **(env or {})})


def test_the_table_covers_every_command_with_at_least_40_invocations():
    commands = {args.split()[0] for _, args, _ in BAD}
    assert len(BAD) >= 40
    assert commands >= {
        "import",
        "fit",
        "forecast",
        "costs",
        "profile",
        "merge",
        "recommend",
        "evaluate",
        "report",
        "demo",
    }


@pytest.mark.parametrize(("args", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(base, monkeypatch, args, message):
    monkeypatch.chdir(base)
    before = snapshot(base)
    r = ttc(args.split())
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 2, (r.exit_code, r.stderr, r.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert snapshot(base) == before


def test_debug_flag_or_environment_shows_the_traceback_of_a_known_error(base, monkeypatch):
    monkeypatch.chdir(base)
    for args, env in (
        (["import", "big.jsonl", "--out", "O", "--debug"], None),
        (["--debug", "import", "big.jsonl", "--out", "O"], None),
        (["import", "big.jsonl", "--out", "O"], {"TTC_DEBUG": "1"}),
    ):
        r = ttc(args, env)
        assert r.exit_code == 2 and "Traceback" in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("error: ")
    r = ttc(["import", "big.jsonl", "--out", "O"], {"TTC_DEBUG": "0"})
    assert r.exit_code == 2 and "Traceback" not in r.stderr


def test_a_bug_keeps_its_traceback_and_the_outputs_are_still_removed(base, monkeypatch):
    monkeypatch.chdir(base)

    def bug(*args, **kwargs):
        raise KeyError("a bug")  # not a known error kind

    monkeypatch.setattr(importer, "read_records", bug)
    r = ttc(["import", "s.jsonl", "--out", "NEW/deeper"])
    assert r.exit_code == 1 and isinstance(r.exception, KeyError)
    assert not (base / "NEW").exists()


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "No space left on device (the disk is full"),
        (errno.EROFS, "the filesystem is read-only"),
    ],
)
def test_a_full_or_read_only_disk_is_one_line_and_leaves_no_partial_output(base, monkeypatch, code, words):
    """SIMULATED: the write of the shard raises the OSError a full or read-only disk gives."""
    monkeypatch.chdir(base)

    def failing(path, data, **kw):
        raise OSError(
            code,
            {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system"}[code],
            str(path),
        )

    monkeypatch.setattr(importer, "atomic_write", failing)
    before = snapshot(base)
    r = ttc(["import", "s.jsonl", "--out", "NEWDIR"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "NEWDIR/samples-import-s-" in r.stderr and words in r.stderr
    assert snapshot(base) == before


def test_a_read_only_output_folder_is_refused_before_any_work(base, monkeypatch):
    """SIMULATED: statvfs reports the folder's filesystem as mounted read-only."""
    import os

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.chdir(base)
    monkeypatch.setattr(os, "statvfs", lambda path: ReadOnly())
    r = ttc(["fit", "S", "--out", "O"])
    assert r.exit_code == 2 and "is on a read-only filesystem" in r.stderr and not (base / "O").exists()


def test_existing_outputs_are_accepted_and_kept_when_a_later_step_fails(base, monkeypatch):
    monkeypatch.chdir(base)
    (base / "old.html").write_text("an earlier report")
    (base / "OLD").mkdir()
    r = ttc(["report", "P", "--out", "old.html", "--budget-key", "joules"])
    assert r.exit_code == 2 and "joules" in r.stderr and "is a file" not in r.stderr
    assert (base / "old.html").read_text() == "an earlier report"
    r = ttc(["import", "yes.jsonl", "--out", "OLD"])
    assert r.exit_code == 2 and (base / "OLD").is_dir()


def test_the_docs_list_the_bad_input_table():
    readme = (ROOT / "docs" / "errors.md").read_text()
    assert "# What happens on bad input" in readme
    assert f"runs {len(BAD)} bad invocations across every command" in readme
    for name, _, _ in BAD:
        command = name.split("-")[0]
        assert f"`ttc {command}" in readme or command == "usage"
