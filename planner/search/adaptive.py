"""Adaptive policies for unknown difficulty (``--difficulty auto``), evaluated OFFLINE from pools.

When the difficulty of a query is not known in advance, two policies spend compute where
it is needed, and both can be replayed from the profiled sample pools without generating
anything: a policy run on a question is a random order of that question's pool, read
until the policy stops (samples drawn without replacement, ``reps`` orders per question).

``probe``
    Draw ``m`` samples from a probe model; the agreement of their answers (votes of the
    leading answer, 0..m) is the estimated difficulty bin; continue with that bin's option
    (a model and a total number of samples; with the probe model the probes count toward
    the vote). The option per agreement level is chosen by the exact allocation DP
    (:func:`planner.search.allocate.allocate_exact`) on the TRAINING questions, with the levels'
    frequencies as weights.
``early_stop``
    Early-stopping self-consistency: sample one at a time and stop once the leading answer
    has ``votes`` votes (or after ``n_max`` samples); answer by majority.

Baselines from the same replay: ``fixed`` (majority of n samples of one model) and
``oracle_bins`` (the per-difficulty allocation when the true difficulty label IS known).

Costs: tokens as measured (one prompt per model used plus the drawn samples' completions);
FLOPs from :func:`planner.costs.price_samples` (each row's decode FLOPs; one prompt prefill
per model used, the prefix being shared by the samples).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fitting import schema as S

from ..constants import ACCURACY, ARM, KNOB_VALUE, MODEL
from ..costs import price_samples
from .allocate import InfeasibleBudget, allocate_exact
from .question_split import split_questions

__all__ = ["PoolReplay", "adaptive_policies", "describe_policy", "ADAPTIVE_COST_KEYS"]

#: the per-query budgets an adaptive policy can be held to
ADAPTIVE_COST_KEYS = ("flops", "tokens")


@dataclass
class _Sim:
    """Replays of one question's pool: ``reps`` random orders, prefix statistics per length."""

    difficulty: str
    acc: np.ndarray  # (reps, N+1): P(majority of the first t samples is correct), uniform ties
    lead: np.ndarray  # (reps, N+1): votes of the leading answer among the first t
    tokens: np.ndarray  # (reps, N+1): prompt + completion tokens of the first t
    flops: np.ndarray  # (reps, N+1): one prefill + decode FLOPs of the first t


