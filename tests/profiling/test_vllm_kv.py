"""vLLM's KV cache accounting (``profiling.backends._vllm_kv``) against the analytic cost model
of ``planner.costs`` for the same configs: ordinary attention under tensor and pipeline
parallelism, MLA, sliding window, hybrid sliding/full models, quantized cache dtypes.

The two are independent: ``planner.costs`` prices KV bytes per token of context from the
model spec; the backend's layout follows vLLM's blocks, groups and pools. They must agree
whenever the token counts fill whole blocks, and differ by less than a block otherwise."""

from __future__ import annotations

import doctest

import pytest
from vllm_helpers import DEEPSEEK_V3, HYBRID_5_TO_1, LLAMA_70B, MISTRAL_7B, engine_config

import profiling.backends._vllm_kv as kvmod
from planner.costs import ModelSpec, Workload, kv_cache_bytes, kv_peak_bytes
from profiling.backends._vllm_kv import (
    kv_layout,
    kv_layout_from_vllm_config,
    kv_token_bytes,
    pool_blocks_expected,
)

B = 16


def layout_of(cfg, **kw):
    layout, why = kv_layout_from_vllm_config(engine_config(cfg, **kw))
    assert layout is not None, why
    return layout


def test_doctests():
    assert doctest.testmod(kvmod).failed == 0


@pytest.mark.parametrize("tp, pp", [(1, 1), (8, 1), (1, 4), (8, 4), (16, 1), (2, 3)])
def test_gqa_bytes_match_the_cost_model_under_tensor_and_pipeline_parallelism(tp, pp):
    spec = ModelSpec.from_hf_config(LLAMA_70B)
    layout = layout_of(LLAMA_70B, tp=tp, pp=pp)
    assert layout.block_bytes_logical == B * spec.kv_bytes_per_token
    for tokens in (16, 1024, 4096):
        assert layout.sequence_bytes(tokens) == kv_cache_bytes(spec, tokens)
    # 8 KV heads on 16 ranks: every head is held twice
    assert layout.block_bytes == layout.block_bytes_logical * (2 if tp == 16 else 1)


def test_pipeline_parallel_pool_counts_every_stage():
    spec = ModelSpec.from_hf_config(LLAMA_70B)
    blocks = 1001
    for pp in (1, 2, 4):
        layout = layout_of(LLAMA_70B, pp=pp, num_gpu_blocks=blocks)
        assert layout.pool_bytes(blocks) == (blocks - 1) * B * spec.kv_bytes_per_token


@pytest.mark.parametrize("tp", [1, 8])
@pytest.mark.parametrize("cache_dtype, kv_dtype", [("auto", None), ("fp8", "fp8")])
def test_mla_holds_one_latent_per_token_not_keys_and_values(tp, cache_dtype, kv_dtype):
    spec = ModelSpec.from_hf_config(DEEPSEEK_V3, kv_dtype=kv_dtype)
    layout = layout_of(DEEPSEEK_V3, tp=tp, cache_dtype=cache_dtype)
    assert spec.attention == "MLA"
    assert layout.block_bytes_logical == B * spec.kv_bytes_per_token  # (512 + 64) x 61 layers x bytes
    assert layout.sequence_bytes(4096) == kv_cache_bytes(spec, 4096)
    assert layout.block_bytes == tp * layout.block_bytes_logical  # the latent is on every TP rank


def test_sliding_window_model_holds_the_window_not_the_context():
    spec = ModelSpec.from_hf_config(MISTRAL_7B)
    layout = layout_of(MISTRAL_7B)
    window = spec.sliding_window
    assert [kind for kind, _, _ in layout.groups] == ["sliding"]
    for tokens in (16, 1024, 4080):  # inside the window: whole blocks, exact
        assert layout.sequence_bytes(tokens) == kv_cache_bytes(spec, tokens)
    per_block = layout.block_bytes_logical
    for tokens in (4096, 5000, 20000, 100_000):  # past it: the window's blocks, within one block
        held = layout.sequence_bytes(tokens)
        assert abs(held - kv_cache_bytes(spec, tokens)) <= per_block
    assert layout.sequence_bytes(100_000) < kv_cache_bytes(spec, 100_000) * 1.01
    assert kv_cache_bytes(spec, 100_000) == kv_cache_bytes(spec, window)


