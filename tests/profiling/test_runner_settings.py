"""The runner's grouped settings: ``run_profile(..., RunSettings(...), RunHooks(...))`` is the
same run as ``profile(...)`` with the keywords spelled out, and the driver reads as short steps."""

from __future__ import annotations

import ast
import inspect
from dataclasses import FrozenInstanceError, fields

import pandas as pd
import pytest
from scripted_backend import ScriptedBackend, TinyChainTask

from fitting import schema as S
from profiling import runner
from profiling.runner import RunHooks, RunSettings, profile, run_profile

STRATS = ["greedy", "pool:n=3"]


def _samples(folder) -> pd.DataFrame:
    df = S.read_samples(folder)
    return df.sort_values(list(S.SAMPLE_KEYS[1:])).reset_index(drop=True)


def test_grouped_settings_run_the_same_units_as_the_keywords(tmp_path):
    seen = []
    kwargs = dict(per_level=2, seed=3, max_new_tokens=12, batch_size=2, shard=(0, 1))
    flat = profile([ScriptedBackend(err=0.3)], TinyChainTask(), STRATS, tmp_path / "flat", **kwargs)
    grouped = run_profile(
        [ScriptedBackend(err=0.3)],
        TinyChainTask(),
        STRATS,
        tmp_path / "grouped",
        RunSettings(**kwargs),
        RunHooks(on_unit=lambda r: seen.append(r.units_run)),
    )
    assert grouped.units_total == flat.units_total == grouped.units_run > 0
    assert seen == list(range(1, grouped.units_run + 1))
    a, b = _samples(tmp_path / "flat"), _samples(tmp_path / "grouped")
    drop = [S.RUN_ID, S.LATENCY_S, S.TTFT_S]  # the run id and wall-clock timings differ by run
    pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop))


def test_profile_keywords_are_the_settings_and_hooks_fields():
    """A keyword of profile() that neither group carries would be dropped silently."""
    keywords = {p.name for p in inspect.signature(profile).parameters.values() if p.kind is p.KEYWORD_ONLY}
    grouped = {f.name for f in fields(RunSettings)} | {f.name for f in fields(RunHooks)}
    assert keywords == grouped


def test_settings_are_frozen_and_refuse_an_empty_batch():
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        RunSettings(batch_size=0)
    with pytest.raises(FrozenInstanceError):
        RunSettings().seed = 1
    assert RunSettings(per_level=2, limit=5).selection() == {"split": "eval", "per_level": 2, "limit": None}


def test_no_function_of_the_runner_is_over_80_lines():
    tree = ast.parse(inspect.getsource(runner))
    long = {
        n.name: n.end_lineno - n.lineno + 1
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.end_lineno - n.lineno + 1 > 80
    }
    assert long == {}
