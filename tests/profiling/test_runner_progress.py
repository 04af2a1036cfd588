"""The profile runner's progress (common.progress.Progress): counts in a log, and a fully reused
run says "all N units already measured" instead of an empty bar."""

from __future__ import annotations

import pytest
from scripted_backend import ScriptedBackend, TinyChainTask

from profiling.runner import profile

STRATS = ["greedy", "pool:n=3"]


@pytest.fixture(autouse=True)
def progress_on(monkeypatch):
    monkeypatch.setenv("TTC_PROGRESS", "1")


def test_a_log_gets_the_count_and_a_reused_run_says_all_units_are_measured(tmp_path, capsys):
    out = tmp_path / "run"
    first = profile([ScriptedBackend()], TinyChainTask(), STRATS, out, per_level=2, progress=True)
    err = capsys.readouterr().err  # stderr is not a terminal here: plain lines, as in a log file
    n = first.units_total
    assert n > 0 and first.units_run == n
    assert f"profiling: {n}/{n} units" in err and "tok/s" in err and "━" not in err
    again = profile([ScriptedBackend()], TinyChainTask(), STRATS, out, per_level=2, progress=True)
    err = capsys.readouterr().err
    assert again.units_run == 0 and again.units_skipped == n
    assert err.strip() == f"profiling: all {n} units already measured in {out}"
    assert "0/0" not in err


def test_a_partly_reused_run_counts_only_the_units_left(tmp_path, capsys):
    out = tmp_path / "run"
    profile([ScriptedBackend()], TinyChainTask(), STRATS, out, per_level=1, progress=True)
    capsys.readouterr()
    more = profile([ScriptedBackend()], TinyChainTask(), STRATS, out, per_level=2, progress=True)
    err = capsys.readouterr().err
    left = more.units_total - more.units_skipped
    assert more.units_skipped > 0 and left == more.units_run > 0
    assert f"profiling: {left}/{left} units" in err
