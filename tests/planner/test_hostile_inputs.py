"""What a hostile user can feed the planner: uneven pools, samples and counts in one folder,
non-finite costs, contradictory model specs, odd spellings. Each answer is the right number or
one line naming the flag, exit 2, and every ``--json`` is strict JSON.

Data: small synthetic folders built in each test (``ttc import`` of a CSV written to tmp_path)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fitting import BetaBinomialPosterior, pass_at_k
from fitting.importer import import_file
from planner.cli import app
from planner.costs import SpecError, parse_model_spec
from planner.profile import load_profile
from planner.recommend import PlanError, build_space, plan
from planner.report.format import NULL_REASONS, strict_json
from planner.space import CostModel, OptionSpace
from planner.split_engine import HeldOut

SPEC = "params:1e9,layers:16,kv_heads:8,head_dim:64"
PROMPT, COMPLETION = 20.0, 50.0  # tokens of every sample: n samples cost PROMPT + n * COMPLETION


def _strict(text: str):
    """Parse JSON refusing NaN and Infinity (which Python's json would accept)."""

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _one_line_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    out = result.output.strip()
    assert len(out.splitlines()) == 1 and "Traceback" not in out, out
    for w in words:
        assert w in out, out


@pytest.fixture
def short_pool(tmp_path):
    """Three questions, config {"n": 4}: q0 has ONE sample (wrong), q1 and q2 four each (one
    right answer "A", three wrong "B")."""
    rows = [("q0", 0, "B")] + [(q, int(a == "A"), a) for q in ("q1", "q2") for a in "ABBB"]
    df = pd.DataFrame(rows, columns=["question_id", "correct", "answer"]).assign(
        model="m1",
        strategy="pool",
        config=json.dumps({"n": 4}),
        prompt_tokens=PROMPT,
        completion_tokens=COMPLETION,
    )
    df.to_csv(tmp_path / "s.csv", index=False)
    import_file(tmp_path / "s.csv", tmp_path / "p")
    return load_profile(tmp_path / "p", model_specs={"m1": SPEC}, n_boot=0, use_cache=False, verifier="exact")


def test_a_one_sample_question_keeps_the_pools_majority_and_cost_and_offers_verified(short_pool):
    """The curve is not cut to k = 1 and then read as one execution at the config's n = 4
    (which offered "pool+majority@k n=4" at pass@1 = 0.167 for 70 tokens): majority at n is
    measured on the questions whose pool holds n (0 at n = 4 on q1 and q2), priced for n
    samples, and verified best-of-n uses every question (each pool as far as it goes, the
    beta-binomial posterior beyond: q1 and q2 are certain at n = 4, q0 is forecast)."""
    space = build_space(short_pool, CostModel(short_pool.specs), verifier="exact")
    table = space.table(space.target("all")).set_index(["arm", "knob_value"])
    assert set(table.index.get_level_values("arm")) == {"m1|majority", "m1|verified"}
    maj = table.loc["m1|majority"]
    assert maj.loc[1.0, "accuracy"] == pytest.approx(1 / 6) and maj.loc[4.0, "accuracy"] == 0.0
    assert maj.loc[1.0, "tokens"] == pytest.approx(PROMPT + COMPLETION)
    assert maj.loc[4.0, "tokens"] == pytest.approx(PROMPT + 4 * COMPLETION)  # 220, not 70
    verified = table.loc["m1|verified"]
    want = BetaBinomialPosterior().fit([1, 4, 4], [0, 1, 1]).forecast(4).estimate
    assert verified.loc[4.0, "accuracy"] == pytest.approx(want, abs=1e-9) and want > 2 / 3
    assert any("shorter pools are left out" in n for n in space.notes)

    rec = plan(short_pool, {"flops": 1e13}, verifier="exact", method="exhaustive")
    n = rec.choice["knobs"]["n"]
    assert rec.choice["strategy"] == "verified" and n >= 4
    assert rec.cost["tokens"] == pytest.approx(PROMPT + n * COMPLETION)


def _mixed_folder(tmp_path, overlap: bool = False):
    """Samples of model m1 (8 questions x 8 samples) and counts of model mA (4 questions x 100
    samples) imported into one folder."""
    rng = np.random.default_rng(0)
    ok = rng.random((8, 8)) < 0.4
    samples = pd.DataFrame(
        {
            "question_id": np.repeat([f"q{i}" for i in range(8)], 8),
            "correct": ok.ravel().astype(int),
            "answer": np.where(ok.ravel(), "A", "B"),
            "model": "m1",
            "prompt_tokens": 100.0,
            "completion_tokens": 200.0,
        }
    )
    counts = pd.DataFrame(
        {
            "question_id": ["q1", "q2", "q3", "q4"],
            "n_samples": 100,
            "n_correct": [3, 0, 50, 1],
            "prompt_tokens": 100.0,
            "completion_tokens": 200.0,
            "model": "m1" if overlap else "mA",
        }
    )
    samples.to_csv(tmp_path / "s.csv", index=False)
    counts.to_csv(tmp_path / "c.csv", index=False)
    for name in ("s.csv", "c.csv"):
        import_file(tmp_path / name, tmp_path / "mixed")
    return tmp_path / "mixed", counts


def test_samples_and_counts_in_one_folder_plan_and_evaluate_both_models(tmp_path):
    folder, counts = _mixed_folder(tmp_path)
    prof = load_profile(
        folder, model_specs={"m1": SPEC, "mA": SPEC}, n_boot=0, use_cache=False, verifier="exact"
    )
    assert prof.models == ["m1", "mA"] and prof.counts_models == ["mA"]
    rec = plan(prof, {"flops": 7e13}, verifier="exact", models=("mA",), method="exhaustive").to_json()
    assert rec["choice"]["model"] == "mA" and rec["choice"]["strategy"] == "verified"
    if rec["source"] == "measured":
        n = rec["choice"]["knobs"]["n"]
        want = pass_at_k(counts["n_samples"].to_numpy(), counts["n_correct"].to_numpy(), np.array([n])).mean()
        assert rec["expected_accuracy"] == pytest.approx(want, abs=1e-5)
    with pytest.raises(PlanError, match="mA: per-question counts give pass@k only.*--verifier exact"):
        plan(prof, {"flops": 7e13}, models=("mA",))

    space = OptionSpace.from_curves(
        prof.curves,
        CostModel(prof.specs),
        measured_only=True,
        fit_if_missing=False,
        questions=prof.questions,
        verifier="exact",
    )
    held = HeldOut(
        space,
        prof.curves,
        prof.samples,
        {"mix": space.target(None)},
        counts=prof.counts,
        verifier="exact",
        per_question=prof.per_question,
    )
    arms = set(held.full["mix"]["arm"])
    assert {"mA|verified", "m1|verified", "m1|majority"} <= arms  # evaluate keeps the counts model


def test_a_model_held_both_as_samples_and_as_counts_is_refused(tmp_path):
    folder, _ = _mixed_folder(tmp_path, overlap=True)
    with pytest.raises(ValueError, match="holds both samples and counts of model 'm1'"):
        load_profile(folder, model_specs={"m1": SPEC}, n_boot=0, use_cache=False)


def test_evaluate_counts_whose_smallest_pool_is_one_sample(tmp_path):
    """A counts pool curve starting at one sample is a pool in the held-out engine too (it was
    read as a one-execution strategy: "pool config {} has no compute knob 'n'")."""
    rng = np.random.default_rng(1)
    table = pd.DataFrame(
        {"model": "mA", "question_id": [f"q{i}" for i in range(30)], "n_samples": [1] + [8] * 29}
    )
    table["n_correct"] = rng.binomial(table["n_samples"], 0.4)
    table.assign(prompt_tokens=200.0, completion_tokens=250.0).to_csv(tmp_path / "c.csv", index=False)
    import_file(tmp_path / "c.csv", tmp_path / "c")
    r = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "c"),
            "--verifier",
            "exact",
            "--model-spec",
            f"mA={SPEC}",
            "--splits",
            "3",
            "--n-boot",
            "0",
            "--no-cache",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert _strict(r.stdout)["budgets"]


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--gen-tokens", "0"], "--gen-tokens"),
        (["--gen-tokens", "0,0"], "--gen-tokens"),
        (["--gen-tokens", "100,inf"], "--gen-tokens"),
        (["--gen-tokens", "100", "--gpu", "h100", "--price-usd-per-hour", "inf"], "--price-usd-per-hour"),
        (["--gen-tokens", "100", "--gpu", "h100", "--qps", "inf"], "--qps"),
        (["--gen-tokens", "100", "--gpu", "h100", "--qps", "1", "--latency-slo-s", "inf"], "--latency-slo-s"),
        (["--gen-tokens", "100", "--gpu", "h100", "--tp-efficiency", "nan"], "--tp-efficiency"),
    ],
)
def test_costs_refuses_non_finite_or_empty_numbers_naming_the_flag(args, flag):
    r = CliRunner().invoke(app, ["costs", "--model", f"m={SPEC}", *args])
    _one_line_error(r, flag)


