"""Write the exploration notebooks (``python notebooks/_build.py``), without outputs.

The notebooks are plain nbformat JSON kept in git without outputs; this script is their
source of truth, so that a change is reviewed as Python rather than as JSON. The tests
(``tests/test_notebooks.py``) execute every notebook end to end.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from common.atomic import atomic_write

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str):
    return new_code_cell(text.strip())


# ---------------------------------------------------------------------------------------------------
NB01 = [
    md("""
# 1 · Profile the lab, then fit scaling curves

This notebook walks the first two stages of ttc-planner on the built-in lab (a synthetic
multi-step arithmetic task, `lab-arith`, and tiny trained models):

1. **profile**: run each model with each strategy on a few questions per difficulty level and
   record every sample (answer, verdict, tokens, latency, KV bytes) — all **measured**;
2. **estimate**: turn one pool of samples per question into accuracy curves for *every* k
   (pass@k, majority@k, best-of-k) with exact estimators — **measured** accuracies, no
   re-sampling per k;
3. **fit**: fit scaling laws to those curves — **predicted** values, with a named law and a
   bootstrap band.

Settings are tiny (4 questions per level, pools of 8) so that it runs in seconds on a laptop
CPU; the numbers are therefore noisy. `ttc demo` and `ttc profile --per-level 20` run the
same thing at a useful size.
"""),
    code("""
import itertools
import os
import tempfile

# torch's OpenMP threads spin while idle, which slows everything down when other processes share
# the CPU cores; `ttc profile` sets this too. It must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import altair as alt
import numpy as np
import pandas as pd

import fitting
from fitting import schema as S
from fitting.curves import curves_from_samples
from fitting.pipeline import fit_samples
from profiling.runner import profile
"""),
    md("""
## Profile

Two lab models — `lab-s` (dense) and `lab-moe` (mixture of experts) — each with `greedy`
decoding and a pool of 8 samples at temperature 1.0, on the first 4 eval questions of each of
the 5 difficulty levels. The output folder holds Parquet shards plus `run.json` (the models'
configs, seeds, versions); rerunning the same call resumes instead of recomputing.
"""),
    code("""
out_dir = tempfile.mkdtemp(prefix="ttc-nb01-")
result = profile(
    ["lab-s", "lab-moe"], "lab-arith", ["greedy", "pool:n=8,temperature=1.0"], out_dir, per_level=4
)
print(f"{result.rows_written} rows in {result.elapsed_s:.1f} s (measured wall time) -> {out_dir}")
"""),
    md("""
Each row is one sample. Everything here is **measured** by the profiler: the extracted answer
and its verdict, token counts, wall time and the KV-cache bytes held at the peak (`kv_source`
says how they were measured). `flops` is empty for profiled rows: the planner derives FLOPs
from the tokens and the model's architecture later.
"""),
    code("""
samples = fitting.read_samples(out_dir)
cols = [S.MODEL, S.STRATEGY, S.QUESTION_ID, S.DIFFICULTY, S.SAMPLE_IDX, S.ANSWER, S.REFERENCE,
        S.CORRECT, S.COMPLETION_TOKENS, S.LATENCY_S, S.KV_BYTES_PEAK, S.KV_SOURCE]
samples[cols].head(10)
"""),
    code("""
# measured greedy accuracy per model and level
greedy = samples[samples[S.STRATEGY] == "greedy"]
greedy.pivot_table(index=S.MODEL, columns=S.DIFFICULTY, values=S.CORRECT, aggfunc="mean").round(2)
"""),
    md("""
## Curves: every k from one pool

`curves_from_samples` computes, per (model, strategy, config, difficulty), the accuracy at every
k = 1..8 from the single pool of 8 samples per question, with a question-bootstrap interval
(50 replicates here). Accuracies are **measured** (exact expectations over random k-subsets of
the measured pool); mean tokens, latency and KV bytes are **measured** means.
"""),
    code("""
