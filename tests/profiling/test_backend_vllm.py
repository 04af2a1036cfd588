"""The vllm backend's pure parts, on objects shaped like vLLM's, and its wiring on a stand-in
``vllm`` module that behaves as vLLM 0.33 does where it matters (greedy ``n > 1`` and empty
prompts raise ``VLLMValidationError``, which is not a ``ValueError``; text prompts are tokenized
with ``add_special_tokens=True``). Nothing here claims vLLM itself was run: the same functions
run on vLLM's real classes in ``test_vllm_conformance.py``."""

from __future__ import annotations

import doctest
import sys
import types
from types import SimpleNamespace as NS

import pytest
from vllm_helpers import DEEPSEEK_V3, HYBRID_5_TO_1, LLAMA_70B, HeldGauge, engine_config

import profiling.backends._vllm_io as vio
import profiling.backends.vllm as vb
from planner.costs import ModelSpec
from profiling.backends import GenerationRequest, load_backend
from profiling.lab import checkpoint_path


def test_doctests():
    assert doctest.testmod(vb).failed == 0
    assert doctest.testmod(vio).failed == 0 and doctest.testmod(vio).attempted > 10


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


def test_greedy_requests_ask_vllm_for_one_sample():
    assert vb.sampling_params_kwargs(GenerationRequest("p", n=8, temperature=0.0))["n"] == 1
    assert vb.sampling_params_kwargs(GenerationRequest("p", n=8, temperature=5e-6))["n"] == 1
    assert vb.sampling_params_kwargs(GenerationRequest("p", n=8, temperature=1e-3))["n"] == 8


def _logprob(x):
    return NS(logprob=x, rank=1, decoded_token="t")


