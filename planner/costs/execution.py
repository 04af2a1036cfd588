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

    ``prefills`` holds five arrays, one entry per prefill (a call with new prompt tokens, per
    length atom): its probability, chunks, new tokens per chunk, FLOPs per chunk and context
    tokens.
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
    prefills: tuple[np.ndarray, ...]
    #: KV bytes held summed over the decode steps (= ``kv_read_bytes`` unless attention is
    #: sparse: a sparse step reads fewer tokens than its sequence keeps)
    kv_held_bytes: float = 0.0

    @property
    def flops(self) -> float:
        """Prefill plus decode FLOPs."""
        return self.prefill_flops + self.decode_flops

    @property
    def kv_read_bytes_per_token(self) -> float:
        """Mean KV bytes one decode token reads."""
        return self.kv_read_bytes / self.decode_tokens if self.decode_tokens else 0.0

    @property
    def kv_held_bytes_per_token(self) -> float:
        """Mean KV bytes the sequence of a decode token holds (the steady-state memory of one
        sequence in a batch); equal to :attr:`kv_read_bytes_per_token` for dense attention."""
        return self.kv_held_bytes / self.decode_tokens if self.decode_tokens else 0.0

    @property
    def flops_per_decode_token(self) -> float:
        """Mean FLOPs of one decode token."""
        return self.decode_flops / self.decode_tokens if self.decode_tokens else 0.0


def tally(spec: ModelSpec, workload: Workload, *, mla: str = "absorbed", attention: str = "causal") -> Tally:
    """The per-execution expectations of ``workload`` on ``spec`` (module docstring), in one
    numpy pass over the ``(prompt, chain length)`` atoms of its questions
    (:meth:`Workload.atoms`): a question mix is priced question by question, averaged.

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
    at = workload.atoms()
    c = workload.calls(at.prompt, at.length)  # (calls, atoms)
    w = at.weight
    seqs = c.sequences[:, None]
    has = (c.prefill_chunks > 0) & (c.prefill_tokens > 0)
    chunk_f = np.where(
        has,
        forward_flops(
            spec, c.prefill_tokens, c.context_tokens - c.prefill_tokens, attention=attention, mla=mla
        ),
        0.0,
    )
    pre_f = float((c.prefill_chunks * chunk_f).sum(axis=0) @ w)
    pre_tok = float((np.where(has, c.prefill_chunks * c.prefill_tokens, 0.0)).sum(axis=0) @ w)
    dec_f = float((seqs * decode_flops(spec, c.context_tokens, c.gen_tokens, mla=mla)).sum(axis=0) @ w)
    kv_read = float((seqs * kv_read_bytes(spec, c.context_tokens, c.gen_tokens)).sum(axis=0) @ w)
    kv_held = float((seqs * kv_read_bytes(spec, c.context_tokens, c.gen_tokens, held=True)).sum(axis=0) @ w)
    dec_tok = float((seqs * c.gen_tokens).sum(axis=0) @ w)
    prob = np.broadcast_to(w, has.shape)[has]
    prefills = (prob, c.prefill_chunks[has], c.prefill_tokens[has], chunk_f[has], c.context_tokens[has])
    mix = workload.question_mix()
    if workload.independent_chains > 1:
        longest = mix.expected_max(workload.independent_chains)  # per question
        steps = float(workload.calls(mix.prompts, longest).gen_tokens.sum(axis=0) @ mix.weights)
    else:
        steps = float(c.gen_tokens.sum(axis=0) @ w)
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
        prefills=prefills,
        kv_held_bytes=kv_held,
    )


def _scalar_peaks(spec: ModelSpec, workload: Workload, prompt, length) -> np.ndarray:
    """Peak KV at each ``(prompt, length)`` atom when every chain has that length: the largest
    over calls of the KV at the call's end (full layers: every distinct token; sliding layers:
    up to the window per sequence)."""
    b = spec.kv_bytes_per_token_per_layer
    n_slid = spec.num_sliding_layers
    c = workload.calls(prompt, length)
    held = b * (spec.num_layers - n_slid) * c.kv_tokens_end
    if n_slid:
        window = np.minimum(c.context_tokens + c.gen_tokens, spec.sliding_window)
        held = held + b * n_slid * c.sequences[:, None] * window
    return held.max(axis=0)


def kv_peak_bytes(spec: ModelSpec, workload: Workload) -> float:
    """KV bytes held at the peak of one execution (expected), each chain at its own length;
    over a question mix, the question-weighted mean of each question's peak.

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
    mix = workload.question_mix()
    at = mix.atoms()
    scalar = _scalar_peaks(spec, workload, at.prompt, at.length)
    if workload.independent_chains == 1:
        return float(scalar @ at.weight)  # the expectation over lengths and questions
    b = spec.kv_bytes_per_token_per_layer
    n_slid = spec.num_sliding_layers
    n_full = spec.num_layers - n_slid
    p, t = at.prompt, at.length
    alive = workload.shape.samples * at.survival()
    prompt_held = p if workload.prefix_sharing else alive * p
    held = b * n_full * (prompt_held + alive * t)
    if n_slid:
        held = held + b * n_slid * alive * np.minimum(p + t, spec.sliding_window)
    longest = mix.expected_max(workload.independent_chains)
    one = b * n_full * (mix.prompts + longest)
    if n_slid:
        one = one + b * n_slid * np.minimum(mix.prompts + longest, spec.sliding_window)
    running = np.maximum(np.maximum.reduceat(held, at.starts), one)
    constant = at.sizes == 1  # one length: every chain alike (the scalar peak over the calls)
    peak = np.where(constant, scalar[at.starts], running)
    return float(peak @ mix.weights)


def check_context(spec: ModelSpec, workload: Workload) -> None:
    """Raise a one-line ``ValueError`` when the longest sequence of ``workload`` (a question's
    longest chain after its prompt, over every call) exceeds ``spec.max_context_tokens``."""
    limit = spec.max_context_tokens
    if not limit:
        return
    mix = workload.question_mix()
    c = workload.calls(mix.prompts, mix.longest)
    need = (c.context_tokens + c.gen_tokens).max(axis=0)
    worst = int(np.argmax(need))
    if need[worst] > limit:
        prompt = float(mix.prompts[worst])
        raise ValueError(
            f"{spec.name}: a sequence of {need[worst]:,.0f} tokens (prompt {prompt:,.0f} + "
            f"{need[worst] - prompt:,.0f} generated) exceeds the model's context of {limit:,} tokens"
        )
