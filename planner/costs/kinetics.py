"""Kinetics' own cost model (Sadhukhan et al. 2025, "Kinetics: Rethinking Test-Time Scaling
Laws", Sec. 3), to compare :func:`~planner.costs.estimate.estimate_cost`'s effective FLOPs with.

For ``N`` trials of a prompt of ``L_in`` tokens on a model of ``P`` parameters with ``H`` query
heads, ``n_kv`` KV heads of dimension ``d`` over ``l`` layers (``D = d l``), each trial
generating ``L`` tokens:

.. math::

    C_{comp} = N \\big[ 2 P L + 2 H D (2 L_{in} L + L^2) \\big], \\qquad
    M = 2 n_{kv} D (2 L_{in} L + N L^2), \\qquad
    \\mathrm{eFLOPs} = C_{comp} + I \\, M

``M`` is the KV bytes read in BF16 (keys and values of every cached token at every decode
step; the prompt's KV read once per step for all trials); the weights are not charged (they
assume batches large enough to amortize them), nor is the prefill. ``I`` is the hardware's
FLOP/byte ratio; their 562.5 is a B200's 4.5 PFLOP/s (FP8 dense) over 8 TB/s. Expectations
over per-trial lengths use ``E[L]`` and ``E[L^2]``, as their released cost model averages the
cost over each sample's length.

This is a REFERENCE for validation (the validation table of docs/cost-model.md), not the
planner's cost model: that one also charges the weights (amortized over the batch), the
prefill, and reads each sequence's own copy of the prompt's KV.
"""

from __future__ import annotations

from dataclasses import dataclass

from .lengths import TokenLengths
from .spec import ModelSpec

__all__ = [
    "KineticsCost",
    "kinetics_cost",
    "KINETICS_INTENSITY",
    "KINETICS_QWEN3_PARAMS",
    "KINETICS_AIME24_LENGTHS",
]

KINETICS_INTENSITY = 562.5  # FLOP per byte, their B200 figure
#: Qwen3-0.6B's 32 generated lengths on AIME24 problem 0 (Kinetics repository,
#: cost_model/aime24/dense/aime24_qwen3-0-6b_dense_numTrials_tradeoff.csv, column generation_length)
KINETICS_AIME24_LENGTHS = tuple(
    int(x)
    for x in """
    13063 22187 16921 9094 11544 10371 14211 24453 10036 12559 20283 6202 9079 10744 30767 7852
    12486 17052 14432 11699 3822 16273 14984 20838 6687 12773 11685 12518 6197 8365 7970 22637
    """.split()
)
#: the parameter counts their released cost model uses for Qwen3 (billions)
KINETICS_QWEN3_PARAMS = {
    "qwen3-0.6b": 0.752e9,
    "qwen3-1.7b": 2.03e9,
    "qwen3-4b": 4.02e9,
    "qwen3-8b": 8.19e9,
    "qwen3-14b": 14.77e9,
    "qwen3-32b": 32.76e9,
}


@dataclass(frozen=True)
class KineticsCost:
    """Kinetics' cost of one query: ``compute_flops``, ``memory_bytes`` and ``effective_flops``."""

    compute_flops: float
    memory_bytes: float
    effective_flops: float


def kinetics_cost(
    spec: ModelSpec,
    prompt_tokens: float,
    lengths: float | TokenLengths,
    trials: int,
    *,
    params: float | None = None,
    intensity: float = KINETICS_INTENSITY,
) -> KineticsCost:
    """Kinetics' compute, KV bytes and eFLOPs of ``trials`` samples (module docstring).

    ``params`` defaults to the count Kinetics used for the Qwen3 model of that name, else
    ``spec.params_total``.

    Examples
    --------
    >>> spec = ModelSpec.from_catalog("qwen3-8b")
    >>> c = kinetics_cost(spec, 0, 1000, 1, intensity=0.0)
    >>> c.compute_flops == 2 * 8.19e9 * 1000 + 2 * 32 * 128 * 36 * 1000**2
    True
    """
    dist = TokenLengths.coerce(lengths)
    p = params if params is not None else KINETICS_QWEN3_PARAMS.get(spec.name, float(spec.params_total))
    depth = spec.head_dim * spec.num_layers
    mean, mean_sq = dist.mean, dist.mean_sq
    compute = trials * (2 * p * mean + 2 * spec.num_heads * depth * (2 * prompt_tokens * mean + mean_sq))
    memory = 2 * spec.num_kv_heads * depth * (2 * prompt_tokens * mean + trials * mean_sq)
    return KineticsCost(compute, memory, compute + intensity * memory)
