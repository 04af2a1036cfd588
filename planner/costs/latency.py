"""Roofline latency and GPU time of an execution in a continuously batched replica.

Each forward step (a batched prefill, or one decode step of every sequence in the batch)
takes

.. math::

    t = \\max\\Big( \\frac{F}{\\pi \\, e_c \\, \\tau \\, e_\\tau},\\;
                   \\frac{M}{\\beta \\, e_m \\, \\tau \\, e_\\tau} \\Big) + o_0 + o_L L

with ``F`` the step's FLOPs (:mod:`planner.costs.flops`), ``M`` its memory traffic
(:mod:`planner.costs.memory`), ``pi`` the peak FLOP/s and ``beta`` the memory bandwidth of one
GPU (:class:`~planner.catalog.HardwareSpec`), ``tau`` the tensor-parallel degree, and ``o_0``,
``o_L`` the fixed and per-layer overhead of a step (0 for datasheet GPUs; measured for the
calibrated cpu). A step's latency is the slower of compute and memory (Williams et al. 2009,
"Roofline").

The serving model (:mod:`planner.costs.serving`): a replica decodes a batch of ``B``
sequences (the concurrency) of executions like this one, in steady state (continuous
batching: a finished sequence's slot is refilled). Each decode step reads the weights once
for the batch (``W(B)``: MoE experts touched by ``B`` tokens) and every sequence reads its own
KV cache, so with ``T`` decode tokens per execution reading ``K`` KV bytes and doing ``F_d``
FLOPs in total (:func:`planner.costs.execution.tally`, each chain at its own length):

.. math::

    t_{step} = t\\big(B F_d / T,\\; W(B) + B K / T\\big), \\qquad
    \\text{latency} = t_{prefill} + S \\, t_{step}, \\qquad
    \\text{replica time} = t_{prefill} / x + T \\, t_{step} / B

where ``S`` is the decode steps of the execution's longest chains (a pool waits for its
longest sample) and ``x = B / n`` the executions in flight (``n`` sequences each). Prompts are
prefilled in steps of their own, ``x`` prompts at a time, each step reading the weights once.
The memory traffic charged to one execution is its prefill steps' share plus
``T W(B) / B + K``: weights amortized over the batch, KV per request.

ASSUMPTIONS (each a parameter): ``compute_efficiency`` ``e_c`` and ``memory_efficiency`` ``e_m``
are the achievable fractions of peak (1.0 = ideal roofline); tensor parallelism divides both
FLOPs and bytes over ``tau`` GPUs with efficiency ``e_tau`` (``tp_efficiency``, 1.0 = free
all-reduces; ~0.8-0.9 is typical over NVLink); the batch's mix of contexts is that of the
execution's own tokens, so the roofline applies to the mean decode token (with every step on
one side of the ridge this equals summing each step's roofline, :func:`workload_steps`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..catalog import HardwareSpec
from .execution import Tally, tally
from .flops import forward_flops
from .memory import kv_attended_bytes, kv_cache_bytes, weight_bytes_read
from .serving import DEFAULT_CONCURRENCY, check_concurrency, kv_replication
from .spec import ModelSpec
from .workload import Workload

__all__ = [
    "StepTrace",
    "LatencyBreakdown",
    "workload_steps",
    "roofline_time_s",
    "estimate_latency",
    "traffic_bytes",
]


@dataclass(frozen=True)
class StepTrace:
    """Every forward step of ``concurrency`` lockstep executions of a workload.

    ``flops`` and ``memory_bytes`` are per step for the whole batch; ``prefill`` marks prefill
    steps; ``batch_sequences`` is the number of sequences decoded in the step.
    """

    flops: np.ndarray
    memory_bytes: np.ndarray
    prefill: np.ndarray
    batch_sequences: np.ndarray
    concurrency: int


def workload_steps(
    spec: ModelSpec,
    workload: Workload,
    concurrency: int = 1,
    *,
    attention: str = "causal",
    mla: str = "absorbed",
) -> StepTrace:
    """Per-step FLOPs and bytes of ``concurrency`` executions of ``workload`` run in lockstep,
    every chain ``gen_tokens`` long: a brute-force reference (one array entry per step, so
    memory grows with the generated tokens) for the closed forms of :func:`estimate_latency`
    and :func:`~planner.costs.estimate.estimate_cost`, which equal it when every step is on one
    side of the roofline ridge (``concurrency`` here counts executions; a batch of
    ``concurrency x sequences`` sequences there).

    Prefill step of a phase (when it has prefill chunks): ``c * chunks`` prefills of
    ``prefill_tokens`` on ``context - prefill_tokens`` cached tokens; bytes = weights read once
    (experts touched by all the prefill tokens) + the chunks' KV (read cached part, write new).
    Decode step ``j`` (0-based) of a phase: ``B = c * sequences`` sequences at context
    ``context + j``; FLOPs ``B * forward_flops(1, context + j)``; bytes = weights read once for
    ``B`` tokens + ``B * KV(context + j + 1)`` (the attended tokens' KV with sparse attention,
    :func:`~planner.costs.memory.kv_attended_bytes`).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, (int, np.integer)) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    c = int(concurrency)
    flops, mem, pre, seqs = [], [], [], []
    for ph in workload.phases():
        if ph.prefill_chunks and ph.prefill_tokens:
            chunks = c * ph.prefill_chunks
            past = ph.context_tokens - ph.prefill_tokens
            flops.append(
                np.array(
                    [chunks * forward_flops(spec, ph.prefill_tokens, past, attention=attention, mla=mla)]
                )
            )
            kv = chunks * kv_cache_bytes(spec, ph.context_tokens)
            mem.append(np.array([weight_bytes_read(spec, chunks * ph.prefill_tokens) + kv]))
            pre.append(np.array([True]))
            seqs.append(np.array([chunks]))
        if ph.gen_tokens:
            b = c * ph.sequences
            ctx = ph.context_tokens + np.arange(ph.gen_tokens, dtype=float)
            flops.append(b * forward_flops(spec, np.ones_like(ctx), ctx, mla=mla))
            mem.append(weight_bytes_read(spec, b) + b * kv_attended_bytes(spec, ctx + 1))
            pre.append(np.zeros(ph.gen_tokens, dtype=bool))
            seqs.append(np.full(ph.gen_tokens, b))
    if not flops:
        empty = np.zeros(0)
        return StepTrace(empty, empty, np.zeros(0, dtype=bool), np.zeros(0, dtype=int), c)
    return StepTrace(np.concatenate(flops), np.concatenate(mem), np.concatenate(pre), np.concatenate(seqs), c)


