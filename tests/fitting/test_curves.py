"""The curves table: known answers on hand-built samples, bootstrap behaviour, difficulty bins."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tolerance import ABS, REL

from fitting import (
    assign_difficulty,
    bootstrap_questions,
    curves_and_per_question,
    curves_from_samples,
    difficulty_bins,
    pass_at_k,
    per_question_curves,
)
from fitting import schema as S
from fitting.curves import CURVE_COLUMNS, SINGLE_POINT_KNOBS, DataWarning

POOL_CFG = json.dumps({"n": 3, "reward": "my:rm"}, sort_keys=True)


def hand_pool(with_reward=True, with_reference=True) -> pd.DataFrame:
    """Two questions, three samples each; every expected value below is worked out by hand."""
    rows = {
        S.MODEL: "m",
        S.STRATEGY: "pool",
        S.CONFIG: POOL_CFG,
        S.QUESTION_ID: ["q1"] * 3 + ["q2"] * 3,
        S.ANSWER: ["7", "7", "3", "1", "2", "2"],
        S.REFERENCE: ["7"] * 3 + ["1"] * 3,
        S.CORRECT: [True, True, False, True, False, False],
        S.REWARD: [0.9, 0.2, 0.8, 0.6, 0.5, 0.3],
        S.LOGPROB: [-1.0, -2.0, -0.5, -0.1, -0.2, -0.3],
        S.PROMPT_TOKENS: [10, 10, 10, 20, 20, 20],
        S.COMPLETION_TOKENS: [5, 7, 9, 1, 2, 3],
        S.LATENCY_S: [0.1, 0.2, 0.3, 1.0, 1.0, 1.0],
        S.KV_BYTES_PEAK: [100.0, 100.0, 100.0, 300.0, 300.0, 300.0],
    }
    df = pd.DataFrame(rows)
    if not with_reward:
        df = df.drop(columns=[S.REWARD])
    if not with_reference:
        df = df.drop(columns=[S.REFERENCE])
    return df


def metric_rows(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    return curves[curves[S.METRIC] == metric].sort_values(S.K)


def test_curves_from_samples_matches_hand_computed_pool_metrics():
    c = curves_from_samples(hand_pool(), n_boot=0)
    assert list(c.columns) == list(CURVE_COLUMNS)
    expected = {
        # q1: 7,7 correct, 3 wrong; q2: 1 correct, 2,2 wrong
        "pass@k": [(2 / 3 + 1 / 3) / 2, (1 + 2 / 3) / 2, 1.0],
        # k=2: q1 wins {7,7} and half of two 7-3 ties (2/3); q2 half of two 1-2 ties (1/3)
        "majority@k": [0.5, 0.5, 0.5],
        # by reward: q1 (0.9 T, 0.2 T, 0.8 F): 2/3, 2/3, 1; q2 (0.6 T, 0.5 F, 0.3 F): 1/3, 2/3, 1
        "best_of@k": [0.5, 2 / 3, 1.0],
        # q1: k=2 loses only {0.2 vs 0.8}: 2/3; k=3: 1.1 > 0.8. q2: k=2 2/3; k=3: 0.6 < 0.8 -> 0
        "weighted@k": [0.5, 2 / 3, 0.5],
    }
    for metric, values in expected.items():
        rows = metric_rows(c, metric)
        assert rows[S.K].tolist() == [1, 2, 3]
        np.testing.assert_allclose(rows[S.ACCURACY], values, atol=1e-9, err_msg=metric)
        assert (rows[S.N_QUESTIONS] == 2).all() and (rows[S.POOL_SIZE] == 3).all()
        assert (rows[S.KNOB] == "samples").all()
        assert (rows[S.MC_SE] == 0).all()  # every k of a 3-pool is enumerated exactly
    assert metric_rows(c, "best_of@k")[S.SCORE_SOURCE].eq(S.REWARD).all()
    assert metric_rows(c, "pass@k")[S.SCORE_SOURCE].isna().all()


def test_cost_columns_scale_with_k_and_count_the_shared_prompt_once():
    rows = metric_rows(curves_from_samples(hand_pool(), n_boot=0), "pass@k")
    k = rows[S.K].to_numpy(float)
    np.testing.assert_allclose(rows[S.MEAN_PROMPT_TOKENS], 15.0)  # (10 + 20) / 2, once per question
    np.testing.assert_allclose(rows[S.MEAN_COMPLETION_TOKENS], 4.5 * k)  # (7 + 2) / 2 per sample
    np.testing.assert_allclose(rows[S.MEAN_TOKENS], 15.0 + 4.5 * k)
    np.testing.assert_allclose(rows[S.MEAN_LATENCY_S], 0.6 * k)  # (0.2 + 1.0) / 2 per sample
    np.testing.assert_allclose(rows[S.MEAN_KV_BYTES], 200.0 * k)
    assert rows[S.MEAN_FLOPS].isna().all()  # not in the table: not invented


def test_per_row_prompt_excess_counts_per_sample():
    df = hand_pool()
    df[S.PROMPT_TOKENS] = [10, 14, 12, 20, 20, 20]  # q1: shared 10, excess 0, 4, 2 (mean 2)
    rows = metric_rows(curves_from_samples(df, n_boot=0, metrics=["pass@k"]), "pass@k")
    np.testing.assert_allclose(rows[S.MEAN_PROMPT_TOKENS], (10 + 20) / 2 + rows[S.K] * 2 / 2)


def test_best_of_ranks_by_logprob_without_rewards_and_weighted_needs_rewards():
    c = curves_from_samples(hand_pool(with_reward=False), n_boot=0)
    assert "weighted@k" not in set(c[S.METRIC])
    rows = metric_rows(c, "best_of@k")
    assert rows[S.SCORE_SOURCE].eq(S.LOGPROB).all()
    # q1 logprobs (-1 T, -2 T, -0.5 F): 2/3, 1/3, 0; q2 (-0.1 T, -0.2, -0.3): 1/3, 2/3, 1
    np.testing.assert_allclose(rows[S.ACCURACY], [0.5, 0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(metric_rows(c, "majority@k")[S.ACCURACY], [0.5, 0.5, 0.5], atol=1e-9)


def test_majority_without_reference_uses_a_correct_sample_or_is_never_right():
    df = hand_pool(with_reference=False)
    df.loc[df[S.QUESTION_ID] == "q2", S.CORRECT] = False  # q2: nobody right, the answer is unknown
    rows = metric_rows(curves_from_samples(df, n_boot=0, metrics=["majority@k"]), "majority@k")
    np.testing.assert_allclose(rows[S.ACCURACY], np.array([2 / 3, 2 / 3, 1.0]) / 2, atol=1e-9)


def test_answers_the_verifier_accepts_vote_together():
    df = pd.DataFrame(
        {
            S.QUESTION_ID: "q",
            S.ANSWER: ["0.5", "1/2", "x"],
            S.REFERENCE: "0.5",
            S.CORRECT: [True, True, False],
        }
    )
    rows = metric_rows(curves_from_samples(df, n_boot=0, metrics=["majority@k"]), "majority@k")
    assert rows[S.ACCURACY].iloc[-1] == pytest.approx(1.0)  # 2 votes vs 1, not a three-way tie


def test_pool_size_is_the_smallest_pool_and_each_question_uses_its_whole_pool():
    df = pd.DataFrame(
        {
            S.QUESTION_ID: ["a"] * 4 + ["b"] * 2,
            S.ANSWER: ["1", "2", "2", "2", "5", "6"],
            S.REFERENCE: ["1"] * 4 + ["5"] * 2,
            S.CORRECT: [True, False, False, False, True, False],
        }
    )
    with pytest.warns(DataWarning, match="cut at k = 2"):  # uneven pools are said, not silent
        rows = metric_rows(curves_from_samples(df, n_boot=0, metrics=["pass@k"]), "pass@k")
    assert rows[S.K].tolist() == [1, 2] and (rows[S.POOL_SIZE] == 2).all()
    expected = (pass_at_k(4, 1, [1, 2]) + pass_at_k(2, 1, [1, 2])) / 2
    np.testing.assert_allclose(rows[S.ACCURACY], expected)


def single_point_rows() -> pd.DataFrame:
    rows = []
    for strategy, cfg, correct in [
        ("greedy", {"cot": True}, [True, False, False, False]),
        ("beam", {"width": 4, "expansions": 2}, [True, True, False, False]),
        ("budget", {"tokens": 32}, [True, True, True, False]),
        ("refine", {"rounds": 2}, [True, True, True, True]),
    ]:
        for q, ok in enumerate(correct):
            rows.append(
                {
                    S.STRATEGY: strategy,
                    S.CONFIG: json.dumps(cfg),
                    S.QUESTION_ID: f"q{q}",
                    S.SAMPLE_IDX: 0,
                    S.CORRECT: ok,
                    S.COMPLETION_TOKENS: 10 * (q + 1),
                    S.PROMPT_TOKENS: 5,
                }
            )
    return pd.DataFrame(rows)


def test_single_execution_strategies_give_one_point_at_their_knob():
    c = curves_from_samples(single_point_rows(), n_boot=0).set_index(S.STRATEGY)
    assert set(c.index) == set(SINGLE_POINT_KNOBS)
    assert (c[S.METRIC] == "accuracy").all()
    assert c.loc["greedy", S.K] == 1 and c.loc["beam", S.K] == 4
    assert c.loc["budget", S.K] == 32 and c.loc["refine", S.K] == 2
    assert c.loc["beam", S.KNOB] == "width" and c.loc["budget", S.KNOB] == "tokens"
    np.testing.assert_allclose(
        c.loc[["greedy", "beam", "budget", "refine"], S.ACCURACY], [0.25, 0.5, 0.75, 1.0]
    )
    assert (c[S.MEAN_COMPLETION_TOKENS] == 25.0).all() and (c[S.MEAN_PROMPT_TOKENS] == 5.0).all()


def test_single_point_without_its_knob_is_a_clear_error():
    df = single_point_rows()
    df = df[df[S.STRATEGY] == "beam"].assign(**{S.CONFIG: "{}"})
    with pytest.raises(ValueError, match="'width'"):
        curves_from_samples(df, n_boot=0)


def synthetic_pools(n_questions: int, n: int = 8, seed: int = 0, model: str = "m") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.7, 1.0, n_questions)
    correct = rng.random((n_questions, n)) < p[:, None]
    wrong = rng.integers(0, 3, (n_questions, n))
    return pd.DataFrame(
        {
            S.MODEL: model,
            S.QUESTION_ID: np.repeat([f"q{i}" for i in range(n_questions)], n),
            S.SAMPLE_IDX: np.tile(np.arange(n), n_questions),
            S.ANSWER: np.where(correct, "R", np.char.add("W", wrong.astype(str))).ravel(),
            S.REFERENCE: "R",
            S.CORRECT: correct.ravel(),
            S.REWARD: (correct + rng.normal(0, 0.7, correct.shape)).ravel(),
        }
    )


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_more_questions():
    few = curves_from_samples(synthetic_pools(20), n_boot=400, metrics=["pass@k", "majority@k"])
    many = curves_from_samples(synthetic_pools(500), n_boot=400, metrics=["pass@k", "majority@k"])
    for c in (few, many):
        assert (c[S.ACCURACY_LO] <= c[S.ACCURACY]).all() and (c[S.ACCURACY] <= c[S.ACCURACY_HI]).all()
        assert (c[S.ACCURACY_HI] > c[S.ACCURACY_LO]).all()
    width_few = (few[S.ACCURACY_HI] - few[S.ACCURACY_LO]).to_numpy()
    width_many = (many[S.ACCURACY_HI] - many[S.ACCURACY_LO]).to_numpy()
    # a standard error shrinks like 1/sqrt(questions): sqrt(500/20) = 5
    assert np.all(width_many < 0.5 * width_few)


def test_curves_are_seeded_and_a_group_does_not_depend_on_the_others():
    one = curves_from_samples(synthetic_pools(30), n_boot=100, seed=3)
    again = curves_from_samples(synthetic_pools(30), n_boot=100, seed=3)
    pd.testing.assert_frame_equal(one, again)
    both = curves_from_samples(
        pd.concat([synthetic_pools(30), synthetic_pools(30, seed=9, model="other")]), n_boot=100, seed=3
    )
    pd.testing.assert_frame_equal(both[both[S.MODEL] == "m"].reset_index(drop=True), one)


def test_weighted_vote_falls_back_to_monte_carlo_with_its_error():
    c = curves_from_samples(synthetic_pools(5, n=30), n_boot=0, metrics=["weighted@k"], weighted_draws=300)
    rows = metric_rows(c, "weighted@k").set_index(S.K)
    assert rows.loc[2, S.MC_SE] == 0.0 and rows.loc[30, S.MC_SE] == 0.0  # C(30, 2), C(30, 30): enumerated
    assert rows.loc[10, S.MC_SE] > 0.0  # C(30, 10) = 3e7 subsets: sampled


def test_per_question_curves_average_to_the_curve():
    df = synthetic_pools(40)
    mats = per_question_curves(df, metrics=["majority@k"])
    ((key, mat),) = mats.items()
    assert key[-1] == "majority@k" and mat.shape == (40, 8)
    curve = metric_rows(curves_from_samples(df, n_boot=0, metrics=["majority@k"]), "majority@k")
    np.testing.assert_allclose(mat.mean(axis=0).to_numpy(), curve[S.ACCURACY].to_numpy())
    res = bootstrap_questions("power_law", mat, n_boot=20)  # the matrix feeds the law bootstrap as is
    assert res.n_boot == 20


def test_curves_and_per_question_in_one_pass_equal_the_two_functions():
    df = synthetic_pools(30)
    df[S.COMPLETION_TOKENS] = np.arange(len(df), dtype=float)
    df.loc[df[S.QUESTION_ID] == "q0", S.COMPLETION_TOKENS] = np.nan  # one question without lengths
    curves, per_q = curves_and_per_question(df, n_boot=50, seed=2)
    pd.testing.assert_frame_equal(curves, curves_from_samples(df, n_boot=50, seed=2))
    alone = per_question_curves(df, seed=2)
    assert per_q.keys() == alone.keys()
    for key, frame in alone.items():  # two code paths: floats within tolerance.REL
        pd.testing.assert_frame_equal(per_q[key], frame, check_exact=False, rtol=REL, atol=ABS)
    # the question without lengths is left out of the mean, not counted as zero: 29 questions of 8
    # samples with lengths 8..239, so the mean per sample is their midpoint
    rows = metric_rows(curves, "pass@k")
    np.testing.assert_allclose(rows[S.MEAN_COMPLETION_TOKENS], rows[S.K] * (8 + 239) / 2)
    assert curves_and_per_question(df, n_boot=0, per_question=False)[1] is None


def test_unknown_metric_is_rejected():
    with pytest.raises(ValueError, match="unknown metric"):
        curves_from_samples(hand_pool(), metrics=["majority"])


def test_difficulty_bins_by_pass_rate_are_equal_quantiles_easiest_first():
    rates = np.arange(10) / 10  # q0 never right .. q9 right 90% of the time
    df = pd.DataFrame(
        {
            S.QUESTION_ID: np.repeat([f"q{i}" for i in range(10)], 10),
            S.CORRECT: (np.arange(10)[None, :] < (rates * 10)[:, None]).ravel(),
        }
    )
    bins = difficulty_bins(df, n_bins=5)
    assert bins["q9"] == "1" and bins["q8"] == "1" and bins["q0"] == "5" and bins["q1"] == "5"
    assert sorted(bins.values()) == sorted([str(b) for b in range(1, 6)] * 2)
    labelled = assign_difficulty(df, bins)
    assert labelled.loc[labelled[S.QUESTION_ID] == "q4", S.DIFFICULTY].eq(bins["q4"]).all()
    c = curves_from_samples(labelled, n_boot=0, metrics=["pass@k"])
    assert sorted(c[S.DIFFICULTY].unique()) == ["1", "2", "3", "4", "5"]


def test_difficulty_bins_keep_ties_together_and_read_labels():
    df = pd.DataFrame({S.QUESTION_ID: ["a", "b", "c", "d"], S.CORRECT: [True, False, False, False]})
    assert difficulty_bins(df, n_bins=2) == {"a": "1", "b": "2", "c": "2", "d": "2"}
    df[S.DIFFICULTY] = ["easy", "hard", "hard", "hard"]
    assert difficulty_bins(df, method="label")["a"] == "easy"
    df.loc[3, S.QUESTION_ID] = "a"
    with pytest.raises(ValueError, match="several difficulty labels"):
        difficulty_bins(df, method="label")
    with pytest.raises(ValueError, match="no difficulty"):
        assign_difficulty(df, {"a": "1"})


def test_the_planner_reads_the_curves_table():
    from planner.space import arms_from_curves

    pools = synthetic_pools(20).assign(**{S.STRATEGY: "pool", S.CONFIG: json.dumps({"n": 8})})
    df = pd.concat([pools, single_point_rows().assign(**{S.MODEL: "m"})])
    arms, _ = arms_from_curves(curves_from_samples(df, n_boot=50))
    names = {a.arm.strategy for a in arms}
    assert {"majority", "weighted", "best_of", "greedy", "beam"} <= names
