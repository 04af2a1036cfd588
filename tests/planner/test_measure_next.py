"""What to measure next: how sure a recommendation is (P(best), expected regret over the joint
question bootstrap) and which profiling would lower its regret most per unit of cost.

Data: hand-made replicate matrices with answers computed by brute force; a synthetic samples
table from KNOWN per-question success rates (no model was run); the real Pythia GSM8K counts
slice of tests/data (tests/data/README.md), subsampled to 8 samples per question, with ASSUMED
token counts; and the lab (a real `ttc profile` of the trained lab-s checkpoint)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from lab_runs import profile_args
from scipy.special import expit
from typer.testing import CliRunner

from fitting import schema as S
from fitting.importer import import_file
from planner import measure_next
from planner.cli import app
from planner.constants import ACCURACY, KNOB_VALUE, MODEL, STRATEGY
from planner.costs import ModelSpec, lab_checkpoint_dirs
from planner.profile import load_profile, profile_from_tables
from planner.recommend import plan
from planner.search.value import expected_regret, p_best, preposterior_value
from planner.split_engine import HeldOut

SLICE = Path(__file__).resolve().parents[1] / "data" / "monkeys_gsm8k_pythia_counts_slice.csv"


# ---- the formulas ---------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    arrays(np.int8, st.tuples(st.integers(1, 7), st.integers(1, 4)), elements=st.integers(0, 4)), st.data()
)
def test_p_best_and_expected_regret_match_brute_force(levels, data):
    """Small matrices of few distinct values (ties included): loops over replicates agree."""
    A = levels.astype(float) / 4.0
    c = data.draw(st.integers(0, A.shape[1] - 1))
    wins = [A[b, c] == max(A[b]) for b in range(A.shape[0])]
    losses = [max(A[b]) - A[b, c] for b in range(A.shape[0])]
    assert p_best(A, c) == pytest.approx(sum(wins) / len(wins), abs=1e-12)
    assert expected_regret(A, c) == pytest.approx(sum(losses) / len(losses), abs=1e-12)


def test_preposterior_value_is_zero_for_an_option_that_cannot_change_the_choice_and_largest_for_the_close_competitor():
    """Choice 0.70 (sd 0.02), a close competitor 0.69 (sd 0.05), a far one 0.40: measuring the far
    one is worth exactly nothing, the competitor most; a noiseless look at the competitor is
    worth what a loop over replicates says (its estimate becomes its true value)."""
    rng = np.random.default_rng(0)
    B = 2000
    A = np.column_stack([rng.normal(0.70, 0.02, B), rng.normal(0.69, 0.05, B), rng.normal(0.40, 0.02, B)])
    mu = np.array([0.70, 0.69, 0.40])
    everyone = np.ones(3, dtype=bool)
    value = {}
    for j in range(3):
        only = np.arange(3) == j
        value[j] = preposterior_value(A, mu, A[:, j], 0.0, updated=only, before=everyone)
    assert value[2] == 0.0
    assert value[1] > value[0] >= 0 and value[1] > 0.005
    shift = A[:, 1] - A[:, 1].mean()
    brute = np.mean([A[b].max() - A[b, 0] for b in range(B)]) - np.mean(
        [A[b].max() - A[b, 1 if mu[1] + shift[b] > mu[0] else 0] for b in range(B)]
    )
    assert value[1] == pytest.approx(brute, abs=1e-12)
    noisy = preposterior_value(
        A, mu, A[:, 1], 0.05**2, updated=np.arange(3) == 1, before=everyone, eps=rng.standard_normal(B)
    )
    assert 0 < noisy < value[1]  # a noisy look is worth less than a perfect one


def test_a_measurement_that_brings_an_option_in_reach_is_worth_its_lead():
    """The best option is out of reach (the planner may not choose it): making it choosable with
    a noiseless look is worth the whole expected regret."""
    A = np.array([[0.5, 0.9], [0.6, 0.8], [0.55, 0.7]])
    mu = A.mean(axis=0)
    v = preposterior_value(
        A,
        mu,
        A[:, 1],
        0.0,
        updated=np.array([False, True]),
        before=np.array([True, False]),
        after=np.array([True, True]),
    )
    assert v == pytest.approx(expected_regret(A, 0), abs=1e-12)


# ---- a synthetic profile: two close models and a clearly worse one ------------------------------------
#: model -> (catalog config, skill): p = sigmoid(skill + z_q)
MODELS = {"good": ("qwen2.5-7b", 1.2), "rival": ("qwen2.5-1.5b", 1.0), "bad": ("qwen2.5-0.5b", -5.0)}
POOL = json.dumps({"cot": True, "n": 8, "reward": "none", "temperature": 1.0, "top_p": 1.0}, sort_keys=True)


def _samples(n_questions: int = 60, pool: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n_questions)
    rows = []
    for m, (_, skill) in MODELS.items():
        for i, zi in enumerate(z):
            ok = rng.random(pool) < expit(skill + zi)
            wrong, toks = rng.integers(0, 3, pool), rng.poisson(60, pool)
            rows += [
                {
                    S.MODEL: m,
                    S.STRATEGY: "pool",
                    S.CONFIG: POOL,
                    S.QUESTION_ID: f"q{i}",
                    S.DIFFICULTY: "all",
                    S.SAMPLE_IDX: j,
                    S.ANSWER: "A" if ok[j] else f"W{wrong[j]}",
                    S.REFERENCE: "A",
                    S.CORRECT: bool(ok[j]),
                    S.PROMPT_TOKENS: 40,
                    S.COMPLETION_TOKENS: int(toks[j]),
                }
                for j in range(pool)
            ]
    return S.validate_samples(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def synthetic():
    specs = {m: ModelSpec.from_catalog(c) for m, (c, _) in MODELS.items()}
    return profile_from_tables(_samples(), specs, n_boot=20)


def test_on_a_synthetic_profile_actions_never_point_at_a_clearly_worse_model(synthetic):
    seen = []
    for flops in (3e12, 1e13, 3e13):
        rec = plan(synthetic, {"flops": flops}, hardware="h100")
        out = measure_next(synthetic, rec)
        assert rec.to_json()["measure_next"] == out
        assert 0 <= out["p_best"] <= 1 and out["expected_regret_points"] >= 0
        assert all(a["model"] != "bad" for a in out["actions"])
        seen += [a["model"] for a in out["actions"]]
        json.loads(json.dumps(out, allow_nan=False))  # strict JSON
    assert seen, "no action at any budget: the test would be vacuous"


# ---- real counts: the best option lies beyond the extrapolation limit ---------------------------------
@pytest.fixture(scope="module")
def eight_per_question(tmp_path_factory):
    """Pythia 1B and 12B on 128 GSM8K questions, each pool cut to 8 samples (hypergeometric),
    with ASSUMED 200 prompt + 250 generated tokens per sample."""
    models = {"Pythia_12B_300B": "pythia-12b", "Pythia_1B_300B": "pythia-1b"}
    df = pd.read_csv(SLICE)
    df = df[df["model"].isin(models)].reset_index(drop=True)
    n, c = df["n_samples"].to_numpy(), df["n_correct"].to_numpy()
    keep = np.full(len(df), 8)
    df = df.assign(n_samples=keep, n_correct=np.random.default_rng(0).hypergeometric(c, n - c, keep))
    folder = tmp_path_factory.mktemp("eight")
    table = df[["model", "question_id", "n_samples", "n_correct"]].assign(
        prompt_tokens=200.0, completion_tokens=250.0
    )
    table.to_csv(folder / "in.csv", index=False)
    import_file(folder / "in.csv", folder / "p")
    return load_profile(folder / "p", model_specs=models, n_boot=20, use_cache=False)


def test_when_the_best_option_lies_beyond_reach_the_top_action_brings_it_in_reach(eight_per_question):
    prof = eight_per_question
    rec = plan(prof, {"flops": 1e15}, verifier="exact", hardware="h100")
    out = measure_next(prof, rec)
    assert out["p_best_beyond_reach"] > 0.5 and out["p_best"] < 0.5
    top = out["actions"][0]
    assert top["kind"] == "further" and top["strategy"] == "pool"
    # a pool of n lets the planner extrapolate to 4n: beyond today's 4 x 8 = 32
    assert 4 * top["knobs"]["n"] > 32 and top["predicted_generated_tokens"] == pytest.approx(
        128 * top["knobs"]["n"] * 250
    )
    assert top["predicted_gpu_seconds"] > 0 and "run.json" in top["note"]  # imported: names to edit


# ---- the lab: a printed command runs as printed ----------------------------------------------------
@pytest.mark.skipif(
    "lab-s" not in {p.name for p in lab_checkpoint_dirs()}, reason="lab-s checkpoint not trained yet"
)
def test_a_measure_next_command_runs_as_printed_and_appends_to_the_profile(tmp_path):
    out = tmp_path / "lab"
    runner = CliRunner()
    assert runner.invoke(app, [*profile_args(out, "pool:n=8", questions=2), "--no-progress"]).exit_code == 0
    before = S.read_samples(out)
    r = runner.invoke(
        app,
        [
            "recommend",
            str(out),
            "--budget-tokens",
            "3000",
            "--verifier",
            "exact",
            "--difficulty",
            "4",
            "--n-boot",
            "20",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    block = json.loads(r.output[r.output.index("{") :])["measure_next"]
    assert block["actions"], block
    action = block["actions"][0]
    assert "note" not in action
    argv = shlex.split(action["command"])
    assert argv[:2] == ["ttc", "profile"]
    r = runner.invoke(app, [*argv[1:], "--no-progress"])
    assert r.exit_code == 0, r.output
    after = S.read_samples(out)
    n = action["knobs"]["n"]
    added = after[after[S.CONFIG] != before[S.CONFIG].iloc[0]]
    assert len(after) == len(before) + len(added) and len(added) == 10 * n  # 2 questions x 5 levels
    assert set(added[S.QUESTION_ID]) == set(before[S.QUESTION_ID])  # the same questions, further
    assert action["predicted_generated_tokens"] == pytest.approx(added[S.COMPLETION_TOKENS].sum(), rel=0.5)


def test_the_replicates_share_one_question_draw_across_options():
    """Options equal on every question (majority vote and best-of-n with an exact checker at
    n = 1) have equal replicates (one draw of questions per replicate for every option), and
    each option's replicates are centred on its accuracy over every question (within 3
    standard errors of their mean)."""
    specs = {m: ModelSpec.from_catalog(c) for m, (c, _) in MODELS.items()}
    prof = profile_from_tables(_samples(n_questions=30), specs, n_boot=0, verifier="exact")
    rec = plan(prof, {"flops": 1e13}, hardware="h100", verifier="exact")
    space, target = rec.context["space"], rec.context["target"]
    held = HeldOut(
        space, prof.curves, prof.samples, {"t": target}, verifier="exact", per_question=prof.per_question
    )
    table, R = held.replicates("t", 400, seed=3)
    assert R.shape == (400, len(table)) and np.isfinite(R).all()
    one = table[(table[KNOB_VALUE] == 1) & (table[MODEL] == "good")]
    cols = one.index[one[STRATEGY].isin(["majority", "verified"])]
    assert len(cols) == 2
    np.testing.assert_allclose(R[:, cols[0]], R[:, cols[1]], atol=1e-12)
    se = R.std(axis=0) / np.sqrt(len(R))
    assert np.all(np.abs(R.mean(axis=0) - table[ACCURACY].to_numpy(float)) <= 3 * se + 1e-9)
