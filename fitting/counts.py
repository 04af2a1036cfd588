"""Per-question counts: the compact form of a pool when only correctness is known.

A counts table (:data:`fitting.schema.COUNTS_SCHEMA`) has one row per question with
``n_samples`` and ``n_correct`` and optional per-sample mean costs. It is what published
coverage data look like (e.g. 128 problems x 10,000 samples, no answers kept), and it is
all that pass@k and coverage forecasts need: the unbiased pass@k of a question depends on
its pool only through (n, c). Majority and weighted vote need answers and are never
estimated from counts.

* :func:`counts_from_samples`: a samples table reduced to counts (pass@k and forecasts
  from samples go through it);
* :func:`curves_from_counts`: the pass@k curves of a counts table, the same rows as
  :func:`fitting.curves.curves_from_samples` gives for ``pass@k`` (k on
  :func:`fitting.curves.k_grid`, the same uneven-pool policy and warnings);
* :func:`per_question_pass`: each question's pass@k per curve (the bootstrap's input).
"""

from __future__ import annotations

import json
import zlib

import numpy as np
import pandas as pd

from . import schema as S
from ._curve_rows import (
    PASS,
    POOL_STRATEGIES,
    SINGLE_POINT_KNOBS,
    check_args,
    curves_frame,
    extra_columns,
    summarize,
)
from ._pools import Notes, pass_at_k_table, pool_ks

__all__ = ["counts_from_samples", "curves_from_counts", "per_question_pass", "pooled_counts"]


def counts_from_samples(samples_df: pd.DataFrame) -> pd.DataFrame:
    """The counts table of the pool groups of a samples table (one row per group and question).

    Groups of one-execution strategies (greedy, beam, refine, budget) are left out: their
    rows are not interchangeable samples of one pool. Cost columns become per-sample means.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"question_id": ["a", "a", "a", "b"], "correct": [True, False, False, False]})
    >>> counts_from_samples(df)[["question_id", "n_samples", "n_correct"]].values.tolist()
    [['a', 3, 1], ['b', 1, 0]]
    """
    df = S.validate_samples(samples_df)
    keys = [S.RUN_ID, S.MODEL, S.BACKEND, S.TASK, S.STRATEGY, S.CONFIG, S.DIFFICULTY, S.QUESTION_ID]
    sizes = df.groupby([*S.GROUP_KEYS, S.QUESTION_ID], sort=False)[S.CORRECT].transform("size")
    strategy = df[S.STRATEGY].astype(str)
    pool = ~strategy.isin(list(SINGLE_POINT_KNOBS)) & (strategy.isin(POOL_STRATEGIES) | (sizes > 1))
    df = df[pool]
    agg = {S.N_SAMPLES: (S.CORRECT, "size"), S.N_CORRECT: (S.CORRECT, "sum")}
    agg |= {c: (c, "mean") for c in S.COUNT_COST_COLUMNS}
    out = (
        df.astype({c: float for c in S.COUNT_COST_COLUMNS}).groupby(keys, sort=True, dropna=False).agg(**agg)
    )
    return S.validate_counts(out.reset_index())