curves = curves_from_samples(samples, n_boot=50)
curves[[S.MODEL, S.STRATEGY, S.DIFFICULTY, S.METRIC, S.K, S.ACCURACY, S.ACCURACY_LO, S.ACCURACY_HI,
        S.N_QUESTIONS, S.MEAN_TOKENS]].head(12)
"""),
    md("""
### The estimators on one question's pool

The curves are averages of per-question estimators, which are public functions. Take the
lab-s question whose pool is most split between right and wrong answers:

* `pass_at_k(n, c, k)`: P(at least one of k random samples is correct) — unbiased (Chen et al. 2021);
* `majority_at_k(answers, reference, k)`: exact P(majority vote of k random samples is right),
  ties broken uniformly, unparsed answers abstaining;
* `best_of_k(scores, correct, k)`: exact P(the highest-scored of k random samples is right),
  scored here by the sample's mean token log-probability.

The last cell checks `majority_at_k` against brute force over all k-subsets of the pool.
"""),
    code("""
pool = samples[(samples[S.STRATEGY] == "pool") & (samples[S.MODEL] == "lab-s")]
split = pool.groupby(S.QUESTION_ID)[S.CORRECT].agg(lambda c: c.mean() * (1 - c.mean()))
qid = split.idxmax()
q = pool[pool[S.QUESTION_ID] == qid].sort_values(S.SAMPLE_IDX)
answers = [None if pd.isna(a) else a for a in q[S.ANSWER]]
reference = q[S.REFERENCE].iloc[0]
correct = q[S.CORRECT].to_numpy(bool)
n, c = len(q), int(correct.sum())
ks = np.arange(1, n + 1)
print(f"question {qid} (level {q[S.DIFFICULTY].iloc[0]}), reference {reference!r}")
print(f"pool of {n}: answers {answers}, {c} correct")
estimates = pd.DataFrame({
    S.K: ks,
    "pass@k": fitting.pass_at_k(n, c, ks),
    "majority@k": fitting.majority_at_k(answers, reference, ks),
    "best_of@k (logprob)": fitting.best_of_k(q[S.LOGPROB].to_numpy(float), correct, ks),
})
estimates.round(4)
"""),
    code("""
def majority_brute_force(answers, reference, k):
    \"\"\"Mean over every k-subset of the pool: 1/(number of tied leaders) if the reference leads.\"\"\"
    total, subsets = 0.0, 0
    for subset in itertools.combinations(answers, k):
        votes = pd.Series([a for a in subset if a is not None]).value_counts()
        leaders = votes[votes == votes.max()].index if len(votes) else []
        total += (1.0 / len(leaders)) if reference in leaders else 0.0
        subsets += 1
    return total / subsets

brute = np.array([majority_brute_force(answers, reference, k) for k in ks])
assert np.allclose(estimates["majority@k"], brute, atol=1e-9), (estimates["majority@k"], brute)
assert np.isclose(estimates["pass@k"].iloc[0], c / n) and np.isclose(estimates["pass@k"].iloc[-1], float(c > 0))
print("majority@k matches brute force over all", 2**n - 1, "subsets")
"""),
    md("""
### Majority@k against k

The same curves pooled over all levels (difficulty relabelled `all`), with the 95%
question-bootstrap interval as a band. Everything on this chart is **measured**.
"""),
    code("""
overall = curves_from_samples(samples.assign(**{S.DIFFICULTY: "all"}), metrics=["majority@k"], n_boot=50)
base = alt.Chart(overall).encode(
    x=alt.X(f"{S.K}:Q", title="samples voted (k)"),
    color=alt.Color(f"{S.MODEL}:N", title="model"),
)
band = base.mark_area(opacity=0.2).encode(y=alt.Y(f"{S.ACCURACY_LO}:Q", title="majority@k (measured)"),
                                          y2=f"{S.ACCURACY_HI}:Q")
