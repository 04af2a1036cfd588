"""``ttc profile --executor ray`` on a local Ray cluster (``ray.init(num_cpus=2)``): the same
rows as one process, actors killed mid-run, bounded retries, and the command line.

Skipped without Ray (``pip install 'ttc-planner[ray]'``); CI installs it. One cluster (the
``cluster`` fixture of conftest.py) serves the whole module (it starts in ~4 s on an idle 2-core
machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from scripted_backend import ScriptedBackend, TinyChainTask

from fitting import schema as S
from profiling import storage
from profiling.executor import UnitsFailed
from profiling.runner import profile

ray = pytest.importorskip("ray")
from profiling.ray_executor import RayExecutor  # noqa: E402  (after the skip: it needs Ray at run time)

ROOT = Path(__file__).resolve().parents[2]
#: columns that measure this run's timing and memory (they differ between any two runs)
MEASURED = [S.LATENCY_S, S.TTFT_S, S.KV_BYTES_PEAK]
STRATS = ["greedy", "pool:n=3"]


def same_rows(a_folder, b_folder, logprob_atol=0.0):
    """The two runs' samples tables without their measurements, in one order, must be equal."""
    a, b = S.read_samples(a_folder), S.read_samples(b_folder)
    key = list(storage.UNIT_KEYS) + [S.SAMPLE_IDX]
    a, b = (df.drop(columns=MEASURED).sort_values(key).reset_index(drop=True) for df in (a, b))
    for col in a.columns:
        if col == S.LOGPROB and logprob_atol:
            assert (a[col] - b[col]).abs().max() <= logprob_atol
        else:
            pd.testing.assert_series_equal(a[col], b[col], check_exact=True)
    return a


def test_ray_with_two_workers_gives_the_same_samples_as_one_process_on_the_lab(cluster, tmp_path):
    args = (["lab-s"], "lab-arith", ["greedy", "pool:n=8"])
    kwargs = {"per_level": 20, "device": "cpu"}
    local = profile(*args, tmp_path / "local", **kwargs)
    executor = RayExecutor(workers=2)
    on_ray = profile(*args, tmp_path / "ray", executor=executor, **kwargs)
    assert local.units_run == on_ray.units_run == 200 and on_ray.rows_written == local.rows_written == 900
    # answers, verdicts, token counts and every identity column are equal; log-probs agree to float32
    # rounding (torch sums in another order with the actors' one thread than with this process's)
    df = same_rows(tmp_path / "local", tmp_path / "ray", logprob_atol=1e-5)
    assert df[S.CORRECT].sum() > 0 and df[S.COMPLETION_TOKENS].sum() > 0
    meta = json.loads((tmp_path / "ray" / "run.json").read_text())
    [ran] = meta["executors"]
    assert ran["executor"] == "ray" and ran["workers"] == 2 and ran["ray"] == ray.__version__
    assert ran["hosts"][0]["versions"]["torch"] == meta["versions"]["torch"]
    assert meta["run_id"] == json.loads((tmp_path / "local" / "run.json").read_text())["run_id"]


def test_actors_killed_mid_run_lose_no_unit_and_write_none_twice(cluster, tmp_path):
    task = TinyChainTask(per_level_available=20)
    executor = RayExecutor(workers=2)
    killed = []

    def kill_every_actor(result):
        if result.units_run == 16 and not killed:  # one actor just returned a job, the other is mid-job
            killed.extend(executor.actors)
            for actor in executor.actors:
                ray.kill(actor)

    backend = ScriptedBackend(err=0.3, delay_s=0.05)
    run = profile(
        [backend],
        task,
        ["greedy", "pool:n=3"],
        tmp_path / "ray",
        per_level=20,
        batch_size=4,
        executor=executor,
        on_unit=kill_every_actor,
    )
    assert len(killed) == 2 and executor.replaced == 2 and executor.retried >= 1
    assert run.units_run == 120
    profile(
        [ScriptedBackend(err=0.3)],
        task,
        ["greedy", "pool:n=3"],
        tmp_path / "local",
        per_level=20,
        batch_size=4,
    )
    df = same_rows(tmp_path / "local", tmp_path / "ray")  # every unit once, with the same rows
    assert len(df[list(storage.UNIT_KEYS)].drop_duplicates()) == 120


