"""Inputs people actually have: Excel CSV dialects, partially labelled difficulties,
re-imported edited files, fit outputs inside a samples folder, duplicated columns."""

from __future__ import annotations

import json

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from fitting import schema as S
from fitting.curves import curves_from_samples
from fitting.importer import import_file, read_records
from fitting.pipeline import fit_samples


# ---- item 1: "all" means every question -------------------------------------------------------------
def partially_labelled(tmp_path):
    """12 questions with pools of 4: q0-q9 labelled 1 or 2, 7 of them always right, 3 always
    wrong; q10 and q11 unlabelled and always right. Truth over all 12: 9/12 = 0.75."""
    lines = []
    for q in range(12):
        right = q < 7 or q >= 10
        for _ in range(4):
            rec = {
                "question_id": f"q{q}",
                "correct": right,
                "answer": "A" if right else "B",
                "reference": "A",
            }
            if q < 10:
                rec["difficulty"] = 1 + q % 2
            lines.append(json.dumps(rec))
    path = tmp_path / "partial.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_partially_labelled_questions_get_their_own_label_and_all_means_every_question(tmp_path):
    result, _ = import_file(partially_labelled(tmp_path), tmp_path / "out")
    assert any("2 question(s) have no difficulty label" in n for n in result.notes)
    df = S.read_samples(tmp_path / "out")
    assert sorted(df[S.DIFFICULTY].unique()) == ["1", "2", S.UNLABELLED]
    curves = curves_from_samples(df, n_boot=0)
    maj = curves[(curves[S.METRIC] == "majority@k") & (curves[S.K] == 4)]
    # no "all" curve of a subset: "all" (the planner's default target) is every label weighted
    # by its questions (planner.space.parse_target)
    assert S.ALL_DIFFICULTY not in set(maj[S.DIFFICULTY])
    accuracy = np.average(maj[S.ACCURACY], weights=maj[S.N_QUESTIONS])
    assert accuracy == pytest.approx(0.75)  # not 1.0 from the 2 unlabelled questions alone


def test_old_tables_with_all_beside_other_labels_are_read_with_all_meaning_every_question():
    df = pd.DataFrame(
        {"question_id": ["a", "b", "c"], "correct": [True, False, True], "difficulty": ["all", "1", "2"]}
    )
    assert S.validate_samples(df)[S.DIFFICULTY].tolist() == [S.UNLABELLED, "1", "2"]
    none = pd.DataFrame({"question_id": ["a", "b"], "correct": [True, False]})
    assert S.validate_samples(none)[S.DIFFICULTY].tolist() == ["all", "all"]


@pytest.mark.parametrize("labels", [[1, 1.0, "1", "1.0", " 1 "], ["2", 2.0, "02", "2.", "+2"]])
def test_one_and_one_point_zero_are_one_difficulty_label(labels):
    df = pd.DataFrame(
        {"question_id": [f"q{i}" for i in range(5)], "correct": [True] * 5, "difficulty": labels}
    )
    assert S.validate_samples(df)[S.DIFFICULTY].nunique() == 1


def test_csv_difficulty_read_as_floats_by_pandas_is_one_label(tmp_path):
    path = tmp_path / "levels.csv"
    path.write_text("question_id,correct,difficulty\nq1,1,1\nq2,0,1.0\nq3,1,2\n")
    assert read_records(path).samples[S.DIFFICULTY].tolist() == ["1", "1", "2"]


# ---- item 2: fit output inside a samples folder -----------------------------------------------------
def test_fit_output_inside_a_samples_folder_does_not_break_it(tmp_path):
    import_file(partially_labelled(tmp_path), tmp_path / "s")
    before = S.read_samples(tmp_path / "s")
    fit_samples(before, n_boot=0).write(tmp_path / "s" / "fitout")  # ttc fit S --out S/fitout
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "s" / "notes.parquet")  # a stray file beside the shards
    after = S.read_samples(tmp_path / "s")
    pd.testing.assert_frame_equal(after, before)


def test_a_bad_shard_is_named_in_the_error(tmp_path):
    import_file(partially_labelled(tmp_path), tmp_path / "s")
    bad = pd.read_parquet(next((tmp_path / "s").glob("samples-*.parquet")))
    bad[S.QUESTION_ID] = "other-" + bad[S.QUESTION_ID]
    bad.loc[2, S.CORRECT] = None
    bad.to_parquet(tmp_path / "s" / "samples-zz-bad.parquet")
    with pytest.raises(S.SchemaError, match=r"samples-zz-bad\.parquet: column 'correct' has missing values"):
        S.read_samples(tmp_path / "s")


def test_a_folder_with_only_other_parquet_files_says_what_it_found(tmp_path):
    pd.DataFrame({"question_id": ["a"], "correct": [True]}).to_parquet(tmp_path / "results.parquet")
    with pytest.raises(
        S.SchemaError, match=r"no samples shards .* found results\.parquet: give a file's path"
    ):
        S.read_samples(tmp_path)
    assert len(S.read_samples(tmp_path / "results.parquet")) == 1  # a file is read by its path


