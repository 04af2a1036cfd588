"""Per-question counts: import (CSV/JSONL/Parquet), the compact table, pass@k curves from it,
`ttc import` / `ttc fit` on real published counts, and what the planner says about them."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fitting import DataWarning, pass_at_k
from fitting import schema as S
from fitting.counts import counts_from_samples, curves_from_counts, pooled_counts
from fitting.importer import import_file, read_input, read_records
from fitting.pipeline import fit_counts
from planner.cli import app

REAL = (
    Path(__file__).parents[1] / "data" / "monkeys_gsm8k_pythia_counts_slice.csv"
)  # see tests/data/README.md


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def real():
    return pd.read_csv(REAL)


# ---- import ------------------------------------------------------------------------------------


def test_real_counts_csv_imports_one_row_per_question_and_reports_extra_columns(tmp_path, real):
    result, shard = import_file(REAL, tmp_path / "out")
    assert result.kind == "counts" and result.samples is None
    assert shard.name.startswith("counts-import-")
    assert result.unknown_fields == {"size", "pretrain_tokens", "inference_flops"}
    back = S.read_counts(tmp_path / "out")
    assert len(back) == len(real) == 512  # one row per (model, question), not one per sample
    merged = back.merge(real.astype({"question_id": str}), on=["model", "question_id"])
    assert (merged["n_samples_x"] == merged["n_samples_y"]).all()
    assert (merged["n_correct_x"] == merged["n_correct_y"]).all()
    assert set(back[S.STRATEGY]) == {"pool"} and set(back[S.DIFFICULTY]) == {"all"}
    assert back[S.COMPLETION_TOKENS].isna().all()
    assert shard.stat().st_size < 40_000  # 218 M samples' worth of counts stay small


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_counts_formats_read_alike_with_token_means(tmp_path, fmt):
    rows = [
        {"question_id": "a", "n_samples": 10, "n_correct": 3, "model": "m", "completion_tokens": 41.5},
        {
            "question_id": 7,
            "n_samples": 4,
            "n_correct": 0,
            "model": "m",
            "difficulty": 2,
            "completion_tokens": 12,
        },
    ]
    path = tmp_path / f"c.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    elif fmt == "csv":
        path.write_text(
            "question_id,n_samples,n_correct,model,difficulty,completion_tokens\na,10,3,m,,41.5\n7,4,0,m,2,12\n"
        )
    else:
        pd.DataFrame(rows).astype({"question_id": str, "difficulty": "Int64"}).to_parquet(path)
    df = read_records(path).counts
    assert df[S.QUESTION_ID].tolist() == ["a", "7"]
    assert df[S.N_SAMPLES].tolist() == [10, 4] and df[S.N_CORRECT].tolist() == [3, 0]
    assert df[S.COMPLETION_TOKENS].tolist() == [41.5, 12.0]
    assert df[S.DIFFICULTY].tolist() == ["unlabelled", "2"]  # "all" means every question


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"question_id": "a", "n_samples": 4, "n_correct": 5}\n',
            "line 1: field 'n_correct' must be <= n_samples = 4, got 5",
        ),
        (
            '{"question_id": "a", "n_samples": 4, "n_correct": 1}\n{"question_id": "b", "n_samples": 0, "n_correct": 0}\n',
            "line 2: field 'n_samples' must be an integer >= 1, got 0",
        ),
        (
            '{"question_id": "a", "n_samples": 4.5, "n_correct": 1}\n',
            "line 1: field 'n_samples' must be a non-negative integer, got 4.5",
        ),
        (
            '{"question_id": "a", "n_samples": 4, "n_correct": "x"}\n',
            "line 1: field 'n_correct' must be a non-negative integer",
        ),
        (
            '{"question_id": "a", "n_samples": 4, "n_correct": 1, "completion_tokens": -2}\n',
            "line 1: field 'completion_tokens' must be a finite number >= 0 (a per-sample mean), got -2",
        ),
        (
            '{"question_id": "a", "n_samples": 4, "n_correct": 1}\n{"question_id": "a", "n_samples": 4, "n_correct": 2}\n',
            "line 2: duplicate counts for question_id 'a' of model 'unknown'; first seen on line 1",
        ),
    ],
)
def test_bad_counts_name_file_line_and_field(tmp_path, text, message):
    path = write(tmp_path, "c.jsonl", text)
    with pytest.raises(S.SchemaError) as err:
        read_records(path)
    assert str(err.value) == f"{path} {message}" or str(err.value).startswith(f"{path} {message}")


def test_bad_parquet_counts_name_the_row(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"question_id": ["a", "b"], "n_samples": [4, 3], "n_correct": [1, 9]}).to_parquet(path)
    with pytest.raises(
        S.SchemaError, match=r"c\.parquet row 2: field 'n_correct' must be <= n_samples = 3, got 9"
    ):
        read_records(path)


count_rows = st.lists(
    st.tuples(st.integers(1, 10_000_000), st.floats(0, 1), st.sampled_from(["m1", "m2"])),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=count_rows, fmt=st.sampled_from(["jsonl", "csv"]))
def test_fuzz_valid_counts_round_trip_exactly(tmp_path, rows, fmt):
    recs = [
        {"question_id": f"q{i}", "n_samples": n, "n_correct": int(round(f * n)), "model": m}
        for i, (n, f, m) in enumerate(rows)
    ]
    path = tmp_path / f"c.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    else:
        pd.DataFrame(recs).to_csv(path, index=False)
    df = read_records(path).counts
    assert df[S.N_SAMPLES].tolist() == [r["n_samples"] for r in recs]
    assert df[S.N_CORRECT].tolist() == [r["n_correct"] for r in recs]
    assert df[S.MODEL].tolist() == [r["model"] for r in recs]
    assert (df[S.N_CORRECT] <= df[S.N_SAMPLES]).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.one_of(st.integers(-5, 20), st.floats(allow_nan=True), st.text(max_size=3), st.booleans()),
    c=st.one_of(st.integers(-5, 25), st.floats(allow_nan=True), st.text(max_size=3), st.none()),
    line=st.integers(1, 4),
)
def test_fuzz_any_bad_count_is_an_error_naming_its_line_and_field(tmp_path, n, c, line):
    good = {"question_id": "ok", "n_samples": 10, "n_correct": 2}
    bad = {"question_id": "bad", "n_samples": n, "n_correct": c}

    def whole(v):  # JSON integers, and numbers like 4.0 that are whole
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v == int(v)

    valid = whole(n) and whole(c) and 1 <= n <= S.MAX_COUNT and 0 <= c <= n
    lines = [{**good, "question_id": f"ok{i}"} for i in range(line - 1)] + [bad]
    path = write(tmp_path, "c.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n")
    if valid:
        assert read_records(path).counts[S.N_CORRECT].iloc[-1] == c
        return
    with pytest.raises(S.SchemaError) as err:
        read_records(path)
    text = str(err.value)
    assert text.startswith(f"{path} line {line}: ") and ("'n_samples'" in text or "'n_correct'" in text)


# ---- curves from counts ----------------------------------------------------------------------------


def test_pass_at_k_from_real_counts_equals_the_unbiased_estimator_at_every_k(real):
    d = real[real["model"] == "Pythia_12B_300B"]
    curves = curves_from_counts(d, n_boot=0)
    assert curves[S.K].tolist() == list(range(1, 129))
    expected = pass_at_k(d["n_samples"].to_numpy(), d["n_correct"].to_numpy(), np.arange(1, 129)).mean(axis=0)
    np.testing.assert_allclose(curves[S.ACCURACY].to_numpy(), expected, rtol=1e-12, atol=1e-15)
    assert set(curves[S.ESTIMATOR]) == {"unbiased"} and set(curves[S.POOL_POLICY]) == {"common"}


def test_counts_from_samples_match_the_samples_pass_at_k():
    rng = np.random.default_rng(3)
    rows = [
        {"question_id": f"q{q}", "correct": bool(rng.random() < q / 10)} for q in range(10) for _ in range(12)
    ]
    samples = pd.DataFrame(rows)
    from fitting import curves_from_samples

    via_counts = curves_from_counts(counts_from_samples(samples), n_boot=0)
    direct = curves_from_samples(samples, metrics=["pass@k"], n_boot=0)
    np.testing.assert_allclose(via_counts[S.ACCURACY], direct[S.ACCURACY], rtol=1e-12)


def test_rows_of_one_question_from_two_runs_are_pooled():
    counts = pd.DataFrame(
        {
            "run_id": ["r1", "r2", "r1"],
            "question_id": ["a", "a", "b"],
            "n_samples": [4, 6, 10],
            "n_correct": [1, 2, 0],
            "completion_tokens": [10.0, 20.0, np.nan],
        }
    )
    pooled = pooled_counts(counts).set_index(S.QUESTION_ID)
    assert pooled.loc["a", S.N_SAMPLES] == 10 and pooled.loc["a", S.N_CORRECT] == 3
    assert pooled.loc["a", S.COMPLETION_TOKENS] == pytest.approx((4 * 10 + 6 * 20) / 10)
    assert math.isnan(pooled.loc["b", S.COMPLETION_TOKENS])


def test_uneven_real_pools_warn_and_both_policies_are_recorded(real):
    d = real[real["model"] == "Pythia_1B_300B"]  # pools of 640-10,112 samples
    with pytest.warns(DataWarning, match=r"Pythia_1B_300B/pool: pools of 640-10112 samples, cut at k = 640"):
        common = curves_from_counts(d, n_boot=0)
    assert common[S.K].max() == 640 and (common[S.N_QUESTIONS] == 128).all()
    with pytest.warns(DataWarning, match="fewer questions back each k"):
        available = curves_from_counts(d, n_boot=20, pool_policy="available")
    assert available[S.K].max() == 10112 and set(available[S.POOL_POLICY]) == {"available"}
    top = available[available[S.K] == 10112].iloc[0]
    big = d[d["n_samples"] >= 10112]
    assert top[S.N_QUESTIONS] == len(big) and top[S.ACCURACY] == pytest.approx((big["n_correct"] > 0).mean())
    # k beyond 512 is log-spaced, and the first 512 k are all there
    assert set(range(1, 513)) <= set(available[S.K]) and len(available) < 700


def test_huge_pools_give_a_curve_and_fit_without_crashing(real):
    d = real[real["model"] == "Pythia_14M_2M"]  # pools up to 1,000,064 samples, 3 questions ever solved
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        out = fit_counts(d, n_boot=20)
    curve = out.curves
    assert curve[S.K].max() == 10112 and curve[S.ACCURACY].iloc[-1] > 0
    assert len(out.fits) == 1 and out.fits[0]["metric"] == "pass@k"


# ---- the CLI and the planner ---------------------------------------------------------------------


def test_ttc_import_then_fit_a_real_counts_folder(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(REAL), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "counts of 512 (model, question) pairs" in result.output and "size" in result.output
    result = runner.invoke(
        app, ["fit", str(tmp_path / "run"), "--out", str(tmp_path / "fit"), "--n-boot", "20"]
    )
    assert result.exit_code == 0, result.output
    assert "uneven pools" in result.output and "fitted 4 curves in" in result.output
    fits = json.loads((tmp_path / "fit" / "fits.json").read_text())
    assert {f["model"] for f in fits} == {
        "Pythia_12B_300B",
        "Pythia_1B_300B",
        "Pythia_14M_2M",
        "Pythia_1.4B_60B",
    }
    assert {f["metric"] for f in fits} == {"pass@k"}
    curves = pd.read_parquet(tmp_path / "fit" / "curves.parquet")
    assert {"estimator", "pool_policy"} <= set(curves.columns)


def test_read_input_tells_counts_from_samples(tmp_path):
    import_file(REAL, tmp_path / "run")
    samples, counts = read_input(tmp_path / "run")
    assert samples is None and len(counts) == 512
    with pytest.raises(S.SchemaError, match="holds per-question counts"):
        S.read_samples(tmp_path / "run")


def test_ttc_recommend_on_a_counts_folder_says_what_it_needs_in_one_line(tmp_path):
    import_file(REAL, tmp_path / "run")
    # counts plan only best-of-n with an exact checker (pass@n needs one): without --verifier exact, one line says so
    specs = [
        "Pythia_1.4B_60B=pythia-1.4b",
        "Pythia_12B_300B=pythia-12b",
        "Pythia_14M_2M=pythia-14m",
        "Pythia_1B_300B=pythia-1b",
    ]
    result = CliRunner().invoke(
        app,
        [
            "recommend",
            "--profile",
            str(tmp_path / "run"),
            "--budget-flops",
            "1e12",
            "--gpu",
            "h100",
            "--n-boot",
            "0",
            *sum((["--model-spec", s] for s in specs), []),
        ],
    )
    assert result.exit_code == 2
    assert "per-question counts give pass@k only" in result.output and "--verifier exact" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3  # one message (rich may wrap it)