line = base.mark_line(point=True).encode(y=f"{S.ACCURACY}:Q")
(band + line).properties(width=420, height=240, title="Majority vote accuracy vs k (MEASURED, 95% bootstrap band)")
"""),
    md("""
## Fit scaling laws

`fit_samples` is what `ttc fit` runs: curves, then for every curve with at least 4 points it
fits the candidate laws (power law, exponential decay, exp-power law, logistic), picks the one
that **extrapolates** best to held-out high-k points (AIC breaks ties), and bootstraps it over
questions for parameter intervals and the saturation point N*. A curve that no law fits gets a
record with `law` empty and a note saying why — never a silent bad fit. The laws' values are
**predicted**. `ttc fit` fits every metric; here only majority@k, to keep the notebook quick.
"""),
    code("""
fits = fit_samples(samples, n_boot=50, metrics=["majority@k"])
table = fits.fits_frame()
table[[S.MODEL, S.STRATEGY, S.METRIC, S.DIFFICULTY, "law", "rmse", "extrapolation_error", "saturation", "note"]]
"""),
    md("""
A law is a scikit-learn style estimator: `fitting.fit_curve` fits every candidate to one curve
and returns the winner, whose `report()` names its formula, parameters and any parameter stuck
at a bound. Here: lab-moe majority@k over all levels, weighted by binomial inverse variance.
"""),
    code("""
one = overall[overall[S.MODEL] == "lab-moe"].sort_values(S.K)
law, candidates = fitting.fit_curve(
    one[S.K].to_numpy(float), one[S.ACCURACY].to_numpy(float),
    sample_weight=fitting.binomial_weights(one[S.ACCURACY], one[S.N_QUESTIONS]),
)
print(law.report())
print()
print("predicted majority@32 (beyond the measured k <= 8):", round(float(law.predict(32.0)), 3))
candidates[["law", "rmse", "aic", "extrapolation_error", "converged", "selected"]]
"""),
]

# ---------------------------------------------------------------------------------------------------
NB02 = [
    md("""
# 2 · Plan a budget

Given a profile (measured samples), the planner answers: *for this per-query budget and this
kind of question, which model and strategy, with how much compute, gives the best accuracy?*
This notebook profiles two dense lab models, loads the profile, and asks
`planner.recommend.plan` — the function behind `ttc recommend` — for a single difficulty, for a
mix of difficulties, and for the whole accuracy-versus-cost front.

What is what: accuracies at profiled knob values are **measured**; between and beyond them they
are **predicted** by fitted laws (`source` says `fitted` or `extrapolated`). Costs (FLOPs,
dollars, latency on an H100) are always **predicted** by the analytic cost model from
**measured** token counts.
"""),
    code("""
import json
import os
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see notebook 1)

import pandas as pd

from fitting import schema as S
from planner.report.findings import headline_findings
from planner.profile import load_profile
from planner.recommend import plan
from planner.report.charts import plot_accuracy_vs_compute
from planner.report.data import accuracy_compute_frame, planning_context
from profiling.runner import profile
"""),
    md("""
## A small profile

`lab-m` and `lab-l` with greedy decoding, a pool of 8 samples (which the planner scores as
majority vote and as best-of-k by log-probability, for every k up to 8) and budget forcing at 8 and 16 thinking tokens, on 4 questions per
level.
"""),
    code("""
out_dir = tempfile.mkdtemp(prefix="ttc-nb02-")
result = profile(["lab-m", "lab-l"], "lab-arith", ["greedy", "pool:n=8", "budget:tokens=8|16"], out_dir,
                 per_level=4)
print(f"{result.rows_written} rows in {result.elapsed_s:.1f} s (measured)")
prof = load_profile(out_dir, n_boot=50)
pd.DataFrame({"architecture": prof.architectures, "params": prof.params})
"""),
    md("""
## Pick a budget from the data

