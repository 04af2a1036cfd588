"""Block top-k attention as a ``transformers`` attention function (the setting and its rules:
:mod:`profiling.backends.sparse`).

:func:`enable_sparse_attention` registers :func:`block_topk_attention` under :data:`NAME` in
transformers' ``AttentionInterface`` (and sdpa's mask builder under the same name in its
``AttentionMaskInterface``, so the function receives sdpa's masks), stores the setting on the
model config (``config.ttc_sparse_attention``, read by the function through ``module.config``)
and selects it with ``model.set_attn_implementation(NAME)``. A forward with more than one
query position (the prefill) runs transformers' own sdpa attention unchanged; a forward with
one query position (a decode step) runs :func:`block_topk_decode`.

This implementation measures ACCURACY: to score the blocks it computes ``q . k`` for every
cached key (exact block maxima), so on the hf backend it saves no time; a sparse kernel would
read per-block key summaries instead (Quest-style), which the cost model does not charge. A
faster decode path (e.g. a lab engine that keeps its own KV tensors) calls
:func:`block_topk_decode` directly with its query ``(B, H, 1, d)``, keys and values
``(B, H_kv, T, d)`` and a ``(B, T)`` mask of real (non-padding) tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .sparse import SparseAttention

if TYPE_CHECKING:
    import torch

__all__ = [
    "NAME",
    "CONFIG_KEY",
    "block_topk_attention",
    "block_topk_decode",
    "select_blocks",
    "enable_sparse_attention",
]

#: the name the function is registered under (``config._attn_implementation``)
NAME = "ttc_block_topk"
#: the model-config attribute holding the setting (``SparseAttention.to_dict()``)
CONFIG_KEY = "ttc_sparse_attention"


def select_blocks(
    scores: torch.Tensor, real: torch.Tensor, attn_blocks: int, block_size: int
) -> torch.Tensor:
    """Which keys each head attends to: ``(B, H, T)`` booleans from scores ``(B, H, T)``
    (``q . k`` of each key) and ``real`` ``(B, T)`` (False at padding).

    A row's real tokens are numbered from 0 and cut into blocks of ``block_size``; a block's
    score is the max of its keys' scores; the block holding the row's last real token (the
    token being decoded) is always kept, and of the others the ``attn_blocks`` best (exact
    ties are broken by ``torch.topk``, deterministically on one device).
    """
    import torch

    pos = (real.long().cumsum(-1) - 1).clamp(min=0)
    block = (pos // block_size).unsqueeze(1).expand_as(scores)  # (B, H, T)
    n_blocks = int(block.max()) + 1
    masked = scores.float().masked_fill(~real.unsqueeze(1), float("-inf"))
    best = torch.full((*scores.shape[:2], n_blocks), float("-inf"), device=scores.device)
    best = best.scatter_reduce(-1, block, masked, reduce="amax", include_self=True)
    recent = (real.long().sum(-1) - 1).clamp(min=0) // block_size  # (B,)
    best.scatter_(-1, recent.view(-1, 1, 1).expand(-1, best.shape[1], 1), float("inf"))
    top = best.topk(min(attn_blocks + 1, n_blocks), dim=-1).indices
    chosen = torch.zeros_like(best, dtype=torch.bool).scatter_(-1, top, True)
    return chosen.gather(-1, block) & real.unsqueeze(1)


def block_topk_decode(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    real: torch.Tensor,
    setting: SparseAttention,
    scaling: float | None = None,
) -> torch.Tensor:
    """Block top-k attention of one query position: ``query`` ``(B, H, 1, d)``, ``key`` and
    ``value`` ``(B, H_kv, T, d)`` (grouped-query heads share a KV head, each query head picks
    its own blocks), ``real`` ``(B, T)``. Returns ``(B, 1, H, d)`` (the layout transformers'
    attention functions return), in the query's dtype; scores and softmax in float32."""
    import torch

    b, h, _, d = query.shape
    h_kv, t = key.shape[1], key.shape[2]
    scale = d**-0.5 if scaling is None else scaling
    q = query.float().reshape(b, h_kv, h // h_kv, d)
    scores = torch.einsum("bkgd,bktd->bkgt", q, key.float()).reshape(b, h, t) * scale
    keep = select_blocks(scores, real, setting.attn_blocks, setting.block_size)
    probs = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1)
    out = torch.einsum("bkgt,bktd->bkgd", probs.reshape(b, h_kv, h // h_kv, t), value.float())
    return out.reshape(b, 1, h, value.shape[-1]).to(query.dtype)


def _real_tokens(mask: torch.Tensor | None, batch: int, length: int, device: Any) -> torch.Tensor:
    """``(B, T)`` booleans of the tokens a decode query may see, from the mask sdpa's mask
    builder gives (None: no padding; booleans: True = attend; floats: 0 = attend)."""
    import torch

    if mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=device)
    m = mask[..., -1, :length]  # the one query row
    m = m if m.dtype == torch.bool else m > torch.finfo(m.dtype).min / 2
    return m.reshape(m.shape[0], -1, length)[:, 0].expand(batch, length)


def block_topk_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The registered attention function (module docstring): sdpa for the prefill, block top-k
    (:func:`block_topk_decode`) for a decode step. Sliding windows and logit soft-capping are
    refused (the lab's and most served models use neither)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    for unsupported in ("sliding_window", "softcap"):
        if kwargs.get(unsupported) is not None:
            raise ValueError(
                f"block top-k sparse attention does not support {unsupported} (model {type(module).__name__})"
            )
    if query.shape[2] != 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    setting = SparseAttention.from_dict(getattr(module.config, CONFIG_KEY), "model config")
    real = _real_tokens(attention_mask, query.shape[0], key.shape[2], query.device)
    return block_topk_decode(query, key, value, real, setting, scaling), None


def enable_sparse_attention(model: Any, setting: SparseAttention, name: str = "model") -> None:
    """Make ``model`` decode with block top-k attention (module docstring); refuses a setting
    whose blocks cover the model's whole context (:meth:`SparseAttention.check_context`)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    cfg = model.config
    setting.check_context(
        getattr(cfg, "max_position_embeddings", None), getattr(cfg, "name_or_path", "") or "model"
    )
    AttentionInterface.register(NAME, block_topk_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    setattr(cfg, CONFIG_KEY, setting.to_dict())
    model.set_attn_implementation(NAME)
