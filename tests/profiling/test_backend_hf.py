"""The hf backend on a tiny random checkpoint: batching, measured tokens/KV/log-probs, sampling."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy import stats

from profiling.backends import Completion, GenerationRequest, load_backend
from profiling.backends.hf import BatchClock, HFBackend, cache_tensor_bytes, pack_batches
from profiling.backends.tiny import make_tiny_checkpoint

LAYERS, HEADS, KV_HEADS, HIDDEN = 2, 4, 2, 64
HEAD_DIM = HIDDEN // HEADS


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt", chat_template=True)


@pytest.fixture(scope="module")
def backend(ckpt):
    return HFBackend(ckpt, device="cpu")


def kv_formula_bytes(rows: int, cached_tokens: int, dtype_bytes: int = 4) -> int:
    """2 (K and V) x layers x kv_heads x head_dim x dtype bytes x rows x cached tokens."""
    return 2 * LAYERS * KV_HEADS * HEAD_DIM * dtype_bytes * rows * cached_tokens


def test_pack_batches_never_splits_a_request():
    assert pack_batches([3, 3, 3], 6) == [[0, 1], [2]]
    assert pack_batches([10, 1, 1], 4) == [[0], [1, 2]]
    assert pack_batches([], 4) == []


def test_one_request_with_n_samples_is_one_generate_call(backend, monkeypatch):
    calls = []
    original = backend.model.generate

    def spy(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(backend.model, "generate", spy)
    [result] = backend.generate([GenerationRequest("12+3=", n=8, max_new_tokens=6, temperature=1.0, seed=0)])
    assert len(result.completions) == 8
    assert len(calls) == 1 and calls[0][0] == 8  # one call, the prompt repeated in 8 rows


def test_requests_are_packed_into_calls_of_at_most_max_batch_rows(ckpt, monkeypatch):
    backend = HFBackend(ckpt, device="cpu", max_batch_rows=4)
    rows = []
    original = backend.model.generate
    monkeypatch.setattr(
        backend.model, "generate", lambda **kw: rows.append(kw["input_ids"].shape[0]) or original(**kw)
    )
    reqs = [
        GenerationRequest("1+1=", n=n, max_new_tokens=3, temperature=1.0, seed=i)
        for i, n in enumerate([2, 2, 3, 6])
    ]
    results = backend.generate(reqs)
    assert rows == [4, 3, 6]
    assert [len(r.completions) for r in results] == [2, 2, 3, 6]


def test_kv_bytes_equal_cache_formula_for_one_request_with_n_samples(backend):
    n = 5
    [r] = backend.generate([GenerationRequest("7*8=", n=n, max_new_tokens=12, temperature=1.0, seed=3)])
    steps = max(c.completion_tokens for c in r.completions)
    assert r.extra["generation_steps"] == steps
    # the cache holds the prompt and every drawn token but the last (never fed back)
    assert r.kv_bytes_peak == kv_formula_bytes(n, r.prompt_tokens + steps - 1)
    assert r.kv_source == "hf-cache-tensors"


def test_batched_requests_split_kv_by_rows_and_latency_by_generated_tokens(backend):
    reqs = [
        GenerationRequest("1+1=", n=2, max_new_tokens=10, temperature=1.0, seed=1),
        GenerationRequest("123+456=", n=3, max_new_tokens=4, temperature=1.0, seed=2),
    ]
    results = backend.generate(reqs)
    padded = results[0].extra["padded_prompt_tokens"]
    assert padded == max(r.prompt_tokens for r in results) == 8
    steps = results[0].extra["generation_steps"]
    total_kv = kv_formula_bytes(5, padded + steps - 1)
    assert results[0].kv_bytes_peak == pytest.approx(total_kv * 2 / 5)
    assert results[1].kv_bytes_peak == pytest.approx(total_kv * 3 / 5)
    wall = results[0].extra["batch_latency_s"]
    assert sum(r.latency_s for r in results) == pytest.approx(wall)
    tokens = [sum(c.completion_tokens for c in r.completions) for r in results]
    assert results[0].latency_s / results[1].latency_s == pytest.approx(tokens[0] / tokens[1])
    assert all(0 < r.ttft_s <= wall for r in results)


def test_results_time_a_batch_by_its_clock_and_share_the_allocator_peak_by_rows():
    """The result building both engines (hf, fast) share, on known numbers: the wall time and
    TTFT run from the clock's start, latency is shared by generated tokens (1 and 3), the KV
    bytes and the CUDA allocator's peak by rows (1 and 3 of 4)."""
    reqs = [GenerationRequest("a", n=1), GenerationRequest("b", n=3)]
    groups = [(0, 1, 0.0, 1.0, None), (1, 4, 0.0, 1.0, None)]
    completions = [Completion("x", 1), Completion("yy", 2), Completion("", 0), Completion("z", 1)]
    t0 = time.perf_counter() - 2.0
    clock = BatchClock(t0, alloc_before=10, alloc_peak=400.0, first_token=t0 + 0.5)
    extra = {"seeds": [7, 8], "engine": "test"}
    results = HFBackend._results(None, reqs, groups, completions, [5, 6], clock, (800.0, "src"), extra)
    wall = results[0].extra["batch_latency_s"]
    assert 2.0 <= wall < 60.0
    assert [r.latency_s for r in results] == pytest.approx([wall / 4, wall * 3 / 4])
    assert [r.ttft_s for r in results] == pytest.approx([0.5, 0.5])
    assert [r.kv_bytes_peak for r in results] == pytest.approx([200.0, 600.0])
    assert [r.extra["cuda_alloc_peak_delta_bytes"] for r in results] == pytest.approx([100.0, 300.0])
    assert [
        (r.extra["seed"], r.extra["batch_cuda_alloc_peak_delta_bytes"], r.extra["engine"]) for r in results
    ] == [
        (7, 400.0, "test"),
        (8, 400.0, "test"),
    ]
    assert [r.prompt_tokens for r in results] == [5, 6] and [len(r.completions) for r in results] == [1, 3]


