"""Profiling under misuse: samples the engine did not finish are never written, a run
that fails before writing a unit leaves nothing behind, ``merge`` refuses runs of other models
or questions, the hf backend refuses a call that cannot fit in memory."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from scripted_backend import ScriptedBackend, TinyChainTask

from fitting import schema as S
from profiling.backends import hf as hf_backend
from profiling.lock import RunLocked, remove_lock_file, run_lock
from profiling.runner import profile
from profiling.storage import RUN_FILE, RunMismatch, finished_units, merge_runs


class AbortingBackend(ScriptedBackend):
    """The scripted backend, except that the requests whose prompt contains ``marker`` come
    back with one sample vLLM-style ``abort``-ed (partial text)."""

    def __init__(self, marker: str, **kw):
        super().__init__(**kw)
        self.marker = marker

    def generate(self, requests):
        results = super().generate(requests)
        out = []
        for request, result in zip(requests, results, strict=True):
            if self.marker in request.prompt:
                first = dataclasses.replace(result.completions[0], finish_reason="abort")
                result = dataclasses.replace(result, completions=[first, *result.completions[1:]])
            out.append(result)
        return out


def test_units_with_an_aborted_sample_are_not_written_but_reported_and_retried(tmp_path):
    task = TinyChainTask()
    problems = list(task.problems(per_level=2))
    bad = problems[1]
    res = profile(
        [AbortingBackend(bad.question)], task, ["greedy", "pool:n=4"], tmp_path / "run", per_level=2
    )
    # both strategies of the bad question were dropped, nothing else
    assert len(res.unfinished) == 2 and all(u.endswith(f" {bad.id}") for u in res.unfinished)
    df = S.read_samples(tmp_path / "run")
    assert bad.id not in set(df[S.QUESTION_ID]) and df[S.QUESTION_ID].nunique() == len(problems) - 1
    # a rerun with a healthy engine runs exactly the dropped units
    again = profile([ScriptedBackend()], task, ["greedy", "pool:n=4"], tmp_path / "run", per_level=2)
    assert again.units_run == 2 and not again.unfinished
    assert len(finished_units(tmp_path / "run")) == 2 * len(problems)


def failing_loader(spec, device):
    raise FileNotFoundError(f"{spec}: the model will not load")


def test_a_run_that_fails_before_writing_leaves_no_folder_run_json_or_lock(tmp_path):
    out = tmp_path / "new" / "run"
    with pytest.raises(FileNotFoundError, match="will not load"):
        profile(["broken-model"], TinyChainTask(), ["greedy"], out, per_level=1, loader=failing_loader)
    assert not out.exists()
    # an existing folder is kept, and so is what it held; only what the run created goes
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileNotFoundError):
        profile(["broken-model"], TinyChainTask(), ["greedy"], out, per_level=1, loader=failing_loader)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_failed_run_keeps_its_finished_units_for_the_rerun(tmp_path):
    task = TinyChainTask()
    out = tmp_path / "run"
    calls = []

    def loader(spec, device):
        calls.append(spec)
        if spec == "second":
            raise FileNotFoundError("second: the model will not load")
        return ScriptedBackend()

    with pytest.raises(FileNotFoundError):
        profile(["first", "second"], task, ["greedy"], out, per_level=1, loader=loader)
    assert (out / RUN_FILE).exists() and len(finished_units(out)) == 3


def test_a_waiter_on_a_removed_lock_file_locks_the_new_one_so_two_never_both_hold(tmp_path):
    """The failed-run cleanup removes the lock file while holding it. A process that was
    waiting on the old file must lock the folder's new file, else a third process could lock
    the new file while the waiter believes it holds the folder."""
    folder = tmp_path / "run"
    waiting, holding, done = threading.Event(), threading.Event(), threading.Event()
    errors = []

    def waiter():
        try:
            with run_lock(folder, wait=True, poll_s=0.02, on_wait=lambda line: waiting.set()):
                holding.set()
                done.wait(10)
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)
            holding.set()

    with run_lock(folder):
        thread = threading.Thread(target=waiter)
        thread.start()
        assert waiting.wait(10)
        remove_lock_file(folder)  # the holder cleans up, then releases
    assert holding.wait(10) and not errors
    with pytest.raises(RunLocked):  # the waiter holds the folder's current lock file
        with run_lock(folder):
            pass
    done.set()
    thread.join(10)


def test_merge_refuses_runs_of_other_models_or_questions_unless_allowed(tmp_path):
    task = TinyChainTask()
    profile(
        [ScriptedBackend(model_name="m-small")], task, ["greedy"], tmp_path / "s", per_level=2, shard=(0, 2)
    )
    profile(
        [ScriptedBackend(model_name="m-large")], task, ["greedy"], tmp_path / "l", per_level=2, shard=(1, 2)
    )
    profile(
        [ScriptedBackend(model_name="m-small")], task, ["greedy"], tmp_path / "q", per_level=3, shard=(1, 2)
    )
    with pytest.raises(RunMismatch, match=r"profiled model\(s\) \['m-large'\] .* --allow-mixed"):
        merge_runs(tmp_path / "out", [tmp_path / "s", tmp_path / "l"])
    with pytest.raises(RunMismatch, match="selected questions .* --allow-mixed"):
        merge_runs(tmp_path / "out", [tmp_path / "s", tmp_path / "q"])
    assert not (tmp_path / "out").exists()
    report = merge_runs(tmp_path / "out", [tmp_path / "s", tmp_path / "l"], allow_mixed=True)
    assert report.units == len(finished_units(tmp_path / "s")) + len(finished_units(tmp_path / "l"))


def test_the_hf_backend_refuses_a_call_that_cannot_fit_in_memory(monkeypatch):
    from profiling.backends import GenerationRequest
    from profiling.lab.models import checkpoint_path

    backend = hf_backend.HFBackend(checkpoint_path("lab-s"), device="cpu")
    need = backend.request_bytes(100_000, 20, 256)
    per_row = backend.request_bytes(1, 20, 256)
    assert need == 100_000 * per_row  # linear in the rows: KV cache and logits per sequence
    monkeypatch.setattr(hf_backend, "available_memory_bytes", lambda: 2**20)  # 1 MiB free
    with pytest.raises(ValueError, match=r"100000 sequences .* GiB .* lower the pool size n"):
        backend.generate([GenerationRequest("1+2=", n=100_000, max_new_tokens=256, temperature=1.0)])
    # a call that fits runs
    out = backend.generate([GenerationRequest("1+2=", n=2, max_new_tokens=4, temperature=1.0)])
    assert len(out[0].completions) == 2
