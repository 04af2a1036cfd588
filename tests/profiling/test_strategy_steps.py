"""The step helpers that beam, mcts, refine and budget share: a sampled step as a candidate chain,
the answer trigger, the forced answer, the process reward's error and the shared knobs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scripted_backend import ScriptedBackend, TinyChainTask

from profiling.backends import Completion
from profiling.strategies import get_descriptor
from profiling.strategies._base import RunContext, derive_seed
from profiling.strategies._steps import (
    Unit,
    force_answers,
    next_step,
    reward_knob,
    sample_request,
    sampling_knobs,
    step_score,
    with_trigger,
)
from profiling.strategies.rewards import ProcessReward, get_reward

TASK = TinyChainTask()
MARKER = TASK.answer_trigger.strip()  # "Answer:"


def test_a_sampled_step_is_finished_by_the_marker_an_empty_step_or_the_token_limit():
    """An open step gets the delimiter back (the engine drops the stop string); a step holding
    the answer marker, an empty one and one cut at the token limit end the chain as they are."""
    before = [(-0.5, 4)]
    cases = {
        Completion("3+4=7", 5, -0.1): ("1+2=3\n3+4=7\n", False),
        Completion("Answer: 7", 9, -0.2): ("1+2=3\nAnswer: 7", True),
        Completion("  ", 1, None): ("1+2=3\n  ", True),
        Completion("3+4=", 4, -0.3, "length"): ("1+2=3\n3+4=", True),
    }
    for c, (text, done) in cases.items():
        assert next_step("1+2=3\n", before, c, "\n", MARKER) == (
            text,
            [(-0.5, 4), (c.logprob, c.completion_tokens)],
            done,
        )
    assert before == [(-0.5, 4)]  # the parent's pieces are not changed


@given(st.text(max_size=12), st.sampled_from(["stop", "length"]))
def test_a_step_without_a_marker_is_never_finished_when_there_is_no_marker(step, reason):
    """With no answer marker only an empty step or the token limit ends a chain."""
    text, _, done = next_step("p", [], Completion(step, len(step), None, reason), "|", "")
    assert done == (not step.strip() or reason == "length")
    assert text == "p" + step + ("" if done else "|")


def test_the_trigger_replaces_trailing_white_space_when_it_starts_with_some():
    assert with_trigger("1+2=3\n", "\nAnswer: ") == "1+2=3\nAnswer: "
    assert with_trigger("", "\nAnswer: ") == "\nAnswer: "
    assert with_trigger("x = 3 ", "#### ") == "x = 3 #### "  # a trigger without white space keeps it


def test_forced_answers_are_one_greedy_call_each_counted_in_its_unit():
    """Two chains cut after their first step: one call of two greedy requests, stopped at the
    step delimiter and seeded from each unit's seed; the scripted model states the running sum."""
    ps = list(TASK.problems(per_level=1))[:2]
    units = [Unit(p, TASK.format_prompt(p), seed) for p, seed in zip(ps, (11, 12), strict=True)]
    firsts = [f"{p.meta['terms'][0]}+{p.meta['terms'][1]}=" for p in ps]
    sums = [p.meta["terms"][0] + p.meta["terms"][1] for p in ps]
    texts = [f"{first}{s}\n" for first, s in zip(firsts, sums, strict=True)]
    backend = ScriptedBackend()
    out = force_answers(backend, TASK, units, texts, max_new_tokens=7)
    assert out == [
        (f"{t.rstrip()}\nAnswer: {s}", (-0.1, len(str(s)))) for t, s in zip(texts, sums, strict=True)
    ]
    assert backend.batches == 1
    for u, t, s, call in zip(units, texts, sums, backend.calls, strict=True):
        r = call.request
        assert (r.prompt, r.n, r.temperature, r.stop, r.max_new_tokens) == (
            u.prompt + t.rstrip() + "\nAnswer: ",
            1,
            0.0,
            ("\n",),
            7,
        )
        assert r.seed == derive_seed(u.seed, "answer")
        assert (u.cost.calls, u.cost.prompt_tokens, u.cost.completion_tokens) == (
            1,
            len(r.prompt),
            len(str(s)),
        )
    assert force_answers(backend, TASK, [], [], max_new_tokens=7) == [] and backend.batches == 1  # no call


class _NoChecker(ProcessReward):
    """A reward that cannot judge the task (as the oracle on a task without a step checker)."""

    source = "test:never"

    def step_scores(self, problem, text):
        return None


def test_a_reward_without_a_step_checker_names_the_strategy():
    never = _NoChecker(TASK)
    p = next(TASK.problems(per_level=1))
    with pytest.raises(
        ValueError, match=r"^mcts:prm=test:never needs a step checker, which task 'tiny-chain' lacks"
    ):
        step_score("mcts", never, p, "1+2=3\n", TASK)
    oracle = get_reward("oracle", TASK)
    right = f"{p.meta['terms'][0]}+{p.meta['terms'][1]}={sum(p.meta['terms'][:2])}\n"
    assert step_score("beam", oracle, p, right, TASK) == 1.0


def test_the_shared_knobs_are_the_strategies_knobs():
    """beam, mcts, refine (and hybrid through refine) declare their reward and sampling knobs here."""
    beam, mcts, refine = (get_descriptor(n).knobs for n in ("beam", "mcts", "refine"))
    assert beam["prm"].help == mcts["prm"].help == "process reward: oracle|noisy:P|module:function"
    assert refine["verifier"].help == reward_knob("step verifier").help
    assert beam["temperature"].help == sampling_knobs("each step")["temperature"].help
    assert mcts["top_p"].default == refine["top_p"].default == 1.0
    params = {"temperature": 0.7, "top_p": 0.9}
    r = sample_request(params, RunContext(max_new_tokens=33), "q", 3, 5, ("\n",))
    assert (r.prompt, r.n, r.max_new_tokens, r.temperature, r.top_p, r.stop, r.seed) == (
        "q",
        3,
        33,
        0.7,
        0.9,
        ("\n",),
        5,
    )
