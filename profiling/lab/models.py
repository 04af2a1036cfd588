"""The lab's model family, its character tokenizer, and where the checkpoints live.

Four models trained with one recipe (:mod:`profiling.lab.train`) so that size is the only
variable: three dense ``LlamaForCausalLM`` spanning 10x in parameters and one
``MixtralForCausalLM`` whose *active* parameters per token match ``lab-m`` and whose *total*
parameters are close to ``lab-l``. All use grouped-query attention (fewer KV heads than
query heads) and tied input/output embeddings.

The tokenizer is character-level (one character = one token): a ``tokenizers`` ``WordLevel``
vocabulary, ``Split("", "isolated")`` pre-tokenizer, ``Fuse`` decoder, wrapped in
``PreTrainedTokenizerFast``; it prepends ``<s>`` (BOS) to every text when special tokens are
added and uses ``</s>`` (EOS) and ``<pad>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LabModelSpec",
    "LAB_MODELS",
    "LAB_CHARS",
    "CHECKPOINT_DIR",
    "checkpoint_path",
    "build_tokenizer",
    "build_config",
    "param_counts",
]

#: characters of the vocabulary (after the special tokens <pad>, <s>, </s>, <unk>)
LAB_CHARS = "0123456789+-*/=()?:;.,!' \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
#: longest sequence the models are built for (a level-5 CoT example is ~110 tokens)
MAX_POSITIONS = 256
#: where ``save_pretrained`` folders live: ``CHECKPOINT_DIR / name``
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


@dataclass(frozen=True)
class LabModelSpec:
    """Shape of one lab model.

    ``hidden`` = d_model; ``intermediate`` = width of the SwiGLU MLP (of each expert for
    the MoE); ``heads`` query heads share ``kv_heads`` key/value heads (GQA); ``experts`` > 0
    makes a Mixtral MoE with ``experts_per_token`` experts routed per token.
    """

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    experts: int = 0
    experts_per_token: int = 0

    @property
    def architecture(self) -> str:
        return "moe" if self.experts else "dense"


#: name -> spec, smallest to largest dense, then the MoE
LAB_MODELS: dict[str, LabModelSpec] = {
    "lab-s": LabModelSpec("lab-s", hidden=64, layers=2, heads=4, kv_heads=2, intermediate=160),
    "lab-m": LabModelSpec("lab-m", hidden=96, layers=3, heads=4, kv_heads=2, intermediate=384),
    "lab-l": LabModelSpec("lab-l", hidden=128, layers=4, heads=4, kv_heads=2, intermediate=512),
    # each expert is half of lab-m's MLP, 2 of 6 routed: active MLP = lab-m's, total ~ lab-l
    "lab-moe": LabModelSpec(
        "lab-moe", hidden=96, layers=3, heads=4, kv_heads=2, intermediate=192, experts=6, experts_per_token=2
    ),
}


def checkpoint_path(name: str) -> Path:
    """The checkpoint folder of lab model ``name`` (it may not exist yet).

    Examples
    --------
    >>> checkpoint_path("lab-s").name
    'lab-s'
    """
    if name not in LAB_MODELS:
        raise KeyError(f"unknown lab model {name!r}; known: {', '.join(LAB_MODELS)}")
    return CHECKPOINT_DIR / name


def build_tokenizer() -> Any:
    """The lab's character tokenizer (a ``PreTrainedTokenizerFast``).

    Examples
    --------
    >>> tok = build_tokenizer()
    >>> tok.decode(tok("Q: 1+2 (steps)\\n")["input_ids"], skip_special_tokens=True)
    'Q: 1+2 (steps)\\n'
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    for ch in LAB_CHARS:
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def build_config(name: str, vocab_size: int) -> Any:
    """The transformers config of lab model ``name`` (Llama or Mixtral)."""
    spec = LAB_MODELS[name] if name in LAB_MODELS else None
    if spec is None:
        raise KeyError(f"unknown lab model {name!r}; known: {', '.join(LAB_MODELS)}")
    common: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        pad_token_id=_SPECIALS.index("<pad>"),
        bos_token_id=_SPECIALS.index("<s>"),
        eos_token_id=_SPECIALS.index("</s>"),
    )
    if spec.experts:
        from transformers import MixtralConfig

        return MixtralConfig(
            **common,
            num_local_experts=spec.experts,
            num_experts_per_tok=spec.experts_per_token,
            output_router_logits=False,
        )
    from transformers import LlamaConfig

    return LlamaConfig(**common)


def param_counts(name: str, vocab_size: int | None = None) -> dict[str, int]:
    """Total and active (per token) parameter counts of lab model ``name``, counted from
    the instantiated model (tied embeddings counted once).

    Active = total - (experts - experts_per_token) x (one expert's parameters) x layers.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if vocab_size is None:
        vocab_size = len(build_tokenizer())
    spec = LAB_MODELS[name]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(build_config(name, vocab_size))
    total = sum(p.numel() for p in model.parameters())
    expert = 3 * spec.hidden * spec.intermediate
    active = total - (spec.experts - spec.experts_per_token) * expert * spec.layers if spec.experts else total
    return {"total": int(total), "active": int(active)}
