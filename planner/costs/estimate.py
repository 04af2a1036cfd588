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
from .dollars import ApiCost, api_cost, self_hosted_usd
from .execution import Tally, check_context, kv_peak_bytes, tally
from .latency import estimate_latency, traffic_bytes
from .memory import effective_flops
from .serving import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_GPUS,
    DEFAULT_MEMORY_UTILIZATION,
    check_concurrency,
    check_tp,
    choose_tp,
    kv_replication,
)
from .spec import ModelSpec
from .workload import Workload

__all__ = ["CostEstimate", "estimate_cost", "kv_peak_bytes", "auto_tp", "SOURCE"]

SOURCE = "predicted: analytic cost model (planner.costs; roofline latency)"


def auto_tp(
    spec: ModelSpec,
    kv_bytes: float,
    hardware: HardwareSpec,
    *,
    concurrency: int = 1,
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
    max_gpus: int = DEFAULT_MAX_GPUS,
) -> int:
    """Smallest tensor-parallel degree (:func:`~planner.costs.serving.tp_degrees`) whose GPUs
    hold the weights plus ``concurrency x kv_bytes`` within ``memory_utilization`` of their
    memory. Raises a one-line ``ValueError`` when even ``max_gpus`` GPUs are not enough."""

    def need(tp: int) -> float:
        return spec.weight_bytes + concurrency * kv_bytes * kv_replication(spec, tp)

    return choose_tp(
        spec,
        need,
        hardware,
        memory_utilization=memory_utilization,
        max_gpus=max_gpus,
        what=f"weights + KV of {concurrency} executions",
    )


def memory_needed_bytes(spec: ModelSpec, tl: Tally, concurrency: int, tp: int = 1) -> float:
    """GPU memory (all ``tp`` GPUs together) a replica decoding ``concurrency`` sequences needs:
    the weights plus the KV of the batch, the larger of one execution's peak and ``B`` sequences
    holding the mean context of a decode token (the whole cache even with sparse attention,
    which reads fewer tokens but evicts none; the steady state of :mod:`planner.costs.latency`;
    shared prompts are counted per sequence, which errs on the side of more memory), times the
    KV copies the ``tp`` ranks keep (:func:`~planner.costs.serving.kv_replication`)."""
    batch = max(concurrency, tl.sequences)
    kv = max(tl.kv_peak_bytes, batch * tl.kv_held_bytes_per_token)
    return spec.weight_bytes + kv * kv_replication(spec, tp)


