"""Tiny from_config model configurations shared by the cost-model tests (one per counted
parameter kind of every supported family)."""

from __future__ import annotations

import transformers

BASE = dict(
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=101,
)
_MLA = dict(
    num_key_value_heads=4,
    n_routed_experts=4,
    num_experts_per_tok=2,
    moe_intermediate_size=32,
    n_shared_experts=1,
    first_k_dense_replace=1,
    kv_lora_rank=16,
    qk_rope_head_dim=8,
    qk_nope_head_dim=16,
    v_head_dim=16,
    n_group=1,
    topk_group=1,
)

_IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=1)  # Phi-3's defaults exceed the tiny vocabulary

# (model_type, extra config fields): tiny configs covering every counted parameter kind
TINY = {
    "llama": ("llama", {}),
    "llama-tied-biases": ("llama", dict(tie_word_embeddings=True, attention_bias=True, mlp_bias=True)),
    "llama-mha": ("llama", dict(num_key_value_heads=4)),
    "mistral": ("mistral", dict(sliding_window=8)),
    "qwen2": ("qwen2", {}),
    "qwen2-tied": ("qwen2", dict(tie_word_embeddings=True)),
    "qwen3": ("qwen3", dict(head_dim=32)),
    "qwen3-bias": ("qwen3", dict(head_dim=32, attention_bias=True)),
    "mixtral": ("mixtral", dict(num_local_experts=4, num_experts_per_tok=2)),
    "qwen2-moe": (
        "qwen2_moe",
        dict(
            num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=48
        ),
    ),
    "qwen2-moe-sparse": (
        "qwen2_moe",
        dict(
            num_hidden_layers=4,
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=48,
            decoder_sparse_step=2,
            mlp_only_layers=[3],
        ),
    ),
    "qwen3-moe": (
        "qwen3_moe",
        dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, head_dim=16),
    ),
    "gemma": ("gemma", dict(head_dim=32)),
    "gemma2": ("gemma2", dict(head_dim=32)),
    "gemma3": ("gemma3_text", dict(head_dim=32, num_hidden_layers=7, attention_bias=True)),
    "phi3": ("phi3", dict(_IDS)),
    "phi3-tied-sliding": ("phi3", dict(_IDS, tie_word_embeddings=True, sliding_window=8)),
    "gpt-neox": ("gpt_neox", dict(num_key_value_heads=4)),
    "gpt-neox-tied-no-bias": (
        "gpt_neox",
        dict(num_key_value_heads=4, tie_word_embeddings=True, attention_bias=False),
    ),
    "deepseek-v3": ("deepseek_v3", dict(_MLA, q_lora_rank=24)),
    "deepseek-v2": ("deepseek_v2", dict(_MLA, q_lora_rank=None)),
}


def tiny_config(key: str):
    model_type, extra = TINY[key]
    return transformers.AutoConfig.for_model(model_type, **{**BASE, **extra})