def test_costs_refuses_an_infinite_api_price():
    r = CliRunner().invoke(
        app, ["costs", "--api", "deepseek-r1", "--gen-tokens", "100", "--output-usd-per-mtok", "inf"]
    )
    _one_line_error(r, "--output-usd-per-mtok")


@pytest.mark.parametrize("pair", ["usd=nan", "latency_s=inf", "flops=nan", "flops=-1", "tokens=x"])
def test_recommend_refuses_a_non_finite_checker_cost_naming_the_flag(tmp_path, pair):
    r = CliRunner().invoke(
        app,
        ["recommend", str(tmp_path), "--budget-flops", "1e13", "--verifier", "exact", "--checker-cost", pair],
    )
    _one_line_error(r, f"--checker-cost {pair}", "finite number")


def test_costs_json_is_strict():
    r = CliRunner().invoke(
        app,
        [
            "costs",
            "--model",
            f"m={SPEC}",
            "--gpu",
            "h100",
            "--strategy",
            "pool:n=4",
            "--gen-tokens",
            "100,300",
            "--qps",
            "2",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert _strict(r.stdout)["estimate"]["flops"] > 0


_floats = st.floats(allow_nan=True, allow_infinity=True)
_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | _floats | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def _non_finite(v) -> int:
    if isinstance(v, dict):
        return sum(_non_finite(x) for x in v.values())
    if isinstance(v, list):
        return sum(_non_finite(x) for x in v)
    return int(isinstance(v, float) and not math.isfinite(v))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=5).filter(lambda k: k != NULL_REASONS), _json_like, max_size=5))
