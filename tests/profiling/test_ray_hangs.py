"""``ttc profile --executor ray`` never waits forever: an address where no cluster answers fails
at once, workers the cluster cannot hold are refused before any actor starts, and SIGTERM stops
a run with one line, its finished units saved for the rerun.

Skipped without Ray; one cluster (conftest.py's ``cluster``) serves the module. The hang guards
are subprocess timeouts: before these fixes each case waited forever (or ~13 min of Ray's
retries), so they fail by timing out rather than hang the suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from backend_helpers import free_port, wait_for_line
from scripted_backend import ScriptedBackend, TinyChainTask

from profiling.runner import profile
from profiling.storage import finished_units

pytest.importorskip("ray")
from profiling.ray_executor import RayExecutor  # noqa: E402  (after the skip: it needs Ray at run time)

ROOT = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).parent
CLI = "from planner.cli import main; main()"
#: a command that hangs fails the test after this long instead of hanging the suite
GUARD_S = 240


def env() -> dict[str, str]:
    """This checkout and the test helpers on the path of a child process."""
    path = os.pathsep.join([str(ROOT), str(HELPERS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "RAY_AUTH_MODE": "disabled"}


def test_an_address_where_no_cluster_answers_fails_at_once_with_one_line(tmp_path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    out = tmp_path / "run"
    argv = ["profile", "-m", "lab-s", "-t", "lab-arith", "-q", "1", "--device", "cpu", "--no-progress"]
    argv += ["--executor", "ray", "--ray-address", address, "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", CLI, *argv], capture_output=True, text=True, timeout=GUARD_S, env=env()
    )
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.strip()]  # one line, nothing else
    assert line.startswith(f"error: no Ray cluster at {address} (connection refused)"), line
    assert not out.exists()  # nothing created


def test_workers_the_cluster_cannot_hold_are_refused_before_any_actor_starts(cluster, tmp_path):
    """The cluster has 2 CPUs and no GPU: one GPU worker, or three 1-CPU workers, would stay
    pending forever."""
    for kwargs, asked in (
        ({"workers": 1, "gpus_per_worker": 1}, "1 worker(s) of 1 GPU(s) and 1 CPU(s)"),
        ({"workers": 3}, "3 worker(s) of 0 GPU(s) and 1 CPU(s)"),
        ({"gpus_per_worker": 0.5}, "a worker of 0.5 GPU(s) and 1 CPU(s)"),
    ):
        executor = RayExecutor(**kwargs)
        with pytest.raises(ValueError) as err:
            profile([ScriptedBackend()], TinyChainTask(), ["greedy"], tmp_path / "run", executor=executor)
        message = str(err.value)
        assert message.startswith(f"--executor ray: {asked} each do not fit the Ray cluster at"), message
        assert "it has 0 GPU(s) and 2 CPU(s) on 1 node(s)" in message and "\n" not in message
        assert executor.actors == [] and not (tmp_path / "run").exists()


#: ``ttc profile`` on the scripted backend and task, whose driver prints ``BUFFERED 4`` when it
#: holds 4 finished units (none flushed: the flush policy waits for 1000) and waits there
SIGTERM_DRIVER = textwrap.dedent(
    """
    import sys, time
    from scripted_backend import ScriptedBackend, TinyChainTask
    import profiling.runner, profiling.tasks

    real_profile = profiling.runner.profile

    def pause_at_4(result):
        if result.units_run == 4:
            print("BUFFERED", result.units_run, flush=True)
            time.sleep(300)

    def scripted_profile(*args, **kwargs):
        kwargs.update(loader=lambda spec, device: ScriptedBackend(err=0.3), on_unit=pause_at_4,
                      flush_every_units=1000, flush_every_s=1000.0)
        return real_profile(*args, **kwargs)

    profiling.runner.profile = scripted_profile
    profiling.tasks.get_task = lambda name: TinyChainTask(per_level_available=4)
    from planner.cli import main
    main()
    """
)


def test_sigterm_stops_a_ray_run_with_one_line_and_its_finished_units_saved(cluster, tmp_path):
    out = tmp_path / "run"
    argv = ["profile", "-m", "lab-s", "-t", "tiny", "-q", "4", "--batch-size", "1", "--no-progress"]
    argv += ["--executor", "ray", "--ray-address", cluster, "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_DRIVER, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        assert wait_for_line(proc, "BUFFERED", timeout_s=GUARD_S).split() == ["BUFFERED", "4"]
        assert not list(out.glob("samples-*.parquet"))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    assert proc.returncode != 0 and "Traceback" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == [
        f"error: interrupted; finished units are saved in {out}; rerun the same command to resume"
    ], stderr  # one line, nothing else (no traceback, no stack dump)
    assert len(finished_units(out)) == 4
    rerun = profile(
        [ScriptedBackend(err=0.3)], TinyChainTask(per_level_available=4), ["greedy"], out, per_level=4
    )
    assert (rerun.units_run, rerun.units_skipped) == (12 - 4, 4)