class PoolReplay:
    """Every (model, question) pool of a samples table, replayed ``reps`` times.

    Parameters
    ----------
    samples : DataFrame
        A samples table (pool rows are used: strategy ``pool``, the largest pool per model).
    specs : mapping model -> :class:`~planner.costs.ModelSpec`
        For FLOPs (:func:`~planner.costs.price_samples`).
    reps : int
        Random orders per question.
    seed : int
        Seed of the orders (numpy Generator).
    """

    def __init__(self, samples: pd.DataFrame, specs: Mapping[str, object], *, reps: int = 48, seed: int = 0):
        df = samples[samples[S.STRATEGY] == "pool"]
        if df.empty:
            raise ValueError("adaptive policies need pool rows (strategy 'pool') in the samples table")
        self.reps = reps
        self.sims: dict[str, dict[str, _Sim]] = {}
        self.configs: dict[str, str] = {}
        rng = np.random.default_rng(seed)
        for model, g in df.groupby(S.MODEL, sort=True):
            if model not in specs:
                raise ValueError(f"no model spec for {model!r} (needed for FLOPs)")
            config = max(g[S.CONFIG].unique(), key=lambda c: (json.loads(c).get("n", 0), c))
            g = price_samples(g[g[S.CONFIG] == config], specs[model])
            self.configs[model] = config
            self.sims[model] = {
                str(q): self._replay(rows, rng) for q, rows in g.groupby(S.QUESTION_ID, sort=True)
            }
        self.questions = sorted(set.intersection(*(set(s) for s in self.sims.values())))
        if not self.questions:
            raise ValueError("no question has a pool for every model")
        self.difficulty = {q: next(iter(self.sims.values()))[q].difficulty for q in self.questions}
        self.pool_size = {m: min(s[q].acc.shape[1] - 1 for q in self.questions) for m, s in self.sims.items()}

    def _replay(self, rows: pd.DataFrame, rng: np.random.Generator) -> _Sim:
        answers = rows[S.ANSWER].astype(object).where(rows[S.ANSWER].notna(), None).tolist()
        correct = rows[S.CORRECT].to_numpy(bool)
        labels = sorted({a for a in answers if a is not None})
        codes = np.array([labels.index(a) if a is not None else -1 for a in answers])
        right = np.zeros(max(len(labels), 1), dtype=bool)
        for c, ok in zip(codes, correct, strict=True):
            if c >= 0 and ok:
                right[c] = True
        n = len(codes)
        perms = np.argsort(rng.random((self.reps, n)), axis=1)
        onehot = codes[perms][..., None] == np.arange(len(right))  # (R, N, A)
        cum = np.concatenate([np.zeros((self.reps, 1, len(right)), dtype=int), np.cumsum(onehot, 1)], axis=1)
        top = cum.max(-1)
        ties = (cum == top[..., None]) & (top[..., None] > 0)
        acc = (ties & right).sum(-1) / np.maximum(ties.sum(-1), 1)
        comp = rows[S.COMPLETION_TOKENS].to_numpy(float)[perms]
        dec = rows["decode_flops"].to_numpy(float)[perms]
        prompt = float(rows[S.PROMPT_TOKENS].astype(float).min())
        prefill = float(rows["prefill_flops"].astype(float).min())
        zero = np.zeros((self.reps, 1))
        tokens = prompt + np.concatenate([zero, np.cumsum(comp, 1)], axis=1)
        flops = prefill + np.concatenate([zero, np.cumsum(dec, 1)], axis=1)
        return _Sim(str(rows[S.DIFFICULTY].iloc[0]), acc, top, tokens, flops)

    # ---- policies, each returning per-question (accuracy, tokens, flops) means ----------------
    def fixed(self, questions, model: str, n: int) -> np.ndarray:
        """Majority of ``n`` samples of ``model``: array (questions, 3)."""
        s = self.sims[model]
        return np.array(
            [[s[q].acc[:, n].mean(), s[q].tokens[:, n].mean(), s[q].flops[:, n].mean()] for q in questions]
        )

    def early_stop(self, questions, model: str, votes: int, n_max: int) -> np.ndarray:
        """Stop once the leading answer has ``votes`` votes, at most ``n_max`` samples."""
        out = []
        for q in questions:
            s = self.sims[model][q]
            hit = s.lead[:, 1 : n_max + 1] >= votes
            stop = np.where(hit.any(1), hit.argmax(1) + 1, n_max)
            r = np.arange(self.reps)
            out.append([s.acc[r, stop].mean(), s.tokens[r, stop].mean(), s.flops[r, stop].mean()])
        return np.array(out)

    def _continue(self, q: str, probe: str, m: int, model: str, n: int) -> np.ndarray:
        """(reps, 3): accuracy, tokens, flops of probing then continuing with (model, n)."""
        p = self.sims[probe][q]
        if model == probe:
            t = max(n, m)
            return np.stack([p.acc[:, t], p.tokens[:, t], p.flops[:, t]], 1)
        o = self.sims[model][q]
        cont = np.array([o.acc[:, n].mean(), o.tokens[:, n].mean(), o.flops[:, n].mean()])
        probe_cost = np.stack([np.zeros(self.reps), p.tokens[:, m], p.flops[:, m]], 1)
        return probe_cost + cont

    def probe_tables(self, questions, probe: str, m: int, cost_key: str, options) -> tuple[dict, dict]:
        """Per agreement level: option table (accuracy, cost) and the level's frequency."""
        col = {"tokens": 1, "flops": 2}[cost_key]
        sums: dict[int, np.ndarray] = {}
        counts: dict[int, int] = {}
        for q in questions:
            level = self.sims[probe][q].lead[:, m]
            vals = np.stack([self._continue(q, probe, m, mo, n) for mo, n in options], 1)  # (R, O, 3)
            for lv in np.unique(level):
                sel = level == lv
                sums[int(lv)] = sums.get(int(lv), 0) + vals[sel].sum(0)
                counts[int(lv)] = counts.get(int(lv), 0) + int(sel.sum())
        total = sum(counts.values())
        tables, weights = {}, {}
        for lv in sorted(counts):
            mean = sums[lv] / counts[lv]
            tables[str(lv)] = pd.DataFrame(
                {
                    ARM: [f"{mo}|majority" for mo, _ in options],
                    KNOB_VALUE: [float(n) for _, n in options],
                    MODEL: [mo for mo, _ in options],
                    ACCURACY: mean[:, 0],
                    cost_key: mean[:, col],
                }
            )
            weights[str(lv)] = counts[lv] / total
        return tables, weights

    def probe_route(self, questions, probe: str, m: int, route: Mapping[int, tuple[str, int]]) -> np.ndarray:
        """Replay the probe policy with a level -> (model, n) route."""
        out = []
        for q in questions:
            level = self.sims[probe][q].lead[:, m]
            rows = np.zeros((self.reps, 3))
            for lv in np.unique(level):
                model, n = route.get(int(lv), route[max(route)])
                sel = level == lv
                rows[sel] = self._continue(q, probe, m, model, n)[sel]
            out.append(rows.mean(0))
        return np.array(out)

    def oracle_tables(self, questions, cost_key: str, options) -> tuple[dict, dict]:
        """Per true difficulty bin: the option table from the questions of that bin."""
        col = {"tokens": 1, "flops": 2}[cost_key]
        by_bin: dict[str, list[str]] = {}
        for q in questions:
            by_bin.setdefault(self.difficulty[q], []).append(q)
        tables, weights = {}, {}
        for b, qs in sorted(by_bin.items()):
            vals = np.stack([self.fixed(qs, mo, n).mean(0) for mo, n in options])
            tables[b] = pd.DataFrame(
                {
                    ARM: [f"{mo}|majority" for mo, _ in options],
                    KNOB_VALUE: [float(n) for _, n in options],
                    MODEL: [mo for mo, _ in options],
                    ACCURACY: vals[:, 0],
                    cost_key: vals[:, col],
                }
            )
            weights[b] = len(qs) / len(questions)
        return tables, weights


