"""KV-cache memory, memory traffic per step, and effective FLOPs.

KV cache: a sequence with ``T`` tokens of context holds, per layer, ``min(T, W_l)`` tokens
(``W_l`` = the sliding window, or unbounded) of :attr:`ModelSpec.kv_bytes_per_token_per_layer`
bytes each.

Memory traffic of one decode step over a batch of ``B`` sequences (activations ignored: they
are ``O(B h)`` per layer, tiny next to weights and KV at decode):

.. math::

    M = w \\Big[ \\sum_l (A_l + D_l + O_l + E_l(B) X_l) + V h \\Big] + \\sum_{b=1}^{B} \\mathrm{KV}(T_b)

* weights are read once per step for the whole batch: attention ``A_l``, dense MLP / shared
  experts / router ``D_l``, norms and biases ``O_l``, LM head ``V h``, at ``w`` bytes per
  parameter; of a MoE layer's ``E`` experts of ``X_l`` weights each, only those touched by
  the batch's ``B`` tokens are read, ``E_l(B)`` of :func:`experts_touched`;
* each sequence reads its own KV cache (paged attention does not deduplicate shared
  prefixes across sequences) and writes one token's worth; with block top-k sparse attention
  (:attr:`ModelSpec.sparse`) a decode step reads only the tokens it attends to,
  :func:`kv_attended_bytes`, while the cache it HOLDS stays whole (:func:`kv_cache_bytes`:
  nothing is evicted).

Effective FLOPs in the sense of Kinetics (Sadhukhan et al. 2025, "Kinetics: Rethinking
Test-Time Scaling Laws"): ``eFLOPs = FLOPs + bytes * I``, with ``I`` the hardware's FLOP/byte
ratio (:attr:`HardwareSpec.flops_per_byte`), so memory-bound work is charged in the
currency of compute.
"""

from __future__ import annotations

import numpy as np

from .flops import sum_capped
from .spec import ModelSpec

__all__ = [
    "kv_cache_bytes",
    "kv_attended_bytes",
    "kv_read_bytes",
    "experts_touched",
    "weight_bytes_read",
    "decode_step_bytes",
    "effective_flops",
]


def kv_cache_bytes(spec: ModelSpec, context_tokens):
    """KV-cache bytes of one sequence holding ``context_tokens`` tokens.

    .. math:: \\mathrm{KV}(T) = b \\sum_l \\min(T, W_l)

    with ``b`` = :attr:`ModelSpec.kv_bytes_per_token_per_layer` (``2 n_kv d`` values, or
    ``kv_lora + rope`` for MLA, times the KV dtype bytes).

    Examples
    --------
    >>> from planner.costs import ModelSpec
    >>> kv_cache_bytes(ModelSpec.from_catalog("llama-3-70b"), 1000)
    327680000.0
    """
    t = np.asarray(context_tokens, dtype=float)
    b = spec.kv_bytes_per_token_per_layer
    n_slid = spec.num_sliding_layers
    out = b * (spec.num_layers - n_slid) * t
    if n_slid:
        out = out + b * n_slid * np.minimum(t, spec.sliding_window)
    return float(out) if np.ndim(out) == 0 else out


def kv_attended_bytes(spec: ModelSpec, context_tokens):
    """KV bytes one decode step reads when the sequence holds ``context_tokens`` tokens (the
    new one included): :func:`kv_cache_bytes` with each layer's tokens capped at the keys the
    step attends to (:attr:`ModelSpec.decode_key_caps`): the whole cache for dense attention,
    at most ``(attn_blocks + 1) * block_size`` tokens with block top-k sparse attention.

    .. math:: b \\big[ L_{full} \\min(T, A) + L_{slid} \\min(T, W, A) \\big]

    Examples
    --------
    >>> from planner.costs import ModelSpec
    >>> from profiling.backends.sparse import SparseAttention
    >>> spec = ModelSpec.from_catalog("llama-3-70b")
    >>> kv_attended_bytes(spec.with_sparse(SparseAttention(3)), 1000) == kv_cache_bytes(spec, 64)
    True
    """
    t = np.asarray(context_tokens, dtype=float)
    cap, slid_cap = spec.decode_key_caps
    b = spec.kv_bytes_per_token_per_layer
    n_slid = spec.num_sliding_layers
    out = b * (spec.num_layers - n_slid) * (t if cap is None else np.minimum(t, cap))
    if n_slid:
        out = out + b * n_slid * np.minimum(t, slid_cap)
    return float(out) if np.ndim(out) == 0 else out


