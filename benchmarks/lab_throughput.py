"""Lab generation speed: the hf path, the fast engine and the arithmetic roofline, side by side.

For each lab model, the same requests go through

* **hf**: :class:`profiling.backends.hf.HFBackend` as the profiler used it before the fast
  engine (transformers' ``generate``, at most 64 rows per call);
* **fast**: :class:`profiling.backends.fastlab.FastLabBackend` (the whole call in one batch,
  each prompt prefilled once, a preallocated cache, finished rows compacted out);

in alternating rounds (load drifts of a shared machine hit both alike), both with ``--threads``
torch threads (default 1, the fast engine's default: on a shared 2-core machine two threads made
both engines many times slower). The workloads are the
demo's: ``--questions`` chain-of-thought prompts spread over the five levels, in calls of
``--batch-size`` questions (the profiler's unit batch), as a pool (``n`` samples at
temperature 1) and greedy, ``--max-new-tokens`` each. Both sides get the same seeds, so they
generate the same tokens (checked: "same" column).

**Roofline.** Tokens/s the arithmetic allows: the machine's matmul FLOP/s (a ``--matmul-n``
square float32 matmul with the same threads, timed in the same rounds) over the model's FLOPs
per generated token (:func:`planner.costs.forward_flops` of one decode token at the
workload's mean context, active parameters for the MoE, attention included). "of roofline"
is measured tokens/s over that. Wall-time numbers (tokens/s) and CPU-time numbers (tokens per
CPU second against FLOP per CPU second: steadier when other jobs share the cores) are both
printed. Medians over ``--reps`` rounds after one warm-up round.

Run::

    python benchmarks/lab_throughput.py                        # every lab model, CPU
    python benchmarks/lab_throughput.py --models lab-l --reps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# idle OpenMP threads sleep rather than spin (as `ttc profile` does); set before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def matmul_flops(n: int, seconds: float = 0.3) -> tuple[float, float]:
    """(wall FLOP/s, CPU FLOP/s) of ``n x n`` float32 matmuls repeated for about ``seconds``."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    count, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return 2.0 * n**3 * count / wall, 2.0 * n**3 * count / max(cpu, 1e-9)


