"""``ttc import`` never loses or doubles data: a shard is keyed on its source's full path (and
records its content's hash), re-importing a file replaces only its own rows, a second copy of
rows already in the folder is refused before anything is written, readers that meet a copy
anyway name both shards and their sources, the summary's totals never overflow, and data
without lengths is told what pricing it will need."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from fitting import schema as S
from fitting.counts import pooled_counts
from fitting.importer import import_file
from planner.cli import app

COUNTS = """question_id,n_samples,n_correct,prompt_tokens,completion_tokens,model
q1,100,3,100,200,mA
q2,100,0,100,200,mA
q3,100,50,100,200,mA
q4,100,1,100,200,mA
"""


def ttc(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, " ".join(result.output.split())


def test_two_files_of_the_same_name_in_other_folders_are_two_sources(tmp_path):
    """``a/results.csv`` (model A) then ``b/results.jsonl`` (model B) once deleted A's rows,
    saying it replaced "a file named results.jsonl"."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "results.csv").write_text(COUNTS)
    recs = pd.read_csv(tmp_path / "a" / "results.csv").assign(model="mB")
    recs.to_json(tmp_path / "b" / "results.jsonl", orient="records", lines=True)
    out = tmp_path / "F"
    assert ttc("import", tmp_path / "a" / "results.csv", "--out", out)[0] == 0
    code, text = ttc("import", tmp_path / "b" / "results.jsonl", "--out", out)
    assert code == 0 and "replaced" not in text
    counts = S.read_counts(out)
    assert sorted(counts[S.MODEL].unique()) == ["mA", "mB"] and len(counts) == 8
    # re-importing a/results.csv replaces its own rows only, and says which file it was
    (tmp_path / "a" / "results.csv").write_text(COUNTS.replace("q1,100,3", "q1,100,4"))
    code, text = ttc("import", tmp_path / "a" / "results.csv", "--out", out)
    assert (
        code == 0 and f"replaced the earlier import of {(tmp_path / 'a' / 'results.csv').resolve()}" in text
    )
    counts = S.read_counts(out).set_index([S.MODEL, S.QUESTION_ID])[S.N_CORRECT]
    assert counts[("mA", "q1")] == 4 and counts[("mB", "q1")] == 3 and len(counts) == 8
    assert len(list(out.iterdir())) == 2


def test_the_shard_records_its_source_path_and_content_hash(tmp_path):
    import hashlib

    path = tmp_path / "c.csv"
    path.write_text(COUNTS)
    _, shard = import_file(path, tmp_path / "F")
    record = S.import_record(shard)
    assert record == {
        "source": str(path.resolve()),
        "sha256": hashlib.sha256(COUNTS.encode()).hexdigest(),
        "kind": "counts",
    }


@pytest.mark.parametrize("kind", ["counts", "samples"])
def test_a_copy_of_an_imported_file_is_refused_naming_the_earlier_shard(tmp_path, kind):
    """``cp c.csv c2.csv; import c.csv; import c2.csv`` once exited 0, then every reader failed."""
    text = COUNTS if kind == "counts" else "question_id,correct,model\nq1,1,mA\nq1,0,mA\nq2,0,mA\n"
    (tmp_path / "c.csv").write_text(text)
    shutil.copy(tmp_path / "c.csv", tmp_path / "c2.csv")
    out = tmp_path / "F"
    _, first = import_file(tmp_path / "c.csv", out)
    code, message = ttc("import", tmp_path / "c2.csv", "--out", out)
    assert code == 2
    assert message.startswith(f"error: {(tmp_path / 'c2.csv').resolve()}: question_id 'q1' of model 'mA'")
    assert f"already in {first}" in message and f"imported from {(tmp_path / 'c.csv').resolve()}" in message
    assert "the same content" in message and "nothing written" in message
    assert [p.name for p in out.iterdir()] == [first.name]
    # a run_id of its own makes it a second run of the same questions, pooled by the readers
    (tmp_path / "c3.csv").write_text(
        "\n".join(line + (",run_id" if i == 0 else ",second") for i, line in enumerate(text.splitlines()))
        + "\n"
    )
    assert ttc("import", tmp_path / "c3.csv", "--out", out)[0] == 0
    if kind == "counts":
        assert pooled_counts(S.read_counts(out))[S.N_SAMPLES].tolist() == [200] * 4


def test_rows_written_by_hand_beside_an_import_are_refused_too(tmp_path):
    out = tmp_path / "F"
    out.mkdir()
    pd.read_csv(pd.io.common.StringIO(COUNTS)).to_parquet(out / "counts-by-hand.parquet")
    (tmp_path / "c.csv").write_text(COUNTS)
    code, message = ttc("import", tmp_path / "c.csv", "--out", out)
    assert (
        code == 2 and "already in" in message and "counts-by-hand.parquet (written by ttc profile" in message
    )