# ---- item 4: re-importing an edited file --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["samples", "counts"])
def test_reimporting_an_edited_file_replaces_its_earlier_import(tmp_path, kind):
    path = tmp_path / "results.csv"
    if kind == "samples":
        path.write_text("question_id,correct\nq1,1\nq2,0\nq3,1\n")
        edited = "question_id,correct\nq1,1\nq2,1\nq3,1\n"
    else:
        path.write_text("question_id,n_samples,n_correct\nq1,10,3\nq2,10,0\n")
        edited = "question_id,n_samples,n_correct\nq1,10,4\nq2,10,0\n"
    first, shard = import_file(path, tmp_path / "out")
    assert not first.replaced and shard.name.startswith(f"{kind}-import-results-")  # + a hash of the path
    path.write_text(edited)  # the corrected file, same name
    second, shard2 = import_file(path, tmp_path / "out")
    assert shard2 == shard and second.replaced == [shard]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [shard.name]
    table = S.read_samples(tmp_path / "out") if kind == "samples" else S.read_counts(tmp_path / "out")
    assert len(table) == (3 if kind == "samples" else 2)
    assert (table[S.CORRECT].sum() == 3) if kind == "samples" else (table[S.N_CORRECT].sum() == 4)
    # another file (other questions) is kept beside it; the same rows under another name are
    # refused (every reader would refuse the folder afterwards)
    path.rename(tmp_path / "more.csv")
    with pytest.raises(S.SchemaError, match="already in"):
        import_file(tmp_path / "more.csv", tmp_path / "out")
    (tmp_path / "more.csv").write_text(edited.replace("\nq", "\nother-q"))
    import_file(tmp_path / "more.csv", tmp_path / "out")
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_a_samples_import_replaces_a_counts_import_of_the_same_name(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("question_id,n_samples,n_correct\nq1,10,3\n")
    import_file(path, tmp_path / "out")
    path.write_text("question_id,correct\nq1,1\n")
    result, shard = import_file(path, tmp_path / "out")
    assert [p.name.split("-")[:3] for p in result.replaced] == [["counts", "import", "r"]]
    assert [p.name for p in (tmp_path / "out").iterdir()] == [shard.name]


# ---- CSV dialects and duplicated columns --------------------------------------------------------------
PLAIN = "question_id,correct,difficulty,latency_s\nq1,1,1,0.5\nq2,0,2,1.25\n"


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("\ufeff" + PLAIN, "UTF-8 byte-order mark (Excel)"),
        (PLAIN.replace(",", ";"), '";" as the delimiter'),
        (PLAIN.replace(",", ", "), "spaces after delimiters ignored"),
        ("\ufeff" + PLAIN.replace(",", "; "), 'byte-order mark (Excel), ";" as the delimiter, spaces after'),
        (PLAIN.replace(",", "\t"), "tab as the delimiter"),
        (PLAIN.replace("\n", "\r\n"), None),
    ],
)
def test_excel_csv_dialects_read_like_a_plain_csv_and_are_named(tmp_path, text, note):
    plain = tmp_path / "plain.csv"
    plain.write_text(PLAIN)
    other = tmp_path / "other.csv"
    other.write_bytes(text.encode("utf-8"))
    got = read_records(other)
    pd.testing.assert_frame_equal(got.samples, read_records(plain).samples)
    assert (note is None and not got.notes) or (note is not None and note in got.notes[0])


def test_counts_csv_dialects_read_like_a_plain_csv(tmp_path):
    plain = "question_id,n_samples,n_correct,completion_tokens\na,10,3,41.5\nb,4,0,12\n"
    (tmp_path / "a.csv").write_text(plain)
    (tmp_path / "b.csv").write_bytes(("\ufeff" + plain.replace(",", "; ")).encode())
    pd.testing.assert_frame_equal(
        read_records(tmp_path / "b.csv").counts, read_records(tmp_path / "a.csv").counts
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "d.csv",
            "question_id,correct,correct\nq1,1,0\n",
            "line 1: column 'correct' appears twice in the header (columns 2 and 3)",
        ),
        ("d.csv", "question_id; correct;question_id\nq1;1;q2\n", "column 'question_id' appears twice"),
        (
            "d.jsonl",
            '{"question_id": "q1", "correct": true, "correct": false}\n',
            "line 1: field 'correct' appears twice",
        ),
    ],
)
def test_a_column_given_twice_is_refused(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(S.SchemaError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_records(path)


def test_a_number_beyond_int64_is_a_one_line_schema_error(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text('{"question_id": "q1", "correct": true, "prompt_tokens": 99999999999999999999999}\n')
    with pytest.raises(S.SchemaError, match="line 1: field 'prompt_tokens' must be at most 1e\\+15"):
        read_records(path)


cells = st.text(alphabet="abcxyz0123456789_-. ", min_size=1, max_size=6).map(str.strip).filter(bool)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(cells, st.booleans(), st.integers(0, 5), st.floats(0, 100)), min_size=1, max_size=8
    ),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    bom=st.booleans(),
    space=st.booleans(),
)
def test_any_dialect_reads_the_same_table_as_plain_csv(tmp_path, rows, delimiter, bom, space):
    """Property: BOM, delimiter and spaces after it change nothing in what is read."""
    rows = [(f"{q}-{i}", c, d, t) for i, (q, c, d, t) in enumerate(rows)]
    header = ["question_id", "correct", "difficulty", "latency_s"]

    def text(sep, lead):
        lines = [sep.join(header)] + [sep.join([q, str(int(c)), str(d), repr(t)]) for q, c, d, t in rows]
        return lead + "\n".join(lines) + "\n"

    (tmp_path / "plain.csv").write_text(text(",", ""))
    (tmp_path / "x.csv").write_bytes(
        text(delimiter + (" " if space else ""), "\ufeff" if bom else "").encode()
    )
    got, want = read_records(tmp_path / "x.csv"), read_records(tmp_path / "plain.csv")
    pd.testing.assert_frame_equal(got.samples, want.samples)
    assert got.samples[S.QUESTION_ID].tolist() == [r[0] for r in rows]
    assert np.allclose(got.samples[S.LATENCY_S], [r[3] for r in rows])
    unusual = bom or space or delimiter != ","
    assert bool(got.notes) == unusual
