"""Tiny randomly initialised checkpoints in Hugging Face format, for tests and smoke runs.

A real checkpoint folder (``config.json``, ``model.safetensors``, ``generation_config.json``,
tokenizer files) that every backend and ``transformers serve`` load like any other, made in
about a second with no download. The tokenizer is character-level (``tokenizers`` ``WordLevel``
over single characters, ``Split("", "isolated")`` pre-tokenizer, ``Fuse`` decoder), so one
character is one token and counts can be checked by hand. Its only special token is EOS
(``"</s>"``, also used for padding), so every generated token but EOS shows in the text.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TINY_CHARS", "make_tiny_checkpoint"]

#: characters of the tiny vocabulary (after the EOS token, id 0)
TINY_CHARS = "0123456789+-*/=()., abcdefghijklmnopqrstuvwxyz:#$\\{}\n"

#: a minimal chat template (user turns only), for testing chat=True
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def make_tiny_checkpoint(
    path: str | Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    seed: int = 0,
    chat_template: bool = False,
    experts: int = 0,
) -> Path:
    """Write a random ``LlamaForCausalLM`` (``layers`` x ``hidden``, grouped-query attention
    with ``kv_heads``) and its character tokenizer to ``path``; return ``path``. With
    ``experts > 0`` the model is a ``MixtralForCausalLM`` routing 2 of ``experts`` experts per token.

    ``generation_config.json`` sets ``do_sample=true`` so that servers which start from the
    checkpoint's generation config (``transformers serve``) sample when asked for a temperature.

    Examples
    --------
    >>> ckpt = make_tiny_checkpoint(tmp_path / "tiny")  # doctest: +SKIP
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        AutoModelForCausalLM,
        GenerationConfig,
        LlamaConfig,
        MixtralConfig,
        PreTrainedTokenizerFast,
    )

    path = Path(path)
    vocab = {"</s>": 0}
    for ch in TINY_CHARS:
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="</s>"))
    core.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="</s>", pad_token="</s>")
    if chat_template:
        tokenizer.chat_template = TINY_CHAT_TEMPLATE
    config_class = MixtralConfig if experts else LlamaConfig
    moe = dict(num_local_experts=experts, num_experts_per_tok=min(2, experts)) if experts else {}
    config = config_class(
        **moe,
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=512,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(do_sample=True, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
