"""Costs from each sample's own length: the length distribution, the 100/10,000 vs 5,050 example
with its attention share known analytically, pools waiting for their longest sample, the KV
peak of concurrent lengths, one length giving exactly the per-step reference's numbers, and
closed forms whose memory does not grow with the generated length."""

from __future__ import annotations

import itertools
import math
import tracemalloc

import numpy as np
import pytest
from costs_helpers import BASE
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerance import close_to

from planner.catalog import get_hardware
from planner.costs import (
    ModelSpec,
    TokenLengths,
    Workload,
    decode_flops,
    estimate_cost,
    estimate_latency,
    kv_peak_bytes,
    kv_read_bytes,
    tally,
    workload_steps,
)

LLAMA8 = ModelSpec.from_catalog("llama-3.1-8b")
SLIDING = ModelSpec.from_hf_config({"model_type": "mistral", **BASE, "sliding_window": 8})
H100 = get_hardware("h100")
lengths_st = st.lists(st.integers(0, 60), min_size=1, max_size=7)


# ---- the distribution -------------------------------------------------------------------------
@given(lengths_st)
def test_moments_rebuild_mean_mean_square_and_max_exactly(xs):
    x = np.array(xs, dtype=float)
    d = TokenLengths.from_moments(x.mean(), (x * x).mean(), x.max(), count=len(xs))
    assert d.mean == pytest.approx(x.mean(), abs=1e-9)
    assert d.mean_sq == pytest.approx((x * x).mean(), rel=1e-9, abs=1e-9)
    assert d.max == pytest.approx(x.max()) and np.all(d.values >= 0) and d.values.size <= 2


@settings(max_examples=60, deadline=None)
@given(lengths_st, st.integers(1, 7))
def test_expected_max_of_a_pool_matches_every_subset(xs, n):
    """Without replacement from the measured samples: the mean over all n-subsets; beyond the
    sample count, n independent draws (checked against every ordered n-tuple)."""
    d = TokenLengths.from_samples(xs)
    if n <= len(xs):
        brute = np.mean([max(c) for c in itertools.combinations(xs, n)])
    else:
        brute = np.mean([max(c) for c in itertools.product(xs, repeat=n)]) if len(xs) ** n <= 50_000 else None
    if brute is not None:
        assert d.expected_max(n) == pytest.approx(brute, rel=1e-9, abs=1e-9)


def test_inconsistent_moments_are_errors():
    with pytest.raises(ValueError, match="below mean"):
        TokenLengths.from_moments(100.0, 5_000.0, 200.0)
    with pytest.raises(ValueError, match="variance <="):
        TokenLengths.from_moments(100.0, 1e6, 150.0)
    with pytest.raises(ValueError, match="below the mean"):
        TokenLengths.from_moments(100.0, 10_000.0, 50.0)
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        TokenLengths.from_samples([10, -1])


# ---- the 100 / 10,000 example ----------------------------------------------------------------
def test_half_100_half_10000_costs_its_attention_not_that_of_5050():
    """Decode FLOPs of a chain of L tokens after an empty prompt: 2 N L + a L(L+1)/2 per layer.
    A pool of the two samples: E[L^2] = 50,005,000 where a 5,050-token pool has 25,502,500."""
    mixed = tally(LLAMA8, Workload.from_strategy("pool:n=2", 0, [100, 10_000]))
    mean = tally(LLAMA8, Workload.from_strategy("pool:n=2", 0, 5050))
    a_l = LLAMA8.attention_flops_per_key() * LLAMA8.num_layers  # per (query, key) pair, all layers
    linear = 2 * LLAMA8.matmul_params_active * 2 * 5050
    attn_mixed = a_l * (100 * 101 / 2 + 10_000 * 10_001 / 2)
    attn_mean = a_l * 2 * (5050 * 5051 / 2)
    assert mixed.decode_tokens == mean.decode_tokens == 10_100
    assert mixed.decode_flops == pytest.approx(linear + attn_mixed, rel=1e-12)
    assert mean.decode_flops == pytest.approx(linear + attn_mean, rel=1e-12)
    # the attention share, known analytically: (E[L^2] + E[L]) / (E[L]^2 + E[L]) = 1.9606 times more
    assert (mixed.decode_flops - linear) / (mean.decode_flops - linear) == pytest.approx(
        (50_005_000 + 5050) / (5050**2 + 5050), rel=1e-12
    )
    share = attn_mixed / (linear + attn_mixed)
    assert mixed.decode_flops * share == pytest.approx(attn_mixed)
    # KV reads grow the same way: sum over steps of KV(t) = b (L (L + 1) / 2) per sample
    b = LLAMA8.kv_bytes_per_token
    assert mixed.kv_read_bytes == pytest.approx(b * (100 * 101 / 2 + 10_000 * 10_001 / 2), rel=1e-12)
    assert mean.kv_read_bytes == pytest.approx(b * 5050 * 5051, rel=1e-12)


