"""``--shard i/n`` and ``--shard auto`` (Slurm and Grid Engine job arrays)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from profiling.sharding import parse_shard, shard_from_scheduler, shard_of


def slurm(task, first, count, step=None, last=None):
    env = {"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_MIN": first, "SLURM_ARRAY_TASK_COUNT": count}
    if step is not None:
        env["SLURM_ARRAY_TASK_STEP"] = step
    env["SLURM_ARRAY_TASK_MAX"] = last if last is not None else first + (count - 1) * (step or 1)
    return {k: str(v) for k, v in env.items()}


def sge(task, first, last, step=1):
    return {
        "SGE_TASK_ID": str(task),
        "SGE_TASK_FIRST": str(first),
        "SGE_TASK_LAST": str(last),
        "SGE_TASK_STEPSIZE": str(step),
    }


@given(first=st.integers(0, 1000), step=st.integers(1, 7), count=st.integers(1, 40))
def test_every_task_of_an_evenly_spaced_array_gets_its_own_worker_and_all_are_covered(first, step, count):
    tasks = [first + i * step for i in range(count)]
    for env_of in (lambda t: slurm(t, first, count, step), lambda t: sge(t, first, tasks[-1], step)):
        shards = [shard_from_scheduler(env_of(t)) for t in tasks]
        assert shards == [(i, count) for i in range(count)]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (slurm(0, 0, 4, 1), (0, 4)),  # sbatch --array=0-3
        (slurm(4, 1, 4), (3, 4)),  # --array=1-4: indices start at 1
        (slurm(5, 1, 4, 2), (2, 4)),  # --array=1-7:2
        (slurm(5, 1, 4, last=7), (2, 4)),  # --array=1,3,5,7: no step variable, inferred
        (sge(3, 1, 8), (2, 8)),  # qsub -t 1-8
        ({**sge("undefined", "undefined", "undefined"), **slurm(1, 0, 2)}, (1, 2)),  # SGE outside an array
    ],
)
def test_shard_auto_reads_the_job_array(env, expected):
    assert parse_shard("auto", env=env) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "not in a job array (no SLURM_ARRAY_TASK_ID or SGE_TASK_ID)"),
        ({"SGE_TASK_ID": "undefined"}, "not in a job array"),
        (slurm(2, 1, 3, last=7), "not an evenly spaced range"),  # --array=1,2,7
        (slurm(9, 0, 4, 1), "not an evenly spaced range"),  # an index beyond the array
        ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "4"}, "not integers (SLURM_ARRAY_TASK_ID=x"),
    ],
)
def test_shard_auto_outside_an_even_array_says_what_it_found(env, message):
    with pytest.raises(ValueError, match="--shard auto: ") as err:
        parse_shard("auto", env=env)
    assert message in str(err.value) and "--shard i/n" in str(err.value)


def test_explicit_shards_are_unchanged():
    assert parse_shard("1/4", env={"SLURM_ARRAY_TASK_ID": "3"}) == (1, 4)
    with pytest.raises(ValueError, match="--shard must be i/n with 0 <= i < n"):
        parse_shard("4/4")
    assert shard_of("q1", 1) == 0


def test_ttc_profile_shard_auto_in_a_slurm_array_profiles_this_tasks_questions(tmp_path, monkeypatch):
    from profiling.backends.tiny import make_tiny_checkpoint
    from profiling.tasks import get_task

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    for key, value in slurm(3, 1, 3).items():  # task 3 of --array=1-3: worker 2 of 3
        monkeypatch.setenv(key, value)
    out = tmp_path / "w2"
    args = [
        "profile",
        "-m",
        str(ckpt),
        "-t",
        "lab-arith",
        "-q",
        "9",
        "--questions-overall",
        "--shard",
        "auto",
    ]
    result = CliRunner().invoke(app, [*args, "--max-new-tokens", "2", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    mine = [p.id for p in get_task("lab-arith").problems(limit=9) if shard_of(p.id, 3) == 2]
    assert sorted(S.read_samples(out)[S.QUESTION_ID]) == sorted(mine)
    assert json.loads((out / "run.json").read_text())["shards"] == ["2/3"]


def test_the_readme_slurm_array_script_and_its_merge_run_as_written(tmp_path):
    """examples/slurm/profile_array.sbatch under a simulated two-task array, then `ttc merge`."""
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        "QUESTIONS": "1",
        "OUT": str(tmp_path / "array"),
    }
    for task in (0, 1):  # what sbatch --array=0-1 sets in each task
        array = {"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_MIN": 0, "SLURM_ARRAY_TASK_MAX": 1}
        array |= {"SLURM_ARRAY_TASK_COUNT": 2, "SLURM_ARRAY_TASK_STEP": 1}
        done = subprocess.run(
            ["bash", str(root / "examples" / "slurm" / "profile_array.sbatch")],
            env={**env, **{k: str(v) for k, v in array.items()}},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    merge = subprocess.run(
        ["bash", "-c", "ttc merge $OUT/all $OUT/w*"], env=env, capture_output=True, text=True, timeout=300
    )
    assert merge.returncode == 0, merge.stderr
    df = S.read_samples(tmp_path / "array" / "all")
    assert sorted(df[S.DIFFICULTY].unique()) == ["1", "2", "3", "4", "5"]  # one question per level, all there
    assert df.groupby(S.STRATEGY).size().to_dict() == {"greedy": 5, "pool": 40}
    shards = [json.loads((tmp_path / "array" / f"w{i}" / "run.json").read_text())["shards"] for i in (0, 1)]
    assert shards == [["0/2"], ["1/2"]]