def test_strict_json_writes_every_non_finite_number_as_null_with_a_reason(value):
    out = _strict(strict_json(value))
    assert len(out.get(NULL_REASONS, {})) == _non_finite(value)
    assert all(r.startswith("not a finite number") for r in out.get(NULL_REASONS, {}).values())


@pytest.mark.parametrize(
    "text, message",
    [
        (f"x={SPEC},params:8e9", "field 'params' given twice"),
        (f"x={SPEC},top_k:2,experts_per_token:2", "field 'experts_per_token' given twice"),
        (f"x={SPEC},experts:8,experts_per_token:16", r"experts_per_token \(16\) exceeds experts \(8\)"),
        (f"x={SPEC},experts:8,experts_per_token:2", "needs active_params"),
        (f"x={SPEC},experts:8", "experts needs experts_per_token"),
    ],
)
def test_model_spec_refuses_duplicates_and_experts_that_would_price_as_dense(text, message):
    with pytest.raises(SpecError, match=message):
        parse_model_spec(text)
    _one_line_error(
        CliRunner().invoke(app, ["costs", "--model-spec", text, "--gen-tokens", "10"]), "--model-spec"
    )


def test_a_difficulty_spelled_1_0_is_the_label_1(tmp_path):
    """Labels are normalised when read (1.0 -> "1"); --difficulty is spelled the same way."""
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {"question_id": np.repeat([f"q{i}" for i in range(6)], 4), "difficulty": np.repeat([1, 2] * 3, 4)}
    )
    df["correct"] = (rng.random(len(df)) < 0.5).astype(int)
    df.assign(
        answer=np.where(df["correct"] == 1, "A", "B"), model="m1", prompt_tokens=10.0, completion_tokens=30.0
    ).to_csv(tmp_path / "s.csv", index=False)
    import_file(tmp_path / "s.csv", tmp_path / "p")
    prof = load_profile(tmp_path / "p", model_specs={"m1": SPEC}, n_boot=0, use_cache=False)
    one = plan(prof, {"flops": 1e13}, difficulty="1", method="exhaustive").to_json()
    spelled = plan(prof, {"flops": 1e13}, difficulty="1.0", method="exhaustive").to_json()
    assert spelled["choice"] == one["choice"] and spelled["expected_accuracy"] == one["expected_accuracy"]
    mix = plan(prof, {"flops": 1e13}, difficulty="1.0:1,2:1", method="exhaustive").to_json()
    assert mix["choice"]["model"] == "m1"