def _samples(n) -> str:
    return "1 sample" if n == 1 else f"{n} samples"


def describe_policy(choice: Mapping[str, object]) -> str:
    """A policy's ``choice`` (the structured form :func:`adaptive_policies` returns) in words.

    Examples
    --------
    >>> describe_policy({"strategy": "early_stop", "model": "lab-m", "knobs": {"stop_at_votes": 3, "n_max": 16}})
    'lab-m: sample one answer at a time, stop when one answer has 3 votes (at most 16 samples), answer by majority'
    """
    k = dict(choice.get("knobs") or {})
    model, strategy = choice.get("model"), choice.get("strategy")
    if strategy == "majority":
        n = k.get("n")
        return (
            f"{model}: {'one sample' if n == 1 else f'majority vote of {n} samples'}, whatever the question"
        )
    if strategy == "early_stop":
        return (
            f"{model}: sample one answer at a time, stop when one answer has {k.get('stop_at_votes')} votes "
            f"(at most {k.get('n_max')} samples), answer by majority"
        )
    if strategy == "probe":
        steps = []
        for votes, then in sorted((k.get("route") or {}).items(), key=lambda kv: int(kv[0])):
            if then == "stop":
                what = "answer now"
            elif then["model"] == model:
                what = f"continue to {_samples(then['n'])} of {model}"
            else:
                what = f"switch to {then['model']}, {_samples(then['n'])}"
            steps.append(f"{votes} vote{'' if str(votes) == '1' else 's'}: {what}")
        return (
            f"draw {k.get('probe_samples')} samples from {model}; the votes of their leading answer "
            f"estimate the difficulty: " + "; ".join(steps)
        )
    if strategy == "oracle_bins":
        plan = ", ".join(
            f"level {b} -> {v['model']} n={v['n']}" for b, v in (k.get("by_difficulty") or {}).items()
        )
        return f"the true difficulty is known: {plan}"
    return str(choice)


def _summ(name: str, params: str, train: np.ndarray, test: np.ndarray, cost_key: str, choice: dict) -> dict:
    col = {"tokens": 1, "flops": 2}[cost_key]
    se = test[:, 0].std(ddof=1) / np.sqrt(len(test)) if len(test) > 1 else np.nan
    return {
        "policy": name,
        "params": params,
        "choice": choice,
        "train_accuracy": float(train[:, 0].mean()),
        "train_cost": float(train[:, col].mean()),
        "test_accuracy": float(test[:, 0].mean()),
        "test_accuracy_se": float(se),
        "test_tokens": float(test[:, 1].mean()),
        "test_flops": float(test[:, 2].mean()),
    }


