"""Model specs: parameter counts (total and active), KV bytes per token and the context limit.

:class:`ModelSpec` is built from a Hugging Face ``config.json`` (a folder, a file, a dict or a
``PretrainedConfig``; the supported families and what is counted are listed in
:mod:`planner.costs._hf_config`), from the catalog, from the run metadata the profiler stores
beside its shards, or from a few given numbers for an architecture none of those cover
(:meth:`ModelSpec.from_numbers`, :func:`parse_model_spec`: ``NAME=params:8.0e9,layers:32,
kv_heads:8,head_dim:128``). Counts from a config are exact, parameter by parameter as
``transformers`` instantiates them (tested against ``numel()`` of ``from_config`` models).

Embedding and LM head are counted (once when tied). *Active* parameters are those one token
uses: every non-expert weight plus ``experts_per_token`` routed experts per MoE layer
(Mixtral 8x7B: 46.7B total, 12.9B active; DeepSeek-V3: 671B, 37B).

KV bytes per token (the layout serving engines store)::

    MHA/GQA:  2 * n_kv_heads * head_dim * n_layers * kv_dtype_bytes        (keys and values)
    MLA:      (kv_lora_rank + qk_rope_head_dim) * n_layers * kv_dtype_bytes (latent + rope key)

e.g. Llama-3-8B in BF16: 2 * 8 * 128 * 32 * 2 = 131,072 bytes; Llama-3-70B: 327,680 bytes.
Sliding-window layers hold at most ``sliding_window`` tokens (see
:func:`planner.costs.memory.kv_cache_bytes`).

Block top-k sparse attention (``sparse``, :class:`profiling.backends.sparse.SparseAttention`;
``NAME@attn_blocks=K`` in :meth:`ModelSpec.resolve`, ``sparse_attention`` in run metadata):
each DECODE step attends to at most :attr:`ModelSpec.attended_cap` tokens, which prices its
attention FLOPs and KV bytes read (:mod:`planner.costs.flops`, :mod:`planner.costs.memory`);
the prefill stays dense and the KV held stays whole (nothing is evicted).
"""

from __future__ import annotations

