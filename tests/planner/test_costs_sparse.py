"""Block top-k sparse attention in the cost model: attention FLOPs and KV bytes READ per decoded
token come from the attended tokens, ``min(context, (k + 1) * block)``, while the KV HELD stays
whole; the spec carries the setting from ``NAME@attn_blocks=K`` and from run metadata; the
planner offers a dense and a sparse variant of a profiled model side by side."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import planner_fixtures as F
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fitting import schema as S
from fitting.curves import curves_from_samples
from planner.catalog import get_hardware
from planner.cli import app
from planner.constants import KNOB_VALUE, MEMORY_BYTES, MODEL, STRATEGY
from planner.costs import (
    ModelSpec,
    SpecError,
    Workload,
    decode_flops,
    estimate_cost,
    forward_flops,
    kv_attended_bytes,
    kv_cache_bytes,
    kv_peak_bytes,
    kv_read_bytes,
    prefill_flops,
    workload_steps,
)
from planner.costs.execution import tally
from planner.space import CostModel, OptionSpace
from profiling.backends.sparse import SparseAttention

DENSE = ModelSpec.from_catalog("llama-3.1-8b")  # 32 layers, 32 heads of 128, 8 KV heads, BF16
A = 4 * 32 * 128  # attention FLOPs of one (query, key) pair in one layer: 4 H d
B = 2 * 8 * 128 * 2  # KV bytes of one token in one layer: 2 n_kv d x 2 bytes


def sparse(k: int, block: int = 16) -> ModelSpec:
    return DENSE.with_sparse(SparseAttention(k, block))


@pytest.mark.parametrize("past", [0, 10, 46, 47, 48, 1000, 10**6])
def test_a_decode_step_attends_to_min_context_and_k_plus_one_blocks(past):
    """Hand formula, k = 2 blocks of 16: a step at ``past`` cached tokens attends to
    min(past + 1, 48) keys in each of the 32 layers, and reads their KV."""
    spec = sparse(2)
    attended = min(past + 1, 48)
    linear = 2 * DENSE.matmul_params_active
    assert forward_flops(spec, 1, past) - linear == pytest.approx(A * 32 * attended, rel=1e-12)
    assert forward_flops(DENSE, 1, past) - linear == pytest.approx(A * 32 * (past + 1), rel=1e-12)
    assert kv_attended_bytes(spec, past + 1) == B * 32 * attended
    assert kv_cache_bytes(spec, past + 1) == B * 32 * (past + 1)  # held: every token


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.integers(1, 120), st.integers(1, 6), st.sampled_from([1, 4, 16]))
def test_closed_forms_equal_summing_the_steps(context, gen, k, block):
    """decode FLOPs and KV read over G steps equal the sum of the per-step forms (tolerance
    1e-9 relative: two summation orders); the KV held is the dense sum."""
    spec = sparse(k, block)
    steps = [forward_flops(spec, 1, context + j) for j in range(gen)]
    assert decode_flops(spec, context, gen) == pytest.approx(sum(steps), rel=1e-9)
    reads = sum(kv_attended_bytes(spec, context + j + 1) for j in range(gen))
    assert kv_read_bytes(spec, context, gen) == pytest.approx(reads, rel=1e-9)
    assert kv_read_bytes(spec, context, gen, held=True) == kv_read_bytes(DENSE, context, gen)


def test_prefill_stays_dense():
    """A forward of several new tokens is a prefill: dense (the attention function runs sparse
    only for one query position, a decode step)."""
    for prompt in (2, 100, 5000):
        assert prefill_flops(sparse(1), prompt) == prefill_flops(DENSE, prompt)
        assert forward_flops(sparse(1), prompt, 300) == forward_flops(DENSE, prompt, 300)
    assert forward_flops(sparse(1), 1, 300) < forward_flops(DENSE, 1, 300)


def test_attention_cost_falls_with_k_while_the_kv_held_does_not():
    """A pool of 4 samples of 4,096 tokens after a 512-token prompt: per decoded token the
    attention FLOPs and KV bytes read grow with k and stay below dense; the peak KV held and
    the KV resident per token are the same for every k."""
    work = Workload.from_strategy("pool:n=4", 512, 4096)
    dense = tally(DENSE, work)
    rows = []
    for k in (1, 2, 4, 8, 30):  # (k + 1) x 16 <= 496 < the 513 tokens of the first step
        tl = tally(sparse(k), work)
        attn = (tl.decode_flops - 2 * DENSE.matmul_params_active * tl.decode_tokens) / tl.decode_tokens
        rows.append((attn, tl.kv_read_bytes_per_token, tl.kv_peak_bytes, tl.kv_held_bytes_per_token))
        assert attn == pytest.approx(A * 32 * (k + 1) * 16, rel=1e-12)
        assert tl.kv_read_bytes_per_token == pytest.approx(B * 32 * (k + 1) * 16, rel=1e-12)
    attn, read, peak, held = (np.array(c) for c in zip(*rows, strict=True))
    assert (np.diff(attn) > 0).all() and (np.diff(read) > 0).all()
    assert attn[-1] < (dense.decode_flops / dense.decode_tokens - 2 * DENSE.matmul_params_active)
    assert read[-1] < dense.kv_read_bytes_per_token
    assert (peak == dense.kv_peak_bytes).all() and (held == dense.kv_held_bytes_per_token).all()
    assert kv_peak_bytes(sparse(1), work) == kv_peak_bytes(DENSE, work)


def test_estimate_keeps_memory_whole_and_the_step_trace_agrees():
    """On an H100: sparse reads less KV and so is faster and cheaper, but needs the same GPU
    memory (nothing is evicted); the brute-force step trace sums to the closed form."""
    h100 = get_hardware("h100")
    work = Workload.from_strategy("pool:n=8", 512, 4096)
    d = estimate_cost(DENSE, work, h100, concurrency=64)
    s = estimate_cost(sparse(2), work, h100, concurrency=64)
    assert s.memory_needed_bytes == d.memory_needed_bytes and s.kv_bytes_peak == d.kv_bytes_peak
    assert s.memory_bytes_kv < d.memory_bytes_kv / 10 and s.latency_s < d.latency_s
    assert s.decode_attention_flops < d.decode_attention_flops / 10
    greedy = Workload.from_strategy("greedy", 40, 300)
    trace = workload_steps(sparse(1), greedy)
    tl = tally(sparse(1), greedy)
    decode = ~trace.prefill
    assert trace.flops[decode].sum() == pytest.approx(tl.decode_flops, rel=1e-9)


def test_sliding_layers_take_the_smaller_of_window_and_blocks():
    spec = replace(DENSE, sliding_window=40, layers=tuple(replace(la, sliding=True) for la in DENSE.layers))
    assert kv_attended_bytes(spec.with_sparse(SparseAttention(1)), 1000) == B * 32 * 32  # blocks: 32 < 40
    assert kv_attended_bytes(spec.with_sparse(SparseAttention(4)), 1000) == B * 32 * 40  # window: 40 < 80


# ---- the spec carries the setting ------------------------------------------------------------------
def test_the_spec_is_resolved_from_a_suffix_and_from_run_metadata():
    spec = ModelSpec.resolve("llama-3.1-8b@attn_blocks=3,block_size=32")
    assert spec.name == "llama-3.1-8b@attn_blocks=3,block_size=32" and spec.attended_cap == 128
    assert spec.attention_pattern == "sparse" and DENSE.attention_pattern == "dense"
    assert ModelSpec.resolve("llama-3.1-8b@attn_blocks=all") == DENSE
    lab = ModelSpec.resolve("lab-m")
    meta = {
        "model": "lab-m@attn_blocks=2",
        "config": dict(lab.config),
        "dtype": lab.dtype,
        "sparse_attention": SparseAttention(2).to_dict(),
    }
    from_run = ModelSpec.from_run_metadata(meta)
    assert from_run.name == "lab-m@attn_blocks=2" and from_run.sparse == SparseAttention(2)
    assert json.loads(json.dumps(from_run.summary()))["sparse_attention"]["attn_blocks"] == 2
    assert ModelSpec.from_run_metadata({**meta, "sparse_attention": None}).sparse is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("llama-3.1-8b@attn_blocks=0", "attn_blocks must be an integer >= 1 or all"),
        ("lab-m@attn_blocks=16", "cover the model's whole context of 256 tokens"),
        ("no-such-model@attn_blocks=2", "unknown model 'no-such-model'"),
    ],
)
def test_bad_settings_are_one_line_spec_errors(text, message):
    with pytest.raises(SpecError) as err:
        ModelSpec.resolve(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_ttc_costs_shows_less_attention_for_two_blocks_at_a_4k_generation():
    def run(model):
        args = ["costs", "--model", model, "--gen-tokens", "4096", "--prompt-tokens", "512", "--json"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        return json.loads(res.output)["estimate"]

    dense, two = run("qwen3-8b"), run("qwen3-8b@attn_blocks=2")
    qwen = ModelSpec.from_catalog("qwen3-8b")
    assert two["decode_attention_flops"] == pytest.approx(
        qwen.attention_flops_per_key() * qwen.num_layers * 48 * 4096, rel=1e-12
    )
    assert dense["decode_attention_flops"] > 50 * two["decode_attention_flops"]
    assert two["kv_bytes_peak"] == dense["kv_bytes_peak"]
    bad = CliRunner().invoke(app, ["costs", "--model", "qwen3-8b@attn_blocks=0", "--gen-tokens", "10"])
    assert bad.exit_code == 2 and "attn_blocks must be an integer >= 1" in " ".join(bad.output.split())


# ---- the planner offers both -------------------------------------------------------------------------
def test_the_planner_offers_the_dense_and_the_sparse_variant_of_a_profiled_model():
    """The same measured samples under two model names (dense lab-m and lab-m@attn_blocks=1,
    long completions): both models' arms are offered; at every option the sparse one costs
    fewer FLOPs and the same GPU memory."""
    samples = F.samples_table(n_questions=8, pool=8)
    samples = samples[samples[S.MODEL] == "lab-m"].copy()
    samples[S.COMPLETION_TOKENS] *= 100  # ~1,500-2,500 tokens: far past 2 blocks of 16
    both = pd.concat([samples, samples.assign(**{S.MODEL: "lab-m@attn_blocks=1"})], ignore_index=True)
    specs = {
        "lab-m": DENSE,
        "lab-m@attn_blocks=1": DENSE.with_sparse(SparseAttention(1), "lab-m@attn_blocks=1"),
    }
    curves = curves_from_samples(both, metrics=["majority@k"], n_boot=0)
    coster = CostModel(specs, hardware=get_hardware("h100"))
    space = OptionSpace.from_curves(curves, coster, fit_if_missing=False)
    table = space.table({"2": 1.0})
    assert set(table[MODEL]) == {"lab-m", "lab-m@attn_blocks=1"}
    key = [STRATEGY, KNOB_VALUE]
    d = table[table[MODEL] == "lab-m"].set_index(key).sort_index()
    s = table[table[MODEL] == "lab-m@attn_blocks=1"].set_index(key).sort_index()
    assert len(d) == len(s) > 1
    assert (s[S.FLOPS] < d[S.FLOPS]).all()
    np.testing.assert_allclose(s[MEMORY_BYTES], d[MEMORY_BYTES], rtol=1e-12)


def test_the_report_says_where_the_sparse_variant_wins(tmp_path):
    """The fixture's fix-m profiled twice with the same samples, once as fix-m@attn_blocks=1
    (a 1.5B dense model, completions of ~100 tokens: far past 2 blocks of 16): equal measured
    accuracy at a lower price, so within some budget the variant affords a better option and
    within none is it worse."""
    import report_fixtures as R

    from planner.profile import load_profile
    from planner.report.data import planning_context
    from planner.report.sparse import sparse_frame
    from profiling.storage import read_run, write_run, write_shard

    folder = R.write_profile(tmp_path / "p", models=("fix-m",))
    samples = S.read_samples(folder)
    write_shard(folder, samples.assign(**{S.MODEL: "fix-m@attn_blocks=1"}))
    meta = read_run(folder)
    meta["models"]["fix-m@attn_blocks=1"] = {
        **meta["models"]["fix-m"],
        "sparse_attention": SparseAttention(1).to_dict(),
    }
    write_run(folder, meta)
    profile = load_profile(folder, n_boot=0)
    assert profile.specs["fix-m@attn_blocks=1"].attended_cap == 32 and profile.specs["fix-m"].sparse is None
    ctx = planning_context(profile, gpu="h100", budget_key="usd")
    usd = ctx.table(ctx.mix)
    cheapest = {m: float(usd.loc[usd[MODEL] == m, "usd"].min()) for m in ("fix-m", "fix-m@attn_blocks=1")}
    assert cheapest["fix-m@attn_blocks=1"] < cheapest["fix-m"]
    budgets = [cheapest["fix-m@attn_blocks=1"]] + [cheapest["fix-m"] * f for f in (1.0, 2.0, 8.0, 100.0)]
    table, summary = sparse_frame(ctx, budgets)
    verdicts = list(table["sparse wins"])
    assert len(verdicts) == 5 and not any(v.startswith("no:") for v in verdicts)
    assert verdicts[0] == "yes: only the sparse variant fits"
    assert all(v.startswith(("yes", "tie in accuracy")) for v in verdicts[1:])  # never worse, always cheaper
    assert summary.startswith("fix-m@attn_blocks=1 beats fix-m on") and "B1" in summary
