"""Conformance of the vllm backend with vLLM's real classes, without a GPU or an engine.

Drives the backend's request building (``SamplingParams``, token-id prompts, vLLM's own
tokenization settings and prompt-length rule), output parsing (``RequestOutput``,
``CompletionOutput``, ``Logprob``, ``RequestStateStats``, ``FinishReason``), metrics reading
(the Prometheus snapshot of ``vllm.v1.metrics.reader``) and KV arithmetic (page sizes of the
real ``KVCacheSpec`` classes, vLLM's grouping, block pool usage, sliding-window freeing,
pipeline partition, real ``ModelConfig``/``CacheConfig``/``ParallelConfig``/``VllmConfig``
objects) through vLLM itself. ``bash benchmarks/vllm_conformance.sh`` builds a throwaway
environment with the newest vLLM wheel and runs this module there; the normal suite skips it
when vLLM is absent (``TTC_VLLM_CONFORMANCE=1`` turns the skip into a failure)."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import time
from types import SimpleNamespace as NS

import pytest

if os.environ.get("TTC_VLLM_CONFORMANCE") == "1":
    import vllm
else:
    vllm = pytest.importorskip("vllm", reason="vLLM is not installed (bash benchmarks/vllm_conformance.sh)")

import torch  # noqa: E402
from vllm import SamplingParams  # noqa: E402
from vllm.config import CacheConfig, DeviceConfig, ModelConfig, ParallelConfig, VllmConfig  # noqa: E402
from vllm.outputs import CompletionOutput, RequestOutput  # noqa: E402
from vllm.v1.metrics.reader import Gauge, get_metrics_snapshot  # noqa: E402
from vllm_helpers import DEEPSEEK_V3, HYBRID_5_TO_1, LLAMA_70B, MISTRAL_7B, engine_config  # noqa: E402

import profiling.backends.vllm as vb  # noqa: E402
from profiling.backends import GenerationRequest  # noqa: E402
from profiling.backends._vllm_kv import (  # noqa: E402
    kv_layout,
    kv_layout_from_vllm_config,
    kv_token_bytes,
    pp_partition,
)
from profiling.lab import checkpoint_path  # noqa: E402

LAB = str(checkpoint_path("lab-m"))
REQUESTS = [
    GenerationRequest("2+2=", n=1, temperature=0.0),
    GenerationRequest("2+2=", n=8, temperature=0.0, max_new_tokens=32),
    GenerationRequest("2+2=", n=16, temperature=1.0, top_p=0.95, seed=7, stop=("\n\n", "Q:")),
    GenerationRequest("2+2=", n=64, temperature=2.0, max_new_tokens=1),
    GenerationRequest("2+2=", n=4, temperature=0.3, seed=0, stop=("",)),
]


def test_version_is_reported():
    print(f"vLLM {vllm.__version__} from {os.path.dirname(vllm.__file__)}")
    assert vllm.__version__


# ---- requests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"n{r.n}-t{r.temperature}")
def test_sampling_params_accept_every_request_the_backend_builds(request_):
    sp = SamplingParams(**vb.sampling_params_kwargs(request_))
    assert sp.n == (1 if vb.is_greedy(request_) else request_.n)
    assert sp.max_tokens == request_.max_new_tokens and sp.seed == request_.seed
    assert sp.stop == [s for s in request_.stop if s] and sp.logprobs == 0
    assert sp.include_stop_str_in_output is False
    if not vb.is_greedy(request_):
        assert sp.temperature == request_.temperature and sp.top_p == request_.top_p


def test_vllm_rejects_greedy_with_several_samples_and_the_backend_maps_its_error():
    errors = vb.validation_errors(vllm)
    with pytest.raises(errors, match="greedy"):
        SamplingParams(n=8, temperature=0.0)  # what the old backend sent
    with pytest.raises(errors):
        SamplingParams(**vb.sampling_params_kwargs(GenerationRequest("p", temperature=3.0)))
    from vllm.exceptions import VLLMValidationError

    assert VLLMValidationError in errors
    assert vb.GREEDY_TEMPERATURE == pytest.approx(
        __import__("vllm.sampling_params").sampling_params._SAMPLING_EPS
    )


def test_token_id_prompts_use_vllms_own_tokenization_settings():
    from vllm.renderers.base import BaseRenderer
    from vllm.renderers.inputs.preprocess import parse_dec_only_prompt
    from vllm.tokenizers import get_tokenizer

    tok = get_tokenizer(LAB)
    model = NS(max_model_len=256, encoder_config=None)
    cmpl = BaseRenderer.default_cmpl_tok_params.func(NS(mm_processor=None, model_config=model))
    chat = BaseRenderer.default_chat_tok_params.func(NS(mm_processor=None, model_config=model))
    assert cmpl.add_special_tokens is True and chat.add_special_tokens is False
    text = "Q: 3+4*2=?"
    ids = vb.prompt_token_ids(tok, text)
    assert ids == tok.encode(text, **cmpl.get_encode_kwargs())
    assert parse_dec_only_prompt({"prompt_token_ids": ids}) == {"prompt_token_ids": ids}


def test_prompt_length_rule_matches_vllms_input_processor():
    from vllm.v1.engine.input_processor import InputProcessor

    proc = NS(
        skip_prompt_length_check=False,
        model_config=NS(max_model_len=8, runner_type="generate"),
        supports_mm_inputs=False,
        mm_encoder_cache_size=0,
    )
    backend = object.__new__(vb.VLLMBackend)
    backend.tokenizer = NS(encode=lambda text, add_special_tokens: [ord(c) for c in text])
    backend.chat, backend.max_model_len, backend._vllm = False, 8, vllm
    backend._errors = vb.validation_errors(vllm)
    for length in range(0, 11):
        try:
            InputProcessor._validate_prompt_len(proc, length, "decoder")
            vllm_ok = True
        except backend._errors:
            vllm_ok = False
        try:
            backend._prepare(0, GenerationRequest("x" * length))
            ours_ok = True
        except ValueError:
            ours_ok = False
        assert ours_ok == vllm_ok, length


# ---- outputs -----------------------------------------------------------------------------------
def _request_output(finish_reason="stop", n=2, cached=3):
    from vllm.logprobs import Logprob
    from vllm.v1.metrics.stats import RequestStateStats

    outputs = [
        CompletionOutput(
            index=n - 1 - i,
            text=f"t{i}",
            token_ids=[5 + i] * (i + 2),
            cumulative_logprob=None if i == 0 else -1.0 * (i + 2),
            logprobs=[{5: Logprob(logprob=-0.5, rank=1, decoded_token="a")}] * 2 if i == 0 else None,
            finish_reason=finish_reason,
            stop_reason=None,
        )
        for i in range(n)
    ]
    stats = RequestStateStats(queued_ts=10.0, scheduled_ts=10.25, first_token_ts=10.5, last_token_ts=12.0)
    stats.num_preemptions = 1
    return RequestOutput(
        request_id="0",
        prompt=None,
        prompt_token_ids=[1, 2, 3, 4],
        prompt_logprobs=None,
        outputs=outputs,
        finished=True,
        metrics=stats,
        num_cached_tokens=cached,
    )


def test_request_output_is_parsed_from_vllms_classes():
    r = vb.parse_request_output(_request_output(), latency_s=0.5)
    assert r.prompt_tokens == 4 and r.latency_s == 0.5
    assert [c.text for c in r.completions] == ["t1", "t0"]  # by CompletionOutput.index
    assert [c.completion_tokens for c in r.completions] == [3, 2]
    assert [c.logprob for c in r.completions] == [-1.0, -0.5]  # cumulative / tokens; mean of Logprob
    assert r.ttft_s == 0.5 and r.extra["engine_prefill_s"] == 0.25
    assert r.extra["engine_e2e_s"] == 2.0 and r.extra["engine_queued_s"] == 0.25
    assert r.extra["cached_prompt_tokens"] == 3 and r.extra["num_preemptions"] == 1


def test_every_vllm_finish_reason_is_kept():
    from vllm.v1.engine import FinishReason

    reasons = [str(reason) for reason in FinishReason]
    assert set(reasons) == set(vb.FINISH_REASONS)
    for reason in reasons:
        r = vb.parse_request_output(_request_output(finish_reason=reason), latency_s=0.1)
        assert {c.finish_reason for c in r.completions} == {reason}


def test_first_token_latency_is_preferred_when_vllm_sets_it():
    from vllm.v1.metrics.stats import RequestStateStats

    stats = RequestStateStats(arrival_time=1.0, queued_ts=5.0, scheduled_ts=5.5, first_token_ts=6.0)
    stats.first_token_latency = 0.8
    assert vb.engine_timing(stats)["engine_ttft_s"] == 0.8


# ---- metrics -----------------------------------------------------------------------------------
def test_kv_usage_gauge_is_read_from_vllms_metrics_snapshot():
    import prometheus_client
    import vllm.v1.metrics.loggers as loggers

    assert '"vllm:kv_cache_usage_perc"' in inspect.getsource(loggers)
    gauge = prometheus_client.Gauge("vllm:kv_cache_usage_perc", "test", labelnames=["engine", "model_name"])
    try:
        gauge.labels(engine="0", model_name="m").set(0.125)
        gauge.labels(engine="1", model_name="m").set(0.5)
        snapshot = get_metrics_snapshot()
        assert any(isinstance(m, Gauge) and m.name == "vllm:kv_cache_usage_perc" for m in snapshot)
        assert vb.kv_usage_fraction(snapshot) == 0.5
    finally:
        prometheus_client.REGISTRY.unregister(gauge)


def test_block_pool_usage_counts_the_null_block_out():
    from vllm.v1.core.block_pool import BlockPool

    pool = BlockPool(num_gpu_blocks=11, enable_caching=True, hash_block_size=16)
    pool.get_new_blocks(5)
    assert pool.get_usage() == pytest.approx(5 / 10)
    layout = kv_layout(["full"] * 4, block_size=16, token_bytes=64)
    assert 0.5 * layout.pool_bytes(11) == 5 * layout.block_bytes


# ---- KV arithmetic -----------------------------------------------------------------------------
def _str_dtype(cache_dtype: str, model_dtype=torch.bfloat16):
    from vllm.utils.torch_utils import STR_DTYPE_TO_TORCH_DTYPE

    return model_dtype if cache_dtype == "auto" else STR_DTYPE_TO_TORCH_DTYPE[cache_dtype]


@pytest.mark.parametrize(
    "cache_dtype", ["auto", "float16", "fp8", "fp8_e5m2", "int8_per_token_head", "fp8_per_token_head"]
)
@pytest.mark.parametrize("heads, head_size", [(8, 128), (1, 64), (4, 80)])
def test_attention_page_sizes_match_vllms_specs(cache_dtype, heads, head_size):
    from vllm.v1.attention.backends.triton_attn import TritonAttentionBackend
    from vllm.v1.kv_cache_interface import FullAttentionSpec, SlidingWindowSpec, get_kv_quant_mode

    common = dict(
        block_size=16,
        num_kv_heads=heads,
        head_size=head_size,
        dtype=_str_dtype(cache_dtype),
        kv_quant_mode=get_kv_quant_mode(cache_dtype),
    )
    full = TritonAttentionBackend.customize_spec(FullAttentionSpec(**common))
    sliding = TritonAttentionBackend.customize_spec(SlidingWindowSpec(sliding_window=256, **common))
    ours = kv_token_bytes(cache_dtype, model_dtype_bytes=2, num_kv_heads=heads, head_size=head_size)
    assert full.page_size_bytes == sliding.page_size_bytes == 16 * ours


@pytest.mark.parametrize("cache_dtype", ["auto", "fp8", "fp8_ds_mla", "int8_per_token_head"])
def test_mla_page_sizes_match_vllms_specs(cache_dtype):
    from vllm.model_executor.layers.attention.mla_attention import MLACommonBackend
    from vllm.v1.kv_cache_interface import MLAAttentionSpec, get_kv_quant_mode

    spec = MLAAttentionSpec(
        block_size=16,
        num_kv_heads=1,
        head_size=576,
        dtype=torch.uint8 if cache_dtype == "fp8_ds_mla" else _str_dtype(cache_dtype),
        cache_dtype_str=cache_dtype,
        kv_quant_mode=get_kv_quant_mode(cache_dtype),
        state_content_bytes=656 if cache_dtype == "fp8_ds_mla" else None,
    )
    spec = MLACommonBackend.customize_spec(spec)
    ours = kv_token_bytes(cache_dtype, model_dtype_bytes=2, num_kv_heads=1, head_size=576, mla=True)
    assert spec.page_size_bytes == 16 * ours


def test_nvfp4_packing_matches_vllms_layout_function():
    from vllm.utils.torch_utils import nvfp4_kv_cache_full_dim

    for d in (64, 128, 256):
        ours = kv_token_bytes("nvfp4", model_dtype_bytes=2, num_kv_heads=4, head_size=d)
        assert ours == 4 * 2 * nvfp4_kv_cache_full_dim(d)  # K and V slots of uint8


@pytest.mark.parametrize(
    "kinds",
    [
        ["sliding"] * 5 + ["full"],
        (["sliding"] * 5 + ["full"]) * 2,
        ["sliding"] * 12 + ["full"] * 13,  # gpt-oss + a draft layer: padded to 13 and 13
        ["full", "sliding", "sliding"] * 4,
        ["sliding"] * 7 + ["full"] * 2,
    ],
    ids=lambda k: f"{k.count('full')}full-{k.count('sliding')}sw",
)
def test_hybrid_grouping_matches_vllm(kinds):
    try:
        planning = importlib.import_module("vllm.v1.core.kv_cache_planning")
    except ModuleNotFoundError:  # vLLM < 0.33 kept the grouping in kv_cache_utils
        planning = importlib.import_module("vllm.v1.core.kv_cache_utils")
    from vllm.v1.kv_cache_interface import FullAttentionSpec, SlidingWindowSpec
    from vllm.v1.kv_cache_layout import KVCacheLayout

    common = dict(block_size=16, num_kv_heads=4, head_size=128, dtype=torch.bfloat16)
    specs = {
        f"layers.{i}": SlidingWindowSpec(sliding_window=512, **common)
        if k == "sliding"
        else FullAttentionSpec(**common)
        for i, k in enumerate(kinds)
    }
    groups = planning._get_kv_cache_groups_uniform_page_size(specs)
    theirs = sorted(tuple(int(name.split(".")[1]) for name in g.layer_names) for g in groups)
    layout = kv_layout(kinds, block_size=16, token_bytes=4 * 256 * 2, sliding_window=512)
    assert sorted(layers for _, _, layers in layout.groups) == theirs
    per_block = planning._get_kv_cache_bytes_per_block(groups, KVCacheLayout.LBHNC)
    assert layout.block_bytes == per_block


def test_pipeline_partition_matches_vllm():
    from vllm.distributed.utils import get_pp_indices

    for layers in (3, 32, 61, 80, 95):
        for pp in (1, 2, 3, 4, 8):
            if pp <= layers:
                assert pp_partition(layers, pp) == [get_pp_indices(layers, r, pp) for r in range(pp)]


def test_sliding_window_freeing_matches_vllm():
    from vllm.v1.core.single_type_kv_cache_manager import SlidingWindowManager

    for window in (16, 100, 4096):
        layout = kv_layout(["sliding"], block_size=16, token_bytes=1, sliding_window=window)
        manager = NS(sliding_window=window, extra_retained_tokens=0)
        for tokens in range(1, 3 * window, 7):
            skipped = SlidingWindowManager.get_num_skipped_tokens(manager, tokens)
            assert layout._group_blocks("sliding", window, tokens)[0] == skipped // 16


CONFIGS = {
    "llama-70b": (LLAMA_70B, "LlamaForCausalLM"),
    "mistral-7b": (MISTRAL_7B, "MistralForCausalLM"),
    "hybrid-5to1": (HYBRID_5_TO_1, "LlamaForCausalLM"),
    "deepseek-v3": (DEEPSEEK_V3, "DeepseekV3ForCausalLM"),
}


@pytest.fixture(scope="module")
def model_configs(tmp_path_factory):
    """vLLM's real ModelConfig for each config (config.json only; no weights)."""
    out = {}
    for name, (cfg, arch) in CONFIGS.items():
        folder = tmp_path_factory.mktemp(name)
        (folder / "config.json").write_text(json.dumps({**cfg, "architectures": [arch]}))
        out[name] = ModelConfig(model=str(folder), tokenizer=LAB, skip_tokenizer_init=True)
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize(
    "tp, pp, cache_dtype", [(1, 1, "auto"), (8, 1, "auto"), (2, 2, "fp8"), (1, 4, "int8_per_token_head")]
)
def test_layout_read_from_real_vllm_configs(model_configs, name, tp, pp, cache_dtype):
    cfg, _ = CONFIGS[name]
    real = NS(
        model_config=model_configs[name],
        cache_config=CacheConfig(block_size=16, cache_dtype=cache_dtype),
        parallel_config=ParallelConfig(tensor_parallel_size=tp, pipeline_parallel_size=pp),
        scheduler_config=NS(disable_hybrid_kv_cache_manager=False),
    )
    layout, why = kv_layout_from_vllm_config(real)
    expected, _ = kv_layout_from_vllm_config(engine_config(cfg, tp=tp, pp=pp, cache_dtype=cache_dtype))
    assert layout is not None, why
    assert layout == expected