def test_greedy_in_a_left_padded_batch_equals_greedy_alone(backend):
    prompts = ["1+1=", "98765*4321=", "(3+4)*5="]
    alone = [
        backend.generate([GenerationRequest(p, max_new_tokens=15)])[0].completions[0].text for p in prompts
    ]
    batched = backend.generate([GenerationRequest(p, max_new_tokens=15) for p in prompts])
    assert [r.completions[0].text for r in batched] == alone


def test_seeded_samples_do_not_depend_on_batch_companions(backend):
    req = GenerationRequest("5+5=", n=4, max_new_tokens=12, temperature=1.0, seed=42)
    alone = [c.text for c in backend.generate([req])[0].completions]
    other = GenerationRequest("9*9*9=", n=3, max_new_tokens=20, temperature=0.7, seed=7)
    with_other = [c.text for c in backend.generate([other, req])[1].completions]
    assert with_other == alone
    assert len(set(alone)) > 1  # temperature 1 on a random model: the samples differ


def test_token_counts_are_the_generated_characters(backend):
    # one character = one token; the only special token is EOS (counted, not in the text)
    [r] = backend.generate([GenerationRequest("2+2=", n=16, max_new_tokens=25, temperature=1.0, seed=5)])
    for c in r.completions:
        if c.finish_reason == "length":
            assert c.completion_tokens == 25 == len(c.text)
        else:
            assert c.completion_tokens == len(c.text) + 1  # the EOS token
    assert r.prompt_tokens == backend.count_tokens("2+2=") == 4


