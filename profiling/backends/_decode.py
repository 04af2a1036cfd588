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


class Decoder:
    """A loaded ``LlamaForCausalLM``/``MixtralForCausalLM`` arranged for cached decoding.

    Holds references to the model's modules plus one fused q/k/v weight per layer (a copy
    of the three projections, made once) and a table of rotary cosines and sines.
    """

    def __init__(self, model: Any) -> None:
        import torch

        cfg = model.config
        self.model = model
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads)
        self.layers = []
        with torch.no_grad():
            for layer in model.model.layers:
                a = layer.self_attn
                weight = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
                biases = [a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]
                bias = None if any(b is None for b in biases) else torch.cat(biases)
                self.layers.append((layer, weight, bias, float(a.scaling)))
        self._cos = self._sin = None

    @property
    def dtype(self) -> Any:
        return self.layers[0][1].dtype

    @property
    def device(self) -> Any:
        return self.layers[0][1].device

    def rotary(self, positions: Any) -> tuple[Any, Any]:
        """Cosines and sines (rows x head_dim) at ``positions``, from the model's rotary embedding."""
        import torch

        need = int(positions.max()) + 1
        if self._cos is None or self._cos.shape[0] < need:
            size = max(need, int(getattr(self.model.config, "max_position_embeddings", 0) or 0))
            ids = torch.arange(size, device=self.device)[None]
            cos, sin = self.model.model.rotary_emb(torch.zeros(1, dtype=self.dtype, device=self.device), ids)
            self._cos, self._sin = cos[0], sin[0]
        return self._cos[positions], self._sin[positions]

    def prefill(self, ids: Any, mask: Any) -> tuple[list[Any], list[Any], Any]:
        """The model's own forward over left-padded prompts: per layer keys and values
        (prompts x kv_heads x width x head_dim) and the last position's logits (prompts x vocab).
        Positions count real tokens only (padding gets position 1), as ``generate`` does."""
        positions = mask.long().cumsum(-1) - 1
        positions.masked_fill_(mask == 0, 1)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                         logits_to_keep=1)  # fmt: skip
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
        are written to ``cache`` column ``column``, and it attends to columns ``0..column``."""
        import torch

        model = self.model.model
        rows, hkv, hd = tokens.shape[0], self.kv_heads, self.head_dim
        q_width, groups = self.heads * hd, self.heads // hkv
        cos, sin = self.rotary(positions)
        cos, sin = cos[:, None], sin[:, None]
        length = column + 1
        bias = cache.bias[:, :, :length]
        h = model.embed_tokens(tokens)
        for i, (layer, weight, qkv_bias, scale) in enumerate(self.layers):
            qkv = torch.nn.functional.linear(layer.input_layernorm(h), weight, qkv_bias)
            q = qkv[:, :q_width].view(rows, self.heads, hd)
            k = qkv[:, q_width : q_width + hkv * hd].view(rows, hkv, hd)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            cache.keys[i][:, :, column] = k
            cache.values[i][:, :, column] = qkv[:, q_width + hkv * hd :].view(rows, hkv, hd)
            keys = cache.keys[i].view(rows * hkv, cache.capacity, hd)[:, :length]
            values = cache.values[i].view(rows * hkv, cache.capacity, hd)[:, :length]
            scores = torch.baddbmm(bias, q.reshape(rows * hkv, groups, hd), keys.transpose(1, 2), alpha=scale)
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            attended = torch.bmm(probs, values).view(rows, q_width)
            h = h + layer.self_attn.o_proj(attended)
            mlp = layer.mlp(layer.post_attention_layernorm(h)[:, None])
            h = h + (mlp[0] if isinstance(mlp, tuple) else mlp)[:, 0]
        return self.model.lm_head(model.norm(h))


def _rotate_half(x: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


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
    return DecodeOutput(state.tokens.tolist(), state.finish_len, state.reason, state.logprobs.tolist(), step + 1,
                        first_token_time, compactions)  # fmt: skip


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
