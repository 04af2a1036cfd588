"""The openai backend against a real ``transformers serve`` on loopback, and against scripted
stdlib servers for retries, backoff, concurrency, streaming and servers that honour ``n``."""

from __future__ import annotations

import threading
import time

import pytest
from backend_helpers import ScriptedServer, serve_available, transformers_serve

from profiling.backends import GenerationRequest, load_backend, split_openai_spec
from profiling.backends.hf import HFBackend
from profiling.backends.openai import OpenAIBackend, OpenAIBackendError, backoff_delay_s, derive_subseed
from profiling.backends.tiny import make_tiny_checkpoint


# ---- a real server -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    reason = serve_available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("serve")
    ckpt = make_tiny_checkpoint(root / "ckpt")
    with transformers_serve(ckpt, root / "serve.log") as base_url:
        yield ckpt, base_url, root / "serve.log"


@pytest.fixture(scope="module")
def remote(served):
    ckpt, base_url, _ = served
    # transformers serve seeds one global RNG when a request arrives: one call at a time keeps seeds reproducible
    return OpenAIBackend(base_url, str(ckpt), max_concurrency=1, timeout_s=60)


def test_server_ignores_n_and_logprobs_and_the_backend_falls_back_to_n_calls(served, remote):
    ckpt, base_url, log = served
    fresh = OpenAIBackend(base_url, str(ckpt), max_concurrency=1)
    [r] = fresh.generate([GenerationRequest("12+3=", n=3, max_new_tokens=8, temperature=1.0, seed=1)])
    assert len(r.completions) == 3
    assert r.extra["n_fallback"] == "server returned 1 of n=3 choices"
    assert r.extra["http_calls"] == 3 and fresh.n_mode == "separate"
    assert r.extra["seeds"] == [1, derive_subseed(1, 1), derive_subseed(1, 2)]
    assert r.extra["logprobs"] == "not returned by the server"
    assert all(c.logprob is None for c in r.completions)
    assert "Ignoring unsupported fields" in log.read_text()


def test_usage_token_counts_agree_with_the_tokenizer(remote):
    [r] = remote.generate([GenerationRequest("123+45=", n=2, max_new_tokens=6, temperature=1.0, seed=2)])
    assert r.prompt_tokens == remote.count_tokens("123+45=") == 7
    for c in r.completions:
        assert remote.count_tokens(c.text) <= c.completion_tokens <= 6
        if c.finish_reason == "length":
            assert c.completion_tokens == 6


def test_greedy_through_the_server_equals_the_hf_backend(served, remote):
    ckpt, _, _ = served
    local = HFBackend(ckpt, device="cpu")
    for prompt in ("1+1=", "(7*8)-9="):
        want = local.generate([GenerationRequest(prompt, max_new_tokens=12)])[0].completions[0]
        got = remote.generate([GenerationRequest(prompt, max_new_tokens=12)])[0].completions[0]
        assert got.text == want.text
        assert got.completion_tokens == want.completion_tokens


def test_streaming_gives_ttft_within_latency(remote):
    [r] = remote.generate([GenerationRequest("5*5=", max_new_tokens=10, temperature=1.0, seed=4)])
    assert r.ttft_s is not None and 0 < r.ttft_s <= r.latency_s
    assert r.kv_bytes_peak is None and r.kv_source == "unavailable-remote"


def test_metadata_lists_served_model_and_local_config(served, remote):
    ckpt, _, _ = served
    meta = remote.metadata()
    assert meta["server_models"] == [str(ckpt)]
    assert meta["config"]["model_type"] == "llama"


def test_load_backend_openai_spec(served):
    ckpt, base_url, _ = served
    b = load_backend(f"openai:{base_url}/{ckpt}", max_concurrency=1)  # /v1//abs/path keeps the slash
    assert isinstance(b, OpenAIBackend) and b.model == str(ckpt) and b.base_url == base_url


# ---- pure helpers --------------------------------------------------------------------------
def test_split_openai_spec():
    assert split_openai_spec("http://127.0.0.1:8000/v1/lab-s") == ("http://127.0.0.1:8000/v1", "lab-s")
    assert split_openai_spec("http://h/v1/org/model") == ("http://h/v1", "org/model")
    with pytest.raises(ValueError, match="openai spec"):
        split_openai_spec("lab-s")


