"""A decode loop for small Llama-family models at the speed of their arithmetic.

For models as small as the lab's (0.1-1M parameters), one step of ``transformers``' generic
``generate`` spends most of its time in Python (cache objects, mask building, logits
processors, stopping criteria) rather than in the model's matmuls. This module runs the same
model with as little per-step work as possible:

* **Prefill once per prompt.** The batch's distinct prompts (left-padded) go through the
  model's own ``forward`` once; their keys and values are then copied into each of the
  prompt's ``n`` rows of the decode cache.
* **A preallocated KV cache** for the whole batch (``rows x kv_heads x (prompt + max_new - 1)
  x head_dim`` per layer, written in place, never concatenated), with an additive mask that
  hides the left padding.
* **A decode step of the model's own modules** (embedding, norms, output projection, MLP or
  the MoE block, rotary tables from the model's rotary embedding) around attention over the
  cache: the q/k/v projections are fused into one matmul and attention is two batched matmuls
  per layer (``scores = q K^T * scale + mask``, ``softmax(scores) V``), the eager attention
  of ``transformers`` on one new token.
* **Finished rows leave the batch.** When at most 3/4 of the batch's rows are still running,
  the cache and the row state are compacted to the running rows.

Sampling and log-probs are :mod:`profiling.backends._sampling` (the hf backend's): each
request's generator is consumed exactly as the hf backend consumes it, so given the same
logits the same tokens are drawn. The logits agree with the hf backend's to float rounding
(about 1e-6 here), not bit for bit: the summation orders of the two attentions differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._sampling import RowSettings, draw_uniforms, sample_rows

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "unsupported_reason",
    "estimate_params",
    "Decoder",
    "DecodeOutput",
    "decode",
]

#: ``config.model_type`` values whose decoder layers this module runs (same layer layout:
#: pre-norm attention with q/k/v/o projections and rotary positions, pre-norm MLP or MoE block)
SUPPORTED_MODEL_TYPES = ("llama", "mixtral")
#: rotary embeddings whose frequencies do not depend on the sequence length (a table suffices)
_STATIC_ROPE = ("default", "linear", "llama3")
#: compact the batch when at most this share of its rows is still running
COMPACT_AT = 0.75


def unsupported_reason(config: dict) -> str | None:
    """Why a checkpoint's ``config.json`` (as a dict) cannot run on this decoder, or None.

    Examples
    --------
    >>> unsupported_reason({"model_type": "gpt2"})
    "model type 'gpt2' (supported: llama, mixtral)"
    >>> unsupported_reason({"model_type": "llama", "num_attention_heads": 4, "hidden_size": 64}) is None
    True
    """
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        return f"model type {model_type!r} (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
    if (config.get("pretraining_tp") or 1) != 1:
        return f"pretraining_tp={config['pretraining_tp']} (sliced projections)"
    if config.get("sliding_window"):
        return f"sliding-window attention ({config['sliding_window']} tokens)"
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in _STATIC_ROPE:
        return f"rotary embedding {rope_type!r} (supported: {', '.join(_STATIC_ROPE)})"
    return None


def estimate_params(config: dict) -> int:
    """Parameters of a Llama/Mixtral checkpoint from its ``config.json`` (norms left out).

    Examples
    --------
    >>> estimate_params({"vocab_size": 82, "hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
    ...                  "num_key_value_heads": 2, "intermediate_size": 512, "tie_word_embeddings": True})
    993536
    """
    hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    experts = int(config.get("num_local_experts") or 1)
    router = hidden * experts if config.get("num_local_experts") else 0
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    mlp = 3 * hidden * int(config["intermediate_size"]) * experts + router
    embeddings = int(config["vocab_size"]) * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return layers * (attention + mlp) + embeddings


@dataclass
class _Layer:
    """One decoder layer's weights as the step uses them (views of the model's parameters,
    except the fused q/k/v and gate/up weights, which are copies made once)."""

    module: Any  # the model's decoder layer (its MoE block is called as a module)
    norm1: tuple[Any, float]  # input RMSNorm (weight, eps)
    qkv: tuple[Any, Any]  # fused q/k/v projection (weight, bias or None)
    scale: float  # attention scaling (head_dim ** -0.5)
    out: tuple[Any, Any]  # o_proj (weight, bias or None)
    norm2: tuple[Any, float]  # post-attention RMSNorm
    gate_up: tuple[Any, Any] | None  # dense SwiGLU: fused gate/up projection; None for an MoE block
    down: tuple[Any, Any] | None
    act: Any


def _norm(module: Any) -> tuple[Any, float]:
    return module.weight, float(getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6)))


def _fuse(*linears: Any) -> tuple[Any, Any]:
    import torch

    weight = torch.cat([m.weight for m in linears])
    bias = None if any(m.bias is None for m in linears) else torch.cat([m.bias for m in linears])
    return weight, bias


class Decoder:
    """A loaded ``LlamaForCausalLM``/``MixtralForCausalLM`` arranged for cached decoding.

    Uses the model's parameters (a dense MLP's gate and up projections, and the q/k/v
    projections, fused into one matmul each: copies made once), its MoE blocks as modules, and
    a table of rotary cosines and sines from its rotary embedding.
    """

    def __init__(self, model: Any) -> None:
        import torch

        cfg = model.config
        self.model = model
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads)
        self.layers: list[_Layer] = []
        with torch.no_grad():
            for layer in model.model.layers:
                a, mlp = layer.self_attn, layer.mlp
                dense = all(hasattr(mlp, name) for name in ("gate_proj", "up_proj", "down_proj"))
                self.layers.append(
                    _Layer(
                        module=layer,
                        norm1=_norm(layer.input_layernorm),
                        qkv=_fuse(a.q_proj, a.k_proj, a.v_proj),
                        scale=float(a.scaling),
                        out=(a.o_proj.weight, a.o_proj.bias),
                        norm2=_norm(layer.post_attention_layernorm),
                        gate_up=_fuse(mlp.gate_proj, mlp.up_proj) if dense else None,
                        down=(mlp.down_proj.weight, mlp.down_proj.bias) if dense else None,
                        act=mlp.act_fn if dense else None,
                    )
                )
        self.final_norm = _norm(model.model.norm)
        self.head = (model.lm_head.weight, model.lm_head.bias)
        self._cos = self._sin = None

    @property
    def dtype(self) -> Any:
        return self.layers[0].qkv[0].dtype

    @property
    def device(self) -> Any:
        return self.layers[0].qkv[0].device

    def prepare_rotary(self, positions: int) -> None:
        """Make the rotary table cover positions ``0..positions-1`` (from the model's rotary
        embedding; the sines are stored with the sign of ``rotate_half`` folded in)."""
        import torch

        if self._cos is not None and self._cos.shape[0] >= positions:
            return
        size = max(positions, int(getattr(self.model.config, "max_position_embeddings", 0) or 0))
        ids = torch.arange(size, device=self.device)[None]
        cos, sin = self.model.model.rotary_emb(torch.zeros(1, dtype=self.dtype, device=self.device), ids)
        half = self.head_dim // 2
        self._cos, self._sin = cos[0], torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)

    def prefill(self, ids: Any, mask: Any) -> tuple[list[Any], list[Any], Any]:
        """The model's own forward over left-padded prompts: per layer keys and values
        (prompts x kv_heads x width x head_dim) and the last position's logits (prompts x vocab).
        Positions count real tokens only (padding gets position 1), as ``generate`` does."""
        positions = mask.long().cumsum(-1) - 1
        positions.masked_fill_(mask == 0, 1)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
        )
        cache = getattr(out, "cache", None)
        if cache is None:  # transformers 4 names it past_key_values
            cache = out.past_key_values
        if hasattr(cache, "layers"):
            keys, values = [c.keys for c in cache.layers], [c.values for c in cache.layers]
        else:
            keys, values = list(cache.key_cache), list(cache.value_cache)
        return keys, values, out.logits[:, -1]

    def step(self, tokens: Any, positions: Any, cache: KVCache, column: int) -> Any:
        """Logits (rows x vocab) of one new token per row at ``positions``; its keys and values
        are written to ``cache`` column ``column``, and it attends to columns ``0..column``
        (:meth:`prepare_rotary` must cover ``positions``)."""
        import torch
        from torch.nn.functional import linear, rms_norm

        rows, heads, hkv, hd = tokens.shape[0], self.heads, self.kv_heads, self.head_dim
        width, length = self.model.config.hidden_size, column + 1
        # rotary on q and k at once: x * cos + rotate_half(x) * sin, rotate_half as a flip of
        # the two halves with the sign folded into the stored sines
        cos, sin = self._cos[positions][:, None], self._sin[positions][:, None]
        bias = cache.bias[:, :, :length]
        h = self.model.model.embed_tokens(tokens)
        for i, layer in enumerate(self.layers):
            qkv = linear(rms_norm(h, (width,), *layer.norm1), *layer.qkv)
            qk = qkv[:, : (heads + hkv) * hd].view(rows, heads + hkv, 2, hd // 2)
            qk = qk.view(rows, heads + hkv, hd) * cos + qk.flip(2).view(rows, heads + hkv, hd) * sin
            cache.keys[i][:, :, column] = qk[:, heads:]
            cache.values[i][:, :, column] = qkv[:, (heads + hkv) * hd :].view(rows, hkv, hd)
            keys = cache.keys[i].view(rows * hkv, cache.capacity, hd)[:, :length]
            values = cache.values[i].view(rows * hkv, cache.capacity, hd)[:, :length]
            q = qk[:, :heads].reshape(rows * hkv, heads // hkv, hd)
            scores = torch.baddbmm(bias, q, keys.transpose(1, 2), alpha=layer.scale)
            # softmax in float32 (as transformers' eager attention), back to the model's dtype
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)
            h = h + linear(torch.bmm(probs, values).view(rows, heads * hd), *layer.out)
            x = rms_norm(h, (width,), *layer.norm2)
            if layer.gate_up is not None:
                gate, up = linear(x, *layer.gate_up).chunk(2, dim=-1)
                h = h + linear(layer.act(gate) * up, *layer.down)
            else:
                moe = layer.module.mlp(x[:, None])
                h = h + (moe[0] if isinstance(moe, tuple) else moe)[:, 0]
        return linear(rms_norm(h, (width,), *self.final_norm), *self.head)


class KVCache:
    """Preallocated keys and values of a batch: per layer ``rows x kv_heads x capacity x
    head_dim``, and an additive mask per (row, kv head) hiding the left padding."""

    def __init__(self, decoder: Decoder, rows: int, capacity: int) -> None:
        import torch

        shape = (rows, decoder.kv_heads, capacity, decoder.head_dim)
        kw = {"dtype": decoder.dtype, "device": decoder.device}
        self.keys = [torch.empty(shape, **kw) for _ in decoder.layers]
        self.values = [torch.empty(shape, **kw) for _ in decoder.layers]
        self.bias = torch.zeros(rows * decoder.kv_heads, 1, capacity, **kw)
        self.capacity, self.kv_heads = capacity, decoder.kv_heads

    @property
    def rows(self) -> int:
        return self.keys[0].shape[0]

    def fill_prompts(self, keys: list[Any], values: list[Any], mask: Any, counts: Any) -> None:
        """Copy each prompt's keys, values and padding mask into its ``counts`` rows."""
        width = mask.shape[1]
        for mine, theirs in zip(self.keys + self.values, keys + values, strict=True):
            mine[:, :, :width] = theirs.repeat_interleave(counts, dim=0)
        pad = (mask == 0).repeat_interleave(counts, dim=0).repeat_interleave(self.kv_heads, dim=0)
        self.bias[:, 0, :width].masked_fill_(pad, float("-inf"))

    def keep(self, index: Any, filled: int) -> None:
        """Keep rows ``index`` only (a 1-D index tensor), copying their first ``filled`` columns."""
        import torch

        def take(t: Any) -> Any:
            out = torch.empty((len(index), *t.shape[1:]), dtype=t.dtype, device=t.device)
            out[:, :, :filled] = t[:, :, :filled].index_select(0, index)
            return out

        self.keys = [take(t) for t in self.keys]
        self.values = [take(t) for t in self.values]
        bias = self.bias.view(-1, self.kv_heads, self.capacity)
        self.bias = bias.index_select(0, index).view(-1, 1, self.capacity)


