"""What does the profiler cost on top of the model? ``pool`` through ``ttc profile`` vs bare ``generate``.

All sides run the same work on the same model in the same process: the first
``--questions`` prompts of the task in batches of ``--batch-size`` questions, ``--n`` samples
each, ``--max-new-tokens``, temperature 1.

* **bare**: per batch, the tokenizer, ``model.generate(do_sample=True, temperature=1)`` on the
  batch's prompts repeated n times (left padding), and decoding — nothing else.
* **hf backend**: per batch, ``HFBackend.generate`` of the batch's requests (per-row seeded
  sampling, log-probs, per-row stopping, measured tokens, latency and KV) — the very requests
  the profiler sends, same seeds, so these two sides draw identical samples and their
  difference is the profiler's own cost.
* **profiler hf**: one :func:`profiling.runner.profile` run with ``pool:n=N`` into a fresh folder
  — everything ``ttc profile`` does: run.json, request building, the hf backend, answer
  extraction, rows, schema validation, atomic fsync-ed Parquet shards.
* **fast backend** and **profiler fast**: the same two with the fast engine
  (:class:`profiling.backends.fastlab.FastLabBackend`, what ``ttc profile`` runs the lab on).

The profiler's own cost is profiler / backend of the same engine (the goal: at most 1.05 in
wall and CPU time); profiler / bare is the whole pipeline against plain ``generate``.

The hf backend is loaded with ``max_batch_rows = batch_size * n`` so every side makes ONE
``generate`` call per batch. Every side runs with ``--threads`` torch threads (default 1: on a
shared 2-core machine two threads made every side many times slower and its times erratic). After ``--warmup`` untimed rounds, the sides alternate for
``--reps`` rounds (machine-load drifts hit all alike); the script prints median wall times
and their ratios to bare (the headline), the same for CPU time (``time.process_time``, all
threads of this process: steadier than wall time on a shared machine, where other
processes steal cycles), and wall time per decode step (sampled lengths make the number of
decode steps differ a little between sides). ``time.perf_counter``, with
``torch.cuda.synchronize`` on CUDA.

Run::

    python benchmarks/profiler_overhead.py                      # lab-s on lab-arith, CPU
    python benchmarks/profiler_overhead.py --model PATH --task FILE.jsonl --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# idle OpenMP threads sleep rather than spin (as `ttc profile` does): spinning on a shared CPU
# slows torch many times over; set before torch loads, the environment wins
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def bare_generate(
    backend, batches: list[list[str]], n: int, max_new_tokens: int, seed: int
) -> tuple[float, int, int]:
    """Tokenize, ``model.generate`` with plain sampling, decode, per batch. Returns (seconds, steps, tokens)."""
    import torch

    model, tok = backend.model, backend.tokenizer
    sync = torch.cuda.synchronize if backend.device.type == "cuda" else (lambda: None)
    eos = torch.tensor(sorted(backend.eos_ids), device=backend.device)
    elapsed, cpu, steps, tokens = 0.0, 0.0, 0, 0
    for b, prompts in enumerate(batches):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        enc = tok(prompts, return_tensors="pt", padding=True)
        ids = enc["input_ids"].repeat_interleave(n, dim=0).to(backend.device)
        mask = enc["attention_mask"].repeat_interleave(n, dim=0).to(backend.device)
        torch.manual_seed(seed * 1000 + b)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                max_new_tokens=max_new_tokens,
                pad_token_id=tok.pad_token_id,
            )
        new = out[:, ids.shape[1] :]
        tok.batch_decode(new, skip_special_tokens=True)
        sync()
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        is_eos = torch.isin(new, eos)
        ended = is_eos.any(dim=1)
        lengths = torch.where(ended, is_eos.int().argmax(dim=1) + 1, new.shape[1])  # up to and including EOS
        steps += int(new.shape[1])
        tokens += int(lengths.sum())
    return elapsed, cpu, steps, tokens


def _counting(backend):
    """Wrap ``backend.generate`` to collect each call's decode steps; returns the list."""
    steps: list[int] = []
    original = type(backend).generate

    def generate(requests):
        results = original(backend, requests)
        steps.append(results[0].extra.get("generation_steps", 0))
        return results

    backend.generate = generate
    return steps


