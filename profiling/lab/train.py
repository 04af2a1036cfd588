"""Train the lab models: ``python -m profiling.lab.train --model NAME`` (or ``--model all``).

One recipe for every model, so size (and dense versus MoE) is the only variable: the same
seeded stream of examples (same problems, formats and order, hence the same token budget),
the same optimizer and schedule, the same number of steps.

Data mix of each batch (seeded numpy Generator), ``lab-arith`` train split (never an eval
question), level uniform on 1..5:

- direct answer (``DIRECT_FRAC``): ``Q: .. (direct)\\n`` -> ``Answer: 59``;
- truncated chain of thought (``TRUNCATED_FRAC`` of the rest): ``Q: .. (steps)\\n`` + the
  scratchpad cut after a uniform number of characters + ``\\nAnswer: `` -> the right answer,
  so that a forced answer (budget forcing) is well formed; the cut scratchpad and the
  trigger are context, not targets, so the model does not learn to stop thinking early;
- full chain of thought otherwise: ``Q: .. (steps)\\n`` -> ``23+45=68\\n..\\nAnswer: 59``.

The loss is next-token cross-entropy on the completion and EOS only (the prompt is masked).
AdamW, linear warm-up then cosine decay to ``MIN_LR_FRAC`` of the peak, gradient clipping.
The MoE adds Mixtral's router load-balancing loss (coefficient ``router_aux_loss_coef``).

Each checkpoint folder gets ``model.safetensors``, ``config.json``, ``generation_config.json``,
the tokenizer files and ``lab_training.json`` (recipe, measured wall time, final loss).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# On a CPU shared with other jobs, OpenMP threads that spin while waiting slow each step
# ~10x (measured here: 7-10 s versus 0.8-1.8 s per lab-l step under a load of 5 on 2 cores).
# Must be set before torch is first imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from common.atomic import atomic_write

from .models import LAB_MODELS, build_config, build_tokenizer, checkpoint_path, param_counts
from .task import LEVELS, LabArithTask

__all__ = ["Recipe", "TRAIN_ORDER", "make_batches", "train_model", "main"]

#: order of ``--model all``: the quickest first (a usable checkpoint early), then the largest
#: (which carries the quality target), then the rest
TRAIN_ORDER = ("lab-s", "lab-l", "lab-moe", "lab-m")


@dataclass(frozen=True)
class Recipe:
    """The shared training recipe (defaults are what the committed checkpoints used)."""

    steps: int = 600  # 0.1-0.8 s/step on 2 shared CPU cores: ~1-8 min per model
    batch_size: int = 64
    lr: float = 2e-3  # peak; tiny transformers tolerate a high rate
    min_lr_frac: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    direct_frac: float = 0.25  # share of direct-answer examples
    truncated_frac: float = 0.12  # share of CoT examples cut short and forced to answer
    seed: int = 0  # data stream, initialisation and task split
    threads: int = 2


def lr_at(step: int, r: Recipe) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine to ``min_lr_frac``."""
    if step < r.warmup_steps:
        return r.lr * (step + 1) / r.warmup_steps
    t = (step - r.warmup_steps) / max(1, r.steps - r.warmup_steps)
    return r.lr * (r.min_lr_frac + (1 - r.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def make_examples(task: LabArithTask, r: Recipe, n: int) -> list[tuple[str, str, str]]:
    """The first ``n`` examples of the seeded stream as ``(context, target, kind)``: the
    model reads ``context + target`` and is trained on ``target`` (plus EOS)."""
    rng = np.random.default_rng([r.seed, 7])
    streams = {level: task.train_stream(level, seed=r.seed) for level in LEVELS}
    out = []
    for _ in range(n):
        level = int(rng.choice(LEVELS))
        p = next(streams[level])
        u = rng.random()
        if u < r.direct_frac:
            out.append((task.format_prompt(p, cot=False), task.solution(p, cot=False), "direct"))
        elif rng.random() < r.truncated_frac:
            scratch = task.step_delimiter.join(p.meta["steps"])
            cut = int(rng.integers(0, len(scratch) + 1))
            forced = task.truncated_solution(p, cut)
            head = forced[: len(forced) - len(p.answer)]
            out.append((task.format_prompt(p, cot=True) + head, p.answer, "truncated"))
        else:
            out.append((task.format_prompt(p, cot=True), task.solution(p, cot=True), "cot"))
    return out


def make_batches(task: LabArithTask, tokenizer, r: Recipe):
    """Yield ``(input_ids, attention_mask, labels)`` LongTensors, one batch per step,
    right-padded; labels are -100 on BOS, context and padding."""
    import torch

    examples = make_examples(task, r, r.steps * r.batch_size)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    for s in range(r.steps):
        rows, labels = [], []
        for context, target, _ in examples[s * r.batch_size : (s + 1) * r.batch_size]:
            ctx = tokenizer(context)["input_ids"]  # with BOS
            tgt = tokenizer(target, add_special_tokens=False)["input_ids"] + [eos]
            rows.append(ctx + tgt)
            labels.append([-100] * len(ctx) + tgt)
        width = max(len(x) for x in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        lab = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (x, y) in enumerate(zip(rows, labels, strict=True)):
            ids[i, : len(x)] = torch.tensor(x)
            lab[i, : len(y)] = torch.tensor(y)
            mask[i, : len(x)] = 1
        yield ids, mask, lab


def train_model(name: str, r: Recipe = Recipe(), out: Path | None = None, quiet: bool = False) -> Path:
    """Train lab model ``name`` with recipe ``r`` and save it to ``out`` (default: its
    checkpoint folder); return the folder."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from transformers import AutoModelForCausalLM, GenerationConfig

    torch.set_num_threads(r.threads)
    torch.manual_seed(r.seed)
    out = Path(out) if out is not None else checkpoint_path(name)
    tokenizer = build_tokenizer()
    config = build_config(name, len(tokenizer))
    moe = LAB_MODELS[name].experts > 0
    if moe:
        config.output_router_logits = True  # adds the load-balancing loss during training
    model = AutoModelForCausalLM.from_config(config)
    model.train()
    task = LabArithTask(seed=r.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": r.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=r.lr,
        betas=(0.9, 0.98),
    )
    console = Console(stderr=False)
    plain = not console.is_terminal
    losses: list[float] = []
    tokens_seen = 0
    t0 = time.perf_counter()
    with Progress(
        TextColumn(f"[bold]{name}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or plain,
    ) as progress:
        bar = progress.add_task(name, total=r.steps, loss="-")
        for step, (ids, mask, lab) in enumerate(make_batches(task, tokenizer, r)):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, r)
            loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
            opt.step()
            losses.append(loss.item())
            tokens_seen += int(mask.sum())
            smooth = float(np.mean(losses[-50:]))
            progress.update(bar, advance=1, loss=f"{smooth:.4f}")
            if plain and not quiet and (step + 1) % 100 == 0:
                el = time.perf_counter() - t0
                print(f"{name} step {step + 1}/{r.steps} loss {smooth:.4f} elapsed {el:.0f}s", flush=True)
    wall_s = time.perf_counter() - t0
    model.eval()
    if moe:
        model.config.output_router_logits = False
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    # do_sample: servers such as `transformers serve` only sample when the checkpoint says so
    # (they decode greedily at every temperature otherwise); temperature 0 still means greedy there
    model.generation_config = GenerationConfig(
        **ids, pad_token_id=tokenizer.pad_token_id, max_new_tokens=96, do_sample=True
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {
        "model": name,
        "architecture": LAB_MODELS[name].architecture,
        "spec": asdict(LAB_MODELS[name]),
        "params": param_counts(name, len(tokenizer)),
        "recipe": asdict(r),
        "tokens_seen": tokens_seen,
        "train_wall_s": round(wall_s, 1),
        "final_loss_mean_last_50": round(float(np.mean(losses[-50:])), 5),
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    atomic_write(out / "lab_training.json", json.dumps(info, indent=2) + "\n")
    if not quiet:
        print(
            f"{name}: {r.steps} steps in {wall_s:.0f}s, final loss {info['final_loss_mean_last_50']}, saved {out}"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m profiling.lab.train --model lab-m`` (``all`` = every model)."""
    parser = argparse.ArgumentParser(
        prog="python -m profiling.lab.train",
        description="Train the lab models (same recipe for all; checkpoints under profiling/lab/checkpoints/).",
        epilog="example: python -m profiling.lab.train --model lab-s --steps 50 --out /tmp/lab-s",
    )
    parser.add_argument("--model", required=True, help=f"one of {', '.join(LAB_MODELS)}, or 'all'")
    parser.add_argument("--steps", type=int, default=Recipe.steps, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=Recipe.seed)
    parser.add_argument("--threads", type=int, default=Recipe.threads, help="torch CPU threads")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (one model) or parent folder (all)"
    )
    args = parser.parse_args(argv)
    names = list(TRAIN_ORDER) if args.model == "all" else [args.model]
    for n in names:
        if n not in LAB_MODELS:
            parser.error(f"unknown model {n!r}; known: {', '.join(LAB_MODELS)}, all")
    r = Recipe(steps=args.steps, seed=args.seed, threads=args.threads)
    for n in names:
        out = None if args.out is None else (args.out / n if args.model == "all" else args.out)
        train_model(n, r, out)


if __name__ == "__main__":
    main()
