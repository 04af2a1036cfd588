"""One device check of the backends: hf on CUDA always, vllm where ``import vllm`` works.

hf, for each model (the lab checkpoints that exist, else one random ``from_config`` model) and
each workload (greedy n=1, pools n=16 and n=64 at temperature 1, 8 requests x n=16 batched):
one warm-up call and ``--repeats`` timed calls; the median wall time, generated tokens,
tokens/s and TTFT; the KV bytes read from the cache tensors next to the formula
2*L*H_kv*d_head*bytes*rows*(P+T-1); on CUDA the allocator peak over the call (which must hold
the KV); and a seeded pool run twice (identical texts).

vllm, on one model (``--vllm-model``, default the first lab checkpoint), with
``enforce_eager=True`` and the checkpoint's own ``max_model_len``: versions and the model
runner; the KV pool (``kv_total_bytes``) next to ``num_gpu_blocks * block_size``, vLLM's
``kv_cache_size_tokens`` and the bytes the workers really allocated; the same workloads; a
seeded n=16 pool twice and inside a batch (identical texts); the peak KV usage in blocks
against the blocks expected (shared prompt blocks plus each sample's own); timing with KV
polling on and off; greedy n>1 (one engine sample, replicated) and chat prompts as token ids
(one BOS); create, close and recreate an engine in one process (GPU memory released).

Every number printed was measured in this run; each check prints PASS or FAIL and the script
exits 1 when one fails. ``--out`` saves everything as JSON.

Usage: ``python benchmarks/gpu_check.py [--device cuda|cpu] [--models lab-m,lab-moe] [--out f.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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
CHECKS: list[dict] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    """Record and print one check."""
    CHECKS.append({"check": name, "ok": bool(ok), "detail": detail})
    print(f"  [{'PASS' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}")
    return bool(ok)


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


def long_prompt() -> str:
    """A prompt of several KV blocks (worked lab examples, then a question) for the KV checks."""
    try:
        from profiling.tasks import get_task

        task = get_task("lab-arith")
        ps = list(task.problems(limit=4))
        shots = "".join(task.format_prompt(p) + task.solution(p) + "\n" for p in ps[:3])
        return shots + task.format_prompt(ps[3])
    except Exception:  # noqa: BLE001 - fall back to a fixed long prompt
        return "".join(f"Q: {i}+{i + 1}=\n{2 * i + 1}\n" for i in range(12)) + "Q: 7+8=\n"


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
                "kv_usage_peak_fraction": results[0].extra.get("kv_usage_peak_fraction"),
            }
        )
    runs.sort(key=lambda r: r["wall_s"])
    median = dict(runs[len(runs) // 2])
    median["wall_s_all"] = [r["wall_s"] for r in runs]
    return median


def seeded_texts(backend, prompt: str, max_new: int, seed: int = 1234, n: int = 16) -> list[str]:
    [r] = backend.generate(
        [GenerationRequest(prompt, n=n, temperature=1.0, seed=seed, max_new_tokens=max_new)]
    )
    return [c.text for c in r.completions]


def models_to_run(requested: str | None, device: str, workdir: Path) -> list[tuple[str, str]]:
    """(label, spec) pairs: the requested or existing lab checkpoints, else a random model."""
    from profiling.backends import lab_checkpoint as _lab_checkpoint

    names = requested.split(",") if requested else ["lab-s", "lab-m", "lab-l", "lab-moe"]
    found = []
    for name in names:
        lab = _lab_checkpoint(name)
        if lab is not None and lab.is_dir():
            found.append((name, str(lab)))
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


# ---- hf ----------------------------------------------------------------------------------------
def hf_section(label: str, path: str, args, device: str, max_new: int, repeats: int, report: dict) -> None:
    import torch

    backend = load_backend(path, device=device, dtype=args.dtype, max_batch_rows=1024)
    meta = backend.metadata()
    dtype_bytes = torch.empty(0, dtype=backend.model.dtype).element_size()
    print(f"\n== hf {label}: {meta['num_parameters']:,} params, {meta['dtype']}, {max_new} new tokens max")
    print(
        f"{'workload':<12} {'wall s':>8} {'tokens':>7} {'tok/s':>9} {'ttft s':>8} {'KV measured':>13} {'KV formula':>13} {'alloc peak':>12}"
    )
    for name, wl in args.workloads.items():
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
        if formula is not None and m["kv_bytes_measured"] is not None:
            check(f"hf {label} {name}: cache-tensor KV = formula", abs(m["kv_bytes_measured"] - formula) < 1)
        if m["alloc_peak_bytes"] is not None and m["kv_bytes_measured"] is not None:
            check(
                f"hf {label} {name}: allocator peak >= KV",
                m["alloc_peak_bytes"] >= m["kv_bytes_measured"],
                f"{fmt_bytes(m['alloc_peak_bytes'])} vs {fmt_bytes(m['kv_bytes_measured'])}",
            )
    first, second = (seeded_texts(backend, prompts(1)[0], max_new) for _ in range(2))
    check(f"hf {label}: seeded pool n=16 twice gives identical texts", first == second)
    backend.close()
    del backend
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# ---- vllm --------------------------------------------------------------------------------------
def _worker_kv_bytes(self) -> dict:
    """Runs inside each vLLM worker (``LLM.collective_rpc``): bytes of the KV tensors it holds."""
    runner = self.model_runner
    seen, total = set(), 0
    stack = list(getattr(runner, "kv_caches", []) or [])
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif hasattr(item, "untyped_storage"):
            storage = item.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
    config = getattr(runner, "kv_cache_config", None)
    return {"bytes": total, "num_blocks": getattr(config, "num_blocks", None)}


def _chat_checkpoint(path: str, workdir: Path) -> str:
    """A copy of ``path`` whose tokenizer has a chat template that holds BOS."""
    from transformers import AutoTokenizer

    out = workdir / "chat-model"
    shutil.copytree(path, out, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}\n"
    tok.save_pretrained(out)
    return str(out)


def vllm_section(
    label: str, path: str, args, max_new: int, repeats: int, report: dict, workdir: Path
) -> None:
    import torch
    import transformers
    import vllm

    from profiling.backends.vllm import VLLMBackend, pool_blocks_expected

    os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")  # for the worker-side KV probe
    common = dict(gpu_memory_utilization=args.vllm_memory, enforce_eager=True)
    free0, total_mem = torch.cuda.mem_get_info()
    t0 = time.perf_counter()
    vb = VLLMBackend(path, model_name=label, **common)
    start_s = time.perf_counter() - t0
    meta = vb.metadata()
    layout = vb.kv_layout
    print(
        f"\n== vllm {label}: vLLM {vllm.__version__}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, model runner {meta['vllm_model_runner']}, engine start {start_s:.1f} s"
    )
    print(
        f"   KV pool: {meta['kv_cache_num_gpu_blocks']} blocks x {meta['kv_block_size']} tokens, "
        f"{fmt_bytes(vb.kv_total_bytes)} (one copy), kv_cache_size_tokens {meta['kv_cache_size_tokens']}, "
        f"max_model_len {meta['max_model_len']}, groups {meta['kv_cache_groups']}"
    )
    vsec: dict = {"model": label, "meta": meta, "engine_start_s": start_s}
    report["vllm"] = vsec
    blocks, block_size, max_len = vb.num_gpu_blocks, meta["kv_block_size"], vb.max_model_len
    check(f"vllm {label}: KV pool from the cache layout", vb.kv_total_bytes is not None, vb.kv_total_why)
    if blocks and block_size and max_len and vb.kv_capacity_tokens is not None and layout is not None:
        if len(layout.groups) == 1 and layout.groups[0][0] == "full":
            expected_tokens = int(blocks * max_len / -(-max_len // block_size))
            check(
                f"vllm {label}: kv_cache_size_tokens = num_gpu_blocks*block_size (vLLM's capacity at max_model_len)",
                vb.kv_capacity_tokens == expected_tokens,
                f"{vb.kv_capacity_tokens} vs {expected_tokens} ({blocks} x {block_size} = {blocks * block_size})",
            )
    try:
        probes = vb.llm.collective_rpc(_worker_kv_bytes)
        allocated = sum(p["bytes"] for p in probes)
        ours = layout.block_bytes * blocks if layout is not None and blocks else None
        vsec["worker_kv"] = probes
        check(
            f"vllm {label}: workers' KV tensors = num_gpu_blocks x block bytes of the layout",
            ours is not None and abs(allocated - ours) <= 0.01 * ours,
            f"{fmt_bytes(allocated)} allocated vs {fmt_bytes(ours)} predicted; worker blocks "
            f"{[p['num_blocks'] for p in probes]}",
        )
    except Exception as err:  # noqa: BLE001 - the probe needs collective_rpc with a callable
        check(f"vllm {label}: workers' KV tensors readable", False, f"{type(err).__name__}: {err}")

    print(
        f"{'workload':<12} {'wall s':>8} {'tokens':>7} {'tok/s':>9} {'ttft s':>8} {'KV peak':>13} {'usage':>7}"
    )
    for name, wl in args.workloads.items():
        m = run_workload(vb, wl, max_new, repeats)
        m.update(backend="vllm", model=label, workload=name)
        report["results"].append(m)
        ttft = "-" if m["ttft_s"] is None else f"{m['ttft_s']:.4f}"
        frac = m["kv_usage_peak_fraction"]
        print(
            f"{name:<12} {m['wall_s']:>8.3f} {m['generated_tokens']:>7} {m['tokens_per_s']:>9.0f} {ttft:>8} "
            f"{fmt_bytes(m['kv_bytes_measured']):>13} {'-' if frac is None else f'{frac:.4f}':>7}"
        )

    prompt = prompts(1)[0]
    solo = seeded_texts(vb, prompt, max_new)
    check(
        f"vllm {label}: seeded pool n=16 twice gives identical texts",
        solo == seeded_texts(vb, prompt, max_new),
    )
    others = [
        GenerationRequest(p, n=8, temperature=1.0, seed=9, max_new_tokens=max_new) for p in prompts(6)[1:]
    ]
    batch = vb.generate(
        [*others, GenerationRequest(prompt, n=16, temperature=1.0, seed=1234, max_new_tokens=max_new)]
    )
    same = sum(a == c.text for a, c in zip(solo, batch[-1].completions, strict=True))
    check(
        f"vllm {label}: the seeded pool inside a batch of 6 requests gives the same texts",
        same == 16,
        f"{same}/16",
    )

    lp = long_prompt()
    ids = vb.tokenizer.encode(lp, add_special_tokens=True)
    room = (max_len or 256) - len(ids) - 1
    if room < 8:
        lp, room = prompt, (max_len or 256) - 32
    gen = min(max_new, room)
    [r] = vb.generate([GenerationRequest(lp, n=16, temperature=1.0, seed=5, max_new_tokens=gen)])
    frac = r.extra["kv_usage_peak_fraction"]
    if layout is not None and blocks and frac is not None:
        measured = frac * (blocks - 1)
        lengths = [c.completion_tokens for c in r.completions]
        shared = pool_blocks_expected(layout, r.prompt_tokens, lengths)
        unshared = pool_blocks_expected(layout, r.prompt_tokens, lengths, shared_prompt=False)
        vsec["kv_blocks"] = {
            "measured_peak": measured,
            "expected_shared": shared,
            "expected_unshared": unshared,
        }
        check(
            f"vllm {label}: peak KV blocks <= expected with the prompt shared (the gauge is a lower bound)",
            0 < measured <= shared + len(layout.groups),
            f"measured {measured:.1f} blocks; expected {shared} shared / {unshared} unshared "
            f"(prompt {r.prompt_tokens} tokens, samples {min(lengths)}-{max(lengths)} tokens)",
        )
    else:
        check(f"vllm {label}: peak KV usage read", False, f"fraction {frac}, layout {layout}")

    poll = {}
    off = VLLMBackend.__new__(VLLMBackend)
    off.__dict__.update(vb.__dict__)
    off.kv_poll_s = None
    reqs = [GenerationRequest(lp, n=16, temperature=1.0, seed=5, max_new_tokens=gen)]
    for _ in range(max(repeats, 3)):
        for key, backend in (("on", vb), ("off", off)):
            t = time.perf_counter()
            backend.generate(reqs)
            poll.setdefault(key, []).append(time.perf_counter() - t)
    on_s, off_s = statistics.median(poll["on"]), statistics.median(poll["off"])
    vsec["polling_wall_s"] = poll
    print(
        f"   KV polling every {vb.kv_poll_s} s: median {on_s:.4f} s on vs {off_s:.4f} s off ({on_s / off_s:.3f}x)"
    )

    [greedy1] = vb.generate([GenerationRequest(prompt, n=1, temperature=0.0, max_new_tokens=max_new)])
    [greedy4] = vb.generate([GenerationRequest(prompt, n=4, temperature=0.0, max_new_tokens=max_new)])
    check(
        f"vllm {label}: greedy n=4 runs (one engine sample, replicated) and equals greedy n=1",
        [c.text for c in greedy4.completions] == [greedy1.completions[0].text] * 4
        and greedy4.extra.get("greedy_replicated") == 4,
    )
    vb.close()
    time.sleep(2.0)
    free1, _ = torch.cuda.mem_get_info()

    chat = VLLMBackend(_chat_checkpoint(path, workdir), chat=True, model_name=label, **common)
    tok = chat.tokenizer
    text = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    want = tok.encode(text, add_special_tokens=False)
    [c] = chat.generate([GenerationRequest(prompt, max_new_tokens=4)])
    check(
        f"vllm {label}: chat prompt sent as token ids with one BOS",
        c.prompt_tokens == len(want) and want.count(tok.bos_token_id) == 1,
        f"{c.prompt_tokens} prompt tokens, template {len(want)}",
    )
    chat.close()
    time.sleep(2.0)
    free2, _ = torch.cuda.mem_get_info()
    vsec["free_bytes"] = {
        "before": free0,
        "after_close": free1,
        "after_recreate_close": free2,
        "total": total_mem,
    }
    slack = 0.05 * total_mem
    check(
        f"vllm {label}: close() releases the engine's GPU memory (create, close, recreate, close)",
        free1 >= free0 - slack and free2 >= free0 - slack,
        f"free {fmt_bytes(free0)} before, {fmt_bytes(free1)} after close, {fmt_bytes(free2)} after the second",
    )


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
    parser.add_argument(
        "--vllm-model", default=None, help="the model of the vllm checks (default: the first)"
    )
    parser.add_argument("--vllm-memory", type=float, default=0.3, help="vLLM gpu_memory_utilization")
    args = parser.parse_args(argv)

    import torch
    import transformers

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.startswith("cuda")
    max_new = args.max_new_tokens or (128 if gpu else 24)
    repeats = args.repeats or (3 if gpu else 1)
    args.workloads = {
        k: v for k, v in WORKLOADS.items() if not args.workloads or k in args.workloads.split(",")
    }
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}", end="")
    print(f" ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda})" if gpu else "")
    report: dict = {"device": device, "torch": torch.__version__, "max_new_tokens": max_new, "results": []}

    with tempfile.TemporaryDirectory() as tmp:
        models = models_to_run(args.models, device, Path(tmp))
        for label, path in models:
            hf_section(label, path, args, device, max_new, repeats, report)
        if args.skip_vllm:
            pass
        elif not gpu:
            print("\n(vllm backend needs a CUDA device: skipped on cpu)")
        else:
            try:
                import vllm  # noqa: F401
            except ImportError:
                print("\n(vllm not importable: vllm backend skipped)")
            else:
                label, path = models[0]
                if args.vllm_model:
                    label, path = next(
                        ((lb, p) for lb, p in models if lb == args.vllm_model),
                        (args.vllm_model, args.vllm_model),
                    )
                try:
                    vllm_section(label, path, args, max_new, repeats, report, Path(tmp))
                except Exception as err:  # noqa: BLE001 - report and go on: this is a check script
                    import traceback

                    traceback.print_exc()
                    check(f"vllm {label}: section ran to the end", False, f"{type(err).__name__}: {err}")

    failed = [c for c in CHECKS if not c["ok"]]
    report["checks"] = CHECKS
    print(
        f"\n{len(CHECKS)} checks, {len(CHECKS) - len(failed)} passed"
        + (f"; FAILED: {[c['check'] for c in failed]}" if failed else "")
    )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
