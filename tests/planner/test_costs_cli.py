"""``ttc costs``: the table, --json, --api, --qps, and clear errors naming the known names."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from planner.catalog import get_api_price, get_hardware
from planner.cli import app
from planner.costs import ModelSpec, Workload, api_cost, estimate_cost

runner = CliRunner()
EXAMPLE = "costs --model llama-3.1-70b --gpu h100 --strategy pool:n=16 --prompt-tokens 512 --gen-tokens 2048".split()


def run(args):
    return runner.invoke(app, args, env={"COLUMNS": "200"})


def test_example_prints_a_cost_table():
    res = run(EXAMPLE)
    assert res.exit_code == 0, res.output
    for text in (
        "prefill FLOPs",
        "decode FLOPs",
        "KV cache at peak",
        "latency",
        "cost (self-hosted)",
        "4 x H100-SXM",
    ):
        assert text in res.output
    assert "10.9 GB" in res.output and "predicted" in res.output


def test_json_output_equals_the_library_estimate():
    res = run(EXAMPLE + ["--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    expected = estimate_cost(
        ModelSpec.from_catalog("llama-3.1-70b"),
        Workload.from_strategy("pool:n=16", 512, 2048),
        get_hardware("h100"),
    ).to_dict()
    assert (
        out["estimate"] == pytest.approx(expected) if False else out["estimate"]["flops"] == expected["flops"]
    )
    for key in ("kv_bytes_peak", "latency_s", "cost_usd", "tp", "memory_bytes", "effective_flops"):
        assert out["estimate"][key] == pytest.approx(expected[key]), key
    assert out["hardware"]["name"] == "H100-SXM" and out["model_spec"]["kv_bytes_per_token"] == 327680
    assert [ph["sequences"] for ph in out["workload"]["phases"]] == [16]


def test_api_pricing_uses_the_api_model_when_no_model_is_given():
    res = run("costs --api deepseek-r1 --strategy pool:n=8 -p 300 -n 4000 --json".split())
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    expected = api_cost(Workload.from_strategy("pool:n=8", 300, 4000), get_api_price("deepseek-r1"))
    assert out["estimate"]["api"]["usd"] == pytest.approx(expected.usd)
    assert out["estimate"]["model"] == "deepseek-r1" and out["estimate"]["latency_s"] is None
    table = run("costs --api deepseek-r1 -s greedy -p 100 -n 100".split())
    assert table.exit_code == 0 and "cost (API)" in table.output


def test_api_price_overrides_and_custom_api():
    res = run("costs --model llama-3.1-8b --api o1 --output-usd-per-mtok 30 -p 1000 -n 1000 --json".split())
    assert res.exit_code == 0, res.output
    api = json.loads(res.output)["estimate"]["api"]
    assert (
        api["usd"] == pytest.approx(1e-6 * (1000 * 15 + 1000 * 30))
        and "user override of o1" in api["price_source"]
    )
    res = run(
        "costs --model llama-3.1-8b --input-usd-per-mtok 1 --output-usd-per-mtok 2 -p 1000 -n 500 --json".split()
    )
    assert json.loads(res.output)["estimate"]["api"]["usd"] == pytest.approx(1e-6 * (1000 + 1000))
    res = run("costs --model llama-3.1-8b --input-usd-per-mtok 1 -p 1 -n 1".split())
    assert res.exit_code == 2 and "needs both" in res.output


def test_capacity_and_price_override():
    res = run(EXAMPLE + ["--qps", "2", "--price-usd-per-hour", "2", "--json"])
    assert res.exit_code == 0, res.output
    cap = json.loads(res.output)["capacity"]
    assert cap["binding"] in {"kv_memory", "compute"} and cap["gpus"] == cap["replicas"] * cap["tp"]
    assert cap["usd_per_1k_queries"] == pytest.approx(1000 * cap["gpus"] * 2 / 3600 / 2)


def test_unknown_model_gpu_api_and_strategy_are_clear_errors():
    res = run("costs --model llama-9 --gpu h100 -p 1 -n 1".split())
    assert res.exit_code == 2 and "unknown model" in res.output and "closest: llama-3" in res.output
    assert "qwen3" not in res.output  # one line, not the whole catalog
    res = run("costs --model llama-3.1-8b --gpu h999 -p 1 -n 1".split())
    assert res.exit_code == 2 and "unknown GPU 'h999'" in res.output and "H100-SXM" in res.output
    res = run("costs --model llama-3.1-8b --api gpt-9 -p 1 -n 1".split())
    assert res.exit_code == 2 and "deepseek-r1" in res.output
    res = run("costs --model llama-3.1-8b -s beam:widht=2 -p 1 -n 1".split())
    assert res.exit_code == 2 and "unknown knob 'widht'" in res.output
    res = run("costs -p 1 -n 1".split())
    assert res.exit_code == 2 and "--model is required" in res.output


def test_help_shows_the_example():
    res = run(["costs", "--help"])
    assert res.exit_code == 0
    assert "ttc costs --model llama-3.1-70b --gpu h100 --strategy pool:n=16" in res.output


# ---- per-sample lengths, closed forms, given numbers, TP ------------------------------------------
GIVEN = "mine=params:8.0e9,layers:32,kv_heads:8,head_dim:128"


def test_gen_tokens_takes_per_sample_lengths_a_file_and_moments(tmp_path):
    base = "costs --model qwen3-8b --gpu h100 --strategy pool:n=2 --json --gen-tokens".split()
    listed = json.loads(run(base + ["100,10000"]).output)["estimate"]
    (tmp_path / "lengths.txt").write_text("# per-sample generated tokens\n100\n10000\n")
    from_file = json.loads(run(base + [f"@{tmp_path / 'lengths.txt'}"]).output)["estimate"]
    moments = json.loads(run(base + ["mean=5050,mean_sq=50005000,max=10000"]).output)["estimate"]
    mean = json.loads(run(base + ["5050"]).output)["estimate"]
    assert listed["flops"] == from_file["flops"] == pytest.approx(moments["flops"], rel=1e-12)
    assert (
        listed["flops"] > mean["flops"] and listed["decode_steps"] == 10_000 and mean["decode_steps"] == 5050
    )
    assert listed["gen_lengths"]["mean_sq"] == 50_005_000 and mean["gen_lengths"] is None
    bad = run(base + ["lots"])
    assert bad.exit_code == 2 and "expected a number" in bad.output


def test_huge_gen_tokens_answer_in_closed_form():
    res = run(["costs", "--model-spec", GIVEN, "--gen-tokens", "1e12", "--json"])
    assert res.exit_code == 0, res.output
    est = json.loads(res.output)["estimate"]
    assert est["decode_steps"] == 1e12 and est["generated_tokens"] == 10**12


def test_prompt_tokens_are_optional_and_the_table_says_so():
    res = run("costs --model llama-3.1-8b --gpu h100 --gen-tokens 500".split())
    assert res.exit_code == 0, res.output
    assert "no prompt tokens given" in res.output and "smallest that fits" in res.output


def test_given_numbers_price_a_model_the_catalog_lacks():
    res = run(["costs", "--model-spec", GIVEN, "--gpu", "h100", "-n", "4096", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["model_spec"]["params_total"] == 8_000_000_000 and out["estimate"]["model"] == "mine"
    assert any("ESTIMATED" in n for n in out["estimate"]["notes"])
    res = run(["costs", "--model", "mine=params:8e9,layers:32", "-n", "10"])
    assert res.exit_code == 2 and "missing field(s) kv_heads, head_dim" in res.output
    assert res.output.count("\n") <= 2


def test_context_overflow_and_unusable_tp_are_one_line_errors():
    res = run("costs --model llama-3-8b --gen-tokens 9000".split())
    assert res.exit_code == 2 and "exceeds the model's context of 8,192 tokens" in res.output
    res = run("costs --model llama-3.1-70b --gpu h100 --tp 3 -n 10 -p 10".split())
    assert res.exit_code == 2 and "--tp 3 does not divide llama-3.1-70b's 64 attention heads" in res.output
    res = run("costs --model llama-3.1-70b --gpu h100 --tp 16 --max-gpus 8 -n 10 -p 10".split())
    assert res.exit_code == 2 and "exceeds the 8 GPUs" in res.output
    res = run(EXAMPLE + ["--tp", "8", "--json"])
    assert json.loads(res.output)["estimate"]["tp_source"] == "given"
