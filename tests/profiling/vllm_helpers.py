"""Engine configs shaped like vLLM's ``VllmConfig`` for the vllm backend's tests.

:func:`engine_config` builds the model, cache, parallel and scheduler configs that
``LLM.llm_engine.vllm_config`` exposes, from a Hugging Face config dict, following vLLM 0.33's
rules (``ModelConfig.get_head_size``/``get_num_kv_heads``/``use_mla``/``get_sliding_window``,
``EngineArgs`` sliding-window handling). The conformance test (``test_vllm_conformance.py``)
checks these rules against vLLM's real ``ModelConfig`` for the same configs.
"""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

from profiling.backends._vllm_kv import pp_partition

# Hugging Face config dicts (config.json fields) of the cache layouts the tests cover
LLAMA_70B = {
    "model_type": "llama",
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "torch_dtype": "bfloat16",
}
MISTRAL_7B = {  # every layer a 4096-token sliding window (mistralai/Mistral-7B-v0.1)
    "model_type": "mistral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "sliding_window": 4096,
    "max_position_embeddings": 32768,
    "torch_dtype": "bfloat16",
}
HYBRID_5_TO_1 = {  # Gemma-3-style: 5 sliding-window layers per full-attention layer
    "model_type": "llama",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "vocab_size": 32000,
    "sliding_window": 512,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 2,
    "max_position_embeddings": 8192,
    "torch_dtype": "bfloat16",
}
DEEPSEEK_V3 = {  # multi-head latent attention (deepseek-ai/DeepSeek-V3 config.json, abridged)
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "kv_lora_rank": 512,
    "q_lora_rank": 1536,
    "qk_rope_head_dim": 64,
    "qk_nope_head_dim": 128,
    "v_head_dim": 128,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "vocab_size": 129280,
    "max_position_embeddings": 163840,
    "torch_dtype": "bfloat16",
}


def _hf_config(cfg: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    fields = {k: v for k, v in cfg.items() if k != "model_type"}
    return AutoConfig.for_model(cfg["model_type"], **fields)


def engine_config(
    cfg: dict[str, Any],
    *,
    block_size: int = 16,
    cache_dtype: str = "auto",
    tp: int = 1,
    pp: int = 1,
    hybrid_manager: bool = True,
    num_gpu_blocks: int | None = 1001,
    kv_cache_size_tokens: int | None = None,
    dtype_bytes: int = 2,
) -> NS:
    """A ``VllmConfig``-shaped object for ``cfg`` (see the module docstring)."""
    hf = _hf_config(cfg)
    n_layers = cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    total_kv = cfg.get("num_key_value_heads", heads)
    mla = cfg["model_type"].startswith("deepseek") and bool(cfg.get("kv_lora_rank"))
    head = (
        cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"]
        if mla
        else cfg.get("head_dim") or cfg["hidden_size"] // heads
    )
    stage0 = pp_partition(n_layers, pp)[0]
    model_config = NS(
        hf_config=hf,
        hf_text_config=hf,
        dtype=NS(itemsize=dtype_bytes),
        max_model_len=cfg.get("max_position_embeddings"),
        use_mla=mla,
        is_attention_free=False,
        is_hybrid=False,
        get_total_num_hidden_layers=lambda: n_layers,
        get_num_layers=lambda parallel: stage0[1] - stage0[0],  # this rank's stage, as vLLM's
        get_total_num_kv_heads=lambda: total_kv,
        get_num_kv_heads=lambda parallel: 1 if mla else max(1, total_kv // parallel.tensor_parallel_size),
        get_head_size=lambda: head,
        get_sliding_window=lambda: getattr(hf, "sliding_window", None),
    )
    return NS(
        model_config=model_config,
        cache_config=NS(
            block_size=block_size,
            cache_dtype=cache_dtype,
            num_gpu_blocks=num_gpu_blocks,
            kv_cache_size_tokens=kv_cache_size_tokens,
        ),
        parallel_config=NS(
            tensor_parallel_size=tp, pipeline_parallel_size=pp, decode_context_parallel_size=1
        ),
        scheduler_config=NS(disable_hybrid_kv_cache_manager=not hybrid_manager),
    )
