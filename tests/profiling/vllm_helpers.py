"""Engine configs shaped like vLLM's ``VllmConfig`` for the vllm backend's tests, and a KV
usage gauge that engine stand-ins hold up until the backend has read it.

:func:`engine_config` builds the model, cache, parallel and scheduler configs that
``LLM.llm_engine.vllm_config`` exposes, from a Hugging Face config dict, following vLLM 0.33's
rules (``ModelConfig.get_head_size``/``get_num_kv_heads``/``use_mla``/``get_sliding_window``,
``EngineArgs`` sliding-window handling). The conformance test (``test_vllm_conformance.py``)
checks these rules against vLLM's real ``ModelConfig`` for the same configs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import SimpleNamespace as NS
from typing import Any

from profiling.backends._vllm_kv import pp_partition
from profiling.backends.vllm import KV_SAMPLER_THREAD

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


class HeldGauge:
    """The KV usage gauge of an engine stand-in: :meth:`raised` sets it for the duration of a
    ``generate`` call and, while the backend's sampling thread runs, holds it until that thread
    has read it (an event, not a sleep: a loaded machine may not run the thread for a while)."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.value = 0.0
        self.timeout_s = timeout_s
        self._read = threading.Event()

    def read(self) -> float:
        value = self.value
        if value > 0:
            self._read.set()
        return value

    @contextlib.contextmanager
    def raised(self, value: float) -> Iterator[None]:
        self._read.clear()
        self.value = value
        try:
            if any(t.name == KV_SAMPLER_THREAD for t in threading.enumerate()):
                assert self._read.wait(self.timeout_s), "the KV sampling thread never read the gauge"
            yield
        finally:
            self.value = 0.0
