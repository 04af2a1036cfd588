"""Serving assumptions: the batch shares each step's weight reads and every sequence reads its own
KV; effective FLOPs; tensor parallelism chosen to fit (or pinned, with one-line errors); and the
Kinetics check: at the default assumptions, memory traffic penalizes small models more, as
Sadhukhan et al. 2025 found."""

from __future__ import annotations

import pytest

from planner.catalog import HardwareSpec, get_hardware
from planner.costs import (
    DEFAULT_CONCURRENCY,
    ModelSpec,
    TokenLengths,
    Workload,
    check_tp,
    estimate_cost,
    estimate_latency,
    kv_replication,
    memory_needed_bytes,
    tally,
    tp_degrees,
    weight_bytes_read,
)
from planner.costs.kinetics import KINETICS_AIME24_LENGTHS, kinetics_cost

H100, B200 = get_hardware("h100"), get_hardware("b200")
QWEN3 = ["qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b"]
AIME_LENGTHS = TokenLengths.from_samples(KINETICS_AIME24_LENGTHS)


# ---- the batch ---------------------------------------------------------------------------------
def test_weights_are_read_once_per_step_for_the_batch_and_kv_per_sequence():
    spec = ModelSpec.from_catalog("qwen3-8b")
    w = Workload.from_strategy("pool:n=4", 100, [300, 900])
    tl = tally(spec, w)
    for c in (4, 64, 256):
        est = estimate_cost(spec, w, H100, concurrency=c)
        assert est.concurrency == c and est.executions_in_flight == c / 4
        assert est.memory_bytes_weights == pytest.approx(tl.decode_tokens * weight_bytes_read(spec, c) / c)
        assert est.memory_bytes_kv == pytest.approx(tl.kv_read_bytes)
        assert est.effective_flops == pytest.approx(est.flops + est.memory_bytes * H100.flops_per_byte)
    small, large = (estimate_cost(spec, w, H100, concurrency=c) for c in (4, 256))
    assert large.memory_bytes < small.memory_bytes and large.cost_usd < small.cost_usd
    assert large.latency_s > small.latency_s  # a fuller batch: each step takes longer


def test_gpu_time_is_the_executions_share_of_the_batched_steps():
    spec = ModelSpec.from_catalog("llama-3.1-8b")
    w = Workload.from_strategy("pool:n=8", 200, [50, 400, 400, 1000])
    est = estimate_cost(spec, w, H100, concurrency=32, tp=2)
    lat = estimate_latency(spec, w, H100, concurrency=32, tp=2)
    tl = tally(spec, w)
    share = lat.prefill_s / 4 + tl.decode_tokens * lat.step_s / 32  # 4 executions in flight
    assert est.gpu_seconds == pytest.approx(2 * share)
    assert est.cost_usd == pytest.approx(est.gpu_seconds * H100.usd_per_gpu_hour / 3600)
    assert est.throughput_qps == pytest.approx(1 / share)
    # the pool's latency waits for its longest sample, its GPU time pays only for its tokens
    assert est.latency_s == pytest.approx(lat.prefill_s + tl.decode_steps * lat.step_s)
    assert tl.decode_steps > tl.decode_tokens / 8


def test_the_default_concurrency_is_a_serving_batch():
    assert DEFAULT_CONCURRENCY == 64
    est = estimate_cost(
        ModelSpec.from_catalog("llama-3.1-8b"), Workload.from_strategy("greedy", 100, 500), H100
    )
    assert est.concurrency == 64
    with pytest.raises(ValueError, match="concurrency must be an integer >= 1"):
        estimate_cost(
            ModelSpec.from_catalog("llama-3.1-8b"), Workload.from_strategy("greedy", 1, 1), concurrency=0
        )


