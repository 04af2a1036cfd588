"""Model specs: parameter counts (total and active) and KV bytes per token from a HF config.

:class:`ModelSpec` is built from a Hugging Face ``config.json`` (a folder, a file, a dict or a
``PretrainedConfig``), from the catalog, or from the run metadata the profiler stores beside
its shards. Counts are exact for the supported families, parameter by parameter as
``transformers`` instantiates them (tested against ``numel()`` of ``from_config`` models):

========================  ==============================================================
family (``model_type``)   what is counted per layer
========================  ==============================================================
llama, mistral            q, k, v, o; gate/up/down MLP; 2 RMSNorms (+ biases when
                          ``attention_bias`` / ``mlp_bias``)
qwen2                     as llama, plus q/k/v biases (always on in Qwen2)
qwen3                     as llama, plus per-head q/k RMSNorms (``head_dim`` each)
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

Embedding and LM head are counted (once when tied). *Active* parameters are those one token
uses: every non-expert weight plus ``experts_per_token`` routed experts per MoE layer
(Mixtral 8x7B: 46.7B total, 12.9B active; DeepSeek-V3: 671B, 37B).

KV bytes per token (the layout serving engines store)::

    MHA/GQA:  2 * n_kv_heads * head_dim * n_layers * kv_dtype_bytes        (keys and values)
    MLA:      (kv_lora_rank + qk_rope_head_dim) * n_layers * kv_dtype_bytes (latent + rope key)

e.g. Llama-3-8B in BF16: 2 * 8 * 128 * 32 * 2 = 131,072 bytes; Llama-3-70B: 327,680 bytes.
Sliding-window layers hold at most ``sliding_window`` tokens (see
:func:`planner.costs.memory.kv_cache_bytes`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ModelSpec",
    "LayerSpec",
    "SpecError",
    "SUPPORTED_MODEL_TYPES",
    "DTYPE_BYTES",
    "lab_checkpoint_dirs",
]

SUPPORTED_MODEL_TYPES = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "deepseek_v2",
    "deepseek_v3",
)

DTYPE_BYTES = {
    "float32": 4.0,
    "fp32": 4.0,
    "float": 4.0,
    "bfloat16": 2.0,
    "bf16": 2.0,
    "float16": 2.0,
    "fp16": 2.0,
    "half": 2.0,
    "float8_e4m3fn": 1.0,
    "float8_e5m2": 1.0,
    "float8": 1.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}


class SpecError(ValueError):
    """A config cannot be turned into a :class:`ModelSpec`; the message names the source and field."""


@dataclass(frozen=True)
class LayerSpec:
    """Parameter counts of one decoder layer (numbers of weights, not bytes).

    ``attn_matmul`` / ``dense_matmul``: weight-matrix entries every token multiplies by
    (attention projections; dense MLP, shared experts and the router); ``expert_matmul``: one
    routed expert's matrices; ``other``: norms and biases (elementwise, no matmul FLOPs).
    """

    attn_matmul: int
    dense_matmul: int
    expert_matmul: int = 0
    num_experts: int = 0
    experts_per_token: int = 0
    other: int = 0
    sliding: bool = False
    kv_up_matmul: int = 0  # MLA: kv_b_proj entries (part of attn_matmul), re-applied per context token by HF

    @property
    def params_total(self) -> int:
        """Every parameter of the layer (all experts)."""
        return self.attn_matmul + self.dense_matmul + self.num_experts * self.expert_matmul + self.other

    @property
    def params_active(self) -> int:
        """Parameters one token uses in the layer (``experts_per_token`` routed experts)."""
        return self.attn_matmul + self.dense_matmul + self.experts_per_token * self.expert_matmul + self.other

    @property
    def matmul_active(self) -> int:
        """Weight entries one token multiplies by in this layer (2 FLOPs each)."""
        return self.attn_matmul + self.dense_matmul + self.experts_per_token * self.expert_matmul


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a decoder-only model, enough to price it. Build it with
    :meth:`from_hf_config`, :meth:`from_catalog`, :meth:`from_run_metadata` or :meth:`resolve`.

    Examples
    --------
    >>> spec = ModelSpec.from_catalog("llama-3-8b")
    >>> spec.kv_bytes_per_token
    131072.0
    >>> round(spec.params_total / 1e9, 2)
    8.03
    """

    name: str
    model_type: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    layers: tuple[LayerSpec, ...]
    attention: str  # "MHA", "GQA", "MQA" or "MLA"
    weight_bytes_per_param: float = 2.0
    kv_dtype_bytes: float = 2.0
    dtype: str = "bfloat16"
    sliding_window: int | None = None
    # multi-head latent attention (DeepSeek); 0 elsewhere
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    source: str = ""
    config: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ---- parameter counts ---------------------------------------------------------------------
    @property
    def params_embedding(self) -> int:
        """Input embedding entries, ``vocab_size * hidden_size``."""
        return self.vocab_size * self.hidden_size

    @property
    def params_lm_head(self) -> int:
        """LM-head entries not shared with the embedding (0 when tied)."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def params_total(self) -> int:
        """Every parameter: embedding, LM head (once if tied), all layers, final norm."""
        return (
            self.params_embedding
            + self.params_lm_head
            + sum(la.params_total for la in self.layers)
            + self.hidden_size
        )

    @property
    def params_active(self) -> int:
        """Parameters one token uses: as :attr:`params_total` with only ``experts_per_token``
        routed experts per MoE layer."""
        return (
            self.params_embedding
            + self.params_lm_head
            + sum(la.params_active for la in self.layers)
            + self.hidden_size
        )

    @property
    def params_non_embedding(self) -> int:
        """Total parameters without the input embedding and LM head (Kaplan et al.'s N)."""
        return self.params_total - self.params_embedding - self.params_lm_head

    @property
    def matmul_params_active(self) -> int:
        """Weight entries one token multiplies by, over all layers plus the LM head
        (``vocab * hidden`` even when tied; the embedding lookup is not a matmul). Forward
        FLOPs per token excluding attention are ``2 *`` this."""
        return sum(la.matmul_active for la in self.layers) + self.vocab_size * self.hidden_size

    @property
    def is_moe(self) -> bool:
        """True when some layer routes tokens to experts."""
        return any(la.num_experts for la in self.layers)

    @property
    def num_experts(self) -> int:
        """Routed experts per MoE layer (0 for dense models)."""
        return max((la.num_experts for la in self.layers), default=0)

    @property
    def experts_per_token(self) -> int:
        """Routed experts each token runs per MoE layer (0 for dense models)."""
        return max((la.experts_per_token for la in self.layers), default=0)

    @property
    def architecture(self) -> str:
        """``"moe"`` or ``"dense"``."""
        return "moe" if self.is_moe else "dense"

    @property
    def weight_bytes(self) -> float:
        """Bytes of all weights, ``params_total * weight_bytes_per_param``."""
        return self.params_total * self.weight_bytes_per_param

    # ---- KV cache ------------------------------------------------------------------------------
    @property
    def kv_bytes_per_token_per_layer(self) -> float:
        """KV bytes one token adds to one layer: ``2 * n_kv_heads * head_dim`` values (MHA/GQA)
        or ``kv_lora_rank + qk_rope_head_dim`` (MLA), times ``kv_dtype_bytes``."""
        if self.attention == "MLA":
            return (self.kv_lora_rank + self.qk_rope_head_dim) * self.kv_dtype_bytes
        return 2 * self.num_kv_heads * self.head_dim * self.kv_dtype_bytes

    @property
    def kv_bytes_per_token(self) -> float:
        """KV bytes per token of context over all layers (no sliding-window cap)."""
        return self.kv_bytes_per_token_per_layer * self.num_layers

    @property
    def num_sliding_layers(self) -> int:
        """Layers with sliding-window attention (they hold at most ``sliding_window`` tokens)."""
        return sum(la.sliding for la in self.layers)

    # ---- attention FLOPs coefficient ---------------------------------------------------------
    def attention_flops_per_key(self, mla: str = "absorbed") -> float:
        """FLOPs of one (query token, key token) pair in one layer: scores ``q.k`` plus the
        value mix, ``2 * H * d_qk + 2 * H * d_v``.

        MHA/GQA: ``d_qk = d_v = head_dim`` (GQA shares K/V heads but every query head still
        does the work), i.e. the ``4 * H * d`` per layer and context token of the PaLM
        appendix (``12 L H Q T`` for training = 3x forward). MLA ``mla="expanded"`` (HF
        transformers, vLLM prefill): ``d_qk = nope + rope``, ``d_v = v_head_dim``;
        ``mla="absorbed"`` (DeepSeek's decode, vLLM/SGLang MLA kernels: W_UK and W_UV folded
        into the query and output): ``d_qk = kv_lora_rank + rope``, ``d_v = kv_lora_rank``.
        """
        h = self.num_heads
        if self.attention != "MLA":
            return 4.0 * h * self.head_dim
        if mla == "absorbed":
            return 2.0 * h * (self.kv_lora_rank + self.qk_rope_head_dim) + 2.0 * h * self.kv_lora_rank
        if mla in ("expanded", "hf"):
            return 2.0 * h * (self.qk_nope_head_dim + self.qk_rope_head_dim) + 2.0 * h * self.v_head_dim
        raise ValueError(f"mla must be 'absorbed', 'expanded' or 'hf', got {mla!r}")

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary of the spec's derived numbers."""
        return {
            "name": self.name,
            "model_type": self.model_type,
            "architecture": self.architecture,
            "attention": self.attention,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "num_experts": self.num_experts,
            "experts_per_token": self.experts_per_token,
            "params_total": self.params_total,
            "params_active": self.params_active,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "weight_bytes": self.weight_bytes,
            "dtype": self.dtype,
            "weight_bytes_per_param": self.weight_bytes_per_param,
            "sliding_window": self.sliding_window,
            "source": self.source,
        }

    # ---- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_hf_config(
        cls,
        config: str | Path | Mapping[str, Any] | Any,
        *,
        name: str | None = None,
        dtype: str | None = None,
        kv_dtype: str | None = None,
    ) -> ModelSpec:
        """Spec from a HF ``config.json``: a folder holding one, the file, a dict, or a
        ``transformers.PretrainedConfig``.

        ``dtype`` overrides the config's ``torch_dtype``/``dtype`` (weights and KV); ``kv_dtype``
        overrides the KV-cache dtype only. Weights quantized to FP8
        (``quantization_config.quant_method == "fp8"``, as DeepSeek-V3 ships) count 1 byte per
        parameter; the KV cache keeps the activation dtype.

        Raises :class:`SpecError` naming the source and the missing or bad field.
        """
        cfg, source = _load_config(config)
        return _build(cfg, source=source, name=name, dtype=dtype, kv_dtype=kv_dtype)

    @classmethod
    def from_catalog(
        cls, name: str, *, extra_file: str | Path | None = None, dtype: str | None = None
    ) -> ModelSpec:
        """Spec of a catalog model (``llama-3.1-70b``, ``qwen3-30b-a3b``, ``deepseek-v3``...)."""
        from ..catalog import get_model_entry

        entry = get_model_entry(name, extra_file=extra_file)
        return _build(
            dict(entry.config), source=entry.source or f"catalog:{entry.name}", name=entry.name, dtype=dtype
        )

    @classmethod
    def from_run_metadata(cls, meta: Mapping[str, Any] | str | Path) -> ModelSpec:
        """Spec from the run metadata the profiler keeps beside its shards (a dict or a JSON
        file): its ``config`` (``model.config.to_dict()``), ``dtype`` and ``model`` name. When the
        metadata holds the measured ``num_parameters`` and it differs from the computed count
        by more than 0.5%, a warning says so (an unsupported layer type would cause it)."""
        where = "run metadata"
        if isinstance(meta, (str, Path)):
            where = str(meta)
            try:
                meta = json.loads(Path(meta).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise SpecError(f"{where}: cannot read run metadata: {exc}") from None
        if not isinstance(meta, Mapping) or not isinstance(meta.get("config"), Mapping):
            raise SpecError(f"{where}: needs a 'config' object (the model's config.to_dict())")
        spec = _build(
            dict(meta["config"]),
            source=f"{where} ({meta.get('path', meta.get('model', ''))})",
            name=meta.get("model"),
            dtype=meta.get("dtype"),
        )
        measured = meta.get("num_parameters")
        if isinstance(measured, (int, float)) and measured > 0:
            if abs(spec.params_total - measured) > 0.005 * measured:
                warnings.warn(
                    f"{where}: computed {spec.params_total:,} parameters but the run measured {int(measured):,}; "
                    "costs derived from this spec may be off",
                    stacklevel=2,
                )
        return spec

    @classmethod
    def resolve(
        cls, model: str | Path, *, extra_file: str | Path | None = None, dtype: str | None = None
    ) -> ModelSpec:
        """Spec for ``model``: a catalog name, else a path to a config folder/file, else the name
        of a lab checkpoint under ``profiling/lab/checkpoints/``. The error lists what is known."""
        from ..catalog import CatalogError

        try:
            return cls.from_catalog(str(model), extra_file=extra_file, dtype=dtype)
        except CatalogError as exc:
            catalog_error = str(exc)
        path = Path(model)
        if path.exists():
            return cls.from_hf_config(path, dtype=dtype)
        for ckpt in lab_checkpoint_dirs():
            if ckpt.name == str(model):
                return cls.from_hf_config(ckpt, name=ckpt.name, dtype=dtype)
        labs = [p.name for p in lab_checkpoint_dirs()]
        extra = f"; lab checkpoints: {', '.join(labs)}" if labs else ""
        raise SpecError(
            f"{catalog_error.replace('unknown model', 'unknown model (not a path either)')}{extra}"
        )


def lab_checkpoint_dirs() -> list[Path]:
    """Folders ``profiling/lab/checkpoints/<name>/`` holding a ``config.json``, sorted by name."""
    import importlib.util

    found = importlib.util.find_spec("profiling")
    if found is None or not found.submodule_search_locations:
        return []
    root = Path(next(iter(found.submodule_search_locations))) / "lab" / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "config.json").is_file())


