"""A workload over a question mix is priced question by question: every expectation equals the
question-weighted mean of pricing each question on its own, and a pool's E[max] stays inside
its question."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from planner.catalog import get_hardware
from planner.costs import (
    ModelSpec,
    QuestionMix,
    TokenLengths,
    Workload,
    estimate_cost,
    expected_max_many,
    kv_peak_bytes,
    tally,
)

STRATEGIES = [
    "greedy",
    "pool:n=4",
    "pool:n=40",
    "hybrid:n=3,rounds=2",
    "beam:width=2,expansions=2,max_steps=4",
    "refine:rounds=2",
    "budget:tokens=300",
]


@pytest.fixture(scope="module")
def spec():
    return ModelSpec.from_catalog("llama-3.1-8b")


def _mix(seed: int = 0, questions: int = 7) -> QuestionMix:
    rng = np.random.default_rng(seed)
    prompts = rng.integers(0, 400, questions)
    lengths = [rng.integers(1, 2_000, rng.integers(1, 9)) for _ in range(questions)]
    return QuestionMix.from_samples(prompts, lengths, weights=rng.random(questions) + 0.1)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("sharing", [True, False])
def test_mix_tally_is_the_weighted_mean_of_each_question_alone(spec, strategy, sharing):
    mix = _mix()
    together = tally(spec, Workload.for_questions(strategy, mix, prefix_sharing=sharing))
    alone = [
        tally(spec, Workload.from_strategy(strategy, int(p), d, prefix_sharing=sharing))
        for p, d in zip(mix.prompts, mix.lengths, strict=True)
    ]
    for field in (
        "prefill_flops",
        "decode_flops",
        "decode_tokens",
        "kv_read_bytes",
        "decode_steps",
        "kv_peak_bytes",
    ):
        want = float(mix.weights @ np.array([getattr(t, field) for t in alone]))
        assert getattr(together, field) == pytest.approx(want, rel=1e-12), field


def test_one_question_mix_prices_like_the_plain_workload(spec):
    lengths = TokenLengths.from_samples([100, 10_000, 400])
    plain = estimate_cost(spec, Workload.from_strategy("pool:n=3", 250, lengths), get_hardware("h100"))
    mixed = estimate_cost(
        spec, Workload.for_questions("pool:n=3", QuestionMix.single(250, lengths)), get_hardware("h100")
    )
    for field in (
        "flops",
        "kv_bytes_peak",
        "latency_s",
        "cost_usd",
        "effective_flops",
        "memory_needed_bytes",
    ):
        assert getattr(mixed, field) == pytest.approx(getattr(plain, field), rel=1e-12), field


def test_a_pool_waits_for_the_longest_sample_of_its_own_question(spec):
    # two questions: one always 100 tokens, one always 10,000. Pooled over questions, a pool of
    # 2 would usually contain a 10,000-token sample; kept apart, half the queries end at 100.
    mix = QuestionMix.from_samples([0, 0], [[100, 100], [10_000, 10_000]])
    t = tally(spec, Workload.for_questions("pool:n=2", mix))
    assert t.decode_steps == pytest.approx(5_050.0)
    pooled = tally(spec, Workload.from_strategy("pool:n=2", 0, [100, 100, 10_000, 10_000]))
    assert pooled.decode_steps > 8_000


def test_expected_max_many_matches_enumerating_subsets():
    rng = np.random.default_rng(3)
    samples = [rng.integers(0, 50, m) for m in (1, 4, 6)]
    dists = [TokenLengths.from_samples(x) for x in samples]
    for n in (1, 2, 3, 4):
        got = expected_max_many(dists, n)
        for x, g, d in zip(samples, got, dists, strict=True):
            if n <= len(x):  # without replacement: every n-subset of the measured samples
                want = np.mean([max(c) for c in itertools.combinations(x, n)])
            else:  # independent draws
                want = np.mean([max(c) for c in itertools.product(x, repeat=n)])
            assert g == pytest.approx(want, rel=1e-12)
            assert d.expected_max(n) == pytest.approx(g, rel=1e-15)


def test_kv_peak_of_a_mix_is_the_mean_of_question_peaks(spec):
    mix = QuestionMix.from_samples([50, 10], [[100, 10_000], [300]])
    w = Workload.for_questions("pool:n=2", mix)
    alone = [
        kv_peak_bytes(spec, Workload.from_strategy("pool:n=2", int(p), d))
        for p, d in zip(mix.prompts, mix.lengths, strict=True)
    ]
    assert kv_peak_bytes(spec, w) == pytest.approx(np.mean(alone), rel=1e-12)


def test_context_limit_names_the_question_that_overflows():
    spec = ModelSpec.from_catalog("llama-3.1-8b")
    mix = QuestionMix.from_samples([10, 900], [[100], [spec.max_context_tokens]])
    with pytest.raises(ValueError, match=r"prompt 900 \+ .* exceeds the model's context"):
        estimate_cost(spec, Workload.for_questions("greedy", mix))


def test_question_mix_rejects_bad_input():
    with pytest.raises(ValueError, match="one prompt length per question"):
        QuestionMix(np.array([1.0, 2.0]), (TokenLengths.constant(3),))
    with pytest.raises(ValueError, match="weights"):
        QuestionMix.from_samples([1], [[3]], weights=[0.0])
    with pytest.raises(ValueError, match="prompt tokens must be finite"):
        QuestionMix.from_samples([-1], [[3]])
