"""Forward-pass FLOPs: prefill and decode, from a :class:`~planner.costs.spec.ModelSpec`.

One forward pass that appends ``n`` new tokens to a cache of ``p`` tokens costs

.. math::

    F = 2 \\, (N_{mm} - V h) \\, n + 2 V h \\, n_{logits} + \\sum_{l} a_l \\, K_l

* ``N_mm`` — :attr:`ModelSpec.matmul_params_active`, the weight entries one token multiplies by
  (the active experts only, plus the LM head ``V h``); each costs a multiply and an add, the
  ``2N`` of Kaplan et al. 2020 (Table 1) for the non-attention part. Norms, biases,
  activations and the embedding lookup are not matmuls and are left out (< 0.1% at scale).
* ``n_logits`` — positions whose logits are computed: 1 per sequence in generation (HF
  ``generate`` and vLLM keep only the last prefill position), ``n`` in a plain forward.
* ``a_l K_l`` — attention: ``a_l`` = :meth:`ModelSpec.attention_flops_per_key` (``4 H d``
  for MHA/GQA, PaLM appendix B: ``12 L H Q T`` training FLOPs per token = 3 x forward) times
  ``K_l``, the (query, key) pairs of layer ``l``:

  - ``attention="causal"`` (default): query ``i`` of the ``n`` new tokens sees ``p + i`` keys,
    ``K = n p + n (n + 1) / 2``: the work FlashAttention-style kernels do (masked blocks skipped);
  - ``attention="full"``: ``K = n (p + n)``, the whole score rectangle, which is what eager
    attention and ``torch.utils.flop_counter.FlopCounterMode`` count;
  - a sliding-window layer caps each query's keys at its window;
  - block top-k sparse attention (:attr:`ModelSpec.sparse`) caps the keys of a forward with
    ONE new token (a decode step: the attention function runs sparse only then) at
    :attr:`ModelSpec.attended_cap` = ``(attn_blocks + 1) * block_size``; a prefill stays dense.

  Decode (``n = 1``) is the same under both. With MLA and ``mla="hf"`` (transformers >= 5 caches
  the latent and re-expands the keys and values of every cached token through ``kv_b_proj`` on
  each forward) ``2 * kv_b * p`` more FLOPs are added per forward.

Every function accepts numpy arrays (elementwise) as well as scalars.
"""

from __future__ import annotations

import numpy as np

from .spec import ModelSpec

__all__ = ["forward_flops", "prefill_flops", "decode_flops", "token_flops", "sum_capped"]


def sum_capped(start, count, cap):
    """``sum_{i=1..count} min(start + i, cap)`` (``cap=None``: no cap), elementwise, as float.

    The number of keys seen by ``count`` consecutive queries after ``start`` cached tokens
    when a sliding window holds at most ``cap``.

    Examples
    --------
    >>> float(sum_capped(2, 3, None)), float(sum_capped(2, 3, 4))
    (12.0, 11.0)
    """
    start = np.asarray(start, dtype=float)
    count = np.asarray(count, dtype=float)
    if cap is None:
        return count * start + count * (count + 1) / 2
    k = np.clip(cap - start, 0, count)
    return k * start + k * (k + 1) / 2 + (count - k) * cap


def _keys(spec: ModelSpec, new_tokens, past_tokens, attention: str):
    """Sum over layers of ``a_l K_l`` divided out: returns (full-layer K, sliding-layer K)."""
    n = np.asarray(new_tokens, dtype=float)
    p = np.asarray(past_tokens, dtype=float)
    if attention == "causal":
        full = sum_capped(p, n, None)
        slid = sum_capped(p, n, spec.sliding_window) if spec.num_sliding_layers else 0.0
    elif attention == "full":
        full = n * (p + n)
        slid = n * np.minimum(p + n, spec.sliding_window) if spec.num_sliding_layers else 0.0
    else:
        raise ValueError(f"attention must be 'causal' or 'full', got {attention!r}")
    if spec.sparse is not None:  # one new token is a decode step: sparse
        cap, slid_cap = spec.decode_key_caps
        full = np.where(n == 1, np.minimum(p + 1, cap), full)
        slid = np.where(n == 1, np.minimum(p + 1, slid_cap), slid) if spec.num_sliding_layers else 0.0
    return full, slid


