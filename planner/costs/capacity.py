"""Capacity: how many GPUs serve a target QPS of a strategy, and what 1,000 queries cost.

A replica is ``tp`` GPUs holding one copy of the weights. Its KV memory caps the sequences it
decodes at once (the concurrency ``B``; :mod:`planner.costs.serving`):

.. math:: W + \\max(KV_{peak}, B \\, \\bar K) \\le \\tau \\, m \\, u

(``m`` memory per GPU, ``u`` usable share, ``W`` weight bytes, ``KV_peak`` one execution's
peak, ``K`` the mean KV a decode token's sequence holds; :func:`~planner.costs.estimate.memory_needed_bytes`).
At concurrency ``B`` a replica finishes ``1 / replica_s(B)`` executions per second
(:func:`~planner.costs.latency.estimate_latency`), which rises with ``B`` as the weight reads
amortize, until the steps turn compute-bound, toward the compute roof
``1 / (F / (pi tau))`` (``F`` FLOPs per execution). The plan takes the concurrency with the
best throughput allowed by memory, an optional cap and an optional latency target, then

.. math:: \\text{replicas} = \\lceil QPS / \\text{throughput} \\rceil, \\quad
          \\text{GPUs} = \\tau \\cdot \\text{replicas}, \\quad
          \\$/1k = 1000 \\cdot \\text{GPUs} \\cdot p_{hour} / (3600 \\, QPS)

``binding`` says what limits a replica's throughput: ``"compute"`` (within 10% of the compute
roof: more memory would not help), ``"kv_memory"`` (the KV cache caps concurrency below that),
``"latency_slo"`` (the latency target does) or ``"max_concurrency"`` (the cap does).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..catalog import HardwareSpec
from .estimate import SOURCE, memory_needed_bytes
from .execution import Tally, check_context, tally
from .latency import estimate_latency
from .serving import DEFAULT_MAX_GPUS, check_tp, kv_replication, tp_degrees
from .spec import ModelSpec
from .workload import Workload

__all__ = ["CapacityPlan", "plan_capacity"]
_ROOF_SHARE = 0.9  # throughput within this share of the compute roof counts as compute-bound


@dataclass(frozen=True)
class CapacityPlan:
    """GPUs for a target QPS (predicted by the roofline cost model; see :func:`plan_capacity`)."""

    model: str
    hardware: str
    strategy: str
    qps: float
    tp: int
    replicas: int
    gpus: int
    concurrency: int  # sequences decoded together per replica
    concurrency_memory_limit: int  # the most sequences the replica's KV memory holds
    throughput_qps_per_replica: float
    compute_roof_qps_per_replica: float
    latency_s: float
    binding: str
    reason: str
    utilization: float
    kv_bytes_per_query: float
    weight_bytes: float
    usd_per_hour: float
    usd_per_1k_queries: float
    executions_in_flight: float = 1.0
    source: str = SOURCE

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the plan."""
        return asdict(self)