def test_a_pool_waits_for_its_longest_sample_and_peaks_with_the_lengths_still_running():
    mixed = Workload.from_strategy("pool:n=2", 0, [100, 10_000])
    mean = Workload.from_strategy("pool:n=2", 0, 5050)
    lm = estimate_latency(LLAMA8, mixed, H100, concurrency=2)
    le = estimate_latency(LLAMA8, mean, H100, concurrency=2)
    assert tally(LLAMA8, mixed).decode_steps == 10_000 and tally(LLAMA8, mean).decode_steps == 5050
    assert lm.decode_s == pytest.approx(10_000 * lm.step_s) and le.decode_s == pytest.approx(5050 * le.step_s)
    # KV held at the peak: the long sample alone after the short one finished (10,000 tokens),
    # not 2 x 5,050; with a prompt, the shared prompt once
    b = LLAMA8.kv_bytes_per_token
    assert kv_peak_bytes(LLAMA8, mixed) == 10_000 * b and kv_peak_bytes(LLAMA8, mean) == 10_100 * b
    with_prompt = Workload.from_strategy("pool:n=2", 500, [100, 10_000])
    assert kv_peak_bytes(LLAMA8, with_prompt) == (500 + 10_000) * b


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=2, max_size=8), st.integers(0, 50), st.booleans())
def test_peak_kv_of_a_whole_pool_equals_a_step_by_step_simulation(xs, prompt, sharing):
    """A pool of all the measured samples: at step t the sequences still running hold their
    tokens (finished ones are freed); the peak over steps, brute force."""
    n = len(xs)
    w = Workload.from_strategy(f"pool:n={n}", prompt, xs, prefix_sharing=sharing)
    held = []
    for t in range(0, max(xs) + 1):
        alive = [x for x in xs if x >= t]
        held.append(
            (prompt if sharing else prompt * len(alive)) * (len(alive) > 0 or sharing) + t * len(alive)
        )
    brute = max(max(held), prompt + max(xs)) if max(xs) else (prompt if sharing else n * prompt)
    got = kv_peak_bytes(LLAMA8, w) / LLAMA8.kv_bytes_per_token
    if w.lengths is None:  # all samples alike
        assert got == (prompt + n * xs[0] if sharing else n * (prompt + xs[0]))
    else:
        assert got == pytest.approx(brute)


def test_each_sample_is_priced_at_its_own_length_in_every_phase():
    xs = [12, 40, 40, 90]
    pool = tally(LLAMA8, Workload.from_strategy("pool:n=4", 30, xs))
    assert pool.decode_flops == pytest.approx(sum(decode_flops(LLAMA8, 30, x) for x in xs), rel=1e-12)
    assert pool.kv_read_bytes == pytest.approx(sum(kv_read_bytes(LLAMA8, 30, x) for x in xs), rel=1e-12)
    # a refinement's chain has one length per execution: the expectation over executions
    refine = tally(LLAMA8, Workload.from_strategy("refine:rounds=2", 30, xs))
    one_each = [tally(LLAMA8, Workload.from_strategy("refine:rounds=2", 30, x)) for x in xs]
    assert refine.decode_flops == pytest.approx(np.mean([t.decode_flops for t in one_each]), rel=1e-12)
    assert refine.decode_steps == pytest.approx(np.mean([t.decode_steps for t in one_each]))