def test_backoff_doubles_up_to_the_cap():
    assert [backoff_delay_s(a, 0.25, 1.0) for a in range(5)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert backoff_delay_s(2, 1.0, 10.0, jitter=0.5) == 2.0


# ---- scripted servers ----------------------------------------------------------------------
def _completion(texts, tokens, prompt_tokens=3, logprobs=True):
    choices = []
    for i, (text, k) in enumerate(zip(texts, tokens, strict=True)):
        lp = {"tokens": ["x"] * k, "token_logprobs": [-0.5] * k} if logprobs else None
        choices.append({"index": i, "text": text, "finish_reason": "length", "logprobs": lp})
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": sum(tokens),
        "total_tokens": prompt_tokens + sum(tokens),
    }
    return {"choices": choices, "usage": usage}


def test_429_then_200_is_retried_after_a_backoff():
    hits = []

    def handler(body, headers):
        hits.append(time.perf_counter())
        if len(hits) == 1:
            return 429, {}, {"error": "slow down"}
        return 200, {}, _completion(["ok"], [2])

    with ScriptedServer(handler) as srv:
        b = OpenAIBackend(srv.base_url, "m", stream=False, backoff_s=0.2, backoff_max_s=1.0)
        [r] = b.generate([GenerationRequest("hi", max_new_tokens=2)])
    assert r.completions[0].text == "ok" and r.extra["retries"] == 1
    assert hits[1] - hits[0] >= 0.1  # backoff 0.2 s times a jitter in [0.5, 1]
    assert r.latency_s >= hits[1] - hits[0]


def test_retry_after_header_is_honoured():
    hits = []

    def handler(body, headers):
        hits.append(time.perf_counter())
        return (
            (503, {"Retry-After": "0.6"}, {"error": "busy"})
            if len(hits) == 1
            else (200, {}, _completion(["a"], [1]))
        )

    with ScriptedServer(handler) as srv:
        OpenAIBackend(srv.base_url, "m", stream=False, backoff_s=0.01).generate(
            [GenerationRequest("x", max_new_tokens=1)]
        )
    assert hits[1] - hits[0] >= 0.55


def test_persistent_5xx_gives_up_after_max_retries():
    with ScriptedServer(lambda body, headers: (500, {}, {"error": "boom"})) as srv:
        b = OpenAIBackend(srv.base_url, "m", stream=False, max_retries=2, backoff_s=0.01)
        with pytest.raises(OpenAIBackendError, match="giving up after 3 attempt"):
            b.generate([GenerationRequest("x", max_new_tokens=1)])
        assert len(srv.requests) == 3


def test_client_errors_are_not_retried():
    with ScriptedServer(lambda body, headers: (400, {}, {"error": "bad field"})) as srv:
        b = OpenAIBackend(srv.base_url, "m", stream=False, backoff_s=0.01)
        with pytest.raises(OpenAIBackendError, match="HTTP 400") as info:
            b.generate([GenerationRequest("x", max_new_tokens=1)])
        assert info.value.status == 400 and len(srv.requests) == 1


def test_connection_refused_is_retried_then_reported():
    from backend_helpers import free_port

    b = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=2, backoff_s=0.01, timeout_s=2)
    t0 = time.perf_counter()
    with pytest.raises(OpenAIBackendError, match="giving up after 3 attempt"):
        b.generate([GenerationRequest("x", max_new_tokens=1)])
    assert time.perf_counter() - t0 < 10


def test_server_honouring_n_and_logprobs_gets_one_call_per_request():
    def handler(body, headers):
        n = body.get("n", 1)
        return 200, {}, _completion([f"s{i}" for i in range(n)], [i + 1 for i in range(n)])

    with ScriptedServer(handler) as srv:
        b = OpenAIBackend(srv.base_url, "m", stream=False)
        results = b.generate(
            [GenerationRequest("p", n=4, max_new_tokens=5, seed=0), GenerationRequest("q", n=3)]
        )
    assert b.n_mode == "native" and len(srv.requests) == 2
    assert [c.completion_tokens for c in results[0].completions] == [1, 2, 3, 4]
    assert [c.text for c in results[1].completions] == ["s0", "s1", "s2"]
    assert all(c.logprob == -0.5 for r in results for c in r.completions)
    assert srv.requests[0][0]["logprobs"] == 1 and srv.requests[0][0]["n"] == 4


def test_n_choices_without_logprobs_fall_back_to_separate_calls():
    def handler(body, headers):
        n = body.get("n", 1)
        return 200, {}, _completion(["t"] * n, [2] * n, logprobs=False)

    with ScriptedServer(handler) as srv:
        b = OpenAIBackend(srv.base_url, "m", stream=False)
        [r] = b.generate([GenerationRequest("p", n=3, max_new_tokens=2, seed=5)])
    assert "no per-choice token counts" in r.extra["n_fallback"]
    assert len(srv.requests) == 4  # the probe with n=3, then 3 calls with n=1
    assert [c.completion_tokens for c in r.completions] == [2, 2, 2]


