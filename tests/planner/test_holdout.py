"""Held-out checks (planner.split_engine, planner.holdout): the split engine against brute force (curves
recomputed from the samples of each half), the interval formula, and `ttc evaluate`'s records
against their definitions. Data: the synthetic profile of tests/planner/report_fixtures.py (known
per-question probabilities; no model is run)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import report_fixtures as F
from scipy import stats

from fitting import schema as S
from fitting.curves import curves_from_samples
from planner.constants import ACCURACY, ARM, KNOB_VALUE, SOURCE
from planner.holdout import evaluate_profile
from planner.profile import DEPLOYABLE_METRICS, load_profile
from planner.search import rank, split_questions
from planner.space import CostModel, OptionSpace
from planner.space.arms import arms_from_curves
from planner.split_engine import HeldOut, split_seeds, summarize

N_BOOT = 10


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    folder = F.write_profile(tmp_path_factory.mktemp("holdout-profile"), n_questions=8)
    return load_profile(folder, n_boot=N_BOOT)


@pytest.fixture(scope="module")
def space(profile):
    coster = CostModel(profile.specs)
    return OptionSpace.from_curves(
        profile.curves, coster, architectures=profile.architectures, measured_only=True, fit_if_missing=False
    )


@pytest.fixture(scope="module")
def held(profile, space):
    mix = space.target(None)
    return HeldOut(space, profile.curves, profile.samples, {"mix": mix, **{b: {b: 1.0} for b in mix}})


def _subset_accuracy(samples: pd.DataFrame, questions) -> dict[tuple[str, str, float], float]:
    """(arm key, difficulty, knob value) -> accuracy, from curves recomputed on the questions only."""
    part = samples[samples[S.QUESTION_ID].astype(str).isin(set(questions))]
    curves = curves_from_samples(part, metrics=DEPLOYABLE_METRICS, n_boot=0)
    sources, _ = arms_from_curves(curves, include_simulated=True)
    return {
        (s.arm.key, s.difficulty, float(x)): float(a)
        for s in sources
        for x, a in zip(s.points[KNOB_VALUE], s.points[ACCURACY], strict=True)
    }


# ---- summarize -----------------------------------------------------------------------------------------------
def test_summarize_is_the_corrected_resampled_t_interval():
    v = np.array([0.10, 0.30, 0.20, 0.25, 0.15])
    s = summarize(v, test_over_train=1.0, level=0.9)
    se = math.sqrt((1 / 5 + 1.0) * v.var(ddof=1))
    t = stats.t.ppf(0.95, 4)
    assert s.mean == pytest.approx(0.2) and s.se == pytest.approx(se)
    assert (s.lo, s.hi) == pytest.approx((0.2 - t * se, 0.2 + t * se))
    assert s.n_splits == 5 and s.within_noise is False  # 0.2 > se = 0.086


def test_summarize_drops_nans_clips_to_bounds_and_keeps_a_floor():
    s = summarize([0.95, 0.99, np.nan, 0.97], bounds=(0.0, 1.0))
    assert s.n_splits == 3 and s.hi <= 1.0
    same = summarize([0.5, 0.5, 0.5], floor=0.1)  # splits that agree by chance are not certainty
    assert same.se == pytest.approx(0.1) and same.lo < 0.5 < same.hi
    one = summarize([0.3])
    assert one.mean == 0.3 and math.isnan(one.se) and not one.within_noise
    assert summarize([0.01, -0.01, 0.02, -0.02]).within_noise


# ---- the engine against brute force -------------------------------------------------------------------------
def test_every_question_reproduces_the_option_tables(held, space):
    for label, target in held.targets.items():
        table = space.table(target)
        table = table[table[SOURCE] == "measured"]
        got = held.tables(held.questions).table(target)
        merged = table.merge(got, on=[ARM, KNOB_VALUE], suffixes=("", "_held"))
        assert len(merged) == len(table) > 0, label
        np.testing.assert_allclose(merged[f"{ACCURACY}_held"], merged[ACCURACY], atol=1e-12)


def test_a_half_is_the_curves_of_its_questions(held, profile):
    train, test = held.split(3)
    assert train.isdisjoint(test) and train | test == set(held.questions)
    for questions in (train, test):
        brute = _subset_accuracy(profile.samples, questions)
        tables = held.tables(questions)
        for b in held.targets["mix"]:
            t = tables.table({b: 1.0})
            assert len(t)
            for a, x, acc in zip(t[ARM], t[KNOB_VALUE], t[ACCURACY], strict=True):
                assert acc == pytest.approx(brute[(a, b, float(x))], abs=1e-12)
        mix = tables.table(held.targets["mix"])
        for a, x, acc in zip(mix[ARM], mix[KNOB_VALUE], mix[ACCURACY], strict=True):
            want = sum(w * brute[(a, b, float(x))] for b, w in held.targets["mix"].items())
            assert acc == pytest.approx(want, abs=1e-12)


def test_the_bootstrap_interval_brackets_the_half_estimate(held):
    train, _ = held.split(0)
    t = held.tables(train, n_boot=200, seed=1).table({"2": 1.0})
    assert (t["accuracy_lo"] <= t[ACCURACY] + 1e-12).all() and (t[ACCURACY] <= t["accuracy_hi"] + 1e-12).all()
    assert (t["accuracy_hi"] > t["accuracy_lo"]).any()
    assert held.tables(train).table({"2": 1.0})["accuracy_lo"].isna().all()


def test_full_se_is_the_standard_error_over_every_question(held, profile):
    t = held.full["3"]
    greedy = t[t[ARM].str.contains(r"\|greedy")].iloc[0]
    key = (greedy[ARM], float(greedy[KNOB_VALUE]))
    s = profile.samples
    rows = s[(s[S.MODEL] == greedy["model"]) & (s[S.STRATEGY] == "greedy") & (s[S.DIFFICULTY] == "3")]
    per_q = rows.groupby(S.QUESTION_ID)[S.CORRECT].mean().to_numpy(float)
    assert held.full_se({"3": [(1.0, key)]}, {"3": 1.0}) == pytest.approx(
        per_q.std(ddof=1) / math.sqrt(len(per_q))
    )
    assert held.full_se({"3": [(1.0, key), (-1.0, key)]}, {"3": 1.0}) == 0.0
    assert math.isnan(held.full_se({"3": [(1.0, ("no-such-arm", 1.0))]}, {"3": 1.0}))


# ---- ttc evaluate ----------------------------------------------------------------------------------------------
def test_evaluate_records_follow_their_definitions(profile, held):
    ev = evaluate_profile(profile, n_splits=3, hardware=None)
    mix = held.targets["mix"]
    full = held.full["mix"]
    questions, difficulty = held.questions, held.difficulty
    for seed in sorted(set(ev.splits["split_seed"])):
        train, test = split_questions(questions, difficulty, seed)
        acc_train, acc_test = (
            _subset_accuracy(profile.samples, train),
            _subset_accuracy(profile.samples, test),
        )

        def mix_acc(acc, a, x):
            return sum(w * acc[(a, b, float(x))] for b, w in mix.items())

        for _, rec in ev.splits[ev.splits["split_seed"] == seed].iterrows():
            feasible = full[full["flops"] <= rec["budget"] * (1 + 1e-9)].copy()
            feasible[ACCURACY] = [
                mix_acc(acc_train, a, x) for a, x in zip(feasible[ARM], feasible[KNOB_VALUE], strict=True)
            ]
            best = rank(feasible, ACCURACY, "flops").iloc[0]
            assert (rec["choice_arm"], rec["choice_x"]) == (best[ARM], float(best[KNOB_VALUE]))
            assert rec["predicted_accuracy"] == pytest.approx(best[ACCURACY], abs=1e-12)
            assert rec["realized_accuracy"] == pytest.approx(
                mix_acc(acc_test, best[ARM], best[KNOB_VALUE]), abs=1e-12
            )
            hind = max(
                mix_acc(acc_test, a, x) for a, x in zip(feasible[ARM], feasible[KNOB_VALUE], strict=True)
            )
            assert rec["regret"] == pytest.approx(hind - rec["realized_accuracy"], abs=1e-12)
    row = ev.table.iloc[-1]
    part = ev.splits[np.isclose(ev.splits["budget"], row["budget"])]
    assert row["regret"] == pytest.approx(part["regret"].mean())
    assert row["regret_lo"] <= row["regret"] <= row["regret_hi"]
    greedy_models = set(ev.table["greedy model"].dropna()) - {""}
    assert greedy_models <= set(F.MODELS)  # every baseline says which model it picked


def test_evaluate_json_has_intervals_and_method(profile):
    ev = evaluate_profile(profile, [2e12], n_splits=4, hardware=None)
    d = ev.to_json()
    assert d["n_splits"] == 4 and "Nadeau" in d["interval"]
    b = d["budgets"][0]
    assert b["budget"] == {"flops": 2e12}
    for key in ("realized_accuracy", "regret", "hindsight_accuracy"):
        assert set(b[key]) == {"mean", "se", "lo", "hi", "n_splits"}
    assert b["realized_accuracy"]["lo"] <= b["realized_accuracy"]["mean"] <= b["realized_accuracy"]["hi"]


def test_split_seeds_start_with_the_seed_and_differ():
    seeds = split_seeds(5, 10)
    assert seeds[0] == 5 and len(set(seeds)) == 10


def test_conservative_planning_maximizes_the_train_halfs_bootstrap_lower_bound(profile, held):
    ev = evaluate_profile(profile, [2e12], n_splits=2, hardware=None, risk="conservative", n_boot=50)
    for _, rec in ev.splits.iterrows():
        train, _ = held.split(int(rec["split_seed"]))
        table = held.tables(train, n_boot=50, seed=int(rec["split_seed"])).table(held.targets["mix"])
        table = table[table["flops"] <= 2e12 * (1 + 1e-9)]
        best = rank(table, "accuracy_lo", "flops").iloc[0]
        assert (rec["choice_arm"], rec["choice_x"]) == (best[ARM], float(best[KNOB_VALUE]))
        assert 0.0 <= rec["realized_accuracy"] <= 1.0
