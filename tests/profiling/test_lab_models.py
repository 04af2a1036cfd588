"""The lab model family: tokenizer, sizes, training recipe and the committed checkpoints.

The checkpoint tests skip (with the reason) only while no checkpoint is committed; once any
exists, every model must have one.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from profiling.lab import LAB_MODELS, build_tokenizer, checkpoint_path, param_counts
from profiling.lab.evaluate import _max_tokens, generate, load, pass_at_k
from profiling.lab.models import CHECKPOINT_DIR, LAB_CHARS
from profiling.lab.train import Recipe, lr_at, make_batches, make_examples, train_model

TRAINED = [n for n in LAB_MODELS if (checkpoint_path(n) / "model.safetensors").is_file()]


def _committed() -> list[str]:
    """Checkpoint files tracked by git ([] outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", str(CHECKPOINT_DIR)], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return out.stdout.split()


# Skip only while the family is not yet trained and nothing is committed; once a checkpoint
# is committed, a missing one fails the tests below.
needs_checkpoints = pytest.mark.skipif(
    TRAINED != list(LAB_MODELS) and not _committed(),
    reason=f"lab checkpoints not committed yet under {CHECKPOINT_DIR} "
    f"(present: {TRAINED or 'none'}; python -m profiling.lab.train --model all)",
)


# ---- tokenizer, sizes, helpers --------------------------------------------------------------
def test_tokenizer_round_trips_one_token_per_character(tmp_path):
    from transformers import AutoTokenizer

    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "Q: 23+45-17 (steps)\n23+45=68\n68-17=51\nAnswer: 51" + LAB_CHARS
    for t in (tok, loaded):
        ids = t(text)["input_ids"]
        assert ids[0] == t.bos_token_id and len(ids) == len(text) + 1
        assert t.unk_token_id not in ids
        assert t.decode(ids, skip_special_tokens=True) == text
    assert loaded.eos_token == "</s>" and loaded.pad_token == "<pad>" and loaded.bos_token == "<s>"


def test_model_family_sizes_span_10x_and_moe_matches_dense_sizes():
    counts = {n: param_counts(n) for n in LAB_MODELS}
    dense = [counts[n]["total"] for n in ("lab-s", "lab-m", "lab-l")]
    assert dense == sorted(dense) and dense[-1] / dense[0] >= 10
    moe = counts["lab-moe"]
    assert abs(moe["active"] / counts["lab-m"]["total"] - 1) < 0.05
    assert abs(moe["total"] / counts["lab-l"]["total"] - 1) < 0.15
    for spec in LAB_MODELS.values():
        assert spec.kv_heads < spec.heads  # grouped-query attention


def test_checkpoint_path_names_known_models():
    assert checkpoint_path("lab-l") == CHECKPOINT_DIR / "lab-l"
    with pytest.raises(KeyError, match="lab-s, lab-m, lab-l, lab-moe"):
        checkpoint_path("lab-xl")


def test_pass_at_k_matches_brute_force_over_subsets():
    from itertools import combinations

    n = 6
    for c in range(n + 1):
        flags = [1] * c + [0] * (n - c)
        for k in range(1, n + 1):
            brute = np.mean([any(s) for s in combinations(flags, k)])
            assert pass_at_k(n, c, k) == pytest.approx(brute)


def test_lr_schedule_warms_up_then_decays_to_floor():
    r = Recipe(steps=1000, warmup_steps=100, lr=1e-3, min_lr_frac=0.1)
    assert lr_at(0, r) == pytest.approx(1e-5)
    assert lr_at(99, r) == pytest.approx(1e-3)
    assert lr_at(999, r) == pytest.approx(1e-4, rel=1e-3)
    assert all(lr_at(s, r) >= lr_at(s + 1, r) for s in range(100, 999))


def test_training_mix_and_masks(task):
    r = Recipe(steps=40, batch_size=50)
    ex = make_examples(task, r, 2000)
    kinds = [k for _, _, k in ex]
    assert make_examples(task, r, 50) == ex[:50]  # seeded stream
    assert abs(kinds.count("direct") / 2000 - r.direct_frac) < 0.04
    trunc = kinds.count("truncated") / (2000 - kinds.count("direct"))
    assert abs(trunc - r.truncated_frac) < 0.04
    for context, target, kind in ex[:300]:
        if kind == "truncated":
            assert context.endswith(task.answer_trigger) and target.isdigit()
        elif kind == "cot":
            assert context.endswith("(steps)\n") and task.is_well_formed(target)
        else:
            assert context.endswith("(direct)\n") and task.is_well_formed(target, cot=False)
    tok = build_tokenizer()
    ids, mask, lab = next(make_batches(task, tok, Recipe(steps=1, batch_size=8)))
    first_ctx, first_tgt, _ = make_examples(task, Recipe(steps=1, batch_size=8), 1)[0]
    n_ctx = len(first_ctx) + 1  # + BOS
    assert (lab[0, :n_ctx] == -100).all()
    assert tok.decode(lab[0, n_ctx : n_ctx + len(first_tgt)]) == first_tgt
    assert int(lab[0, n_ctx + len(first_tgt)]) == tok.eos_token_id
    assert ((mask == 0) <= (lab == -100)).all()  # padding is never a target


def test_a_few_training_steps_write_a_loadable_checkpoint(tmp_path):
    out = train_model("lab-s", Recipe(steps=3, batch_size=8, threads=1), tmp_path / "ckpt", quiet=True)
    info = json.loads((out / "lab_training.json").read_text())
    assert info["recipe"]["steps"] == 3 and info["params"] == param_counts("lab-s")
    model, tok = load(out, threads=1)
    assert sum(p.numel() for p in model.parameters()) == info["params"]["total"]


# ---- committed checkpoints ------------------------------------------------------------------
@needs_checkpoints
def test_every_model_has_a_checkpoint_once_any_is_committed():
    assert TRAINED == list(LAB_MODELS), f"missing checkpoints: {sorted(set(LAB_MODELS) - set(TRAINED))}"
    total_bytes = sum(f.stat().st_size for f in CHECKPOINT_DIR.rglob("*") if f.is_file())
    assert total_bytes <= 30e6


@needs_checkpoints
@pytest.mark.parametrize("name", list(LAB_MODELS))
def test_checkpoint_loads_offline_and_greedy_output_is_well_formed(name, task, monkeypatch):
    if name not in TRAINED:
        pytest.fail(f"{name}: checkpoint missing under {checkpoint_path(name)}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = checkpoint_path(name)
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    spec = LAB_MODELS[name]
    assert type(model).__name__ == ("MixtralForCausalLM" if spec.experts else "LlamaForCausalLM")
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    assert sum(p.numel() for p in model.parameters()) == param_counts(name)["total"]
    tok.padding_side = "left"
    probs = list(task.problems("eval", per_level=2))
    cot = generate(model.eval(), tok, [task.format_prompt(p) for p in probs], _max_tokens(5, True))
    direct = generate(model, tok, [task.format_prompt(p, cot=False) for p in probs], _max_tokens(5, False))
    for p, (c,), (d,) in zip(probs, cot, direct, strict=True):
        assert task.is_well_formed(c), (name, p.question, c)
        assert task.is_well_formed(d, cot=False), (name, p.question, d)
        assert len(task.check_steps(c, p)) == int(p.difficulty) + 1


@needs_checkpoints
def test_largest_dense_model_solves_most_level_1_problems(task):
    model, tok = load("lab-l", threads=2)
    probs = list(task.problems("eval", per_level=40))[:40]  # level 1
    outs = generate(model, tok, [task.format_prompt(p) for p in probs], _max_tokens(1, True))
    acc = np.mean([task.is_correct(task.extract_answer(o), p) for (o,), p in zip(outs, probs, strict=True)])
    assert acc >= 0.6, acc