@dataclass
class DecodeOutput:
    """What one decoded batch produced, per original row."""

    tokens: list[list[int]]  # generated tokens (after a row stopped: padding)
    finish_len: list[int]  # tokens generated up to and including the stopping one
    finish_reason: list[str]  # "stop" (EOS or stop string) or "length"
    logprobs: list[list[float]]  # raw log-prob of each generated token
    steps: int  # decode steps run (sampling calls)
    first_token_time: float | None  # perf_counter when the first token was drawn
    compactions: list[int] = field(default_factory=list)  # rows kept at each compaction


def decode(
    decoder: Decoder,
    ids: Any,
    mask: Any,
    counts: Any,
    settings: RowSettings,
    max_new: list[int],
    eos_ids: set[int],
    stop_hit: Callable[[int, list[int]], bool] | None = None,
    sync: Callable[[], None] | None = None,
) -> DecodeOutput:
    """Generate for a batch: prompt ``p`` (row ``p`` of the left-padded ``ids``/``mask``)
    gets ``counts[p]`` rows; row ``r`` samples with ``settings`` and stops at an EOS token,
    when ``stop_hit(r, its tokens so far)`` is true (rows with stop strings: pass None when
    there are none) or after ``max_new[r]`` tokens, with the hf backend's reasons."""

    device = ids.device
    width, rows, steps_max = int(ids.shape[1]), int(counts.sum()), max(max_new)
    keys, values, logits = decoder.prefill(ids, mask)
    decoder.prepare_rotary(int(mask.sum(dim=1).max()) + steps_max)
    cache = KVCache(decoder, rows, width + steps_max - 1)
    cache.fill_prompts(keys, values, mask, counts)
    del keys, values
    state = _Rows(settings, rows, max_new, eos_ids, device)
    scores = logits.repeat_interleave(counts, dim=0)
    positions = mask.sum(dim=1).repeat_interleave(counts)  # the first new token's position
    first_token_time, compactions, step = None, [], 0
    for step in range(steps_max):
        chosen = state.sample(scores, step)
        if first_token_time is None:
            if sync is not None:
                sync()
            first_token_time = time.perf_counter()
        if state.finish(chosen, step, stop_hit):
            alive = int(state.running.sum())
            if alive == 0:
                break
            if alive <= COMPACT_AT * cache.rows:
                keep = state.running.nonzero().flatten()
                cache.keep(keep, width + step)
                state.keep(keep)
                positions, chosen, scores = positions[keep], chosen[keep], scores[keep]
                compactions.append(alive)
        if step + 1 == steps_max:
            break
        scores = decoder.step(chosen, positions, cache, width + step)
        positions = positions + 1
    return DecodeOutput(
        state.tokens.tolist(),
        state.finish_len,
        state.reason,
        state.logprobs.tolist(),
        step + 1,
        first_token_time,
        compactions,
    )


