"""``hybrid``: a pool of refined chains — parallel (``n`` chains) times sequential (``rounds``).

Each question gets ``n`` chains from one request of ``n`` samples (shared prefix); each chain
is then refined for up to ``rounds`` rounds exactly as :mod:`profiling.strategies.refine`
does (same ``verifier``, ``temperature``, ``top_p`` knobs and the same critique-and-revise
fallback for tasks without a step checker).

One row per chain (``sample_idx`` 0..n-1), so :mod:`fitting` can estimate every k <= n as
for a pool. Attribution: the first request's latency and KV peak are split equally over
the n chains (as in ``pool``); each later round's request belongs to one chain and counts
fully for it. ``reward`` is the verifier's score of the chain's final text.
"""

from __future__ import annotations

from ._base import Knob, StrategyDescriptor, WorkloadShape
from .refine import DESCRIPTOR as REFINE
from .refine import Refine

__all__ = ["Hybrid", "DESCRIPTOR"]

DESCRIPTOR = StrategyDescriptor(
    name="hybrid",
    summary="a pool of n chains, each refined for up to `rounds` rounds (parallel x sequential)",
    knobs={"n": Knob(4, int, "chains per question", lambda v: v >= 1, "an integer >= 1"), **REFINE.knobs},
    compute_knob="n",
    cost_knobs=("n", "rounds", "keep"),
    assumptions=REFINE.assumptions,
    shape=lambda k: WorkloadShape(samples=k["n"], rounds=k["rounds"], keep=k["keep"]),
)


class Hybrid(Refine):
    descriptor = DESCRIPTOR

    def n_chains(self) -> int:
        return self.params["n"]
