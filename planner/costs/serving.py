"""Serving assumptions: how many sequences share a GPU step, and on how many GPUs.

**Concurrency** is the number of sequences in the running batch of one replica: every decode
step reads the weights once for all of them and each sequence reads its own KV cache
(:mod:`planner.costs.latency`). An execution with ``n`` parallel sequences (a pool of ``n``
samples, ``width x expansions`` beam candidates) fills ``n`` of them; the batch is never
smaller than one execution's sequences. The replica is assumed busy with executions like the
one priced (a capacity-planning steady state: finished sequences are replaced by new ones).

:data:`DEFAULT_CONCURRENCY` = 64 sequences, because

* serving engines batch continuously up to a cap (vLLM's ``max_num_seqs`` is 256 by
  default) and serving benchmarks reach most of their throughput by 64-128 concurrent
  requests;
* with reasoning-length sequences (8k-16k tokens) the KV cache binds first: one 80 GB GPU
  holds some tens of such sequences beside an 8B model's weights, so 64 is what a one-to-four
  GPU replica actually runs;
* past a few tens of sequences the weights' share per token is small next to the KV each
  sequence reads, so costs change little with the exact value (docs/cost-model.md, sensitivity
  table), while a batch of 1 (the old default) charges every token a full read of the
  weights and reverses Kinetics' published ordering of model sizes.

**Tensor parallelism** defaults to the smallest degree whose GPUs hold the weights and the
batch's KV within ``memory_utilization`` of their memory (:func:`choose_tp`). A degree must
divide the attention heads, and the KV heads must split or replicate evenly (the rule vLLM
enforces); it may not exceed ``max_gpus``.

**KV copies under TP** (:func:`kv_replication`): a replica does not always split the KV cache
``tp`` ways. As vLLM lays it out, when a model has fewer KV heads than ranks each rank keeps
one whole head (``tp / kv_heads`` copies of the cache in all), and an MLA model keeps its whole
latent cache on every rank (``tp`` copies). Memory fit, the largest batch and the KV each
decode step reads count those copies.
"""

from __future__ import annotations

from collections.abc import Callable

from ..catalog import HardwareSpec
from .spec import ModelSpec

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_GPUS",
    "DEFAULT_MEMORY_UTILIZATION",
    "tp_degrees",
    "check_tp",
    "choose_tp",
    "check_concurrency",
    "kv_replication",
]

DEFAULT_CONCURRENCY = 64  # sequences per decode step of one replica (module docstring)
DEFAULT_MAX_GPUS = 64  # GPUs one replica may span (8 nodes of 8): the old power-of-two range
DEFAULT_MEMORY_UTILIZATION = 0.9  # vLLM's gpu_memory_utilization default; the rest: activations


def check_concurrency(concurrency: int) -> int:
    """``concurrency`` as an int, or a one-line ``ValueError``."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1 (sequences per batch), got {concurrency!r}")
    return concurrency


def _divides(spec: ModelSpec, tp: int) -> bool:
    heads, kv = spec.num_heads, spec.num_kv_heads
    if heads % tp:
        return False
    return kv % tp == 0 if tp < kv else tp % kv == 0


def tp_degrees(spec: ModelSpec, max_gpus: int = DEFAULT_MAX_GPUS) -> list[int]:
    """Tensor-parallel degrees ``spec`` can use on up to ``max_gpus`` GPUs (module docstring).

    Examples
    --------
    >>> tp_degrees(ModelSpec.from_catalog("qwen3-14b"), 8)  # 40 query heads, 8 KV heads
    [1, 2, 4, 8]
    """
    return [t for t in range(1, max_gpus + 1) if _divides(spec, t)]


def check_tp(spec: ModelSpec, tp: int, *, max_gpus: int = DEFAULT_MAX_GPUS, hardware: str = "") -> int:
    """``tp`` when ``spec`` can use it, else a one-line ``ValueError`` saying why and what can."""
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise ValueError(f"tp (tensor-parallel degree) must be an integer >= 1, got {tp!r}")
    if tp > max_gpus:
        where = f" of {hardware}" if hardware else ""
        raise ValueError(f"--tp {tp} exceeds the {max_gpus} GPUs{where} a replica may use (max_gpus)")
    if not _divides(spec, tp):
        valid = ", ".join(map(str, tp_degrees(spec, max_gpus)))
        raise ValueError(
            f"--tp {tp} does not divide {spec.name}'s {spec.num_heads} attention heads / "
            f"{spec.num_kv_heads} KV heads; valid degrees: {valid}"
        )
    return tp


def kv_replication(spec: ModelSpec, tp: int) -> float:
    """Copies of the full KV cache a replica of ``tp`` GPUs holds (module docstring): ``tp`` for
    MLA, ``tp x max(1, kv_heads // tp) / kv_heads`` otherwise (1 while the KV heads split evenly).

    Examples
    --------
    >>> kv_replication(ModelSpec.from_catalog("qwen3-14b"), 8)  # 8 KV heads: one per rank
    1.0
    >>> kv_replication(ModelSpec.from_catalog("qwen3-30b-a3b"), 8)  # 4 KV heads on 8 ranks
    2.0
    >>> kv_replication(ModelSpec.from_catalog("deepseek-v3"), 8)  # MLA: the latent on every rank
    8.0
    """
    if spec.attention == "MLA":
        return float(tp)
    kv = int(spec.num_kv_heads)
    if kv <= 0:
        return 1.0
    return tp * max(1, kv // tp) / kv


def choose_tp(
    spec: ModelSpec,
    need_bytes: float | Callable[[int], float],
    hardware: HardwareSpec,
    *,
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
    max_gpus: int = DEFAULT_MAX_GPUS,
    what: str = "weights + KV",
) -> int:
    """Smallest usable degree whose ``tp`` GPUs hold ``need_bytes`` within ``memory_utilization``
    of their memory; a one-line ``ValueError`` when none up to ``max_gpus`` does. ``need_bytes``
    may be a function of the degree (the KV copies of :func:`kv_replication` grow with it)."""
    need = need_bytes if callable(need_bytes) else (lambda _tp: need_bytes)
    for tp in tp_degrees(spec, max_gpus):
        if need(tp) <= tp * hardware.memory_bytes * memory_utilization:
            return tp
    top = max(tp_degrees(spec, max_gpus))
    raise ValueError(
        f"{spec.name} needs {need(top) / 1e9:,.1f} GB ({what}), more than {top} x {hardware.name} "
        f"hold at {memory_utilization:.0%} ({top * hardware.memory_bytes * memory_utilization / 1e9:,.0f} GB); "
        "lower --concurrency, or use larger GPUs"
    )