def test_mean_logprob_equals_teacher_forced_logprob(backend):
    [r] = backend.generate([GenerationRequest("3*3=", n=3, max_new_tokens=10, temperature=1.3, seed=11)])
    tok, model = backend.tokenizer, backend.model
    for c in r.completions:
        ids = tok("3*3=" + c.text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        if c.finish_reason == "stop":
            ids = torch.cat([ids, torch.tensor([[0]])], dim=1)  # the EOS token
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
        targets = ids[0, 4:]
        expected = logp[3 : 3 + len(targets)].gather(1, targets[:, None]).mean().item()
        assert c.logprob == pytest.approx(expected, abs=1e-5)


@pytest.fixture(scope="module")
def peaked(ckpt):
    """The tiny model with its output layer scaled up, so that temperature and top-p matter
    (logits of std ~2 instead of ~0.1)."""
    b = HFBackend(ckpt, device="cpu")
    with torch.no_grad():
        b.model.lm_head.weight.mul_(15.0)
    return b


def _first_token_counts(backend, completions, vocab_size):
    counts = np.zeros(vocab_size)
    for c in completions:
        ids = backend.tokenizer(c.text, add_special_tokens=False)["input_ids"] if c.text else [0]  # "" = EOS
        counts[ids[0]] += 1
    return counts


def _next_token_probs(backend, prompt, temperature):
    ids = backend.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return torch.softmax(backend.model(ids).logits[0, -1].float() / temperature, dim=-1).numpy()


def test_first_token_frequencies_follow_softmax_at_temperature(peaked):
    n, temperature = 4000, 2.0
    [r] = peaked.generate([GenerationRequest("1+", n=n, max_new_tokens=1, temperature=temperature, seed=0)])
    p = _next_token_probs(peaked, "1+", temperature)
    counts = _first_token_counts(peaked, r.completions, len(p))
    keep = p * n >= 5  # chi-square test of goodness of fit at the 0.1% level
    chi2 = float((((counts - n * p) ** 2) / (n * p))[keep].sum())
    assert chi2 < stats.chi2.ppf(0.999, int(keep.sum()) - 1)
    # the same draws are far from the distribution at a different temperature (the test has power)
    p_wrong = _next_token_probs(peaked, "1+", 1.6)
    keep = p_wrong * n >= 5
    chi2_wrong = float((((counts - n * p_wrong) ** 2) / (n * p_wrong))[keep].sum())
    assert chi2_wrong > stats.chi2.ppf(0.999, int(keep.sum()) - 1)


def test_top_p_samples_only_the_nucleus_in_renormalized_proportions(peaked):
    n, top_p = 3000, 0.5
    [r] = peaked.generate(
        [GenerationRequest("1+", n=n, max_new_tokens=1, temperature=2.0, top_p=top_p, seed=1)]
    )
    p = _next_token_probs(peaked, "1+", 2.0)
    order = np.argsort(-p)
    k = int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1  # smallest prefix with mass >= top_p
    nucleus = order[:k]
    counts = _first_token_counts(peaked, r.completions, len(p))
    assert set(np.flatnonzero(counts)) == set(nucleus.tolist())
    q = p[nucleus] / p[nucleus].sum()
    chi2 = float(((counts[nucleus] - n * q) ** 2 / (n * q)).sum())
    assert chi2 < stats.chi2.ppf(0.999, k - 1)


def test_tiny_top_p_is_greedy(backend):
    greedy = backend.generate([GenerationRequest("4+4=", max_new_tokens=12)])[0].completions[0].text
    [r] = backend.generate(
        [GenerationRequest("4+4=", n=3, max_new_tokens=12, temperature=1.0, top_p=1e-6, seed=9)]
    )
    assert [c.text for c in r.completions] == [greedy] * 3


def test_stop_string_cuts_text_at_its_first_occurrence_and_counts_tokens_to_it(backend):
    base = GenerationRequest("6+7=", n=12, max_new_tokens=40, temperature=1.0, seed=21)
    free = backend.generate([base])[0].completions
    stopped = backend.generate([GenerationRequest(**{**base.__dict__, "stop": ("e", "7")})])[0].completions
    cut_somewhere = 0
    for f, s in zip(free, stopped, strict=True):
        cut = min((i for i in (f.text.find("e"), f.text.find("7")) if i >= 0), default=-1)
        if cut < 0:  # the same random stream never met a stop string
            assert s.text == f.text and s.completion_tokens == f.completion_tokens
            continue
        cut_somewhere += 1
        assert s.text == f.text[:cut]
        assert s.completion_tokens == cut + 1  # the tokens before the stop, and the stop's token
        assert s.finish_reason == "stop"
    assert cut_somewhere >= 3


def test_per_request_max_new_tokens_in_one_batch(backend):
    results = backend.generate(
        [
            GenerationRequest("1=", max_new_tokens=3, temperature=1.0, seed=1),
            GenerationRequest("2=", max_new_tokens=9),
        ]
    )
    assert results[0].completions[0].completion_tokens <= 3
    c = results[1].completions[0]
    assert c.completion_tokens <= 9 and (c.finish_reason == "stop" or c.completion_tokens == 9)


def test_chat_template_is_applied_when_asked(ckpt):
    chat = HFBackend(ckpt, device="cpu", chat=True)
    [r] = chat.generate([GenerationRequest("1+1=", max_new_tokens=2)])
    assert r.prompt_tokens == len("user: 1+1=\nassistant: ")


def test_chat_without_template_is_an_error(tmp_path):
    plain = make_tiny_checkpoint(tmp_path / "plain")
    with pytest.raises(ValueError, match="no chat template"):
        HFBackend(plain, device="cpu", chat=True)


def test_invalid_requests_raise_clear_errors(backend):
    with pytest.raises(ValueError, match="request 1: n must be >= 1"):
        backend.generate([GenerationRequest("a"), GenerationRequest("b", n=0)])
    with pytest.raises(ValueError, match="top_p"):
        backend.generate([GenerationRequest("a", top_p=0.0)])


def test_metadata_reports_config_dtype_device_versions(backend):
    meta = backend.metadata()
    assert meta["config"]["num_key_value_heads"] == KV_HEADS
    assert meta["dtype"] == "float32" and meta["device"] == "cpu"
    assert meta["num_parameters"] == sum(p.numel() for p in backend.model.parameters())
    assert meta["torch_version"] == torch.__version__ and meta["backend"] == "hf"


def test_cache_tensor_bytes_reads_legacy_tuples():
    k = torch.zeros(2, 3, 4, 5)
    assert cache_tensor_bytes(((k, k), (k, k))) == 4 * k.numel() * 4
    assert cache_tensor_bytes(object()) is None


def test_load_backend_resolves_paths_and_lab_names(ckpt, monkeypatch):
    import profiling.lab

    b = load_backend(str(ckpt), device="cpu")
    assert isinstance(b, HFBackend) and b.model_name == ckpt.name

    def checkpoint_path(name):
        if name != "lab-test":
            raise KeyError(name)
        return ckpt

    monkeypatch.setattr(profiling.lab, "checkpoint_path", checkpoint_path, raising=False)
    lab = load_backend("lab-test", device="cpu")
    assert isinstance(lab, HFBackend) and lab.model_name == "lab-test"
    with pytest.raises(ValueError, match="unknown backend spec"):
        load_backend("no-such-model")


def test_moe_checkpoint_kv_follows_the_same_formula(tmp_path):
    moe = HFBackend(make_tiny_checkpoint(tmp_path / "moe", experts=4), device="cpu")
    assert type(moe.model).__name__ == "MixtralForCausalLM"
    [r] = moe.generate([GenerationRequest("9-4=", n=3, max_new_tokens=8, temperature=1.0, seed=0)])
    steps = max(c.completion_tokens for c in r.completions)
    assert r.kv_bytes_peak == kv_formula_bytes(3, r.prompt_tokens + steps - 1)


LAB_NAMES = ["lab-s", "lab-m", "lab-l", "lab-moe"]


def _lab_dir(name):
    from profiling.backends import lab_checkpoint

    path = lab_checkpoint(name)
    return path if path is not None and (path / "config.json").is_file() else None


@pytest.mark.parametrize("name", LAB_NAMES)
def testlab_checkpoint_kv_equals_cache_formula(name):
    if _lab_dir(name) is None:
        pytest.skip(f"lab checkpoint {name} not trained yet")
    b = load_backend(name, device="cpu")
    cfg = b.metadata()["config"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    [r] = b.generate([GenerationRequest("Q: 2+3\n", n=4, max_new_tokens=16, temperature=1.0, seed=0)])
    steps = r.extra["generation_steps"]
    assert steps == max(c.completion_tokens for c in r.completions)
    live = 4 * (r.prompt_tokens + steps - 1)
    dtype_bytes = torch.empty(0, dtype=b.model.dtype).element_size()
    assert (
        r.kv_bytes_peak
        == 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * head_dim * dtype_bytes * live
    )
    assert b.model_name == name


def test_loading_a_checkpoint_prints_nothing_and_keeps_transformers_bars_on(ckpt, capfd):
    """The profiler's own progress is the only display: transformers' "Loading weights" bar, drawn
    on stderr by every load, is off for the load and back on after it for the caller's other uses."""
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    capfd.readouterr()
    HFBackend(ckpt, device="cpu")
    out, err = capfd.readouterr()
    assert "Loading weights" not in err and "Loading weights" not in out
    assert err == "" and hf_logging.is_progress_bar_enabled()
