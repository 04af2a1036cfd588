"""The vllm backend's pure parts, on objects shaped like vLLM's (vLLM and a GPU are not here),
and its wiring on a stand-in ``vllm`` module. Nothing here claims vLLM itself was run."""

from __future__ import annotations

import doctest
import sys
import time
import types
from types import SimpleNamespace as NS

import pytest

import profiling.backends.vllm as vb
from profiling.backends import GenerationRequest, load_backend


def test_doctests():
    assert doctest.testmod(vb).failed == 0


def test_sampling_params_carry_every_request_field():
    kw = vb.sampling_params_kwargs(
        GenerationRequest("p", n=16, max_new_tokens=64, temperature=0.8, top_p=0.9, stop=("\n\n", ""), seed=5)
    )
    assert kw == {
        "n": 16,
        "temperature": 0.8,
        "top_p": 0.9,
        "max_tokens": 64,
        "stop": ["\n\n"],
        "seed": 5,
        "logprobs": 0,
        "include_stop_str_in_output": False,
    }
    assert vb.sampling_params_kwargs(GenerationRequest("p"), logprobs=False)["logprobs"] is None
    assert vb.sampling_params_kwargs(GenerationRequest("p"))["stop"] is None
    with pytest.raises(ValueError, match="n must be >= 1"):
        vb.sampling_params_kwargs(GenerationRequest("p", n=0))


def _logprob(x):
    return NS(logprob=x, rank=1, decoded_token="t")


def test_parse_request_output_counts_tokens_and_averages_logprobs():
    out = NS(
        prompt_token_ids=[1, 2, 3, 4],
        metrics=NS(queued_ts=10.0, scheduled_ts=10.5, first_token_ts=11.0, last_token_ts=13.0),
        outputs=[
            NS(
                index=1,
                text="b",
                token_ids=[5, 6, 7],
                cumulative_logprob=-3.0,
                logprobs=None,
                finish_reason="length",
            ),
            NS(
                index=0,
                text="a",
                token_ids=(8, 9),
                cumulative_logprob=None,
                logprobs=[{8: _logprob(-1.0), 3: _logprob(-0.1)}, {9: _logprob(-2.0)}],
                finish_reason="stop",
            ),
        ],
    )
    r = vb.parse_request_output(out, latency_s=0.7, kv_bytes_peak=1e6, kv_source="x", extra={"k": 1})
    assert [c.text for c in r.completions] == ["a", "b"]  # ordered by index
    assert [c.completion_tokens for c in r.completions] == [2, 3]
    assert [c.logprob for c in r.completions] == [-1.5, -1.0]
    assert [c.finish_reason for c in r.completions] == ["stop", "length"]
    assert r.prompt_tokens == 4 and r.latency_s == 0.7 and r.kv_bytes_peak == 1e6
    assert r.ttft_s == 0.5 and r.extra["engine_e2e_s"] == 3.0 and r.extra["k"] == 1


def test_engine_timing_reads_v0_metrics_and_tolerates_missing_ones():
    assert vb.engine_timing(None) == {}
    assert vb.engine_timing(NS(arrival_time=1.0, first_token_time=1.25, last_token_time=2.0)) == {
        "engine_ttft_s": 0.25,
        "engine_e2e_s": 1.0,
    }
    assert vb.engine_timing(NS(first_token_latency=0.3, queued_ts=0.0)) == {"engine_ttft_s": 0.3}


def test_kv_usage_fraction_reads_new_and_old_gauge_names():
    assert vb.kv_usage_fraction([NS(name="vllm:gpu_cache_usage_perc", value=0.4)]) == 0.4
    both = [NS(name="vllm:kv_cache_usage_perc", value=0.1), NS(name="vllm:kv_cache_usage_perc", value=0.3)]
    assert vb.kv_usage_fraction(both) == 0.3  # largest over engines
    assert vb.kv_usage_fraction([NS(name="vllm:num_requests_running", value=2)]) is None


def test_missing_vllm_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ImportError, match=r"pip install ttc-planner\[vllm\]"):
        vb.VLLMBackend("some/model")


# ---- wiring, on a stand-in vllm module -----------------------------------------------------
class FakeLLM:
    """Stands in for ``vllm.LLM``: echoes requests as RequestOutput-shaped objects and moves
    the KV usage gauge to 0.5 while ``generate`` runs."""

    usage = 0.0

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        layers, kv_heads, head = 4, 2, 8
        self.llm_engine = NS(
            vllm_config=NS(
                cache_config=NS(num_gpu_blocks=100, block_size=16, cache_dtype="auto"),
                model_config=NS(
                    dtype=NS(itemsize=2),
                    get_num_layers=lambda p: layers,
                    get_num_kv_heads=lambda p: kv_heads,
                    get_head_size=lambda: head,
                    hf_config=NS(to_dict=lambda: {"model_type": "llama"}),
                ),
                parallel_config=NS(tensor_parallel_size=1),
            )
        )

    def get_tokenizer(self):
        return NS(encode=lambda text, add_special_tokens=False: list(text), chat_template=None)

    def get_metrics(self):
        return [NS(name="vllm:kv_cache_usage_perc", value=FakeLLM.usage)]

    def generate(self, prompts, params, use_tqdm=False):
        FakeLLM.usage = 0.5
        time.sleep(0.1)  # long enough for the sampling thread to see the gauge
        FakeLLM.usage = 0.0
        return [
            NS(
                prompt_token_ids=list(prompt),
                metrics=None,
                outputs=[
                    NS(
                        index=i,
                        text="x" * (i + 1),
                        token_ids=[0] * (i + 1),
                        cumulative_logprob=-1.0,
                        finish_reason="length",
                    )
                    for i in range(p["n"])
                ],
            )
            for prompt, p in zip(prompts, params, strict=True)
        ]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kw: kw
    module.__version__ = "fake"
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def test_generate_attributes_kv_peak_by_tokens_and_latency_by_generated_tokens(fake_vllm):
    b = vb.VLLMBackend("m", kv_poll_s=0.005)
    assert b.llm.kwargs["enable_prefix_caching"] is True and b.llm.kwargs["disable_log_stats"] is False
    block_bytes = 2 * 4 * 2 * 8 * 16 * 2
    assert b.kv_total_bytes == 100 * block_bytes
    results = b.generate([GenerationRequest("abcd", n=2), GenerationRequest("ef", n=1)])
    generated = [1 + 2, 1]
    held = [4 + 3, 2 + 1]
    assert [r.prompt_tokens for r in results] == [4, 2]
    assert results[0].latency_s / results[1].latency_s == pytest.approx(generated[0] / generated[1])
    peak_bytes = 0.5 * 100 * block_bytes
    assert [r.kv_bytes_peak for r in results] == pytest.approx([peak_bytes * h / sum(held) for h in held])
    assert results[0].kv_source == vb.KV_SOURCE and results[0].extra["kv_usage_peak_fraction"] == 0.5
    assert b.count_tokens("hello") == 5
    assert b.metadata()["config"] == {"model_type": "llama"}


def test_kv_is_none_with_a_reason_when_blocks_are_unknown(fake_vllm, monkeypatch):
    b = vb.VLLMBackend("m")
    b.kv_total_bytes, b.kv_total_why = None, "unavailable: cache_config.num_gpu_blocks not set"
    [r] = b.generate([GenerationRequest("ab")])
    assert r.kv_bytes_peak is None and r.kv_source.startswith("unavailable")


def test_load_backend_vllm_prefix(fake_vllm):
    b = load_backend("vllm:org/model")
    assert isinstance(b, vb.VLLMBackend) and b.model == "org/model" and b.name == "vllm"