class _Rows:
    """Per-row state of :func:`decode`: which original row each batch row is, what each has
    generated, and when and why each stopped."""

    def __init__(self, settings: RowSettings, rows: int, max_new: list[int], eos_ids: set[int], device: Any):
        import torch

        self.settings, self.row_settings, self.rows, self.max_new = settings, settings, rows, max_new
        self.batch = torch.arange(rows, device=device)  # original row of each batch row
        self.running = torch.ones(rows, dtype=torch.bool, device=device)
        self.limit = torch.tensor(max_new, device=device)
        self.eos = torch.tensor(sorted(eos_ids), device=device, dtype=torch.long)
        self.tokens = torch.zeros(rows, max(max_new), dtype=torch.long, device=device)
        self.logprobs = torch.zeros(rows, max(max_new), device=device)
        self.finish_len, self.reason = [-1] * rows, ["length"] * rows
        self.history: dict[int, list[int]] = {}  # tokens so far of rows checked for stop strings

    def sample(self, scores: Any, step: int) -> Any:
        """Draw each batch row's token of ``step`` and record it with its log-prob."""
        u = None
        if self.settings.hot:
            done = self.finish_len
            u = draw_uniforms(self.settings, self.rows, scores.device, skip=lambda a, b: min(done[a:b]) >= 0)
            u = u[self.batch]
        chosen, logprobs = sample_rows(scores, self.row_settings, u)
        self.tokens[self.batch, step] = chosen
        self.logprobs[self.batch, step] = logprobs
        return chosen

    def finish(self, chosen: Any, step: int, stop_hit: Callable | None) -> bool:
        """Mark the rows that stop after ``chosen``: EOS, a stop string, else their length cap
        (the hf backend's order of reasons). Returns whether any did."""
        import torch

        eos_now = self.running & torch.isin(chosen, self.eos)
        stop_now = torch.zeros_like(eos_now)
        if stop_hit is not None:
            tokens = chosen.tolist()
            for b in (self.running & ~eos_now).nonzero().flatten().tolist():
                r = int(self.batch[b])
                self.history.setdefault(r, []).append(tokens[b])
                stop_now[b] = stop_hit(r, self.history[r])
        ended = eos_now | stop_now | (self.running & (self.limit[self.batch] <= step + 1))
        if not bool(ended.any()):
            return False
        stopped = (eos_now | stop_now).tolist()
        for b in ended.nonzero().flatten().tolist():
            r = int(self.batch[b])
            self.finish_len[r], self.reason[r] = step + 1, "stop" if stopped[b] else "length"
        self.running &= ~ended
        return True

    def keep(self, index: Any) -> None:
        """Keep batch rows ``index`` only."""
        self.batch, self.running = self.batch[index], self.running[index]
        self.row_settings = self.settings.take(self.batch)
