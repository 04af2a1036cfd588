"""One contract, every backend: each available backend runs the same checks on the same tiny
checkpoint (hf and its fast engine in process, openai through a real ``transformers serve``, vllm where installed)."""

from __future__ import annotations

import pytest
from backend_helpers import serve_available, transformers_serve

from profiling.backends import Backend, GenerationRequest
from profiling.backends.tiny import make_tiny_checkpoint

STOPS = ("e", "7")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("conformance") / "ckpt")


@pytest.fixture(scope="module", params=["hf", "fast", "openai", "vllm"])
def backend(request, ckpt, tmp_path_factory):
    if request.param == "hf":
        from profiling.backends.hf import HFBackend

        yield HFBackend(ckpt, device="cpu")
    elif request.param == "fast":
        from profiling.backends.fastlab import FastLabBackend

        yield FastLabBackend(ckpt, device="cpu")
    elif request.param == "openai":
        reason = serve_available()
        if reason:
            pytest.skip(reason)
        from profiling.backends.openai import OpenAIBackend

        with transformers_serve(ckpt, tmp_path_factory.mktemp("serve") / "serve.log") as base_url:
            # transformers serve seeds a global RNG per request: one call at a time keeps seeds reproducible
            yield OpenAIBackend(base_url, str(ckpt), max_concurrency=1, timeout_s=60)
    else:
        pytest.importorskip("vllm", reason="vLLM is not installed (pip install ttc-planner[vllm], GPU only)")
        from profiling.backends.vllm import VLLMBackend

        b = VLLMBackend(str(ckpt), gpu_memory_utilization=0.2)  # max_model_len: the checkpoint's (256)
        yield b
        b.close()


def texts(result):
    return [c.text for c in result.completions]


def test_is_a_backend_with_a_name(backend):
    assert isinstance(backend, Backend) and backend.name in {"hf", "openai", "vllm"}
    assert backend.metadata()["backend"] == backend.name


def test_n_completions_per_request_in_order(backend):
    prompts = ["1+1=", "123*45=", "(9)="]
    results = backend.generate(
        [
            GenerationRequest(p, n=n, max_new_tokens=5, temperature=1.0, seed=i)
            for i, (p, n) in enumerate(zip(prompts, [3, 1, 2], strict=True))
        ]
    )
    assert [len(r.completions) for r in results] == [3, 1, 2]
    assert [r.prompt_tokens for r in results] == [backend.count_tokens(p) for p in prompts] == [4, 7, 4]


def test_token_counts_are_consistent_with_the_tokenizer(backend):
    [r] = backend.generate([GenerationRequest("2+2=", n=6, max_new_tokens=9, temperature=1.0, seed=3)])
    for c in r.completions:
        assert backend.count_tokens(c.text) <= c.completion_tokens <= 9
        assert c.finish_reason in {"stop", "length"}
        if c.finish_reason == "length":
            assert c.completion_tokens == 9
        if c.logprob is not None:
            assert c.logprob <= 0.0


def test_measurements_are_present_and_positive(backend):
    [r] = backend.generate([GenerationRequest("3+4=", n=2, max_new_tokens=6, temperature=1.0, seed=1)])
    assert r.latency_s > 0
    assert r.ttft_s is None or r.ttft_s > 0
    assert isinstance(r.kv_source, str) and r.kv_source
    assert r.kv_bytes_peak is None or r.kv_bytes_peak > 0


def test_greedy_is_deterministic(backend):
    req = GenerationRequest("8*8=", n=2, max_new_tokens=12)
    first, second = backend.generate([req])[0], backend.generate([req])[0]
    assert texts(first) == texts(second)
    assert len(set(texts(first))) == 1


def test_seeds_are_reproducible_and_distinct(backend):
    def run(seed):
        return texts(
            backend.generate([GenerationRequest("1+2=", n=3, max_new_tokens=15, temperature=1.0, seed=seed)])[
                0
            ]
        )

    a, b, c = run(10), run(10), run(11)
    assert a == b
    assert a != c


def test_stop_strings_are_honoured(backend):
    base = dict(prompt="6+7=", n=8, max_new_tokens=30, temperature=1.0, seed=21)
    free = backend.generate([GenerationRequest(**base)])[0].completions
    stopped = backend.generate([GenerationRequest(**base, stop=STOPS)])[0].completions
    cut_somewhere = 0
    for f, s in zip(free, stopped, strict=True):
        assert not any(stop in s.text for stop in STOPS)
        cut = min((i for i in (f.text.find(x) for x in STOPS) if i >= 0), default=-1)
        if cut >= 0:  # same seed, same draws: the stopped text is the free text cut at the stop
            cut_somewhere += 1
            assert s.text == f.text[:cut]
            assert s.finish_reason == "stop" and s.completion_tokens < f.completion_tokens + 1
    assert cut_somewhere >= 2
