"""Strategies over the backend interface, with a scripted test double whose answers are known."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from scripted_backend import ScriptedBackend, TinyChainTask
from scripted_backend import right_chain as chain

from fitting import schema as S
from profiling.runner import outcome_rows
from profiling.strategies import (
    STRATEGIES,
    RunContext,
    describe_strategies,
    expand_spec,
    expand_specs,
    get_reward,
    get_strategy,
    register_reward,
)
from profiling.strategies.refine import CRITIQUE_PROMPT

CTX = RunContext(seed=0, max_new_tokens=64, model="scripted-model")
TASK = TinyChainTask()


def problems(per_level: int = 2, level: str | None = None):
    ps = list(TASK.problems(per_level=per_level))
    return [p for p in ps if level is None or p.difficulty == level]


# ---- registry --------------------------------------------------------------------------------------
def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown strategy 'bestof'; valid strategies: greedy, pool, beam"):
        get_strategy("bestof:n=4")


def test_unknown_knob_lists_the_valid_knobs_with_defaults():
    with pytest.raises(ValueError, match=r"no knob\(s\) widht; valid knobs: width \(default 4\), expansions"):
        get_strategy("beam:widht=4")


def test_bad_knob_values_say_what_was_expected():
    with pytest.raises(ValueError, match="knob 'n' must be an integer >= 1, got 0"):
        get_strategy("pool:n=0")
    with pytest.raises(ValueError, match="knob 'cot' must be a bool, got 'maybe'"):
        get_strategy("greedy:cot=maybe")
    with pytest.raises(ValueError, match="knob 'prm' must be oracle, noisy:P"):
        get_strategy("beam:prm=noisy:abc")
    with pytest.raises(ValueError, match="knob 'prm' must be oracle, noisy:P"):
        get_strategy("beam:prm=none")  # beam needs a process reward
    with pytest.raises(ValueError, match="knob 'verifier' must be oracle"):
        get_strategy("refine:verifier=none")


def test_config_fills_defaults_so_equal_strategies_share_one_config():
    assert (
        get_strategy("pool:n=16").config_json()
        == get_strategy("pool:temperature=1,n=16,top_p=1.0").config_json()
    )
    assert json.loads(get_strategy("pool:n=8").config_json()) == {
        "n": 8,
        "temperature": 1.0,
        "top_p": 1.0,
        "cot": True,
        "reward": "none",
    }


def test_budget_alternatives_expand_to_one_config_each():
    assert [s.params["tokens"] for s in expand_spec("budget:tokens=16|32|64")] == [16, 32, 64]
    grid = expand_spec("pool:n=2|4,temperature=0.5|1.0")
    assert [(s.params["n"], s.params["temperature"]) for s in grid] == [
        (2, 0.5),
        (2, 1.0),
        (4, 0.5),
        (4, 1.0),
    ]
    assert len(expand_specs(["budget:tokens=16|32", "budget:tokens=32"])) == 2
    with pytest.raises(ValueError, match="use expand_spec"):
        get_strategy("budget:tokens=16|32")


def test_simulated_rewards_are_labelled_in_config():
    assert json.loads(get_strategy("beam:prm=noisy:0.2").config_json())["prm_source"].startswith("simulated:")
    assert json.loads(get_strategy("beam").config_json())["prm_source"] == "oracle-step-checker"
    assert (
        "simulated" in json.loads(get_strategy("refine:verifier=noisy:0.1").config_json())["verifier_source"]
    )
    assert "simulated" in json.loads(get_strategy("pool:reward=noisy:0.3").config_json())["reward_source"]


def test_describe_lists_every_strategy_and_knob():
    text = describe_strategies()
    for name, cls in STRATEGIES.items():
        assert name in text
        for knob in cls.KNOBS:
            assert f"{knob}=" in text


# ---- conformance: every strategy, the same checks ---------------------------------------------------
SMALL = {
    "greedy": "greedy",
    "pool": "pool:n=3",
    "beam": "beam:width=2,expansions=2",
    "refine": "refine:rounds=2",
    "budget": "budget:tokens=8",
    "hybrid": "hybrid:n=3,rounds=1",
    "mcts": "mcts:simulations=3,expansions=2",
}


def test_every_registered_strategy_has_a_conformance_case():
    assert set(SMALL) == set(STRATEGIES)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_strategy_rows_are_complete_measured_and_valid(name):
    strategy = get_strategy(SMALL[name])
    backend = ScriptedBackend(err=0.3)
    ps = problems()
    outcomes = strategy.run(backend, TASK, ps, CTX)
    rows = outcome_rows(outcomes, run_id="r", backend=backend, task=TASK, strategy=strategy)
    df = S.validate_samples(pd.DataFrame(rows))
    assert sorted(df[S.QUESTION_ID].unique()) == sorted(p.id for p in ps)
    for _, group in df.groupby(S.QUESTION_ID):
        assert sorted(group[S.SAMPLE_IDX]) == list(range(len(group)))
    for col in (S.PROMPT_TOKENS, S.COMPLETION_TOKENS, S.LATENCY_S, S.KV_BYTES_PEAK):
        assert df[col].notna().all() and (df[col] > 0).all(), col
    assert (df[S.KV_SOURCE] == "scripted-test-double").all()
    by_id = {p.id: p for p in ps}
    for o in outcomes:  # the verdict is the task's, applied to the row's own text
        assert o.answer == TASK.extract_answer(o.text)
        assert o.correct == (o.answer == by_id[o.problem.id].answer)
    assert (df[S.REFERENCE] == df[S.QUESTION_ID].map(lambda q: by_id[q].answer)).all()
    assert df[S.CONFIG].map(json.loads).map(lambda c: c == strategy.config).all()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_strategy_results_do_not_depend_on_batching(name):
    strategy = get_strategy(SMALL[name])
    ps = problems()
    together = strategy.run(ScriptedBackend(err=0.3), TASK, ps, CTX)
    apart = [o for p in ps for o in strategy.run(ScriptedBackend(err=0.3), TASK, [p], CTX)]
    key = lambda o: (o.problem.id, o.sample_idx)  # noqa: E731
    assert [(key(o), o.text) for o in sorted(together, key=key)] == [
        (key(o), o.text) for o in sorted(apart, key=key)
    ]
    if name not in ("greedy", "budget"):  # sampling strategies: another seed, other samples
        runs = [ScriptedBackend(err=0.3), ScriptedBackend(err=0.3)]
        for backend, seed in zip(runs, (0, 1), strict=True):
            strategy.run(backend, TASK, ps, RunContext(seed=seed, max_new_tokens=64, model="m"))
        sampled = [[c.text for x in b.calls for c in x.result.completions] for b in runs]
        assert sampled[0] != sampled[1]


# ---- greedy -------------------------------------------------------------------------------------------
def test_greedy_without_errors_is_always_right_and_counts_every_token():
    ps = problems()
    outcomes = get_strategy("greedy").run(ScriptedBackend(err=0.9), TASK, ps, CTX)  # greedy never errs
    assert all(o.correct for o in outcomes)
    for o in outcomes:
        assert o.text == chain(o.problem)
        assert o.cost.completion_tokens == len(chain(o.problem))
        assert o.cost.prompt_tokens == len(TASK.format_prompt(o.problem))


def test_greedy_direct_needs_a_task_with_direct_prompts():
    class NoDirect(TinyChainTask):
        supports_direct = False

    with pytest.raises(ValueError, match="cot=false needs a direct-answer prompt"):
        get_strategy("greedy:cot=false").check_task(NoDirect())
    outcomes = get_strategy("greedy:cot=false").run(ScriptedBackend(), TASK, problems(), CTX)
    assert all(o.correct and o.text == o.problem.answer for o in outcomes)


# ---- pool ---------------------------------------------------------------------------------------------
def test_pool_is_one_request_per_question_and_rows_add_up_to_it():
    backend = ScriptedBackend(err=0.5)
    ps = problems()
    outcomes = get_strategy("pool:n=8").run(backend, TASK, ps, CTX)
    assert backend.batches == 1 and [c.request.n for c in backend.calls] == [8] * len(ps)
    for p, call in zip(ps, backend.calls, strict=True):
        rows = [o for o in outcomes if o.problem.id == p.id]
        assert [o.sample_idx for o in rows] == list(range(8))
        assert [o.text for o in rows] == [c.text for c in call.result.completions]
        assert sum(o.cost.latency_s for o in rows) == pytest.approx(call.result.latency_s)
        assert sum(o.cost.kv_bytes_peak for o in rows) == pytest.approx(call.result.kv_bytes_peak)
        assert all(o.cost.prompt_tokens == len(call.request.prompt) for o in rows)
        assert [o.cost.completion_tokens for o in rows] == [len(o.text) for o in rows]


def test_pool_accuracy_matches_the_step_error_rate():
    # one-step problems are right with probability 1 - err; 20 questions x 64 samples
    ps = problems(per_level=20, level="1")
    outcomes = get_strategy("pool:n=64").run(ScriptedBackend(err=0.25), TASK, ps, CTX)
    accuracy = sum(o.correct for o in outcomes) / len(outcomes)
    assert abs(accuracy - 0.75) < 0.04  # binomial sd = 0.0108


def test_pool_oracle_reward_is_one_exactly_for_right_samples():
    outcomes = get_strategy("pool:n=6,reward=oracle").run(ScriptedBackend(err=0.4), TASK, problems(), CTX)
    assert {o.reward for o in outcomes} == {0.0, 1.0}
    assert all((o.reward == 1.0) == o.correct for o in outcomes)
    assert all(o.logprob is not None for o in outcomes)


# ---- beam ---------------------------------------------------------------------------------------------
def first_sample_always_wrong(sample_idx, step, request):
    return sample_idx == 0


def test_beam_with_oracle_prm_avoids_the_wrong_first_samples():
    ps = problems(level="3")
    assert not any(
        o.correct
        for o in get_strategy("beam:width=1,expansions=1").run(
            ScriptedBackend(wrong=first_sample_always_wrong), TASK, ps, CTX
        )
    )
    outcomes = get_strategy("beam:width=2,expansions=2").run(
        ScriptedBackend(wrong=first_sample_always_wrong), TASK, ps, CTX
    )
    assert all(o.correct and o.text == chain(o.problem) and o.reward == 1.0 for o in outcomes)


def test_beam_counts_every_expansion_and_takes_the_peak_step():
    p = problems(level="3")[0]
    backend = ScriptedBackend(err=0.3)
    (o,) = get_strategy("beam:width=3,expansions=2").run(backend, TASK, [p], CTX)
    results = [c.result for c in backend.calls]
    assert o.cost.completion_tokens == sum(c.completion_tokens for r in results for c in r.completions)
    assert o.cost.prompt_tokens == sum(r.prompt_tokens for r in results)
    assert o.cost.latency_s == pytest.approx(sum(r.latency_s for r in results))
    per_step = {}
    for call in backend.calls:
        per_step[call.batch] = per_step.get(call.batch, 0) + call.result.kv_bytes_peak
    assert o.cost.kv_bytes_peak == max(per_step.values())
    assert [c.request.n for c in backend.calls if c.batch == 1] == [6]  # width * expansions from the root
    assert all(c.request.stop == ("\n",) for c in backend.calls)


def test_beam_forces_an_answer_when_steps_run_out():
    p = problems(level="3")[0]  # three steps + answer line
    backend = ScriptedBackend()
    (o,) = get_strategy("beam:width=2,max_steps=1").run(backend, TASK, [p], CTX)
    last = backend.calls[-1].request
    assert last.prompt.endswith("\nAnswer: ") and last.temperature == 0.0
    assert o.answer is not None and not o.correct  # forced after one of three steps
    assert o.cost.completion_tokens == sum(
        c.completion_tokens for x in backend.calls for c in x.result.completions
    )


def test_noisy_prm_flips_verdicts_at_its_rate_deterministically():
    p = problems(level="3")[0]
    text = "8+1=10\n10+2=12\n"
    oracle = get_reward("oracle", TASK).step_scores(p, text)
    noisy = get_reward("noisy:0.3", TASK, seed=0)
    assert noisy.step_scores(p, text) == noisy.step_scores(p, text)
    assert (
        noisy.step_scores(p, text)[0] == noisy.step_scores(p, text[:7])[0]
    )  # a step's flip depends on its prefix
    assert get_reward("noisy:0", TASK).step_scores(p, text) == oracle
    assert get_reward("noisy:1", TASK).step_scores(p, text) == [1.0 - v for v in oracle]
    texts = [f"{9 + i % 7}+1={i}\n" for i in range(2000)]  # distinct one-step partials
    flips = sum(noisy.step_scores(p, t) != get_reward("oracle", TASK).step_scores(p, t) for t in texts)
    assert abs(flips / 2000 - 0.3) < 0.035  # binomial sd 0.010


def test_callable_rewards_plug_in_by_name_or_module_path():
    register_reward("shortest", lambda problem, text: -float(len(text)))
    p = problems(level="1")[0]
    assert get_reward("shortest", TASK).score(p, "abc") == -3.0
    outcomes = get_strategy("beam:width=2,prm=shortest").run(ScriptedBackend(err=0.5), TASK, [p], CTX)
    assert json.loads(get_strategy("beam:prm=shortest").config_json())["prm_source"] == "callable:shortest"
    assert outcomes[0].reward == -float(len(outcomes[0].text))
    with pytest.raises(ValueError, match="cannot import 'nope' from module 'json'"):
        get_reward("json:nope", TASK)


# ---- refine -------------------------------------------------------------------------------------------
def wrong_at_step_1_in_first_attempt(sample_idx, step, request):
    return step == 1 and request.prompt.count("\n") == 1  # the first call sees only the question line


def test_refine_regenerates_from_the_first_rejected_step():
    p = problems(level="3")[0]
    backend = ScriptedBackend(wrong=wrong_at_step_1_in_first_attempt)
    (o,) = get_strategy("refine:rounds=2").run(backend, TASK, [p], CTX)
    first, second = backend.calls  # accepted after one revision: no third call
    kept = chain(p).split("\n")[0] + "\n"
    assert second.request.prompt == TASK.format_prompt(p) + kept
    assert o.correct and o.text == chain(p)
    assert o.cost.completion_tokens == sum(c.result.completions[0].completion_tokens for c in (first, second))
    assert o.cost.kv_bytes_peak == max(c.result.kv_bytes_peak for c in (first, second))
    (o0,) = get_strategy("refine:rounds=0").run(
        ScriptedBackend(wrong=wrong_at_step_1_in_first_attempt), TASK, [p], CTX
    )
    assert not o0.correct


def test_refine_without_a_step_checker_critiques_and_revises_every_round():
    class NoChecker(TinyChainTask):
        def check_steps(self, completion, problem):
            return None

    p = problems(level="2")[0]
    backend = ScriptedBackend(err=0.5)
    (o,) = get_strategy("refine:rounds=2").run(backend, NoChecker(), [p], CTX)
    assert len(backend.calls) == 3
    assert backend.calls[1].request.prompt.endswith(CRITIQUE_PROMPT)
    assert backend.calls[2].request.prompt.startswith(
        TASK.format_prompt(p) + backend.calls[1].result.completions[0].text
    )
    assert o.cost.completion_tokens == sum(c.result.completions[0].completion_tokens for c in backend.calls)


# ---- budget -------------------------------------------------------------------------------------------
def test_budget_caps_thinking_then_forces_the_answer():
    p = problems(level="3")[0]  # "8+1=9\n9+2=11\n11+3=14\nAnswer: 14"
    for tokens, correct in ((6, False), (64, True)):
        backend = ScriptedBackend()
        (o,) = get_strategy(f"budget:tokens={tokens}").run(backend, TASK, [p], CTX)
        think, answer = backend.calls
        assert think.request.max_new_tokens == tokens and think.request.stop == ("Answer:",)
        assert answer.request.prompt.endswith("\nAnswer: ") and "\n\nAnswer" not in answer.request.prompt
        assert o.correct is correct
        both = [c.result.completions[0].completion_tokens for c in (think, answer)]
        assert o.cost.completion_tokens == sum(both) and both[0] <= tokens
    backend = ScriptedBackend()
    (o,) = get_strategy("budget:tokens=0").run(backend, TASK, [p], CTX)
    assert len(backend.calls) == 1 and o.answer == "8"  # no thinking: the first term, a wrong answer


# ---- hybrid -------------------------------------------------------------------------------------------
def test_hybrid_refines_each_chain_of_one_shared_request():
    p = problems(level="3")[0]
    backend = ScriptedBackend(
        wrong=lambda i, step, req: i == 0 and wrong_at_step_1_in_first_attempt(i, step, req)
    )
    outcomes = get_strategy("hybrid:n=4,rounds=1").run(backend, TASK, [p], CTX)
    assert [o.sample_idx for o in outcomes] == [0, 1, 2, 3]
    assert backend.calls[0].request.n == 4 and len(backend.calls) == 2  # only chain 0 needed a revision
    assert all(o.correct for o in outcomes)
    assert sum(o.cost.completion_tokens for o in outcomes) == sum(
        c.completion_tokens for x in backend.calls for c in x.result.completions
    )
    first_kv = backend.calls[0].result.kv_bytes_peak
    assert outcomes[1].cost.kv_bytes_peak == pytest.approx(first_kv / 4)
    assert outcomes[0].cost.kv_bytes_peak == max(first_kv / 4, backend.calls[1].result.kv_bytes_peak)
