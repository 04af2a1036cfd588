"""FLOPs of measured rows of the samples table (the profiler stores tokens, not FLOPs).

:func:`price_samples` derives each row's prefill and decode FLOPs from its measured
``prompt_tokens`` and ``completion_tokens`` and the model spec (from the run metadata), and
fills the ``flops`` column where it is empty (imported FLOPs are kept). The prefill part is
kept in its own column because rows of one pool share their prompt: a k-subset of a pool costs
one prompt prefill plus its rows' decodes (``profiling.strategies.pool``).

Multi-call strategies store summed prompts and completions per row; the calls per row are
estimated from the strategy's knobs (``beam``: ``width * expansions * max_steps``, an upper
bound as beams may finish early; ``mcts``: ``simulations * (expansions + 1)``, an upper bound
as a simulation that selects a finished node makes no call; ``refine``/``hybrid``:
``rounds + 1``; ``budget``: 2; else 1)
and only change the attention term (:func:`~planner.costs.flops.token_flops`).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from fitting import schema as S

from .flops import token_flops
from .spec import ModelSpec

__all__ = ["price_samples", "PREFILL_FLOPS", "DECODE_FLOPS", "calls_per_row"]

PREFILL_FLOPS = "prefill_flops"  # derived column: FLOPs of the row's prompt prefill(s)
DECODE_FLOPS = "decode_flops"  # derived column: FLOPs of the row's generated tokens


def calls_per_row(strategy: str, config: str | dict) -> int:
    """Engine calls one row of ``strategy`` with knobs ``config`` (JSON or dict) stands for
    (module docstring). Unknown strategies count as one call."""
    knobs = json.loads(config) if isinstance(config, str) and config else (config or {})
    if strategy == "beam":
        steps = knobs.get("max_steps", knobs.get("steps", 12))
        return int(knobs.get("width", 4)) * int(knobs.get("expansions", 2)) * int(steps)
    if strategy == "mcts":
        return int(knobs.get("simulations", 8)) * (int(knobs.get("expansions", 2)) + 1)
    if strategy in ("refine", "hybrid"):
        return int(knobs.get("rounds", 2)) + 1
    if strategy == "budget":
        return 2
    return 1


def price_samples(samples: pd.DataFrame, spec: ModelSpec, *, mla: str = "absorbed") -> pd.DataFrame:
    """Return a copy of ``samples`` with ``prefill_flops`` and ``decode_flops`` columns and the
    ``flops`` column filled (their sum) where it was null. Rows without token counts get NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> spec = ModelSpec.from_catalog("llama-3.1-8b")
    >>> df = pd.DataFrame({"strategy": ["pool"], "config": ["{}"], "prompt_tokens": [100],
    ...                    "completion_tokens": [50], "flops": [None]})
    >>> out = price_samples(df, spec)
    >>> bool(out["flops"].iloc[0] == out["prefill_flops"].iloc[0] + out["decode_flops"].iloc[0])
    True
    """
    for col in (S.PROMPT_TOKENS, S.COMPLETION_TOKENS):
        if col not in samples.columns:
            raise S.SchemaError(f"samples table: missing column {col!r} needed to derive FLOPs")
    out = samples.copy()
    prompt = pd.to_numeric(out[S.PROMPT_TOKENS], errors="coerce").astype(float).to_numpy()
    completion = pd.to_numeric(out[S.COMPLETION_TOKENS], errors="coerce").astype(float).to_numpy()
    if S.STRATEGY in out.columns:
        configs = out[S.CONFIG] if S.CONFIG in out.columns else pd.Series(["{}"] * len(out), index=out.index)
        calls = np.array(
            [calls_per_row(str(s), str(c)) for s, c in zip(out[S.STRATEGY], configs, strict=True)],
            dtype=float,
        )
    else:
        calls = np.ones(len(out))
    pre, dec = token_flops(spec, np.nan_to_num(prompt), np.nan_to_num(completion), calls, mla=mla)
    missing = np.isnan(prompt) | np.isnan(completion)
    pre = np.where(missing, np.nan, pre)
    dec = np.where(missing, np.nan, dec)
    out[PREFILL_FLOPS] = pre
    out[DECODE_FLOPS] = dec
    derived = pd.Series(pre + dec, index=out.index)
    if S.FLOPS in out.columns:
        out[S.FLOPS] = pd.to_numeric(out[S.FLOPS], errors="coerce").astype(float).fillna(derived)
    else:
        out[S.FLOPS] = derived
    return out
