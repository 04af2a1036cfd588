"""One writer per run folder: the lock, two real profilers on one folder,
a killed holder, and the repair of folders that older versions let two profilers write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from scripted_backend import ScriptedBackend, TinyChainTask
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from profiling import storage
from profiling.lock import LOCK_FILE, RunLocked, lock_holder, read_lock, run_lock
from profiling.runner import profile
from profiling.storage import finished_units, merge_runs, shard_files

ROOT = Path(__file__).resolve().parents[2]
STRATS = ["greedy", "pool:n=3"]


def assert_every_unit_once(folder, n_units):
    df = S.read_samples(folder)  # raises on a duplicate (question_id, sample_idx)
    per_unit = df.groupby(list(storage.UNIT_KEYS))[S.SAMPLE_IDX].agg(["count", "max"])
    assert len(per_unit) == n_units
    assert (per_unit["count"] == per_unit["max"] + 1).all()
    return df


# ---- the lock itself ---------------------------------------------------------------------------------
def test_a_second_holder_is_refused_in_one_line_naming_the_first_and_gets_it_once_released(tmp_path):
    with run_lock(tmp_path / "run", command=["ttc", "profile"]) as me:
        assert lock_holder(tmp_path / "run") == me and me["pid"] == os.getpid()
        with pytest.raises(
            RunLocked, match=rf"another ttc profile \(pid {os.getpid()}, since .*\) is writing"
        ) as err:
            with run_lock(tmp_path / "run"):
                pass
        assert "\n" not in str(err.value) and "--wait-lock" in str(err.value)
        told = []
        with pytest.raises(RunLocked, match="still locked after 0.3 s"):
            with run_lock(tmp_path / "run", wait=True, timeout_s=0.3, poll_s=0.05, on_wait=told.append):
                pass
        assert len(told) == 1 and f"pid {os.getpid()}" in told[0]
        with pytest.raises(RunLocked, match="wait for it to finish before reading"):
            with read_lock(tmp_path / "run"):
                pass
    with run_lock(tmp_path / "run"), read_lock(tmp_path / "does-not-exist"):
        pass  # released with the block; reading a folder without a lock file never writes one
    assert not (tmp_path / "does-not-exist").exists()


# ---- two real processes -------------------------------------------------------------------------------
WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path[:0] = [{root!r}, {tests!r}]
    from scripted_backend import ScriptedBackend, TinyChainTask
    from profiling.lock import RunLocked
    from profiling.runner import profile

    out, per_level, delay, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "wait"
    pause_at = int(sys.argv[5])

    def on_unit(result):
        if result.units_run == pause_at:  # say so, then hold the lock until the test writes a line
            Path(out + ".holding").write_text(str(pause_at))
            sys.stdin.readline()

    def on_wait(line):
        print("WAITING", line, flush=True)
        Path(out + ".waiting").write_text(line)

    try:
        result = profile([ScriptedBackend(err=0.3, delay_s=delay)], TinyChainTask(per_level_available=20),
                         ["greedy", "pool:n=3"], out, per_level=per_level, batch_size=1, flush_every_units=2,
                         wait_lock=wait, on_wait=on_wait, on_unit=on_unit)
    except RunLocked as exc:
        print("LOCKED", exc)
        sys.exit(3)
    print("RUN", result.units_run, result.units_skipped)
    """
)


def start(tmp_path, out, per_level, delay=0.0, wait=False, pause_at=0):
    """A profiling process on ``out``; with ``pause_at`` it writes ``OUT.holding`` after that many
    units and holds the lock until a line arrives on its stdin. A waiting one writes ``OUT.waiting``."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT), tests=str(ROOT / "tests" / "profiling")))
    argv = [sys.executable, str(script), str(out), str(per_level), str(delay), "wait" if wait else "no"]
    argv.append(str(pause_at))
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def marker(out, what):
    return Path(f"{out}.{what}")


def wait_until(predicate, proc, timeout_s=120.0):
    """Poll for an event (a file the worker writes), failing if the worker ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"worker ended early: {proc.communicate()}")
        time.sleep(0.02)
    raise AssertionError("timed out")


def counts(stdout):
    return tuple(map(int, stdout.split("RUN")[1].split()))


def test_a_second_profiler_on_the_same_folder_stops_naming_the_first_and_resumes_cleanly_after(tmp_path):
    out = tmp_path / "run"
    first = start(tmp_path, out, per_level=10, pause_at=5)  # holds the lock after 5 of its 60 units
    wait_until(marker(out, "holding").exists, first)
    assert lock_holder(out)["pid"] == first.pid
    second = start(tmp_path, out, per_level=10)
    stdout, _ = second.communicate(timeout=120)
    assert second.returncode == 3 and stdout.startswith("LOCKED")
    assert f"another ttc profile (pid {first.pid}" in stdout and len(stdout.strip().splitlines()) == 1
    stdout, stderr = first.communicate(input="go\n", timeout=120)
    assert first.returncode == 0, stderr
    assert counts(stdout) == (60, 0)
    assert_every_unit_once(out, 60)  # 0 duplicate rows
    again = start(tmp_path, out, per_level=10, delay=0.0)
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert counts(stdout) == (0, 60)  # a clean resume: nothing redone


