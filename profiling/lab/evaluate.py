"""Measure the lab checkpoints on held-out ``lab-arith`` problems and print the model card table.

``python -m profiling.lab.evaluate`` (defaults: every trained model, 200 eval problems per
level, 16 samples at temperature 1). For each model and level it measures, with batched
``model.generate`` (KV cache, left padding):

- ``greedy_cot``: greedy accuracy with the chain-of-thought prompt;
- ``greedy_direct``: greedy accuracy with the direct-answer prompt;
- ``pass@1`` and ``pass@16``: from n = 16 samples at temperature 1 (no top-k / top-p) per
  problem, with the unbiased estimator ``pass@k = 1 - C(n - c, k) / C(n, k)`` (c = correct
  samples) averaged over problems;
- ``well_formed``: share of greedy CoT completions in the trained format (right or wrong).

``--budget 0,8,16,32`` adds budget forcing (greedy): the scratchpad is capped at T tokens
(cut at the answer marker if the model gets there first), then ``answer_trigger`` is appended
and the answer generated greedily.

Everything printed is measured in this run; nothing is copied from elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy.special import comb

# see profiling.lab.train: passive OpenMP waiting keeps a shared CPU from slowing ~10x
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from common.atomic import atomic_write

from .models import LAB_MODELS, checkpoint_path
from .task import LEVELS, MAX_VALUE, LabArithTask

__all__ = ["pass_at_k", "load", "generate", "evaluate_model", "format_table", "main"]


def pass_at_k(n: int, c: np.ndarray | int, k: int) -> np.ndarray:
    """Unbiased pass@k from ``c`` correct out of ``n`` samples: ``1 - C(n-c, k) / C(n, k)``.

    Examples
    --------
    >>> float(pass_at_k(16, 1, 1)), float(pass_at_k(16, 1, 16)), float(pass_at_k(4, 2, 2))
    (0.0625, 1.0, 0.8333333333333334)
    """
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k}, n={n}")
    c = np.asarray(c)
    return 1.0 - comb(n - c, k, exact=False) / comb(n, k, exact=False)


def load(name_or_path: str | Path, threads: int = 2):
    """``(model, tokenizer)`` from a lab model name or a checkpoint folder, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    path = checkpoint_path(str(name_or_path)) if str(name_or_path) in LAB_MODELS else Path(name_or_path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: no checkpoint (config.json missing); train it with profiling.lab.train"
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    return model, tokenizer


def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    n: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 2048,
) -> list[list[str]]:
    """Completions (decoded, special tokens dropped) of each prompt: ``n`` per prompt,
    greedy when ``temperature`` is 0, else sampled. ``batch_size`` counts sequences."""
    import torch

    per_call = max(1, batch_size // n)
    out: list[list[str]] = []
    for lo in range(0, len(prompts), per_call):
        chunk = prompts[lo : lo + per_call]
        enc = tokenizer(chunk, return_tensors="pt", padding=True)
        kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        if temperature > 0:
            torch.manual_seed(seed + lo)
            kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, num_return_sequences=n)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            ids = model.generate(**enc, **kwargs)
        texts = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        out.extend(texts[i * n : (i + 1) * n] for i in range(len(chunk)))
    return out


def _max_tokens(level: int, cot: bool, max_value: int = MAX_VALUE) -> int:
    # a CoT step "a+b=c" is at most 3 numbers + 2 symbols + the delimiter; the answer line is
    # "Answer: " + a number; a margin of 4 lets a model that rambles show it
    digits = len(str(max_value))
    return ((3 * digits + 3) * level if cot else 0) + 8 + digits + 4