def test_lab_model_runs_through_a_real_vllm_config(monkeypatch):
    monkeypatch.setenv("VLLM_USE_V2_MODEL_RUNNER", "0")
    config = VllmConfig(
        model_config=ModelConfig(model=LAB),
        cache_config=CacheConfig(block_size=16),
        device_config=DeviceConfig(device="cpu"),
    )
    assert vb.model_runner_version(config) == "v1"
    monkeypatch.setenv("VLLM_USE_V2_MODEL_RUNNER", "1")
    assert vb.model_runner_version(config) == "v2"
    layout, why = kv_layout_from_vllm_config(config)
    lab = json.loads((checkpoint_path("lab-m") / "config.json").read_text())
    head = lab.get("head_dim") or lab["hidden_size"] // lab["num_attention_heads"]
    per_token = (
        lab["num_hidden_layers"] * 2 * lab["num_key_value_heads"] * head * config.model_config.dtype.itemsize
    )
    assert layout is not None, why
    assert layout.block_bytes == 16 * per_token
    assert config.model_config.max_model_len == lab["max_position_embeddings"]


# ---- the backend end to end on vLLM's classes (a stand-in engine) ------------------------------
class StubLLM:
    """``vllm.LLM`` without an engine: checks what the backend sends and answers with real
    ``RequestOutput`` objects; the KV gauge is a real Prometheus gauge read through vLLM's
    metrics snapshot."""

    instances: list = []

    def __init__(self, **kwargs):
        from vllm.engine.arg_utils import EngineArgs
        from vllm.tokenizers import get_tokenizer

        unknown = (
            set(kwargs) - set(EngineArgs.__dataclass_fields__) - set(inspect.signature(vllm.LLM).parameters)
        )
        assert not unknown, unknown
        model_config = ModelConfig(model=kwargs["model"])
        cache = CacheConfig(block_size=16)
        cache.num_gpu_blocks = 101
        config = NS(
            model_config=model_config,
            cache_config=cache,
            parallel_config=ParallelConfig(),
            scheduler_config=NS(disable_hybrid_kv_cache_manager=False),
        )
        self.llm_engine = NS(
            vllm_config=config, engine_core=NS(shutdown=lambda: StubLLM.instances.append("shutdown"))
        )
        self.tokenizer = get_tokenizer(kwargs["model"])
        self.sent = []
        import prometheus_client

        self.gauge = prometheus_client.Gauge("vllm:kv_cache_usage_perc", "test", labelnames=["engine"])
        StubLLM.instances.append(self)

    def get_tokenizer(self):
        return self.tokenizer

    def reset_prefix_cache(self, reset_running_requests=False, reset_connector=False):
        return True

    def get_metrics(self):
        return get_metrics_snapshot()

    def generate(self, prompts, sampling_params, *, use_tqdm=True):
        from vllm.renderers.inputs.preprocess import parse_dec_only_prompt

        assert inspect.signature(vllm.LLM.generate).bind(self, prompts, sampling_params, use_tqdm=use_tqdm)
        self.sent.append((prompts, sampling_params))
        self.gauge.labels(engine="0").set(0.2)
        time.sleep(0.05)
        self.gauge.labels(engine="0").set(0.0)
        outputs = []
        for rid, (prompt, sp) in enumerate(zip(prompts, sampling_params, strict=True)):
            assert isinstance(sp, SamplingParams)
            ids = parse_dec_only_prompt(prompt)["prompt_token_ids"]
            outs = [
                CompletionOutput(
                    index=i,
                    text="7" * (i + 1),
                    token_ids=[9] * (i + 1),
                    cumulative_logprob=-0.5 * (i + 1),
                    logprobs=None,
                    finish_reason="stop",
                )
                for i in range(sp.n)
            ]
            outputs.append(RequestOutput(str(rid), None, ids, None, outs, True, num_cached_tokens=0))
        return outputs