`planning_context` builds the same option space as `plan` (every model x strategy x knob value,
priced on an H100) and lists every option for a target. We take the median FLOPs per query of
the options for level 5, so that some options fit and some do not.
"""),
    code("""
ctx = planning_context(prof, gpu="h100")
options = ctx.table({"5": 1.0})
budget_flops = float(options[S.FLOPS].median())
print(f"{len(options)} options for level 5; budget = median predicted FLOPs = {budget_flops:.3g} FLOPs/query")
options[["arm", "knob_value", S.ACCURACY, "source", S.FLOPS, "usd", "latency_s"]].sort_values(S.FLOPS).head(8)
"""),
    code("""
rec = plan(prof, {"flops": budget_flops}, difficulty="5", hardware="h100")
print(json.dumps(rec.to_json(), indent=1))
"""),
    code("""
assert 0 <= rec.expected_accuracy <= 1
lo, hi = rec.accuracy_interval
assert lo <= rec.expected_accuracy <= hi
assert rec.cost["flops"] <= budget_flops * (1 + 1e-9), "the choice must fit the budget"
cheaper = options[options[S.FLOPS] <= budget_flops]
assert rec.expected_accuracy >= cheaper[S.ACCURACY].max() - 1e-9, "no option within budget is better"
print(f"choice: {rec.choice['model']} {rec.choice['strategy']} {rec.choice['knobs']} -> "
      f"{rec.expected_accuracy:.2f} ({rec.source}), binding constraint: {rec.binding_constraint}")
"""),
    md("""
## A mix of difficulties

When traffic is half easy (level 1) and half hard (level 5) questions, spending the same
*average* budget differently per level beats any single option: the `allocation` block gives
one choice per level, the mix's accuracy, and how much more compute the best single option
would need to match it.
"""),
    code("""
mix = plan(prof, {"flops": budget_flops}, difficulty="1:0.5,5:0.5", hardware="h100")
alloc = mix.to_json()["allocation"]
per_level = pd.DataFrame([
    {"difficulty": b["difficulty"], "weight": b["weight"], "model": b["choice"]["model"],
     "strategy": b["choice"]["strategy"], "knobs": b["choice"]["knobs"],
     "expected_accuracy": b["expected_accuracy"], "source": b["source"], "flops": b["cost"]["flops"]}
    for b in alloc["bins"]
])
print(f"mix accuracy {alloc['expected_accuracy']:.3f} vs best single option {alloc['best_single_accuracy']:.3f}")
per_level
"""),
    md("""
## The Pareto front

`objective="pareto"` returns every option that no other option beats on both accuracy and cost
(within the budget), cheapest first.
"""),
    code("""
front = plan(prof, {"flops": budget_flops}, difficulty="5", hardware="h100", objective="pareto")
pareto = pd.DataFrame([
    {"option": f"{p['choice']['model']} {p['choice']['strategy']} {p['choice']['knobs']}",
     "expected_accuracy": p["expected_accuracy"], "source": p["source"], "flops": p["cost"]["flops"]}
    for p in front.to_json()["pareto"]
]).sort_values("flops")
assert pareto["expected_accuracy"].is_monotonic_increasing, "a front gains accuracy with cost"
pareto
"""),
    md("""
## Accuracy versus compute, and the headline findings

The report's chart (what `ttc report` draws) for levels 1 and 5: points are **measured**,
lines and bands **predicted** by each curve's law. Then the three findings `ttc demo` prints, each
checked on held-out questions: chosen on one half of the questions, measured on the other, over
random splits, with intervals (a difference smaller than its standard error is within noise).
"""),
    code("""
frame = accuracy_compute_frame(ctx)
frame = frame[frame["panel"].isin(["1", "5"])]
plot_accuracy_vs_compute(frame, panels=["1", "5"], width=300)
"""),
    code("""
for finding in headline_findings(prof):
    print("-", finding)