def evaluate_model(
    name: str,
    per_level: int = 200,
    n_samples: int = 16,
    budgets: tuple[int, ...] = (),
    seed: int = 0,
    threads: int = 2,
) -> list[dict]:
    """Rows (one per level) of measured accuracies of lab model ``name`` (see module doc)."""
    task = LabArithTask(seed=0)
    model, tok = load(name, threads)
    rows = []
    for level in LEVELS:
        t0 = time.perf_counter()
        probs = [p for p in task.problems("eval", per_level=per_level) if p.difficulty == str(level)]
        cot = [task.format_prompt(p, cot=True) for p in probs]
        direct = [task.format_prompt(p, cot=False) for p in probs]
        greedy = [g[0] for g in generate(model, tok, cot, _max_tokens(level, True))]
        greedy_ok = [task.is_correct(task.extract_answer(g), p) for g, p in zip(greedy, probs, strict=True)]
        dir_out = [g[0] for g in generate(model, tok, direct, _max_tokens(level, False))]
        dir_ok = [task.is_correct(task.extract_answer(g), p) for g, p in zip(dir_out, probs, strict=True)]
        samples = generate(model, tok, cot, _max_tokens(level, True), n=n_samples, temperature=1.0, seed=seed)
        c = np.array(
            [
                sum(task.is_correct(task.extract_answer(s), p) for s in ss)
                for ss, p in zip(samples, probs, strict=True)
            ]
        )
        row = {
            "model": name,
            "level": level,
            "n_problems": len(probs),
            "greedy_cot": float(np.mean(greedy_ok)),
            "greedy_direct": float(np.mean(dir_ok)),
            "pass@1": float(np.mean(pass_at_k(n_samples, c, 1))),
            f"pass@{n_samples}": float(np.mean(pass_at_k(n_samples, c, n_samples))),
            "well_formed": float(np.mean([task.is_well_formed(g) for g in greedy])),
        }
        for budget in budgets:
            row[f"forced@T={budget}"] = _budget_accuracy(task, model, tok, probs, cot, budget)
        row["eval_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
    return rows


def _budget_accuracy(task: LabArithTask, model, tok, probs, prompts, budget: int) -> float:
    """Greedy budget forcing: scratchpad capped at ``budget`` tokens, then the trigger."""
    marker, trigger = task.answer_trigger.strip(), task.answer_trigger
    if budget > 0:
        think = [g[0] for g in generate(model, tok, prompts, budget)]
    else:
        think = [""] * len(prompts)
    think = [t.split(marker, 1)[0].rstrip() + trigger for t in think]
    answers = generate(model, tok, [p + t for p, t in zip(prompts, think, strict=True)], 6)
    return float(
        np.mean(
            [
                task.is_correct(task.extract_answer(t + a[0]), p)
                for t, a, p in zip(think, answers, probs, strict=True)
            ]
        )
    )


def format_table(rows: list[dict], n_samples: int = 16, budget: bool = False) -> str:
    """The model-card table (Markdown), one row per model and level: accuracies, or with
    ``budget`` the budget-forcing accuracies (``forced@T=..`` columns) of rows that have them."""
    forced = sorted(
        {k for r in rows for k in r if k.startswith("forced@")}, key=lambda k: int(k.split("=")[1])
    )
    if budget:
        cols = ["greedy_cot", *forced]
        rows = [r for r in rows if any(k in r for k in forced)]
    else:
        cols = ["greedy_cot", "greedy_direct", "pass@1", f"pass@{n_samples}", "well_formed"]
    head = "| model | level | n | " + " | ".join(cols) + " |"
    lines = [head, "|" + "---|" * (3 + len(cols))]
    for r in rows:
        vals = " | ".join(f"{r[c]:.3f}" for c in cols)
        lines.append(f"| {r['model']} | {r['level']} | {r['n_problems']} | {vals} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m profiling.lab.evaluate",
        description="Measure the lab checkpoints on held-out lab-arith problems and print the model-card table.",
        epilog="example: python -m profiling.lab.evaluate --model lab-s --per-level 50 --budget 0,8,16",
    )
    parser.add_argument("--model", action="append", help="lab model name (repeatable); default: all trained")
    parser.add_argument("--per-level", type=int, default=200)
    parser.add_argument("--samples", type=int, default=16, help="samples per problem at temperature 1")
    parser.add_argument("--budget", default="", help="comma-separated token budgets T for budget forcing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    names = args.model or [n for n in LAB_MODELS if (checkpoint_path(n) / "config.json").is_file()]
    if not names:
        parser.error("no trained checkpoint found; run python -m profiling.lab.train --model all")
    budgets = tuple(int(b) for b in args.budget.split(",") if b.strip())
    rows = []
    for name in names:
        t0 = time.perf_counter()
        rows.extend(evaluate_model(name, args.per_level, args.samples, budgets, args.seed, args.threads))
        print(f"{name}: evaluated in {time.perf_counter() - t0:.0f}s", flush=True)
    print(format_table(rows, args.samples))
    if budgets:
        print("\nbudget forcing (greedy scratchpad capped at T tokens, then the answer trigger):")
        print(format_table(rows, args.samples, budget=True))
    if args.json is not None:
        atomic_write(args.json, json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
