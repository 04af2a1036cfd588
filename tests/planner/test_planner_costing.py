"""Pricing options with planner.costs from measured tokens: workloads reproduce the measured
generated tokens; pool FLOPs agree with pricing the measured rows. Fixtures: planner_fixtures."""

from __future__ import annotations

import numpy as np
import planner_fixtures as F
import pytest

from fitting import schema as S
from fitting.curves import curves_from_samples
from planner.catalog import get_api_price, get_hardware
from planner.costs import ModelSpec, estimate_cost, price_samples
from planner.space import Arm, CostModel, OptionSpace, workload_for


@pytest.fixture(scope="module")
def spec():
    return ModelSpec.from_catalog("llama-3.1-8b")


@pytest.mark.parametrize(
    ("arm", "x", "completion"),
    [
        (Arm("m", "majority", "n", (), "pool", "majority@k"), 8, 800.0),
        (Arm("m", "greedy", None, (), "greedy", "accuracy"), 1, 120.0),
        (Arm("m", "beam", "width", (("expansions", 2), ("max_steps", 6)), "beam", "accuracy"), 4, 960.0),
        (Arm("m", "refine", "rounds", (), "refine", "accuracy"), 3, 200.0),
        (Arm("m", "hybrid+majority", "n", (("rounds", 2),), "hybrid", "majority@k"), 4, 800.0),
    ],
)
def test_workload_generates_the_measured_tokens(arm, x, completion):
    w = workload_for(arm, x, 50, completion)
    assert w.generated_tokens == pytest.approx(completion, rel=0.02, abs=6)


def test_pool_flops_agree_with_pricing_the_measured_rows(spec):
    samples = F.samples_table(n_questions=10, pool=16)
    samples = samples[samples[S.MODEL] == "lab-m"]
    curves = curves_from_samples(samples, metrics=["majority@k"], n_boot=0)
    space = OptionSpace.from_curves(curves, CostModel({"lab-m": spec}), fit_if_missing=False)
    priced = price_samples(samples, spec)
    per_q = priced.groupby(S.QUESTION_ID).agg(pre=("prefill_flops", "min"), dec=("decode_flops", "mean"))
    for d in ("1", "3"):
        arm = space.arms({d: 1.0})[0]
        ev = space.evaluate_values(arm, [1, 16], {d: 1.0})
        qs = samples.loc[samples[S.DIFFICULTY] == d, S.QUESTION_ID].unique()
        want = [per_q.loc[qs, "pre"].mean() + n * per_q.loc[qs, "dec"].mean() for n in (1, 16)]
        np.testing.assert_allclose(ev["flops"], want, rtol=0.01)


def test_latency_usd_memory_on_hardware_and_api(spec):
    arm = Arm("m", "majority", "n", (), "pool", "majority@k")
    from planner.space import Usage

    u = Usage(*(np.array([v]) for v in (100.0, 1600.0, 16.0, np.nan, np.nan)))
    gpu = CostModel({"m": spec}, hardware=get_hardware("h100"), concurrency=4)(arm, [16], u)
    est = estimate_cost(spec, workload_for(arm, 16, 100, 1600), get_hardware("h100"), concurrency=4, tp=1)
    assert gpu["latency_s"][0] == pytest.approx(est.latency_s)
    assert gpu["usd"][0] == pytest.approx(est.cost_usd)
    assert gpu["kv_bytes"][0] == pytest.approx(est.kv_bytes_peak)  # the query's own peak
    assert gpu["memory_bytes"][0] == pytest.approx(est.memory_needed_bytes / est.tp)  # per GPU
    assert gpu["tp"][0] == est.tp == 1 and est.tp_source == "given"
    assert gpu["effective_flops"][0] == pytest.approx(est.effective_flops)
    api = CostModel({"m": spec}, api=get_api_price("deepseek-r1"))(arm, [16], u)
    assert np.isnan(api["latency_s"][0]) and api["usd"][0] > 0
    assert gpu["tokens"][0] == api["tokens"][0] == 1700.0
    with pytest.raises(ValueError, match="no model spec for 'x'"):
        CostModel({"m": spec})(Arm("x", "greedy", None, (), "greedy", "accuracy"), [1], u)
