"""Forecast-targeted adaptive profiling: the allocation rule, the estimators on adaptively
grown pools, and ``ttc profile --adaptive --forecast-at`` end to end (with resume)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fitting.betabinom import BetaBinomial
from fitting.coverage import BetaBinomialPosterior
from fitting.importer import read_input
from planner.adaptive_forecast import allocate, block_gain, round_samples, seed_blocks
from planner.adaptive_profiling import STATE_FILE, spent
from planner.cli import app

DATA = Path(__file__).resolve().parents[1] / "data"
MODELS = ("Pythia_12B_300B", "Pythia_1B_300B")


def test_far_beyond_the_pools_every_block_goes_to_unsolved_questions_spread_evenly():
    """At K = 10,000 a solved question's (1 - p)^K is near 0 whatever more samples show, so
    the blocks go to the unsolved ones (fewest successes first); unsolved questions with the
    same pool are alike, so they share the blocks evenly (at most one block apart)."""
    rng = np.random.default_rng(0)
    n = np.full(200, 20)
    c = rng.binomial(20, rng.beta(0.2, 3.0, size=200))
    extra = allocate(n, c, 10_000, 4, 4 * 150)
    assert extra.sum() == 150
    assert extra[c > 0].sum() == 0
    assert np.ptp(extra[c == 0]) <= 1


def test_without_any_success_the_rule_is_fewest_samples_first_and_limits_are_kept():
    n, c = np.array([4, 8, 4, 4]), np.zeros(4, int)
    assert allocate(n, c, 100, 4, 8).tolist() == [1, 0, 1, 0]
    assert allocate(n, c, 100, 4, 8, limit=[4, 100, 100, 4]).tolist() == [0, 1, 1, 0]


def test_block_gain_is_the_variance_of_the_posterior_mean_over_the_block_outcome():
    """The closed form against a Monte Carlo of (p, y) with 400,000 draws: Var_y E[(1-p)^K | y]
    (about 0.008 here; 5% relative tolerance, several standard errors of the simulation)."""
    a, b, n, c, k, block = 0.5, 4.0, 10, 1, 30, 6
    rng = np.random.default_rng(3)
    p = rng.beta(a + c, b + n - c, size=400_000)
    y = rng.binomial(block, p)
    theta = (1 - p) ** k
    means = pd.Series(theta).groupby(y).transform("mean").to_numpy()
    mc = float(np.var(means))
    exact = float(block_gain([n], [c], k, block, a, b)[0])
    assert exact == pytest.approx(mc, rel=0.05)
    assert exact > 0.005


def test_fits_on_adaptively_grown_pools_recover_known_rates_as_well_as_uniform_pools():
    """The allocation looks only at counts already seen, so each question's likelihood is
    that of a fixed pool of its final size: the beta-binomial fit of (a, b) and the forecast
    pass@K from pools grown by the allocation rule recover the known population as uniform
    pools of the same total do. 400 questions with rates ~ Beta(0.3, 3), 40 samples per
    question on average, K = 2,000, 4 seeds: the mean |forecast - truth| of each arm is under
    3 points and the fitted a within 25% of 0.3 on average (the same tolerances for both)."""
    a, b, q, k, per_q, block = 0.3, 3.0, 400, 2_000, 40, 4
    errors = {"uniform": [], "adaptive": []}
    fitted_a = {"uniform": [], "adaptive": []}
    for seed in range(4):
        rng = np.random.default_rng(seed)
        p = rng.beta(a, b, size=q)
        truth = float(np.mean(1 - (1 - p) ** k))
        share = per_q * q
        n = np.full(q, seed_blocks(share, block, q) * block)
        c = rng.binomial(n, p)
        while (left := share - int(n.sum())) >= block:
            extra = allocate(n, c, k, block, round_samples(share, left, block))
            if extra.sum() == 0:
                break
            c = c + rng.binomial(extra * block, p)
            n = n + extra * block
        assert n.sum() <= share and n.max() > 4 * n.min()  # uneven pools
        pools = {"adaptive": (n, c), "uniform": (np.full(q, per_q), rng.binomial(per_q, p))}
        for arm, (nn, cc) in pools.items():
            errors[arm].append(abs(BetaBinomialPosterior().fit(nn, cc).forecast(k).estimate - truth))
            fitted_a[arm].append(BetaBinomial().fit(nn, cc).params_["a"])
    for arm in errors:
        assert np.mean(errors[arm]) < 0.03, (arm, errors)
        assert abs(np.mean(fitted_a[arm]) - a) < 0.25 * a, (arm, fitted_a)


def _profile(recording: Path, out: Path, budget: int):
    args = ["profile", "--backend", "replay", "--source", str(recording), "-s", "pool", "--adaptive"]
    args += ["--forecast-at", "1000", "--budget-samples", str(budget), "--block", "4"]
    args += ["-q", "24", "--questions-overall", "--out", str(out), "--no-progress"]
    return CliRunner().invoke(app, args)


def test_the_cli_grows_uneven_pools_within_the_budget_resumes_and_forecast_reads_them(recording, tmp_path):
    out = tmp_path / "fc"
    budget = 2 * 24 * 40
    r = _profile(recording, out, budget)
    assert r.exit_code == 0, r.output
    assert "stopped: profiling budget spent" in r.output and "pass@1000" in r.output
    state = json.loads((out / STATE_FILE).read_text())
    assert state["settings"]["goal"] == "forecast" and len(state["rounds"]) >= 3
    assert all(r_["done"] for r_ in state["rounds"])
    assert json.loads((out / "run.json").read_text())["adaptive"]["stopped"] == "profiling budget spent"
    _, counts = read_input(out)
    n = counts.groupby(["model", "question_id"])["n_samples"].sum()
    assert n.sum() == spent(out)[0] <= budget
    assert n.groupby(level=0).size().tolist() == [24, 24]
    assert n.max() > 2 * n.min()  # the blocks went to some questions only
    before = counts.sort_values(list(counts.columns)).reset_index(drop=True)
    again = _profile(recording, out, budget)  # the same command again: nothing new
    assert again.exit_code == 0, again.output
    after = read_input(out)[1]
    pd.testing.assert_frame_equal(before, after.sort_values(list(after.columns)).reset_index(drop=True))
    f = CliRunner().invoke(app, ["forecast", str(out), "--at", "1000", "--json"])
    assert f.exit_code == 0, f.output
    records = json.loads(f.output[f.output.index("[") :])
    assert {rec["model"] for rec in records} == set(MODELS)
    assert all(0 <= rec["lo"] <= rec["estimate"] <= rec["hi"] <= 1 for rec in records)


def test_forecast_at_needs_a_sample_budget(recording, tmp_path):
    args = ["profile", "--backend", "replay", "--source", str(recording), "-s", "pool", "--adaptive"]
    r = CliRunner().invoke(
        app, [*args, "--forecast-at", "100", "--budget-profile-tokens", "1e6", "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2 and "--budget-samples" in r.output
    assert "Traceback" not in r.output


def test_block_gain_vanishes_for_solved_questions_far_out():
    """Five successes in 100 leave (1 - p)^10000 at about 0 whatever 4 more samples show."""
    a, b = 0.3, 3.0
    g = block_gain([100, 100], [0, 5], 10_000, 4, a, b)
    assert g[1] < 1e-6 < g[0]