def test_parse_request_output_counts_tokens_and_averages_logprobs():
    out = NS(
        prompt_token_ids=[1, 2, 3, 4],
        num_cached_tokens=3,
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
    assert r.ttft_s == 1.0 and r.extra["engine_prefill_s"] == 0.5  # TTFT counts the queue
    assert r.extra["engine_e2e_s"] == 3.0 and r.extra["k"] == 1
    assert r.extra["cached_prompt_tokens"] == 3


@pytest.mark.parametrize("reason", ["abort", "error", "repetition"])
def test_finish_reasons_other_than_stop_and_length_are_kept(reason):
    out = NS(
        prompt_token_ids=[1],
        metrics=None,
        outputs=[NS(index=0, text="x", token_ids=[3], cumulative_logprob=-1.0, finish_reason=reason)],
    )
    assert vb.parse_request_output(out, latency_s=0.1).completions[0].finish_reason == reason


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


# ---- wiring, on a stand-in vllm module ---------------------------------------------------------
class FakeValidationError(Exception):
    """Like vLLM 0.33's ``VLLMValidationError``: an ``Exception``, not a ``ValueError``."""


class FakeSamplingParams:
    """Validates as ``vllm.SamplingParams.__post_init__`` does for the fields the backend sets."""

    def __init__(self, **kw):
        if kw["temperature"] > 2.0:
            raise FakeValidationError(f"temperature must be in [0, 2], got {kw['temperature']}.")
        if kw["temperature"] < 1e-5 and kw["n"] > 1:
            raise FakeValidationError(f"n must be 1 when using greedy sampling, got {kw['n']}.")
        self.__dict__.update(kw)


def lab_tokenizer():
    """The lab tokenizer (adds BOS when asked) with a chat template that holds BOS."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint_path("lab-s"))
    tok.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}="
    return tok


class FakeLLM:
    """Stands in for ``vllm.LLM``: tokenizes text prompts as vLLM does, echoes RequestOutput-shaped
    objects and holds the KV usage gauge at 0.5 in ``generate`` until the sampling thread read it."""

    gauge = HeldGauge()
    config = engine_config(LLAMA_70B)
    tokenizer = None
    finish_reason = "length"
    calls: list = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.llm_engine = NS(vllm_config=FakeLLM.config)
        self.resets = 0
        FakeLLM.calls = []

    def get_tokenizer(self):
        return FakeLLM.tokenizer

    def get_metrics(self):
        return [NS(name="vllm:kv_cache_usage_perc", value=FakeLLM.gauge.read())]

    def reset_prefix_cache(self):
        self.resets += 1
        return True

    def generate(self, prompts, params, use_tqdm=False):
        FakeLLM.calls.append((prompts, params, self.resets))
        ids = []
        for prompt in prompts:
            if isinstance(prompt, str):
                ids.append(FakeLLM.tokenizer.encode(prompt, add_special_tokens=True))
            else:
                ids.append(list(prompt["prompt_token_ids"]))
            if not ids[-1]:
                raise FakeValidationError("The decoder prompt cannot be empty")
        with FakeLLM.gauge.raised(0.5):  # until the sampling thread has seen it
            pass
        return [
            NS(
                prompt_token_ids=prompt_ids,
                num_cached_tokens=0,
                metrics=None,
                outputs=[
                    NS(
                        index=i,
                        text="x" * (i + 1),
                        token_ids=[0] * (i + 1),
                        cumulative_logprob=-1.0,
                        finish_reason=FakeLLM.finish_reason,
                    )
                    for i in range(p.n)
                ],
            )
            for prompt_ids, p in zip(ids, params, strict=True)
        ]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.__path__ = []  # a package, so that `vllm.exceptions` imports
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    module.__version__ = "fake"
    exceptions = types.ModuleType("vllm.exceptions")
    exceptions.VLLMValidationError = FakeValidationError
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.exceptions", exceptions)
    monkeypatch.setattr(FakeLLM, "config", engine_config(LLAMA_70B))
    monkeypatch.setattr(FakeLLM, "tokenizer", lab_tokenizer())
    monkeypatch.setattr(FakeLLM, "finish_reason", "length")
    return module


@pytest.mark.parametrize("poll_s", [0.005, 0.5])  # a slow poll, as a busy machine delays the thread
def test_generate_attributes_kv_peak_by_tokens_and_latency_by_generated_tokens(fake_vllm, poll_s):
    b = vb.VLLMBackend("m", kv_poll_s=poll_s)
    assert b.llm.kwargs["enable_prefix_caching"] is True and b.llm.kwargs["disable_log_stats"] is False
    spec = ModelSpec.from_hf_config(LLAMA_70B)
    usable_blocks = 1001 - 1  # one block is vLLM's null block
    assert b.kv_total_bytes == usable_blocks * 16 * spec.kv_bytes_per_token
    results = b.generate(
        [GenerationRequest("1+2", n=2, temperature=1.0), GenerationRequest("3", n=1, temperature=1.0)]
    )
    generated = [1 + 2, 1]
    prompts = [1 + 3, 1 + 1]  # BOS + characters
    held = [p + g for p, g in zip(prompts, generated, strict=True)]
    assert [r.prompt_tokens for r in results] == prompts
    assert results[0].latency_s / results[1].latency_s == pytest.approx(generated[0] / generated[1])
    peak_bytes = 0.5 * b.kv_total_bytes
    assert [r.kv_bytes_peak for r in results] == pytest.approx([peak_bytes * h / sum(held) for h in held])
    assert results[0].kv_source == vb.KV_SOURCE and "lower bound" in results[0].kv_source
    assert results[0].extra["kv_usage_peak_fraction"] == 0.5
    assert b.count_tokens("hello") == 5
    assert b.metadata()["config"]["model_type"] == "llama"


def test_greedy_with_n_above_one_runs_once_and_replicates(fake_vllm):
    b = vb.VLLMBackend("m")
    [r] = b.generate([GenerationRequest("1+2", n=4, temperature=0.0)])
    assert len(r.completions) == 4 and len({c.text for c in r.completions}) == 1
    assert r.extra["greedy_replicated"] == 4
    [(_, [params], _)] = FakeLLM.calls
    assert params.n == 1


def test_chat_prompts_hold_one_bos(fake_vllm):
    b = vb.VLLMBackend("m", chat=True)
    tok = FakeLLM.tokenizer
    [r] = b.generate([GenerationRequest("1+2", temperature=1.0)])
    template = tok.apply_chat_template(
        [{"role": "user", "content": "1+2"}], tokenize=False, add_generation_prompt=True
    )
    expected = tok.encode(template, add_special_tokens=False)
    assert expected.count(tok.bos_token_id) == 1
    assert r.prompt_tokens == len(expected)
    [([sent], _, _)] = FakeLLM.calls
    assert sent == {"prompt_token_ids": expected}


def test_invalid_requests_are_named_by_index_and_nothing_is_submitted(fake_vllm):
    FakeLLM.tokenizer = NS(encode=lambda text, add_special_tokens: [ord(c) for c in text])  # no BOS
    b = vb.VLLMBackend("m")
    good = GenerationRequest("1+2", temperature=1.0)
    with pytest.raises(ValueError, match=r"request 1: .*temperature") as err:
        b.generate([good, GenerationRequest("1", temperature=3.0), good])
    assert "request 0" not in str(err.value)
    with pytest.raises(ValueError, match=r"request 2: .*no tokens") as err:
        b.generate([good, good, GenerationRequest(""), GenerationRequest("1", temperature=2.5)])
    assert "request 3" in str(err.value)
    assert FakeLLM.calls == []  # no half-submitted batch


def test_prompts_too_long_for_the_model_are_rejected_up_front(fake_vllm):
    FakeLLM.config.model_config.max_model_len = 8
    b = vb.VLLMBackend("m")
    with pytest.raises(ValueError, match=r"request 1: prompt has 9 tokens.*max_model_len=8"):
        b.generate([GenerationRequest("1"), GenerationRequest("12345678")])


@pytest.mark.parametrize("reason", ["abort", "error"])
def test_aborted_and_failed_samples_warn_and_keep_their_reason(fake_vllm, reason):
    FakeLLM.finish_reason = reason
    b = vb.VLLMBackend("m")
    with pytest.warns(RuntimeWarning, match=f"request 0: .*{reason}"):
        [r] = b.generate([GenerationRequest("1", n=2, temperature=1.0)])
    assert {c.finish_reason for c in r.completions} == {reason}


def test_prefix_cache_is_reset_before_each_call_and_cached_tokens_recorded(fake_vllm):
    b = vb.VLLMBackend("m")
    b.generate([GenerationRequest("1")])
    [r] = b.generate([GenerationRequest("1")])
    assert [resets for _, _, resets in FakeLLM.calls] == [1, 2]
    assert r.extra["cached_prompt_tokens"] == 0 and r.extra["prefix_cache_reset"] is True
    b2 = vb.VLLMBackend("m", reset_prefix_cache=False)
    b2.generate([GenerationRequest("1")])
    assert FakeLLM.calls[-1][2] == 0


def test_model_runner_is_recorded(fake_vllm, monkeypatch):
    FakeLLM.config.use_v2_model_runner = True
    assert vb.VLLMBackend("m").metadata()["vllm_model_runner"] == "v2"
    del FakeLLM.config.use_v2_model_runner
    monkeypatch.setenv("VLLM_USE_V2_MODEL_RUNNER", "0")
    assert vb.VLLMBackend("m").metadata()["vllm_model_runner"] == "v1"
    monkeypatch.delenv("VLLM_USE_V2_MODEL_RUNNER")
    assert vb.VLLMBackend("m").metadata()["vllm_model_runner"] is None


@pytest.mark.parametrize(
    "cfg, kw",
    [
        (DEEPSEEK_V3, {}),  # MLA: one latent, not keys and values
        (DEEPSEEK_V3, {"tp": 8}),
        (LLAMA_70B, {"pp": 4}),  # every pipeline stage, not the first
        (LLAMA_70B, {"cache_dtype": "fp8"}),
        (HYBRID_5_TO_1, {}),  # a block spans one group's layers, not all layers
    ],
)
def test_kv_pool_bytes_follow_the_cache_layout(fake_vllm, cfg, kw):
    FakeLLM.config = engine_config(cfg, **kw)
    b = vb.VLLMBackend("m")
    spec = ModelSpec.from_hf_config(cfg, kv_dtype="fp8" if kw.get("cache_dtype") == "fp8" else None)
    layers_per_block = 2 if cfg is HYBRID_5_TO_1 else spec.num_layers
    assert b.kv_total_bytes == 1000 * 16 * layers_per_block * spec.kv_bytes_per_token_per_layer
    assert b.metadata()["kv_cache_num_gpu_blocks"] == 1001


def test_int8_per_token_head_cache_counts_its_scales(fake_vllm):
    FakeLLM.config = engine_config(LLAMA_70B, cache_dtype="int8_per_token_head")
    b = vb.VLLMBackend("m")
    per_token = 80 * 8 * (2 * 128 * 1 + 2 * 4)  # layers x kv heads x (K, V int8 + fp32 scales)
    assert b.kv_total_bytes == 1000 * 16 * per_token


def test_kv_is_none_with_a_reason_when_blocks_are_unknown(fake_vllm):
    FakeLLM.config = engine_config(LLAMA_70B, num_gpu_blocks=None)
    b = vb.VLLMBackend("m")
    [r] = b.generate([GenerationRequest("12")])
    assert r.kv_bytes_peak is None and r.kv_source == "unavailable: cache_config.num_gpu_blocks not set"
    FakeLLM.config = engine_config(LLAMA_70B)
    b = vb.VLLMBackend("m", kv_poll_s=None)
    [r] = b.generate([GenerationRequest("12")])
    assert r.kv_bytes_peak is None and "polling disabled" in r.kv_source


def test_generate_after_close_says_so(fake_vllm):
    b = vb.VLLMBackend("m")
    assert b.generate([]) == [] and FakeLLM.calls == []
    b.close()
    with pytest.raises(RuntimeError, match="after close"):
        b.generate([GenerationRequest("1")])


def test_load_backend_vllm_prefix(fake_vllm):
    b = load_backend("vllm:org/model")
    assert isinstance(b, vb.VLLMBackend) and b.model == "org/model" and b.name == "vllm"
