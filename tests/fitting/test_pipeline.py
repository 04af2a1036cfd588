import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fitting import schema as S
from fitting.pipeline import fit_samples
from planner.cli import app


def pools(n_questions=150, n=32, seed=0, budgets=(4, 8, 16, 32, 64)):
    """Samples drawn from known per-question success rates p ~ Beta(0.5, 1) (a test fixture)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 1.0, size=n_questions)
    rows = []
    for qi, pq in enumerate(p):
        for s in range(n):
            ok = bool(rng.random() < pq)
            answer = "7" if ok else (None if rng.random() < 0.1 else str(rng.integers(0, 3)))
            rows.append(
                {
                    S.QUESTION_ID: f"q{qi}",
                    S.SAMPLE_IDX: s,
                    S.CORRECT: ok,
                    S.ANSWER: answer,
                    S.REFERENCE: "7",
                    S.COMPLETION_TOKENS: 30,
                    S.PROMPT_TOKENS: 10,
                    S.LOGPROB: -float(rng.random()),
                }
            )
        for t in budgets:
            rows.append(
                {
                    S.QUESTION_ID: f"q{qi}",
                    S.SAMPLE_IDX: 0,
                    S.STRATEGY: "budget",
                    S.CONFIG: json.dumps({"tokens": t}),
                    S.CORRECT: bool(rng.random() < pq * (1 - 2 / t)),
                }
            )
    return S.validate_samples(pd.DataFrame(rows)), p


def test_fit_samples_gives_one_record_per_curve_with_band_and_saturation():
    df, p = pools()
    out = fit_samples(df, n_boot=60)
    by = {(f[S.STRATEGY], f[S.METRIC]): f for f in out.fits}
    assert set(by) == {
        ("pool", "pass@k"),
        ("pool", "majority@k"),
        ("pool", "best_of@k"),
        ("budget", "accuracy"),
    }
    f = by[("pool", "pass@k")]
    assert f["converged"] and f["law"] in ("power_law", "exp_decay", "exp_power_law", "logistic")
    assert f["k_min"] == 1 and f["k_max"] == 32 and f["n_questions"] == 150
    band = f["band"]
    assert band["x"][-1] == pytest.approx(4 * 32)
    assert all(
        lo <= est + 1e-12 and est <= hi + 1e-12
        for lo, est, hi in zip(band["lo"], band["estimate"], band["hi"], strict=True)
    )
    # the fitted law reproduces the measured curve it was fitted to within a point
    curve = out.curves[(out.curves[S.STRATEGY] == "pool") & (out.curves[S.METRIC] == "pass@k")]
    assert f["rmse"] < 0.01
    assert curve[S.ACCURACY].iloc[0] == pytest.approx(
        df[df[S.STRATEGY] == "pool"][S.CORRECT].mean(), abs=1e-9
    )
    # the band is centred on the same law as the reported params
    from fitting import get_law

    law = get_law(f["law"]).with_params(f["params"])
    inside = np.array(band["x"]) <= f["k_max"]
    assert np.allclose(
        law.predict(np.array(band["x"])[inside]), np.array(band["estimate"])[inside], atol=1e-6
    )
    sweep = by[("budget", "accuracy")]
    assert sweep["knob"] == "tokens" and sweep["config"] == "{}" and sweep["n_points"] == 5
    json.dumps(out.fits)  # JSON-safe


def test_curve_with_too_few_points_gets_a_note_not_a_law():
    df, _ = pools(n_questions=20, n=2, budgets=(4, 8))
    out = fit_samples(df, n_boot=0)
    for f in out.fits:
        assert f["law"] is None and "no law" in f["note"]


def test_cli_fit_end_to_end_on_a_jsonl_file(tmp_path):
    df, _ = pools(n_questions=40, n=8, budgets=())
    path = tmp_path / "s.jsonl"
    cols = [S.QUESTION_ID, S.SAMPLE_IDX, S.CORRECT, S.ANSWER, S.REFERENCE, S.COMPLETION_TOKENS]
    path.write_text(
        "\n".join(
            json.dumps({c: (None if pd.isna(r[c]) else r[c]) for c in cols}, default=int)
            for _, r in df.iterrows()
        )
    )
    result = CliRunner().invoke(app, ["fit", str(path), "--out", str(tmp_path / "fit"), "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    fits = json.loads((tmp_path / "fit" / "fits.json").read_text())
    assert {f[S.METRIC] for f in fits} == {"pass@k", "majority@k"}
    assert len(pd.read_parquet(tmp_path / "fit" / "curves.parquet")) == len(
        pd.read_csv(tmp_path / "fit" / "curves.csv")
    )


def test_cli_fit_bad_input_exits_nonzero_with_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question_id": "a", "correct": "maybe"}\n')
    result = CliRunner().invoke(app, ["fit", str(path), "--out", str(tmp_path / "fit")])
    assert result.exit_code == 2
    assert "line 1" in result.output
    result = CliRunner().invoke(app, ["fit", str(tmp_path / "nowhere"), "--out", str(tmp_path / "fit")])
    assert result.exit_code == 2 and "no such samples folder" in result.output


def test_fit_samples_batched_and_per_replicate_paths_give_the_same_records():
    df, _ = pools(n_questions=120, n=16, budgets=(4, 8, 16, 32, 64))
    ref = fit_samples(df, n_boot=60, method="scipy")
    new = fit_samples(df, n_boot=60, method="batched")
    assert len(new.fits) == len(ref.fits) == 4
    pd.testing.assert_frame_equal(new.curves, ref.curves)
    for a, b in zip(ref.fits, new.fits, strict=True):
        assert (b["law"], b["converged"], b["n_boot_failed"]) == (
            a["law"],
            a["converged"],
            a["n_boot_failed"],
        )
        for name, value in a["params"].items():
            assert b["params"][name] == pytest.approx(value, rel=2e-3, abs=1e-4), (a["metric"], name)
        # what reports and the planner use: the band and N*
        np.testing.assert_allclose(b["band"]["lo"], a["band"]["lo"], atol=2e-3)
        np.testing.assert_allclose(b["band"]["hi"], a["band"]["hi"], atol=2e-3)
        for end in ("estimate", "lo", "hi"):
            assert b["saturation"][end] == pytest.approx(a["saturation"][end], rel=1e-2), (a["metric"], end)
        if a["metric"] in ("pass@k", "majority@k"):  # every parameter identified by these curves
            for name, (lo_a, hi_a) in a["params_ci"].items():
                (lo_b, hi_b), width = b["params_ci"][name], hi_a - lo_a
                assert abs(lo_b - lo_a) <= 0.02 * width and abs(hi_b - hi_a) <= 0.02 * width, (
                    a["metric"],
                    name,
                )
    with pytest.raises(ValueError, match="method must be one of"):
        fit_samples(df, n_boot=10, method="fast")
