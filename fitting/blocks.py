"""Blocks of one pool: a pool grown a block at a time is read back as one pool.

A pool strategy may be run in *blocks* (``pool:n=8,block=3``: samples 24..31 of the question's
pool), which is how adaptive profiling grows a pool only where the decision needs it: block
``j`` of ``n`` samples is a unit of its own (its own seed, its own resume key) whose rows carry
``sample_idx`` ``j*n .. j*n+n-1``. Readers of a folder (:func:`fitting.schema.read_samples`,
:func:`fitting.schema.read_counts`) merge the blocks of a question: the ``block`` key leaves
the ``config`` column, so every block of a (model, strategy, knobs, question) is one pool and
every k is estimated from all of them. Samples rows keep their own ``sample_idx``; counts rows
of one question add up (their costs weighted by ``n_samples``).

Why merging is sound: a block's samples are drawn independently of the others (their own
seed), and which questions get another block depends only on samples already seen, so the
per-question likelihood of the pooled samples is the same as for a pool of that size fixed in
advance (the likelihood principle; the stopping rule carries no information about the rate).

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"config": ['{"block": 2, "n": 4}', '{"n": 4}'], "sample_idx": [8, 0]})
>>> merge_sample_blocks(df)["config"].tolist()
['{"n": 4}', '{"n": 4}']
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from . import schema as S

__all__ = ["BLOCK", "block_of", "without_block", "merge_sample_blocks", "merge_count_blocks"]

#: the config key of a pool's block
BLOCK = "block"


def block_of(config: str) -> int:
    """The block number of a config JSON string (0 when it has none).

    >>> block_of('{"block": 3, "n": 8}'), block_of('{"n": 8}')
    (3, 0)
    """
    try:
        value = json.loads(config).get(BLOCK, 0)
    except (ValueError, AttributeError):
        return 0
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def without_block(config: str) -> str:
    """``config`` with the block key removed (canonical JSON, sorted keys); unchanged when it
    has none.

    >>> without_block('{"block": 3, "n": 8}')
    '{"n": 8}'
    """
    if f'"{BLOCK}"' not in config:
        return config
    try:
        parsed = json.loads(config)
    except ValueError:
        return config
    if not isinstance(parsed, dict) or BLOCK not in parsed:
        return config
    parsed.pop(BLOCK)
    return json.dumps(parsed, sort_keys=True)


def _stripped(configs: pd.Series) -> pd.Series | None:
    """The configs without their block keys, or None when none has one."""
    text = configs.astype(str)
    mapping = {c: without_block(c) for c in text.unique()}
    if all(k == v for k, v in mapping.items()):
        return None
    return text.map(mapping).astype(configs.dtype)


def merge_sample_blocks(df: pd.DataFrame) -> pd.DataFrame:
    """Samples with the blocks of each pool merged: ``block`` leaves ``config`` (the rows keep
    their ``sample_idx``, which the writers number across blocks); ``df`` itself when no row
    has a block."""
    if S.CONFIG not in df.columns or df.empty:
        return df
    stripped = _stripped(df[S.CONFIG])
    return df if stripped is None else df.assign(**{S.CONFIG: stripped})


def merge_count_blocks(df: pd.DataFrame) -> pd.DataFrame:
    """Counts with the blocks of each pool merged: one row per (run, model, task, strategy,
    config without block, difficulty, question), ``n_samples`` and ``n_correct`` summed, the
    per-sample cost means weighted by ``n_samples`` (NaN where no block measured one); ``df``
    itself when no row has a block. The result is validated again (its dtypes are the schema's)."""
    if S.CONFIG not in df.columns or df.empty:
        return df
    stripped = _stripped(df[S.CONFIG])
    if stripped is None:
        return df
    work = df.assign(**{S.CONFIG: stripped})
    keys = [c for c in work.columns if c not in (S.N_SAMPLES, S.N_CORRECT, *S.COUNT_COST_COLUMNS)]
    n = work[S.N_SAMPLES].astype(float)
    sums = {S.N_SAMPLES: work[S.N_SAMPLES].astype(np.int64), S.N_CORRECT: work[S.N_CORRECT].astype(np.int64)}
    for c in S.COUNT_COST_COLUMNS:
        v = work[c].astype(float)
        sums[c] = (v * n).fillna(0.0)
        sums[f"_{c}_n"] = n.where(v.notna(), 0.0)
    table = work[keys].astype(object).where(work[keys].notna(), None).assign(**sums)
    out = table.groupby(keys, sort=False, dropna=False).sum().reset_index()
    for c in S.COUNT_COST_COLUMNS:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[c] = (out[c] / out[f"_{c}_n"]).where(out[f"_{c}_n"] > 0)
        out = out.drop(columns=f"_{c}_n")
    return S.validate_counts(out[list(df.columns)])