def test_backend_generates_through_vllms_classes(monkeypatch):
    import prometheus_client

    monkeypatch.setattr(vllm, "LLM", StubLLM, raising=False)
    backend = vb.VLLMBackend(LAB, kv_poll_s=0.005)
    stub = StubLLM.instances[-1]
    try:
        results = backend.generate(
            [
                GenerationRequest("3+4=", n=4, temperature=0.0, max_new_tokens=8),
                GenerationRequest("3+4=", n=3, temperature=1.0, seed=1, stop=("\n",)),
            ]
        )
        ((prompts, params),) = stub.sent
        tok = stub.tokenizer
        assert prompts == [{"prompt_token_ids": tok.encode("3+4=")}] * 2
        assert [p.n for p in params] == [1, 3]
        assert [len(r.completions) for r in results] == [4, 3]
        assert len({c.text for c in results[0].completions}) == 1
        assert results[0].extra["greedy_replicated"] == 4
        assert results[0].prompt_tokens == len(tok.encode("3+4="))
        assert backend.kv_total_bytes == 100 * backend.kv_layout.block_bytes
        total_kv = sum(r.kv_bytes_peak for r in results)
        assert total_kv == pytest.approx(0.2 * backend.kv_total_bytes)
        meta = backend.metadata()
        assert meta["kv_cache_num_gpu_blocks"] == 101 and meta["max_model_len"] == 256
        assert meta["vllm_version"] == vllm.__version__
    finally:
        backend.close()
        prometheus_client.REGISTRY.unregister(stub.gauge)
    assert StubLLM.instances[-1] == "shutdown"


def test_llm_surface_the_backend_uses():
    from vllm.engine.arg_utils import EngineArgs
    from vllm.v1.engine.core_client import EngineCoreClient

    for name in ("generate", "get_tokenizer", "get_metrics", "reset_prefix_cache"):
        assert callable(getattr(vllm.LLM, name)), name
    assert "use_tqdm" in inspect.signature(vllm.LLM.generate).parameters
    fields = EngineArgs.__dataclass_fields__
    for name in (
        "enable_prefix_caching",
        "disable_log_stats",
        "max_model_len",
        "kv_cache_dtype",
        "gpu_memory_utilization",
        "seed",
        "dtype",
    ):
        assert name in fields, name
    assert callable(getattr(EngineCoreClient, "shutdown", None))
    import vllm.v1.engine.llm_engine as llm_engine

    assert "self.engine_core = " in inspect.getsource(llm_engine)
    assert "kv_cache_size_tokens" in {f for f in CacheConfig.__dataclass_fields__}
    print(
        f"checked against vLLM {vllm.__version__} (python {sys.version.split()[0]}, torch {torch.__version__})"
    )
