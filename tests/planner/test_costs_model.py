"""The cost formulas: closed forms against brute-force loops, workloads of every strategy,
roofline latency, dollars and capacity with hand-computed answers."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fitting import schema as S
from planner.catalog import ApiPrice, HardwareSpec, get_api_price, get_hardware
from planner.costs import (
    ModelSpec,
    Phase,
    Workload,
    api_cost,
    decode_flops,
    decode_step_bytes,
    effective_flops,
    estimate_cost,
    estimate_latency,
    experts_touched,
    forward_flops,
    kv_cache_bytes,
    kv_peak_bytes,
    kv_read_bytes,
    plan_capacity,
    price_samples,
    roofline_time_s,
    self_hosted_usd,
    sum_capped,
    token_flops,
    weight_bytes_read,
    workload_steps,
)
from profiling.strategies import DESCRIPTORS, WorkloadShape, get_descriptor, get_strategy
from profiling.strategy_spec import StrategySpec

LLAMA8 = ModelSpec.from_catalog("llama-3.1-8b")
MIXTRAL = ModelSpec.from_catalog("mixtral-8x7b")
# a tiny model with a sliding window on every layer
SLIDING = ModelSpec.from_hf_config(
    dict(
        model_type="mistral",
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
        sliding_window=8,
    )
)
# round numbers make hand-computed answers easy
TOY_HW = HardwareSpec(
    name="toy", peak_flops=1e12, memory_bandwidth_bytes_per_s=1e10, memory_bytes=1e11, usd_per_gpu_hour=3.6
)


# ---- flops ------------------------------------------------------------------------------------
@given(st.integers(0, 50), st.integers(0, 30), st.one_of(st.none(), st.integers(1, 40)))
def test_sum_capped_matches_brute_force(start, count, cap):
    brute = sum(min(start + i, cap) if cap else start + i for i in range(1, count + 1))
    assert sum_capped(start, count, cap) == brute


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 300), st.integers(1, 40), st.sampled_from(["llama", "sliding", "mixtral"]))
def test_decode_flops_equals_sum_of_one_token_forwards(context, gen, which):
    spec = {"llama": LLAMA8, "sliding": SLIDING, "mixtral": MIXTRAL}[which]
    brute = sum(forward_flops(spec, 1, context + j) for j in range(gen))
    assert decode_flops(spec, context, gen) == pytest.approx(brute, rel=1e-12)


def test_prefill_causal_counts_half_the_full_square_plus_diagonal():
    n = 100
    causal = forward_flops(LLAMA8, n, 0, attention="causal")
    full = forward_flops(LLAMA8, n, 0, attention="full")
    a = LLAMA8.attention_flops_per_key() * LLAMA8.num_layers
    assert full - causal == pytest.approx(a * (n * n - n * (n + 1) / 2))


def test_linear_part_is_two_flops_per_active_matmul_parameter():
    f = forward_flops(MIXTRAL, 10, 0, logits_tokens=10, attention="full") - forward_flops(
        MIXTRAL, 0, 0, logits_tokens=0
    )
    attn = MIXTRAL.attention_flops_per_key() * MIXTRAL.num_layers * 10 * 10
    assert f - attn == pytest.approx(2 * MIXTRAL.matmul_params_active * 10)
    # active, not total: Mixtral runs 2 of 8 experts
    assert MIXTRAL.matmul_params_active < 0.3 * MIXTRAL.params_total


def test_token_flops_splits_prefill_and_decode_and_calls_only_change_attention():
    pre, dec = token_flops(LLAMA8, 200, 100)
    assert pre == forward_flops(LLAMA8, 200, 0) and dec == decode_flops(LLAMA8, 200, 100)
    pre4, dec4 = token_flops(LLAMA8, 200, 100, calls=4)  # 4 calls of 50 prompt + 25 generated tokens
    assert pre4 == pytest.approx(4 * forward_flops(LLAMA8, 50, 0))
    assert dec4 == pytest.approx(4 * decode_flops(LLAMA8, 50, 25))
    assert pre4 + dec4 < pre + dec  # shorter contexts per call: less attention


# ---- memory -----------------------------------------------------------------------------------
def test_kv_cache_bytes_caps_sliding_layers_at_the_window():
    b = SLIDING.kv_bytes_per_token_per_layer
    assert kv_cache_bytes(SLIDING, 5) == 2 * b * 5
    assert kv_cache_bytes(SLIDING, 500) == 2 * b * 8


def test_experts_touched_matches_a_seeded_simulation():
    rng = np.random.default_rng(0)
    e, k = 8, 2
    for batch in (1, 3, 16):
        sims = [
            len({x for _ in range(batch) for x in rng.choice(e, size=k, replace=False)}) for _ in range(4000)
        ]
        assert experts_touched(e, k, batch) == pytest.approx(np.mean(sims), rel=0.02)
    assert experts_touched(e, k, 1) == k and experts_touched(e, k, 10_000) == pytest.approx(e)


def test_moe_weight_traffic_grows_with_batch_up_to_all_experts():
    one, many = weight_bytes_read(MIXTRAL, 1), weight_bytes_read(MIXTRAL, 4096)
    assert one < 0.35 * MIXTRAL.weight_bytes
    assert many == pytest.approx(
        MIXTRAL.weight_bytes - (MIXTRAL.vocab_size * MIXTRAL.hidden_size) * 2 * 0, rel=0.01
    )
    dense_one, dense_many = weight_bytes_read(LLAMA8, 1), weight_bytes_read(LLAMA8, 64)
    assert dense_many - dense_one == 63 * LLAMA8.hidden_size * 2  # only more embedding rows


def test_decode_step_bytes_reads_each_sequences_kv():
    b1 = decode_step_bytes(LLAMA8, 4, 1000)
    per_seq = decode_step_bytes(LLAMA8, 4, np.array([1000, 1000, 1000, 1000]))
    assert b1 == per_seq == weight_bytes_read(LLAMA8, 4) + 4 * kv_cache_bytes(LLAMA8, 1001)


def test_effective_flops_charges_bytes_at_the_ridge_point():
    h100 = get_hardware("h100")
    assert effective_flops(1e12, 1e9, h100.flops_per_byte) == pytest.approx(1e12 + 1e9 * 989.4e12 / 3.35e12)


# ---- workloads --------------------------------------------------------------------------------
def test_pool_shares_the_prompt_once_or_copies_it_n_times():
    shared = Workload.from_strategy("pool:n=16", 512, 2048)
    copied = Workload.from_strategy("pool:n=16", 512, 2048, prefix_sharing=False)
    assert shared.phases() == (Phase(16, 512, 2048, 1, 512, 512),)
    assert copied.phases() == (Phase(16, 512, 2048, 16, 512, 16 * 512),)
    assert shared.kv_tokens_peak == 512 + 16 * 2048 and copied.kv_tokens_peak == 16 * (512 + 2048)
    assert kv_peak_bytes(LLAMA8, shared) == (512 + 16 * 2048) * 131072
    e_s, e_c = estimate_cost(LLAMA8, shared), estimate_cost(LLAMA8, copied)
    assert e_c.prefill_flops == pytest.approx(16 * e_s.prefill_flops)
    assert e_c.decode_flops == pytest.approx(e_s.decode_flops)


def test_beam_steps_decode_width_times_expansions_and_keep_histories():
    w = Workload.from_strategy("beam:width=4,expansions=2,steps=3", 100, 30)
    phases = w.phases()
    assert [ph.sequences for ph in phases] == [8, 8, 8]
    assert [ph.context_tokens for ph in phases] == [100, 110, 120]
    assert [ph.kv_tokens_start for ph in phases] == [100, 100 + 4 * 10, 100 + 4 * 20]
    assert [ph.prefill_chunks for ph in phases] == [1, 0, 0]
    assert w.generated_tokens == 3 * 8 * 10
    resent = Workload.from_strategy("beam:width=4,expansions=2,max_steps=3", 100, 30, prefix_sharing=False)
    assert [ph.prefill_tokens for ph in resent.phases()] == [100, 110, 120]
    assert resent.prefilled_tokens == 8 * (100 + 110 + 120)


def test_refine_hybrid_and_budget_shapes():
    refine = Workload.from_strategy("refine:rounds=2", 100, 40)
    assert [(ph.context_tokens, ph.gen_tokens) for ph in refine.phases()] == [(100, 40), (120, 20), (120, 20)]
    hybrid = Workload.from_strategy("hybrid:n=3,rounds=1,keep=0.25", 100, 40)
    assert [(ph.sequences, ph.context_tokens, ph.gen_tokens) for ph in hybrid.phases()] == [
        (3, 100, 40),
        (3, 110, 30),
    ]
    budget = Workload.from_strategy("budget:tokens=16", 100, 40)
    assert [(ph.context_tokens, ph.gen_tokens) for ph in budget.phases()] == [(100, 16), (116, 32)]
    short = Workload.from_strategy("budget:tokens=64,answer_tokens=8", 100, 40)
    assert short.generated_tokens == 40 + 8  # the chain stops before the budget


def test_sampling_knobs_are_ignored_and_unknown_knobs_are_errors():
    assert Workload.from_strategy("pool:n=4,temperature=0.7,reward=oracle", 10, 10).shape.samples == 4
    with pytest.raises(ValueError, match=r"unknown knob 'widht'.*accepts"):
        Workload.from_strategy("beam:widht=4", 10, 10)
    with pytest.raises(ValueError, match="unknown strategy 'astar'"):
        Workload.from_strategy("astar:n=4", 10, 10)
    with pytest.raises(ValueError, match="knob 'n' must be an integer >= 1, got 'two'"):
        Workload.from_strategy("pool:n=two", 10, 10)
    with pytest.raises(ValueError, match="knob 'n' must be an integer >= 1, got 0"):
        Workload.from_strategy("pool:n=0", 10, 10)
    with pytest.raises(ValueError, match=r"knob 'keep' must be a number in \[0, 1\)"):
        Workload.from_strategy("refine:keep=1.5", 10, 10)


@pytest.mark.parametrize("name", list(DESCRIPTORS))
def test_cost_model_defaults_are_the_profilers_knob_defaults(name):
    """One descriptor per strategy: `ttc costs` fills in what `ttc profile` runs by default."""
    desc = get_descriptor(name)
    params = get_strategy(name).params  # every knob of the profiler's default config
    default = Workload.from_strategy(name, 100, 50)
    assert default == Workload.from_strategy(StrategySpec(name, dict(params)), 100, 50)
    assumed = {k: knob.default for k, knob in desc.assumptions.items()}
    assert default.knobs == {k: {**params, **assumed}[k] for k in desc.cost_knobs}


# ---- latency ----------------------------------------------------------------------------------
def test_roofline_latency_equals_a_step_by_step_loop_when_every_step_is_memory_bound():
    """Two pools of 3 in lockstep are a batch of 6 sequences; the closed form's roofline of the
    mean decode token equals the per-step sum because every step is memory-bound."""
    w = Workload.from_strategy("pool:n=3", 20, 12)
    h100 = get_hardware("h100")
    total = 0.0
    for ph in w.phases():
        b = 2 * ph.sequences  # concurrency 2
        total += roofline_time_s(
            2 * forward_flops(LLAMA8, ph.prefill_tokens, 0),
            weight_bytes_read(LLAMA8, 2 * ph.prefill_tokens) + 2 * kv_cache_bytes(LLAMA8, ph.context_tokens),
            h100,
        )
        for j in range(ph.gen_tokens):
            flops = b * forward_flops(LLAMA8, 1, ph.context_tokens + j)
            total += roofline_time_s(flops, decode_step_bytes(LLAMA8, b, ph.context_tokens + j), h100)
    lat = estimate_latency(LLAMA8, w, h100, concurrency=6)
    assert lat.latency_s == pytest.approx(total, rel=1e-12)
    assert lat.steps == 1 + 12 and lat.compute_bound_fraction == 0.0
    assert lat.replica_s == pytest.approx(total / 2, rel=1e-12)  # two executions share the steps


def test_decode_at_batch_one_is_memory_bound_and_tp_divides_time():
    w = Workload.from_strategy("greedy", 0, 100)
    h100 = get_hardware("h100")
    one = estimate_latency(LLAMA8, w, h100, concurrency=1)
    tr = workload_steps(LLAMA8, w)
    assert one.compute_bound_fraction == 0.0
    assert one.latency_s == pytest.approx(tr.memory_bytes.sum() / h100.memory_bandwidth_bytes_per_s)
    assert estimate_latency(LLAMA8, w, h100, concurrency=1, tp=4).latency_s == pytest.approx(
        one.latency_s / 4
    )
    assert estimate_latency(
        LLAMA8, w, h100, concurrency=1, tp=4, tp_efficiency=0.8
    ).latency_s == pytest.approx(one.latency_s / 3.2)


def test_large_batches_turn_compute_bound_and_overhead_adds_per_step():
    w = Workload.from_strategy("pool:n=64", 16, 8)
    lat = estimate_latency(LLAMA8, w, TOY_HW, concurrency=4096)
    assert lat.compute_bound_fraction == 1.0  # 4096 sequences on a 100 FLOP/byte machine
    assert estimate_latency(LLAMA8, w, TOY_HW, concurrency=1).concurrency == 64  # never below one pool
    slow = HardwareSpec("slow", 1e12, 1e10, 1e11, 1.0, step_overhead_s=0.01, layer_overhead_s=0.001)
    base = estimate_latency(LLAMA8, w, HardwareSpec("fast", 1e12, 1e10, 1e11, 1.0))
    assert estimate_latency(LLAMA8, w, slow).latency_s == pytest.approx(
        base.latency_s + 9 * (0.01 + 32 * 0.001)
    )


def test_bad_parallel_settings_are_errors():
    w = Workload.from_strategy("greedy", 1, 1)
    with pytest.raises(ValueError, match="tp .* must be an integer >= 1"):
        estimate_latency(LLAMA8, w, TOY_HW, tp=0)
    with pytest.raises(ValueError, match="tp_efficiency must be in"):
        estimate_latency(LLAMA8, w, TOY_HW, tp=2, tp_efficiency=1.5)
    with pytest.raises(ValueError, match="concurrency must be an integer >= 1"):
        estimate_cost(LLAMA8, w, TOY_HW, concurrency=0)


# ---- dollars ----------------------------------------------------------------------------------
def test_self_hosted_dollars_are_gpu_seconds_times_price():
    w = Workload.from_strategy("greedy", 0, 50)
    est = estimate_cost(LLAMA8, w, TOY_HW, tp=2, concurrency=4)
    assert est.gpu_seconds == pytest.approx(2 * est.latency_s / 4)
    assert est.cost_usd == pytest.approx(est.gpu_seconds * 3.6 / 3600)
    assert self_hosted_usd(7200, 1.5) == 3.0


def test_api_prices_known_figures():
    r1, o1 = get_api_price("deepseek-r1"), get_api_price("o1")
    assert (r1.input_usd_per_mtok, r1.output_usd_per_mtok) == (0.55, 2.19)
    assert (o1.input_usd_per_mtok, o1.output_usd_per_mtok) == (15.0, 60.0)
    w = Workload.from_strategy("greedy", 1_000_000, 1_000_000)
    assert api_cost(w, r1).usd == pytest.approx(0.55 + 2.19)
    assert api_cost(w, o1).usd == pytest.approx(15 + 60)


def test_api_bills_every_request_and_prices_prompt_repeats_as_cached_when_shared():
    price = ApiPrice(
        "x", "p", input_usd_per_mtok=1.0, output_usd_per_mtok=4.0, cached_input_usd_per_mtok=0.25
    )
    shared = api_cost(Workload.from_strategy("pool:n=4", 1000, 500), price)
    assert (shared.input_tokens, shared.cached_input_tokens, shared.output_tokens) == (4000, 3000, 2000)
    assert shared.usd == pytest.approx(1e-6 * (1000 * 1.0 + 3000 * 0.25 + 2000 * 4.0))
    plain = api_cost(Workload.from_strategy("pool:n=4", 1000, 500, prefix_sharing=False), price)
    assert plain.cached_input_tokens == 0 and plain.usd == pytest.approx(1e-6 * (4000 + 8000))


# ---- estimate and capacity --------------------------------------------------------------------
def test_estimate_auto_tp_fits_weights_and_kv():
    spec = ModelSpec.from_catalog("llama-3.1-70b")
    w = Workload.from_strategy("pool:n=16", 512, 2048)
    est = estimate_cost(spec, w, get_hardware("h100"))
    # 141 GB of weights + the KV of 64 sequences holding 512 + 1,024 tokens on average
    # (32 GB; one pool's peak is 10.9 GB) > 2 x 72 GB usable
    assert est.tp == 4 and est.tp_source == "auto" and est.fits_in_memory and est.concurrency == 64
    mean_kv = kv_read_bytes(spec, 512, 2048) / 2048
    assert est.memory_needed_bytes == pytest.approx(spec.weight_bytes + 64 * mean_kv)
    assert est.effective_flops > est.flops
    one_pool = estimate_cost(spec, w, get_hardware("h100"), concurrency=16)
    assert one_pool.memory_needed_bytes == pytest.approx(spec.weight_bytes + est.kv_bytes_peak)
    cramped = estimate_cost(spec, w, get_hardware("h100"), tp=1)
    assert not cramped.fits_in_memory and cramped.tp_source == "given"


def test_capacity_kv_memory_binds_for_long_contexts_and_compute_for_short_ones():
    h100 = get_hardware("h100")
    work = Workload.from_strategy("pool:n=16", 4096, 8192)
    long = plan_capacity(LLAMA8, work, h100, qps=1.0, tp=1)
    assert long.binding == "kv_memory"
    per_sequence = kv_read_bytes(LLAMA8, 4096, 8192) / 8192  # mean KV a decode token's sequence holds
    assert (
        long.concurrency
        == long.concurrency_memory_limit
        == math.floor((80e9 * 0.9 - LLAMA8.weight_bytes) / per_sequence)
    )
    assert long.executions_in_flight == pytest.approx(long.concurrency / 16)
    short = plan_capacity(LLAMA8, Workload.from_strategy("greedy", 64, 64), h100, qps=50.0, tp=1)
    assert short.binding == "compute"
    assert short.throughput_qps_per_replica >= 0.9 * short.compute_roof_qps_per_replica
    for plan in (long, short):
        assert plan.gpus == plan.replicas * plan.tp
        assert plan.replicas == math.ceil(plan.qps / plan.throughput_qps_per_replica)
        assert plan.usd_per_1k_queries == pytest.approx(1000 * plan.gpus * 2.95 / 3600 / plan.qps)


def test_capacity_latency_target_caps_concurrency_and_errors_when_unreachable():
    h100 = get_hardware("h100")
    w = Workload.from_strategy("greedy", 64, 64)
    free = plan_capacity(LLAMA8, w, h100, qps=50.0, tp=1)
    target = 1.5 * estimate_latency(LLAMA8, w, h100).latency_s
    assert free.latency_s > target
    capped = plan_capacity(LLAMA8, w, h100, qps=50.0, tp=1, latency_slo_s=target)
    assert capped.binding == "latency_slo" and capped.latency_s <= target
    assert capped.concurrency < free.concurrency and capped.gpus >= free.gpus
    with pytest.raises(ValueError, match="exceeds the target"):
        plan_capacity(LLAMA8, w, h100, qps=1.0, tp=1, latency_slo_s=1e-6)
    with pytest.raises(ValueError, match="no feasible deployment"):
        plan_capacity(ModelSpec.from_catalog("llama-3.1-405b"), w, h100, qps=1.0, tp=1)


# ---- pricing measured rows --------------------------------------------------------------------
def test_price_samples_fills_missing_flops_and_keeps_imported_ones():
    df = pd.DataFrame(
        {
            S.STRATEGY: ["pool", "pool", "refine"],
            S.CONFIG: ["{}", "{}", '{"rounds": 1}'],
            S.PROMPT_TOKENS: [100, 100, 300],
            S.COMPLETION_TOKENS: [50, None, 80],
            S.FLOPS: [None, None, 123.0],
        }
    )
    out = price_samples(df, LLAMA8)
    pre, dec = token_flops(LLAMA8, 100, 50)
    assert out[S.FLOPS].iloc[0] == pytest.approx(pre + dec)
    assert np.isnan(out[S.FLOPS].iloc[1])  # no completion count: nothing derived
    assert out[S.FLOPS].iloc[2] == 123.0  # imported FLOPs are kept
    assert out["prefill_flops"].iloc[2] == pytest.approx(token_flops(LLAMA8, 300, 80, calls=2)[0])


def test_the_workload_shape_is_declared_once():
    """Workload holds the descriptor's WorkloadShape instead of redeclaring its fields and
    defaults, so a new shape field or default reaches the cost model unchanged."""
    shape_fields = {f.name for f in fields(WorkloadShape)}
    assert not shape_fields & {f.name for f in fields(Workload)}
    w = Workload.from_strategy("beam:width=3,expansions=2,max_steps=4", 10, 40)
    assert w.shape == WorkloadShape(samples=3, expansions=2, steps=4)
    assert Workload("greedy", 10, 40).shape == WorkloadShape()
