"""The one progress helper (common/progress.py): periodic lines with counts and an ETA in a log,
a bar on a terminal, nothing with TTC_PROGRESS=0. Time comes from a fake clock."""

from __future__ import annotations

import io

import pytest

from common.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def progress_on(monkeypatch):
    monkeypatch.setenv("TTC_PROGRESS", "1")


def test_a_log_gets_a_line_each_tenth_with_count_and_eta_and_a_last_line():
    log, clock = io.StringIO(), Clock()
    with Progress("fitting laws", 20, unit="curves", stream=log, clock=clock) as bar:
        for _ in range(20):
            clock.now += 1.0  # one curve a second: 20 s in all
            bar.advance()
    lines = log.getvalue().splitlines()
    # nothing before 2 s; then one line per 10% of the total (every 2 curves), and the last line
    assert lines[0] == "fitting laws: 2/20 curves (10%), 2.0 s elapsed, ETA 18 s"
    assert lines[1] == "fitting laws: 4/20 curves (20%), 4.0 s elapsed, ETA 16 s"
    assert len(lines) == 10 and lines[-1] == "fitting laws: 20/20 curves in 20 s"


def test_a_slow_step_gets_a_line_every_ten_seconds():
    log, clock = io.StringIO(), Clock()
    with Progress("profiling", 1000, unit="units", stream=log, clock=clock) as bar:
        for _ in range(50):  # 50 units of 1,000, one every 3 s: never 10% more, but 150 s pass
            clock.now += 3.0
            bar.advance(note="1,200 tok/s")
    lines = log.getvalue().splitlines()
    assert lines[0] == "profiling: 4/1000 units (0%), 1,200 tok/s, 12 s elapsed, ETA 49 min 48 s"
    assert len(lines) == 150 // 12 + 1  # a line each 12 s (the first call at or past 10 s), then the last
    assert lines[-1] == "profiling: 50/1000 units, 1,200 tok/s in 2 min 30 s"


def test_a_quick_step_writes_only_its_last_line():
    log, clock = io.StringIO(), Clock()
    with Progress("estimating curves", 140, unit="groups", stream=log, clock=clock) as bar:
        for _ in range(140):
            clock.now += 0.01
            bar.advance(note="140 from the cache")
    assert log.getvalue().splitlines() == ["estimating curves: 140/140 groups, 140 from the cache in 1.4 s"]


def test_the_callback_shape_and_a_changing_total():
    log, clock = io.StringIO(), Clock()
    bar = Progress("held-out splits", 0, unit="splits", stream=log, clock=clock, min_s=0.0).start()
    for r in range(1, 6):
        clock.now += 1.0
        bar(r, 5)  # progress(done, total), as evaluate_profile calls it
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("held-out splits: 1/5 splits (20%)") and lines[-1].endswith(
        "5/5 splits in 5.0 s"
    )


def test_a_message_replaces_the_last_line_and_an_unstarted_bar_shows_nothing_else():
    log = io.StringIO()
    bar = Progress("profiling", 0, unit="units", stream=log, terminal=True)
    bar.close("profiling: all 2240 units already measured in runs/lab")
    assert log.getvalue() == "profiling: all 2240 units already measured in runs/lab\n"


def test_on_a_terminal_a_bar_shows_the_count():
    log = io.StringIO()
    with Progress("fitting laws", 4, unit="curves", stream=log, terminal=True) as bar:
        bar.advance(4)
    assert "4/4" in log.getvalue() and "curves" in log.getvalue()


def test_ttc_progress_0_turns_it_off(monkeypatch):
    monkeypatch.setenv("TTC_PROGRESS", "0")
    log, clock = io.StringIO(), Clock()
    with Progress("fitting laws", 4, unit="curves", stream=log, clock=clock, min_s=0.0) as bar:
        for _ in range(4):
            clock.now += 5
            bar.advance()
    assert log.getvalue() == "" and bar.done == 4
