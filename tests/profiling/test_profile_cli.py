"""``ttc profile`` / ``ttc merge``: help, clear errors, and end-to-end runs on real hf models."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from scripted_backend import ScriptedBackend, TinyChainTask
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from profiling.runner import profile
from profiling.strategies import STRATEGIES

runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def ttc(*args: str):
    return runner.invoke(app, list(args))


# ---- help and errors --------------------------------------------------------------------------------
def test_help_teaches_with_a_real_example_and_lists_every_strategy():
    result = ttc("profile", "--help")
    assert result.exit_code == 0
    text = flat(result.output)
    assert "ttc profile --model lab-s --task lab-arith --strategy greedy --strategy pool:n=64" in text
    for name in STRATEGIES:
        assert f"{name}:" in text
    for option in (
        "--questions-overall",
        "--seed",
        "--device",
        "--max-new-tokens",
        "--shard",
        "--batch-size",
    ):
        assert option in text
    assert "profile" in ttc("--help").output and "merge" in ttc("--help").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-s", "bestof:n=4"],
            "unknown strategy 'bestof'; valid strategies: greedy, pool, beam, refine, budget, hybrid",
        ),
        (["-s", "beam:widht=4"], "strategy 'beam' has no knob(s) widht; valid knobs: width (default 4)"),
        (["-s", "pool:n=zero"], "knob 'n' must be an integer >= 1, got 'zero'"),
        (["--shard", "2/2"], "--shard must be i/n with 0 <= i < n"),
        (["-t", "no-such-task"], "unknown task 'no-such-task': expected a built-in name"),
        (["-m", "lab-xl"], "unknown model 'lab-xl': expected a lab model"),
        (["-m", "openai:lab-s"], "openai spec needs a URL and a model"),
    ],
)
def test_bad_input_stops_with_a_clear_message_before_any_work(tmp_path, args, message):
    options = {"-m": "openai:http://127.0.0.1:9/v1/x", "-t": "no-such-task", "-s": "greedy", "--shard": "0/1"}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["profile", "--out", str(tmp_path / "out")] + [x for item in options.items() for x in item]
    result = ttc(*argv)
    assert result.exit_code == 2, result.output
    assert message in flat(result.output)
    assert not (tmp_path / "out").exists()


def test_merge_cli_combines_shards_and_refuses_mismatches(tmp_path):
    task = TinyChainTask()
    for i in range(2):
        profile([ScriptedBackend()], task, ["greedy"], tmp_path / f"w{i}", per_level=3, shard=(i, 2))
    profile([ScriptedBackend()], task, ["greedy"], tmp_path / "other", per_level=3, shard=(1, 2), seed=3)
    ok = ttc("merge", str(tmp_path / "all"), str(tmp_path / "w0"), str(tmp_path / "w1"))
    assert ok.exit_code == 0, ok.output
    assert "9 units" in flat(ok.output)
    assert len(S.read_samples(tmp_path / "all")) == 9
    bad = ttc("merge", str(tmp_path / "bad"), str(tmp_path / "w0"), str(tmp_path / "other"))
    assert bad.exit_code == 2
    assert "differs from" in flat(bad.output) and "'seed': 3 vs 0" in flat(bad.output)


# ---- real hf backend ------------------------------------------------------------------------------------
def test_real_hf_backend_rows_carry_measured_tokens_latency_and_kv(tmp_path):
    from profiling.backends.hf import HFBackend
    from profiling.backends.tiny import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    backend = HFBackend(ckpt, device="cpu")
    specs = [
        "greedy",
        "pool:n=3",
        "beam:width=2,max_steps=2",
        "refine:rounds=1",
        "budget:tokens=4",
        "hybrid:n=2,rounds=1",
    ]
    result = profile([backend], TinyChainTask(), specs, tmp_path / "run", per_level=1, max_new_tokens=12)
    df = S.read_samples(tmp_path / "run")
    assert result.units_run == 6 * 3 and len(df) == 3 * (1 + 3 + 1 + 1 + 1 + 2)
    for col in (S.PROMPT_TOKENS, S.COMPLETION_TOKENS, S.LATENCY_S, S.KV_BYTES_PEAK):
        assert df[col].notna().all() and (df[col] > 0).all(), col
    assert (df[S.KV_SOURCE] == "hf-cache-tensors").all() and (df[S.BACKEND] == "hf").all()
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (
        meta["models"]["tiny"]["config"]["num_hidden_layers"] == 2
        and meta["models"]["tiny"]["dtype"] == "float32"
    )


def test_cli_options_reach_the_run_overall_questions_shard_seed_and_batch(tmp_path):
    from profiling.backends.tiny import make_tiny_checkpoint
    from profiling.storage import shard_of
    from profiling.tasks import get_task

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    out = tmp_path / "run"
    args = ["profile", "-m", str(ckpt), "-t", "lab-arith", "-q", "6", "--questions-overall", "--shard", "1/2"]
    args += [
        "--seed",
        "5",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "3",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    result = ttc(*args, "-s", "greedy", "-s", "budget:tokens=1|2")
    assert result.exit_code == 0, result.output
    first6 = [p.id for p in get_task("lab-arith").problems(limit=6)]
    mine = [q for q in first6 if shard_of(q, 2) == 1]
    df = S.read_samples(out)
    assert sorted(df[S.QUESTION_ID].unique()) == sorted(mine) and len(df) == 3 * len(mine)
    assert (df[S.COMPLETION_TOKENS][df[S.STRATEGY] == "greedy"] <= 3).all()
    meta = json.loads((out / "run.json").read_text())
    assert meta["seed"] == 5 and meta["shards"] == ["1/2"] and meta["batch_sizes"] == [2]
    assert meta["questions"] == [{"split": "eval", "per_level": None, "limit": 6}]
    assert sorted(s["spec"] for s in meta["strategies"])[:2] == [
        "budget:tokens=1,answer_tokens=32,temperature=0.0",
        "budget:tokens=2,answer_tokens=32,temperature=0.0",
    ]


# ---- end to end on the lab ------------------------------------------------------------------------------
E2E_STRATEGIES = ["greedy", "pool:n=4", "beam:width=2", "refine:rounds=2", "budget:tokens=8", "hybrid"]


def run_ttc(*args: str) -> subprocess.CompletedProcess:
    """``ttc ARGS`` in a fresh process (the console-script entry point), as a user runs it (with
    progress on: stderr is a pipe, so it gets plain lines)."""
    code = "from planner.cli import main; main()"
    env = {**os.environ, "TTC_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_ttc_profile_on_the_lab_end_to_end_and_resume(tmp_path):
    out = tmp_path / "lab-s"
    argv = ["profile", "--model", "lab-s", "--task", "lab-arith", "--questions", "2", "--out", str(out)]
    argv += [x for s in E2E_STRATEGIES for x in ("--strategy", s)] + ["--device", "cpu"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_ttc(*argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, result.stderr
    # CPU seconds of the command (other load does not count): 10.2 s measured at load 8 on 2 cores
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu_s < 120, cpu_s
    assert "60/60 units" in result.stderr  # the progress bar
    df = S.read_samples(out)
    rows_per_question = {"greedy": 1, "pool": 4, "beam": 1, "refine": 1, "budget": 1, "hybrid": 4}
    assert df.groupby(S.STRATEGY).size().to_dict() == {k: 10 * v for k, v in rows_per_question.items()}
    assert sorted(df[S.DIFFICULTY].unique()) == ["1", "2", "3", "4", "5"]
    for col in (S.PROMPT_TOKENS, S.COMPLETION_TOKENS, S.LATENCY_S, S.KV_BYTES_PEAK):
        assert df[col].notna().all() and (df[col] > 0).all(), col
    # the default engine (auto) runs the lab on the fast decode loop
    assert (df[S.KV_SOURCE] == "fast-cache-filled-slots").all() and (df[S.MODEL] == "lab-s").all()
    assert df[S.REFERENCE].notna().all() and df[S.LOGPROB].notna().all()
    meta = json.loads((out / "run.json").read_text())
    assert (
        meta["models"]["lab-s"]["config"]["model_type"] == "llama"
        and meta["models"]["lab-s"]["device"] == "cpu"
        and meta["models"]["lab-s"]["engine"] == "fast"
    )
    assert meta["commands"][0][:3] == ["ttc", "profile", "--model"]
    again = run_ttc(*argv, "--engine", "hf")  # the other engine resumes the same run
    assert again.returncode == 0 and "profiled 0 unit(s) (60 already done)" in flat(again.stdout)
    assert "profiling: all 60 units already measured" in again.stderr and "0/0" not in again.stderr
    assert len(S.read_samples(out)) == len(df)


# ---- executors ------------------------------------------------------------------------------------------
def test_the_single_machine_path_never_imports_ray(tmp_path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from scripted_backend import ScriptedBackend, TinyChainTask; "
        "from profiling.runner import profile; import planner.cli.profile_cmd; "
        "profile([ScriptedBackend()], TinyChainTask(), ['greedy'], sys.argv[2], per_level=1); "
        "print('ray' in sys.modules)"
    )
    helpers = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", code, helpers, str(tmp_path / "run")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "ray"], "--executor ray needs Ray: pip install 'ttc-planner[ray]'"),
        (
            ["--workers", "2"],
            "--ray-address, --workers, --gpus-per-worker and --cpus-per-worker need --executor ray",
        ),
        (["--executor", "dask"], "--executor must be local or ray, got 'dask'"),
    ],
)
def test_executor_flags_fail_in_one_line_before_any_work(tmp_path, monkeypatch, args, message):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = ttc("profile", "-m", "lab-s", "-t", "lab-arith", "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 2
    assert message in flat(result.output) and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
