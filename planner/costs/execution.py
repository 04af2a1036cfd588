"""What one execution of a workload does, in expectation over its chains' lengths: FLOPs,
decode tokens, KV bytes read, decode steps of its longest chains, peak KV (:func:`tally`).

Every quantity is a closed form in the chain length (time and memory do not grow with the
generated tokens) and an expectation over :attr:`Workload.length_distribution`:

* additive quantities (FLOPs, tokens, KV bytes read) are the atom-weighted average of the
  scalar workload at each atom's length, so each chain is priced at its own length (the
  attention terms see ``E[L^2]``, :mod:`planner.costs.lengths`);
* decode steps (what latency waits for): for a pool or hybrid of ``n`` chains, the phases of
  the workload at the length of its longest chain, ``E[max of n]``; for single-chain
  strategies the expected steps over the length;
* peak KV: :func:`kv_peak_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .flops import decode_flops, forward_flops
from .memory import kv_read_bytes
from .spec import ModelSpec
from .workload import Workload

__all__ = ["Tally", "tally", "kv_peak_bytes", "check_context"]


@dataclass(frozen=True)
class Tally:
    """Per-execution expectations (module docstring); FLOPs, tokens and bytes.

    ``prefills`` lists ``(probability, chunks, new tokens per chunk, FLOPs per chunk, context
    tokens)`` of every prefill (one per call with new prompt tokens, per length atom).
    """

    prefill_flops: float
    decode_flops: float
    decode_tokens: float
    kv_read_bytes: float
    generated_tokens: float
    prefilled_tokens: float
    decode_steps: float
    kv_peak_bytes: float
    sequences: int
    prefills: tuple[tuple[float, int, float, float, float], ...]

    @property
    def flops(self) -> float:
        """Prefill plus decode FLOPs."""
        return self.prefill_flops + self.decode_flops

    @property
    def kv_read_bytes_per_token(self) -> float:
        """Mean KV bytes one decode token reads (and, in steady state, holds for its sequence)."""
        return self.kv_read_bytes / self.decode_tokens if self.decode_tokens else 0.0

    @property
    def flops_per_decode_token(self) -> float:
        """Mean FLOPs of one decode token."""
        return self.decode_flops / self.decode_tokens if self.decode_tokens else 0.0


def tally(spec: ModelSpec, workload: Workload, *, mla: str = "absorbed", attention: str = "causal") -> Tally:
    """The per-execution expectations of ``workload`` on ``spec`` (module docstring).

    Examples
    --------
    >>> spec = ModelSpec.from_catalog("llama-3.1-8b")
    >>> mixed = tally(spec, Workload.from_strategy("pool:n=2", 0, [100, 10_000]))
    >>> mean = tally(spec, Workload.from_strategy("pool:n=2", 0, 5050))
    >>> mixed.decode_tokens == mean.decode_tokens, mixed.decode_flops > mean.decode_flops
    (True, True)
    >>> mixed.decode_steps, mean.decode_steps  # the pool waits for its 10,000-token sample
    (10000.0, 5050.0)
    """
    dist = workload.length_distribution
    pre_f = dec_f = dec_tok = kv_read = pre_tok = 0.0
    prefills = []
    for value, weight in zip(dist.values, dist.weights, strict=True):
        w = float(weight)
        for ph in workload.at_length(float(value)).phases():
            if ph.prefill_chunks and ph.prefill_tokens:
                past = ph.context_tokens - ph.prefill_tokens
                f = forward_flops(spec, ph.prefill_tokens, past, attention=attention, mla=mla)
                pre_f += w * ph.prefill_chunks * f
                pre_tok += w * ph.prefill_chunks * ph.prefill_tokens
                prefills.append(
                    (w, ph.prefill_chunks, float(ph.prefill_tokens), float(f), float(ph.context_tokens))
                )
            if ph.gen_tokens:
                dec_f += w * ph.sequences * decode_flops(spec, ph.context_tokens, ph.gen_tokens, mla=mla)
                kv_read += w * ph.sequences * kv_read_bytes(spec, ph.context_tokens, ph.gen_tokens)
                dec_tok += w * ph.sequences * ph.gen_tokens
    if workload.independent_chains > 1:
        longest = dist.expected_max(workload.independent_chains)
        steps = float(sum(ph.gen_tokens for ph in workload.at_length(longest).phases()))
    else:
        steps = workload.expect(lambda w: float(sum(ph.gen_tokens for ph in w.phases())))
    return Tally(
        prefill_flops=pre_f,
        decode_flops=dec_f,
        decode_tokens=dec_tok,
        kv_read_bytes=kv_read,
        generated_tokens=dec_tok,
        prefilled_tokens=pre_tok,
        decode_steps=steps,
        kv_peak_bytes=kv_peak_bytes(spec, workload),
        sequences=workload.max_sequences,
        prefills=tuple(prefills),
    )


def _scalar_peak(spec: ModelSpec, workload: Workload) -> float:
    """Peak KV of a workload whose chains all have ``gen_tokens``: the largest over calls of
    the KV held at the call's end (full layers: every distinct token; sliding layers: up to
    the window per sequence)."""
    b = spec.kv_bytes_per_token_per_layer
    n_slid = spec.num_sliding_layers
    best = 0.0
    for ph in workload.phases():
        held = b * (spec.num_layers - n_slid) * ph.kv_tokens_end
        if n_slid:
            held += b * n_slid * ph.sequences * min(ph.context_tokens + ph.gen_tokens, spec.sliding_window)
        best = max(best, held)
    return float(best)


def kv_peak_bytes(spec: ModelSpec, workload: Workload) -> float:
    """KV bytes held at the peak of one execution (expected), each chain at its own length.

    Every chain alike: the largest over calls of the KV at the call's end; full-attention
    layers hold every distinct token (a shared prefix once), sliding-window layers up to the
    window per sequence:

    .. math:: \\max_{\\text{calls}} \\; b \\big[ L_{full} \\, T_{distinct} + L_{slid} \\, n \\min(C + g, W) \\big]

    Pool and hybrid with per-sample lengths: a serving engine frees a finished sequence's
    blocks, so at length ``t`` only the ``n P(L >= t)`` chains still running hold KV; the peak
    is the largest over ``t`` of

    .. math:: b \\big[ L_{full} (P_{held} + t \\, n S(t)) + L_{slid} \\, n S(t) \\min(P + t, W) \\big]

    (``P_held`` = the prompt once with prefix sharing, ``n S(t) P`` without), and at least
    one chain of the expected longest length. Both are lower bounds of the expected peak
    and equal it when all chains have one length. Other strategies (one length per
    execution): the expectation of the every-chain-alike peak.

    Examples
    --------
    >>> spec = ModelSpec.from_catalog("llama-3-8b")
    >>> kv_peak_bytes(spec, Workload.from_strategy("pool:n=2", 100, 10)) == 120 * 131072
    True
    >>> mixed = Workload.from_strategy("pool:n=2", 0, [100, 10_000])
    >>> kv_peak_bytes(spec, mixed) / 131072  # the long sample alone, not 2 x 5,050
    10000.0
    """
    dist = workload.length_distribution
    if dist.is_constant:
        return _scalar_peak(spec, workload.at_length(dist.max))
    if workload.independent_chains == 1:
        return float(
            sum(
                w * _scalar_peak(spec, workload.at_length(float(v)))
                for v, w in zip(dist.values, dist.weights, strict=True)
            )
        )
    b = spec.kv_bytes_per_token_per_layer
    n_slid = spec.num_sliding_layers
    n_full = spec.num_layers - n_slid
    p = float(workload.prompt_tokens)
    t = dist.values
    alive = workload.samples * dist.survival()
    prompt_held = p if workload.prefix_sharing else alive * p
    held = b * n_full * (prompt_held + alive * t)
    if n_slid:
        held = held + b * n_slid * alive * np.minimum(p + t, spec.sliding_window)
    longest = dist.expected_max(workload.independent_chains)
    one = b * n_full * (p + longest)
    if n_slid:
        one += b * n_slid * min(p + longest, spec.sliding_window)
    return float(max(np.max(held), one))


def check_context(spec: ModelSpec, workload: Workload) -> None:
    """Raise a one-line ``ValueError`` when the longest sequence of ``workload`` (its longest
    chain after the prompt, over every call) exceeds ``spec.max_context_tokens``."""
    limit = spec.max_context_tokens
    if not limit:
        return
    longest = workload.length_distribution.max
    need = max(ph.context_tokens + ph.gen_tokens for ph in workload.at_length(longest).phases())
    if need > limit:
        raise ValueError(
            f"{spec.name}: a sequence of {need:,.0f} tokens (prompt {workload.prompt_tokens:,} + "
            f"{need - workload.prompt_tokens:,.0f} generated) exceeds the model's context of {limit:,} tokens"
        )
