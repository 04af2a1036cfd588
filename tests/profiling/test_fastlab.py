"""The fast engine against the hf backend on the lab's checkpoints: the same greedy tokens, the
same seeded samples and log-probs (to float rounding), the same stopping, and a prompt's KV
shared by its n rows giving what n separate prefills give."""

from __future__ import annotations

import json

import pytest
import torch

from profiling.backends import (
    FAST_AUTO_MAX_PARAMS,
    GenerationRequest,
    choose_engine,
    lab_checkpoint,
    load_backend,
    with_engine,
)
from profiling.backends._decode import KVCache, decode
from profiling.backends._sampling import row_settings
from profiling.backends.fastlab import KV_SOURCE, FastLabBackend
from profiling.backends.hf import HFBackend
from profiling.backends.tiny import make_tiny_checkpoint

LABS = ["lab-s", "lab-l", "lab-moe"]
#: per-token log-probs of the two engines agree within this (float32 rounding, measured ~1e-6)
LOGPROB_TOL = 1e-4


def _need(name: str):
    path = lab_checkpoint(name)
    if path is None or not (path / "config.json").is_file():
        pytest.skip(f"lab checkpoint {name} not trained")
    return path


@pytest.fixture(scope="module", params=LABS)
def pair(request):
    """(hf backend, fast backend) of one lab checkpoint."""
    path = _need(request.param)
    return HFBackend(path, device="cpu"), FastLabBackend(path, device="cpu")


