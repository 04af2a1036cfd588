"""The cost model's effective FLOPs against Kinetics' published cost model (Sadhukhan et al. 2025).

Prints, for Qwen3 0.6B..32B at EQUAL generated tokens (best-of-N on one AIME24 prompt of 236
tokens, each sample as long as one of the 32 Qwen3-0.6B traces of that problem in the Kinetics
release: mean 13,431, max 30,767 tokens), each model's cost relative to Qwen3-0.6B:

* FLOPs (ours; what compute-optimal laws count),
* Kinetics' eFLOPs (their formula, their parameter counts, I = 562.5 FLOP/B),
* our effective FLOPs at the default concurrency (64 sequences per step) and at 1 (the old
  default), on a B200 (281 FLOP/B in BF16) and an H100 (295 FLOP/B),

then how the 14B/0.6B and 32B/0.6B ratios move with the concurrency assumption. Pure
arithmetic (no timing): every number is PREDICTED by the named cost model.

    python benchmarks/kinetics_check.py
"""

from __future__ import annotations

from planner.catalog import get_hardware
from planner.costs import ModelSpec, TokenLengths, Workload, estimate_cost
from planner.costs.kinetics import KINETICS_AIME24_LENGTHS, KINETICS_INTENSITY, kinetics_cost

MODELS = ["qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b"]
PROMPT = 236
LENGTHS = TokenLengths.from_samples(KINETICS_AIME24_LENGTHS)


def ours(model: str, strategy: str, gpu: str, concurrency: int) -> tuple[float, float]:
    """(FLOPs, effective FLOPs) of one query from estimate_cost."""
    est = estimate_cost(
        ModelSpec.from_catalog(model),
        Workload.from_strategy(strategy, PROMPT, LENGTHS),
        get_hardware(gpu),
        concurrency=concurrency,
    )
    return est.flops, est.effective_flops


def ratios(values: list[float]) -> list[float]:
    return [v / values[0] for v in values]


def main() -> None:
    print(f"workload: prompt {PROMPT} tokens; each sample {LENGTHS.describe()}")
    flops = ratios([ours(m, "pool:n=8", "b200", 64)[0] for m in MODELS])
    kin = ratios(
        [kinetics_cost(ModelSpec.from_catalog(m), PROMPT, LENGTHS, 8).effective_flops for m in MODELS]
    )
    cols = {
        "FLOPs": flops,
        f"Kinetics eFLOPs N=8 (I={KINETICS_INTENSITY:g})": kin,
        "ours N=8 c=64 B200": ratios([ours(m, "pool:n=8", "b200", 64)[1] for m in MODELS]),
        "ours N=8 c=64 H100": ratios([ours(m, "pool:n=8", "h100", 64)[1] for m in MODELS]),
        "ours N=1 c=64 B200": ratios([ours(m, "greedy", "b200", 64)[1] for m in MODELS]),
        "ours N=1 c=1 B200 (old default)": ratios([ours(m, "greedy", "b200", 1)[1] for m in MODELS]),
    }
    print("\ncost relative to Qwen3-0.6B at equal generated tokens (ratios of the named cost model)")
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for i, m in enumerate(MODELS):
        print(f"| {m} | " + " | ".join(f"{c[i]:.2f}" for c in cols.values()) + " |")
    print("\nmemory penalty eFLOPs / FLOPs (B200): Kinetics' falls with size; so does ours at the default")
    kin_pen = [kinetics_cost(ModelSpec.from_catalog(m), PROMPT, LENGTHS, 1) for m in MODELS]
    print(
        "  Kinetics N=1:          "
        + "  ".join(
            f"{m[6:]} {k.effective_flops / k.compute_flops:.1f}" for m, k in zip(MODELS, kin_pen, strict=True)
        )
    )
    for c in (64, 1):
        pen = [ours(m, "greedy", "b200", c) for m in MODELS]
        print(
            f"  ours N=1 concurrency {c:>2}: "
            + "  ".join(f"{m[6:]} {e / f:.1f}" for m, (f, e) in zip(MODELS, pen, strict=True))
        )
    print("\nsensitivity to the concurrency assumption (ours, N=8, H100)")
    print(
        "| sequences per step | 14B / 0.6B eFLOPs | 32B / 0.6B eFLOPs | Qwen3-8B US$ per query | Qwen3-8B tp |"
    )
    print("|---:|---:|---:|---:|---:|")
    for c in (8, 16, 32, 64, 128, 256):
        e = [ours(m, "pool:n=8", "h100", c)[1] for m in ("qwen3-0.6b", "qwen3-14b", "qwen3-32b")]
        est = estimate_cost(
            ModelSpec.from_catalog("qwen3-8b"),
            Workload.from_strategy("pool:n=8", PROMPT, LENGTHS),
            get_hardware("h100"),
            concurrency=c,
        )
        print(f"| {c} | {e[1] / e[0]:.2f} | {e[2] / e[0]:.2f} | {est.cost_usd:.4f} | {est.tp} |")


if __name__ == "__main__":
    main()
