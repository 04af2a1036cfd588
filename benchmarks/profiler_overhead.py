"""What does the profiler cost on top of the model? ``pool`` through ``ttc profile`` vs bare ``generate``.

Both sides run the same batch on the same model in the same process: the first ``--questions``
prompts of the task, ``--n`` samples each, ``--max-new-tokens``, temperature 1.

* **profiler**: :func:`profiling.runner.profile` with ``pool:n=N`` into a fresh folder — the whole
  path: request building, the hf backend's per-row sampling and measurement, answer
  extraction, rows, schema validation, the atomic Parquet shard and ``run.json``.
* **bare**: the tokenizer, ``model.generate(do_sample=True, temperature=1)`` on the same
  prompts repeated n times (left padding), and decoding — nothing else.

The hf backend is loaded with ``max_batch_rows = questions * n`` so that both sides run the
whole batch as ONE ``generate`` call.

After ``--warmup`` untimed runs of each, the two alternate for ``--reps`` repetitions; the
script prints the median wall time of each, their ratio, and the ratio per generation step
(the batch's decode steps differ between runs with sampled lengths; time per step removes
that noise). Timings use ``time.perf_counter`` (plus ``torch.cuda.synchronize`` on CUDA).

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
    backend, prompts: list[str], n: int, max_new_tokens: int, seed: int
) -> tuple[float, int, int]:
    """Tokenize, ``model.generate`` with plain sampling, decode. Returns (seconds, steps, tokens)."""
    import torch

    model, tok = backend.model, backend.tokenizer
    sync = torch.cuda.synchronize if backend.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    enc = tok(prompts, return_tensors="pt", padding=True)
    ids = enc["input_ids"].repeat_interleave(n, dim=0).to(backend.device)
    mask = enc["attention_mask"].repeat_interleave(n, dim=0).to(backend.device)
    torch.manual_seed(seed)
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
    elapsed = time.perf_counter() - t0
    eos = torch.tensor(sorted(backend.eos_ids), device=new.device)
    is_eos = torch.isin(new, eos)
    ended = is_eos.any(dim=1)
    lengths = torch.where(ended, is_eos.int().argmax(dim=1) + 1, new.shape[1])  # up to and including EOS
    return elapsed, int(new.shape[1]), int(lengths.sum())


def profiler_pool(
    backend, task, n: int, questions: int, max_new_tokens: int, seed: int
) -> tuple[float, int, int]:
    """The full ``ttc profile`` path for ``pool:n=N`` into a fresh folder. Returns (seconds, steps, tokens)."""
    from fitting.schema import read_samples
    from profiling.runner import profile

    steps = []
    original = backend.generate

    def spy(requests):
        results = original(requests)
        steps.extend(r.extra.get("generation_steps", 0) for r in results[:1])
        return results

    backend.generate = spy
    try:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            result = profile(
                [backend],
                task,
                [f"pool:n={n}"],
                out,
                limit=questions,
                seed=seed,
                max_new_tokens=max_new_tokens,
                batch_size=questions,
            )
            elapsed = time.perf_counter() - t0
            if len(read_samples(out)) != n * questions:
                raise RuntimeError(f"profiler wrote {len(read_samples(out))} rows, expected {n * questions}")
    finally:
        backend.generate = original
    return elapsed, max(steps), result.completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lab-s")
    parser.add_argument("--task", default="lab-arith")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()

    from profiling.backends import load_backend
    from profiling.tasks import get_task

    # one backend batch for the whole pool, as in the bare call (the default packs 64 rows per call)
    backend = load_backend(args.model, device=args.device, max_batch_rows=args.questions * args.n)
    task = get_task(args.task)
    problems = list(task.problems(limit=args.questions))
    prompts = [task.format_prompt(p, cot=True) for p in problems]
    print(
        f"model {backend.model_name} ({backend.metadata().get('num_parameters', '?')} params) on {args.device}; "
        f"{len(prompts)} questions x n={args.n}, max_new_tokens={args.max_new_tokens}"
    )
    for i in range(args.warmup):
        bare_generate(backend, prompts, args.n, args.max_new_tokens, seed=1000 + i)
        profiler_pool(backend, task, args.n, args.questions, args.max_new_tokens, seed=1000 + i)
    bare, prof = [], []
    for rep in range(args.reps):  # alternate so drifts in machine load hit both sides alike
        bare.append(bare_generate(backend, prompts, args.n, args.max_new_tokens, seed=rep))
        prof.append(profiler_pool(backend, task, args.n, args.questions, args.max_new_tokens, seed=rep))

    def med(rows, i):
        return statistics.median(r[i] for r in rows)

    def per_step(rows):
        return statistics.median(r[0] / max(r[1], 1) for r in rows)

    print(f"{'':24}{'bare generate':>16}{'profiler pool':>16}{'ratio':>10}")
    print(
        f"{'median wall time (s)':24}{med(bare, 0):16.4f}{med(prof, 0):16.4f}{med(prof, 0) / med(bare, 0):10.3f}"
    )
    print(f"{'median decode steps':24}{med(bare, 1):16.0f}{med(prof, 1):16.0f}")
    print(f"{'median tokens':24}{med(bare, 2):16.0f}{med(prof, 2):16.0f}")
    print(
        f"{'median time/step (ms)':24}{1e3 * per_step(bare):16.3f}{1e3 * per_step(prof):16.3f}"
        f"{per_step(prof) / per_step(bare):10.3f}"
    )
    print(
        f"overhead ratio (time per decode step, profiler / bare): {per_step(prof) / per_step(bare):.3f} "
        f"(target < 1.10); wall-time ratio {med(prof, 0) / med(bare, 0):.3f}; {args.reps} reps, medians"
    )
    backend.close()


if __name__ == "__main__":
    main()