import difflib
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from profiling.backends.sparse import SparseAttention, split_sparse_spec

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
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3_text",
    "phi3",
    "gpt_neox",
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
    final_norm_params: int | None = None  # None: one RMSNorm of hidden_size weights
    max_context_tokens: int | None = None  # longest sequence the model takes (None: not stated)
    assumptions: tuple[str, ...] = ()  # what was assumed rather than read (given-number specs)
    sparse: SparseAttention | None = None  # block top-k attention at decode (None: dense)
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
    def params_final_norm(self) -> int:
        """Parameters outside the layers besides the embedding and LM head: the final norm
        (``hidden_size`` weights; ``2 hidden_size`` for a LayerNorm with bias)."""
        return self.hidden_size if self.final_norm_params is None else self.final_norm_params

    @property
    def params_total(self) -> int:
        """Every parameter: embedding, LM head (once if tied), all layers, final norm."""
        return (
            self.params_embedding
            + self.params_lm_head
            + sum(la.params_total for la in self.layers)
            + self.params_final_norm
        )

    @property
    def params_active(self) -> int:
        """Parameters one token uses: as :attr:`params_total` with only ``experts_per_token``
        routed experts per MoE layer."""
        return (
            self.params_embedding
            + self.params_lm_head
            + sum(la.params_active for la in self.layers)
            + self.params_final_norm
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

    # ---- sparse attention ------------------------------------------------------------------------
    @property
    def attended_cap(self) -> int | None:
        """Most tokens a decode step attends to under block top-k attention,
        ``(attn_blocks + 1) * block_size`` (None: dense, every cached token)."""
        return None if self.sparse is None else self.sparse.max_attended

    @property
    def decode_key_caps(self) -> tuple[int | None, int | None]:
        """Most keys one decode step attends to in a full-attention layer and in a
        sliding-window layer: the sparse cap, the window, the smaller of both, or None."""
        cap, window = self.attended_cap, self.sliding_window
        return cap, (window if cap is None else cap if window is None else min(cap, window))

    @property
    def attention_pattern(self) -> str:
        """``"dense"``, or ``"sparse"`` with block top-k attention at decode."""
        return "dense" if self.sparse is None else "sparse"

    def with_sparse(self, sparse: SparseAttention | None, name: str | None = None) -> ModelSpec:
        """This model decoding with ``sparse`` (None: dense), named ``name`` (default this name
        plus the setting's suffix, ``lab-m@attn_blocks=2``). Raises a one-line ``ValueError``
        when the blocks cover the model's whole context (:meth:`SparseAttention.check_context`).

        Examples
        --------
        >>> spec = ModelSpec.from_catalog("llama-3.1-8b").with_sparse(SparseAttention(2))
        >>> spec.name, spec.attended_cap
        ('llama-3.1-8b@attn_blocks=2', 48)
        """
        if sparse is None:
            return self if name is None else replace(self, name=name)
        sparse.check_context(self.max_context_tokens, self.name)
        return replace(self, sparse=sparse, name=name or f"{self.name}{sparse.suffix}")

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
            "max_context_tokens": self.max_context_tokens,
            "sparse_attention": None if self.sparse is None else self.sparse.to_dict(),
            "assumptions": list(self.assumptions),
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
        from ._hf_config import build_spec, load_config

        cfg, source = load_config(config)
        return build_spec(cfg, source=source, name=name, dtype=dtype, kv_dtype=kv_dtype)

    @classmethod
    def from_catalog(
        cls, name: str, *, extra_file: str | Path | None = None, dtype: str | None = None
    ) -> ModelSpec:
        """Spec of a catalog model (``llama-3.1-70b``, ``qwen3-30b-a3b``, ``deepseek-v3``...)."""
        from ..catalog import get_model_entry
        from ._hf_config import build_spec

        entry = get_model_entry(name, extra_file=extra_file)
        source = entry.source or f"catalog:{entry.name}"
        if entry.numbers:
            from .given import spec_from_fields

            return spec_from_fields(entry.name, dict(entry.numbers), where=source, dtype=dtype)
        return build_spec(dict(entry.config), source=source, name=entry.name, dtype=dtype)

    @classmethod
    def from_run_metadata(cls, meta: Mapping[str, Any] | str | Path) -> ModelSpec:
        """Spec from the run metadata the profiler keeps beside its shards (a dict or a JSON
        file): its ``config`` (``model.config.to_dict()``), ``dtype``, ``model`` name and
        ``sparse_attention`` setting (absent: dense). When the
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
        from ._hf_config import build_spec

        try:
            sparse = SparseAttention.from_dict(meta.get("sparse_attention"), where)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        spec = build_spec(
            dict(meta["config"]),
            source=f"{where} ({meta.get('path', meta.get('model', ''))})",
            name=meta.get("model"),
            dtype=meta.get("dtype"),
        )
        spec = spec.with_sparse(sparse, name=spec.name)
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
    def from_numbers(cls, name: str, **numbers: Any) -> ModelSpec:
        """Spec of an architecture no config covers, from a few given numbers: ``params``,
        ``layers``, ``kv_heads``, ``head_dim`` and optionally ``active_params``, ``heads``,
        ``hidden``, ``experts``, ``experts_per_token``, ``context``, ``dtype`` (see
        :func:`planner.costs.given.spec_from_numbers` for what is assumed).

        Examples
        --------
        >>> spec = ModelSpec.from_numbers("mine", params=8.0e9, layers=32, kv_heads=8, head_dim=128)
        >>> spec.params_total, spec.kv_bytes_per_token
        (8000000000, 131072.0)
        """
        from .given import spec_from_numbers

        return spec_from_numbers(name, **numbers)

    @classmethod
    def resolve(
        cls,
        model: str | Path,
        *,
        extra_file: str | Path | None = None,
        dtype: str | None = None,
        name: str | None = None,
    ) -> ModelSpec:
        """Spec for ``model``: given numbers (``NAME=params:8.0e9,layers:32,kv_heads:8,head_dim:128``
        or the same without ``NAME=``), a catalog name, a path to a config folder/file, or the name
        of a lab checkpoint under ``profiling/lab/checkpoints/``, each optionally followed by a
        sparse-attention setting ``@attn_blocks=K`` (:meth:`with_sparse`). The one-line error
        names the closest catalog names, not the whole catalog."""
        try:
            text, sparse = split_sparse_spec(str(model))
            if sparse is None:
                return cls._resolve_dense(text, extra_file=extra_file, dtype=dtype, name=name)
            base = cls._resolve_dense(text, extra_file=extra_file, dtype=dtype, name=None)
            return base.with_sparse(sparse, name=name)
        except SpecError:
            raise
        except ValueError as exc:  # a malformed setting, or blocks that cover the whole context
            raise SpecError(str(exc)) from None

    @classmethod
    def _resolve_dense(
        cls, text: str, *, extra_file: str | Path | None, dtype: str | None, name: str | None
    ) -> ModelSpec:
        from ..catalog import CatalogError, load_catalog
        from .given import looks_like_numbers, parse_model_spec

        if looks_like_numbers(text):
            return parse_model_spec(text, name=name, dtype=dtype)
        try:
            spec = cls.from_catalog(text, extra_file=extra_file, dtype=dtype)
            return spec if name is None else replace(spec, name=name)
        except CatalogError:
            pass
        path = Path(text)
        if path.exists():
            return cls.from_hf_config(path, dtype=dtype, name=name)
        for ckpt in lab_checkpoint_dirs():
            if ckpt.name == text:
                return cls.from_hf_config(ckpt, name=name or ckpt.name, dtype=dtype)
        names = load_catalog(extra_file).names("models") + [p.name for p in lab_checkpoint_dirs()]
        close = difflib.get_close_matches(text.lower(), names, n=4, cutoff=0.5)
        hint = f" (closest: {', '.join(close)})" if close else ""
        raise SpecError(
            f"unknown model {text!r}: not a catalog name, a config path or a lab checkpoint{hint}; "
            "give its numbers instead, e.g. NAME=params:8.0e9,layers:32,kv_heads:8,head_dim:128"
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
