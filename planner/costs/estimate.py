"""One call that prices one strategy execution: FLOPs, KV peak, memory traffic, effective
FLOPs, roofline latency and dollars (:func:`estimate_cost`).

Every number here is PREDICTED by the analytic cost model (formulas in
:mod:`~planner.costs.flops`, :mod:`~planner.costs.memory`, :mod:`~planner.costs.latency`,
:mod:`~planner.costs.dollars`) from token counts and the model spec; nothing is measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..catalog import ApiPrice, HardwareSpec
from .dollars import ApiCost, api_cost, gpu_seconds, self_hosted_usd
from .latency import estimate_latency, workload_steps
from .memory import effective_flops
from .spec import ModelSpec
from .workload import Workload

__all__ = ["CostEstimate", "estimate_cost", "kv_peak_bytes", "auto_tp", "SOURCE"]

SOURCE = "predicted: analytic cost model (planner.costs; roofline latency)"
_TP_CHOICES = (1, 2, 4, 8, 16, 32, 64)


def kv_peak_bytes(spec: ModelSpec, workload: Workload) -> float:
    """KV bytes held at the peak of one execution: the largest over calls of the KV at the
    call's end. Full-attention layers hold every distinct token (a shared prefix once);
    sliding-window layers hold up to the window per sequence.

    .. math:: \\max_{\\text{calls}} \\; b \\big[ L_{full} \\, T_{distinct} + L_{slid} \\, n \\min(C + g, W) \\big]

    Examples
    --------
    >>> spec = ModelSpec.from_catalog("llama-3-8b")
    >>> kv_peak_bytes(spec, Workload.from_strategy("pool:n=2", 100, 10)) == 120 * 131072
    True
    """
    b = spec.kv_bytes_per_token_per_layer
    n_slid = spec.num_sliding_layers
    best = 0.0
    for ph in workload.phases():
        held = b * (spec.num_layers - n_slid) * ph.kv_tokens_end
        if n_slid:
            held += b * n_slid * ph.sequences * min(ph.context_tokens + ph.gen_tokens, spec.sliding_window)
        best = max(best, held)
    return best


def auto_tp(
    spec: ModelSpec,
    kv_bytes: float,
    hardware: HardwareSpec,
    *,
    concurrency: int = 1,
    memory_utilization: float = 0.9,
) -> int:
    """Smallest tensor-parallel degree (1, 2, 4, ..., 64) whose GPUs hold the weights plus
    ``concurrency`` executions' KV within ``memory_utilization`` of their memory.

    Raises ``ValueError`` when even 64 GPUs are not enough.
    """
    need = spec.weight_bytes + concurrency * kv_bytes
    for tp in _TP_CHOICES:
        if need <= tp * hardware.memory_bytes * memory_utilization:
            return tp
    raise ValueError(
        f"{spec.name} needs {need / 1e9:.1f} GB (weights + KV of {concurrency} executions), more than "
        f"{_TP_CHOICES[-1]} x {hardware.name} hold at {memory_utilization:.0%} utilization"
    )


@dataclass(frozen=True)
class CostEstimate:
    """Predicted cost of ONE execution of a strategy (see :func:`estimate_cost`).

    FLOPs, bytes and tokens are per execution; latency is that of one execution when
    ``concurrency`` run together on ``tp`` GPUs; ``cost_usd`` is its share of the GPU time.
    Hardware-dependent fields are None when no hardware was given.
    """

    model: str
    strategy: str
    prompt_tokens: int
    gen_tokens: int
    generated_tokens: int
    prefilled_tokens: int
    prefill_flops: float
    decode_flops: float
    flops: float
    kv_bytes_peak: float
    weight_bytes: float
    memory_bytes: float  # traffic (bytes moved) per execution; weight reads shared by the batch
    prefix_sharing: bool
    hardware: str | None = None
    concurrency: int = 1
    tp: int | None = None
    effective_flops: float | None = None
    prefill_s: float | None = None
    decode_s: float | None = None
    latency_s: float | None = None
    compute_bound_fraction: float | None = None
    throughput_qps: float | None = None
    gpu_seconds: float | None = None
    usd_per_gpu_hour: float | None = None
    cost_usd: float | None = None
    memory_needed_bytes: float | None = None
    memory_available_bytes: float | None = None
    fits_in_memory: bool | None = None
    api: ApiCost | None = None
    source: str = SOURCE

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the ``--json`` output of ``ttc costs``)."""
        out = asdict(self)
        out["api"] = self.api.to_dict() if self.api else None
        return out


