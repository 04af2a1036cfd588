"""The curves table: accuracy and cost against a compute knob, per (model, strategy, config, difficulty).

:func:`curves_from_samples` turns a samples table into curves (docs/design.md, "The tables"):

* **Pool strategies** (``pool``, ``hybrid``, and any strategy with several rows per
  question): one row per metric and k = 1..K with the all-k estimators of
  :mod:`fitting.estimators` — ``pass@k`` (unbiased), ``majority@k`` (exact), ``best_of@k``
  (exact, ranked by ``reward`` when the group has rewards, else by ``logprob``; the
  ``score_source`` column says which) and ``weighted@k`` (weights = ``reward``; exact for
  small subsets counts, else Monte Carlo with its standard error in ``mc_se``). K is the
  SMALLEST pool size among the group's questions (``pool_size``); every question
  contributes its unbiased/exact estimate from its whole pool at each k <= K (an estimate
  from n samples is valid for any k <= n, and using all of them lowers its variance).
* **One execution per question** (``greedy``, ``beam``, ``refine``, ``budget``): one point
  per config, metric ``accuracy``, at k = the strategy's compute knob read from ``config``
  (:data:`SINGLE_POINT_KNOBS`; greedy: k = 1). Repeated rows of a question are averaged.

Accuracy is the mean over questions of each question's expected accuracy; its interval is
a percentile bootstrap over QUESTIONS (the per-question matrix is computed once, each
replicate is a multinomial reweighting of its rows, so replicates cost one matrix product).

Costs (means over questions of per-question means, so every question weighs the same as
in the accuracy), for a k-subset of a pool:

* ``mean_prompt_tokens``: the prompt prefix shared by the pool is processed once; the
  smallest ``prompt_tokens`` of a question's rows is taken as that shared prefix and any
  excess of a row over it (e.g. a hybrid chain's revision prompts) counts per row:
  ``shared + k * mean(excess)``.
* ``mean_completion_tokens``: ``k * mean(completion_tokens)`` (exact expectation for a
  random k-subset).
* ``mean_latency_s``, ``mean_kv_bytes``, ``mean_flops``: ``k *`` the row mean. Pool rows
  carry an equal 1/n share of their batched request's measured wall time and KV peak, so
  k rows are attributed k/n of them (sequential attribution: a batched request of k
  samples is assumed to cost k/n of the n-sample one; the planner's roofline model is
  the better guide for real batching). FLOPs only when the table has them.
* ``mean_tokens`` = prompt + completion.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import schema as S
from ._curve_rows import (
    ACCURACY_METRIC,
    BEST_OF,
    CURVE_COLUMNS,
    MAJORITY,
    MAJORITY_DRAWS,
    METRICS,
    PASS,
    POOL_STRATEGIES,
    SINGLE_POINT_KNOBS,
    WEIGHTED,
    check_args,
    curves_frame,
    extra_columns,
    summarize,
)
from ._majority import EXACT_WORK_LIMIT, MAX_EXACT_POOL, exact_work, majority_all_k, majority_monte_carlo
from ._pools import (
    POOL_POLICIES,
    DataWarning,
    Notes,
    k_grid,
    label,
    pass_at_k_table,
    pool_ks,
)
from .estimators import best_of_levels, weighted_vote_at_k

__all__ = [
    "DataWarning",
    "curves_from_samples",
    "curves_and_per_question",
    "per_question_curves",
    "GroupEstimate",
    "sample_groups",
    "estimate_group",
    "pass_at_k_table",
    "k_grid",
    "POOL_POLICIES",
    "difficulty_bins",
    "assign_difficulty",
    "SINGLE_POINT_KNOBS",
    "POOL_STRATEGIES",
    "METRICS",
    "CURVE_COLUMNS",
]

_CORRECT = ("<the correct answer>",)  # vote key of correct samples: a tuple never equals a string answer
_NEEDS_ANSWERS = (MAJORITY, WEIGHTED)


def curves_from_samples(
    samples_df: pd.DataFrame,
    *,
    metrics: Sequence[str] = METRICS,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    weighted_draws: int = 500,
    pool_policy: str = "common",
) -> pd.DataFrame:
    """Accuracy and cost curves of every (model, strategy, config, difficulty) group.

    Parameters
    ----------
    samples_df : DataFrame
        A samples table (validated with :func:`fitting.schema.validate_samples`).
    metrics : sequence of str
        Pool metrics to compute, among :data:`METRICS`. ``best_of@k`` needs ``reward`` or
        ``logprob`` values, ``weighted@k`` needs ``reward`` values; groups without them
        get no such rows.
    n_boot : int
        Bootstrap replicates over questions (0: no interval, lo = hi = NaN).
    level : float
        Coverage of the percentile intervals.
    seed : int
        Seeds the bootstrap and the Monte Carlo of ``weighted@k`` (per group and question,
        so results do not depend on which other groups are in the table).
    weighted_draws : int
        Monte Carlo draws per question for ``weighted@k`` where enumeration is too large.
    pool_policy : {"common", "available"}
        Uneven pools (questions with different pool sizes n_i): "common" stops every pool
        curve at the smallest pool, so each k is backed by every question; "available"
        runs to the largest pool and averages each k over the questions with n_i >= k
        (``n_questions`` says how many). Either way a :class:`DataWarning` says when a
        curve was cut short or thinned, and the ``pool_policy`` column records the policy.

    Returns
    -------
    DataFrame with columns :data:`CURVE_COLUMNS`, one row per (group, metric, k). k runs
    over :func:`k_grid` (every k up to ``fitting._pools.DENSE_K_MAX``, then log-spaced). ``estimator``
    says how each accuracy was estimated: "unbiased" (pass@k), "exact" (majority@k,
    best_of@k, weighted@k by enumeration), "monte_carlo" (with its standard error in
    ``mc_se``; majority@k of pools too large for the exact method, weighted@k of large
    subsets) or "mean" (one execution per question).

    Warns
    -----
    DataWarning
        Once per call for groups without answers (no majority@k or weighted@k: they need
        extracted answers) and once for curves cut short by uneven pools.

    Examples
    --------
    >>> import pandas as pd
    >>> from fitting import schema as S
    >>> df = pd.DataFrame({S.QUESTION_ID: ["q1"] * 3 + ["q2"] * 3, S.ANSWER: ["7", "7", "3", "1", "2", "2"],
    ...                    S.REFERENCE: ["7"] * 3 + ["1"] * 3, S.CORRECT: [True, True, False, True, False, False]})
    >>> c = curves_from_samples(df, metrics=["pass@k", "majority@k"], n_boot=0)
    >>> c[[S.METRIC, S.K, S.ACCURACY]].round(4).values.tolist()
    [['pass@k', 1, 0.5], ['pass@k', 2, 0.8333], ['pass@k', 3, 1.0], ['majority@k', 1, 0.5], \
['majority@k', 2, 0.5], ['majority@k', 3, 0.5]]
    """
    return curves_and_per_question(
        samples_df,
        metrics=metrics,
        n_boot=n_boot,
        level=level,
        seed=seed,
        weighted_draws=weighted_draws,
        pool_policy=pool_policy,
        per_question=False,
    )[0]


def curves_and_per_question(
    samples_df: pd.DataFrame,
    *,
    metrics: Sequence[str] = METRICS,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    weighted_draws: int = 500,
    pool_policy: str = "common",
    per_question: bool = True,
) -> tuple[pd.DataFrame, dict[tuple[str, ...], pd.DataFrame] | None]:
    """:func:`curves_from_samples` and :func:`per_question_curves` of the same samples from one
    pass over the groups (each estimate computed once); ``per_question=False`` skips the second.

    Examples
    --------
    >>> import pandas as pd
    >>> from fitting import schema as S
    >>> df = pd.DataFrame({S.QUESTION_ID: ["q1"] * 2 + ["q2"] * 2, S.CORRECT: [True, False, False, False]})
    >>> curves, per_q = curves_and_per_question(df, metrics=["pass@k"], n_boot=0)
    >>> curves[S.ACCURACY].tolist(), per_q[next(iter(per_q))].to_numpy().tolist()
    ([0.25, 0.5], [[0.5, 1.0], [0.0, 0.0]])
    """
    check_args(metrics, pool_policy)
    if not 0 < level < 1:
        raise ValueError(f"curves_from_samples: level must be in (0, 1), got {level}")
    rows: list[dict] = []
    out: dict | None = {} if per_question else None
    notes = Notes()
    groups = sample_groups(samples_df)
    for key, group in groups:
        est = estimate_group(
            key,
            group,
            metrics=metrics,
            n_boot=n_boot,
            level=level,
            seed=seed,
            weighted_draws=weighted_draws,
            pool_policy=pool_policy,
        )
        rows += est.rows
        notes.add(est.notes)
        if out is not None:
            out.update({(*est.key, metric): frame for metric, frame in est.per_question.items()})
    notes.emit(len(groups))
    return curves_frame(rows), out


def per_question_curves(
    samples_df: pd.DataFrame,
    *,
    metrics: Sequence[str] = METRICS,
    seed: int = 0,
    weighted_draws: int = 500,
    pool_policy: str = "common",
) -> dict[tuple[str, ...], pd.DataFrame]:
    """Each question's expected accuracy at every k, per group and metric.

    The input of :func:`fitting.bootstrap_questions` (rows questions, columns k; NaN where
    a question's pool is smaller than k under ``pool_policy="available"``). Warnings are
    those of :func:`curves_from_samples`, which is where they are emitted.

    Returns
    -------
    dict
        ``(model, strategy, config, difficulty, metric) -> DataFrame`` indexed by
        ``question_id`` with one column per k.
    """
    check_args(metrics, pool_policy)
    out = {}
    for key, group in sample_groups(samples_df):
        est = estimate_group(
            key,
            group,
            metrics=metrics,
            n_boot=0,
            seed=seed,
            weighted_draws=weighted_draws,
            pool_policy=pool_policy,
        )
        out.update({(*est.key, metric): frame for metric, frame in est.per_question.items()})
    return out


@dataclass
class GroupEstimate:
    """One (model, strategy, config, difficulty) group's curves: what :func:`curves_from_samples`
    and :func:`per_question_curves` hold for it.

    ``key`` is the group's keys as strings; ``rows`` its curve rows (one dict per metric and
    k); ``per_question`` its per-question matrix per metric; ``notes`` what was cut short or
    left out (emitted as warnings by the caller, once per call).
    """

    key: tuple[str, ...]
    rows: list[dict]
    per_question: dict[str, pd.DataFrame]
    notes: Notes


def sample_groups(samples_df: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """The validated samples split into (model, strategy, config, difficulty) groups, in the
    order of the curves table (missing keys filled with the schema's defaults)."""
    df = _validated(samples_df)
    return list(df.groupby(list(S.GROUP_KEYS), sort=True, dropna=False))


def estimate_group(
    key: tuple,
    group: pd.DataFrame,
    *,
    metrics: Sequence[str] = METRICS,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    weighted_draws: int = 500,
    pool_policy: str = "common",
) -> GroupEstimate:
    """The curves of one group of :func:`sample_groups` (arguments as :func:`curves_from_samples`).

    Seeds depend only on ``seed`` and the group's keys, so a group's estimate is the same
    whatever other groups the table holds (what lets a cache keep it per group).
    """
    base = dict(zip(S.GROUP_KEYS, key, strict=True))
    gseed = [seed, zlib.crc32(json.dumps(list(map(str, key))).encode())]
    rows: list[dict] = []
    per_question: dict[str, pd.DataFrame] = {}
    notes = Notes()
    for metric, per_q, ks, extra in _group_curves(
        group, base, metrics, gseed, weighted_draws, pool_policy, notes
    ):
        rows += summarize(base, metric, per_q, ks, extra, n_boot, level, np.random.default_rng(gseed))
        index = pd.Index(extra["questions"], name=S.QUESTION_ID)
        per_question[metric] = pd.DataFrame(per_q, index=index, columns=ks)
    return GroupEstimate(tuple(map(str, key)), rows, per_question, notes)


def _validated(samples_df: pd.DataFrame) -> pd.DataFrame:
    """The validated table, missing group keys filled with the schema's identity defaults."""
    df = S.validate_samples(samples_df)
    for col in S.GROUP_KEYS:
        if df[col].isna().any():
            df[col] = df[col].fillna(S.IDENTITY_DEFAULTS[col])
    return df


# ---- one group ---------------------------------------------------------------------------------


def _group_curves(group: pd.DataFrame, base: dict, metrics, gseed, weighted_draws, policy: str, notes: Notes):
    """Yield (metric, per-question matrix (Q, K), ks, extra) for one group."""
    strategy = str(base[S.STRATEGY])
    by_q = group.groupby(S.QUESTION_ID, sort=True).indices
    questions = list(by_q)
    sizes = np.array([len(by_q[q]) for q in questions])
    single = strategy in SINGLE_POINT_KNOBS or (strategy not in POOL_STRATEGIES and sizes.max() == 1)
    correct = group[S.CORRECT].to_numpy(dtype=bool)
    costs = {
        c: _floats(group, c)
        for c in (S.PROMPT_TOKENS, S.COMPLETION_TOKENS, S.LATENCY_S, S.KV_BYTES_PEAK, S.FLOPS)
    }
    if single:
        knob, k = _single_point_k(strategy, str(base[S.CONFIG]), base)
        per_q = np.array([[correct[by_q[q]].mean()] for q in questions])
        cost = _cost_columns(costs, by_q, questions, np.array([1]), pooled=False)
        extra = extra_columns(questions, knob, int(sizes.min()), cost, "mean", None)
        yield ACCURACY_METRIC, per_q, np.array([k]), extra
        return
    ks = pool_ks(sizes, policy, base, notes)
    cost = _cost_columns(costs, by_q, questions, ks, pooled=True)
    answers = group[S.ANSWER].to_numpy(dtype=object, na_value=None)
    refs = group[S.REFERENCE].to_numpy(dtype=object, na_value=None)
    reward = _floats(group, S.REWARD)
    logprob = _floats(group, S.LOGPROB)
    has_answers = any(a is not None for a in answers)
    if not has_answers and any(m in metrics for m in _NEEDS_ANSWERS):
        notes.no_answers.append(label(base))
    pool_size = int(sizes.min())
    for metric in METRICS:
        if metric not in metrics or (metric in _NEEDS_ANSWERS and not has_answers):
            continue
        source, mc_se, estimator = None, 0.0, "exact"
        if metric == PASS:
            per_q = pass_at_k_table(sizes, [int(correct[by_q[q]].sum()) for q in questions], ks)
            estimator = "unbiased"
        elif metric == MAJORITY:
            per_q, se, mc = _majority(answers, refs, correct, by_q, questions, ks, gseed)
            estimator, mc_se = _mc_label(mc), _combined_se(se, per_q)
        elif metric == BEST_OF:
            source = (
                S.REWARD if np.isfinite(reward).any() else S.LOGPROB if np.isfinite(logprob).any() else None
            )
            if source is None:
                continue
            score = reward if source == S.REWARD else logprob
            per_q = _per_question(by_q, questions, ks, score, correct)
        else:
            if not np.isfinite(reward).any():
                continue
            source = S.REWARD
            per_q, se, mc = _weighted(
                answers, refs, correct, reward, by_q, questions, ks, gseed, weighted_draws
            )
            estimator, mc_se = _mc_label(mc), _combined_se(se, per_q)
        extra = extra_columns(questions, "samples", pool_size, cost, estimator, policy, source, mc_se)
        yield metric, per_q, ks, extra


def _per_question(by_q, questions, ks, score, correct) -> np.ndarray:
    """Best-of-k per question (rows), NaN where k exceeds the question's pool."""
    out = np.full((len(questions), len(ks)), np.nan)
    for j, q in enumerate(questions):
        idx = by_q[q]
        kq = ks[ks <= len(idx)]
        out[j, : len(kq)] = best_of_levels(score[idx], correct[idx], kq)
    return out


def _combined_se(se: np.ndarray, per_q: np.ndarray) -> np.ndarray:
    """Monte Carlo standard error of the mean over questions at each k (independent draws)."""
    valid = np.isfinite(per_q)
    return np.sqrt((np.where(valid, se, 0.0) ** 2).sum(axis=0)) / np.maximum(valid.sum(axis=0), 1)


def _mc_label(mc: np.ndarray) -> np.ndarray:
    """The estimator at each k: "monte_carlo" if any question was sampled there, else "exact"."""
    return np.where(mc.any(axis=0), "monte_carlo", "exact")


def _majority(answers, refs, correct, by_q, questions, ks, gseed):
    """Per-question majority@k: exact where affordable, else seeded Monte Carlo.

    Returns (values, standard errors, Monte Carlo flags), each (questions, k).
    """
    per_q = np.full((len(questions), len(ks)), np.nan)
    se = np.zeros_like(per_q)
    mc = np.zeros(per_q.shape, dtype=bool)
    for j, q in enumerate(questions):
        idx = by_q[q]
        c0, rivals, n_abstain = _vote_counts(answers, refs, correct, idx)
        kq = ks[ks <= len(idx)]
        if len(idx) <= MAX_EXACT_POOL and exact_work(c0, rivals, n_abstain) <= EXACT_WORK_LIMIT:
            per_q[j, : len(kq)] = majority_all_k(c0, rivals, n_abstain)[kq - 1]
        else:
            rng = np.random.default_rng(zlib.crc32(f"{gseed}/majority/{q}".encode()))
            per_q[j, : len(kq)], se[j, : len(kq)] = majority_monte_carlo(
                c0, rivals, n_abstain, kq, MAJORITY_DRAWS, rng
            )
            mc[j, : len(kq)] = c0 > 0  # no correct sample: exactly 0, nothing was sampled
    return per_q, se, mc


def _single_point_k(strategy: str, config: str, base: dict) -> tuple[str, float]:
    knob = SINGLE_POINT_KNOBS.get(strategy)
    if knob is None:
        return "samples", 1
    cfg = json.loads(config)
    if knob not in cfg:
        where = ", ".join(f"{k}={v!r}" for k, v in base.items())
        raise ValueError(
            f"curves_from_samples: group ({where}): strategy {strategy!r} has one execution per question "
            f"and its k is the config knob {knob!r}, which config {config} lacks; add it to the config column"
        )
    value = cfg[knob]
    return knob, int(value) if float(value).is_integer() else float(value)


def _vote_counts(answers, refs, correct, idx) -> tuple[int, np.ndarray, int]:
    """(correct count, rival counts, abstentions) of one question for majority vote."""
    keys = _vote_keys(answers, refs, correct, idx)
    c0 = sum(1 for a in keys if a is _CORRECT)
    n_abstain = sum(1 for a in keys if a is None)
    rivals: dict = {}
    for a in keys:
        if a is not None and a is not _CORRECT:
            rivals[a] = rivals.get(a, 0) + 1
    return c0, np.fromiter(rivals.values(), dtype=np.int64, count=len(rivals)), n_abstain


def _vote_keys(answers, refs, correct, idx) -> list:
    """Vote keys of one question's samples.

    The correct answer is the ``reference`` when given, else the answer of a sample marked
    correct. A sample votes for it when the verifier marked it correct (equivalent forms
    such as "0.5" and "1/2" count as one answer) or its answer equals the reference; other
    answers vote as themselves; no answer (None) abstains. With no reference and no
    correct sample, no vote can be right.
    """
    ref = next((refs[i] for i in idx if refs[i] is not None), None)
    if ref is None:
        ref = next((answers[i] for i in idx if correct[i] and answers[i] is not None), None)
    out = []
    for i in idx:
        a = answers[i]
        out.append(_CORRECT if correct[i] or (ref is not None and a == ref) else a)
    return out


def _weighted(answers, refs, correct, reward, by_q, questions, ks, gseed, draws):
    per_q = np.full((len(questions), len(ks)), np.nan)
    se = np.zeros_like(per_q)
    mc = np.zeros(per_q.shape, dtype=bool)
    for j, q in enumerate(questions):
        idx = by_q[q]
        kq = ks[ks <= len(idx)]
        keys = _vote_keys(answers, refs, correct, idx)
        w = np.nan_to_num(reward[idx], nan=0.0)  # a sample without a reward adds nothing to its answer
        qseed = zlib.crc32(f"{gseed}/{q}".encode())
        est = weighted_vote_at_k(keys, w, _CORRECT, kq, n_draws=draws, seed=qseed)
        per_q[j, : len(kq)], se[j, : len(kq)] = est.mean, est.se
        mc[j, : len(kq)] = ~np.asarray(est.exact)
    return per_q, se, mc


def _floats(group: pd.DataFrame, col: str) -> np.ndarray:
    return group[col].to_numpy(dtype=float, na_value=np.nan)


def _question_stats(values: np.ndarray, codes: np.ndarray, n_questions: int) -> tuple[np.ndarray, np.ndarray]:
    """Each question's mean and minimum of its finite ``values`` (NaN where it has none);
    ``codes`` is each row's question index."""
    ok = np.isfinite(values)
    count = np.bincount(codes[ok], minlength=n_questions)
    total = np.bincount(codes[ok], weights=values[ok], minlength=n_questions)
    low = np.full(n_questions, np.inf)
    np.minimum.at(low, codes[ok], values[ok])
    has = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(has, total / count, np.nan), np.where(has, low, np.nan)


def _cost_columns(costs, by_q, questions, ks, pooled: bool) -> dict[str, np.ndarray]:
    """Mean cost at each k (see the module docstring for the attribution)."""
    kf = ks.astype(float)
    codes = np.empty(sum(len(by_q[q]) for q in questions), dtype=np.intp)
    for j, q in enumerate(questions):
        codes[by_q[q]] = j

    def mean_over_q(col):
        per_q = _question_stats(costs[col], codes, len(questions))[0]
        return float(np.nanmean(per_q)) if np.isfinite(per_q).any() else np.nan

    out = {}
    if pooled:
        mean, low = _question_stats(costs[S.PROMPT_TOKENS], codes, len(questions))
        has = np.isfinite(mean)
        if has.any():
            prompt = float(np.mean(low[has])) + kf * float(np.mean(mean[has] - low[has]))
        else:
            prompt = np.full(len(ks), np.nan)
        out[S.MEAN_PROMPT_TOKENS] = np.broadcast_to(prompt, kf.shape).astype(float)
        scale = kf
    else:
        out[S.MEAN_PROMPT_TOKENS] = np.full(len(ks), mean_over_q(S.PROMPT_TOKENS))
        scale = np.ones(len(ks))
    out[S.MEAN_COMPLETION_TOKENS] = scale * mean_over_q(S.COMPLETION_TOKENS)
    out[S.MEAN_TOKENS] = out[S.MEAN_PROMPT_TOKENS] + out[S.MEAN_COMPLETION_TOKENS]
    out[S.MEAN_LATENCY_S] = scale * mean_over_q(S.LATENCY_S)
    out[S.MEAN_KV_BYTES] = scale * mean_over_q(S.KV_BYTES_PEAK)
    out[S.MEAN_FLOPS] = scale * mean_over_q(S.FLOPS)
    return out


# ---- difficulty ----------------------------------------------------------------------------------


def difficulty_bins(samples_df: pd.DataFrame, n_bins: int = 5, method: str = "pass_rate") -> dict[str, str]:
    """A difficulty label per question: quantile bins of pass rate, or the task's labels.

    ``method="pass_rate"`` is the oracle difficulty of Snell et al. (2024, "Scaling LLM
    test-time compute optimally..."): each question's pass rate is the fraction of its
    rows marked correct (give the rows of ONE model to bin by that model's difficulty);
    questions are ranked from easiest (highest pass rate) to hardest and split into
    ``n_bins`` equal-count bins labelled "1" (easiest) .. ``str(n_bins)`` (hardest). Tied
    pass rates share their average rank, so a tie never straddles two bins (bins can then
    be unequal). ``method="label"`` returns the task-given ``difficulty`` of each question.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"question_id": list("aabbccdd"), "correct": [1, 1, 1, 0, 0, 0, 0, 0]})
    >>> difficulty_bins(df.astype({"correct": bool}), n_bins=2)
    {'a': '1', 'b': '1', 'c': '2', 'd': '2'}
    """
    if method not in ("pass_rate", "label"):
        raise ValueError(f"difficulty_bins: method must be 'pass_rate' or 'label', got {method!r}")
    if n_bins < 1:
        raise ValueError(f"difficulty_bins: n_bins must be >= 1, got {n_bins}")
    df = S.validate_samples(samples_df)
    if method == "label":
        labels = df.groupby(S.QUESTION_ID, sort=True)[S.DIFFICULTY].unique()
        mixed = labels[labels.map(len) > 1]
        if len(mixed):
            raise ValueError(
                f"difficulty_bins: question {mixed.index[0]!r} has several difficulty labels {list(mixed.iloc[0])}"
            )
        return {str(q): str(v[0]) for q, v in labels.items()}
    rate = df.groupby(S.QUESTION_ID, sort=True)[S.CORRECT].mean().astype(float)
    rank = (-rate).rank(method="average")  # 1 = easiest
    bins = np.floor(n_bins * (rank.to_numpy() - 0.5) / len(rate)).astype(int) + 1
    return {str(q): str(int(b)) for q, b in zip(rate.index, np.clip(bins, 1, n_bins), strict=True)}


def assign_difficulty(samples_df: pd.DataFrame, bins: dict[str, str]) -> pd.DataFrame:
    """A copy of the samples table with ``difficulty`` set from a question -> label mapping.

    Raises ValueError naming a question the mapping lacks.
    """
    out = samples_df.copy()
    qids = out[S.QUESTION_ID].astype(str)
    missing = sorted(set(qids) - set(bins))
    if missing:
        raise ValueError(
            f"assign_difficulty: no difficulty for question(s) {missing[:5]} (of {len(missing)})"
        )
    out[S.DIFFICULTY] = qids.map(bins)
    return out
