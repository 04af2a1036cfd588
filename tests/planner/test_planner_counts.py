"""Planning from per-question counts (a `ttc import` of counts): only best-of-n with an exact
checker (`verified`) can be planned, forecast by the beta-binomial posterior of each question's
correct count; what counts cannot support is a one-line message.

Data: tests/data/monkeys_gsm8k_pythia_counts_slice.csv (real counts, see tests/data/README.md),
with ASSUMED token columns (the data has none); and synthetic counts from known Beta rates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fitting import pass_at_k
from fitting.importer import import_file
from planner.cli import app
from planner.profile import load_profile
from planner.recommend import PlanError, plan
from planner.space.predict import coverage_predictor

SLICE = Path(__file__).resolve().parents[1] / "data" / "monkeys_gsm8k_pythia_counts_slice.csv"
MODELS = {"Pythia_12B_300B": "pythia-12b", "Pythia_1.4B_60B": "pythia-1.4b"}
SPECS = [f"{m}={c}" for m, c in MODELS.items()]


@pytest.fixture(scope="module")
def counts():
    df = pd.read_csv(SLICE)
    return df[df["model"].isin(MODELS)].reset_index(drop=True)


@pytest.fixture(scope="module")
def counts_dir(tmp_path_factory, counts):
    folder = tmp_path_factory.mktemp("counts")
    table = counts[["model", "question_id", "n_samples", "n_correct"]].assign(
        prompt_tokens=200.0, completion_tokens=250.0
    )
    table.to_csv(folder / "in.csv", index=False)
    import_file(folder / "in.csv", folder)
    (folder / "in.csv").unlink()
    return folder


@pytest.fixture(scope="module")
def profile(counts_dir):
    return load_profile(counts_dir, model_specs=MODELS, n_boot=0, use_cache=False)


def test_a_counts_folder_plans_verified_options_at_their_measured_pass_at_n(profile, counts):
    assert profile.is_counts and profile.models == sorted(MODELS)
    rec = plan(profile, {"flops": 3e13}, verifier="exact", method="exhaustive").to_json()
    assert rec["choice"]["strategy"] == "verified" and rec["choice"]["verifier"] == "exact"
    assert rec["cost"]["flops"] <= 3e13
    if rec["source"] == "measured":
        rows = counts[counts["model"] == rec["choice"]["model"]]
        n = rec["choice"]["knobs"]["n"]
        want = pass_at_k(rows["n_samples"].to_numpy(), rows["n_correct"].to_numpy(), np.array([n])).mean()
        assert rec["expected_accuracy"] == pytest.approx(want, abs=1e-5)


def test_what_counts_cannot_support_is_one_line(profile, counts_dir):
    with pytest.raises(PlanError, match="per-question counts give pass@k only.*--verifier exact"):
        plan(profile, {"flops": 3e13})
    with pytest.raises(PlanError, match="--difficulty auto replays each sample's answer; counts have none"):
        plan(profile, {"flops": 3e13}, verifier="exact", difficulty="auto")
    r = CliRunner().invoke(
        app,
        [
            "report",
            str(counts_dir),
            "--n-boot",
            "0",
            "--out",
            str(counts_dir / "r.html"),
            *sum((["--model-spec", s] for s in SPECS), []),
        ],
    )
    assert r.exit_code == 2 and "holds per-question counts; the report needs per-sample results" in r.output
    assert len(r.output.strip().splitlines()) <= 3  # one message (wrapped at most)


def test_recommend_and_evaluate_counts_on_the_command_line(counts_dir):
    specs = sum((["--model-spec", s] for s in SPECS), [])
    r = CliRunner().invoke(
        app,
        [
            "recommend",
            str(counts_dir),
            "--budget-flops",
            "1e14",
            "--verifier",
            "exact",
            "--json",
            "--n-boot",
            "0",
            *specs,
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["choice"]["strategy"] == "verified"
    e = CliRunner().invoke(
        app, ["evaluate", str(counts_dir), "--verifier", "exact", "--json", "--n-boot", "0", *specs]
    )
    assert e.exit_code == 0, e.output
    out = json.loads(e.output)
    chosen = [row["choice"] for row in out["budgets"] if row["choice"] != "nothing fits"]
    assert chosen and all("verified" in c for c in chosen)
    assert all("(exact checker)" in c for c in chosen)
    assert out["serving"]["checker_cost"] == {} and out["serving"]["concurrency"] == 64


def test_held_out_engine_on_counts_is_pass_at_n_of_each_half(profile, counts):
    # the split engine reads a counts folder question by question: an option's accuracy on a
    # half is the mean unbiased pass@n of that half's questions (brute force from the counts)
    from planner.space import CostModel, OptionSpace
    from planner.split_engine import HeldOut

    coster = CostModel(profile.specs)
    space = OptionSpace.from_curves(
        profile.curves,
        coster,
        measured_only=True,
        fit_if_missing=False,
        questions=profile.questions,
        verifier="exact",
    )
    mix = space.target(None)
    held = HeldOut(
        space, profile.curves, profile.samples, {"mix": mix}, counts=profile.counts, verifier="exact"
    )
    train, test = held.split(3)
    assert train and test and not train & test
    table = held.tables(test).table(mix)
    assert len(table) and set(table["strategy"]) == {"verified"}
    for _, row in table.sample(5, random_state=0).iterrows():
        arm = space.arm_by_key(row["arm"])
        rows = counts[(counts["model"] == arm.model) & counts["question_id"].astype(str).isin(test)]
        want = pass_at_k(
            rows["n_samples"].to_numpy(), rows["n_correct"].to_numpy(), np.array([int(row["knob_value"])])
        )
        assert row["accuracy"] == pytest.approx(float(want.mean()), abs=1e-9)


def test_coverage_forecast_recovers_known_beta_rates_beyond_the_pools():
    # per-question success rates from a known Beta(0.3, 3); 16 samples per question; the
    # forecast at 4x the pool must land near the true mean of 1 - (1 - p)^64
    rng = np.random.default_rng(0)
    p = rng.beta(0.3, 3.0, 400)
    n = np.full(p.size, 16)
    c = rng.binomial(n, p)
    ks = np.arange(1, 17)
    acc = pass_at_k(n, c, ks).mean(axis=0)
    points = pd.DataFrame(
        {"knob_value": ks.astype(float), "accuracy": acc, "accuracy_lo": acc, "accuracy_hi": acc}
    )
    pred, note = coverage_predictor(points, n, c, label="synthetic")
    out = pred.predict([16, 32, 64])
    truth = [float(np.mean(1 - (1 - p) ** k)) for k in (16, 32, 64)]
    assert out.source.tolist() == ["measured", "extrapolated", "extrapolated"]
    assert out.accuracy[0] == pytest.approx(acc[-1])
    np.testing.assert_allclose(out.accuracy[1:], truth[1:], atol=0.02)
    assert np.all(out.lo[1:] <= out.accuracy[1:]) and np.all(out.accuracy[1:] <= out.hi[1:])
    assert "beta-binomial posterior of 400 questions" in note
    assert coverage_predictor(points, n, np.zeros_like(c)) is None  # no correct sample: nothing to forecast


def test_counts_whose_smallest_pool_is_one_sample_still_plan(tmp_path):
    """A seeded 1% subsample of the real pools leaves some questions one sample, so a model's
    pass@k curve stops at k = 1 (the common-pool policy): it is still a pool arm (x = n = 1), not
    a one-execution strategy without its compute knob (the crash benchmarks/real_regret.py hit)."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "model": "Pythia_12B_300B",
            "question_id": [f"q{i}" for i in range(30)],
            "n_samples": [1] + [8] * 29,
            "n_correct": 0,
        }
    )
    table["n_correct"] = rng.binomial(table["n_samples"], 0.4)
    table = table.assign(prompt_tokens=200.0, completion_tokens=250.0)
    table.to_csv(tmp_path / "in.csv", index=False)
    import_file(tmp_path / "in.csv", tmp_path / "c")
    prof = load_profile(
        tmp_path / "c", model_specs={"Pythia_12B_300B": "pythia-12b"}, n_boot=0, use_cache=False
    )
    rec = plan(prof, {"flops": 1e15}, verifier="exact", method="exhaustive").to_json()
    assert rec["choice"]["strategy"] == "verified" and rec["choice"]["knobs"]["n"] >= 1