# ---- one length: exactly the per-step reference --------------------------------------------------
@pytest.mark.parametrize(
    "strategy",
    [
        "greedy",
        "pool:n=4",
        "beam:width=2,expansions=2,steps=3",
        "refine:rounds=2",
        "budget:tokens=16",
        "hybrid:n=3,rounds=1",
    ],
)
@pytest.mark.parametrize("spec", [LLAMA8, SLIDING], ids=["llama", "sliding"])
@pytest.mark.parametrize("sharing", [True, False])
def test_one_length_gives_the_per_step_lockstep_numbers(strategy, spec, sharing):
    """Every chain alike: FLOPs, memory traffic and latency equal the sums over the per-step
    trace of ``c`` lockstep executions (today's computation), as a batch of ``c x n`` sequences;
    a constant distribution gives the same numbers as the plain integer."""
    c = 2
    w = Workload.from_strategy(strategy, 24, 30, prefix_sharing=sharing)
    trace = workload_steps(spec, w, c)
    batch = c * w.max_sequences
    est = estimate_cost(spec, w, H100, concurrency=batch, tp=1)
    assert est.flops == pytest.approx(trace.flops.sum() / c, rel=1e-12)
    assert est.memory_bytes == pytest.approx(trace.memory_bytes.sum() / c, rel=1e-12)
    t = np.maximum(trace.flops / H100.peak_flops, trace.memory_bytes / H100.memory_bandwidth_bytes_per_s)
    decode = ~trace.prefill  # every decode step memory-bound: then the closed form is exact
    assert np.all(
        trace.flops[decode] / H100.peak_flops < trace.memory_bytes[decode] / H100.memory_bandwidth_bytes_per_s
    )
    assert est.latency_s == pytest.approx(t.sum(), rel=1e-12)
    assert est.gpu_seconds == pytest.approx(t.sum() / c, rel=1e-12)
    same = estimate_cost(
        spec,
        Workload.from_strategy(strategy, 24, [30, 30, 30], prefix_sharing=sharing),
        H100,
        concurrency=batch,
        tp=1,
    )
    assert same.to_dict() == close_to(est.to_dict(), rel=1e-12)  # two code paths: floats within 1e-12


# ---- closed forms, context, prompt ----------------------------------------------------------------
def test_memory_does_not_grow_with_the_generated_length():
    spec = ModelSpec.resolve("big=params:8e9,layers:32,kv_heads:8,head_dim:128,heads:32")  # no context limit
    peaks = []
    for g in (100, 10**12):
        tracemalloc.start()
        est = estimate_cost(spec, Workload.from_strategy("pool:n=8", 512, g), concurrency=8)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert math.isfinite(est.flops) and est.decode_steps == g
    assert peaks[1] < 2 * peaks[0] + 1_000_000  # the old per-step arrays needed 7.28 TiB at 1e12


def test_a_generation_longer_than_the_context_is_a_one_line_error():
    spec = ModelSpec.from_catalog("llama-3-8b")  # 8,192 positions
    estimate_cost(spec, Workload.from_strategy("pool:n=4", 192, 8000))
    with pytest.raises(
        ValueError,
        match=r"llama-3-8b: a sequence of 8,193 tokens \(prompt 193 \+ 8,000 generated\) exceeds the model's context of 8,192",
    ) as err:
        estimate_cost(spec, Workload.from_strategy("pool:n=4", 193, 8000))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="exceeds the model's context"):  # the longest sample decides
        estimate_cost(spec, Workload.from_strategy("pool:n=4", 0, [100, 9000]))


def test_missing_prompt_tokens_price_the_generated_tokens_with_a_note():
    est = estimate_cost(LLAMA8, Workload.from_strategy("pool:n=4", 0, 500), H100)
    assert est.prefill_flops == 0 and est.prefilled_tokens == 0 and est.flops == est.decode_flops > 0
    assert any("no prompt tokens" in n for n in est.notes)
    assert not estimate_cost(LLAMA8, Workload.from_strategy("pool:n=4", 10, 500), H100).notes