def forward_flops(
    spec: ModelSpec,
    new_tokens,
    past_tokens=0,
    *,
    logits_tokens=None,
    attention: str = "causal",
    mla: str = "absorbed",
):
    """FLOPs of one forward pass of one sequence: ``new_tokens`` appended to ``past_tokens`` cached.

    Parameters
    ----------
    spec : the model.
    new_tokens, past_tokens : tokens computed now, and tokens already in the KV cache.
    logits_tokens : positions whose logits are computed (default: 1 if ``new_tokens > 0``, as in
        generation; pass ``new_tokens`` for a plain forward that returns every position's logits).
    attention : ``"causal"`` or ``"full"`` key counting (module docstring).
    mla : for MLA models, ``"absorbed"`` (serving engines' decode), ``"expanded"`` (cache of
        expanded K/V) or ``"hf"`` (transformers: latent cache re-expanded on every forward).

    Returns
    -------
    FLOPs (float, or an array when inputs are arrays).

    Examples
    --------
    >>> from planner.costs import ModelSpec
    >>> spec = ModelSpec.from_catalog("llama-3.1-8b")
    >>> f = forward_flops(spec, 1, 0)  # one decode token at an empty context
    >>> round(f / spec.matmul_params_active, 3)  # ~2 FLOPs per active matmul parameter
    2.0
    """
    n = np.asarray(new_tokens, dtype=float)
    p = np.asarray(past_tokens, dtype=float)
    head = float(spec.vocab_size * spec.hidden_size)
    logits = np.minimum(n, 1.0) if logits_tokens is None else np.asarray(logits_tokens, dtype=float)
    linear = 2.0 * (spec.matmul_params_active - head) * n + 2.0 * head * logits
    full_keys, slid_keys = _keys(spec, n, p, attention)
    a = spec.attention_flops_per_key("expanded" if mla == "hf" else mla)
    n_slid = spec.num_sliding_layers
    attn = a * ((spec.num_layers - n_slid) * full_keys + n_slid * slid_keys)
    extra = 0.0
    if spec.attention == "MLA" and mla == "hf":
        extra = 2.0 * sum(la.kv_up_matmul for la in spec.layers) * p  # re-expansion of cached latents
    out = linear + attn + extra
    return float(out) if np.ndim(out) == 0 else out


def prefill_flops(
    spec: ModelSpec, prompt_tokens, past_tokens=0, *, attention: str = "causal", mla: str = "absorbed"
):
    """FLOPs to prefill ``prompt_tokens`` on top of ``past_tokens`` cached, logits of the last
    position only (generation): :func:`forward_flops` with ``logits_tokens=1``."""
    return forward_flops(spec, prompt_tokens, past_tokens, attention=attention, mla=mla)


def decode_flops(spec: ModelSpec, context_tokens, gen_tokens, *, mla: str = "absorbed"):
    """FLOPs to generate ``gen_tokens`` tokens one at a time after ``context_tokens`` of context.

    .. math::

        F = \\sum_{j=1}^{G} \\Big[ 2 N_{mm} + \\sum_l a_l \\min(C + j, W_l) \\Big]
          = 2 N_{mm} G + \\sum_l a_l \\, S_l(C, G)

    where step ``j`` attends to the ``C + j - 1`` cached tokens and itself, and ``S_l`` is
    :func:`sum_capped`. ``W_l`` is the layer's cap on the keys of a decode step
    (:attr:`ModelSpec.decode_key_caps`: a sliding window, and with block top-k sparse
    attention ``(attn_blocks + 1) * block_size``; none for a dense full-attention layer). With ``mla="hf"``, ``2 kv_b (C + j - 1)`` per step is added (the
    re-expansion of cached latents).

    Examples
    --------
    >>> from planner.costs import ModelSpec
    >>> spec = ModelSpec.from_catalog("llama-3.1-8b")
    >>> one_by_one = sum(forward_flops(spec, 1, 100 + j) for j in range(10))
    >>> abs(decode_flops(spec, 100, 10) - one_by_one) < 1e-6 * one_by_one
    True
    """
    c = np.asarray(context_tokens, dtype=float)
    g = np.asarray(gen_tokens, dtype=float)
    linear = 2.0 * spec.matmul_params_active * g
    a = spec.attention_flops_per_key("expanded" if mla == "hf" else mla)
    n_slid = spec.num_sliding_layers
    cap, slid_cap = spec.decode_key_caps
    full = sum_capped(c, g, cap)
    slid = sum_capped(c, g, slid_cap) if n_slid else 0.0
    attn = a * ((spec.num_layers - n_slid) * full + n_slid * slid)
    extra = 0.0
    if spec.attention == "MLA" and mla == "hf":
        extra = 2.0 * sum(la.kv_up_matmul for la in spec.layers) * (g * c + g * (g - 1) / 2)
    out = linear + attn + extra
    return float(out) if np.ndim(out) == 0 else out


def token_flops(spec: ModelSpec, prompt_tokens, completion_tokens, calls=1, *, mla: str = "absorbed"):
    """FLOPs of a measured row of the samples table: ``prompt_tokens`` prefilled and
    ``completion_tokens`` generated over ``calls`` equal calls (each call prefills
    ``prompt_tokens / calls`` and then generates ``completion_tokens / calls``).

    The linear (``2N``) part is exact whatever the calls looked like; the attention part assumes
    the even split (multi-call strategies store summed prompts and completions per row).
    Returns ``(prefill_flops, decode_flops)``.
    """
    k = np.maximum(np.asarray(calls, dtype=float), 1.0)
    p = np.asarray(prompt_tokens, dtype=float) / k
    g = np.asarray(completion_tokens, dtype=float) / k
    pre = k * prefill_flops(spec, p, 0, mla=mla)
    dec = k * decode_flops(spec, p, g, mla=mla)
    return pre, dec