def test_a_profiler_that_waits_for_the_lock_then_runs_only_what_is_left(tmp_path):
    out = tmp_path / "run"
    first = start(tmp_path, out, per_level=10, pause_at=5)
    wait_until(marker(out, "holding").exists, first)
    second = start(tmp_path, out, per_level=20, wait=True)  # a superset of the first's units
    wait_until(marker(out, "waiting").exists, second)  # it found the lock held, and waits
    first_out, stderr = first.communicate(input="go\n", timeout=120)
    assert first.returncode == 0, stderr
    second_out, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    assert f"WAITING another ttc profile (pid {first.pid}" in second_out
    assert counts(first_out) == (60, 0) and counts(second_out) == (60, 60)
    assert_every_unit_once(out, 120)


def test_kill_9_of_the_lock_holder_never_blocks_the_next_run(tmp_path):
    out = tmp_path / "run"
    holder = start(tmp_path, out, per_level=20, pause_at=7)  # 3 shards of 2 units written, 1 unit buffered
    wait_until(marker(out, "holding").exists, holder)
    holder.kill()
    holder.wait(timeout=30)
    assert holder.returncode == -9
    assert lock_holder(out)["pid"] == holder.pid  # the stale record stays; the lock died with the process
    saved = len(finished_units(out))
    assert (saved, len(shard_files(out))) == (6, 3)
    rerun = start(tmp_path, out, per_level=20)  # refusing, not waiting: a stale lock would fail it
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stdout + stderr
    assert counts(stdout) == (120 - saved, saved)
    assert_every_unit_once(out, 120)
    assert lock_holder(out)["pid"] == rerun.pid


def test_ttc_profile_refuses_in_one_line_while_another_process_writes_the_folder(tmp_path):
    out = tmp_path / "run"
    with run_lock(out):
        result = CliRunner().invoke(
            app, ["profile", "-m", "lab-s", "-t", "lab-arith", "-q", "1", "--out", str(out)]
        )
    assert result.exit_code == 2
    assert f"error: another ttc profile (pid {os.getpid()}" in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (out / "run.json").exists()


# ---- folders written by two profilers at once (versions without the lock) -----------------------------------
def duplicated_folder(tmp_path):
    """A run folder in which one shard's units were written twice (as two unlocked profilers did)."""
    out = tmp_path / "run"
    profile([ScriptedBackend(err=0.3)], TinyChainTask(), STRATS, out, per_level=2, flush_every_units=4)
    clean = S.read_samples(out)
    first = shard_files(out)[0]
    copy = out / first.name.replace("samples-w0of1-", "samples-w0of1-9")  # sorts after every original
    shutil.copy(first, copy)
    units = len(pd.read_parquet(first)[list(storage.UNIT_KEYS)].drop_duplicates())
    return out, clean, first, copy, units


def test_duplicate_units_are_named_by_shard_everywhere_and_merge_dedupe_repairs_them(tmp_path):
    out, clean, first, copy, units = duplicated_folder(tmp_path)
    with pytest.raises(S.SchemaError, match="duplicate") as err:
        S.read_samples(out)
    assert first.name in str(err.value) and copy.name in str(err.value) and "--dedupe" in str(err.value)
    resumed = profile([ScriptedBackend(err=0.3)], TinyChainTask(), STRATS, out, per_level=2)
    assert resumed.units_run == 0 and resumed.duplicates.startswith(f"{units} unit(s) of {out}")
    assert first.name in resumed.duplicates and copy.name in resumed.duplicates
    with pytest.raises(storage.RunMismatch, match=f"{units} unit\\(s\\) are in more than one shard") as err:
        merge_runs(tmp_path / "fixed", [out])
    assert str(first) in str(err.value) and str(copy) in str(err.value) and "--dedupe" in str(err.value)
    result = CliRunner().invoke(app, ["merge", str(tmp_path / "fixed"), str(out), "--dedupe"])
    assert result.exit_code == 0, result.output
    assert f"{units} duplicate unit(s) left out" in " ".join(result.output.split())
    fixed = S.read_samples(tmp_path / "fixed")
    key = list(storage.UNIT_KEYS) + [S.SAMPLE_IDX]
    pd.testing.assert_frame_equal(
        fixed.sort_values(key).reset_index(drop=True), clean.sort_values(key).reset_index(drop=True)
    )
    assert json.loads((tmp_path / "fixed" / "run.json").read_text())["deduplicated_units"] == units


def test_merge_refuses_an_input_that_a_profiler_is_still_writing(tmp_path):
    profile([ScriptedBackend()], TinyChainTask(), ["greedy"], tmp_path / "w0", per_level=1)
    assert (tmp_path / "w0" / LOCK_FILE).exists()
    with run_lock(tmp_path / "w0"):
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}.*before reading the folder"):
            merge_runs(tmp_path / "all", [tmp_path / "w0"])
    assert merge_runs(tmp_path / "all", [tmp_path / "w0"]).units == 3