"""),
]

# ---------------------------------------------------------------------------------------------------
NB03 = [
    md("""
# 3 · Capacity: the cost model without a profile

`planner.costs` prices a strategy from token counts and a model's architecture, with no
measurement at all: FLOPs, KV-cache bytes, roofline latency, dollars and the GPUs a target
load needs. Every number in this notebook is **predicted** by that analytic model (hardware
peaks and prices come from the dated catalog); nothing is measured. It is what
`ttc costs` prints.
"""),
    code("""
import altair as alt
import pandas as pd

from planner.costs import (
    ModelSpec,
    Workload,
    estimate_cost,
    get_api_price,
    get_hardware,
    kv_cache_bytes,
    kv_peak_bytes,
    plan_capacity,
)
from profiling.lab import checkpoint_path
"""),
    md("""
## Model specs: total versus active parameters

A spec comes from the catalog (configs of public models) or any HF `config.json` — here the
lab's MoE checkpoint. A mixture-of-experts model stores all experts but runs only the routed
ones per token: FLOPs follow the **active** parameters, memory the **total**.
"""),
    code("""
llama = ModelSpec.from_catalog("llama-3.1-8b")
qwen_moe = ModelSpec.from_catalog("qwen3-30b-a3b")
lab_moe = ModelSpec.from_hf_config(checkpoint_path("lab-moe"), name="lab-moe")
specs = pd.DataFrame([s.summary() for s in (llama, qwen_moe, lab_moe)]).set_index("name")
specs[["architecture", "params_total", "params_active", "kv_bytes_per_token", "weight_bytes", "dtype"]]
"""),
    code("""
assert lab_moe.is_moe and lab_moe.params_active < lab_moe.params_total
assert not llama.is_moe and llama.params_active == llama.params_total
# KV bytes per token = layers x 2 (K and V) x KV heads x head dim x dtype bytes
assert llama.kv_bytes_per_token == 32 * 2 * 8 * 128 * 2
print(f"llama-3.1-8b: {kv_cache_bytes(llama, 1000) / 1e6:.0f} MB of KV cache per 1,000-token sequence")
"""),
    md("""
## One execution of `pool:n=16` on an H100, and on an API

16 samples of 2,048 generated tokens after a 512-token prompt (the prompt is prefilled once
and shared, as vLLM and SGLang do). The API comparison uses DeepSeek-R1 — the same open model
is in the catalog, so its self-hosted price is like for like. Self-hosted dollars depend on how
many sequences share each decode step of the GPUs (`concurrency`, 64 by default; a pool of 16
fills 16 of them): one pool alone wastes them.
"""),
    code("""
h100 = get_hardware("h100")
work = Workload.from_strategy("pool:n=16", prompt_tokens=512, gen_tokens=2048)
est = estimate_cost(llama, work, h100)
pd.Series(est.to_dict()).drop(["api"])
"""),
    code("""
r1_price = get_api_price("deepseek-r1")
r1 = ModelSpec.from_catalog(r1_price.model)
rows = []
for concurrency in (16, 64, 256):
    e = estimate_cost(r1, work, h100, concurrency=concurrency, api=r1_price)
    rows.append({"concurrency": concurrency, "tp (H100s)": e.tp, "latency_s": e.latency_s,
                 "self-hosted usd": e.cost_usd, "API usd": e.api.usd, "fits": e.fits_in_memory})
print(f"deepseek-r1: {r1.params_total / 1e9:.0f}B total, {r1.params_active / 1e9:.0f}B active; "
      f"API prices of {r1_price.price_date}")
pd.DataFrame(rows)
"""),
    md("""
## Latency versus concurrency (roofline)

Decoding is memory-bound: each step reads the weights once for the whole batch, plus every
sequence's KV cache. Batching more sequences raises throughput (executions per second)
until the KV reads dominate, at the price of each execution's latency; from the row where
`fits_in_memory` turns False the batch's KV cache no longer fits in one H100, so those rows are
out of reach on `tp=1`.
"""),
    code("""
