"""Block top-k sparse attention at decode: the ``@attn_blocks=K`` spelling, the block choice on
hand-computed scores, equality with dense attention when every block is kept, and decoding a
lab model with it (seeded, recorded in run.json)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from profiling.backends import GenerationRequest, SparseAttention, load_backend, split_sparse_spec
from profiling.backends._sparse_attention import NAME, block_topk_decode, select_blocks
from profiling.lab.models import MAX_POSITIONS


# ---- the spelling ------------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(st.integers(1, 10_000), st.integers(1, 4096))
def test_a_setting_round_trips_through_its_model_spec_suffix(blocks, size):
    setting = SparseAttention(blocks, size)
    assert split_sparse_spec("lab-m" + setting.suffix) == ("lab-m", setting)
    assert SparseAttention.from_dict(json.loads(json.dumps(setting.to_dict()))) == setting


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lab-m@attn_blocks=0", "attn_blocks must be an integer >= 1 or all, got '0'"),
        ("lab-m@attn_blocks=-2", "attn_blocks must be an integer >= 1 or all, got '-2'"),
        ("lab-m@attn_blocks=two", "attn_blocks must be an integer >= 1 or all, got 'two'"),
        ("lab-m@attn_blocks=2,block_size=0", "block_size must be an integer >= 1, got '0'"),
        ("@attn_blocks=2", "expected MODEL@attn_blocks=K"),
        ("lab-m@attn_blocks=2,window=3", "expected MODEL@attn_blocks=K"),
        ("vllm:lab-m@attn_blocks=2", "runs on hf models only"),
    ],
)
def test_bad_settings_are_refused_in_one_line_naming_the_spec(spec, message):
    with pytest.raises(ValueError, match="model spec") as err:
        split_sparse_spec(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_all_blocks_is_the_dense_model():
    assert split_sparse_spec("lab-m@attn_blocks=all") == ("lab-m", None)
    assert split_sparse_spec("lab-m") == ("lab-m", None)


def test_attended_tokens_are_the_context_capped_at_k_plus_one_blocks():
    s = SparseAttention(3, block_size=8)  # at most (3 + 1) * 8 = 32 tokens
    assert [s.attended_tokens(t) for t in (1, 31, 32, 33, 1000)] == [1.0, 31.0, 32.0, 32.0, 32.0]


# ---- the block choice, on hand-computed scores ----------------------------------------------------------
def test_blocks_are_chosen_by_max_score_plus_the_recent_block():
    """Blocks of 2 over 10 tokens: head 0 scores blocks 0..3 at max 1, 5, 0, 3 (block 2's mean
    0 is below block 0's 0.5, its max 0 too); the recent block 4 (tokens 8-9) is kept whatever
    it scores. k=2 keeps blocks 1 and 3. Head 1 has block 0 = [4, -4] (max 4, mean 0) against
    block 2 = [1, 1] (max 1, mean 1): the max rule keeps block 0, with block 1's 2."""
    scores = torch.tensor(
        [
            [
                [0.0, 1.0, 5.0, 0.0, 0.0, 0.0, 3.0, -1.0, -9.0, -9.0],
                [4.0, -4.0, 2.0, 0.0, 1.0, 1.0, 0.0, 0.0, -9.0, -9.0],
            ]
        ]
    )
    real = torch.ones(1, 10, dtype=torch.bool)
    keep = select_blocks(scores, real, attn_blocks=2, block_size=2)
    assert keep[0, 0].nonzero().flatten().tolist() == [2, 3, 6, 7, 8, 9]
    assert keep[0, 1].nonzero().flatten().tolist() == [0, 1, 2, 3, 8, 9]
    # k = 0 would keep only the recent block; k >= 4 keeps every block
    assert select_blocks(scores, real, 1, 2)[0, 0].nonzero().flatten().tolist() == [2, 3, 8, 9]
    assert select_blocks(scores, real, 4, 2).all()


def test_blocks_count_from_the_first_real_token_so_left_padding_does_not_move_them():
    """The same 7 tokens with 3 pads in front: the same tokens are kept, shifted by the pads;
    the recent block is the partly filled one holding the last token (tokens 6 alone)."""
    row = torch.tensor([0.0, 9.0, 1.0, 2.0, 3.0, 0.5, 0.0])  # blocks of 3: [0,9,1] [2,3,0.5] [0]
    padded = torch.cat([torch.full((3,), 100.0), row])  # pads score high but are never kept
    real = torch.tensor([[False] * 3 + [True] * 7])
    keep_plain = select_blocks(row.view(1, 1, -1), torch.ones(1, 7, dtype=torch.bool), 1, 3)
    keep_padded = select_blocks(padded.view(1, 1, -1), real, 1, 3)
    assert keep_plain[0, 0].nonzero().flatten().tolist() == [0, 1, 2, 6]
    assert keep_padded[0, 0].nonzero().flatten().tolist() == [3, 4, 5, 9]


def _dense(query, key, value, real, scale):
    """Reference attention of one query position over the kept tokens ``real`` (B, H, T)."""
    rep = query.shape[1] // key.shape[1]
    k, v = key.repeat_interleave(rep, 1), value.repeat_interleave(rep, 1)
    s = (query @ k.transpose(-1, -2)).squeeze(2) * scale
    p = torch.softmax(s.masked_fill(~real, -math.inf), -1)
    return (p.unsqueeze(2) @ v).transpose(1, 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_with_every_block_kept_the_output_is_dense_attention(seed):
    """k >= the number of blocks: equal to the dense softmax over the real tokens (tolerance
    1e-6 in float32, two summation orders); with fewer blocks: equal to dense attention over
    exactly the tokens :func:`select_blocks` keeps."""
    g = torch.Generator().manual_seed(seed)
    b, h, h_kv, t, d = 3, 4, 2, 37, 8
    q = torch.randn(b, h, 1, d, generator=g)
    k, v = torch.randn(b, h_kv, t, d, generator=g), torch.randn(b, h_kv, t, d, generator=g)
    real = torch.ones(b, t, dtype=torch.bool)
    real[1, :5] = False  # left padding of one row
    full = block_topk_decode(q, k, v, real, SparseAttention(3, 16), scaling=d**-0.5)
    want = _dense(q, k, v, real.unsqueeze(1).expand(b, h, t), d**-0.5)
    assert full.shape == (b, 1, h, d)
    torch.testing.assert_close(full, want, rtol=0, atol=1e-6)
    sparse = block_topk_decode(q, k, v, real, SparseAttention(1, 4), scaling=d**-0.5)
    scores = torch.einsum("bkgd,bktd->bkgt", q.view(b, h_kv, 2, d), k).reshape(b, h, t) * d**-0.5
    kept = select_blocks(scores, real, 1, 4)
    assert int(kept[0, 0].sum()) == 4 + 1  # one block of 4 + the recent block (token 36 alone)
    torch.testing.assert_close(sparse, _dense(q, k, v, kept, d**-0.5), rtol=0, atol=1e-6)


# ---- a lab model decoding with it ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab_pair():
    return load_backend("lab-s", device="cpu"), load_backend("lab-s@attn_blocks=1", device="cpu")


PROMPT = "Q: 29-28+50+36-24+31 (steps)\n"


def _logits(backend, ids):
    with torch.inference_mode():
        out = backend.model(input_ids=ids, use_cache=True)
        step = backend.model(input_ids=ids[:, -1:] * 0 + 5, cache=out.past_key_values)
    return out.logits, step.logits


def test_sparse_prefill_is_dense_and_only_the_decode_step_changes(lab_pair):
    dense, sparse = lab_pair
    assert sparse.model.config._attn_implementation == NAME and sparse.model_name == "lab-s@attn_blocks=1"
    ids = sparse.tokenizer(PROMPT * 2, return_tensors="pt")["input_ids"]  # 59 tokens: 4 blocks of 16
    pre_d, step_d = _logits(dense, ids)
    pre_s, step_s = _logits(sparse, ids)
    assert torch.equal(pre_d, pre_s)  # the prefill runs the same sdpa kernel
    assert (step_d - step_s).abs().max() > 1e-3  # 2 of 4 blocks kept: the decode step differs


def test_a_sparse_model_whose_blocks_cover_the_sequence_decodes_like_dense(lab_pair):
    dense = lab_pair[0]
    wide = load_backend("lab-s@attn_blocks=15", device="cpu")  # 16 x 16 = every position the model has
    req = [GenerationRequest(PROMPT, n=3, max_new_tokens=40, temperature=1.0, seed=7)]
    a, b = dense.generate(req)[0], wide.generate(req)[0]
    assert [c.text for c in a.completions] == [c.text for c in b.completions]
    for x, y in zip(a.completions, b.completions, strict=True):
        assert x.logprob == pytest.approx(y.logprob, abs=1e-5)


def test_sparse_decoding_is_seeded_and_recorded_in_the_metadata(lab_pair):
    sparse = lab_pair[1]
    req = [GenerationRequest(PROMPT, n=4, max_new_tokens=60, temperature=1.0, seed=11)]
    first, again = sparse.generate(req)[0], sparse.generate(req)[0]
    assert [c.text for c in first.completions] == [c.text for c in again.completions]
    assert all(c.completion_tokens > 0 for c in first.completions)
    meta = sparse.metadata()
    assert meta["sparse_attention"] == {
        "attn_blocks": 1,
        "block_size": 16,
        "score": "max",
        "recent_blocks": 1,
        "phase": "decode",
    }
    assert "sparse_attention" not in lab_pair[0].metadata()


def test_a_padded_batch_keeps_each_rows_blocks(lab_pair):
    """Requests of different prompt lengths batched together (left padding) decode as each
    does alone: the blocks count from each row's first real token."""
    sparse = lab_pair[1]
    prompts = [PROMPT, "Q: 3+4 (steps)\n", "Q: 12*3-5+40-7 (steps)\n"]
    reqs = [GenerationRequest(p, n=1, max_new_tokens=70, seed=0) for p in prompts]
    together = [r.completions[0].text for r in sparse.generate(reqs)]
    alone = [sparse.generate([r])[0].completions[0].text for r in reqs]
    assert together == alone


def test_blocks_covering_the_whole_context_are_refused():
    with pytest.raises(ValueError, match=f"whole context of {MAX_POSITIONS} tokens.*attn_blocks=all"):
        load_backend(f"lab-s@attn_blocks={MAX_POSITIONS // 16}", device="cpu")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("lab-s@attn_blocks=0", "attn_blocks must be an integer >= 1 or all"),
        ("openai:http://127.0.0.1:9/v1/lab-s@attn_blocks=2", "runs on hf models only"),
        ("lab-s@attn_blocks=16", "cover the model's whole context of 256 tokens"),
    ],
)
def test_ttc_profile_refuses_bad_settings_in_one_line(tmp_path, model, message):
    out = tmp_path / "out"
    argv = ["profile", "-m", model, "-t", "lab-arith", "-q", "1", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not out.exists() or not any(out.glob("samples-*.parquet"))


def test_ttc_profile_runs_a_sparse_variant_beside_the_dense_model(tmp_path):
    out = tmp_path / "run"
    argv = [
        "profile",
        "-m",
        "lab-s",
        "-m",
        "lab-s@attn_blocks=2",
        "-t",
        "lab-arith",
        "-q",
        "1",
        "-s",
        "greedy",
        "--out",
        str(out),
        "--no-progress",
    ]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    df = S.read_samples(out)
    assert set(df[S.MODEL]) == {"lab-s", "lab-s@attn_blocks=2"}
    meta = json.loads((out / "run.json").read_text())["models"]
    assert meta["lab-s@attn_blocks=2"]["sparse_attention"]["attn_blocks"] == 2
    assert "sparse_attention" not in meta["lab-s"]
