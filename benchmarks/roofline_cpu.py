"""Roofline on this CPU: predicted vs measured decode latency per token.

1. Calibrates the ``cpu`` hardware entry now (``calibrate_cpu(recompute=True)``: matmul FLOP/s,
   read bandwidth, per-step and per-layer overhead of HF decode steps), so calibration and
   measurement see the same machine load.
2. For each model — every lab checkpoint under ``profiling/lab/checkpoints/`` when present,
   otherwise from_config models with the lab shapes (``profiling.lab.models``) — plus one
   ~90M-parameter Llama (weights far larger than the caches, so decode is memory-bound), it
   prefills ``--prompt`` tokens for a batch of B sequences and times ``--steps`` cached greedy
   decode steps (``time.perf_counter`` around each forward, after a warm-up step).
3. Prints the measured median seconds per decode step next to the prediction of
   :func:`planner.costs.roofline_time_s` for the same step (FLOPs and bytes of
   :func:`~planner.costs.forward_flops` / :func:`~planner.costs.decode_step_bytes`), with and
   without the calibrated step overhead, and their ratio (aim: within 2x).

Run: ``python benchmarks/roofline_cpu.py`` (about a minute on 2 cores; ``--quick`` for less).
Numbers move with the machine's load; each run recalibrates. One torch thread by default: on a
shared 2-core machine a 2-thread matmul stalls whenever another job holds one core, which
made step times jump 10-100x between runs; one thread keeps calibration and measurement
comparable (``--threads 2`` to use both cores on an idle machine).
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time

import numpy as np
import torch
import transformers

from planner.catalog import get_hardware
from planner.costs import ModelSpec, decode_step_bytes, forward_flops, lab_checkpoint_dirs, roofline_time_s


def lab_models() -> list[tuple[str, object]]:
    """(name, model) of the lab checkpoints, or from_config models of the lab shapes."""
    found = lab_checkpoint_dirs()
    if found:
        return [(p.name, transformers.AutoModelForCausalLM.from_pretrained(p)) for p in found]
    try:
        from profiling.lab.models import LAB_MODELS, build_config, build_tokenizer
    except ImportError:
        return []
    vocab = len(build_tokenizer())
    out = []
    for name in LAB_MODELS:
        torch.manual_seed(0)
        cfg = build_config(name, vocab_size=vocab)
        out.append((f"{name} (from_config)", transformers.AutoModelForCausalLM.from_config(cfg)))
    return out


def mid_llama() -> tuple[str, object]:
    cfg = transformers.LlamaConfig(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=6,
        num_attention_heads=12,
        num_key_value_heads=4,
        vocab_size=32000,
        max_position_embeddings=1024,
    )
    torch.manual_seed(0)
    return "llama-90M (from_config)", transformers.LlamaForCausalLM(cfg)


def time_decode_steps(model, batch: int, prompt: int, steps: int) -> list[float]:
    """Seconds of each cached greedy decode step of ``batch`` sequences after a ``prompt``-token prefill."""
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(4, vocab, (batch, prompt), generator=gen)
    times = []
    with torch.no_grad():
        out = model(ids, use_cache=True)
        nxt = out.logits[:, -1:].argmax(-1)
        cache = out.past_key_values
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            out = model(nxt, use_cache=True, **{cache_kw: cache})
            nxt = out.logits[:, -1:].argmax(-1)
            times.append(time.perf_counter() - t0)
            cache = out.past_key_values
    return times[1:]  # the first step is a warm-up


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: robust when other jobs share the cores)"
    )
    ap.add_argument("--quick", action="store_true", help="batches 1 and 8, 12 steps, no 90M model")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.batches, args.steps = [1, 8], 12
    torch.set_grad_enabled(False)

    t0 = time.perf_counter()
    cpu = get_hardware("cpu", recalibrate=True)
    print(
        f"calibrated cpu in {time.perf_counter() - t0:.1f} s ({torch.get_num_threads()} threads, float32): "
        f"peak {cpu.peak_flops / 1e9:.1f} GFLOP/s, bandwidth {cpu.memory_bandwidth_bytes_per_s / 1e9:.1f} GB/s, "
        f"overhead {cpu.step_overhead_s * 1e3:.3f} ms/step + {cpu.layer_overhead_s * 1e3:.3f} ms/layer "
        f"(ridge {cpu.flops_per_byte:.1f} FLOP/B)"
    )
    models = lab_models()
    source = (
        "lab checkpoints"
        if lab_checkpoint_dirs()
        else "from_config models with the lab shapes (no checkpoints yet)"
    )
    if not args.quick:
        models.append(mid_llama())
    print(f"models: {source}; prompt {args.prompt} tokens, {args.steps} timed decode steps per batch size\n")
    header = (
        f"{'model':28s} {'params':>8s} {'B':>3s} {'measured':>10s} {'roofline':>10s} {'+overhead':>10s} "
        f"{'ratio':>6s} {'bound':>8s}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for name, model in models:
        model = model.eval().float()
        spec = ModelSpec.from_hf_config(model.config, name=name, dtype="float32")
        for b in args.batches:
            measured = statistics.median(time_decode_steps(model, b, args.prompt, args.steps))
            ctx = args.prompt + np.arange(args.steps, dtype=float) + 1  # tokens cached before each timed step
            flops = b * np.asarray(forward_flops(spec, np.ones_like(ctx), ctx))
            mem = np.array([decode_step_bytes(spec, b, c) for c in ctx])
            pure = float(
                np.median(np.maximum(flops / cpu.peak_flops, mem / cpu.memory_bandwidth_bytes_per_s))
            )
            full = float(np.median(roofline_time_s(flops, mem, cpu, num_layers=spec.num_layers)))
            overhead = cpu.step_overhead_s + cpu.layer_overhead_s * spec.num_layers
            t_c, t_m = (
                float(np.median(flops)) / cpu.peak_flops,
                float(np.median(mem)) / cpu.memory_bandwidth_bytes_per_s,
            )
            bound = "overhead" if overhead > max(t_c, t_m) else ("compute" if t_c >= t_m else "memory")
            ratio = measured / full
            ratios.append((name, b, ratio))
            print(
                f"{name:28s} {spec.params_total / 1e6:7.2f}M {b:3d} {measured * 1e3:8.3f}ms {pure * 1e3:8.3f}ms "
                f"{full * 1e3:8.3f}ms {ratio:6.2f} {bound:>8s}"
            )
    print("\nratio = measured / predicted (roofline + calibrated overhead); 1.0 = exact")
    outside = [(n, b, r) for n, b, r in ratios if not 0.5 <= r <= 2.0]
    if ratios:
        geo = float(np.exp(np.mean(np.log([r for _, _, r in ratios]))))
        print(f"geometric mean ratio {geo:.2f}; within 2x: {len(ratios) - len(outside)}/{len(ratios)}")
    for n, b, r in outside:
        print(f"  outside 2x: {n} at batch {b}: ratio {r:.2f}")


if __name__ == "__main__":
    main()