def _prompts(task, count: int, cot: bool = True) -> list[str]:
    problems = list(task.problems(per_level=count // 5 + 1))
    return [task.format_prompt(p, cot=cot) for p in problems[:: max(1, len(problems) // count)]][:count]


def _texts(results):
    return [[(c.text, c.completion_tokens, c.finish_reason) for c in r.completions] for r in results]


def test_greedy_outputs_are_token_identical_to_hf(pair, task):
    """Greedy chain-of-thought and direct answers of prompts of every level, in one left-padded
    batch: the same text, token count and finish reason on both engines."""
    hf, fast = pair
    prompts = _prompts(task, 10) + _prompts(task, 5, cot=False)
    requests = [GenerationRequest(p, max_new_tokens=96) for p in prompts]
    assert _texts(fast.generate(requests)) == _texts(hf.generate(requests))


def test_sampled_outputs_are_identical_and_logprobs_agree(pair, task):
    """Same seeds, same draws: every sample identical, each completion's mean log-prob within
    LOGPROB_TOL; the batch's rows finish at different steps, so rows were compacted out."""
    hf, fast = pair
    settings = zip(_prompts(task, 6), [1.0, 1.0, 0.7, 1.3, 1.0, 1.0], [1, 1, 1, 1, 0.9, 0.5], strict=True)
    requests = [
        GenerationRequest(p, n=8, max_new_tokens=96, temperature=t, top_p=top_p, seed=i)
        for i, (p, t, top_p) in enumerate(settings)
    ]
    a, b = hf.generate(requests), fast.generate(requests)
    assert _texts(b) == _texts(a)
    for ra, rb in zip(a, b, strict=True):
        for ca, cb in zip(ra.completions, rb.completions, strict=True):
            assert cb.logprob == pytest.approx(ca.logprob, abs=LOGPROB_TOL)
        assert rb.prompt_tokens == ra.prompt_tokens
        assert rb.kv_bytes_peak == ra.kv_bytes_peak and rb.kv_source == KV_SOURCE
    assert b[0].extra["compactions"], "no row left the batch early: the compaction path was not exercised"


def test_decode_step_logits_equal_the_model_forward(pair):
    """Teacher forcing through the fast cache (left padding, a compaction midway) gives the
    log-softmax of the model's own full forward within LOGPROB_TOL at every position."""
    _, fast = pair
    model, decoder = fast.model, fast.decoder
    enc = fast.tokenizer(["Q: 12+7-3 (steps)\n12+7=19\n", "Q: 5+5\n"], return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    width, follow = ids.shape[1], torch.tensor([[10, 11, 12, 13], [14, 15, 16, 17], [18, 19, 20, 21]])
    with torch.inference_mode():
        keys, values, _ = decoder.prefill(ids, mask)
        cache = KVCache(decoder, 3, width + follow.shape[1])
        cache.fill_prompts(keys, values, mask, torch.tensor([1, 2]))
        rows, positions, got = torch.arange(3), mask.sum(1).repeat_interleave(torch.tensor([1, 2])), []
        for t in range(follow.shape[1]):
            if t == 2:  # drop row 1, as when it finishes
                rows, positions = rows[[0, 2]], positions[[0, 2]]
                cache.keep(torch.tensor([0, 2]), width + t)
            got.append(
                (rows, decoder.step(follow[rows, t], positions, cache, width + t).float().log_softmax(-1))
            )
            positions = positions + 1
        for row, prompt in [(0, 0), (1, 1), (2, 1)]:
            full = torch.cat([ids[prompt], follow[row]])[None]
            full_mask = torch.cat([mask[prompt], torch.ones(follow.shape[1], dtype=mask.dtype)])[None]
            pos = (full_mask.cumsum(-1) - 1).clamp(min=0)
            want = (
                model(input_ids=full, attention_mask=full_mask, position_ids=pos)
                .logits[0]
                .float()
                .log_softmax(-1)
            )
            for t, (batch_rows, logp) in enumerate(got):
                if row in batch_rows.tolist():
                    b = batch_rows.tolist().index(row)
                    assert torch.allclose(logp[b], want[width + t], atol=LOGPROB_TOL)


def test_prompt_shared_by_its_rows_equals_separate_prefills(pair, task):
    """One prefill copied into n rows, and the same prompt prefilled in each of n rows, draw
    the same samples from the same generators."""
    _, fast = pair
    prompt = _prompts(task, 1)[0]
    enc = fast.tokenizer([prompt], return_tensors="pt")
    n = 6

    def run(ids, mask, counts):
        gen = torch.Generator().manual_seed(5)
        settings = row_settings([(0, n, 1.0, 1.0, gen)], n, torch.device("cpu"))
        with torch.inference_mode():
            out = decode(fast.decoder, ids, mask, counts, settings, [64] * n, fast.eos_ids)
        return [toks[:length] for toks, length in zip(out.tokens, out.finish_len, strict=True)], out.logprobs

    shared, lp_shared = run(enc["input_ids"], enc["attention_mask"], torch.tensor([n]))
    separate, lp_separate = run(
        enc["input_ids"].repeat(n, 1), enc["attention_mask"].repeat(n, 1), torch.ones(n, dtype=torch.long)
    )
    assert shared == separate
    assert len({tuple(s) for s in shared}) > 1  # the rows really sampled different continuations
    assert torch.allclose(torch.tensor(lp_shared), torch.tensor(lp_separate), atol=LOGPROB_TOL)


def test_seeded_requests_reproduce_and_ignore_their_batch_companions(pair, task):
    _, fast = pair
    prompts = _prompts(task, 3)
    alone = fast.generate([GenerationRequest(prompts[0], n=5, max_new_tokens=64, temperature=1.0, seed=42)])
    again = fast.generate([GenerationRequest(prompts[0], n=5, max_new_tokens=64, temperature=1.0, seed=42)])
    batched = fast.generate(
        [GenerationRequest(p, n=3, max_new_tokens=40, temperature=1.0, seed=7) for p in prompts[1:]]
        + [GenerationRequest(prompts[0], n=5, max_new_tokens=64, temperature=1.0, seed=42)]
    )
    assert _texts(alone) == _texts(again) == _texts(batched[-1:])
    other = fast.generate([GenerationRequest(prompts[0], n=5, max_new_tokens=64, temperature=1.0, seed=43)])
    assert _texts(other) != _texts(alone)


def test_stopping_matches_hf_stop_strings_eos_and_per_row_caps(pair, task):
    """The budget strategy's two phases: a scratchpad cut at a token cap or at "Answer:", then
    an answer cut at the step delimiter; plus per-request caps in one batch."""
    hf, fast = pair
    prompts = _prompts(task, 6)
    caps, stops = [8, 16, 24, 96, 96, 3], [("Answer:",), ("Answer:",), ("\n",), ("=", "\n"), (), ()]
    requests = [
        GenerationRequest(p, n=2, max_new_tokens=cap, temperature=1.0, seed=i, stop=stop)
        for i, (p, cap, stop) in enumerate(zip(prompts, caps, stops, strict=True))
    ]
    a, b = hf.generate(requests), fast.generate(requests)
    assert _texts(b) == _texts(a)
    reasons = {c.finish_reason for r in b for c in r.completions}
    assert reasons == {"stop", "length"}
    for r, request in zip(b, requests, strict=True):
        for c in r.completions:
            assert c.completion_tokens <= request.max_new_tokens
            assert not any(s in c.text for s in request.stop)


def test_metadata_names_the_engine_and_keeps_the_hf_identity(pair):
    hf, fast = pair
    mh, mf = hf.metadata(), fast.metadata()
    assert (mh["engine"], mf["engine"]) == ("hf", "fast")
    assert fast.name == hf.name == "hf"  # the same checkpoint and samples: runs resume across engines
    assert {k: mh[k] for k in ("config", "dtype", "backend")} == {
        k: mf[k] for k in ("config", "dtype", "backend")
    }


def test_one_call_is_one_batch(pair, task):
    _, fast = pair
    requests = [
        GenerationRequest(p, n=16, max_new_tokens=8, temperature=1.0, seed=i)
        for i, p in enumerate(_prompts(task, 8))
    ]
    results = fast.generate(requests)
    assert {r.extra["batch_rows"] for r in results} == {128}


def test_load_backend_engines(tmp_path):
    """auto: fast for a small Llama/Mixtral, hf for other architectures or above the size cap;
    hf:/fast: force one; fast on an architecture it does not run is one clear error."""
    lab = _need("lab-s")
    assert type(load_backend("lab-s", device="cpu")) is FastLabBackend
    assert type(load_backend("hf:lab-s", device="cpu")) is HFBackend
    assert type(load_backend(f"fast:{lab}", device="cpu")) is FastLabBackend
    assert choose_engine(lab)[0] == "fast"
    big = tmp_path / "big"
    big.mkdir()
    config = json.loads((lab / "config.json").read_text())
    (big / "config.json").write_text(json.dumps({**config, "hidden_size": 4096, "intermediate_size": 11008}))
    engine, why = choose_engine(big)
    assert engine == "hf" and f"{FAST_AUTO_MAX_PARAMS:,}" in why
    (big / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    assert choose_engine(big) == (
        "hf",
        "the fast engine does not run model type 'gpt2' (supported: llama, mixtral)",
    )
    tiny = make_tiny_checkpoint(tmp_path / "tiny")
    cfg = json.loads((tiny / "config.json").read_text())
    (tiny / "config.json").write_text(json.dumps({**cfg, "sliding_window": 8, "model_type": "llama"}))
    with pytest.raises(ValueError, match="fast engine does not run sliding-window attention"):
        FastLabBackend(tiny, device="cpu")


def test_with_engine_rewrites_local_specs_only():
    assert with_engine("lab-s", "fast") == "fast:lab-s"
    assert with_engine("hf:lab-s", "auto") == "lab-s"
    assert with_engine("openai:http://h:1/v1/m", "auto") == "openai:http://h:1/v1/m"
    with pytest.raises(ValueError, match="applies to local checkpoints only"):
        with_engine("vllm:lab-s", "fast")
    with pytest.raises(ValueError, match="--engine must be one of auto, fast, hf"):
        with_engine("lab-s", "turbo")