# ---- building ------------------------------------------------------------------------------------
_MISSING = object()


def _load_config(config: Any) -> tuple[dict[str, Any], str]:
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


def _dtype_bytes(name: Any, where: str, field_name: str) -> tuple[str, float]:
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
    if mt in ("mistral", "mixtral"):
        return [True] * n_layers, int(window)
    if mt.startswith("qwen"):
        first = c.int("max_window_layers", n_layers)
        sliding = [i >= first for i in range(n_layers)]
        return sliding, (int(window) if any(sliding) else None)
    return [False] * n_layers, None


def _build(
    cfg: dict[str, Any], *, source: str, name: str | None, dtype: str | None, kv_dtype: str | None = None
) -> ModelSpec:
    c = _Cfg(cfg, source)
    mt = c.model_type
    if mt not in SUPPORTED_MODEL_TYPES:
        raise SpecError(
            f"{source}: field 'model_type' is {mt!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
            if mt
            else f"{source}: missing field 'model_type'"
        )
    h = c.int("hidden_size")
    n_layers = c.int("num_hidden_layers")
    n_heads = c.int("num_attention_heads")
    n_kv = c.int("num_key_value_heads", n_heads)
    if n_heads == 0 or n_kv == 0 or n_heads % n_kv:
        raise SpecError(
            f"{source}: num_attention_heads={n_heads} must be a positive multiple of num_key_value_heads={n_kv}"
        )
    head_dim = c.int("head_dim", h // n_heads)
    vocab = c.int("vocab_size")
    tie = bool(c.get("tie_word_embeddings", False))
    sliding, window = _layer_types(c, n_layers)

    dtype_name, dtype_b = _dtype_bytes(
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
    kv_b = _dtype_bytes(kv_dtype, source, "kv_dtype")[1] if kv_dtype else dtype_b

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
                other=attn_other + mlp_other + 2 * h,  # + input and post-attention norms
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
        source=source,
        config=cfg,
        **kw_mla,
    )


def _mha_attention(c: _Cfg, h: int, n_heads: int, n_kv: int, d: int) -> tuple[int, int]:
    """(matmul weights, biases + norms) of a q/k/v/o attention block."""
    q, kv, o = h * n_heads * d, h * n_kv * d, n_heads * d * h
    matmul = q + 2 * kv + o
    mt = c.model_type
    other = 0
    if mt == "qwen2" or (mt == "qwen2_moe" and c.get("qkv_bias", True)):
        other += n_heads * d + 2 * n_kv * d  # q, k, v biases
    if mt in ("llama", "qwen3", "qwen3_moe") and c.get("attention_bias", False):
        other += n_heads * d + 2 * n_kv * d + h  # q, k, v and o biases
    if mt in ("qwen3", "qwen3_moe"):
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

    def swiglu(inter: int) -> int:
        return 3 * h * inter

    if mt in ("llama", "mistral", "qwen2", "qwen3"):
        inter = c.int("intermediate_size")
        bias = 2 * inter + h if (mt == "llama" and c.get("mlp_bias", False)) else 0
        return swiglu(inter), 0, 0, 0, bias
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
