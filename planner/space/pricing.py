r"""Price options with :mod:`planner.costs`: measured mean tokens + the model spec -> costs.

:class:`CostModel` is the coster the option space calls (``coster(arm, values, usage)``). For
each knob value it builds the :class:`~planner.costs.Workload` of the option from the profiled
strategy's descriptor (:meth:`planner.space.arms.Arm.workload_shape`: samples, beam steps,
refinement rounds, forced-answer tokens) with its chain length ``G`` solved from the
MEASURED mean completion tokens ``T`` of the curve at that value
(:meth:`profiling.strategies.WorkloadShape.chain_tokens`):

.. math:: T = \mathrm{sequences} \cdot G \cdot (1 + R\,(1 - \mathrm{keep})) + \mathrm{answer\_tokens}

(a pool of ``n``: ``G = T / n``; a beam: ``T / (width * expansions)``; refinement with ``R``
rounds: ``T / (1 + R (1 - keep))``; budget forcing: ``T - answer_tokens``), and prices it with
:func:`~planner.costs.estimate_cost` on the chosen hardware (roofline latency, GPU dollars)
or API (token dollars).

Cost keys (per query, :data:`planner.constants.COST_KEYS`): ``flops`` (prefill + decode),
``tokens`` (measured prompt plus completion tokens), ``latency_s`` (roofline at the requested
concurrency; needs hardware), ``usd`` (GPU time on the hardware, or the API bill),
``kv_bytes`` (KV-cache bytes held by ``concurrency`` queries in flight at their peak) and
``memory_bytes`` (weights plus that KV, what must fit on the GPUs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from profiling.strategies import WorkloadShape
from profiling.strategy_spec import StrategySpec

from ..constants import MEMORY_BYTES
from ..costs import Workload, estimate_cost
from .arms import Arm
from .curve import Usage

__all__ = ["CostModel", "workload_for", "GPU_MEMORY_USABLE"]

#: share of a GPU's memory the planner lets weights and KV use (the rest: activations, fragmentation)
GPU_MEMORY_USABLE = 0.9


def _corners(v: float) -> tuple[tuple[int, float], tuple[int, float]]:
    """The integers around ``v`` with linear-interpolation weights."""
    lo = math.floor(v)
    f = v - lo
    return (int(lo), 1.0 - f), (int(lo) + 1, f)


def _spec(arm: Arm, x: float) -> tuple[StrategySpec, WorkloadShape]:
    """The profiled strategy's spec of ``arm`` at knob ``x`` and its workload shape."""
    spec = StrategySpec(arm.profiled_strategy, arm.profiled_knobs(x))
    return spec, arm.workload_shape(x)


def workload_for(
    arm: Arm, x: float, prompt_tokens: float, completion_tokens: float, prefix_sharing: bool = True
) -> Workload:
    """The :class:`~planner.costs.Workload` of ``arm`` at knob value ``x`` with the measured
    mean ``prompt_tokens`` (the question's prompt) and ``completion_tokens`` per query
    (token counts rounded to integers; :class:`CostModel` interpolates between roundings)."""
    spec, shape = _spec(arm, x)
    G = max(int(round(shape.chain_tokens(max(float(completion_tokens), 0.0)))), 0)
    return Workload.from_strategy(spec, int(round(prompt_tokens)), G, prefix_sharing=prefix_sharing)


@dataclass
class CostModel:
    """The coster of the option space, on one accelerator or API.

    Parameters
    ----------
    specs : model name -> :class:`~planner.costs.ModelSpec`
    hardware : :class:`~planner.catalog.HardwareSpec` or None
        Self-hosted target: roofline latency and GPU dollars.
    api : :class:`~planner.catalog.ApiPrice` or None
        Hosted target: dollars from the API's token prices (takes precedence for ``usd``).
    concurrency : int
        Queries served together (latency, KV bytes and memory are at this concurrency).
    tp : int or None
        Tensor-parallel degree on ``hardware`` (None: the smallest that fits).
    prefix_sharing : bool
        The serving engine shares a common prompt across samples (vLLM, SGLang).
    """

    specs: Mapping[str, object]
    hardware: object | None = None
    api: object | None = None
    concurrency: int = 1
    tp: int | None = 1
    prefix_sharing: bool = True
    _cache: dict = field(default_factory=dict, repr=False)

    def spec(self, model: str):
        try:
            return self.specs[model]
        except KeyError:
            raise ValueError(f"no model spec for {model!r}; known: {', '.join(sorted(self.specs))}") from None

    def memory_limit_bytes(self) -> float | None:
        """GPU memory available for weights and KV (``tp`` GPUs x :data:`GPU_MEMORY_USABLE`),
        None without hardware."""
        if self.hardware is None:
            return None
        return (self.tp or 1) * self.hardware.memory_bytes * GPU_MEMORY_USABLE

    def _priced(self, model: str, strategy: StrategySpec, p: int, G: int) -> dict[str, float]:
        key = (model, str(strategy), p, G)
        hit = self._cache.get(key)
        if hit is None:
            spec = self.spec(model)
            w = Workload.from_strategy(strategy, p, G, prefix_sharing=self.prefix_sharing)
            est = estimate_cost(
                spec, w, self.hardware, concurrency=self.concurrency, tp=self.tp, api=self.api
            )
            usd = (
                est.api.usd
                if est.api is not None
                else (est.cost_usd if est.cost_usd is not None else math.nan)
            )
            kv = est.kv_bytes_peak * self.concurrency
            hit = {
                "flops": est.flops,
                "latency_s": est.latency_s if est.latency_s is not None else math.nan,
                "usd": usd,
                "kv_bytes": kv,
                MEMORY_BYTES: spec.weight_bytes + kv,
            }
            self._cache[key] = hit
        return hit

    def _one(self, arm: Arm, x: float, prompt: float, completion: float) -> dict[str, float]:
        """Costs at fractional mean token counts: bilinear interpolation between the integer
        prompt and chain lengths around them (the cost model takes whole tokens)."""
        spec, shape = _spec(arm, x)
        G = max(shape.chain_tokens(max(completion, 0.0)), 0.0)
        P = max(prompt, 0.0)
        out: dict[str, float] = {}
        for p_i, wp in _corners(P):
            for g_i, wg in _corners(G):
                if wp * wg == 0:
                    continue
                for k, v in self._priced(arm.model, spec, p_i, g_i).items():
                    out[k] = out.get(k, 0.0) + wp * wg * v
        return out

    def __call__(self, arm: Arm, x, usage: Usage) -> dict[str, np.ndarray]:
        x = np.atleast_1d(np.asarray(x, dtype=float))
        base = usage.base_prompt_tokens
        if np.any(~np.isfinite(usage.completion_tokens)) or np.any(~np.isfinite(base)):
            raise ValueError(f"{arm.key}: the curves table has no mean token counts to price it with")
        rows = [self._one(arm, xi, p, c) for xi, p, c in zip(x, base, usage.completion_tokens, strict=True)]
        out = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}
        out["tokens"] = np.nan_to_num(usage.prompt_tokens) + usage.completion_tokens
        return out
