"""KV-cache arithmetic of vLLM's V1 paged cache, without importing vLLM.

Read from vLLM 0.33.0 (``vllm/v1/kv_cache_interface.py``, ``vllm/v1/core/kv_cache_planning.py``,
``vllm/v1/core/block_pool.py``, ``vllm/v1/core/single_type_kv_cache_manager.py``); the
conformance check (``benchmarks/vllm_conformance.sh``) runs these functions against vLLM's
real classes.

How vLLM lays the cache out
---------------------------
* **Bytes per token per layer on one worker** (a layer's page is ``block_size`` of these):
  ordinary attention stores K and V, ``H_kv,rank * (d_k + d_v) * b`` with
  ``H_kv,rank = max(1, H_kv // TP)``; MLA (DeepSeek) stores one latent plus the rope key,
  ``(kv_lora_rank + qk_rope_head_dim) * b``, on every tensor-parallel rank (no factor 2, no
  sharding). ``b`` is the cache dtype's element size: the model dtype for ``auto``, 1 for the
  fp8 variants; ``*_per_token_head`` caches add two float32 scales per token and head (K and
  V; MLA packs two after its latent too: Triton and MLA backends), NVFP4 packs ``d/2`` data + ``d/16`` fp8 scale bytes per head and side, and
  ``fp8_ds_mla`` / ``nvfp4_ds_mla`` use fixed 656 / 352 bytes per token.
* **Groups**: layers of one attention type form a group; with several types (sliding window
  and full attention: Gemma-3, gpt-oss) each type's layers are split into groups of
  ``group_size`` layers (the smallest type's count, or the largest when it is < 1.5x the
  smallest), padded. A block id holds ``block_size`` tokens of ONE group, i.e. a page of
  each of its ``group_size`` layers. With the hybrid KV cache manager disabled, every
  attention layer is treated as full attention in one group.
* **Pipeline parallelism**: groups are global; each stage's worker holds its own layers of
  each group, in a pool of the same ``num_gpu_blocks`` blocks sized for its largest group.
* **Usage gauge** (``vllm:kv_cache_usage_perc``): ``1 - free / (num_gpu_blocks - 1)`` (one
  null block), where evictable prefix-cache blocks count as free. So the bytes held are
  ``usage * (num_gpu_blocks - 1) * block_bytes``.
* **Sliding-window groups** free the blocks wholly before the window:
  ``cdiv(T, B) - (T - W + 1) // B`` blocks for ``T`` tokens.

``block_bytes`` counts every GPU's copy (what the cache occupies); ``block_bytes_logical``
divides out the tensor-parallel replicas (MLA on TP ranks; GQA with fewer KV heads than TP
ranks) so it compares with one copy of the cache, as :func:`planner.costs.kv_cache_bytes`
prices it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KVCacheLayout",
    "kv_token_bytes",
    "pp_partition",
    "kv_layout",
    "kv_layout_from_vllm_config",
    "pool_blocks_expected",
]

_FP8 = ("fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc")
_HALF = ("float16", "bfloat16", "half")
_SCALE_BYTES = 4  # a float32 scale (per-token-head caches store two per token and head)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def kv_token_bytes(
    cache_dtype: str,
    *,
    model_dtype_bytes: float,
    num_kv_heads: int,
    head_size: int,
    head_size_v: int | None = None,
    mla: bool = False,
) -> float | None:
    """Bytes one token adds to one attention layer on one worker, or None when vLLM's packing of
    ``cache_dtype`` is not modeled here (turboquant, octave, ultraquant, custom dtypes).

    ``num_kv_heads`` is per worker (``max(1, H_kv // TP)``); for MLA pass 1 and
    ``head_size = kv_lora_rank + qk_rope_head_dim``.

    Examples
    --------
    >>> kv_token_bytes("auto", model_dtype_bytes=2, num_kv_heads=8, head_size=128)  # Llama-3-8B, 1 GPU
    4096
    >>> kv_token_bytes("fp8", model_dtype_bytes=2, num_kv_heads=1, head_size=576, mla=True)  # DeepSeek-V3
    576
    """
    dtype = str(cache_dtype).removeprefix("torch.")
    hk = int(head_size)
    hv = 0 if mla else int(head_size if head_size_v is None else head_size_v)
    heads = 1 if mla else int(num_kv_heads)
    if mla and dtype == "fp8_ds_mla":
        return 656
    if mla and dtype == "nvfp4_ds_mla":
        return 352
    if dtype == "auto":
        elem: float = model_dtype_bytes
    elif dtype in _HALF:
        elem = 2
    elif dtype in ("float32", "float"):
        elem = 4
    elif dtype in _FP8:
        elem = 1
    elif dtype in ("int8_per_token_head", "fp8_per_token_head", "int4_per_token_head"):
        if dtype == "int4_per_token_head":
            hk, hv = hk // 2, hv // 2
        return heads * ((hk + hv) + 2 * _SCALE_BYTES)  # MLA's single latent also packs 2 scales
    elif dtype.startswith("nvfp4") and not mla and hk == hv:
        return heads * 2 * (hk // 2 + hk // 16)
    else:
        return None
    return heads * (hk + hv) * elem


def pp_partition(num_layers: int, pp: int) -> list[tuple[int, int]]:
    """Layer ranges ``[start, end)`` of each pipeline stage, split as vLLM's ``get_pp_indices``
    does by default (the remainder goes to the stages before the last).

    Examples
    --------
    >>> pp_partition(61, 4)
    [(0, 15), (15, 30), (30, 46), (46, 61)]
    """
    if pp < 1:
        raise ValueError(f"pipeline_parallel_size must be >= 1, got {pp}")
    parts = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        parts[-i] += 1
    bounds, start = [], 0
    for p in parts:
        bounds.append((start, start + p))
        start += p
    return bounds


@dataclass(frozen=True)
class KVCacheLayout:
    """vLLM's paged KV cache for one model on one deployment (see the module docstring).

    ``groups`` holds one ``(kind, window, layer indices)`` per KV cache group (``kind`` is
    ``"full"`` or ``"sliding"``); ``token_bytes`` is per token, layer and worker.
    """

    block_size: int
    token_bytes: float
    groups: tuple[tuple[str, int | None, tuple[int, ...]], ...]
    stages: tuple[tuple[int, int], ...]
    tp: int = 1
    tp_replicas: int = 1

    @property
    def layers_per_block(self) -> int:
        """Layer pages one block id spans over all pipeline stages (each stage's pool is sized
        for its largest group, padding included)."""
        return sum(
            max(sum(start <= i < end for i in layers) for _, _, layers in self.groups)
            for start, end in self.stages
        )

    @property
    def block_bytes(self) -> float:
        """Bytes one block id occupies on all GPUs together (TP replicas included)."""
        return self.tp * self.layers_per_block * self.block_size * self.token_bytes

    @property
    def block_bytes_logical(self) -> float:
        """Bytes of one block id in one copy of the cache (TP replicas divided out)."""
        return self.block_bytes / self.tp_replicas

    def pool_bytes(self, num_gpu_blocks: int, *, logical: bool = True) -> float:
        """Bytes of the usable pool (``num_gpu_blocks - 1``: one block is vLLM's null block)."""
        per = self.block_bytes_logical if logical else self.block_bytes
        return max(int(num_gpu_blocks) - 1, 0) * per

    def blocks_held(self, tokens: int) -> int:
        """Block ids one sequence holding ``tokens`` tokens uses, over all groups."""
        return sum(self._group_blocks(kind, window, tokens)[1] for kind, window, _ in self.groups)

    def _group_blocks(self, kind: str, window: int | None, tokens: int) -> tuple[int, int]:
        """(first block still held, blocks held) of one group for a sequence of ``tokens``."""
        first = 0
        if kind == "sliding" and window:
            first = max(0, tokens - window + 1) // self.block_size
        return first, _cdiv(tokens, self.block_size) - first

    def sequence_bytes(self, tokens: int, *, logical: bool = True) -> float:
        """Bytes one sequence of ``tokens`` tokens holds (whole blocks)."""
        return self.blocks_held(tokens) * (self.block_bytes_logical if logical else self.block_bytes)


def kv_layout(
    layer_kinds: Sequence[str],
    *,
    block_size: int,
    token_bytes: float,
    sliding_window: int | None = None,
    pp: int = 1,
    tp: int = 1,
    tp_replicas: int = 1,
    hybrid_manager: bool = True,
) -> KVCacheLayout:
    """Group layers as vLLM 0.33 does (``_get_kv_cache_groups_uniform_page_size``).

    ``layer_kinds`` lists ``"full"`` or ``"sliding"`` per decoder layer.

    Examples
    --------
    >>> gemma = kv_layout(["sliding"] * 5 + ["full"], block_size=16, token_bytes=1024, sliding_window=512)
    >>> [(kind, layers) for kind, _, layers in gemma.groups]
    [('full', (5,)), ('sliding', (0,)), ('sliding', (1,)), ('sliding', (2,)), ('sliding', (3,)), ('sliding', (4,))]
    >>> gemma.block_bytes
    16384
    """
    kinds = list(layer_kinds)
    if not kinds or any(k not in ("full", "sliding") for k in kinds):
        raise ValueError(f"layer_kinds must be a non-empty list of 'full'/'sliding', got {kinds!r}")
    if "sliding" in kinds and not sliding_window:
        raise ValueError("sliding layers need a sliding_window")
    if not hybrid_manager and len(set(kinds)) > 1:
        kinds = ["full"] * len(kinds)  # vLLM promotes sliding layers to full attention
    buckets: dict[str, list[int]] = {}
    for kind in ("full", "sliding"):
        members = [i for i, k in enumerate(kinds) if k == kind]
        if members:
            buckets[kind] = members
    sizes = [len(m) for m in buckets.values()]
    group_size = min(sizes) if max(sizes) >= 1.5 * min(sizes) else max(sizes)
    groups = []
    for kind, members in buckets.items():
        n_groups = _cdiv(len(members), group_size)
        for i in range(n_groups):
            groups.append((kind, sliding_window if kind == "sliding" else None, tuple(members[i::n_groups])))
    return KVCacheLayout(
        block_size=int(block_size),
        token_bytes=token_bytes,
        groups=tuple(groups),
        stages=tuple(pp_partition(len(kinds), pp)),
        tp=int(tp),
        tp_replicas=int(tp_replicas),
    )


def kv_layout_from_vllm_config(vllm_config: Any) -> tuple[KVCacheLayout | None, str]:
    """The layout of a running engine from its ``VllmConfig`` (``LLM.llm_engine.vllm_config``),
    or None and why. Reads only public config methods (``get_total_num_hidden_layers``,
    ``get_num_kv_heads``, ``get_head_size``, ``use_mla``, ``get_sliding_window``,
    ``hf_text_config.layer_types``) and the cache, parallel and scheduler configs."""
    try:
        model = vllm_config.model_config
        cache = vllm_config.cache_config
        parallel = vllm_config.parallel_config
        if getattr(model, "is_attention_free", False) or getattr(model, "is_hybrid", False):
            return None, "unavailable: state-space or attention-free layers are not modeled"
        if int(getattr(parallel, "decode_context_parallel_size", 1) or 1) > 1:
            return None, "unavailable: decode context parallelism is not modeled"
        n_layers = int(model.get_total_num_hidden_layers())
        window = model.get_sliding_window()
        types = getattr(model.hf_text_config, "layer_types", None)
        if isinstance(types, (list, tuple)) and len(types) == n_layers:
            unknown = sorted({t for t in types if t not in ("full_attention", "sliding_attention")})
            if unknown:
                return None, f"unavailable: layer types {unknown} are not modeled"
            kinds = ["sliding" if t == "sliding_attention" and window else "full" for t in types]
        else:
            kinds = ["sliding" if window else "full"] * n_layers
        mla = bool(getattr(model, "use_mla", False))
        tp = int(parallel.tensor_parallel_size)
        total_kv = int(model.get_total_num_kv_heads())
        heads = 1 if mla else int(model.get_num_kv_heads(parallel))
        token_bytes = kv_token_bytes(
            str(cache.cache_dtype),
            model_dtype_bytes=model.dtype.itemsize,
            num_kv_heads=heads,
            head_size=int(model.get_head_size()),
            mla=mla,
        )
        if token_bytes is None:
            return None, f"unavailable: KV cache dtype {cache.cache_dtype!r} is not modeled"
        replicas = tp if mla else max(1, tp // max(total_kv, 1))
        scheduler = getattr(vllm_config, "scheduler_config", None)
        layout = kv_layout(
            kinds,
            block_size=int(cache.block_size),
            token_bytes=token_bytes,
            sliding_window=window if "sliding" in kinds else None,
            pp=int(parallel.pipeline_parallel_size),
            tp=tp,
            tp_replicas=replicas,
            hybrid_manager=not getattr(scheduler, "disable_hybrid_kv_cache_manager", False),
        )
        return layout, "cache layout from the engine config"
    except (AttributeError, TypeError, ValueError) as err:
        return None, f"unavailable: engine config not readable ({type(err).__name__}: {err})"


def pool_blocks_expected(
    layout: KVCacheLayout, prompt_tokens: int, completion_tokens: Sequence[int], *, shared_prompt: bool = True
) -> int:
    """Block ids a request of ``len(completion_tokens)`` samples holds once every sample has
    reached its final length: the prompt's full blocks once (prefix caching shares them) plus
    each sample's own blocks; ``shared_prompt=False`` counts every sample's prompt.

    Examples
    --------
    >>> layout = kv_layout(["full"] * 2, block_size=16, token_bytes=64)
    >>> pool_blocks_expected(layout, 40, [10, 30]), pool_blocks_expected(layout, 40, [10, 30], shared_prompt=False)
    (7, 9)
    """
    if not shared_prompt:
        return sum(layout.blocks_held(prompt_tokens + g) for g in completion_tokens)
    full_prompt_blocks = prompt_tokens // layout.block_size
    total = 0
    for kind, window, _ in layout.groups:
        held = [layout._group_blocks(kind, window, prompt_tokens + g) for g in completion_tokens]
        # each sample's own blocks, minus its copy of the prompt's full blocks still held,
        # plus those shared blocks once (the union over samples)
        shared = [max(0, full_prompt_blocks - first) for first, _ in held]
        total += sum(n for _, n in held) - sum(shared) + max(shared, default=0)
    return total
