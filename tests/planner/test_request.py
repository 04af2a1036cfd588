"""One plan request, validated once: from Python, a TOML file, and flags that override it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.constants import BUDGET_KEYS, METHODS, OBJECTIVES, RISKS
from planner.request import PlanRequest


def test_a_request_names_what_the_recommendation_json_echoes():
    req = PlanRequest(
        {"flops": 1e13, "latency_s": 5}, difficulty="1:0.5,5:0.5", risk="conservative", concurrency=4
    )
    assert req.to_json() == {
        "budget": {"flops": 1e13, "latency_s": 5.0},
        "difficulty": "1:0.5,5:0.5",
        "hardware": "h100",
        "concurrency": 4,
        "risk": "conservative",
    }
    assert PlanRequest({"usd": 1e-3}, api="o1").to_json() == {
        "budget": {"usd": 1e-3},
        "difficulty": "all",
        "api": "o1",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"budget": {}}, "give at least one budget"),
        ({"budget": {"joules": 1.0}}, "unknown budget 'joules'"),
        ({"budget": {"flops": -1.0}}, "budget flops must be a positive number"),
        ({"budget": {"flops": "lots"}}, "budget flops must be a number, got 'lots'"),
        ({"risk": "bold"}, "risk must be one of expected, conservative; got 'bold'"),
        ({"objective": "speed"}, "objective must be one of accuracy, pareto; got 'speed'"),
        ({"method": "grid"}, "method must be one of auto, exhaustive, optuna; got 'grid'"),
        ({"hardware": "h100", "api": "o1"}, "not both"),
        ({"concurrency": 0}, "concurrency must be an integer >= 1, got 0"),
        ({"tp": 1.5}, "tp must be an integer >= 1, got 1.5"),
        ({"extra_models": {"lab-xl": ""}}, "extra_models must map model names"),
    ],
)
def test_a_bad_field_fails_at_construction_with_one_line_naming_it(fields, message):
    with pytest.raises(ValueError, match=message) as err:
        PlanRequest(**{"budget": {"flops": 1e13}, **fields})
    assert "\n" not in str(err.value)


def test_toml_file_with_cli_names_relative_paths_and_flag_overrides(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "plan.toml"
    path.write_text(
        'profile = "runs/lab"\ngpu = "a100"\nrisk = "conservative"\ntrials = 12\nallow-simulated = true\n'
        'model = ["lab-s", "lab-m"]\n[mix]\n1 = 0.25\n5 = 0.75\n[budget]\nflops = 2e8\n'
        '[extra_model]\nlab-xl = "qwen2.5-14b"\n'
    )
    req = PlanRequest.from_toml(path)
    assert req.profile == str(tmp_path / "sub" / "runs" / "lab")
    assert (req.hardware, req.risk, req.n_trials, req.include_simulated) == ("a100", "conservative", 12, True)
    assert req.models == ("lab-s", "lab-m") and req.difficulty == "1:0.25,5:0.75"
    assert req.extra_models == {"lab-xl": "qwen2.5-14b"}
    # command-line flags override the file; flags not given (None) leave it alone
    over = req.replace(risk="expected", budget={"latency_s": 2.0}, hardware=None, n_trials=None)
    assert over.risk == "expected" and over.hardware == "a100" and over.n_trials == 12
    assert over.budget == {"flops": 2e8, "latency_s": 2.0}
    with pytest.raises(ValueError, match="risk must be one of"):
        req.replace(risk="bold")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpu = 'h100'\n", "missing \\[budget\\] table"),
        ("[budget]\nflops = 1e13\n[oops]\n", "unknown field 'oops'; known: .*allow_simulated"),
        ("risk = 'bold'\n[budget]\nflops = 1e13\n", "risk must be one of"),
        ("difficulty = '4'\nmix = '1:1'\n[budget]\nflops = 1\n", "give difficulty or mix, not both"),
        ("[budget\nflops = 1\n", "not valid TOML"),
    ],
)
def test_bad_plan_files_name_the_file_and_the_field(tmp_path, text, message):
    path = tmp_path / "plan.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        PlanRequest.from_toml(path)
    assert str(err.value).startswith(str(path))


json_scalars = (
    st.none() | st.booleans() | st.integers(-3, 100) | st.floats(allow_nan=True) | st.text(max_size=8)
)
fields = {
    "difficulty": json_scalars,
    "risk": st.sampled_from([*RISKS, "bold"]) | json_scalars,
    "objective": st.sampled_from([*OBJECTIVES, "speed"]),
    "method": st.sampled_from([*METHODS, "grid"]),
    "concurrency": json_scalars,
    "trials": json_scalars,
    "gpu": st.sampled_from(["h100", "a100"]) | st.none(),
    "api": st.sampled_from(["o1"]) | st.none(),
}


@settings(max_examples=200, deadline=None)
@given(
    budget=st.dictionaries(st.sampled_from([*BUDGET_KEYS, "joules"]), json_scalars, max_size=3),
    chosen=st.fixed_dictionaries({}, optional=fields),
)
def test_fuzz_a_mapping_gives_a_valid_request_or_one_clean_error(budget, chosen):
    data = {"budget": budget, **{k: v for k, v in chosen.items() if v is not None}}
    try:
        req = PlanRequest.from_mapping(data, "fuzz.toml")
    except ValueError as exc:
        assert str(exc).startswith("fuzz.toml: ") and "\n" not in str(exc)
        return
    # what was accepted is valid and survives a rebuild from its own JSON
    assert req.budget and all(k in BUDGET_KEYS and v > 0 and math.isfinite(v) for k, v in req.budget.items())
    assert req.risk in RISKS and req.objective in OBJECTIVES and req.method in METHODS
    assert not (req.hardware and req.api)
    again = PlanRequest(
        req.to_json()["budget"], difficulty=req.difficulty, hardware=req.hardware, api=req.api
    )
    assert again.to_json()["budget"] == req.to_json()["budget"] and again.gpu == req.gpu