def backend_generate(backend, task, problems: list, args, seed: int) -> tuple:
    """``HFBackend.generate`` per batch, with exactly the requests ``pool`` sends in a profile run
    with run seed ``seed`` (same prompts, n, seeds), so both sides draw the same samples.

    Returns (wall s, CPU s, decode steps, generated tokens)."""
    from profiling.backends import GenerationRequest
    from profiling.strategies import RunContext, get_strategy

    pool = get_strategy(f"pool:n={args.n}")
    ctx = RunContext(seed=seed, max_new_tokens=args.max_new_tokens, model=backend.model_name)
    steps = _counting(backend)
    elapsed, cpu, tokens = 0.0, 0.0, 0
    try:
        for start in range(0, len(problems), args.batch_size):
            requests = [
                GenerationRequest(
                    task.format_prompt(p, cot=True),
                    n=args.n,
                    max_new_tokens=args.max_new_tokens,
                    temperature=1.0,
                    seed=pool.unit_seed(ctx, p),
                )
                for p in problems[start : start + args.batch_size]
            ]
            t0, c0 = time.perf_counter(), time.process_time()
            results = backend.generate(requests)
            elapsed += time.perf_counter() - t0
            cpu += time.process_time() - c0
            tokens += sum(c.completion_tokens for r in results for c in r.completions)
    finally:
        del backend.generate
    return elapsed, cpu, sum(steps), tokens


def profiler_pool(backend, task, args, seed: int) -> tuple:
    """One full ``ttc profile`` run of ``pool:n=N`` into a fresh folder. Returns (wall s, CPU s, steps, tokens)."""
    from fitting.schema import read_samples
    from profiling.runner import profile

    steps = _counting(backend)
    try:
        with tempfile.TemporaryDirectory() as out:
            t0, c0 = time.perf_counter(), time.process_time()
            result = profile(
                [backend],
                task,
                [f"pool:n={args.n}"],
                out,
                limit=args.questions,
                seed=seed,
                max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size,
            )
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            rows = len(read_samples(out))
    finally:
        del backend.generate
    if rows != args.n * args.questions:
        raise RuntimeError(f"profiler wrote {rows} rows, expected {args.n * args.questions}")
    return elapsed, cpu, sum(steps), result.completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lab-s")
    parser.add_argument("--task", default="lab-arith")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="questions per batch (generate call)")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every side")
    args = parser.parse_args()

    import torch

    from profiling.backends import load_backend
    from profiling.tasks import get_task

    torch.set_num_threads(args.threads)
    backend = load_backend(f"hf:{args.model}", device=args.device, max_batch_rows=args.batch_size * args.n)
    fast = load_backend(f"fast:{args.model}", device=args.device, threads=args.threads)
    task = get_task(args.task)
    problems = list(task.problems(limit=args.questions))
    prompts = [task.format_prompt(p, cot=True) for p in problems]
    batches = [prompts[i : i + args.batch_size] for i in range(0, len(prompts), args.batch_size)]
    print(
        f"model {backend.model_name} ({backend.metadata().get('num_parameters', '?')} params) on {args.device}; "
        f"{len(prompts)} questions in {len(batches)} batches x n={args.n}, max_new_tokens={args.max_new_tokens}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, {args.threads} torch thread(s), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    sides = {
        "bare generate": lambda seed: bare_generate(backend, batches, args.n, args.max_new_tokens, seed),
        "hf backend": lambda seed: backend_generate(backend, task, problems, args, seed),
        "profiler hf": lambda seed: profiler_pool(backend, task, args, seed),
        "fast backend": lambda seed: backend_generate(fast, task, problems, args, seed),
        "profiler fast": lambda seed: profiler_pool(fast, task, args, seed),
    }
    for i in range(args.warmup):
        for run in sides.values():
            run(10_000 + i)
    measured = {name: [] for name in sides}
    for rep in range(args.reps):  # alternate so drifts in machine load hit every side alike
        for name, run in sides.items():
            measured[name].append(run(rep))

    def med(name, i):
        return statistics.median(r[i] for r in measured[name])

    bare = "bare generate"
    print(
        f"{'':16}{'wall s':>9}{'CPU s':>9}{'steps':>7}{'tokens':>8}{'wall/bare':>11}{'CPU/bare':>10}{'step/bare':>11}"
    )
    for name in sides:
        per_step = (med(name, 0) / med(name, 2)) / (med(bare, 0) / med(bare, 2))
        print(
            f"{name:16}{med(name, 0):9.4f}{med(name, 1):9.4f}{med(name, 2):7.0f}{med(name, 3):8.0f}"
            f"{med(name, 0) / med(bare, 0):11.3f}{med(name, 1) / med(bare, 1):10.3f}{per_step:11.3f}"
        )
    ratios = []
    for engine in ("hf", "fast"):
        prof, gen = f"profiler {engine}", f"{engine} backend"
        ratios.append(
            f"{engine}: profiler / backend wall {med(prof, 0) / med(gen, 0):.3f}, CPU {med(prof, 1) / med(gen, 1):.3f}"
            f" (profiler / bare wall {med(prof, 0) / med(bare, 0):.3f}, CPU {med(prof, 1) / med(bare, 1):.3f})"
        )
    print(f"profiler overhead (target <= 1.05): {'; '.join(ratios)}; medians of {args.reps} reps")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    fast.close()
    backend.close()


if __name__ == "__main__":
    main()