def test_readers_meeting_a_copy_name_both_shards_their_sources_and_the_right_repair(tmp_path):
    """A folder with the same rows twice (an older ttc imported a copy) named no shard, and
    advised `ttc merge --dedupe`, which fails on imported folders ("no run.json")."""
    out = tmp_path / "F"
    for name in ("c.csv", "c2.csv"):
        (tmp_path / name).write_text(COUNTS)
        import_file(tmp_path / name, tmp_path / name.replace(".csv", ""))
        shard = next((tmp_path / name.replace(".csv", "")).iterdir())
        out.mkdir(exist_ok=True)
        shutil.copy(shard, out / shard.name)
    with pytest.raises(S.SchemaError) as err:
        S.read_counts(out)
    text = str(err.value)
    assert "duplicate counts for question_id 'q1' of model 'mA'" in text
    for name in ("c.csv", "c2.csv"):
        assert f"(imported from {(tmp_path / name).resolve()})" in text
    assert "--dedupe" not in text and "remove the shard you do not want" in text
    code, message = ttc("forecast", out, "--at", "200")
    assert code == 2 and "counts-import-c-" in message and "counts-import-c2-" in message


def test_the_summary_of_huge_counts_is_exact(tmp_path):
    """9,300 rows of n_samples 1e15 printed "-9146744073709551616 samples in all"."""
    lines = ["question_id,n_samples,n_correct"] + [f"q{i},1000000000000000,{i}" for i in range(9300)]
    (tmp_path / "huge.csv").write_text("\n".join(lines) + "\n")
    code, text = ttc("import", tmp_path / "huge.csv", "--out", tmp_path / "H")
    assert code == 0 and "9,300,000,000,000,000,000 samples in all" in text
    (tmp_path / "over.csv").write_text("question_id,n_samples,n_correct\nq1,1000000000000001,1\n")
    code, text = ttc("import", tmp_path / "over.csv", "--out", tmp_path / "O")
    assert code == 2 and "line 2: field 'n_samples' must be at most 1e+15, got 1000000000000001" in text


def test_pooling_runs_past_the_largest_count_is_refused_not_wrapped():
    df = pd.DataFrame(
        {
            "question_id": ["q"] * 10_000,
            "run_id": [f"r{i}" for i in range(10_000)],
            "n_samples": [10**15] * 10_000,
            "n_correct": [1] * 10_000,
        }
    )
    with pytest.raises(
        S.SchemaError, match="question_id 'q' of model 'unknown' pools more than 1e\\+15 samples"
    ):
        pooled_counts(df)


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("question_id,n_samples,n_correct\nq1,10,3\nq2,10,1\n", "no rows have token lengths"),
        (
            "question_id,n_samples,n_correct,completion_tokens\nq1,10,3,12\nq2,10,1,\n",
            "2 of 2 rows lack a token length",
        ),
        ("question_id,correct\nq1,1\nq1,0\n", "no rows have token lengths"),
    ],
)
def test_the_summary_says_what_pricing_data_without_lengths_will_need(tmp_path, text, note):
    (tmp_path / "x.csv").write_text(text)
    code, out = ttc("import", tmp_path / "x.csv", "--out", tmp_path / "F")
    assert code == 0 and note in out
    assert "--assume-prompt-tokens N --assume-completion-tokens N" in out
    assert ("as per-sample means" in out) == ("n_samples" in text)


def test_the_summary_says_nothing_about_lengths_when_every_row_has_them(tmp_path):
    (tmp_path / "c.csv").write_text(COUNTS)
    code, out = ttc("import", tmp_path / "c.csv", "--out", tmp_path / "F")
    assert code == 0 and "--assume" not in out


def test_an_imported_samples_folder_with_a_copy_is_named_with_the_right_repair(tmp_path):
    out = tmp_path / "F"
    out.mkdir()
    for name in ("s.csv", "s2.csv"):
        (tmp_path / name).write_text("question_id,correct\nq1,1\nq1,0\n")
        _, shard = import_file(tmp_path / name, tmp_path / name.replace(".csv", ""))
        shutil.copy(shard, out / shard.name)
    with pytest.raises(S.SchemaError) as err:
        S.read_samples(out)
    text = str(err.value)
    assert "duplicate (question_id, sample_idx) = ('q1', 0)" in text and "--dedupe" not in text
    assert all(f"(imported from {(tmp_path / n).resolve()})" in text for n in ("s.csv", "s2.csv"))


def test_a_shard_of_an_older_version_that_overlaps_is_named_for_removal_not_deleted(tmp_path):
    out = tmp_path / "F"
    out.mkdir()
    legacy = out / "counts-import-c.parquet"  # how earlier versions named it, no source recorded
    S.counts_to_arrow(S.validate_counts(pd.read_csv(pd.io.common.StringIO(COUNTS)))).to_pandas().to_parquet(
        legacy
    )
    (tmp_path / "c.csv").write_text(COUNTS)
    code, message = ttc("import", tmp_path / "c.csv", "--out", out)
    assert code == 2 and f"already in {legacy} (imported by an older ttc" in message
    assert legacy.exists() and [p.name for p in out.iterdir()] == [legacy.name]