def test_a_job_that_kills_its_actor_every_time_is_reported_after_bounded_retries_and_the_rest_is_saved(
    cluster, tmp_path
):
    task = TinyChainTask(per_level_available=4)
    problems = list(task.problems(per_level=4))
    deadly = problems[-1]  # a level-3 question (four terms): its prompt is unique
    assert sum(p.question == deadly.question for p in problems) == 1
    backend = ScriptedBackend(exit_on=f"q: {deadly.question}\n")
    executor = RayExecutor(workers=2, max_attempts=2)
    with pytest.raises(
        UnitsFailed,
        match=r"1 unit\(s\) in 1 job\(s\) not profiled, .*: 2 Ray workers died running it .* rerun the same command",
    ) as err:
        profile([backend], task, ["greedy"], tmp_path / "run", per_level=4, batch_size=1, executor=executor)
    assert [p.id for job in err.value.jobs for p in job.problems] == [deadly.id]
    assert executor.replaced == 2
    saved = storage.finished_units(tmp_path / "run")
    assert {key[-1] for key in saved} == {p.id for p in problems} - {deadly.id}
    rerun = profile([ScriptedBackend()], task, ["greedy"], tmp_path / "run", per_level=4, batch_size=1)
    assert (rerun.units_run, rerun.units_skipped) == (1, 11)


def test_ttc_profile_executor_ray_joins_a_running_cluster(cluster, tmp_path):
    out = tmp_path / "run"
    argv = ["profile", "-m", "lab-s", "-t", "lab-arith", "-s", "greedy", "-q", "2", "--device", "cpu"]
    argv += ["--executor", "ray", "--ray-address", cluster, "--workers", "1"]
    argv += ["--out", str(out), "--no-progress"]
    code = "from planner.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "profiled 10 unit(s)" in " ".join(done.stdout.split())
    [ran] = json.loads((out / "run.json").read_text())["executors"]
    assert ran["executor"] == "ray" and ran["workers"] == 1 and ran["address"] == cluster
    assert ray.is_initialized()  # the command left the cluster it joined running


def test_ctrl_c_on_the_driver_keeps_every_unit_that_arrived_and_a_rerun_finishes(cluster, tmp_path):
    out, task = tmp_path / "run", TinyChainTask(per_level_available=10)
    executor = RayExecutor()  # as many workers as the cluster's CPUs

    def ctrl_c(result):
        if result.units_run == 12:
            raise KeyboardInterrupt  # arrives in the driver as Ctrl-C's handler would raise it

    with pytest.raises(KeyboardInterrupt):
        profile(
            [ScriptedBackend(err=0.3, delay_s=0.02)],
            task,
            STRATS,
            out,
            per_level=10,
            batch_size=4,
            flush_every_units=1000,
            flush_every_s=1000.0,
            executor=executor,
            on_unit=ctrl_c,
        )
    assert executor.workers == 2 and executor.actors == []  # the actors were killed on the way out
    assert len(storage.finished_units(out)) == 12  # nothing was flushed before: the exit flush saved them
    rerun = profile([ScriptedBackend(err=0.3)], task, STRATS, out, per_level=10, batch_size=4)
    assert (rerun.units_run, rerun.units_skipped) == (48, 12)
    profile([ScriptedBackend(err=0.3)], task, STRATS, tmp_path / "local", per_level=10, batch_size=4)
    same_rows(tmp_path / "local", out)


def test_an_error_in_the_strategy_stops_the_run_with_its_own_message_and_is_not_retried(cluster, tmp_path):
    executor = RayExecutor(workers=2)
    with pytest.raises(ValueError, match="^scripted failure$"):
        profile(
            [ScriptedBackend(raise_on="q: ")],
            TinyChainTask(),
            ["greedy"],
            tmp_path / "run",
            executor=executor,
        )
    assert executor.retried == 0 and executor.replaced == 0
