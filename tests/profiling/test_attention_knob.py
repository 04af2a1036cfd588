"""Sparse attention spelled as a strategy knob (``greedy:attn_blocks=2``) profiles the model
variant ``MODEL@attn_blocks=2`` (profiling.backends.sparse.attention_groups)."""

from __future__ import annotations

import pandas as pd
import pytest
from lab_runs import profile_args
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from profiling.backends.sparse import attention_groups


def test_a_knob_given_twice_is_refused():
    with pytest.raises(ValueError, match="attn_blocks is given 2 times"):
        attention_groups(["greedy:attn_blocks=2,attn_blocks=4"])


def test_the_strategy_spelling_profiles_the_sparse_model_variant(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        [*profile_args(out, "greedy", "greedy:attn_blocks=1"), "--no-progress"],
    )
    assert r.exit_code == 0, r.output
    rows = S.read_samples(out)
    got = rows.groupby([S.MODEL, S.STRATEGY]).size().to_dict()
    questions = rows[S.QUESTION_ID].nunique()
    assert got == {("lab-s", "greedy"): questions, ("lab-s@attn_blocks=1", "greedy"): questions}
    assert isinstance(rows, pd.DataFrame)


def test_the_knob_is_refused_where_nothing_is_generated(tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "profile",
            "--backend",
            "replay",
            "--source",
            str(tmp_path),
            "--strategy",
            "greedy:attn_blocks=2",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 2
    assert "attn_blocks in a --strategy applies to generating runs" in r.output
