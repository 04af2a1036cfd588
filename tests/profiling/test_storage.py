"""Shards, resume, crash safety (real SIGKILL / SIGINT of a real process), sharding and merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from backend_helpers import wait_for_line
from scripted_backend import ScriptedBackend, TinyChainTask

from common import atomic
from fitting import schema as S
from profiling import storage
from profiling.runner import profile
from profiling.storage import RunMismatch, ShardWriter, finished_units, merge_runs, shard_of, write_shard

ROOT = Path(__file__).resolve().parents[2]
STRATS = ["greedy", "pool:n=3"]


def rows(qids, strategy="greedy"):
    return [
        {S.QUESTION_ID: q, S.CORRECT: True, S.MODEL: "m", S.TASK: "t", S.STRATEGY: strategy, S.CONFIG: "{}"}
        for q in qids
    ]


def units_of(folder):
    df = S.read_samples(folder)
    return df, df[list(storage.UNIT_KEYS)].drop_duplicates()


def assert_every_unit_once(folder, n_units):
    df = S.read_samples(folder)  # raises on a duplicate (question_id, sample_idx)
    per_unit = df.groupby(list(storage.UNIT_KEYS))[S.SAMPLE_IDX].agg(["count", "max"])
    assert len(per_unit) == n_units
    assert (per_unit["count"] == per_unit["max"] + 1).all()  # sample_idx 0..k-1, each once
    return df


# ---- shards ---------------------------------------------------------------------------------------
def test_write_shard_is_atomic_and_readable(tmp_path):
    path = write_shard(tmp_path, rows(["a", "b"]))
    assert path.name.startswith("samples-w0of1-") and path.suffix == ".parquet"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left
    assert S.read_samples(tmp_path)[S.QUESTION_ID].tolist() == ["a", "b"]


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(storage.pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        write_shard(tmp_path, rows(["a"]))
    assert list(tmp_path.iterdir()) == []


def test_writer_flushes_whole_units_by_count_and_by_age(tmp_path):
    now = [0.0]
    writer = ShardWriter(tmp_path, every_s=5.0, every_units=3, clock=lambda: now[0])
    for q in "abc":
        writer.add_unit(rows([q]))
    assert len(writer.shards) == 1 and writer.pending_units == 0  # 3 units -> one shard
    writer.add_unit(rows(["d"]))
    now[0] = 4.0
    writer.add_unit(rows(["e"]))
    assert len(writer.shards) == 1  # 4 s old: not yet
    assert writer.maybe_flush(wait_s=0.5) is None
    assert writer.maybe_flush(wait_s=1.0) is not None  # would be 5 s old after the next batch
    now[0] = 20.0
    with writer:
        writer.add_unit(rows(["f"]))  # the 5 s age check only starts at this unit
        assert writer.pending_units == 1
    assert writer.pending_units == 0 and len(writer.shards) == 3
    assert finished_units(tmp_path) == {("m", "t", "greedy", "{}", q) for q in "abcdef"}


@pytest.mark.parametrize("where", ["before_rename", "after_rename"])
def test_ctrl_c_during_a_flush_never_loses_or_duplicates_a_unit(tmp_path, monkeypatch, where):
    real_write, real_sync = storage.pq.write_table, atomic._fsync_dir
    hits = []

    def interrupt_once(real):
        def wrapped(*args, **kwargs):
            if not hits:
                hits.append(1)
                if where == "before_rename":
                    raise KeyboardInterrupt
                real(*args, **kwargs)
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        return wrapped

    if where == "before_rename":
        monkeypatch.setattr(storage.pq, "write_table", interrupt_once(real_write))
    else:
        monkeypatch.setattr(atomic, "_fsync_dir", interrupt_once(real_sync))
    with pytest.raises(KeyboardInterrupt):
        with ShardWriter(tmp_path, every_units=2) as writer:
            writer.add_unit(rows(["a"]))
            writer.add_unit(rows(["b"]))  # flush -> interrupted
    assert_every_unit_once(tmp_path, 2)


# ---- resume ---------------------------------------------------------------------------------------
def test_rerun_skips_finished_units_and_extends_to_new_questions(tmp_path):
    backend = ScriptedBackend(err=0.3)
    first = profile([backend], TinyChainTask(), STRATS, tmp_path, per_level=2)
    assert first.units_run == 12 and len(backend.calls) == 12
    again = profile([backend], TinyChainTask(), STRATS, tmp_path, per_level=2)
    assert again.units_run == 0 and again.units_skipped == 12 and len(backend.calls) == 12
    more = profile([backend], TinyChainTask(), STRATS, tmp_path, per_level=3)
    assert more.units_run == 6 and more.units_skipped == 12
    df = assert_every_unit_once(tmp_path, 18)
    assert len(df) == 9 * 1 + 9 * 3
    meta = json.loads((tmp_path / "run.json").read_text())
    assert [q["per_level"] for q in meta["questions"]] == [2, 3]
    assert meta["models"]["scripted-model"]["config"] == {"err": 0.3}


def test_rerun_with_another_seed_or_model_config_is_refused(tmp_path):
    profile([ScriptedBackend()], TinyChainTask(), STRATS, tmp_path, per_level=1)
    with pytest.raises(RunMismatch, match="differs from the run in .* in 'seed': 1 vs 0"):
        profile([ScriptedBackend()], TinyChainTask(), STRATS, tmp_path, per_level=1, seed=1)
    with pytest.raises(RunMismatch, match="model 'scripted-model' has a different 'config'"):
        profile([ScriptedBackend(err=0.5)], TinyChainTask(), STRATS, tmp_path, per_level=1)


def test_a_rerun_may_add_a_strategy_config_and_the_folder_stays_one_run(tmp_path):
    """A larger pool on the same questions (what `ttc recommend` suggests measuring next) is
    appended to the run: the earlier units are untouched and skipped, the run id is kept, the
    signature lists both configs; merging folders whose strategy sets differ is still refused."""
    first = profile([ScriptedBackend()], TinyChainTask(), STRATS, tmp_path / "a", per_level=1)
    before = S.read_samples(tmp_path / "a")
    more = profile([ScriptedBackend()], TinyChainTask(), ["pool:n=6"], tmp_path / "a", per_level=1)
    assert more.run_id == first.run_id and more.units_run == 3 and more.units_skipped == 0
    after = S.read_samples(tmp_path / "a")
    assert len(after) == len(before) + 3 * 6 and set(after[S.RUN_ID]) == {first.run_id}
    old = after[after[S.CONFIG].isin(set(before[S.CONFIG]))]
    keys = [S.STRATEGY, S.CONFIG, S.QUESTION_ID, S.SAMPLE_IDX]
    pd.testing.assert_frame_equal(
        old.sort_values(keys).reset_index(drop=True)[before.columns],
        before.sort_values(keys).reset_index(drop=True),
    )
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    assert sorted(n for n, _ in meta["signature"]["strategies"]) == ["greedy", "pool", "pool"]
    assert [s["name"] for s in meta["strategies"]] == ["greedy", "pool", "pool"]
    again = profile([ScriptedBackend()], TinyChainTask(), ["pool:n=6"], tmp_path / "a", per_level=1)
    assert again.units_run == 0 and again.units_skipped == 3
    profile([ScriptedBackend()], TinyChainTask(), STRATS, tmp_path / "b", per_level=1)
    with pytest.raises(RunMismatch, match="in 'strategies'"):
        merge_runs(tmp_path / "m", [tmp_path / "a", tmp_path / "b"], allow_mixed=True)


def test_several_models_are_profiled_in_turn_and_a_finished_model_is_not_even_loaded(tmp_path):
    loads = []

    def loader(spec, device):
        loads.append(spec)
        return ScriptedBackend(err=0.2, model_name=f"model-{spec}")

    first = profile(["a", "b"], TinyChainTask(), STRATS, tmp_path, per_level=1, loader=loader)
    assert loads == ["a", "b"] and first.units_run == 2 * 2 * 3
    df = assert_every_unit_once(tmp_path, 12)
    assert sorted(df[S.MODEL].unique()) == ["model-a", "model-b"]
    again = profile(["a", "b"], TinyChainTask(), STRATS, tmp_path, per_level=1, loader=loader)
    assert loads == ["a", "b"] and again.units_skipped == 12  # run.json maps each spec to its model name
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["model_specs"] == {"a": "model-a", "b": "model-b"}


WORKER = textwrap.dedent(
    """
    import signal, sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    from scripted_backend import ScriptedBackend, TinyChainTask
    from profiling.runner import profile

    # Ctrl-C raises KeyboardInterrupt, as in a terminal: a process started in the background of a
    # non-interactive shell (a CI script) inherits SIGINT ignored, and Python keeps it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_unit(result):
        if result.units_run == {pause_at}:  # tell the test, then wait for its signal
            print("BUFFERED", result.units_run, flush=True)
            time.sleep(300)

    backend = ScriptedBackend(err=0.3, delay_s={delay})
    result = profile([backend], TinyChainTask(per_level_available=20), ["greedy", "pool:n=3"], sys.argv[1],
                     per_level=20, batch_size=1, flush_every_units={every}, flush_every_s=1000.0,
                     on_unit=on_unit)
    print("RUN", result.units_run, result.units_skipped)
    """
)


def start_worker(tmp_path, out, delay, every, pause_at=None):
    """A profiling process; with ``pause_at`` it prints ``BUFFERED n`` after its n-th unit and
    waits there for a signal."""
    script = tmp_path / f"worker_{every}.py"
    helpers = ROOT / "tests" / "profiling"
    script.write_text(
        WORKER.format(root=str(ROOT), tests=str(helpers), delay=delay, every=every, pause_at=pause_at)
    )
    return subprocess.Popen(
        [sys.executable, str(script), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_sigkill_mid_run_loses_only_units_in_flight_and_rerun_completes_exactly_once(tmp_path):
    out = tmp_path / "run"
    total = 2 * 60  # two strategies x 3 levels x 20 questions
    # killed after its 11th unit: 5 shards of 2 units written, the 11th still in its buffer
    proc = start_worker(tmp_path, out, delay=0.0, every=2, pause_at=11)
    assert wait_for_line(proc, "BUFFERED").split() == ["BUFFERED", "11"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    saved = len(finished_units(out))
    assert saved == 10  # the shards are intact and readable; only the unit in flight is lost
    assert_every_unit_once(out, saved)
    rerun = start_worker(tmp_path, out, delay=0.0, every=2)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    run, skipped = map(int, stdout.split("RUN")[1].split())
    assert (run, skipped) == (total - saved, saved)  # only the lost units were redone
    df = assert_every_unit_once(out, total)
    assert len(df) == 60 * 1 + 60 * 3
    assert not list(out.glob("_tmp-*"))


def test_ctrl_c_flushes_the_finished_units_it_buffered(tmp_path):
    """The worker says when it holds 10 finished units, none flushed (it flushes every 1000);
    Ctrl-C then must write exactly those 10 (a rerun resumes them: the SIGKILL test above)."""
    out = tmp_path / "run"
    proc = start_worker(tmp_path, out, delay=0.0, every=1000, pause_at=10)
    assert wait_for_line(proc, "BUFFERED").split() == ["BUFFERED", "10"]
    assert not list(out.glob("samples-*.parquet"))
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr.read()
    assert len(finished_units(out)) == 10
    assert_every_unit_once(out, 10)


# ---- sharding and merge ---------------------------------------------------------------------------
def test_shard_of_is_stable_across_processes_and_balanced():
    ids = [f"q{i}" for i in range(2000)]
    here = [shard_of(q, 4) for q in ids]
    code = "import sys; from profiling.storage import shard_of; print([shard_of(f'q{i}', 4) for i in range(2000)])"
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    assert eval(there.stdout) == here
    counts = pd.Series(here).value_counts()
    assert counts.min() > 400 and counts.max() < 600  # 500 expected, sd ~19


def test_sharded_workers_cover_every_question_once_and_merge(tmp_path):
    task = TinyChainTask()
    parts = []
    for i in range(3):
        profile([ScriptedBackend(err=0.3)], task, STRATS, tmp_path / f"w{i}", per_level=4, shard=(i, 3))
        parts.append(set(S.read_samples(tmp_path / f"w{i}")[S.QUESTION_ID]))
    assert sum(map(len, parts)) == len(set().union(*parts)) == 12
    report = merge_runs(tmp_path / "all", [tmp_path / f"w{i}" for i in range(3)])
    assert report.units == 24
    df = assert_every_unit_once(tmp_path / "all", 24)
    assert df[S.RUN_ID].nunique() == 1  # every worker of one run writes the same run_id
    meta = json.loads((tmp_path / "all" / "run.json").read_text())
    assert sorted(meta["shards"]) == ["0/3", "1/3", "2/3"]
    with pytest.raises(RunMismatch, match="already holds a run"):
        merge_runs(tmp_path / "all", [tmp_path / "w0"])


def test_merge_refuses_mismatched_or_overlapping_runs(tmp_path):
    task = TinyChainTask()
    profile([ScriptedBackend()], task, STRATS, tmp_path / "a", per_level=3, shard=(0, 2))
    profile([ScriptedBackend()], task, STRATS, tmp_path / "b", per_level=3, shard=(1, 2), seed=7)
    profile([ScriptedBackend()], task, ["greedy"], tmp_path / "c", per_level=3, shard=(1, 2))
    profile([ScriptedBackend(err=0.1)], task, STRATS, tmp_path / "d", per_level=3, shard=(1, 2))
    profile([ScriptedBackend()], task, STRATS, tmp_path / "e", per_level=3)
    with pytest.raises(RunMismatch, match="differs from .* in 'seed': 7 vs 0"):
        merge_runs(tmp_path / "out", [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(RunMismatch, match="in 'strategies'"):
        merge_runs(tmp_path / "out", [tmp_path / "a", tmp_path / "c"])
    with pytest.raises(RunMismatch, match="model 'scripted-model' has a different 'config'"):
        merge_runs(tmp_path / "out", [tmp_path / "a", tmp_path / "d"])
    with pytest.raises(RunMismatch, match="e is worker 0/1 but .*a is worker 0/2"):
        merge_runs(tmp_path / "out", [tmp_path / "a", tmp_path / "e"])
    with pytest.raises(RunMismatch, match="is in both .* the inputs overlap"):
        merge_runs(tmp_path / "out", [tmp_path / "a", tmp_path / "e"], allow_mixed=True)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
