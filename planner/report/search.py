"""Tree search against beam search and best-of-N at equal generated tokens (a report table).

All numbers are MEASURED: each strategy's accuracy over every question (difficulty ``all``) and
its mean generated tokens per query, from the curves table. For each profiled ``mcts`` point,
beam search's and best-of-N's accuracy at the same generated tokens is read off their own
measured points, linearly between the two neighbours in log tokens; outside their measured range
nothing is read (``None``: not measured at that budget). The scorer of each strategy is named:
an oracle or simulated process reward is an upper bound no deployment has.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from fitting import schema as S

from .format import format_pct

__all__ = ["SEARCH_TEXT", "equal_token_table", "search_table"]

SEARCH_TEXT = (
    "Monte Carlo tree search against beam search and best-of-N at equal generated tokens: each mcts point "
    "profiled (every question), with beam search's and best-of-N's measured accuracy read at the same mean "
    "generated tokens per query, linearly between their neighbouring measured points in log tokens ('-': "
    "that strategy was not measured at that many tokens). All accuracies are measured; the scorer column says "
    "what guided or ranked each (oracle and simulated scorers are upper bounds no deployment has)."
)


def _scorer(config: str, metric: str) -> str:
    cfg = json.loads(config) if config else {}
    for key in ("prm_source", "reward_source"):
        if key in cfg and not (key == "reward_source" and cfg.get("reward") == "none"):
            return str(cfg[key])
    return "logprob" if metric.startswith("best_of") else "none"


def _every_question(curves: pd.DataFrame) -> pd.DataFrame:
    """The curves over every question: the ``all`` rows where the table has them, else each
    curve point's question-weighted mean over the difficulty bins."""
    if S.DIFFICULTY not in curves.columns:
        return curves
    if (curves[S.DIFFICULTY] == S.ALL_DIFFICULTY).any():
        return curves[curves[S.DIFFICULTY] == S.ALL_DIFFICULTY]
    keys = [S.MODEL, S.STRATEGY, S.CONFIG, S.METRIC, S.K]
    w = (
        curves[S.N_QUESTIONS].astype(float)
        if S.N_QUESTIONS in curves.columns
        else pd.Series(1.0, curves.index)
    )
    cols = [S.ACCURACY, S.MEAN_COMPLETION_TOKENS]
    weighted = curves[cols].astype(float).mul(w, axis=0).assign(_w=w, **{k: curves[k] for k in keys})
    sums = weighted.groupby(keys, as_index=False, dropna=False).sum()
    sums[cols] = sums[cols].div(sums["_w"], axis=0)
    return sums.drop(columns="_w")


def _points(df: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    """The measured (tokens, accuracy) points under ``mask``, sorted by tokens."""
    pts = df.loc[mask, [S.MEAN_COMPLETION_TOKENS, S.ACCURACY]].dropna()
    return pts.groupby(S.MEAN_COMPLETION_TOKENS, as_index=False).mean().sort_values(S.MEAN_COMPLETION_TOKENS)


def _at(points: pd.DataFrame, tokens: float) -> float | None:
    """Accuracy at ``tokens`` by linear interpolation in log tokens inside the measured range."""
    t = points[S.MEAN_COMPLETION_TOKENS].to_numpy(float)
    if len(t) == 0 or not (t[0] * (1 - 1e-9) <= tokens <= t[-1] * (1 + 1e-9)) or tokens <= 0:
        return None
    return float(np.interp(np.log(tokens), np.log(t), points[S.ACCURACY].to_numpy(float)))


def equal_token_table(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per profiled mcts point: model, simulations, scorer, mean generated tokens, its
    accuracy, and beam search's and best-of-N's at the same tokens (module docstring); empty when
    the profile has no mcts curve.

    Examples
    --------
    >>> curves = pd.DataFrame({S.MODEL: ["m"] * 4, S.DIFFICULTY: ["all"] * 4, S.K: [1, 1, 1, 4],
    ...     S.STRATEGY: ["mcts", "beam", "beam", "pool"], S.METRIC: ["accuracy"] * 3 + ["best_of@k"],
    ...     S.CONFIG: ['{"simulations": 4, "prm_source": "oracle-step-checker"}', '{"width": 1}',
    ...                '{"width": 4}', '{"reward": "none"}'],
    ...     S.ACCURACY: [0.6, 0.2, 0.5, 0.4], S.MEAN_COMPLETION_TOKENS: [200.0, 100.0, 400.0, 200.0]})
    >>> equal_token_table(curves)[["simulations", "mcts", "beam", "best_of"]].round(6).to_dict("records")
    [{'simulations': 4, 'mcts': 0.6, 'beam': 0.35, 'best_of': 0.4}]
    """
    need = {S.MODEL, S.STRATEGY, S.CONFIG, S.METRIC, S.ACCURACY, S.MEAN_COMPLETION_TOKENS}
    if curves.empty or not need <= set(curves.columns) or not (curves[S.STRATEGY] == "mcts").any():
        return pd.DataFrame()
    df = _every_question(curves)
    rows = []
    for model, g in df.groupby(S.MODEL, sort=True):
        beam = _points(g, (g[S.STRATEGY] == "beam") & (g[S.METRIC] == "accuracy"))
        best = g[g[S.METRIC] == "best_of@k"]
        best_src = _scorer(best[S.CONFIG].iloc[0], "best_of@k") if len(best) else None
        best = _points(best, best[S.METRIC] == "best_of@k")
        beam_src = g.loc[g[S.STRATEGY] == "beam", S.CONFIG]
        mcts = g[(g[S.STRATEGY] == "mcts") & (g[S.METRIC] == "accuracy")]
        for _, r in mcts.sort_values(S.MEAN_COMPLETION_TOKENS).iterrows():
            tokens = float(r[S.MEAN_COMPLETION_TOKENS])
            rows.append(
                {
                    "model": model,
                    "simulations": int(json.loads(r[S.CONFIG]).get("simulations", 0)),
                    "scorer": _scorer(r[S.CONFIG], "accuracy"),
                    "generated_tokens": tokens,
                    "mcts": float(r[S.ACCURACY]),
                    "beam": _at(beam, tokens),
                    "beam_scorer": _scorer(beam_src.iloc[0], "accuracy") if len(beam_src) else None,
                    "best_of": _at(best, tokens),
                    "best_of_scorer": best_src,
                }
            )
    return pd.DataFrame(rows)


def search_table(curves: pd.DataFrame) -> pd.DataFrame:
    """:func:`equal_token_table` formatted for the report (percentages, '-' where not measured)."""
    t = equal_token_table(curves)
    if t.empty:
        return t
    return pd.DataFrame(
        {
            "model": t["model"],
            "mcts simulations": t["simulations"],
            "mcts scorer": t["scorer"],
            "generated tokens / query": t["generated_tokens"].map(lambda v: f"{v:,.0f}"),
            "mcts accuracy": t["mcts"].map(format_pct),
            "beam at equal tokens": t["beam"].map(format_pct),
            "beam scorer": t["beam_scorer"].fillna("-"),
            "best-of-N at equal tokens": t["best_of"].map(format_pct),
            "best-of-N scorer": t["best_of_scorer"].fillna("-"),
        }
    )