def test_streamed_choices_are_assembled_by_index_with_usage_from_the_last_chunk():
    def handler(body, headers):
        lp = {"tokens": ["a"], "token_logprobs": [-1.0]}
        return (
            200,
            {},
            [
                {"choices": [{"index": 1, "text": "B", "logprobs": lp}]},
                {"choices": [{"index": 0, "text": "A", "logprobs": lp}]},
                {"choices": [{"index": 0, "text": "a", "logprobs": lp, "finish_reason": "stop"}]},
                {"choices": [{"index": 1, "text": "", "finish_reason": "length"}]},
                {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}},
            ],
        )

    with ScriptedServer(handler) as srv:
        b = OpenAIBackend(srv.base_url, "m", api_key="sk-test")
        [r] = b.generate([GenerationRequest("p", n=2, max_new_tokens=4)])
        body, headers = srv.requests[0]
    assert [(c.text, c.completion_tokens, c.finish_reason) for c in r.completions] == [
        ("Aa", 2, "stop"),
        ("B", 1, "length"),
    ]
    assert r.prompt_tokens == 9 and r.ttft_s is not None
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert headers["Authorization"] == "Bearer sk-test"


def test_api_key_from_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    with ScriptedServer(lambda body, headers: (200, {}, _completion(["x"], [1]))) as srv:
        OpenAIBackend(srv.base_url, "m", stream=False).generate([GenerationRequest("p", max_new_tokens=1)])
        assert srv.requests[0][1]["Authorization"] == "Bearer sk-env"


def test_concurrency_is_limited():
    """Each call waits until three are in the server at once (a barrier, not a sleep that a
    busy machine might outlast): three at a time reach it, and never a fourth."""
    three = threading.Barrier(3, timeout=60)

    def handler(body, headers):
        three.wait()
        return 200, {}, _completion(["x"], [1])

    with ScriptedServer(handler) as srv:
        b = OpenAIBackend(srv.base_url, "m", stream=False, max_concurrency=3)
        results = b.generate([GenerationRequest(f"p{i}", max_new_tokens=1) for i in range(9)])
    assert len(results) == 9 and len(srv.requests) == 9  # no call failed and was retried
    assert srv.max_in_flight == 3


def test_stop_string_kept_by_a_server_is_cut_from_the_text():
    with ScriptedServer(lambda body, headers: (200, {}, _completion(["12\nQ: next"], [9]))) as srv:
        [r] = OpenAIBackend(srv.base_url, "m", stream=False).generate(
            [GenerationRequest("p", stop=("\nQ:",))]
        )
    assert r.completions[0].text == "12" and r.completions[0].completion_tokens == 9


def test_chat_endpoint_sends_messages_and_reads_deltas_and_logprobs():
    def handler(body, headers):
        lp = {"content": [{"token": "h", "logprob": -0.25}, {"token": "i", "logprob": -0.75}]}
        return (
            200,
            {},
            [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                {
                    "choices": [
                        {"index": 0, "delta": {"content": "hi"}, "logprobs": lp, "finish_reason": "stop"}
                    ]
                },
                {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
            ],
        )

    with ScriptedServer(handler) as srv:
        b = OpenAIBackend(srv.base_url, "m", chat=True)
        [r] = b.generate([GenerationRequest("say hi", max_new_tokens=4)])
        body, _ = srv.requests[0]
    assert body["messages"] == [{"role": "user", "content": "say hi"}] and body["logprobs"] is True
    assert "prompt" not in body
    c = r.completions[0]
    assert (c.text, c.completion_tokens, c.logprob, c.finish_reason) == ("hi", 2, -0.5, "stop")


def test_without_usage_or_logprobs_a_local_tokenizer_counts_and_says_so(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "tok")

    def handler(body, headers):
        return (
            200,
            {},
            {"choices": [{"index": 0, "text": "12+3", "finish_reason": "stop"}]},
        )  # no usage at all

    with ScriptedServer(handler) as srv:
        without = OpenAIBackend(srv.base_url, "m", stream=False)
        with pytest.raises(OpenAIBackendError, match="pass tokenizer="):
            without.generate([GenerationRequest("abc", max_new_tokens=4)])
        b = OpenAIBackend(srv.base_url, "m", stream=False, tokenizer=ckpt)
        [r] = b.generate([GenerationRequest("abc", max_new_tokens=4)])
    assert r.completions[0].completion_tokens == 4 and r.prompt_tokens == 3
    assert r.extra["token_counts"] == "local tokenizer for 2 count(s) the server did not report"
