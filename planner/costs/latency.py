"""Roofline latency of a workload on an accelerator.

Each forward step (a batched prefill, or one decode step of every live sequence) takes

.. math::

    t = \\max\\Big( \\frac{F}{\\pi \\, e_c \\, \\tau \\, e_\\tau},\\;
                   \\frac{M}{\\beta \\, e_m \\, \\tau \\, e_\\tau} \\Big) + o_0 + o_L L

with ``F`` the step's FLOPs (:mod:`planner.costs.flops`), ``M`` its memory traffic
(:mod:`planner.costs.memory`), ``pi`` the peak FLOP/s and ``beta`` the memory bandwidth of one
GPU (:class:`~planner.catalog.HardwareSpec`), ``tau`` the tensor-parallel degree, and ``o_0``,
``o_L`` the fixed and per-layer overhead of a step (0 for datasheet GPUs; measured for the
calibrated cpu). A step's latency is the slower of compute and memory (Williams et al. 2009,
"Roofline"); the execution's latency is the sum over its steps.

ASSUMPTIONS (each a parameter): ``compute_efficiency`` ``e_c`` and ``memory_efficiency`` ``e_m``
are the achievable fractions of peak (1.0 = ideal roofline); tensor parallelism divides both
FLOPs and bytes over ``tau`` GPUs with efficiency ``e_tau`` (``tp_efficiency``, 1.0 = free
all-reduces; ~0.8-0.9 is typical over NVLink). ``concurrency`` executions run in lockstep,
sharing every step's weight reads; phases do not overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..catalog import HardwareSpec
from .flops import forward_flops
from .memory import kv_cache_bytes, weight_bytes_read
from .spec import ModelSpec
from .workload import Workload

__all__ = ["StepTrace", "LatencyBreakdown", "workload_steps", "roofline_time_s", "estimate_latency"]


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
    """Per-step FLOPs and bytes of ``concurrency`` executions of ``workload`` run together.

    Prefill step of a phase (when it has prefill chunks): ``c * chunks`` prefills of
    ``prefill_tokens`` on ``context - prefill_tokens`` cached tokens; bytes = weights read once
    (experts touched by all the prefill tokens) + the chunks' KV (read cached part, write new).
    Decode step ``j`` (0-based) of a phase: ``B = c * sequences`` sequences at context
    ``context + j``; FLOPs ``B * forward_flops(1, context + j)``; bytes = weights read once for
    ``B`` tokens + ``B * KV(context + j + 1)``.
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
            mem.append(weight_bytes_read(spec, b) + b * kv_cache_bytes(spec, ctx + 1))
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
    """Predicted (roofline) latency of one execution when ``concurrency`` run together.

    ``compute_bound_fraction`` is the share of the time spent in compute-bound steps.
    """

    prefill_s: float
    decode_s: float
    latency_s: float
    steps: int
    compute_bound_fraction: float
    concurrency: int
    tp: int

    @property
    def throughput_qps(self) -> float:
        """Executions finished per second by one replica, ``concurrency / latency_s``."""
        return self.concurrency / self.latency_s if self.latency_s > 0 else float("inf")


def estimate_latency(
    spec: ModelSpec,
    workload: Workload,
    hardware: HardwareSpec,
    *,
    concurrency: int = 1,
    tp: int = 1,
    tp_efficiency: float = 1.0,
    compute_efficiency: float = 1.0,
    memory_efficiency: float = 1.0,
    attention: str = "causal",
    mla: str = "absorbed",
    trace: StepTrace | None = None,
) -> LatencyBreakdown:
    """Roofline latency of one execution of ``workload`` among ``concurrency`` in lockstep.

    Examples
    --------
    >>> from planner.catalog import get_hardware
    >>> spec = ModelSpec.from_catalog("llama-3.1-8b")
    >>> w = Workload.from_strategy("greedy", prompt_tokens=0, gen_tokens=1)
    >>> lat = estimate_latency(spec, w, get_hardware("h100"))
    >>> round(lat.latency_s * 1e3, 2)  # one memory-bound step: 15 GB of weights (all but the embedding table) at 3.35 TB/s
    4.48
    """
    tr = (
        trace
        if trace is not None
        else workload_steps(spec, workload, concurrency, attention=attention, mla=mla)
    )
    t_c, t_m = _times_s(
        tr.flops, tr.memory_bytes, hardware, tp, tp_efficiency, compute_efficiency, memory_efficiency
    )
    times = np.maximum(t_c, t_m) + hardware.step_overhead_s + hardware.layer_overhead_s * spec.num_layers
    total = float(times.sum())
    bound = float(times[t_c >= t_m].sum() / total) if total > 0 else 0.0
    return LatencyBreakdown(
        prefill_s=float(times[tr.prefill].sum()),
        decode_s=float(times[~tr.prefill].sum()),
        latency_s=total,
        steps=int(times.size),
        compute_bound_fraction=bound,
        concurrency=tr.concurrency,
        tp=tp,
    )