def kv_read_bytes(spec: ModelSpec, context_tokens, gen_tokens, *, held: bool = False):
    """KV-cache bytes one sequence reads and writes while it generates ``gen_tokens`` tokens
    after ``context_tokens`` of context: step ``j`` reads the ``C + j`` cached tokens and
    writes one, ``KV(C + j + 1)`` bytes.

    .. math:: \\sum_{j=1}^{G} \\mathrm{KV}(C + j)
              = b \\big[ L_{full} S_A(C, G) + L_{slid} S_{\\min(W, A)}(C, G) \\big]

    with ``S`` = :func:`~planner.costs.flops.sum_capped` (closed form: memory and time do not
    grow with ``G``), ``b`` = :attr:`ModelSpec.kv_bytes_per_token_per_layer` and ``A`` the
    sparse-attention cap on the tokens a step reads (none when dense). Sums of
    :func:`kv_attended_bytes` over the steps (the loop :func:`decode_step_bytes` prices one
    step of). ``held=True`` sums the KV the sequence HOLDS instead (:func:`kv_cache_bytes`,
    never capped by sparse attention): the mean a decode token keeps resident.

    Examples
    --------
    >>> from planner.costs import ModelSpec
    >>> spec = ModelSpec.from_catalog("llama-3.1-8b")
    >>> kv_read_bytes(spec, 100, 3) == sum(kv_cache_bytes(spec, 100 + j + 1) for j in range(3))
    True
    """
    b = spec.kv_bytes_per_token_per_layer
    n_slid = spec.num_sliding_layers
    cap, slid_cap = (None, spec.sliding_window) if held else spec.decode_key_caps
    out = b * (spec.num_layers - n_slid) * sum_capped(context_tokens, gen_tokens, cap)
    if n_slid:
        out = out + b * n_slid * sum_capped(context_tokens, gen_tokens, slid_cap)
    return float(out) if np.ndim(out) == 0 else out


def experts_touched(num_experts: int, experts_per_token: int, tokens):
    """Expected number of distinct experts a batch of ``tokens`` tokens routes to, in one layer.

    .. math:: E \\big[ 1 - (1 - k / E)^{B} \\big]

    ASSUMPTION: each token picks ``k`` of ``E`` experts uniformly and independently of the
    other tokens. Real routers are skewed, which touches fewer experts (this is an upper
    estimate of weight traffic); the result is ``k`` for one token and never exceeds ``E``.

    Examples
    --------
    >>> float(experts_touched(8, 2, 1)), round(float(experts_touched(8, 2, 64)), 3)
    (2.0, 8.0)
    """
    b = np.asarray(tokens, dtype=float)
    if num_experts <= 0:
        return 0.0 if np.ndim(b) == 0 else np.zeros_like(b)
    out = num_experts * (1.0 - (1.0 - experts_per_token / num_experts) ** b)
    out = np.where(b <= 0, 0.0, out)
    return float(out) if np.ndim(out) == 0 else out


def weight_bytes_read(spec: ModelSpec, batch_tokens):
    """Weight bytes read by one forward step over ``batch_tokens`` tokens (module docstring):
    all non-expert weights, the LM head, the embedding rows looked up (when untied) and the
    experts the batch touches."""
    b = np.asarray(batch_tokens, dtype=float)
    fixed = 0.0
    experts = 0.0 if np.ndim(b) == 0 else np.zeros_like(b)
    for la in spec.layers:
        fixed += la.attn_matmul + la.dense_matmul + la.other
        if la.num_experts:
            experts = experts + experts_touched(la.num_experts, la.experts_per_token, b) * la.expert_matmul
    head = spec.vocab_size * spec.hidden_size  # LM head (the embedding matrix when tied)
    rows = 0.0 if spec.tie_word_embeddings else np.minimum(b, spec.vocab_size) * spec.hidden_size
    out = spec.weight_bytes_per_param * (fixed + head + spec.params_final_norm + experts + rows)
    return float(out) if np.ndim(out) == 0 else out


def decode_step_bytes(spec: ModelSpec, batch: int, context_tokens):
    """Bytes moved by one decode step of ``batch`` sequences, each with ``context_tokens`` tokens
    of context before the step (scalar: all equal; array: one entry per sequence): weights once,
    plus each sequence's KV read (``KV(T)``, the attended tokens with sparse attention:
    :func:`kv_attended_bytes`) and one token written.

    Examples
    --------
    >>> from planner.costs import ModelSpec
    >>> spec = ModelSpec.from_catalog("llama-3.1-8b")
    >>> one = decode_step_bytes(spec, 1, 0)  # all weights but the unused embedding rows, + 1 token of KV
    >>> unused_rows = (spec.vocab_size - 1) * spec.hidden_size * spec.weight_bytes_per_param
    >>> one == spec.weight_bytes - unused_rows + spec.kv_bytes_per_token
    True
    """
    ctx = np.asarray(context_tokens, dtype=float)
    per_seq = kv_attended_bytes(spec, ctx + 1)  # read T tokens (those attended), write the new one
    kv = per_seq * batch if np.ndim(ctx) == 0 else float(np.sum(per_seq))
    return weight_bytes_read(spec, batch) + kv


def effective_flops(flops, memory_bytes, flops_per_byte: float):
    """Kinetics-style effective FLOPs, ``flops + memory_bytes * flops_per_byte`` (FLOPs).

    ``flops_per_byte`` is the hardware's peak FLOP/s over its memory bandwidth
    (:attr:`~planner.catalog.HardwareSpec.flops_per_byte`, e.g. ~295 for an H100 SXM).
    """
    out = np.asarray(flops, dtype=float) + np.asarray(memory_bytes, dtype=float) * flops_per_byte
    return float(out) if np.ndim(out) == 0 else out
