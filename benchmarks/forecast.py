"""Forecasting pass@n 100x beyond the data, on real repeated-sampling counts (Pythia, GSM8K).

Data: ``shared/data/real/monkeys_gsm8k_pythia_counts.csv`` (Schaeffer et al. 2025, "How Do
Large Language Monkeys Get Their Power (Laws)?": per-question correct counts of the Pythia
suite on 128 GSM8K problems; see that folder's README).

Which checkpoints. The final ``300B`` checkpoints of the larger sizes have only 128-640
samples per question, so a ~1% subsample would leave 1-6 samples per question. For each
Pythia size this script therefore takes the LATEST checkpoint whose every question has at
least ``--min-pool`` (1,000) samples: the final checkpoint for 14M and 70M, earlier ones
for the others (printed in the table). ``--all`` scores every checkpoint with such pools
instead (55 of 81), so that no choice of checkpoints flatters a method.

What is measured. Each question's pool of n_i samples (c_i correct) is subsampled to
m_i = round(n_i / ``--fraction``) samples, seeded, without replacement (hypergeometric
c_i' of m_i). From the subsample alone every method forecasts pass@n_i, which is compared
with the pass@n_i MEASURED on the whole pool (the fraction of questions with c_i > 0).
Errors are in accuracy points (0.01 = 1 point). Methods, side by side:

* the aggregate laws (power law, exponential decay, exp-power of Brown et al. 2024,
  logistic), each fitted to the subsample's unbiased pass@k curve (k = 1..min m_i) with
  inverse-variance question weights, predicting at each n_i (averaged over questions);
* ``select``: the law :func:`fitting.fit_curve` selects (far-end scoring over three
  low-end cuts), and ``select_old``: the same with the old top-25% holdout
  (``cuts=None``), which picked logistic on real data;
* ``betabinom``: :class:`fitting.BetaBinomial`, maximum likelihood (a, b), population
  forecast 1 - B(a, b + n) / B(a, b);
* ``posterior``: :class:`fitting.coverage.BetaBinomialPosterior` (what ``ttc forecast``
  uses by default): per-question posterior chances, (a, b) integrated over their posterior;
* ``gmodel``, ``gmodel_beta``, ``logitnormal``: :mod:`fitting.population` (Efron's
  g-modeling with a flat or a beta carrier, the logit-normal population);
* ``posterior_pooled``: the posterior with one tail exponent ``a`` shared with the OTHER
  checkpoints' subsamples of the same seed (``ttc forecast --method pooled``);
the per-question methods' 90% intervals are checked against the measurement.

What is achievable. ``floor`` is the expected |error| of an oracle that knows every
question's rate p_i = c_i / n_i (the whole pool's): given the subsample, the questions it
left unsolved are solved by their other n_i - m_i samples independently, and the Bernoulli
noise of which ones are is the floor no forecaster beats. The population oracles know the
population as seen in the WHOLE pools but each question only through its subsample:
``oracle_g`` (a g-model), ``oracle_beta`` (the ML beta), ``oracle_logitnormal``; their
errors separate the family's misfit from the estimation of the population from 1%.
``--synthetic REPS`` checks accuracy and interval coverage on known populations.

Run (``--data`` when no folder above the checkout holds ``shared/``)::

    python benchmarks/forecast.py                  # 9 sizes x 5 seeds, every method (~5-10 min)
    python benchmarks/forecast.py --all --seeds 2  # every checkpoint with pools >= 1,000
    python benchmarks/forecast.py --methods posterior posterior_pooled oracle_beta --synthetic 40
    python benchmarks/forecast.py --fit-time       # also time `ttc fit` (fit_counts) on the whole file
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import betaln

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fitting import LAWS, BetaBinomial, ConvergenceWarning, fit_curve, pass_at_k  # noqa: E402
from fitting.coverage import BetaBinomialPosterior, shared_tail_prior, tail_evidence  # noqa: E402
from fitting.population import GModel, LogitNormal  # noqa: E402
from fitting.uncertainty import question_weights  # noqa: E402

# the shared data folder beside the repository or beside a folder above it (a worktree); --data overrides
_REAL = Path("shared") / "data" / "real" / "monkeys_gsm8k_pythia_counts.csv"
DATA = next(
    (p / _REAL for p in Path(__file__).resolve().parents[1:] if (p / _REAL).is_file()),
    Path(__file__).resolve().parents[1].parent / _REAL,
)
CHECKPOINTS = ["2M", "64M", "512M", "2B", "6B", "20B", "60B", "200B", "300B"]
SIZES = ["14M", "70M", "160M", "410M", "1B", "1.4B", "2.8B", "6.9B", "12B"]
LAW_METHODS = [*LAWS, "select", "select_old"]
#: the per-question (population) forecasters: each fits the subsample's counts and forecasts with an interval
POPULATION = {
    "posterior": BetaBinomialPosterior,
    "gmodel": GModel,
    "gmodel_beta": lambda: GModel(carrier="beta"),
    "logitnormal": LogitNormal,
}
#: references that know the population as seen in the WHOLE pools (not estimable from the subsample)
ORACLES = ["oracle_g", "oracle_beta", "oracle_logitnormal"]
METHODS = [*LAW_METHODS, "betabinom", *POPULATION, "posterior_pooled", *ORACLES]


def choose(df: pd.DataFrame, min_pool: int, every: bool) -> list[str]:
    """The latest checkpoint per size with every pool >= min_pool (or all such checkpoints)."""
    info = df.groupby("model").agg(
        size=("size", "first"),
        tokens=("pretrain_tokens", "first"),
        n_min=("n_samples", "min"),
        solved=("n_correct", "sum"),
    )
    ok = info[(info["n_min"] >= min_pool) & (info["solved"] > 0)]
    if every:
        return sorted(
            ok.index, key=lambda m: (SIZES.index(ok.loc[m, "size"]), CHECKPOINTS.index(ok.loc[m, "tokens"]))
        )
    out = []
    for size in SIZES:
        rows = ok[ok["size"] == size]
        if len(rows):
            out.append(max(rows.index, key=lambda m: CHECKPOINTS.index(rows.loc[m, "tokens"])))
    return out


def floor_sd(n: np.ndarray, c: np.ndarray, m: np.ndarray, sub: np.ndarray) -> float:
    """SD of the measured pass@n around what an oracle knowing every p_i = c_i / n_i expects,
    given the subsample: a question solved in the subsample is solved; another is solved by its
    other n_i - m_i samples with chance q_i = 1 - (1 - p_i)^(n_i - m_i), independently."""
    q = np.where(sub > 0, 1.0, -np.expm1((n - m) * np.log1p(-c / n)))
    return float(np.sqrt(np.sum(q * (1.0 - q))) / len(n))


def _laws(out, m, sub, n, measured):
    ks = np.arange(1, int(m.min()) + 1)
    if len(ks) < 4:
        return
    per_q = pass_at_k(m, sub, ks)
    curve = per_q.mean(axis=0)
    w = question_weights(per_q)
    for name, cls in LAWS.items():
        out[name] = float(np.mean(cls().fit(ks, curve, w).predict(n.astype(float)))) - measured
    law, _ = fit_curve(ks, curve, sample_weight=w)
    out["select"] = float(np.mean(law.predict(n.astype(float)))) - measured
    out["select:law"] = law.name
    old, _ = fit_curve(ks, curve, sample_weight=w, cuts=None)
    out["select_old"] = float(np.mean(old.predict(n.astype(float)))) - measured


def subsample(n, c, fraction, rng) -> tuple[np.ndarray, np.ndarray]:
    """Each pool subsampled to round(n_i / fraction) samples without replacement: (m, c')."""
    m = np.maximum(1, np.round(n / fraction)).astype(np.int64)
    return m, rng.hypergeometric(c, n - c, m)


def score(n, c, m, sub, methods, oracles=None, tail_prior=None) -> dict:
    """Signed errors (forecast - measured) of every method from one seeded subsample (m, sub);
    for the per-question methods also whether their 90% interval held the measurement."""
    measured = float(np.mean(c > 0))
    sd = floor_sd(n, c, m, sub)
    out = {
        "measured": measured,
        "m": int(m.min()),
        "solved_sub": int(np.count_nonzero(sub)),
        "floor": sd * np.sqrt(2.0 / np.pi),
        "floor_sd": sd,
    }
    if sub.sum() == 0:  # no correct sample in the subsample: no method can say anything
        return out | {name: np.nan for name in methods}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if any(name in methods for name in LAW_METHODS):
            _laws(out, m, sub, n, measured)
        if "betabinom" in methods:
            bb = BetaBinomial().fit(m, sub)
            out["betabinom"] = float(np.mean(bb.predict(n.astype(float)))) - measured
        for name, make in POPULATION.items():
            if name in methods:
                f = make().fit(m, sub).forecast(n)
                out |= {
                    name: f.estimate - measured,
                    f"{name}:in": f.lo <= measured <= f.hi,
                    f"{name}:width": f.hi - f.lo,
                }
        if tail_prior is not None and "posterior_pooled" in methods:
            f = BetaBinomialPosterior(log_a_prior=tail_prior).fit(m, sub).forecast(n)
            out |= {
                "posterior_pooled": f.estimate - measured,
                "posterior_pooled:in": f.lo <= measured <= f.hi,
                "posterior_pooled:width": f.hi - f.lo,
            }
        if oracles is not None and "oracle_beta" in methods:  # the beta fitted to the whole pools
            a, b = oracles["oracle_beta"]
            q = -np.expm1(betaln(a + sub, b + m - sub + n) - betaln(a + sub, b + m - sub))
            out["oracle_beta"] = float(np.mean(q)) - measured
        if oracles is not None and "oracle_logitnormal" in methods:
            f = oracles["oracle_logitnormal"].with_counts(m, sub).forecast(n)
            out["oracle_logitnormal"] = f.estimate - measured
        if oracles is not None and "oracle_g" in methods:
            oracle = oracles["oracle_g"]
            f = oracle.with_counts(m, sub).forecast(n)
            # how much better than the true-ish population does the best flexible fit explain the subsample?
            out["ll_gap"] = GModel(c0=0.1).fit(m, sub).loglik(m, sub) - oracle.loglik(m, sub)
            out |= {
                "oracle_g": f.estimate - measured,
                "oracle_g:in": f.lo <= measured <= f.hi,
                "oracle_g:width": f.hi - f.lo,
            }
    return out


def run(models: list[str], df: pd.DataFrame, fraction: float, seeds: int, methods: list[str]) -> pd.DataFrame:
    pools = {}
    for i, model in enumerate(models):
        d = df[df["model"] == model]
        n, c = d["n_samples"].to_numpy(np.int64), d["n_correct"].to_numpy(np.int64)
        pools[model] = (
            n,
            c,
            [subsample(n, c, fraction, np.random.default_rng([seed, i])) for seed in range(seeds)],
        )
    evidence = {}  # what each subsample says about the tail exponent, for posterior_pooled
    if "posterior_pooled" in methods:
        evidence = {(model, s): tail_evidence(*pools[model][2][s]) for model in models for s in range(seeds)}
    rows = []
    for model in models:
        n, c, subs = pools[model]
        oracles = {}  # the population as each model sees it in the WHOLE pools
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if "oracle_g" in methods:
                oracles["oracle_g"] = GModel(df=8, c0=0.1).fit(n, c)
            if "oracle_beta" in methods:
                bb = BetaBinomial().fit(n, c).params_
                oracles["oracle_beta"] = (bb["a"], bb["b"])
            if "oracle_logitnormal" in methods:
                oracles["oracle_logitnormal"] = LogitNormal().fit(n, c)
        for seed, (m, sub) in enumerate(subs):
            prior = None
            if evidence:  # the tail shared with the OTHER checkpoints' subsamples of the same seed
                prior = shared_tail_prior([evidence[other, seed] for other in models if other != model])
            res = score(n, c, m, sub, methods, oracles, prior)
            rows.append({"model": model, "seed": seed, "n": int(n.min()), "n_max": int(n.max()), **res})
    return pd.DataFrame(rows)


def print_tables(res: pd.DataFrame, fraction: float, methods: list[str]) -> None:
    res = res.copy()
    cols = ["floor", *methods]
    width = {k: max(9, len(k) + 2) for k in cols}

    def row(label: str, values: dict) -> str:  # one line: a label, then each column right-aligned
        return f"{label:<45}" + "".join(
            f"{'':>{width[k]}}" if k not in values else f"{values[k]:>{width[k]}.1f}" for k in cols
        )

    head = f"{'model':<18}{'n':>7}{'m':>5}{'solved':>7}{'pass@n':>8}" + "".join(
        f"{k:>{width[k]}}" for k in cols
    )
    print(f"\nMean |forecast - measured| over seeds, accuracy points (1/{fraction:g} subsample -> pass@n)")
    print(head)
    print("-" * len(head))
    for model, g in res.groupby("model", sort=False):
        pool = f"{g['n'].iloc[0]}" if g["n"].iloc[0] == g["n_max"].iloc[0] else f"{g['n'].iloc[0]}+"
        label = f"{model:<18}{pool:>7}{g['m'].iloc[0]:>5}{g['solved_sub'].mean():>7.1f}{g['measured'].iloc[0]:>8.3f}"
        print(row(label, {k: 100 * g[k].abs().mean() for k in cols}))
    print("-" * len(head))
    print(row("mean |error|", {k: 100 * res[k].abs().mean() for k in cols}))
    print(row("max |error|", {k: 100 * res[k].abs().max() for k in cols}))
    print(row("mean error (bias)", {k: 100 * res[k].mean() for k in methods}))
    print(row("mean |error| / floor", {k: res[k].abs().mean() / res["floor"].mean() for k in methods}))
    if "ll_gap" in res:
        gaps = res.groupby("model", sort=False)["ll_gap"].mean()
        print("log-lik gap, flexible fit - oracle g, per model: " + " ".join(f"{v:.1f}" for v in gaps))
    interval = [k for k in methods if f"{k}:in" in res]
    if interval:
        print(
            "\n90% intervals: forecasts whose interval held the measured pass@n; models missed per seed; width"
        )
        for k in interval:
            done = res[res[f"{k}:in"].notna()]
            inside = done[f"{k}:in"].astype(bool)
            missed = done[~inside].groupby("seed")["model"].nunique().reindex(sorted(res["seed"].unique()))
            print(
                f"  {k:<20}{int(inside.sum()):>4} of {len(done):<4} missed per seed "
                f"{missed.fillna(0).astype(int).tolist()}, mean width {100 * done[f'{k}:width'].mean():.1f} points"
            )
    if "select:law" in res:
        print(f"fit_curve (far-end scoring) picked: {res['select:law'].value_counts().to_dict()}")
    print(
        "n: pool per question ('+': uneven, the smallest shown); m: subsample per question; solved: questions"
    )
    print("with a correct sample in the subsample (mean over seeds); pass@n: measured on the whole pool;")
    print("floor: E|error| of an oracle that knows every p_i = c_i/n_i (Bernoulli noise of the questions the")
    print(
        "subsample left unsolved); oracle_g: the g-model fitted to the WHOLE pools, given only the subsample's"
    )
    print(
        "counts; log-lik gap: the subsample's log-likelihood under a flexible g-model fitted to it minus under"
    )
    print(
        "the oracle's g, per model (a gap of a few units: the subsample cannot tell the two populations apart)"
    )


#: synthetic populations of per-question rates (name -> draw of N rates), for --synthetic
SYNTHETIC = {
    "beta(0.3, 4)": lambda rng, size: rng.beta(0.3, 4.0, size),
    "logit-normal(-6, 2)": lambda rng, size: 1.0 / (1.0 + np.exp(-rng.normal(-6.0, 2.0, size))),
    "0.8 beta(0.5, 5) + 0.2 never": lambda rng, size: np.where(
        rng.random(size) < 0.2, 0.0, rng.beta(0.5, 5.0, size)
    ),
}


def synthetic(reps: int, methods: list[str], fraction: float, pool: int = 10_000, size: int = 128) -> None:
    """Calibration where the truth is known: draw 128 rates from a known population, a full pool
    of ``pool`` samples per question, subsample as on the real data, forecast pass@pool."""
    names = [k for k in methods if k in POPULATION]
    print(
        f"\nSynthetic populations: {size} questions x {pool} samples, 1/{fraction:g} subsample, {reps} draws each"
    )
    print(f"{'population':<32}{'floor':>7}" + "".join(f"{k:>22}" for k in names))
    print(f"{'':<39}" + "".join(f"{'|err| bias  in 90%':>22}" for _ in names))
    for label, draw in SYNTHETIC.items():
        rows = []
        for r in range(reps):
            rng = np.random.default_rng([r, 99])
            p = draw(rng, size)
            n = np.full(size, pool)
            c = rng.binomial(n, p)
            m, sub = subsample(n, c, fraction, rng)
            row = {"floor": np.sqrt(2 / np.pi) * floor_sd(n, c, m, sub)}
            measured = float(np.mean(c > 0))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                for k in names:
                    f = POPULATION[k]().fit(m, sub).forecast(n) if sub.sum() else None
                    row[k] = np.nan if f is None else f.estimate - measured
                    row[f"{k}:in"] = np.nan if f is None else float(f.lo <= measured <= f.hi)
            rows.append(row)
        t = pd.DataFrame(rows)
        cells = "".join(
            f"{100 * t[k].abs().mean():>9.1f}{100 * t[k].mean():>6.1f}{int(t[f'{k}:in'].sum()):>4}/{t[k].notna().sum():<3}"
            for k in names
        )
        print(f"{label:<32}{100 * t['floor'].mean():>7.1f}{cells}")


def fit_time(path: Path) -> None:
    from fitting.importer import read_records
    from fitting.pipeline import fit_counts

    start = time.perf_counter()
    counts = read_records(path).counts
    read_s = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fit_counts(counts, n_boot=200)
    total = time.perf_counter() - start
    print(
        f"\nttc fit on the whole file ({len(counts)} rows, {counts['model'].nunique()} models, pools up to "
        f"{int(counts['n_samples'].max())}): read {read_s:.1f} s, total {total:.1f} s, {len(out.fits)} fits, "
        f"{sum(f['converged'] for f in out.fits)} converged"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the counts CSV")
    ap.add_argument("--fraction", type=float, default=100.0, help="subsample 1/FRACTION of each pool")
    ap.add_argument("--min-pool", type=int, default=1000, help="checkpoints whose pools all have this many")
    ap.add_argument("--seeds", type=int, default=5, help="subsamples per checkpoint")
    ap.add_argument("--all", action="store_true", help="every checkpoint with such pools, not one per size")
    ap.add_argument("--fit-time", action="store_true", help="also time fit_counts on the whole file")
    ap.add_argument(
        "--methods",
        nargs="+",
        default=METHODS,
        choices=METHODS,
        metavar="METHOD",
        help=f"methods to score (default all: {' '.join(METHODS)})",
    )
    ap.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="REPS",
        help="also check calibration on known synthetic populations (REPS draws each)",
    )
    args = ap.parse_args(argv)
    if args.synthetic:
        synthetic(args.synthetic, args.methods, args.fraction)
    df = pd.read_csv(args.data)
    models = choose(df, args.min_pool, args.all)
    start = time.perf_counter()
    res = run(models, df, args.fraction, args.seeds, args.methods)
    print_tables(res, args.fraction, args.methods)
    print(f"\n{len(res)} subsamples scored in {time.perf_counter() - start:.1f} s")
    if args.fit_time:
        fit_time(args.data)


if __name__ == "__main__":
    main()
