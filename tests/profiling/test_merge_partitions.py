"""``ttc merge`` combines the workers of ONE ``--shard i/n`` run: the ``i/n`` each input's
run.json records must share one ``n``, give each ``i`` once and leave none out; otherwise one
line says what is wrong or missing (exit 2), unless ``--allow-mixed`` asks for it on purpose."""

from __future__ import annotations

import pytest
from scripted_backend import ScriptedBackend, TinyChainTask
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from profiling.runner import profile
from profiling.storage import RunMismatch, merge_runs

STRATS = ["greedy"]


def worker(tmp_path, i, n, name=None):
    folder = tmp_path / (name or f"w{i}of{n}")
    profile([ScriptedBackend()], TinyChainTask(), STRATS, folder, per_level=2, shard=(i, n))
    return folder


def merge_cli(out, *inputs):
    result = CliRunner().invoke(app, ["merge", str(out), *map(str, inputs)])
    return result.exit_code, " ".join(result.output.split())


def test_workers_of_different_partitions_are_refused(tmp_path):
    """``--shard 3/4`` with ``--shard 1/3`` once merged with exit 0 into a part of the questions."""
    a, b = worker(tmp_path, 3, 4), worker(tmp_path, 1, 3)
    code, message = merge_cli(tmp_path / "all", a, b)
    assert code == 2
    assert f"{b} is worker 1/3 but {a} is worker 3/4" in message and "one n" in message
    assert not (tmp_path / "all").exists()


def test_a_partial_partition_says_which_workers_are_missing(tmp_path):
    a, b = worker(tmp_path, 0, 4), worker(tmp_path, 2, 4)
    code, message = merge_cli(tmp_path / "all", a, b)
    assert code == 2 and message.startswith("error: workers 1/4, 3/4 of 4 are missing")
    assert f"have 0/4 from {a}, 2/4 from {b}" in message
    report = merge_runs(tmp_path / "part", [a, b], allow_mixed=True)  # on purpose
    assert report.units == len(set(S.read_samples(a)[S.QUESTION_ID])) + len(
        set(S.read_samples(b)[S.QUESTION_ID])
    )
    # the merged part records its workers: merging it with the rest completes the run
    c, d = worker(tmp_path, 1, 4), worker(tmp_path, 3, 4)
    whole = merge_runs(tmp_path / "whole", [tmp_path / "part", c, d])
    assert whole.units == 6  # 2 questions per level x 3 levels, greedy


def test_a_huge_n_names_the_first_missing_workers_and_the_count(tmp_path):
    a, b = worker(tmp_path, 5, 10**6), worker(tmp_path, 7, 10**6)
    with pytest.raises(RunMismatch) as err:
        merge_runs(tmp_path / "all", [a, b])
    assert str(err.value).startswith(
        "workers 0/1000000, 1/1000000, 2/1000000 and 999995 more of 1000000 are missing"
    )


def test_the_same_worker_twice_is_refused(tmp_path):
    a, b = worker(tmp_path, 0, 2), worker(tmp_path, 0, 2, name="again")
    with pytest.raises(RunMismatch, match=f"worker 0/2 is in both {a} and {b}"):
        merge_runs(tmp_path / "all", [a, b])


def test_a_whole_partition_merges(tmp_path):
    folders = [worker(tmp_path, i, 3) for i in range(3)]
    assert merge_runs(tmp_path / "all", folders).units == 6


def test_an_imported_folder_is_not_a_merge_input_and_the_message_says_what_to_do(tmp_path):
    (tmp_path / "c.csv").write_text("question_id,n_samples,n_correct\nq1,10,3\n")
    assert (
        CliRunner().invoke(app, ["import", str(tmp_path / "c.csv"), "--out", str(tmp_path / "F")]).exit_code
        == 0
    )
    code, message = merge_cli(tmp_path / "all", tmp_path / "F", "--dedupe")
    assert code == 2 and "no run.json" in message and "`ttc import` more files into one folder" in message