def estimate_cost(
    spec: ModelSpec,
    workload: Workload,
    hardware: HardwareSpec | None = None,
    *,
    concurrency: int = 1,
    tp: int | None = None,
    tp_efficiency: float = 1.0,
    compute_efficiency: float = 1.0,
    memory_efficiency: float = 1.0,
    memory_utilization: float = 0.9,
    api: ApiPrice | None = None,
    mla: str = "absorbed",
) -> CostEstimate:
    """Predict FLOPs, KV peak, memory traffic, effective FLOPs, latency and US$ of one execution.

    Parameters
    ----------
    spec, workload : the model and the execution shape.
    hardware : accelerator (None: token, FLOP and byte counts only).
    concurrency : executions served together (they share weight reads; latency grows with it).
    tp : tensor-parallel degree; None picks the smallest that fits (:func:`auto_tp`).
    tp_efficiency, compute_efficiency, memory_efficiency : roofline assumptions (1.0 = ideal),
        see :mod:`planner.costs.latency`.
    memory_utilization : share of GPU memory usable for weights and KV (the rest: activations,
        fragmentation), used by :func:`auto_tp` and ``fits_in_memory``.
    api : also price the execution on this API (:func:`~planner.costs.dollars.api_cost`).
    mla : MLA attention FLOPs convention (:func:`~planner.costs.flops.forward_flops`).

    Examples
    --------
    >>> from planner.catalog import get_hardware
    >>> spec = ModelSpec.from_catalog("llama-3.1-70b")
    >>> w = Workload.from_strategy("pool:n=16", prompt_tokens=512, gen_tokens=2048)
    >>> est = estimate_cost(spec, w, get_hardware("h100"))
    >>> est.tp, est.generated_tokens, f"{est.kv_bytes_peak / 1e9:.1f} GB"
    (4, 32768, '10.9 GB')
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if not 0.0 < memory_utilization <= 1.0:
        raise ValueError(f"memory_utilization must be in (0, 1], got {memory_utilization!r}")
    trace = workload_steps(spec, workload, concurrency, mla=mla)
    c = concurrency
    prefill_f = float(trace.flops[trace.prefill].sum()) / c
    decode_f = float(trace.flops[~trace.prefill].sum()) / c
    memory_b = float(trace.memory_bytes.sum()) / c
    kv_peak = kv_peak_bytes(spec, workload)
    base: dict[str, Any] = dict(
        model=spec.name,
        strategy=workload.describe(),
        prompt_tokens=workload.prompt_tokens,
        gen_tokens=workload.gen_tokens,
        generated_tokens=workload.generated_tokens,
        prefilled_tokens=workload.prefilled_tokens,
        prefill_flops=prefill_f,
        decode_flops=decode_f,
        flops=prefill_f + decode_f,
        kv_bytes_peak=kv_peak,
        weight_bytes=spec.weight_bytes,
        memory_bytes=memory_b,
        prefix_sharing=workload.prefix_sharing,
        concurrency=c,
        api=api_cost(workload, api) if api is not None else None,
    )
    if hardware is None:
        return CostEstimate(**base)
    if tp is None:
        tp = auto_tp(spec, kv_peak, hardware, concurrency=c, memory_utilization=memory_utilization)
    lat = estimate_latency(
        spec,
        workload,
        hardware,
        concurrency=c,
        tp=tp,
        tp_efficiency=tp_efficiency,
        compute_efficiency=compute_efficiency,
        memory_efficiency=memory_efficiency,
        trace=trace,
    )
    gpu_s = gpu_seconds(lat.latency_s, tp=tp, concurrency=c)
    need = spec.weight_bytes + c * kv_peak
    have = tp * hardware.memory_bytes * memory_utilization
    return CostEstimate(
        **base,
        hardware=hardware.name,
        tp=tp,
        effective_flops=effective_flops(prefill_f + decode_f, memory_b, hardware.flops_per_byte),
        prefill_s=lat.prefill_s,
        decode_s=lat.decode_s,
        latency_s=lat.latency_s,
        compute_bound_fraction=lat.compute_bound_fraction,
        throughput_qps=lat.throughput_qps,
        gpu_seconds=gpu_s,
        usd_per_gpu_hour=hardware.usd_per_gpu_hour,
        cost_usd=self_hosted_usd(gpu_s, hardware.usd_per_gpu_hour),
        memory_needed_bytes=need,
        memory_available_bytes=have,
        fits_in_memory=bool(need <= have),
    )