# ---- tensor parallelism --------------------------------------------------------------------------
def test_auto_tp_is_the_smallest_degree_that_fits_and_the_result_says_so():
    """The old default tp=1 ruled out Qwen3-32B with pools on one H100; now the smallest usable
    degree that holds the weights and the batch's KV is chosen."""
    spec = ModelSpec.from_catalog("qwen3-32b")
    w = Workload.from_strategy("pool:n=8", 236, AIME_LENGTHS)
    est = estimate_cost(spec, w, H100)
    need = memory_needed_bytes(spec, tally(spec, w), DEFAULT_CONCURRENCY)
    usable = [t for t in tp_degrees(spec) if t * H100.memory_bytes * 0.9 >= need]
    assert est.tp == usable[0] > 1 and est.tp_source == "auto" and est.fits_in_memory
    assert est.memory_needed_bytes == pytest.approx(need)
    smaller = [t for t in tp_degrees(spec) if t < est.tp]
    assert all(t * H100.memory_bytes * 0.9 < need for t in smaller)
    pinned = estimate_cost(spec, w, H100, tp=1)
    assert pinned.tp == 1 and pinned.tp_source == "given" and not pinned.fits_in_memory


def test_tp_degrees_divide_the_heads_and_split_or_replicate_kv_heads():
    assert tp_degrees(ModelSpec.from_catalog("qwen3-14b"), 64) == [1, 2, 4, 8, 40]  # 40 heads, 8 KV heads
    assert tp_degrees(ModelSpec.from_catalog("pythia-12b"), 8) == [1, 2, 4, 5, 8]  # 40 heads, MHA
    assert tp_degrees(ModelSpec.from_catalog("llama-3.1-70b"), 64) == [1, 2, 4, 8, 16, 32, 64]


@pytest.mark.parametrize(
    "tp, max_gpus, message",
    [
        (
            3,
            64,
            r"--tp 3 does not divide qwen3-32b's 64 attention heads / 8 KV heads; valid degrees: 1, 2, 4, 8, 16",
        ),
        (16, 8, r"--tp 16 exceeds the 8 GPUs of H100-SXM a replica may use"),
        (0, 8, r"tp \(tensor-parallel degree\) must be an integer >= 1"),
    ],
)
def test_a_pinned_tp_that_cannot_work_is_a_one_line_error(tp, max_gpus, message):
    spec = ModelSpec.from_catalog("qwen3-32b")
    with pytest.raises(ValueError, match=message) as err:
        estimate_cost(spec, Workload.from_strategy("greedy", 10, 10), H100, tp=tp, max_gpus=max_gpus)
    assert "\n" not in str(err.value)
    assert check_tp(spec, 8, max_gpus=8) == 8


@pytest.mark.parametrize(
    "model, tp, copies",
    [
        ("qwen3-14b", 8, 1.0),  # 8 KV heads split over 8 ranks
        ("qwen3-30b-a3b", 4, 1.0),
        ("qwen3-30b-a3b", 8, 2.0),  # 4 KV heads: each of 8 ranks keeps one whole head
        ("pythia-12b", 8, 1.0),  # MHA, 40 heads
        ("deepseek-v3", 8, 8.0),  # MLA: the latent cache on every rank
        ("deepseek-v3", 1, 1.0),
    ],
)
def test_kv_copies_under_tp_follow_vllm_layout(model, tp, copies):
    """The same rule as the vLLM backend's cache layout (profiling/backends/_vllm_kv.py:
    ``tp if mla else max(1, tp // kv_heads)`` replicas); the memory a replica needs and the KV a
    decode step reads grow with it, so auto TP no longer counts KV/TP per GPU for MLA."""
    spec = ModelSpec.from_catalog(model)
    assert kv_replication(spec, tp) == copies
    w = Workload.from_strategy("pool:n=8", 236, AIME_LENGTHS)
    tl = tally(spec, w)
    kv = memory_needed_bytes(spec, tl, DEFAULT_CONCURRENCY, 1) - spec.weight_bytes
    assert memory_needed_bytes(spec, tl, DEFAULT_CONCURRENCY, tp) - spec.weight_bytes == pytest.approx(
        copies * kv
    )


