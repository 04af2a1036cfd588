"""One fit cache for every command: `ttc fit`, `ttc recommend`, `ttc evaluate`, `ttc report` and
`ttc demo` reuse the curves and fits of unchanged samples (counted, not timed); rewriting one
shard refits only its curves; `--no-cache` neither reads nor writes; piped output gets plain
progress lines with counts. The profile is built from the synthetic fixtures
(tests/planner/planner_fixtures.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import planner_fixtures as F
import pytest
from typer.testing import CliRunner

import fitting.cache as C
from fitting import schema as S
from planner.cli import app
from planner.profile import CACHE_DIR, load_profile
from profiling.storage import write_shard

CONFIGS = {"lab-s": "qwen2.5-0.5b", "lab-l": "qwen2.5-7b"}


def make_profile(folder):
    """Two models, each in its own shard; returns {model: shard path}."""
    df = F.samples_table(n_questions=10, pool=8, difficulties=("1", "2"))
    shards = {
        m: write_shard(folder, part) for m, part in df[df[S.MODEL].isin(list(CONFIGS))].groupby(S.MODEL)
    }
    F.write_fixture_run(folder, CONFIGS)
    return shards


@pytest.fixture
def counted(monkeypatch):
    """Groups estimated and curves fitted (by model) through the one cache module."""
    calls = {"groups": 0, "models": []}
    estimate, fit = C.estimate_group, C.fit_curves

    def estimate_group(*args, **kwargs):
        calls["groups"] += 1
        return estimate(*args, **kwargs)

    def fit_curves(curves, *args, **kwargs):
        calls["models"] += [u[0][S.MODEL] for u in C.curve_units(curves)]
        return fit(curves, *args, **kwargs)

    monkeypatch.setattr(C, "estimate_group", estimate_group)
    monkeypatch.setattr(C, "fit_curves", fit_curves)
    return calls


def run(*args):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_rewriting_one_shard_refits_only_its_curves(tmp_path, counted):
    shards = make_profile(tmp_path)
    first = load_profile(tmp_path, n_boot=10)
    fitted = len(counted["models"])
    assert fitted == len(first.fits) > 0 and set(counted["models"]) == set(CONFIGS)
    part = S.read_samples(tmp_path)
    part = part[part[S.MODEL] == "lab-s"].copy()
    part[S.CORRECT] = ~part[S.CORRECT]  # new results for lab-s, same shard file
    write_shard(tmp_path, part, target=shards["lab-s"])
    counted.update(groups=0, models=[])
    again = load_profile(tmp_path, n_boot=10)
    assert counted["models"] and set(counted["models"]) == {"lab-s"}
    assert (
        counted["groups"]
        == again.samples[again.samples[S.MODEL] == "lab-s"].groupby(list(S.GROUP_KEYS)).ngroups
    )
    lab_l = [f for f in first.fits if f[S.MODEL] == "lab-l"]
    assert lab_l == [f for f in again.fits if f[S.MODEL] == "lab-l"]


def test_recommend_evaluate_and_report_reuse_the_fits(tmp_path, counted):
    make_profile(tmp_path)
    r = run("recommend", str(tmp_path), "--budget-flops", "5e12", "--n-boot", "10", "--json")
    assert r.exit_code == 0, r.output
    assert counted["models"] and counted["groups"]
    counted.update(groups=0, models=[])
    r = run("evaluate", str(tmp_path), "--n-boot", "10", "--splits", "2", "--json")
    assert r.exit_code == 0, r.output
    r = run(
        "report",
        str(tmp_path),
        "--n-boot",
        "10",
        "--splits",
        "2",
        "--no-png",
        "--out",
        str(tmp_path / "r.html"),
    )
    assert r.exit_code == 0, r.output
    assert counted == {"groups": 0, "models": []}
    # --no-cache recomputes and writes nothing
    before = sorted(p.name for p in (tmp_path / CACHE_DIR).rglob("*"))
    r = run("evaluate", str(tmp_path), "--n-boot", "10", "--splits", "2", "--json", "--no-cache")
    assert r.exit_code == 0, r.output
    assert counted["groups"] and counted["models"]
    assert sorted(p.name for p in (tmp_path / CACHE_DIR).rglob("*")) == before


def ttc(*args, env=None):
    """``ttc ARGS`` in a fresh process with stderr to a pipe (as in a log file)."""
    code = "from planner.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600, env=env
    )


def test_ttc_fit_rerun_fits_nothing_and_a_pipe_gets_progress_lines(tmp_path):
    folder = tmp_path / "p"
    make_profile(folder)
    env = {**os.environ, "TTC_PROGRESS": "1", "COLUMNS": "200"}
    first = ttc("fit", str(folder), "--out", str(tmp_path / "fit"), "--n-boot", "10", env=env)
    assert first.returncode == 0, first.stderr
    n_groups = S.read_samples(folder).groupby(list(S.GROUP_KEYS)).ngroups
    fits = (tmp_path / "fit" / "fits.json").read_text()
    n_fits = len(json.loads(fits))
    assert f"estimating curves: {n_groups}/{n_groups} groups in" in first.stderr
    assert f"fitting laws: {n_fits}/{n_fits} curves in" in first.stderr
    assert "━" not in first.stderr  # no bar drawn into a pipe
    again = ttc("fit", str(folder), "--out", str(tmp_path / "fit"), "--n-boot", "10", env=env)
    assert again.returncode == 0, again.stderr
    assert f"fitting laws: {n_fits}/{n_fits} curves, {n_fits} from the cache in" in again.stderr
    assert f"reused {n_fits} of {n_fits} fits, {n_groups} of {n_groups} curve groups" in " ".join(
        again.stdout.split()
    )
    assert (tmp_path / "fit" / "fits.json").read_text() == fits
    off = ttc(
        "fit",
        str(folder),
        "--out",
        str(tmp_path / "fit2"),
        "--n-boot",
        "10",
        "--no-cache",
        env={**env, "TTC_PROGRESS": "0"},
    )
    assert off.returncode == 0 and "(no cache)" in off.stdout and off.stderr.count("fitting laws") == 0
    assert (tmp_path / "fit2" / "fits.json").read_text() == fits


# the demo's rerun (no fitting, the same findings) is checked in test_demo.py on its shared run