def roofline_time_s(
    flops,
    memory_bytes,
    hardware: HardwareSpec,
    *,
    tp: int = 1,
    tp_efficiency: float = 1.0,
    compute_efficiency: float = 1.0,
    memory_efficiency: float = 1.0,
    num_layers: int = 0,
):
    """Seconds of forward steps with ``flops`` FLOPs and ``memory_bytes`` bytes each (module formula).

    Examples
    --------
    >>> from planner.catalog import get_hardware
    >>> h100 = get_hardware("h100")
    >>> round(roofline_time_s(0.0, 3.35e12, h100), 6)  # 3.35 TB at 3.35 TB/s
    1.0
    """
    t_c, t_m = _times_s(
        flops, memory_bytes, hardware, tp, tp_efficiency, compute_efficiency, memory_efficiency
    )
    out = np.maximum(t_c, t_m) + hardware.step_overhead_s + hardware.layer_overhead_s * num_layers
    return float(out) if np.ndim(out) == 0 else out


def _times_s(flops, memory_bytes, hardware, tp, tp_efficiency, compute_efficiency, memory_efficiency):
    """(compute seconds, memory seconds) of steps, before the max and the overheads."""
    _check_parallel(tp, tp_efficiency, compute_efficiency, memory_efficiency)
    scale = tp * (tp_efficiency if tp > 1 else 1.0)
    t_c = np.asarray(flops, dtype=float) / (hardware.peak_flops * compute_efficiency * scale)
    t_m = np.asarray(memory_bytes, dtype=float) / (
        hardware.memory_bandwidth_bytes_per_s * memory_efficiency * scale
    )
    return t_c, t_m


def _check_parallel(
    tp: int, tp_efficiency: float, compute_efficiency: float, memory_efficiency: float
) -> None:
    if isinstance(tp, bool) or not isinstance(tp, (int, np.integer)) or tp < 1:
        raise ValueError(f"tp (tensor-parallel degree) must be an integer >= 1, got {tp!r}")
    for name, value in (
        ("tp_efficiency", tp_efficiency),
        ("compute_efficiency", compute_efficiency),
        ("memory_efficiency", memory_efficiency),
    ):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {value!r}")


@dataclass(frozen=True)
class LatencyBreakdown:
    """Predicted (roofline) latency and GPU time of one execution in a replica decoding
    ``concurrency`` sequences at a time (module docstring).

    ``step_s`` is one decode step of the full batch; ``replica_s`` the replica-seconds one
    execution occupies (its GPU-seconds are ``tp x replica_s``); ``compute_bound_fraction`` the
    share of the latency spent in compute-bound steps; ``steps`` the expected forward steps.
    """

    prefill_s: float
    decode_s: float
    latency_s: float
    steps: float
    compute_bound_fraction: float
    concurrency: int
    tp: int
    step_s: float = 0.0
    replica_s: float = 0.0
    executions_in_flight: float = 1.0

    @property
    def throughput_qps(self) -> float:
        """Executions finished per second by one replica, ``1 / replica_s``."""
        return 1.0 / self.replica_s if self.replica_s > 0 else float("inf")