@dataclass(frozen=True)
class CostEstimate:
    """Predicted cost of ONE execution of a strategy (see :func:`estimate_cost`).

    FLOPs, bytes and tokens are per execution (expectations over the chains' lengths when a
    distribution was given); latency is that of one execution in a replica of ``tp`` GPUs
    decoding ``concurrency`` sequences per step; ``gpu_seconds`` and ``cost_usd`` are its share
    of the replica's time. ``memory_bytes`` is the traffic charged to it (``memory_bytes_weights``
    amortized over the batch + ``memory_bytes_kv`` + its prefill's share), ``effective_flops``
    Kinetics' ``flops + memory_bytes x peak FLOP/s / bandwidth``. ``tp_source`` says whether
    ``tp`` was ``"auto"`` (smallest that fits) or ``"given"``. Hardware-dependent fields are
    None without hardware.
    """

    model: str
    strategy: str
    prompt_tokens: int
    gen_tokens: float
    generated_tokens: float
    prefilled_tokens: float
    prefill_flops: float
    decode_flops: float
    flops: float
    kv_bytes_peak: float
    weight_bytes: float
    memory_bytes: float  # traffic (bytes moved) per execution; weight reads shared by the batch
    prefix_sharing: bool
    hardware: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    tp: int | None = None
    tp_source: str | None = None
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
    memory_bytes_weights: float = 0.0
    memory_bytes_kv: float = 0.0
    decode_steps: float = 0.0
    #: the attention part of ``decode_flops`` (what sparse attention cuts): decode FLOPs minus
    #: the ``2 N`` matmul FLOPs of each decoded token
    decode_attention_flops: float = 0.0
    executions_in_flight: float = 1.0
    gen_lengths: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    source: str = SOURCE

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the ``--json`` output of ``ttc costs``)."""
        out = asdict(self)
        out["api"] = self.api.to_dict() if self.api else None
        out["notes"] = list(self.notes)
        return out


def estimate_cost(
    spec: ModelSpec,
    workload: Workload,
    hardware: HardwareSpec | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    tp: int | None = None,
    tp_efficiency: float = 1.0,
    compute_efficiency: float = 1.0,
    memory_efficiency: float = 1.0,
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
    max_gpus: int = DEFAULT_MAX_GPUS,
    api: ApiPrice | None = None,
    mla: str = "absorbed",
) -> CostEstimate:
    """Predict FLOPs, KV peak, memory traffic, effective FLOPs, latency and US$ of one execution.

    Closed forms throughout: time and memory do not grow with the generated tokens.

    Parameters
    ----------
    spec, workload : the model and the execution shape (with per-sample lengths or one length).
    hardware : accelerator (None: token, FLOP and byte counts only; effective FLOPs need it).
    concurrency : sequences decoded together by one replica (:mod:`planner.costs.serving`;
        default :data:`~planner.costs.serving.DEFAULT_CONCURRENCY`); weights are read once per
        step for all of them, KV per sequence.
    tp : tensor-parallel degree; None picks the smallest that fits (the result's ``tp_source``
        says which); a given one must divide the heads and not exceed ``max_gpus``.
    tp_efficiency, compute_efficiency, memory_efficiency : roofline assumptions (1.0 = ideal),
        see :mod:`planner.costs.latency`.
    memory_utilization : share of GPU memory usable for weights and KV (the rest: activations,
        fragmentation), used to choose ``tp`` and for ``fits_in_memory``.
    max_gpus : most GPUs one replica may span.
    api : also price the execution on this API (:func:`~planner.costs.dollars.api_cost`).
    mla : MLA attention FLOPs convention (:func:`~planner.costs.flops.forward_flops`).

    Raises a one-line ``ValueError`` when a sequence exceeds the model's context, the given
    ``tp`` is not usable, or no ``tp`` up to ``max_gpus`` fits.

    Examples
    --------
    >>> from planner.catalog import get_hardware
    >>> spec = ModelSpec.from_catalog("llama-3.1-70b")
    >>> w = Workload.from_strategy("pool:n=16", prompt_tokens=512, gen_tokens=2048)
    >>> est = estimate_cost(spec, w, get_hardware("h100"))
    >>> est.tp, est.tp_source, est.generated_tokens, f"{est.kv_bytes_peak / 1e9:.1f} GB"
    (4, 'auto', 32768, '10.9 GB')
    """
    check_concurrency(concurrency)
    if not 0.0 < memory_utilization <= 1.0:
        raise ValueError(f"memory_utilization must be in (0, 1], got {memory_utilization!r}")
    check_context(spec, workload)
    tl = tally(spec, workload, mla=mla)
    batch = max(concurrency, tl.sequences)
    moved = traffic_bytes(spec, tl, batch)
    memory_b = sum(moved.values())
    notes = []
    if workload.expected_prompt_tokens == 0:
        notes.append("no prompt tokens given: only the generated tokens are priced")
    if spec.assumptions:
        notes.extend(f"model spec: {a}" for a in spec.assumptions)
    base: dict[str, Any] = dict(
        model=spec.name,
        strategy=workload.describe(),
        prompt_tokens=workload.prompt_tokens,
        gen_tokens=workload.gen_tokens,
        generated_tokens=_whole(tl.generated_tokens),
        prefilled_tokens=_whole(tl.prefilled_tokens),
        prefill_flops=tl.prefill_flops,
        decode_flops=tl.decode_flops,
        flops=tl.flops,
        kv_bytes_peak=tl.kv_peak_bytes,
        weight_bytes=spec.weight_bytes,
        memory_bytes=memory_b,
        memory_bytes_weights=moved["weights"],
        memory_bytes_kv=moved["kv"],
        prefix_sharing=workload.prefix_sharing,
        concurrency=batch,
        decode_steps=tl.decode_steps,
        decode_attention_flops=tl.decode_flops - 2.0 * spec.matmul_params_active * tl.decode_tokens,
        executions_in_flight=batch / tl.sequences,
        gen_lengths=_lengths_summary(workload),
        notes=tuple(notes),
        api=api_cost(workload, api) if api is not None else None,
    )
    if hardware is None:
        return CostEstimate(**base)
    if tp is None:
        what = f"weights + KV of {batch} sequences"
        tp = choose_tp(
            spec,
            lambda t: memory_needed_bytes(spec, tl, batch, t),
            hardware,
            memory_utilization=memory_utilization,
            max_gpus=max_gpus,
            what=what,
        )
        tp_source = "auto"
    else:
        check_tp(spec, tp, max_gpus=max_gpus, hardware=hardware.name)
        tp_source = "given"
    need = memory_needed_bytes(spec, tl, batch, tp)
    lat = estimate_latency(
        spec,
        workload,
        hardware,
        concurrency=batch,
        tp=tp,
        tp_efficiency=tp_efficiency,
        compute_efficiency=compute_efficiency,
        memory_efficiency=memory_efficiency,
        tally_=tl,
    )
    gpu_s = tp * lat.replica_s
    have = tp * hardware.memory_bytes * memory_utilization
    return CostEstimate(
        **base,
        hardware=hardware.name,
        tp=tp,
        tp_source=tp_source,
        effective_flops=effective_flops(tl.flops, memory_b, hardware.flops_per_byte),
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


def _lengths_summary(workload: Workload) -> dict[str, Any] | None:
    """Statistics of the chains' lengths: the question mix's, the distribution's, or None (one length)."""
    if workload.questions is not None:
        return workload.questions.summary()
    return workload.lengths.summary() if workload.lengths is not None else None


def _whole(x: float) -> float:
    """``x`` as an int when it is a whole number (token counts of one length stay integers)."""
    return int(x) if float(x).is_integer() else float(x)
