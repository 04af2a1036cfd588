"""Tokens saved by sampling one pool and estimating every k, versus regenerating for each k.

A naive sweep measures best-of-k / majority@k / pass@k for k = 1..N by generating k fresh
samples for every k: sum_k k = N(N+1)/2 samples per question. The profiler generates ONE pool
of N samples per question (``pool:n=N``) and ``fitting`` estimates every k <= N from it.

Both are run for real on the same model and questions, and the tokens are the generated
tokens the backend measured (``completion_tokens``), never expected lengths. The script
prints the measured tokens and wall time of each, and the savings ratio naive / pool. The
ratio N(N+1)/2 / N = (N+1)/2 is what equal sample lengths would give; the measured ratio
differs by how sample lengths vary between runs.

Run::

    python benchmarks/pool_savings.py                       # lab-s on lab-arith, N = 64, 3 questions
    python benchmarks/pool_savings.py --model lab-m --questions 5 --n 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# idle OpenMP threads sleep rather than spin (as `ttc profile` does): spinning on a shared CPU
# slows torch many times over; set before torch loads, the environment wins
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lab-s")
    parser.add_argument("--task", default="lab-arith")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--questions", type=int, default=3, help="questions, spread over the difficulty levels"
    )
    parser.add_argument("--n", type=int, default=64, help="pool size N (the naive sweep runs k = 1..N)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from profiling.backends import GenerationRequest, load_backend
    from profiling.strategies import RunContext, derive_seed, get_strategy
    from profiling.tasks import get_task

    backend = load_backend(args.model, device=args.device)
    task = get_task(args.task)
    one_per_level = list(task.problems(per_level=1))
    q = min(args.questions, len(one_per_level))  # evenly spread: first and last level included
    problems = [one_per_level[round(i * (len(one_per_level) - 1) / max(q - 1, 1))] for i in range(q)]
    ctx = RunContext(seed=args.seed, max_new_tokens=args.max_new_tokens, model=backend.model_name)
    print(f"model {backend.model_name}; questions {[p.id for p in problems]}; N = {args.n}")

    t0 = time.perf_counter()
    pool = get_strategy(f"pool:n={args.n}").run(backend, task, problems, ctx)
    pool_s = time.perf_counter() - t0
    pool_tokens = sum(o.cost.completion_tokens for o in pool)
    pool_samples = len(pool)

    t0 = time.perf_counter()
    naive_tokens = naive_samples = 0
    for k in range(1, args.n + 1):  # a fresh set of k samples per question for every k
        requests = [
            GenerationRequest(
                task.format_prompt(p, cot=True),
                n=k,
                max_new_tokens=args.max_new_tokens,
                temperature=1.0,
                seed=derive_seed(args.seed, "naive", k, p.id),
            )
            for p in problems
        ]
        for result in backend.generate(requests):
            naive_tokens += sum(c.completion_tokens for c in result.completions)
            naive_samples += len(result.completions)
    naive_s = time.perf_counter() - t0
    backend.close()

    print(f"{'':28}{'samples':>10}{'tokens (measured)':>20}{'wall s':>10}")
    print(f"{'one pool, estimate all k':28}{pool_samples:10d}{pool_tokens:20,d}{pool_s:10.1f}")
    print(f"{'naive sweep k = 1..N':28}{naive_samples:10d}{naive_tokens:20,d}{naive_s:10.1f}")
    print(
        f"savings ratio (naive / pool), measured tokens: {naive_tokens / pool_tokens:.2f}x; "
        f"wall time: {naive_s / pool_s:.2f}x; equal-length reference (N+1)/2 = {(args.n + 1) / 2:.1f}"
    )


if __name__ == "__main__":
    main()
