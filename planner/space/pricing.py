r"""Price options with :mod:`planner.costs`: each question's measured tokens + the model spec -> costs.

:class:`CostModel` is the coster the option space calls (``coster(arm, values, usage)``). For
each knob value it builds the :class:`~planner.costs.Workload` of the option from the profiled
strategy's descriptor (:meth:`planner.space.arms.Arm.workload_shape`: samples, beam steps,
refinement rounds, forced-answer tokens) serving the measured questions
(:attr:`planner.space.curve.Usage.mixes`: each question's prompt and its chains' own
lengths, :meth:`~planner.costs.Workload.for_questions`), and prices it with
:func:`~planner.costs.estimate_cost` on the chosen hardware (roofline latency, GPU dollars) or
API (token dollars). Costs are per query, the mean over the questions, each question priced
at its own lengths: attention and KV grow with ``E[L^2]`` of its samples, a pool waits for
the longest of its own ``n`` samples. Where only the curves' means are known, the chain
length ``G`` is solved from the mean completion tokens ``T``
(:meth:`profiling.strategies.WorkloadShape.chain_tokens`):

.. math:: T = \mathrm{sequences} \cdot G \cdot (1 + R\,(1 - \mathrm{keep})) + \mathrm{answer\_tokens}

Serving assumptions (:mod:`planner.costs.serving`): ``concurrency`` sequences decoded per
step by one replica (default 64); tensor parallelism ``tp`` GPUs per replica, by default the
smallest degree whose GPUs hold the weights and the batch's KV (the ``tp`` column says which).

Cost keys (per query, :data:`planner.constants.COST_KEYS`): ``flops`` (prefill + decode),
``effective_flops`` (Kinetics: FLOPs + bytes moved x the GPU's FLOP/byte; needs hardware),
``tokens`` (measured prompt plus completion tokens), ``latency_s`` (roofline; needs
hardware), ``usd`` (GPU time on the hardware, or the API bill), ``kv_bytes`` (the query's
peak KV-cache bytes); plus ``memory_bytes`` (GPU memory per GPU of the replica: weights and
the batch's KV over ``tp`` GPUs; a limit, checked against :meth:`CostModel.memory_limit_bytes`)
and ``tp``. A ``verified`` option (best-of-n with an exact checker) adds the checker's cost
per checked sample (``checker_cost``, default nothing: an ASSUMPTION the recommendation shows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from profiling.strategies import WorkloadShape
from profiling.strategy_spec import StrategySpec

from ..constants import MEMORY_BYTES, TP
from ..costs import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MEMORY_UTILIZATION,
    QuestionMix,
    TokenLengths,
    Workload,
    estimate_cost,
    tp_degrees,
)
from .arms import VERIFIED, Arm
from .assumed import FLAGS
from .curve import Usage

__all__ = ["CostModel", "workload_for", "GPU_MEMORY_USABLE"]

#: share of a GPU's memory the planner lets weights and KV use (the rest: activations, fragmentation)
GPU_MEMORY_USABLE = DEFAULT_MEMORY_UTILIZATION
#: the cost keys the cost model prices (``tokens`` is measured)
_PRICED = ("flops", "effective_flops", "latency_s", "usd", "kv_bytes")


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
        Sequences one replica decodes per step (:data:`~planner.costs.DEFAULT_CONCURRENCY`).
    tp : int or None
        Tensor-parallel degree on ``hardware`` (None: the smallest that fits each option).
    prefix_sharing : bool
        The serving engine shares a common prompt across samples (vLLM, SGLang).
    checker_cost : mapping cost key -> value
        Cost of the exact checker per checked sample of a ``verified`` option (``latency_s``:
        added once, the checks run in parallel); empty = free.
    """

    specs: Mapping[str, object]
    hardware: object | None = None
    api: object | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    tp: int | None = None
    prefix_sharing: bool = True
    checker_cost: Mapping[str, float] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)
    _means: dict = field(default_factory=dict, repr=False)

    def spec(self, model: str):
        try:
            return self.specs[model]
        except KeyError:
            raise ValueError(f"no model spec for {model!r}; known: {', '.join(sorted(self.specs))}") from None

    def memory_limit_bytes(self) -> float | None:
        """GPU memory one GPU offers weights and KV (:data:`GPU_MEMORY_USABLE` of it), None
        without hardware: the limit on the ``memory_bytes`` column (memory per GPU of a replica)."""
        if self.hardware is None:
            return None
        return self.hardware.memory_bytes * GPU_MEMORY_USABLE

    def serving(self) -> dict[str, object]:
        """The serving assumptions, as the recommendation JSON states them."""
        out: dict[str, object] = {"concurrency": self.concurrency, "prefix_sharing": self.prefix_sharing}
        if self.hardware is not None:
            out["gpu"] = self.hardware.name
            out["tp"] = self.tp if self.tp is not None else "auto"
        if self.api is not None:
            out["api"] = self.api.name
        return out

    def _estimate(self, spec, workload: Workload, tp: int | None):
        """:func:`~planner.costs.estimate_cost` at ``tp``; when no degree fits (auto), the
        largest one, so that the option shows as over the memory limit."""
        kw = dict(concurrency=self.concurrency, api=self.api, memory_utilization=GPU_MEMORY_USABLE)
        try:
            return estimate_cost(spec, workload, self.hardware, tp=tp, **kw)
        except ValueError:
            if tp is not None or self.hardware is None:
                raise
            return estimate_cost(spec, workload, self.hardware, tp=max(tp_degrees(spec)), **kw)

    def _priced(
        self, model: str, strategy: StrategySpec, mix: QuestionMix, tp: int | None
    ) -> dict[str, float]:
        key = (model, str(strategy), mix, tp)
        hit = self._cache.get(key)
        if hit is None:
            spec = self.spec(model)
            w = Workload.for_questions(strategy, mix, prefix_sharing=self.prefix_sharing)
            try:
                est = self._estimate(spec, w, tp)
            except ValueError as exc:
                if "exceeds the model's context" not in str(exc):
                    raise
                hit = dict.fromkeys((*_PRICED, MEMORY_BYTES, TP), math.inf)  # cannot run at all
                self._cache[key] = hit
                return hit
            usd = (
                est.api.usd
                if est.api is not None
                else (est.cost_usd if est.cost_usd is not None else math.nan)
            )
            gpus = est.tp if est.tp is not None else math.nan
            hit = {
                "flops": est.flops,
                "effective_flops": est.effective_flops if est.effective_flops is not None else math.nan,
                "latency_s": est.latency_s if est.latency_s is not None else math.nan,
                "usd": usd,
                "kv_bytes": est.kv_bytes_peak,
                MEMORY_BYTES: est.memory_needed_bytes / gpus
                if est.memory_needed_bytes is not None
                else math.nan,
                TP: gpus,
            }
            self._cache[key] = hit  # keyed by the mix object itself (identity), which the key keeps alive
        return hit

    def _mix(self, arm: Arm, x: float, usage: Usage, i: int) -> QuestionMix:
        """The questions at ``usage``'s ``i``-th value; from the mean tokens without per-question data."""
        if usage.mixes is not None and usage.mixes[i] is not None:
            return usage.mixes[i]
        completion = float(usage.completion_tokens[i])
        prompt = float(usage.base_prompt_tokens[i])
        if not math.isfinite(completion):
            raise ValueError(
                f"{arm.key}: the curves table has no completion token counts to price it with; give {FLAGS}"
            )
        G = (
            max(arm.workload_shape(x).chain_tokens(max(completion, 0.0)), 0.0)
            if arm.descriptor
            else completion
        )
        key = (prompt if math.isfinite(prompt) else 0.0, G)
        if key not in self._means:  # one object per (prompt, length): the price cache is keyed by it
            self._means[key] = QuestionMix.single(key[0], TokenLengths.constant(G))
        return self._means[key]

    def gpu_seconds(self, arm: Arm, x, usage: Usage) -> np.ndarray:
        """GPU-seconds one query of ``arm`` occupies at each knob value ``x`` on the hardware
        (``tp`` times its share of a replica, :func:`~planner.costs.estimate_cost`), from the
        same workload and questions as :meth:`__call__`; NaN without hardware."""
        x = np.atleast_1d(np.asarray(x, dtype=float))
        if self.hardware is None:
            return np.full(len(x), math.nan)
        out = []
        for i, xi in enumerate(x):
            spec, _ = _spec(arm, xi)
            w = Workload.for_questions(spec, self._mix(arm, xi, usage, i), prefix_sharing=self.prefix_sharing)
            est = self._estimate(self.spec(arm.model), w, self.tp)
            out.append(est.gpu_seconds if est.gpu_seconds is not None else math.nan)
        return np.array(out, dtype=float)

    def __call__(self, arm: Arm, x, usage: Usage, tp=None) -> dict[str, np.ndarray]:
        x = np.atleast_1d(np.asarray(x, dtype=float))
        tps = (
            [None] * len(x)
            if tp is None
            else [int(t) if np.isfinite(t) else None for t in np.broadcast_to(tp, x.shape)]
        )
        if self.tp is not None:
            tps = [self.tp] * len(x)
        rows = []
        for i, xi in enumerate(x):
            spec, _ = _spec(arm, xi)
            rows.append(self._priced(arm.model, spec, self._mix(arm, xi, usage, i), tps[i]))
        out = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}
        out["tokens"] = np.nan_to_num(usage.prompt_tokens) + usage.completion_tokens
        if arm.strategy == VERIFIED and self.checker_cost:
            for k, v in self.checker_cost.items():
                out[k] = out[k] + (float(v) if k == "latency_s" else float(v) * x)
        return out