def _batch(tl: Tally, concurrency: int) -> tuple[int, float]:
    """(sequences per decode step, executions in flight): never fewer than one execution's."""
    batch = max(check_concurrency(concurrency), tl.sequences)
    return batch, batch / tl.sequences


def _prefill_steps(spec: ModelSpec, tl: Tally, execs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, FLOPs, bytes) of each prefill step batching ``execs`` executions' prompts."""
    w, chunks, tokens, chunk_flops, context = (np.asarray(col, dtype=float) for col in tl.prefills)
    if not w.size:
        z = np.zeros(0)
        return z, z, z
    flops = execs * chunks * chunk_flops
    mem = weight_bytes_read(spec, execs * chunks * tokens) + execs * chunks * kv_cache_bytes(spec, context)
    return w, np.atleast_1d(flops), np.atleast_1d(mem)


def traffic_bytes(spec: ModelSpec, tl: Tally, concurrency: int) -> dict[str, float]:
    """Bytes moved per execution at ``concurrency`` (module docstring): ``prefill`` (its share of
    the batched prefill steps), ``weights`` (decode: ``T W(B) / B``), ``kv`` (decode KV reads)."""
    batch, execs = _batch(tl, concurrency)
    w, _, mem = _prefill_steps(spec, tl, execs)
    weights = tl.decode_tokens * weight_bytes_read(spec, batch) / batch if tl.decode_tokens else 0.0
    return {"prefill": float(w @ mem) / execs, "weights": float(weights), "kv": tl.kv_read_bytes}


def estimate_latency(
    spec: ModelSpec,
    workload: Workload,
    hardware: HardwareSpec,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    tp: int = 1,
    tp_efficiency: float = 1.0,
    compute_efficiency: float = 1.0,
    memory_efficiency: float = 1.0,
    attention: str = "causal",
    mla: str = "absorbed",
    tally_: Tally | None = None,
) -> LatencyBreakdown:
    """Roofline latency of one execution of ``workload`` in a replica decoding ``concurrency``
    sequences per step (module docstring). Closed form: time and memory do not grow with the
    generated tokens.

    Examples
    --------
    >>> from planner.catalog import get_hardware
    >>> spec = ModelSpec.from_catalog("llama-3.1-8b")
    >>> w = Workload.from_strategy("greedy", prompt_tokens=0, gen_tokens=1)
    >>> lat = estimate_latency(spec, w, get_hardware("h100"), concurrency=1)
    >>> round(lat.latency_s * 1e3, 2)  # one memory-bound step: 15 GB of weights (all but the embedding table) at 3.35 TB/s
    4.48
    """
    tl = tally_ if tally_ is not None else tally(spec, workload, attention=attention, mla=mla)
    batch, execs = _batch(tl, concurrency)
    overhead = hardware.step_overhead_s + hardware.layer_overhead_s * spec.num_layers
    args = (hardware, tp, tp_efficiency, compute_efficiency, memory_efficiency)
    w, pf, pm = _prefill_steps(spec, tl, execs)
    pc, pmt = _times_s(pf, pm, *args)
    pre_t = np.maximum(pc, pmt) + overhead
    prefill_s = float(w @ pre_t)
    pre_bound = float(w @ np.where(pc >= pmt, pre_t, 0.0))
    step_s, dec_bound = 0.0, 0.0
    if tl.decode_tokens:
        f_step = batch * tl.flops_per_decode_token
        kv_copies = kv_replication(spec, tp)  # each rank reads its own copy (serving module)
        m_step = weight_bytes_read(spec, batch) + batch * tl.kv_read_bytes_per_token * kv_copies
        dc, dm = _times_s(f_step, m_step, *args)
        step_s = float(max(dc, dm)) + overhead
        dec_bound = 1.0 if dc >= dm else 0.0
    decode_s = tl.decode_steps * step_s
    total = prefill_s + decode_s
    bound = (pre_bound + dec_bound * decode_s) / total if total > 0 else 0.0
    replica_s = prefill_s / execs + tl.decode_tokens * step_s / batch
    return LatencyBreakdown(
        prefill_s=prefill_s,
        decode_s=decode_s,
        latency_s=total,
        steps=float(w.sum()) + tl.decode_steps,
        compute_bound_fraction=bound,
        concurrency=batch,
        tp=tp,
        step_s=step_s,
        replica_s=replica_s,
        executions_in_flight=execs,
    )
