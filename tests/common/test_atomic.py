"""The one atomic writer (common.atomic): all or nothing, durable, no temporary file left behind."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common import atomic
from common.atomic import atomic_write


@settings(max_examples=30, deadline=None)
@given(old=st.binary(max_size=64), new=st.one_of(st.binary(max_size=256), st.text(max_size=64)))
def test_write_replaces_the_content_exactly_and_leaves_only_the_target(tmp_path_factory, old, new):
    folder = tmp_path_factory.mktemp("w")
    path = folder / "f.json"
    path.write_bytes(old)
    assert atomic_write(path, new) == path
    assert path.read_bytes() == (new.encode("utf-8") if isinstance(new, str) else new)
    assert [p.name for p in folder.iterdir()] == ["f.json"]


def test_a_failing_writer_keeps_the_old_content_and_removes_its_temporary_file(tmp_path):
    path = tmp_path / "shard.parquet"
    path.write_bytes(b"old")

    def half_then_fail(fh):
        fh.write(b"half of the new")
        raise KeyboardInterrupt  # Ctrl-C mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["shard.parquet"]


def test_creates_the_folder_and_syncs_it_after_the_rename(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(atomic, "_fsync_dir", lambda folder: synced.append(folder))
    path = tmp_path / "a" / "b" / "run.json"
    atomic_write(path, lambda fh: fh.write(b"{}"))
    assert path.read_bytes() == b"{}" and synced == [path.parent]


def test_the_temporary_file_uses_the_given_prefix_in_the_target_folder(tmp_path):
    seen = []

    def look(fh):
        seen.extend(p.name for p in tmp_path.iterdir())
        fh.write(b"x")

    atomic_write(tmp_path / "s.parquet", look, tmp_prefix="_tmp-w1of2-")
    assert len(seen) == 1 and seen[0].startswith("_tmp-w1of2-") and seen[0].endswith(".parquet")


def test_fitting_writers_go_through_the_atomic_writer(tmp_path, monkeypatch):
    """The importer's shards used to be renamed without syncing their folder; every writer now
    shares one guarantee (fsync of the file and of the folder)."""
    import pandas as pd

    from fitting.importer import read_records, write_shard
    from fitting.pipeline import FitOutput

    synced = []
    monkeypatch.setattr(atomic, "_fsync_dir", lambda folder: synced.append(folder))
    src = tmp_path / "s.jsonl"
    src.write_text('{"question_id": "q1", "correct": true}\n')
    write_shard(read_records(src).samples, tmp_path / "imported", "a.parquet")
    FitOutput(curves=pd.DataFrame({"k": [1]}), fits=[]).write(tmp_path / "fit")
    assert synced == [tmp_path / "imported"] + [tmp_path / "fit"] * 3
