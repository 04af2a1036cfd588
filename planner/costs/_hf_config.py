"""Reading a Hugging Face ``config.json`` into a :class:`~planner.costs.spec.ModelSpec`:
parameter counts per layer, family by family, as ``transformers`` instantiates them (the
tests check every family against ``numel()`` of a tiny ``from_config`` model).

========================  ==============================================================
family (``model_type``)   what is counted per layer
========================  ==============================================================
llama, mistral            q, k, v, o; gate/up/down MLP; 2 RMSNorms (+ biases when
                          ``attention_bias`` / ``mlp_bias``)
qwen2                     as llama, plus q/k/v biases (always on in Qwen2)
qwen3                     as llama, plus per-head q/k RMSNorms (``head_dim`` each)
gemma                     as llama (GeGLU MLP, same three matrices); tied embeddings
gemma2                    as gemma, plus pre- and post-feed-forward RMSNorms (4 per
                          layer); sliding-window attention on every other layer
                          (layers 0, 2, ...; or ``layer_types``)
gemma3_text, gemma3       as gemma2, plus per-head q/k RMSNorms; 5 sliding layers to
                          1 global (``sliding_window_pattern`` = 6, or ``layer_types``);
                          ``gemma3`` (multimodal) reads its ``text_config``: the vision
                          tower (SigLIP, ~0.4B) is NOT counted
phi3                      fused qkv (``H d + 2 n_kv d``) and fused gate/up projections,
                          o, down, 2 RMSNorms; every layer sliding when
                          ``sliding_window`` is set
gpt_neox (Pythia)         fused qkv with bias, dense (out) with bias, a plain GELU MLP
                          ``h -> I -> h`` with biases, 2 LayerNorms with bias;
                          untied ``embed_out``; final LayerNorm with bias (2 h). The
                          parallel residual and the partial rotary embedding
                          (``rotary_pct``) change neither the parameters nor the matmul
                          FLOPs (rotary is elementwise)
mixtral                   router (E x hidden) + E experts (gate/up/down) in every layer
qwen2_moe                 router, E experts of ``moe_intermediate_size``, one shared
                          expert of ``shared_expert_intermediate_size`` and its 1-output
                          gate; q/k/v biases (``qkv_bias``); dense layers per
                          ``decoder_sparse_step`` / ``mlp_only_layers``
qwen3_moe                 router and E experts, no shared expert; q/k norms
deepseek_v2, deepseek_v3  multi-head latent attention (q LoRA or q_proj, kv_a with the
                          shared rope key, kv_b, o, 2 latent norms); the first
                          ``first_k_dense_replace`` layers dense, then router + E experts
                          + ``n_shared_experts`` shared experts
========================  ==============================================================

The context limit is ``max_position_embeddings`` (``n_positions``), raised to
``original_max_position_embeddings x factor`` when a ``rope_scaling`` with a factor extends it
(YaRN, linear, dynamic).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .spec import DTYPE_BYTES, SUPPORTED_MODEL_TYPES, LayerSpec, ModelSpec, SpecError

_MISSING = object()
_GEMMA = ("gemma", "gemma2", "gemma3_text")


def load_config(config: Any) -> tuple[dict[str, Any], str]:
    """``(config dict, source)`` from a folder holding ``config.json``, the file, a dict or a
    ``PretrainedConfig``; raises :class:`SpecError` naming the path."""
    if isinstance(config, (str, Path)):
        path = Path(config)
        if path.is_dir():
            path = path / "config.json"
        try:
            return json.loads(path.read_text()), str(path)
        except FileNotFoundError:
            raise SpecError(
                f"{path}: no such config file (expected a HF config.json or a folder holding one)"
            ) from None
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(config, Mapping):
        return dict(config), "config dict"
    if hasattr(config, "to_dict"):
        return dict(config.to_dict()), f"{type(config).__name__}"
    raise SpecError(f"expected a config.json path, a dict or a PretrainedConfig, got {type(config).__name__}")


class _Cfg:
    """Field access with errors that name the source and the field."""

    def __init__(self, cfg: dict[str, Any], source: str):
        self.cfg, self.source = cfg, source
        self.model_type = str(cfg.get("model_type", ""))

    def get(self, key: str, default: Any = _MISSING, *aliases: str) -> Any:
        for k in (key, *aliases):
            if self.cfg.get(k) is not None:
                return self.cfg[k]
        if default is _MISSING:
            raise SpecError(f"{self.source}: missing field {key!r} (model_type {self.model_type!r})")
        return default

    def int(self, key: str, default: Any = _MISSING, *aliases: str) -> int:
        value = self.get(key, default, *aliases)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SpecError(f"{self.source}: field {key!r} must be a non-negative integer, got {value!r}")
        return value


def dtype_bytes(name: Any, where: str, field_name: str) -> tuple[str, float]:
    """``(normalized dtype name, bytes per element)``; raises :class:`SpecError` on unknown names."""
    text = str(name).removeprefix("torch.").lower()
    if text not in DTYPE_BYTES:
        raise SpecError(
            f"{where}: field {field_name!r}: unknown dtype {name!r}; known: {', '.join(sorted(DTYPE_BYTES))}"
        )
    return text, DTYPE_BYTES[text]


def _layer_types(c: _Cfg, n_layers: int) -> tuple[list[bool], int | None]:
    """Which layers use sliding-window attention, and the window."""
    mt = c.model_type
    window = c.get("sliding_window", None)
    types = c.get("layer_types", None)
    if mt.startswith("qwen") and not c.get("use_sliding_window", False):
        window = None
    if isinstance(types, list) and len(types) == n_layers:
        sliding = [t == "sliding_attention" for t in types]
        return sliding, (int(window) if window and any(sliding) else None)
    if not window:
        return [False] * n_layers, None
    if mt in ("mistral", "mixtral", "phi3"):
        return [True] * n_layers, int(window)
    if mt == "gemma2":  # transformers: layer i slides when i is even
        sliding = [i % 2 == 0 for i in range(n_layers)]
        return sliding, int(window)
    if mt == "gemma3_text":
        pattern = c.int("sliding_window_pattern", 6)
        sliding = [bool((i + 1) % pattern) if pattern else True for i in range(n_layers)]
        return sliding, (int(window) if any(sliding) else None)
    if mt.startswith("qwen"):
        first = c.int("max_window_layers", n_layers)
        sliding = [i >= first for i in range(n_layers)]
        return sliding, (int(window) if any(sliding) else None)
    return [False] * n_layers, None


def _context_limit(c: _Cfg) -> int | None:
    """Longest sequence the model was built for (module docstring), None when not stated."""
    limit = c.get("max_position_embeddings", None, "n_positions")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        return None
    scaling = c.get("rope_scaling", None)
    if isinstance(scaling, Mapping):
        factor = scaling.get("factor")
        original = scaling.get("original_max_position_embeddings", limit)
        if isinstance(factor, (int, float)) and factor > 1 and isinstance(original, int):
            limit = max(limit, int(original * factor))
    return limit


def build_spec(
    cfg: dict[str, Any], *, source: str, name: str | None, dtype: str | None, kv_dtype: str | None = None
) -> ModelSpec:
    """The :class:`ModelSpec` of a config dict (module docstring); :class:`SpecError` names the
    source and the missing or bad field."""
    if cfg.get("model_type") == "gemma3" and isinstance(cfg.get("text_config"), Mapping):
        outer = cfg
        cfg = {**dict(outer["text_config"]), "model_type": "gemma3_text"}
        for key in ("torch_dtype", "dtype", "quantization_config", "_name_or_path"):
            if key in outer and key not in cfg:
                cfg[key] = outer[key]
        cfg.setdefault("tie_word_embeddings", outer.get("tie_word_embeddings", True))
        source = f"{source} (text_config; the vision tower is not counted)"
    c = _Cfg(cfg, source)
    mt = c.model_type
    if mt not in SUPPORTED_MODEL_TYPES:
        raise SpecError(
            f"{source}: field 'model_type' is {mt!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)} "
            "(or give the numbers: NAME=params:8.0e9,layers:32,kv_heads:8,head_dim:128)"
            if mt
            else f"{source}: missing field 'model_type'"
        )
    h = c.int("hidden_size")
    n_layers = c.int("num_hidden_layers")
    n_heads = c.int("num_attention_heads")
    n_kv = n_heads if mt == "gpt_neox" else c.int("num_key_value_heads", n_heads)
    if n_heads == 0 or n_kv == 0 or n_heads % n_kv:
        raise SpecError(
            f"{source}: num_attention_heads={n_heads} must be a positive multiple of num_key_value_heads={n_kv}"
        )
    head_dim = c.int("head_dim", h // n_heads)
    vocab = c.int("vocab_size")
    tie = bool(c.get("tie_word_embeddings", mt in _GEMMA))
    sliding, window = _layer_types(c, n_layers)

    dtype_name, dtype_b = dtype_bytes(
        dtype or c.get("dtype", None, "torch_dtype") or "bfloat16", source, "dtype"
    )
    weight_b = dtype_b
    quant = c.get("quantization_config", None)
    if dtype is None and isinstance(quant, Mapping):
        method = str(quant.get("quant_method", "")).lower()
        bits = quant.get("bits") or quant.get("weight_bits")
        if method == "fp8":
            weight_b = 1.0
        elif isinstance(bits, int) and bits > 0:
            weight_b = bits / 8.0
    kv_b = dtype_bytes(kv_dtype, source, "kv_dtype")[1] if kv_dtype else dtype_b

    mla = mt.startswith("deepseek")
    layers = []
    kw_mla: dict[str, int] = {}
    if mla:
        kv_lora = c.int("kv_lora_rank")
        rope = c.int("qk_rope_head_dim")
        nope = c.int("qk_nope_head_dim")
        v_dim = c.int("v_head_dim")
        q_lora = c.get("q_lora_rank", None)
        kw_mla = dict(kv_lora_rank=kv_lora, qk_rope_head_dim=rope, qk_nope_head_dim=nope, v_head_dim=v_dim)
        head_dim = nope + rope
    norms, norm_size = _norms(mt, h)
    for i in range(n_layers):
        if mla:
            attn, attn_other, kv_up = _mla_attention(c, h, n_heads, q_lora, kv_lora, rope, nope, v_dim)
        else:
            attn, attn_other = _mha_attention(c, h, n_heads, n_kv, head_dim)
            kv_up = 0
        dense, expert, n_exp, top_k, mlp_other = _mlp(c, i, h)
        layers.append(
            LayerSpec(
                attn_matmul=attn,
                dense_matmul=dense,
                expert_matmul=expert,
                num_experts=n_exp,
                experts_per_token=top_k,
                other=attn_other + mlp_other + norms * norm_size,
                sliding=sliding[i],
                kv_up_matmul=kv_up,
            )
        )
    if mla:
        kind = "MLA"
    elif n_kv == n_heads:
        kind = "MHA"
    elif n_kv == 1:
        kind = "MQA"
    else:
        kind = "GQA"
    return ModelSpec(
        name=name or str(cfg.get("_name_or_path") or cfg.get("name") or mt),
        model_type=mt,
        num_layers=n_layers,
        hidden_size=h,
        num_heads=n_heads,
        num_kv_heads=1 if mla else n_kv,
        head_dim=head_dim,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        layers=tuple(layers),
        attention=kind,
        weight_bytes_per_param=weight_b,
        kv_dtype_bytes=kv_b,
        dtype=dtype_name,
        sliding_window=window,
        final_norm_params=norm_size,
        max_context_tokens=_context_limit(c),
        source=source,
        config=cfg,
        **kw_mla,
    )


def _norms(mt: str, h: int) -> tuple[int, int]:
    """(norms per layer, parameters per norm): RMSNorms hold ``h`` weights, LayerNorms with
    bias (GPT-NeoX) ``2 h``; Gemma 2/3 have pre- and post-norms around both blocks. The final
    norm has the same size as one of them."""
    if mt == "gpt_neox":
        return 2, 2 * h
    if mt in ("gemma2", "gemma3_text"):
        return 4, h
    return 2, h


def _mha_attention(c: _Cfg, h: int, n_heads: int, n_kv: int, d: int) -> tuple[int, int]:
    """(matmul weights, biases + norms) of a q/k/v/o attention block (fused or not: same count)."""
    q, kv, o = h * n_heads * d, h * n_kv * d, n_heads * d * h
    matmul = q + 2 * kv + o
    mt = c.model_type
    other = 0
    if mt == "qwen2" or (mt == "qwen2_moe" and c.get("qkv_bias", True)):
        other += n_heads * d + 2 * n_kv * d  # q, k, v biases
    if mt in ("llama", "qwen3", "qwen3_moe", *_GEMMA) and c.get("attention_bias", False):
        other += n_heads * d + 2 * n_kv * d + h  # q, k, v and o biases
    if mt == "gpt_neox" and c.get("attention_bias", True):
        other += 3 * n_heads * d + h  # query_key_value and dense biases
    if mt in ("qwen3", "qwen3_moe", "gemma3_text"):
        other += 2 * d  # per-head q_norm and k_norm
    return matmul, other


def _mla_attention(
    c: _Cfg, h: int, n_heads: int, q_lora: int | None, kv_lora: int, rope: int, nope: int, v_dim: int
) -> tuple[int, int, int]:
    """(matmul weights, biases + norms, kv_b entries) of multi-head latent attention."""
    qk = nope + rope
    bias = bool(c.get("attention_bias", False))
    if q_lora:
        q = h * q_lora + q_lora * n_heads * qk
        other = q_lora + (q_lora if bias else 0)  # q_a_layernorm (+ q_a bias)
    else:
        q = h * n_heads * qk
        other = 0
    kv_a = h * (kv_lora + rope)
    kv_b = kv_lora * n_heads * (nope + v_dim)
    o = n_heads * v_dim * h
    other += kv_lora  # kv_a_layernorm
    if bias:
        other += (kv_lora + rope) + h  # kv_a and o biases
    return q + kv_a + kv_b + o, other, kv_b


def _mlp(c: _Cfg, i: int, h: int) -> tuple[int, int, int, int, int]:
    """(dense matmul weights incl. shared experts and router, one expert's weights, experts,
    experts per token, biases) of layer ``i``'s feed-forward block."""
    mt = c.model_type

    def swiglu(inter: int) -> int:  # gate, up and down (GeGLU and fused gate_up count the same)
        return 3 * h * inter

    if mt in ("llama", "mistral", "qwen2", "qwen3", "phi3", *_GEMMA):
        inter = c.int("intermediate_size")
        bias = 2 * inter + h if (mt == "llama" and c.get("mlp_bias", False)) else 0
        return swiglu(inter), 0, 0, 0, bias
    if mt == "gpt_neox":
        inter = c.int("intermediate_size")
        return 2 * h * inter, 0, 0, 0, inter + h  # h->I and I->h, with biases
    if mt == "mixtral":
        n_exp = c.int("num_local_experts")
        return n_exp * h, swiglu(c.int("intermediate_size")), n_exp, c.int("num_experts_per_tok"), 0
    if mt in ("qwen2_moe", "qwen3_moe"):
        n_exp = c.int("num_experts", 0, "num_local_experts")
        step = max(c.int("decoder_sparse_step", 1), 1)
        moe = i not in (c.get("mlp_only_layers", None) or []) and n_exp > 0 and (i + 1) % step == 0
        if not moe:
            return swiglu(c.int("intermediate_size")), 0, 0, 0, 0
        dense = n_exp * h  # router
        if mt == "qwen2_moe":
            shared = c.int("shared_expert_intermediate_size", 0)
            if shared:
                dense += swiglu(shared) + h  # shared expert and its sigmoid gate (hidden -> 1)
        return dense, swiglu(c.int("moe_intermediate_size")), n_exp, c.int("num_experts_per_tok"), 0
    # deepseek_v2 / deepseek_v3
    n_exp = c.int("n_routed_experts", 0)
    freq = max(c.int("moe_layer_freq", 1), 1)
    if n_exp == 0 or i < c.int("first_k_dense_replace", 0) or i % freq != 0:
        return swiglu(c.int("intermediate_size")), 0, 0, 0, 0
    moe_inter = c.int("moe_intermediate_size")
    dense = n_exp * h + swiglu(moe_inter * c.int("n_shared_experts", 0))
    return dense, swiglu(moe_inter), n_exp, c.int("num_experts_per_tok"), 0
