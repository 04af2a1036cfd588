"""``reasoning_effort`` as a knob: sent as the API field, reasoning tokens counted as generated
tokens, refused where it cannot be sent. Against a STUB OpenAI-compatible server on loopback
that honours the field by varying how many reasoning tokens it reports (the wire format, not a
model: its answer is fixed)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from backend_helpers import ScriptedServer
from lab_runs import profile_args
from scripted_backend import ScriptedBackend, TinyChainTask
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from profiling.backends import GenerationRequest, OpenAIBackend
from profiling.backends.openai import OpenAIBackendError
from profiling.strategies import RunContext, get_strategy

#: reasoning tokens the stub reports per effort (a server without the field: none)
REASONING = {None: 0, "low": 8, "medium": 32, "high": 128}
ANSWER = "Answer: 4"


def stub(body, headers):
    """One choice per ``n`` with the visible text ``Answer: 4`` (one logprob entry per character)
    and ``REASONING[effort]`` hidden tokens per choice in ``usage`` (streamed when asked); an
    unknown effort is refused with HTTP 400, as OpenAI refuses it."""
    effort = body.get("reasoning_effort")
    if effort not in REASONING:
        return (
            400,
            {},
            {"error": {"message": f"Unsupported value: 'reasoning_effort' does not support {effort!r}"}},
        )
    n = body.get("n", 1)
    lp = {"tokens": list(ANSWER), "token_logprobs": [-0.1] * len(ANSWER)}
    choices = [{"index": i, "text": ANSWER, "finish_reason": "stop", "logprobs": lp} for i in range(n)]
    r = REASONING[effort] * n
    usage = {
        "prompt_tokens": 7,
        "completion_tokens": n * len(ANSWER) + r,
        "completion_tokens_details": {"reasoning_tokens": r},
    }
    if body.get("stream"):  # the choices, then the usage in a last chunk
        return 200, {}, [{"choices": choices}, {"choices": [], "usage": usage}]
    return 200, {}, {"choices": choices, "usage": usage}


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_the_effort_is_sent_and_reasoning_tokens_count_as_generated(effort):
    with ScriptedServer(stub) as srv:
        b = OpenAIBackend(srv.base_url, "m", stream=False)
        one, pool = b.generate(
            [
                GenerationRequest("p", max_new_tokens=64, reasoning_effort=effort),
                GenerationRequest("p", n=3, max_new_tokens=64, reasoning_effort=effort),
            ]
        )
        sent = [body.get("reasoning_effort") for body, _ in srv.requests]
    assert sent == [effort] * len(sent)
    r = REASONING[effort]
    assert one.completions[0].completion_tokens == len(ANSWER) + r  # from logprobs + reasoning
    assert one.extra["reasoning_tokens"] == r
    assert [c.completion_tokens for c in pool.completions] == [len(ANSWER) + r] * 3  # 3r split over 3
    assert pool.extra["reasoning_tokens"] == 3 * r


def test_reasoning_split_over_choices_gives_the_remainder_to_the_first():
    def odd(body, headers):
        status, h, payload = stub(body, headers)
        payload["usage"]["completion_tokens_details"]["reasoning_tokens"] = 10
        return status, h, payload

    with ScriptedServer(odd) as srv:
        [r] = OpenAIBackend(srv.base_url, "m", stream=False).generate([GenerationRequest("p", n=3)])
    assert [c.completion_tokens - len(ANSWER) for c in r.completions] == [4, 3, 3]


def test_without_an_effort_nothing_is_sent_and_the_backend_default_applies():
    with ScriptedServer(stub) as srv:
        OpenAIBackend(srv.base_url, "m", stream=False).generate([GenerationRequest("p")])
        [r] = OpenAIBackend(srv.base_url, "m", stream=False, reasoning_effort="medium").generate(
            [GenerationRequest("p")]
        )
        bodies = [body for body, _ in srv.requests]
    assert "reasoning_effort" not in bodies[0] and bodies[1]["reasoning_effort"] == "medium"
    assert r.completions[0].completion_tokens == len(ANSWER) + REASONING["medium"]
    with pytest.raises(ValueError, match="reasoning_effort must be one of low, medium, high, got 'max'"):
        OpenAIBackend("http://127.0.0.1:1/v1", "m", reasoning_effort="max")


def test_an_effort_the_server_refuses_is_an_error_not_retried():
    with ScriptedServer(stub) as srv:
        b = OpenAIBackend(srv.base_url, "m", stream=False)
        b.reasoning_effort = "extreme"  # bypass the constructor's check: the server must refuse it
        with pytest.raises(OpenAIBackendError, match="HTTP 400.*reasoning_effort") as info:
            b.generate([GenerationRequest("p")])
        assert info.value.status == 400 and len(srv.requests) == 1


def test_the_strategy_knob_sets_every_request_and_more_effort_costs_more_tokens():
    task = TinyChainTask()
    problem = next(iter(task.problems(per_level=1)))
    tokens = {}
    with ScriptedServer(stub) as srv:
        backend = OpenAIBackend(srv.base_url, "m", stream=False)
        for effort in ("low", "high"):
            strategy = get_strategy(f"pool:n=2,reasoning_effort={effort}")
            outcomes = strategy.execute(backend, task, [problem], RunContext(seed=0, model="m"))
            tokens[effort] = sum(o.cost.completion_tokens for o in outcomes)
            assert json.loads(strategy.config_json())["reasoning_effort"] == effort
        assert {body["reasoning_effort"] for body, _ in srv.requests} == {"low", "high"}
    assert tokens == {e: 2 * (len(ANSWER) + REASONING[e]) for e in ("low", "high")}
    # left at its default, the knob is not in config: configs profiled before it stay the same
    assert "reasoning_effort" not in json.loads(get_strategy("pool:n=2").config_json())


def test_a_backend_that_cannot_send_the_effort_is_refused_before_any_call():
    backend = ScriptedBackend()
    task = TinyChainTask()
    with pytest.raises(ValueError, match="knob 'reasoning_effort' needs a backend that sends it"):
        get_strategy("greedy:reasoning_effort=low").execute(
            backend, task, list(task.problems(per_level=1)), RunContext()
        )
    assert backend.calls == []
    with pytest.raises(ValueError, match="knob 'reasoning_effort' must be none, low, medium, high"):
        get_strategy("greedy:reasoning_effort=max")


def test_ttc_profile_records_reasoning_tokens_per_effort(tmp_path):
    runner = CliRunner()
    with ScriptedServer(stub) as srv:
        out = tmp_path / "run"
        result = runner.invoke(
            app,
            [
                "profile",
                "--model",
                f"openai:{srv.base_url}/m",
                "--task",
                "lab-arith",
                "--questions",
                "1",
                "--strategy",
                "greedy:reasoning_effort=low|high",
                "--out",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        bad = runner.invoke(
            app,
            profile_args(tmp_path / "hf", "greedy:reasoning_effort=low"),
        )
    df = pd.concat(pd.read_parquet(f) for f in out.rglob("*.parquet"))
    effort = df[S.CONFIG].map(lambda c: json.loads(c)["reasoning_effort"])
    tokens = {e: sorted(set(g)) for e, g in df.groupby(effort)[S.COMPLETION_TOKENS]}
    assert tokens == {e: [len(ANSWER) + REASONING[e]] for e in ("low", "high")}
    assert bad.exit_code == 2 and "needs a backend that sends it" in bad.output
    assert "Traceback" not in bad.output and len(bad.output.strip().splitlines()) == 1