def test_auto_tp_counts_the_mla_latent_on_every_rank():
    """DeepSeek-V3 (MLA) with reasoning-length pools: the chosen degree holds the weights plus
    tp copies of the latent cache, and every smaller usable degree does not."""
    spec = ModelSpec.from_catalog("deepseek-v3")
    w = Workload.from_strategy("pool:n=8", 236, AIME_LENGTHS)
    est = estimate_cost(spec, w, H100)
    tl = tally(spec, w)
    assert est.memory_needed_bytes == pytest.approx(
        memory_needed_bytes(spec, tl, DEFAULT_CONCURRENCY, est.tp)
    )
    assert est.fits_in_memory
    for t in tp_degrees(spec):
        if t < est.tp:
            assert memory_needed_bytes(spec, tl, DEFAULT_CONCURRENCY, t) > t * H100.memory_bytes * 0.9


def test_nothing_fits_is_a_one_line_error():
    tiny = HardwareSpec("tiny", 1e12, 1e10, 1e9, 1.0)
    with pytest.raises(
        ValueError, match=r"qwen3-32b needs [\d,.]+ GB \(weights \+ KV of 64 sequences\), more than 8 x tiny"
    ) as err:
        estimate_cost(
            ModelSpec.from_catalog("qwen3-32b"), Workload.from_strategy("greedy", 10, 10), tiny, max_gpus=8
        )
    assert "\n" not in str(err.value)


# ---- the Kinetics check ------------------------------------------------------------------------
def _relative(values: list[float]) -> list[float]:
    return [v / values[0] for v in values]


def _falls(values: list[float]) -> bool:
    return all(b < a for a, b in zip(values[:-1], values[1:], strict=True))


def _ours(strategy: str, concurrency: int, gpu=B200) -> tuple[list[float], list[float]]:
    ests = [
        estimate_cost(
            ModelSpec.from_catalog(m),
            Workload.from_strategy(strategy, 236, AIME_LENGTHS),
            gpu,
            concurrency=concurrency,
        )
        for m in QWEN3
    ]
    return [e.flops for e in ests], [e.effective_flops for e in ests]


@pytest.mark.parametrize("strategy", ["greedy", "pool:n=8"])
def test_at_the_default_assumptions_memory_penalizes_small_models_more_as_kinetics_found(strategy):
    """Sadhukhan et al. 2025: once memory traffic counts, larger models pay off up to ~14B and
    small models with many samples are less cost-effective than FLOPs suggest. At equal
    generated tokens, the effective-FLOPs penalty (eFLOPs / FLOPs) must fall with model size,
    each step up in size must cost far less than its FLOPs ratio, and our ratios to Qwen3-0.6B
    must be within 1.5x of those of Kinetics' own cost model."""
    flops, eflops = _ours(strategy, DEFAULT_CONCURRENCY)
    penalty = [e / f for f, e in zip(flops, eflops, strict=True)]
    assert _falls(penalty), penalty
    for i in range(1, len(QWEN3)):
        assert eflops[i] / eflops[i - 1] < flops[i] / flops[i - 1]
    trials = 8 if strategy.startswith("pool") else 1
    theirs = _relative(
        [kinetics_cost(ModelSpec.from_catalog(m), 236, AIME_LENGTHS, trials).effective_flops for m in QWEN3]
    )
    theirs_penalty = [
        k.effective_flops / k.compute_flops
        for k in (kinetics_cost(ModelSpec.from_catalog(m), 236, AIME_LENGTHS, trials) for m in QWEN3)
    ]
    assert _falls(theirs_penalty)  # the same direction in their model
    for ours_r, their_r, flops_r in zip(_relative(eflops), theirs, _relative(flops), strict=True):
        assert 1 / 1.5 <= ours_r / their_r <= 1.5
        assert ours_r <= flops_r
    assert _relative(eflops)[QWEN3.index("qwen3-14b")] < 0.2 * _relative(flops)[QWEN3.index("qwen3-14b")]


def test_a_batch_of_one_the_old_default_reverses_the_kinetics_direction():
    """At concurrency 1 every token reads all the weights, which scale with the model, so the
    memory penalty no longer falls with size (why the default changed)."""
    flops, eflops = _ours("greedy", 1)
    penalty = [e / f for f, e in zip(flops, eflops, strict=True)]
    assert penalty[QWEN3.index("qwen3-14b")] > penalty[0]
    assert _relative(eflops)[QWEN3.index("qwen3-14b")] > 0.9 * _relative(flops)[QWEN3.index("qwen3-14b")]