def workloads(task, args) -> dict[str, list[list]]:
    """name -> calls (each a list of requests): a pool and greedy, on the same questions."""
    from profiling.backends import GenerationRequest

    per_level = -(-args.questions // 5)
    problems = list(task.problems(per_level=per_level))
    problems = [problems[i] for i in range(0, len(problems), max(1, len(problems) // args.questions))]
    problems = problems[: args.questions]
    prompts = [task.format_prompt(p, cot=True) for p in problems]
    calls = [prompts[i : i + args.batch_size] for i in range(0, len(prompts), args.batch_size)]

    def requests(n: int, temperature: float) -> list[list]:
        return [
            [
                GenerationRequest(p, n=n, max_new_tokens=args.max_new_tokens, temperature=temperature, seed=i)
                for i, p in enumerate(call)
            ]
            for call in calls
        ]

    return {f"pool n={args.n}": requests(args.n, 1.0), "greedy": requests(1, 0.0)}


def run_side(backend, calls: list[list]) -> tuple[float, float, int, list]:
    """(wall s, CPU s, generated tokens, texts) of every call of a workload."""
    wall = cpu = 0.0
    tokens, texts = 0, []
    for requests in calls:
        t0, c0 = time.perf_counter(), time.process_time()
        results = backend.generate(requests)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        tokens += sum(c.completion_tokens for r in results for c in r.completions)
        texts += [c.text for r in results for c in r.completions]
    return wall, cpu, tokens, texts


def flops_per_token(backend, calls: list[list], tokens: int) -> float:
    """Model FLOPs of one generated token at the workload's mean context (prompt plus half the
    mean completion), :func:`planner.costs.forward_flops`."""
    from planner.costs import ModelSpec, forward_flops

    spec = ModelSpec.from_hf_config(backend.model.config, name=backend.model_name, dtype="float32")
    rows = sum(r.n for call in calls for r in call)
    prompt = statistics.mean(backend.count_tokens(r.prompt) + 1 for call in calls for r in call)
    return float(forward_flops(spec, 1, prompt + tokens / rows / 2))


def bench_model(name: str, task, args) -> list[dict]:
    from profiling.backends.fastlab import FastLabBackend
    from profiling.backends.hf import HFBackend
    from profiling.lab import checkpoint_path

    sides = {
        "hf": HFBackend(checkpoint_path(name), device=args.device, model_name=name),
        "fast": FastLabBackend(
            checkpoint_path(name), device=args.device, model_name=name, threads=args.threads
        ),
    }
    rows = []
    for work, calls in workloads(task, args).items():
        for backend in sides.values():  # warm-up
            run_side(backend, calls[:1])
        measured = {side: [] for side in sides}
        machine = []
        for _ in range(args.reps):
            for side, backend in sides.items():
                measured[side].append(run_side(backend, calls))
            machine.append(matmul_flops(args.matmul_n))
        same = measured["hf"][0][3] == measured["fast"][0][3]
        tokens = measured["fast"][0][2]
        fpt = flops_per_token(sides["fast"], calls, tokens)
        peak_wall = statistics.median(m[0] for m in machine)
        peak_cpu = statistics.median(m[1] for m in machine)
        row = {
            "model": name,
            "workload": work,
            "tokens": tokens,
            "same": same,
            "flops_per_token": fpt,
            "roofline_tok_s": peak_wall / fpt,
            "roofline_tok_cpu_s": peak_cpu / fpt,
        }
        for side in sides:
            row[f"{side}_tok_s"] = statistics.median(t / w for w, _, t, _ in measured[side])
            row[f"{side}_tok_cpu_s"] = statistics.median(t / c for _, c, t, _ in measured[side])
        rows.append(row)
        print_row(row)
    for backend in sides.values():
        backend.close()
    return rows


def print_row(r: dict) -> None:
    print(
        f"{r['model']:8} {r['workload']:10} {r['tokens']:7d} {'yes' if r['same'] else 'NO':>4} "
        f"{r['flops_per_token'] / 1e6:8.2f} {r['hf_tok_s']:9,.0f} {r['fast_tok_s']:9,.0f} "
        f"{r['fast_tok_s'] / r['hf_tok_s']:6.2f}x {r['roofline_tok_s']:10,.0f} "
        f"{r['hf_tok_s'] / r['roofline_tok_s']:6.1%} {r['fast_tok_s'] / r['roofline_tok_s']:6.1%} | "
        f"{r['fast_tok_cpu_s'] / r['hf_tok_cpu_s']:6.2f}x {r['hf_tok_cpu_s'] / r['roofline_tok_cpu_s']:6.1%} "
        f"{r['fast_tok_cpu_s'] / r['roofline_tok_cpu_s']:6.1%}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["lab-s", "lab-m", "lab-l", "lab-moe"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8, help="questions per generate call")
    parser.add_argument("--n", type=int, default=16, help="samples per question of the pool workload")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--matmul-n", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both engines and the matmul")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from profiling.tasks import get_task

    task = get_task("lab-arith")
    print(
        f"{args.questions} questions in calls of {args.batch_size}, max_new_tokens={args.max_new_tokens}, "
        f"{args.device}, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, load average at start "
        f"{os.getloadavg()[0]:.1f}; medians of {args.reps} alternating rounds"
    )
    print(
        f"{'model':8} {'workload':10} {'tokens':>7} {'same':>4} {'MFLOP/t':>8} {'hf tok/s':>9} {'fast tok/s':>9} "
        f"{'speedup':>7} {'roofline':>10} {'hf':>6} {'fast':>6} | {'CPU: speedup':>7} {'hf':>6} {'fast':>6}"
    )
    rows = [row for name in args.models for row in bench_model(name, task, args)]
    print(
        "tok/s = generated tokens per wall second; roofline = matmul FLOP/s / model FLOPs per token; "
        "hf, fast = share of the roofline reached. After |: the same from CPU time."
    )
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if not all(r["same"] for r in rows):
        print("WARNING: the two engines generated different samples somewhere (see the same column)")


if __name__ == "__main__":
    main()
