"""KV-cache and capacity frames of the report (see :mod:`planner.report.data` for the context
and columns): KV bytes against parallel samples and context, measured KV points, and the GPUs
and dollars a target load needs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from fitting import schema as S

from ..constants import ARM, KNOB_VALUE, SOURCE
from ..costs import Workload, kv_peak_bytes, plan_capacity
from ..space import GPU_MEMORY_USABLE, workload_for
from .data import KIND, OPTION, SERIES, TARGET, PlanContext, model_order

__all__ = ["kv_frame", "capacity_frame", "KV_CONTEXTS", "KV_SAMPLES"]

#: context lengths per sample (prompt + generated tokens) of the predicted KV lines
KV_CONTEXTS = (1024, 8192, 32768)
KV_SAMPLES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def kv_frame(ctx: PlanContext, models: Sequence[str] | None = None) -> pd.DataFrame:
    """KV-cache bytes of one query against the number of parallel samples, per model.

    * ``predicted`` rows (:data:`KIND`): :func:`planner.costs.kv_peak_bytes` of a pool of n
      samples, with the shared prompt held once (prefix sharing, as vLLM/SGLang serve) at
      the profile's context and at :data:`KV_CONTEXTS` tokens per sample, and without
      sharing (every sample holds its own prompt, as HF ``generate`` does) at the profile's
      context;
    * ``measured`` rows: the profile's measured KV peak of a whole pool request (the curves
      table's ``mean_kv_bytes`` at k = pool size; how it was measured is in ``kv_source``);
    * ``capacity`` rows: the GPU memory left for KV after the weights (tp GPUs x 90%), per model.
    """
    curves = ctx.profile.curves
    samples = ctx.profile.samples
    models = list(models) if models is not None else model_order(ctx)
    rows = []
    for m in models:
        spec = ctx.profile.specs[m]
        pool = curves[
            (curves[S.MODEL] == m) & (curves[S.STRATEGY] == "pool") & (curves[S.K] == curves[S.POOL_SIZE])
        ]
        pool = pool.drop_duplicates([S.CONFIG, S.DIFFICULTY])
        prompt = float(pool[S.MEAN_PROMPT_TOKENS].mean()) if len(pool) else math.nan
        per_sample = (pool[S.MEAN_COMPLETION_TOKENS] / pool[S.K]).mean() if len(pool) else math.nan
        if not math.isfinite(prompt):
            rows_m = samples[samples[S.MODEL] == m]
            prompt = float(rows_m[S.PROMPT_TOKENS].astype(float).mean()) if len(rows_m) else 64.0
            per_sample = float(rows_m[S.COMPLETION_TOKENS].astype(float).mean()) if len(rows_m) else 256.0
        prompt = max(int(round(prompt)), 1)
        profiled = prompt + max(int(round(per_sample)), 1)
        lines = [
            (profiled, True, "profiled context per sample, prompt shared (vLLM, SGLang)"),
            (profiled, False, "profiled context per sample, prompt per sample (HF generate)"),
        ]
        lines += [(c, True, f"{c:,} tokens per sample, prompt shared") for c in KV_CONTEXTS if c > profiled]
        for context, sharing, label in lines:
            p = min(prompt, context - 1)
            for n in KV_SAMPLES:
                w = Workload.from_strategy(f"pool:n={n}", p, context - p, prefix_sharing=sharing)
                rows.append(
                    {
                        S.MODEL: m,
                        KIND: "predicted",
                        "samples": n,
                        "context_tokens": context,
                        "prefix_sharing": sharing,
                        SERIES: label,
                        S.KV_BYTES_PEAK: kv_peak_bytes(spec, w),
                        SOURCE: "predicted: planner.costs.kv_peak_bytes",
                    }
                )
        meas = pool[pool[S.MEAN_KV_BYTES].notna()]
        src = samples.loc[samples[S.MODEL] == m, S.KV_SOURCE].dropna().unique()
        for _, r in meas.iterrows():
            ctx_tokens = r[S.MEAN_PROMPT_TOKENS] + r[S.MEAN_COMPLETION_TOKENS] / r[S.K]
            rows.append(
                {
                    S.MODEL: m,
                    KIND: "measured",
                    "samples": int(r[S.K]),
                    "context_tokens": float(ctx_tokens),
                    "prefix_sharing": None,
                    SERIES: f"measured ({', '.join(src) or 'unknown'})",
                    S.KV_BYTES_PEAK: float(r[S.MEAN_KV_BYTES]),
                    S.DIFFICULTY: r[S.DIFFICULTY],
                    SOURCE: f"measured ({', '.join(src) or 'kv_source unknown'})",
                }
            )
        if ctx.hardware is not None:
            tp = ctx.coster.tp or 1
            avail = tp * ctx.hardware.memory_bytes * GPU_MEMORY_USABLE - float(spec.weight_bytes)
            rows.append(
                {
                    S.MODEL: m,
                    KIND: "capacity",
                    "samples": None,
                    SERIES: f"{ctx.hardware.name} x{tp}: KV room",
                    S.KV_BYTES_PEAK: avail,
                    SOURCE: "catalog memory x 90% - weight bytes",
                }
            )
    return pd.DataFrame(rows)


def capacity_frame(ctx: PlanContext, grid: pd.DataFrame, qps: float = 10.0) -> pd.DataFrame:
    """GPUs and US$ per 1,000 queries to serve ``qps`` queries per second of each option the
    budget grid recommends for the mix (:func:`planner.costs.plan_capacity`: roofline model,
    KV memory, tensor parallelism chosen for the fewest GPUs). PREDICTED, from the option's
    measured mean tokens.

    Besides the plan (GPUs, replicas, queries in flight, latency, US$ per 1k queries at the
    target load, ``utilization`` of the replicas), two load-independent columns:
    ``max_qps_per_gpu`` (a replica's throughput / tp) and ``usd_per_1k_queries_full_load``
    = 1000 x tp x price per GPU-hour / 3600 / throughput (what 1,000 queries cost on fully
    used GPUs).
    """
    if ctx.hardware is None:
        return pd.DataFrame()
    mine = grid[(grid[TARGET] == ctx.mix_label) & grid[ARM].notna()] if ARM in grid else grid.iloc[:0]
    rows = []
    seen = set()
    for _, r in mine.iterrows():
        key = (r[ARM], float(r[KNOB_VALUE]))
        if key in seen:
            continue
        seen.add(key)
        arm = ctx.space.arm_by_key(r[ARM])
        prompt = completion = 0.0
        for d, w in ctx.mix.items():
            u = ctx.space.curves[arm][d].usage([r[KNOB_VALUE]])
            prompt += w * float(u.base_prompt_tokens[0])
            completion += w * float(u.completion_tokens[0])
        row = {
            "budgets": ",".join(
                mine.loc[(mine[ARM] == key[0]) & (mine[KNOB_VALUE] == key[1]), "budget_index"].map(
                    lambda i: f"B{i}"
                )
            ),
            OPTION: r[OPTION],
            "accuracy_source": r[SOURCE],
            S.ACCURACY: r[S.ACCURACY],
            "qps": float(qps),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
        }
        try:
            work = workload_for(arm, key[1], prompt, completion, prefix_sharing=ctx.coster.prefix_sharing)
            plan = plan_capacity(ctx.coster.spec(arm.model), work, ctx.hardware, qps)
        except ValueError as exc:
            row.update(note=str(exc))
            rows.append(row)
            continue
        full_load = (
            1000.0 * plan.tp * ctx.hardware.usd_per_gpu_hour / 3600.0 / plan.throughput_qps_per_replica
        )
        row.update(
            gpus=plan.gpus,
            tp=plan.tp,
            replicas=plan.replicas,
            concurrency=plan.concurrency,
            latency_s=plan.latency_s,
            usd_per_1k_queries=plan.usd_per_1k_queries,
            binding=plan.binding,
            utilization=plan.utilization,
            max_qps_per_gpu=plan.throughput_qps_per_replica / plan.tp,
            usd_per_1k_queries_full_load=full_load,
            kv_bytes_per_query=plan.kv_bytes_per_query,
            hardware=plan.hardware,
            note=plan.reason,
            cost_source=plan.source,
        )
        rows.append(row)
    return pd.DataFrame(rows)