def adaptive_policies(
    replay: PoolReplay,
    budget: float,
    cost_key: str = "flops",
    *,
    seed: int = 0,
    probe_sizes: Sequence[int] = (2, 4),
    votes: Sequence[int] = (2, 3, 4, 5, 6, 8, 10, 12, 16),
    split: tuple[set[str], set[str]] | None = None,
) -> pd.DataFrame:
    """Choose each policy family's best configuration on training questions within the
    average ``budget`` (of ``cost_key``: ``flops`` or ``tokens``), replay it on test questions.

    Returns one row per family: ``fixed`` (best single model and n), ``early_stop``,
    ``probe`` and ``oracle_bins`` (true difficulty known), with train and test accuracy
    and test costs. Families with no configuration within budget are left out.
    """
    if cost_key not in ADAPTIVE_COST_KEYS:
        raise ValueError(f"adaptive policies take a budget on {ADAPTIVE_COST_KEYS}, got {cost_key!r}")
    col = {"tokens": 1, "flops": 2}[cost_key]
    train, test = split or split_questions(replay.questions, replay.difficulty, seed)
    train, test = sorted(train & set(replay.questions)), sorted(test & set(replay.questions))
    if len(train) < 2 or len(test) < 2:
        raise ValueError(
            f"adaptive policies need at least 4 questions with pools of every model (2 per half), got "
            f"{len(replay.questions)}"
        )
    options = [(m, n) for m, N in replay.pool_size.items() for n in range(1, N + 1)]
    rows = []

    best = None
    for m, n in options:
        tr = replay.fixed(train, m, n)
        if tr[:, col].mean() <= budget and (best is None or tr[:, 0].mean() > best[2][:, 0].mean()):
            best = (m, n, tr)
    if best:
        rows.append(
            _summ(
                "fixed",
                f"{best[0]} majority n={best[1]}",
                best[2],
                replay.fixed(test, best[0], best[1]),
                cost_key,
                {"model": best[0], "strategy": "majority", "knobs": {"n": int(best[1])}},
            )
        )

    best = None
    for m, N in replay.pool_size.items():
        for v in votes:
            tr = replay.early_stop(train, m, v, N)
            if tr[:, col].mean() <= budget and (best is None or tr[:, 0].mean() > best[3][:, 0].mean()):
                best = (m, v, N, tr)
    if best:
        m, v, N, tr = best
        rows.append(
            _summ(
                "early_stop",
                f"{m} stop at {v} votes, n_max={N}",
                tr,
                replay.early_stop(test, m, v, N),
                cost_key,
                {"model": m, "strategy": "early_stop", "knobs": {"stop_at_votes": int(v), "n_max": int(N)}},
            )
        )

    best = None
    for probe in replay.pool_size:
        for size in probe_sizes:
            if size > replay.pool_size[probe]:
                continue
            tables, weights = replay.probe_tables(train, probe, size, cost_key, options)
            try:
                alloc = allocate_exact(tables, weights, budget, cost_key)
            except InfeasibleBudget:
                continue
            route = {int(lv): (r[MODEL], int(r[KNOB_VALUE])) for lv, r in alloc.choice.items()}
            if best is None or alloc.accuracy > best[3]:
                best = (probe, size, route, alloc.accuracy)
    if best:
        probe, size, route, _ = best
        steps = [
            f"{lv} votes->" + ("stop" if mo == probe and n <= size else f"{mo} n={n}")
            for lv, (mo, n) in sorted(route.items())
        ]
        desc = f"probe {probe} x{size}; " + ", ".join(steps)
        tr = replay.probe_route(train, probe, size, route)
        knobs = {
            "probe_samples": int(size),
            "route": {
                str(lv): "stop" if mo == probe and n <= size else {"model": mo, "n": int(n)}
                for lv, (mo, n) in sorted(route.items())
            },
        }
        choice = {"model": probe, "strategy": "probe", "knobs": knobs}
        rows.append(_summ("probe", desc, tr, replay.probe_route(test, probe, size, route), cost_key, choice))

    tables, weights = replay.oracle_tables(train, cost_key, options)
    try:
        alloc = allocate_exact(tables, weights, budget, cost_key)
        plan = {b: (r[MODEL], int(r[KNOB_VALUE])) for b, r in alloc.choice.items()}
        by_bin = {q: plan.get(replay.difficulty[q]) for q in test}
        # test questions of a bin with no training question have no planned option: left out
        te = np.array([replay.fixed([q], *by_bin[q])[0] for q in test if by_bin[q]]).reshape(-1, 3)
        trn = np.array([replay.fixed([q], *plan[replay.difficulty[q]])[0] for q in train])
        desc = ", ".join(f"bin {b}->{mo} n={n}" for b, (mo, n) in sorted(plan.items()))
        if len(te):
            knobs = {
                "by_difficulty": {str(b): {"model": mo, "n": int(n)} for b, (mo, n) in sorted(plan.items())}
            }
            rows.append(
                _summ(
                    "oracle_bins",
                    desc,
                    trn,
                    te,
                    cost_key,
                    {"model": None, "strategy": "oracle_bins", "knobs": knobs},
                )
            )
    except InfeasibleBudget:
        pass
    out = pd.DataFrame(rows)
    if len(out):
        out["within_budget_test"] = out[f"test_{cost_key}"] <= budget * 1.05
    return out