def _replica(
    spec: ModelSpec,
    workload: Workload,
    tl: Tally,
    hardware: HardwareSpec,
    tp: int,
    *,
    max_concurrency: int,
    latency_slo_s: float | None,
    memory_utilization: float,
    lat_kw: dict[str, Any],
) -> dict[str, Any] | None:
    avail = tp * hardware.memory_bytes * memory_utilization
    n = tl.sequences
    if memory_needed_bytes(spec, tl, n, tp) > avail:
        return None
    per_seq = tl.kv_held_bytes_per_token * kv_replication(spec, tp)
    c_mem = int((avail - spec.weight_bytes) // per_seq) if per_seq > 0 else max_concurrency
    c_mem = max(c_mem, n)
    c_cap = max(n, min(c_mem, max_concurrency))
    candidates = sorted({n * 2**k for k in range(int(math.log2(c_cap / n)) + 1)} | {c_cap})
    rows = []
    for c in candidates:
        lat = estimate_latency(spec, workload, hardware, concurrency=c, tp=tp, tally_=tl, **lat_kw)
        rows.append((c, lat.latency_s, lat.throughput_qps))
    allowed = [r for r in rows if latency_slo_s is None or r[1] <= latency_slo_s]
    if not allowed:
        return {
            "infeasible": f"latency {rows[0][1]:.3g} s at concurrency {rows[0][0]} already exceeds the target {latency_slo_s} s"
        }
    best_thr = max(r[2] for r in allowed)
    c, lat_s, thr = next(r for r in allowed if r[2] >= 0.99 * best_thr)
    eff = lat_kw.get("compute_efficiency", 1.0) * tp * (lat_kw.get("tp_efficiency", 1.0) if tp > 1 else 1.0)
    roof = hardware.peak_flops * eff / tl.flops if tl.flops > 0 else float("inf")
    if thr >= _ROOF_SHARE * roof:
        binding, reason = (
            "compute",
            f"throughput {thr:.3g}/s is within {1 - _ROOF_SHARE:.0%} of the compute roof {roof:.3g}/s",
        )
    elif len(allowed) < len(rows) and max(r[2] for r in rows) > best_thr:
        binding, reason = "latency_slo", f"the {latency_slo_s} s latency target caps concurrency at {c}"
    elif c_cap == c_mem and c == c_cap:
        binding = "kv_memory"
        reason = f"KV memory holds {c_mem} sequences ({per_seq / 1e9:.3g} GB each on average) beside {spec.weight_bytes / 1e9:.3g} GB of weights"
    elif c == c_cap:
        binding, reason = "max_concurrency", f"concurrency capped at {max_concurrency} sequences"
    else:
        binding, reason = "compute", f"throughput stops growing past concurrency {c} (step overheads)"
    return dict(c=c, c_mem=c_mem, latency_s=lat_s, thr=thr, roof=roof, binding=binding, reason=reason)


def plan_capacity(
    spec: ModelSpec,
    workload: Workload,
    hardware: HardwareSpec,
    qps: float,
    *,
    tp: int | None = None,
    max_concurrency: int = 1024,
    max_gpus: int = DEFAULT_MAX_GPUS,
    latency_slo_s: float | None = None,
    memory_utilization: float = 0.9,
    tp_efficiency: float = 1.0,
    compute_efficiency: float = 1.0,
    memory_efficiency: float = 1.0,
    mla: str = "absorbed",
) -> CapacityPlan:
    """GPUs needed to serve ``qps`` executions per second of ``workload`` (module docstring).

    ``tp=None`` tries the smallest usable tensor-parallel degree that holds the weights and one
    execution's KV, and the next two, and keeps the one needing the fewest GPUs.
    ``max_concurrency`` caps the sequences per replica (vLLM's ``max_num_seqs``).
    Raises ``ValueError`` when nothing fits or the latency target cannot be met.

    Examples
    --------
    >>> from planner.catalog import get_hardware
    >>> spec = ModelSpec.from_catalog("llama-3.1-8b")
    >>> w = Workload.from_strategy("pool:n=8", prompt_tokens=512, gen_tokens=1024)
    >>> plan = plan_capacity(spec, w, get_hardware("h100"), qps=2.0)
    >>> plan.binding in {"compute", "kv_memory"}, plan.gpus >= 1
    (True, True)
    """
    if not qps > 0:
        raise ValueError(f"qps must be > 0, got {qps!r}")
    if latency_slo_s is not None and not latency_slo_s > 0:
        raise ValueError(f"the latency target must be > 0 seconds, got {latency_slo_s!r}")
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be an integer >= 1, got {max_concurrency!r}")
    if not 0.0 < memory_utilization <= 1.0:
        raise ValueError(f"memory_utilization must be in (0, 1], got {memory_utilization!r}")
    check_context(spec, workload)
    tl = tally(spec, workload, mla=mla)
    lat_kw = dict(
        tp_efficiency=tp_efficiency,
        compute_efficiency=compute_efficiency,
        memory_efficiency=memory_efficiency,
        mla=mla,
    )
    if tp is not None:
        options = [check_tp(spec, tp, max_gpus=max_gpus, hardware=hardware.name)]
    else:
        fitting = [
            t
            for t in tp_degrees(spec, max_gpus)
            if t * hardware.memory_bytes * memory_utilization
            >= memory_needed_bytes(spec, tl, tl.sequences, t)
        ]
        options = fitting[:3]
    plans = []
    problems = []
    for t in options:
        rep = _replica(
            spec,
            workload,
            tl,
            hardware,
            t,
            max_concurrency=max_concurrency,
            latency_slo_s=latency_slo_s,
            memory_utilization=memory_utilization,
            lat_kw=lat_kw,
        )
        if rep is None:
            problems.append(
                f"tp={t}: weights {spec.weight_bytes / 1e9:.3g} GB + one execution's KV {tl.kv_peak_bytes / 1e9:.3g} GB "
                f"exceed {t} x {hardware.memory_bytes / 1e9:.3g} GB x {memory_utilization:.0%}"
            )
            continue
        if "infeasible" in rep:
            problems.append(f"tp={t}: {rep['infeasible']}")
            continue
        replicas = max(1, math.ceil(qps / rep["thr"]))
        plans.append((replicas * t, t, replicas, rep))
    if not plans:
        detail = (
            "; ".join(problems)
            if problems
            else f"even {max_gpus} GPUs cannot hold the weights and one execution's KV"
        )
        raise ValueError(f"{spec.name} on {hardware.name}: no feasible deployment ({detail})")
    gpus, t, replicas, rep = min(plans, key=lambda p: (p[0], p[1]))
    usd_h = gpus * hardware.usd_per_gpu_hour
    return CapacityPlan(
        model=spec.name,
        hardware=hardware.name,
        strategy=workload.describe(),
        qps=float(qps),
        tp=t,
        replicas=replicas,
        gpus=gpus,
        concurrency=rep["c"],
        concurrency_memory_limit=rep["c_mem"],
        throughput_qps_per_replica=rep["thr"],
        compute_roof_qps_per_replica=rep["roof"],
        latency_s=rep["latency_s"],
        binding=rep["binding"],
        reason=rep["reason"],
        utilization=qps / (replicas * rep["thr"]),
        kv_bytes_per_query=tl.kv_peak_bytes,
        weight_bytes=spec.weight_bytes,
        usd_per_hour=usd_h,
        usd_per_1k_queries=1000.0 * usd_h / 3600.0 / qps,
        executions_in_flight=rep["c"] / tl.sequences,
    )
