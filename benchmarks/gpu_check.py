"""Measure the hf backend (and vllm, where installed) on one device: latency, tokens/s and KV.

For each model (the lab checkpoints that exist, else one random ``from_config`` model) and each
workload (greedy n=1, pools n=16 and n=64 at temperature 1, 8 requests x n=16 batched), it runs
one warm-up call and ``--repeats`` timed calls, and prints the median of what the backend
measured: wall time, generated tokens and tokens/s, TTFT, the KV bytes read from the cache
tensors next to the formula 2*L*H_kv*d_head*bytes*rows*(P+T-1), and on CUDA the allocator peak
over the call. Every number printed was measured in this run; ``--out`` saves them as JSON.

Usage: ``python benchmarks/gpu_check.py [--device cuda|cpu] [--models lab-m,lab-moe] [--out f.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from profiling.backends import GenerationRequest, load_backend  # noqa: E402
from profiling.backends.tiny import make_tiny_checkpoint  # noqa: E402

WORKLOADS = {
    "greedy n=1": dict(requests=1, n=1, temperature=0.0),
    "pool n=16": dict(requests=1, n=16, temperature=1.0),
    "pool n=64": dict(requests=1, n=64, temperature=1.0),
    "batch 8x16": dict(requests=8, n=16, temperature=1.0),
}


def prompts(count: int) -> list[str]:
    """Prompts from the lab task when it is importable, else fixed arithmetic strings."""
    try:
        from profiling.tasks import get_task

        task = get_task("lab-arith")
        found = [task.format_prompt(p) for p in task.problems(limit=count)]
        if len(found) == count:
            return found
    except Exception as err:  # noqa: BLE001 - the lab task is optional here
        print(f"(lab task unavailable: {type(err).__name__}: {err}; using fixed prompts)")
    return [f"Q: {i + 3}+{2 * i + 5}*{i % 4 + 1}=" for i in range(count)]


def expected_kv_bytes(config: dict, dtype_bytes: int, rows: int, cached_tokens: int) -> int:
    """2 (K,V) x layers x kv_heads x head_dim x dtype bytes x rows x cached tokens."""
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or config["num_attention_heads"]
    return 2 * config["num_hidden_layers"] * kv_heads * head_dim * dtype_bytes * rows * cached_tokens


def run_workload(backend, spec: dict, max_new_tokens: int, repeats: int) -> dict:
    reqs = [
        GenerationRequest(
            p, n=spec["n"], max_new_tokens=max_new_tokens, temperature=spec["temperature"], seed=i
        )
        for i, p in enumerate(prompts(spec["requests"]))
    ]
    backend.generate(reqs)  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        results = backend.generate(reqs)
        wall = time.perf_counter() - t0
        tokens = sum(c.completion_tokens for r in results for c in r.completions)
        kv = [r.kv_bytes_peak for r in results]
        runs.append(
            {
                "wall_s": wall,
                "latency_s_sum": sum(r.latency_s for r in results),
                "generated_tokens": tokens,
                "tokens_per_s": tokens / wall,
                "ttft_s": results[0].ttft_s,
                "kv_bytes_measured": None if any(k is None for k in kv) else sum(kv),
                "kv_source": results[0].kv_source,
                "alloc_peak_bytes": results[0].extra.get("batch_cuda_alloc_peak_delta_bytes"),
                "rows": results[0].extra.get("batch_rows", spec["requests"] * spec["n"]),
                "padded_prompt": results[0].extra.get("padded_prompt_tokens"),
                "steps": results[0].extra.get("generation_steps"),
            }
        )
    runs.sort(key=lambda r: r["wall_s"])
    median = dict(runs[len(runs) // 2])
    median["wall_s_all"] = [r["wall_s"] for r in runs]
    return median


def models_to_run(requested: str | None, device: str, workdir: Path) -> list[tuple[str, str]]:
    """(label, spec) pairs: the requested or existing lab checkpoints, else a random model."""
    from profiling.backends import lab_checkpoint as _lab_checkpoint

    names = requested.split(",") if requested else ["lab-s", "lab-m", "lab-l", "lab-moe"]
    found = []
    for name in names:
        lab = _lab_checkpoint(name)
        if lab is not None and lab.is_dir():
            found.append((name, name))
        elif Path(name).is_dir():
            found.append((Path(name).name, name))
        elif requested:
            print(f"(skipping {name}: no checkpoint)")
    if found:
        return found
    # no lab checkpoint: a random model, larger on a GPU so the timings mean something
    shape = dict(layers=8, hidden=512, heads=8, kv_heads=2) if device.startswith("cuda") else {}
    path = make_tiny_checkpoint(workdir / "random", **shape)
    label = "random " + ("8x512" if shape else "2x64")
    print(f"(no lab checkpoint found; using a random from_config model: {label})")
    return [(label, str(path))]


def fmt_bytes(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:.2f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--models", default=None, help="comma-separated lab names or checkpoint paths")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 128 on GPU, 24 on CPU")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed calls per workload (default 3 GPU, 1 CPU)"
    )
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--workloads", default=None, help="comma-separated subset of: " + ", ".join(WORKLOADS)
    )
    parser.add_argument("--out", default=None, help="write the measurements as JSON here")
    parser.add_argument("--skip-vllm", action="store_true")
    args = parser.parse_args(argv)

    import torch
    import transformers

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.startswith("cuda")
    max_new = args.max_new_tokens or (128 if gpu else 24)
    repeats = args.repeats or (3 if gpu else 1)
    workloads = {k: v for k, v in WORKLOADS.items() if not args.workloads or k in args.workloads.split(",")}
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}", end="")
    print(f" ({torch.cuda.get_device_name(0)})" if gpu else "")
    report: dict = {"device": device, "torch": torch.__version__, "max_new_tokens": max_new, "results": []}

    with tempfile.TemporaryDirectory() as tmp:
        for label, spec in models_to_run(args.models, device, Path(tmp)):
            backend = load_backend(spec, device=device, dtype=args.dtype, max_batch_rows=1024)
            meta = backend.metadata()
            dtype_bytes = torch.empty(0, dtype=backend.model.dtype).element_size()
            print(
                f"\n== hf {label}: {meta['num_parameters']:,} params, {meta['dtype']}, {max_new} new tokens max"
            )
            print(
                f"{'workload':<12} {'wall s':>8} {'tokens':>7} {'tok/s':>9} {'ttft s':>8} {'KV measured':>13} {'KV formula':>13} {'alloc peak':>12}"
            )
            for name, wl in workloads.items():
                m = run_workload(backend, wl, max_new, repeats)
                formula = None
                if m["padded_prompt"] is not None and m["steps"] is not None:
                    formula = expected_kv_bytes(
                        meta["config"], dtype_bytes, m["rows"], m["padded_prompt"] + m["steps"] - 1
                    )
                m.update(backend="hf", model=label, workload=name, kv_bytes_formula=formula)
                report["results"].append(m)
                ttft = "-" if m["ttft_s"] is None else f"{m['ttft_s']:.4f}"
                print(
                    f"{name:<12} {m['wall_s']:>8.3f} {m['generated_tokens']:>7} {m['tokens_per_s']:>9.0f} {ttft:>8} "
                    f"{fmt_bytes(m['kv_bytes_measured']):>13} {fmt_bytes(formula):>13} {fmt_bytes(m['alloc_peak_bytes']):>12}"
                )
            backend.close()
            del backend
            if gpu:
                torch.cuda.empty_cache()

            if args.skip_vllm:
                continue
            try:
                import vllm  # noqa: F401
            except ImportError:
                print("(vllm not importable: vllm backend skipped)")
                continue
            try:
                vb = load_backend("vllm:" + spec, gpu_memory_utilization=0.5, max_model_len=512)
                print(
                    f"\n== vllm {label} (KV from the usage gauge; total KV cache {fmt_bytes(vb.kv_total_bytes)})"
                )
                for name, wl in workloads.items():
                    m = run_workload(vb, wl, max_new, repeats)
                    m.update(backend="vllm", model=label, workload=name)
                    report["results"].append(m)
                    print(
                        f"{name:<12} wall {m['wall_s']:.3f} s, {m['generated_tokens']} tokens, {m['tokens_per_s']:.0f} tok/s, KV {fmt_bytes(m['kv_bytes_measured'])}"
                    )
                vb.close()
            except Exception as err:  # noqa: BLE001 - report and go on: this is a check script
                print(f"(vllm run failed: {type(err).__name__}: {err})")

    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