def test_hybrid_groups_pack_full_and_sliding_layers_into_equal_blocks():
    spec = ModelSpec.from_hf_config(HYBRID_5_TO_1)
    layout = layout_of(HYBRID_5_TO_1)
    kinds = [kind for kind, _, _ in layout.groups]
    assert kinds == ["full"] + ["sliding"] * 5  # groups of 2 layers: 1 full, 5 sliding
    assert all(len(layers) == 2 for _, _, layers in layout.groups)
    # a block spans 2 layers, not all 12 (the old formula's 6x over-count)
    assert layout.block_bytes == 2 * B * spec.kv_bytes_per_token_per_layer
    for tokens in (16, 256, 496):  # inside the window
        assert layout.sequence_bytes(tokens) == kv_cache_bytes(spec, tokens)
    for tokens in (512, 1000, 8000):  # full layers grow, sliding ones stay at the window
        diff = layout.sequence_bytes(tokens) - kv_cache_bytes(spec, tokens)
        assert abs(diff) <= 6 * layout.block_bytes_logical


def test_hybrid_manager_disabled_treats_every_layer_as_full_attention():
    spec = ModelSpec.from_hf_config(HYBRID_5_TO_1)
    layout = layout_of(HYBRID_5_TO_1, hybrid_manager=False)
    assert [kind for kind, _, _ in layout.groups] == ["full"]
    assert layout.sequence_bytes(8000) == spec.kv_bytes_per_token * 8000


def test_fp8_cache_is_one_byte_per_value():
    spec = ModelSpec.from_hf_config(LLAMA_70B, kv_dtype="fp8")
    for dtype in ("fp8", "fp8_e4m3", "fp8_e5m2"):
        layout = layout_of(LLAMA_70B, cache_dtype=dtype)
        assert layout.sequence_bytes(1024) == kv_cache_bytes(spec, 1024)


def test_per_token_head_and_nvfp4_caches_add_their_scales():
    spec8 = ModelSpec.from_hf_config(LLAMA_70B, kv_dtype="int8")
    spec4 = ModelSpec.from_hf_config(LLAMA_70B, kv_dtype="int4")
    layers, kv_heads, d, tokens = 80, 8, 128, 1024
    int8 = layout_of(LLAMA_70B, cache_dtype="int8_per_token_head").sequence_bytes(tokens)
    assert int8 == kv_cache_bytes(spec8, tokens) + layers * kv_heads * tokens * 2 * 4  # fp32 K and V scales
    int4 = layout_of(LLAMA_70B, cache_dtype="int4_per_token_head").sequence_bytes(tokens)
    assert int4 == kv_cache_bytes(spec4, tokens) + layers * kv_heads * tokens * 2 * 4
    nvfp4 = layout_of(LLAMA_70B, cache_dtype="nvfp4").sequence_bytes(tokens)
    assert nvfp4 == kv_cache_bytes(spec4, tokens) + layers * kv_heads * tokens * 2 * (d // 16)  # fp8 per 16


def test_unmodeled_cache_dtypes_are_unavailable_with_a_reason():
    layout, why = kv_layout_from_vllm_config(engine_config(LLAMA_70B, cache_dtype="turboquant_k8v4"))
    assert layout is None and "turboquant_k8v4" in why
    assert kv_token_bytes("fp8_ds_mla", model_dtype_bytes=2, num_kv_heads=1, head_size=576, mla=True) == 656


@pytest.mark.parametrize("n, prompt, gen", [(4, 128, 256), (16, 64, 32), (1, 32, 16)])
def test_pool_blocks_match_the_cost_models_shared_prefix_peak(n, prompt, gen):
    spec = ModelSpec.from_hf_config(LLAMA_70B)
    layout = layout_of(LLAMA_70B)
    blocks = pool_blocks_expected(layout, prompt, [gen] * n)
    peak = kv_peak_bytes(spec, Workload.from_strategy(f"pool:n={n}", prompt, gen))
    assert blocks * layout.block_bytes_logical == peak
    unshared = pool_blocks_expected(layout, prompt, [gen] * n, shared_prompt=False)
    assert unshared - blocks == (n - 1) * prompt // B


def test_pool_blocks_of_a_sliding_model_share_only_the_prompt_blocks_still_in_the_window():
    layout = kv_layout(["sliding"], block_size=4, token_bytes=1, sliding_window=8)
    # prompt 8 tokens (2 full blocks); samples reach 10 and 20 tokens
    # sample A (10 tokens): holds blocks 0..2 ((10-8+1)//4 = 0 skipped); B (20): blocks 3..4
    assert pool_blocks_expected(layout, 8, [2, 12]) == 3 + 2 - 2 + 2
    assert pool_blocks_expected(layout, 8, [2, 12], shared_prompt=False) == 5


def test_layout_rejects_what_it_cannot_model():
    with pytest.raises(ValueError, match="sliding_window"):
        kv_layout(["sliding"], block_size=16, token_bytes=2)
    with pytest.raises(ValueError, match="layer_kinds"):
        kv_layout(["mamba"], block_size=16, token_bytes=2)
    assert kv_layout_from_vllm_config(object())[0] is None