rows = []
for concurrency in (16, 32, 64, 128, 256, 512):  # sequences per step: 1 to 32 pools of 16
    e = estimate_cost(llama, work, h100, concurrency=concurrency, tp=1)
    rows.append({"concurrency": concurrency, "latency_s": e.latency_s, "throughput_qps": e.throughput_qps,
                 "compute_bound_fraction": e.compute_bound_fraction, "fits_in_memory": e.fits_in_memory})
roofline = pd.DataFrame(rows)
assert roofline["latency_s"].is_monotonic_increasing and roofline["throughput_qps"].is_monotonic_increasing
roofline
"""),
    md("""
## Capacity for a target load

How many H100s serve 2 executions of `pool:n=16` per second? `plan_capacity` packs as many
executions per replica as memory allows (and a latency target permits) and names the binding
constraint. Compare with greedy decoding of the same length.
"""),
    code("""
rows = []
for strategy in ("greedy", "pool:n=16"):
    w = Workload.from_strategy(strategy, prompt_tokens=512, gen_tokens=2048)
    cap = plan_capacity(llama, w, h100, qps=2.0)
    rows.append({k: getattr(cap, k) for k in ("strategy", "gpus", "tp", "replicas", "concurrency", "latency_s",
                                              "binding", "usd_per_1k_queries")})
capacity = pd.DataFrame(rows).set_index("strategy")
assert capacity.loc["pool:n=16", "gpus"] >= capacity.loc["greedy", "gpus"]
capacity
"""),
    md("""
## KV memory versus samples

The KV cache at the peak of one execution grows linearly with the pool size; sharing the
prompt's prefix saves (n - 1) prompt copies. The dashed line is an H100's 80 GB.
"""),
    code("""
rows = []
for spec in (llama, qwen_moe):
    for n in (1, 2, 4, 8, 16, 32, 64):
        for sharing in (True, False):
            w = Workload.from_strategy(f"pool:n={n}", prompt_tokens=512, gen_tokens=2048, prefix_sharing=sharing)
            rows.append({"model": spec.name, "samples": n, "prefix sharing": sharing,
                         "kv_gb": kv_peak_bytes(spec, w) / 1e9})
kv = pd.DataFrame(rows)
lines = alt.Chart(kv).mark_line(point=True).encode(
    x=alt.X("samples:Q", scale=alt.Scale(type="log", base=2), title="samples per query (pool n)"),
    y=alt.Y("kv_gb:Q", scale=alt.Scale(type="log"), title="KV cache at peak, GB (PREDICTED)"),
    color="model:N",
    strokeDash="prefix sharing:N",
)
limit = alt.Chart(pd.DataFrame({"kv_gb": [h100.memory_bytes / 1e9]})).mark_rule(strokeDash=[4, 4]).encode(y="kv_gb:Q")
(lines + limit).properties(width=420, height=260, title="KV cache of one pool:n execution, P=512, G=2048")
"""),
]


#: notebook file name -> its cells
NOTEBOOKS = {
    "01_profile_and_fit.ipynb": NB01,
    "02_plan_a_budget.ipynb": NB02,
    "03_capacity.ipynb": NB03,
}


def render(name: str) -> str:
    """The committed JSON text of notebook ``name`` (no outputs, stable cell ids)."""
    nb = new_notebook(
        cells=NOTEBOOKS[name], metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}}
    )
    for i, cell in enumerate(nb.cells):  # stable ids: a rebuild changes only what changed
        cell.id = f"{name[:2]}-{i:02d}"
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def build(name: str, folder: Path = HERE) -> Path:
    """Write notebook ``name`` into ``folder``."""
    return atomic_write(folder / name, render(name))


if __name__ == "__main__":
    for name in NOTEBOOKS:
        build(name)