def pooled_counts(counts_df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, strategy, config, difficulty, question): rows of the same question
    from several runs are pooled (samples are interchangeable), their mean costs weighted by
    ``n_samples``. A pool of more than :data:`fitting.schema.MAX_COUNT` samples is refused
    (:class:`fitting.schema.SchemaError`)."""
    df = S.validate_counts(counts_df)
    keys = [*S.GROUP_KEYS, S.QUESTION_ID]
    n = df[S.N_SAMPLES].astype(float)
    work = df[keys].copy()
    work[S.N_SAMPLES] = df[S.N_SAMPLES].astype(np.int64)
    work[S.N_CORRECT] = df[S.N_CORRECT].astype(np.int64)
    for c in S.COUNT_COST_COLUMNS:
        v = df[c].astype(float)
        work[c] = (v * n).fillna(0.0)
        work[f"_{c}_n"] = n.where(v.notna(), 0.0)
    work["_n_float"] = n  # the pooled size in float64 too: int64 sums wrap past 9.2e18
    out = work.groupby(keys, sort=True, dropna=False).sum().reset_index()
    big = np.flatnonzero(out.pop("_n_float").to_numpy() > S.MAX_COUNT)
    if len(big):
        row = out.iloc[int(big[0])]
        raise S.SchemaError(
            f"question_id {row[S.QUESTION_ID]!r} of model {row[S.MODEL]!r} pools more than "
            f"{S.MAX_COUNT:.0e} samples over its runs; at most {S.MAX_COUNT:.0e} are accepted"
        )
    for c in S.COUNT_COST_COLUMNS:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[c] = (out[c] / out[f"_{c}_n"]).where(out[f"_{c}_n"] > 0)
        out = out.drop(columns=f"_{c}_n")
    return out


def curves_from_counts(
    counts_df: pd.DataFrame,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    pool_policy: str = "common",
) -> pd.DataFrame:
    """The pass@k curve of every (model, strategy, config, difficulty) group of a counts table.

    Unbiased pass@k (Chen et al. 2021) of each question from its (n_samples, n_correct),
    averaged over questions, with a percentile bootstrap over questions; k on
    :func:`fitting.curves.k_grid` up to the smallest pool (``pool_policy="common"``) or the
    largest (``"available"``: each k averaged over the questions with n_i >= k). Costs at k:
    the prompt once (shared prefix) plus k times the per-sample mean of every other cost.
    Columns and warnings are those of :func:`fitting.curves.curves_from_samples`.

    Examples
    --------
    >>> import pandas as pd
    >>> counts = pd.DataFrame({"question_id": ["a", "b"], "n_samples": [4, 4], "n_correct": [1, 0]})
    >>> curves_from_counts(counts, n_boot=0)[["k", "accuracy"]].round(4).values.tolist()
    [[1.0, 0.125], [2.0, 0.25], [3.0, 0.375], [4.0, 0.5]]
    """
    check_args([PASS], pool_policy)
    if not 0 < level < 1:
        raise ValueError(f"curves_from_counts: level must be in (0, 1), got {level}")
    rows: list[dict] = []
    notes = Notes()
    groups = list(_count_groups(counts_df))
    for base, table in groups:
        per_q, ks, extra = _group_pass(base, table, pool_policy, notes)
        gseed = [seed, zlib.crc32(json.dumps([str(base[k]) for k in S.GROUP_KEYS]).encode())]
        rows += summarize(base, PASS, per_q, ks, extra, n_boot, level, np.random.default_rng(gseed))
    notes.emit(len(groups))
    return curves_frame(rows)


def per_question_pass(
    counts_df: pd.DataFrame, *, pool_policy: str = "common"
) -> dict[tuple[str, ...], pd.DataFrame]:
    """Each question's pass@k per curve: ``(model, strategy, config, difficulty, "pass@k") ->
    DataFrame`` (rows questions, columns k), as :func:`fitting.curves.per_question_curves`."""
    out = {}
    for base, table in _count_groups(counts_df):
        per_q, ks, _ = _group_pass(base, table, pool_policy, Notes())
        index = pd.Index(table[S.QUESTION_ID].tolist(), name=S.QUESTION_ID)
        out[(*(str(base[k]) for k in S.GROUP_KEYS), PASS)] = pd.DataFrame(per_q, index=index, columns=ks)
    return out


def _count_groups(counts_df: pd.DataFrame):
    pooled = pooled_counts(counts_df)
    for key, table in pooled.groupby(list(S.GROUP_KEYS), sort=True, dropna=False):
        yield dict(zip(S.GROUP_KEYS, key, strict=True)), table.reset_index(drop=True)


def _group_pass(base: dict, table: pd.DataFrame, policy: str, notes: Notes):
    n = table[S.N_SAMPLES].to_numpy(np.int64)
    c = table[S.N_CORRECT].to_numpy(np.int64)
    ks = pool_ks(n, policy, base, notes)
    per_q = pass_at_k_table(n, c, ks)
    questions = table[S.QUESTION_ID].tolist()
    extra = extra_columns(questions, "samples", int(n.min()), _count_costs(table, ks), "unbiased", policy)
    return per_q, ks, extra


def _count_costs(table: pd.DataFrame, ks: np.ndarray) -> dict[str, np.ndarray]:
    """Mean cost at each k from per-sample means: the prompt once, everything else k times."""
    kf = ks.astype(float)

    def mean(col):
        v = table[col].to_numpy(float)
        return float(np.nanmean(v)) if np.isfinite(v).any() else np.nan

    prompt = np.full(len(ks), mean(S.PROMPT_TOKENS))
    completion = kf * mean(S.COMPLETION_TOKENS)
    return {
        S.MEAN_PROMPT_TOKENS: prompt,
        S.MEAN_COMPLETION_TOKENS: completion,
        S.MEAN_TOKENS: prompt + completion,
        S.MEAN_LATENCY_S: kf * mean(S.LATENCY_S),
        S.MEAN_KV_BYTES: kf * mean(S.KV_BYTES_PEAK),
        S.MEAN_FLOPS: kf * mean(S.FLOPS),
    }
