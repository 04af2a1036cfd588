"""Exact all-k majority@k and best-of-k versus Monte Carlo resampling, measured in one run.

Synthetic pools (seeded): Q questions x n samples. Each question has 2-8 distinct answers
(one correct) with Dirichlet(0.6) frequencies, an abstention rate U(0, 0.15) (no answer
extracted) and a garbage rate U(0, 0.1) of one-off answers (each a distinct string, as
real wrong answers often are). Each sample's score is N(0.8 * correct, 1) rounded to 0.01,
so scores are correlated with correctness and ties occur.

* **exact**: :func:`fitting.majority_curve` and :func:`fitting.best_of_curve` for every
  question and every k = 1..n.
* **Monte Carlo, per k** (the baseline of the target): for each question and k, D = 1,000
  uniformly random k-subsets (``argpartition`` of uniform keys, vectorized over draws);
  majority by ``bincount`` of the labels, ties and best-of ties counted by their exact
  expectation (1 / number tied), the same subsets serving both estimators. Its full cost
  (Q x n x D subsets) is too heavy for 2 cores, so it is TIMED on a subsample of questions
  and of evenly spaced k values and SCALED to all (Q, k) pairs; the printout says so.
* **Monte Carlo, prefix** (a stronger baseline): one random permutation per draw, whose
  first k samples are a uniform k-subset for every k at once (cumulative vote counts).

Errors are Monte Carlo minus exact, in accuracy units, over the timed (question, k) pairs.
Run::

    python benchmarks/estimators.py                      # 500 questions x 256 samples
    python benchmarks/estimators.py --questions 100 --n 64
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fitting import best_of_curve, majority_curve  # noqa: E402


def synthetic_pools(n_questions: int, n: int, seed: int) -> list[dict]:
    """Per question: answers (None = abstain), the correct answer, scores and correctness."""
    rng = np.random.default_rng(seed)
    pools = []
    for q in range(n_questions):
        n_answers = int(rng.integers(2, 9))
        freq = rng.dirichlet(np.full(n_answers, 0.6))
        abstain, garbage = rng.uniform(0, 0.15), rng.uniform(0, 0.10)
        kind = rng.choice(3, size=n, p=[1 - abstain - garbage, abstain, garbage])
        pick = rng.choice(n_answers, size=n, p=freq)
        answers = [
            f"q{q}-a{pick[i]}" if kind[i] == 0 else None if kind[i] == 1 else f"q{q}-junk{i}"
            for i in range(n)
        ]
        correct_answer = f"q{q}-a0"
        correct = np.array([a == correct_answer for a in answers])
        scores = np.round(rng.normal(0.8 * correct, 1.0), 2)
        pools.append({"answers": answers, "ref": correct_answer, "scores": scores, "correct": correct})
    return pools


def encode(pool: dict) -> tuple[np.ndarray, int, int]:
    """Integer labels (abstain = A), number of answers A, the correct label (-1 if absent)."""
    codes: dict[str, int] = {}
    for a in pool["answers"]:
        if a is not None:
            codes.setdefault(a, len(codes))
    labels = np.array([codes[a] if a is not None else len(codes) for a in pool["answers"]])
    return labels, len(codes), codes.get(pool["ref"], -1)


def mc_per_k(pool, labels, n_labels, target, k, draws, rng) -> tuple[float, float]:
    """Majority@k and best-of-k from ``draws`` independent random k-subsets (shared by both)."""
    n = len(labels)
    idx = np.argpartition(rng.random((draws, n)), k - 1, axis=1)[:, :k]
    lab = labels[idx]
    counts = np.bincount(
        (lab + (n_labels + 1) * np.arange(draws)[:, None]).ravel(), minlength=draws * (n_labels + 1)
    )
    counts = counts.reshape(draws, n_labels + 1)[:, :n_labels]
    top = counts.max(axis=1, keepdims=True)
    tied = (counts == top) & (top > 0)
    maj = tied[:, target] / np.maximum(tied.sum(axis=1), 1) if target >= 0 else np.zeros(draws)
    s = pool["scores"][idx]
    at_top = s == s.max(axis=1, keepdims=True)
    best = (at_top & pool["correct"][idx]).sum(axis=1) / at_top.sum(axis=1)
    return float(maj.mean()), float(best.mean())


def mc_prefix(pool, labels, n_labels, target, draws, rng) -> tuple[np.ndarray, np.ndarray]:
    """Majority@k and best-of-k for every k from ``draws`` random permutations (prefixes)."""
    n = len(labels)
    perm = np.argsort(rng.random((draws, n)), axis=1)
    onehot = np.zeros((n, n_labels))
    answered = labels < n_labels
    onehot[np.flatnonzero(answered), labels[answered]] = 1.0
    counts = np.cumsum(onehot[perm], axis=1)  # (draws, n, A): votes among the first k
    top = counts.max(axis=2, keepdims=True)
    tied = (counts == top) & (top > 0)
    maj = tied[..., target] / np.maximum(tied.sum(axis=2), 1) if target >= 0 else np.zeros((draws, n))
    s = pool["scores"][perm]
    corr = pool["correct"][perm]
    # best-of ties, incrementally along each permutation: samples at the running maximum
    # and how many of them are correct
    best = np.empty((draws, n))
    at_top = np.zeros(draws)
    right = np.zeros(draws)
    top_s = np.full(draws, -np.inf)
    for k in range(n):
        v, c = s[:, k], corr[:, k]
        new_top, same = v > top_s, v == top_s
        at_top = np.where(new_top, 1.0, at_top + same)
        right = np.where(new_top, c, right + (same & c))
        top_s = np.maximum(top_s, v)
        best[:, k] = right / at_top
    return maj.mean(axis=0), best.mean(axis=0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--n", type=int, default=256, help="samples per question (the pool size)")
    ap.add_argument("--draws", type=int, default=1000, help="Monte Carlo draws per k")
    ap.add_argument("--mc-questions", type=int, default=50, help="questions the Monte Carlo is timed on")
    ap.add_argument("--mc-ks", type=int, default=16, help="evenly spaced k values the per-k MC is timed on")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n, n_q, draws = args.n, args.questions, args.draws
    pools = synthetic_pools(n_q, n, args.seed)
    ks_all = np.arange(1, n + 1)

    t0 = time.perf_counter()
    maj_exact = majority_curve([(p["answers"], p["ref"]) for p in pools])
    t_maj = time.perf_counter() - t0
    t0 = time.perf_counter()
    best_exact = best_of_curve([(p["scores"], p["correct"]) for p in pools])
    t_best = time.perf_counter() - t0
    t_exact = t_maj + t_best

    rng = np.random.default_rng(args.seed + 1)
    mc_q = rng.choice(n_q, size=min(args.mc_questions, n_q), replace=False)
    mc_ks = np.unique(np.linspace(1, n, min(args.mc_ks, n)).round().astype(int))
    encoded = {int(q): encode(pools[q]) for q in mc_q}
    errs_maj, errs_best = [], []
    t0 = time.perf_counter()
    for q in mc_q:
        labels, n_labels, target = encoded[int(q)]
        for k in mc_ks:
            m, b = mc_per_k(pools[q], labels, n_labels, target, int(k), draws, rng)
            errs_maj.append(m - maj_exact[q, k - 1])
            errs_best.append(b - best_exact[q, k - 1])
    t_mc_sub = time.perf_counter() - t0
    scale_k = len(ks_all) / len(mc_ks)
    scale_q = n_q / len(mc_q)
    t_mc = t_mc_sub * scale_k * scale_q

    t0 = time.perf_counter()
    prefix_err_maj, prefix_err_best = [], []
    for q in mc_q:
        labels, n_labels, target = encoded[int(q)]
        m, b = mc_prefix(pools[q], labels, n_labels, target, draws, rng)
        prefix_err_maj.append(np.abs(m - maj_exact[q]).max())
        prefix_err_best.append(np.abs(b - best_exact[q]).max())
    t_prefix = (time.perf_counter() - t0) * scale_q

    errs_maj, errs_best = np.abs(errs_maj), np.abs(errs_best)
    print(f"Pools: {n_q} questions x {n} samples (seed {args.seed}); every k = 1..{n}")
    print(f"exact majority@k, all questions and k:   {t_maj:8.2f} s (measured)")
    print(f"exact best-of-k, all questions and k:    {t_best:8.2f} s (measured)")
    print(f"exact total:                             {t_exact:8.2f} s")
    print(
        f"Monte Carlo per k ({draws} draws per k, majority + best-of on the same subsets): "
        f"{t_mc_sub:.2f} s measured on {len(mc_q)} questions x {len(mc_ks)} k values, scaled x{scale_q * scale_k:.0f} "
        f"to {n_q} x {n}: {t_mc:.1f} s (ESTIMATED by scaling)"
    )
    print(
        f"Monte Carlo prefix ({draws} permutations per question serve every k): "
        f"{t_prefix / scale_q:.2f} s measured on {len(mc_q)} questions, scaled x{scale_q:.0f}: {t_prefix:.1f} s"
    )
    print(f"speed-up exact vs per-k MC:  {t_mc / t_exact:8.1f}x   (target >= 50x)")
    print(f"speed-up exact vs prefix MC: {t_prefix / t_exact:8.1f}x")
    print(
        f"per-k MC error vs exact over {len(errs_maj)} (question, k) pairs: "
        f"majority max {errs_maj.max():.4f} mean {errs_maj.mean():.4f}; "
        f"best-of max {errs_best.max():.4f} mean {errs_best.mean():.4f}"
    )
    print(
        f"prefix MC max error vs exact over all k of {len(mc_q)} questions: "
        f"majority {max(prefix_err_maj):.4f}; best-of {max(prefix_err_best):.4f}"
    )
    print(f"(a Monte Carlo mean of {draws} draws has standard error <= {0.5 / np.sqrt(draws):.4f})")


if __name__ == "__main__":
    main()
