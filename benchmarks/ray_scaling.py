"""How does ``ttc profile --executor ray`` scale, and what does the driver cost per unit?

Two measurements, side by side in one run, on one Ray cluster:

1. **Scaling on a real model.** The same profile (``--model``, ``--strategy``, ``--questions``
   per level) through one process (the local executor) and through Ray with each of
   ``--workers`` actors. Printed per side: wall time of the whole call (actor start and model
   load included), units per second over the *steady* part (from the first unit back to the
   last, so start-up is left out) and both as ratios to one process. Two workers can at most
   gain what the cluster has free: the script measures that *headroom* too (two CPU-bound Ray
   tasks at once over one alone: 2.0 on two idle cores) and prints how much of it the workers
   reached. On a GPU cluster (``--gpus-per-worker 1 --device cuda``) the same script measures
   scaling across GPUs.
2. **Driver overhead per unit.** The same profile with a backend that does no work (it
   answers every request at once with a fixed text), so what remains is the profiler's own
   cost: building jobs, shipping them to actors and rows back, schema validation and shard
   writes. Per unit, one process vs Ray with one worker; the difference is what Ray adds.

Every side writes into a fresh folder; the Ray sides check that their rows equal the one
process's (answers, verdicts, token counts). Conditions (CPU count, load average, threads)
are printed, since a shared machine moves every number.

Run::

    RAY_AUTH_MODE=disabled python benchmarks/ray_scaling.py              # lab-s on 2 CPUs
    python benchmarks/ray_scaling.py --address HOST:6379 --gpus-per-worker 1 --device cuda \\
        --model vllm:Qwen/Qwen2.5-0.5B-Instruct --task gsm8k.jsonl --workers 1 2 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fitting import schema as S  # noqa: E402
from profiling.backends import Backend, Completion, GenerationRequest, GenerationResult  # noqa: E402
from profiling.runner import profile  # noqa: E402

MEASURED = [S.LATENCY_S, S.TTFT_S, S.KV_BYTES_PEAK, S.LOGPROB]


class NoWorkBackend(Backend):
    """Answers every request at once with ``Answer: 0`` (a stand-in with no model cost)."""

    name = "no-work"
    model_name = "no-work"

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return [GenerationResult([Completion("Answer: 0", 3)] * r.n, 8, 0.0) for r in requests]

    def count_tokens(self, text: str) -> int:
        return len(text)


def timed_profile(out: Path, models, args, executor=None, per_level=None) -> dict:
    """One profile call; wall time, and the times at which the first and last units came back."""
    arrivals: list[float] = []
    t0 = time.perf_counter()
    result = profile(
        models,
        args.task,
        args.strategy,
        out,
        per_level=per_level or args.questions,
        batch_size=args.batch_size,
        device=args.device,
        executor=executor,
        on_unit=lambda r: arrivals.append(time.perf_counter()),
    )
    wall = time.perf_counter() - t0
    units = result.units_run
    steady = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    # units per second between the first unit back and the last (the first's batch excluded)
    per_s = (units - args.batch_size) / steady if steady > 0 else float("nan")
    return {
        "units": units,
        "wall_s": wall,
        "steady_units_per_s": per_s,
        "wall_per_unit_ms": 1e3 * wall / units,
    }


def spin(n: int) -> int:
    """CPU-bound busy work (no I/O, no threads)."""
    x = 0
    for i in range(n):
        x += i * i
    return x


def headroom(ray, reps: int, n: int = 10_000_000) -> float:
    """How much more a second worker can get out of this cluster right now: throughput of two
    CPU-bound Ray tasks at once over one alone (2.0 on two idle cores; near 1 when other
    processes already use them). Medians over ``reps`` alternating rounds."""
    task = ray.remote(num_cpus=1)(spin)
    ray.get([task.remote(10), task.remote(10)])  # start both workers
    ratios = []
    for _ in range(reps):
        t0 = time.perf_counter()
        ray.get(task.remote(n))
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        ray.get([task.remote(n), task.remote(n)])
        two = time.perf_counter() - t0
        ratios.append(2 * one / two)
    return statistics.median(ratios)


def rows(folder: Path):
    key = [S.MODEL, S.STRATEGY, S.CONFIG, S.QUESTION_ID, S.SAMPLE_IDX]
    return S.read_samples(folder).drop(columns=MEASURED).sort_values(key).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lab-s")
    parser.add_argument("--task", default="lab-arith")
    parser.add_argument("--strategy", action="append", default=None, help="default: greedy and pool:n=8")
    parser.add_argument("--questions", type=int, default=20, help="per difficulty level")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--address", default=None, help="a running Ray cluster (default: a local one)")
    parser.add_argument("--reps", type=int, default=3, help="alternating rounds; medians are printed")
    parser.add_argument(
        "--overhead-questions", type=int, default=400, help="per level, for the no-work backend"
    )
    args = parser.parse_args()
    args.strategy = args.strategy or ["greedy", "pool:n=8"]

    import ray
    import torch

    from profiling.ray_executor import RayExecutor

    ray.init(
        address=args.address or "local", include_dashboard=False, log_to_driver=False, logging_level="ERROR"
    )
    resources = ray.cluster_resources()
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    print(
        f"conditions: {os.cpu_count()} CPUs here, cluster {resources.get('CPU', 0):g} CPUs / {resources.get('GPU', 0):g} GPUs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} (one process; Ray actors get their --cpus-per-worker)"
    )
    tmp = Path(tempfile.mkdtemp(prefix="ray-scaling-"))

    def executor(workers):
        return RayExecutor(
            workers=workers, gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker
        )

    print(
        f"\n1. {args.model}, {' + '.join(args.strategy)}, {args.questions} questions per level, batch {args.batch_size}"
    )
    threads = torch.get_num_threads()

    def one_process(n_threads):
        def side(out):
            torch.set_num_threads(n_threads)  # 1: what one Ray actor with --cpus-per-worker 1 gets
            try:
                return timed_profile(out, [args.model], args)
            finally:
                torch.set_num_threads(threads)

        return side

    sides = {f"one process, {threads} thr": one_process(threads), "one process, 1 thr": one_process(1)}
    for w in args.workers:
        sides[f"ray, {w} worker(s)"] = lambda out, w=w: timed_profile(out, [args.model], args, executor(w))
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    same: dict[str, bool] = {}
    base = None
    for rep in range(args.reps):  # the sides alternate, so load drifts hit all alike
        for i, (name, side) in enumerate(sides.items()):
            out = tmp / f"rep{rep}-side{i}"
            runs[name].append(side(out))
            if base is None:
                base = rows(out)
            elif name.startswith("ray"):
                same[name] = same.get(name, True) and rows(out).equals(base)
    med = {
        name: {k: statistics.median(r[k] for r in rs) for k in ("units", "wall_s", "steady_units_per_s")}
        for name, rs in runs.items()
    }
    room = headroom(ray, args.reps)
    ref, one = med[f"one process, {threads} thr"], med["one process, 1 thr"]
    print(f"medians of {args.reps} alternating rounds")
    print(
        f"{'side':<22}{'units':>6}{'wall s':>8}{'x wall':>8}{'steady units/s':>16}"
        f"{f'x {threads} thr':>9}{'x 1 thr':>9}  same rows"
    )
    for name, r in med.items():
        rate = r["steady_units_per_s"]
        print(
            f"{name:<22}{r['units']:>6.0f}{r['wall_s']:>8.1f}{ref['wall_s'] / r['wall_s']:>8.2f}{rate:>16.2f}"
            f"{rate / ref['steady_units_per_s']:>9.2f}{rate / one['steady_units_per_s']:>9.2f}  {same.get(name, '-')}"
        )
    print(
        "(x: ratio to that one-process side; >1 is faster. wall: the whole call, actors' start and model load "
        "included; steady: from the first unit back to the last)"
    )
    if len(args.workers) >= 2 and args.workers[:2] == [1, 2]:
        gain = med["ray, 2 worker(s)"]["steady_units_per_s"] / med["ray, 1 worker(s)"]["steady_units_per_s"]
        verdict = (
            f"the workers reached {(gain - 1) / (room - 1):.0%} of what a second worker could add"
            if room > 1.2
            else "no CPU was free for a second worker, so this run cannot show scaling"
        )
        print(
            f"2 workers / 1 worker: {gain:.2f}x; the cluster's headroom right after (2 CPU-bound Ray tasks / 1): "
            f"{room:.2f}x: {verdict}"
        )

    n = args.overhead_questions
    print(
        f"\n2. driver overhead: a backend with no work, greedy, {n} questions per level, batch {args.batch_size}"
    )
    args.strategy = ["greedy"]
    backend = NoWorkBackend()
    local_ms, remote_ms = [], []
    for rep in range(args.reps):
        local = timed_profile(tmp / f"nowork-local{rep}", [backend], args, per_level=n)
        remote = timed_profile(tmp / f"nowork-ray{rep}", [backend], args, executor(1), per_level=n)
        local_ms.append(1e3 / local["steady_units_per_s"])
        remote_ms.append(1e3 / remote["steady_units_per_s"])
    lo, re = statistics.median(local_ms), statistics.median(remote_ms)
    print(f"one process:    {lo:.3f} ms per unit ({local['units']} units; median of {args.reps}, steady)")
    print(
        f"ray, 1 worker:  {re:.3f} ms per unit; Ray adds {re - lo:.3f} ms per unit "
        f"({(re - lo) * args.batch_size:.2f} ms per job of {args.batch_size})"
    )
    print(f"ratio ray / one process: {re / lo:.2f}x")
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
