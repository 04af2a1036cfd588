"""The cost model: the single source of cost numbers the planner and reports use.

It prices a strategy execution from token counts (measured by the profiler, or assumed for a
what-if) and the model's spec (:class:`ModelSpec`, from the run metadata, a HF config or the
catalog): FLOPs (prefill and decode), KV-cache bytes at the peak, memory traffic per decode
step, Kinetics-style effective FLOPs, roofline latency on an accelerator, dollars (GPU time or
API tokens) and the GPUs a target QPS needs. Each formula, with its units and source, is in
the docstring of the module that implements it:

* :mod:`.spec` — parameters (total, active), KV bytes per token, context limit from a config
  (families in :mod:`._hf_config`) or from given numbers (:mod:`.given`)
* :mod:`.flops` — forward FLOPs
* :mod:`.memory` — KV bytes, weight and KV traffic, effective FLOPs
* :mod:`.lengths` — per-sample generated lengths (:class:`TokenLengths`)
* :mod:`.question_mix` — the questions a workload serves, each with its own lengths (:class:`QuestionMix`)
* :mod:`.workload` — the execution shape of each strategy (:class:`Workload`, :class:`Phase`)
* :mod:`.execution` — one execution's expected FLOPs, tokens, KV reads, steps and peak KV
* :mod:`.serving` — the serving assumptions: concurrency, tensor parallelism
* :mod:`.latency` — roofline latency and GPU time in a continuously batched replica
* :mod:`.dollars` — self-hosted and API dollars
* :mod:`.estimate` — everything for one execution (:func:`estimate_cost`)
* :mod:`.capacity` — GPUs for a target QPS (:func:`plan_capacity`)
* :mod:`.samples` — FLOPs of measured rows of the samples table (:func:`price_samples`)

Importing this package does not import torch (only :func:`planner.catalog.calibrate_cpu` does).
"""

from __future__ import annotations

from ..catalog import ApiPrice, HardwareSpec, calibrate_cpu, get_api_price, get_hardware
from .capacity import CapacityPlan, plan_capacity
from .dollars import ApiCost, api_cost, api_usd, gpu_seconds, self_hosted_usd
from .estimate import CostEstimate, auto_tp, estimate_cost, memory_needed_bytes
from .execution import Tally, check_context, kv_peak_bytes, tally
from .flops import decode_flops, forward_flops, prefill_flops, sum_capped, token_flops
from .given import parse_model_spec
from .latency import (
    LatencyBreakdown,
    StepTrace,
    estimate_latency,
    roofline_time_s,
    traffic_bytes,
    workload_steps,
)
from .lengths import TokenLengths, expected_max_many
from .memory import (
    decode_step_bytes,
    effective_flops,
    experts_touched,
    kv_attended_bytes,
    kv_cache_bytes,
    kv_read_bytes,
    weight_bytes_read,
)
from .question_mix import Atoms, QuestionMix
from .samples import price_samples
from .serving import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_GPUS,
    DEFAULT_MEMORY_UTILIZATION,
    check_tp,
    choose_tp,
    kv_replication,
    tp_degrees,
)
from .spec import DTYPE_BYTES, SUPPORTED_MODEL_TYPES, LayerSpec, ModelSpec, SpecError, lab_checkpoint_dirs
from .workload import Calls, Phase, Workload

__all__ = [
    # spec
    "ModelSpec",
    "LayerSpec",
    "SpecError",
    "parse_model_spec",
    "SUPPORTED_MODEL_TYPES",
    "DTYPE_BYTES",
    "lab_checkpoint_dirs",
    # flops
    "forward_flops",
    "prefill_flops",
    "decode_flops",
    "token_flops",
    "sum_capped",
    # memory
    "kv_cache_bytes",
    "kv_attended_bytes",
    "kv_read_bytes",
    "experts_touched",
    "weight_bytes_read",
    "decode_step_bytes",
    "effective_flops",
    # lengths and workload
    "TokenLengths",
    "expected_max_many",
    "QuestionMix",
    "Atoms",
    "Workload",
    "Phase",
    "Calls",
    # latency
    "StepTrace",
    "LatencyBreakdown",
    "traffic_bytes",
    "workload_steps",
    "roofline_time_s",
    "estimate_latency",
    # dollars
    "ApiCost",
    "gpu_seconds",
    "self_hosted_usd",
    "api_usd",
    "api_cost",
    # execution, serving, estimate and capacity
    "Tally",
    "tally",
    "check_context",
    "kv_peak_bytes",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_GPUS",
    "DEFAULT_MEMORY_UTILIZATION",
    "tp_degrees",
    "check_tp",
    "choose_tp",
    "kv_replication",
    "CostEstimate",
    "estimate_cost",
    "memory_needed_bytes",
    "auto_tp",
    "CapacityPlan",
    "plan_capacity",
    # samples
    "price_samples",
    # catalog, re-exported for convenience
    "HardwareSpec",
    "ApiPrice",
    "get_hardware",
    "get_api_price",
    "calibrate_cpu",
]
