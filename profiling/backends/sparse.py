"""Block top-k sparse attention at decode time: the setting, how a model spec names it, and
how many tokens a decoded token attends to.

What it does
------------
The KV cache of a sequence is cut into blocks of ``block_size`` consecutive tokens (default
:data:`BLOCK_SIZE` = 16, counted from the sequence's first real token, so left padding does
not move the boundaries). At each DECODE step, each query head scores every block by the
MAXIMUM of ``q . k`` over the block's keys (the max rather than the mean: one key the query
needs is enough to keep its block, where a mean would dilute it among 15 others), keeps the
``attn_blocks`` best-scoring blocks plus the most recent block (the one holding the token
being decoded, always kept), and attends to those tokens only, with a softmax over them. The
prefill is dense. Nothing is evicted: the whole KV cache is still held; only what each step
READS and multiplies shrinks, to at most :meth:`SparseAttention.attended_tokens` =
``min(context, (attn_blocks + 1) * block_size)`` tokens (a kernel reads whole blocks, so the
partly filled recent block counts in full).

How it is spelled, and why there
--------------------------------
A model spec takes the suffix ``@attn_blocks=K`` (``lab-m@attn_blocks=2``, a checkpoint
folder, ``hf:PATH``; ``@attn_blocks=K,block_size=B`` for another block size;
``@attn_blocks=all`` is dense: the plain model). The samples' model name is the spec itself
(``lab-m@attn_blocks=2``), and ``run.json`` records the setting beside the model's config
(``sparse_attention``), so the planner builds that model's :class:`~planner.costs.ModelSpec`
with the setting and prices EVERY option of it sparse. The setting is an attribute of how a
model is served (like its dtype or an MoE's routing), not of a test-time strategy: carried by
the model, a sparse variant is one more model the planner reads arms from, so dense vs sparse
becomes a dimension of every arm (greedy, pools, beam, ...) without touching any strategy
descriptor, exactly as MoE vs dense does; a strategy knob would have to be accepted, priced
and grouped by every descriptor. ``ttc costs --model NAME@attn_blocks=K`` prices any catalog
model the same way.

The attention function itself is :func:`profiling.backends._sparse_attention.block_topk_attention`
(registered with transformers' ``AttentionInterface``; the hf backend selects it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BLOCK_SIZE", "SparseAttention", "split_sparse_spec", "attention_groups"]

#: tokens per KV block (the default; ``@attn_blocks=K,block_size=B`` sets another)
BLOCK_SIZE = 16
_MARK = "@attn_blocks="
_SUFFIX = re.compile(r"@attn_blocks=([^,@]*)(?:,block_size=([^,@]*))?$")
_FORM = "MODEL@attn_blocks=K (K an integer >= 1, or all) or MODEL@attn_blocks=K,block_size=B"


@dataclass(frozen=True)
class SparseAttention:
    """Block top-k attention at decode time (module docstring): ``attn_blocks`` blocks chosen
    by score plus the most recent one, of ``block_size`` tokens each.

    Examples
    --------
    >>> s = SparseAttention(2)
    >>> s.suffix, s.max_attended
    ('@attn_blocks=2', 48)
    >>> [int(t) for t in s.attended_tokens([10, 48, 1000])]
    [10, 48, 48]
    """

    attn_blocks: int
    block_size: int = BLOCK_SIZE

    def __post_init__(self) -> None:
        for name in ("attn_blocks", "block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    @property
    def max_attended(self) -> int:
        """Most tokens one decode step attends to: ``(attn_blocks + 1) * block_size``."""
        return (int(self.attn_blocks) + 1) * int(self.block_size)

    def attended_tokens(self, context):
        """Tokens a decode step attends to when the sequence holds ``context`` tokens (the
        token being decoded included): ``min(context, (attn_blocks + 1) * block_size)``."""
        out = np.minimum(np.asarray(context, dtype=float), float(self.max_attended))
        return float(out) if np.ndim(out) == 0 else out

    @property
    def suffix(self) -> str:
        """The model-spec suffix that names this setting (``@attn_blocks=2``)."""
        extra = "" if self.block_size == BLOCK_SIZE else f",block_size={self.block_size}"
        return f"{_MARK}{self.attn_blocks}{extra}"

    def to_dict(self) -> dict[str, Any]:
        """What ``run.json`` records (``sparse_attention``) and the planner reads back."""
        return {
            "attn_blocks": int(self.attn_blocks),
            "block_size": int(self.block_size),
            "score": "max",
            "recent_blocks": 1,
            "phase": "decode",
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "run metadata") -> SparseAttention | None:
        """The setting recorded by :meth:`to_dict` (None for a dense model's ``None``)."""
        if data is None:
            return None
        try:
            return cls(int(data["attn_blocks"]), int(data.get("block_size", BLOCK_SIZE)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: sparse_attention must hold attn_blocks and block_size: {exc}"
            ) from None

    def check_context(self, context_tokens: int | None, model: str) -> None:
        """Refuse (one-line ``ValueError``) a setting whose ``attn_blocks`` blocks alone cover
        the model's whole context: it would never drop a block (write ``attn_blocks=all``)."""
        if context_tokens and self.attn_blocks * self.block_size >= context_tokens:
            raise ValueError(
                f"{model}{self.suffix}: {self.attn_blocks} blocks of {self.block_size} tokens cover the model's "
                f"whole context of {int(context_tokens)} tokens, so nothing is ever dropped; use attn_blocks=all "
                f"(dense) or at most {max(1, (int(context_tokens) - 1) // self.block_size)} blocks"
            )


def split_sparse_spec(spec: str) -> tuple[str, SparseAttention | None]:
    """``"lab-m@attn_blocks=2"`` -> ``("lab-m", SparseAttention(2))``; a spec without the suffix
    (or with ``attn_blocks=all``) -> ``(spec, None)``. Raises a one-line ``ValueError`` naming
    the spec for a malformed or out-of-range value, or a sparse ``vllm:``/``openai:`` spec (the
    setting runs on hf models only).

    Examples
    --------
    >>> split_sparse_spec("lab-m@attn_blocks=2")
    ('lab-m', SparseAttention(attn_blocks=2, block_size=16))
    >>> split_sparse_spec("lab-m@attn_blocks=all"), split_sparse_spec("lab-m")
    (('lab-m', None), ('lab-m', None))
    >>> split_sparse_spec("lab-m@attn_blocks=0")
    Traceback (most recent call last):
    ...
    ValueError: model spec 'lab-m@attn_blocks=0': attn_blocks must be an integer >= 1 or all, got '0'
    """
    if _MARK not in spec:
        return spec, None
    match = _SUFFIX.search(spec)
    base = spec[: match.start()] if match else ""
    if match is None or not base:
        raise ValueError(f"model spec {spec!r}: expected {_FORM}")
    blocks, size = match.group(1).strip(), (match.group(2) or str(BLOCK_SIZE)).strip()
    if blocks.lower() == "all":
        if match.group(2) is not None:
            raise ValueError(
                f"model spec {spec!r}: attn_blocks=all is dense; a block_size means nothing with it"
            )
        return base, None
    for name, text in (("attn_blocks", blocks), ("block_size", size)):
        if not text.isdigit() or int(text) < 1:
            extra = " or all" if name == "attn_blocks" else ""
            raise ValueError(f"model spec {spec!r}: {name} must be an integer >= 1{extra}, got {text!r}")
    if base.startswith(("openai:", "vllm:")):
        raise ValueError(f"model spec {spec!r}: sparse attention (@attn_blocks) runs on hf models only")
    return base, SparseAttention(int(blocks), int(size))


def attention_groups(strategies: list[str]) -> list[tuple[str, list[str]]]:
    """Strategy specs that spell the setting as a knob (``greedy:attn_blocks=2``, sweeps
    ``attn_blocks=2|all``) grouped by the model-spec suffix each value means: ``[(suffix,
    specs without the knob), ...]``, the dense group (suffix ``""``) first. The setting belongs
    to the model (module docstring), so ``ttc profile`` runs each group on its models with the
    suffix: ``--model lab-m --strategy greedy:attn_blocks=2`` profiles ``lab-m@attn_blocks=2``.

    Examples
    --------
    >>> attention_groups(["mcts:simulations=8", "greedy:attn_blocks=2"])
    [('', ['mcts:simulations=8']), ('@attn_blocks=2', ['greedy'])]
    >>> attention_groups(["greedy:attn_blocks=2|all,cot=false"])
    [('', ['greedy:cot=false']), ('@attn_blocks=2', ['greedy:cot=false'])]
    """
    groups: dict[str, list[str]] = {}
    for spec in strategies:
        name, _, rest = spec.partition(":")
        knobs = [kv for kv in rest.split(",") if kv.strip()] if rest else []
        mine = [kv for kv in knobs if kv.split("=", 1)[0].strip() == "attn_blocks"]
        others = [kv for kv in knobs if kv not in mine]
        plain = name + (":" + ",".join(others) if others else "")
        if len(mine) > 1:
            raise ValueError(f"strategy {spec!r}: attn_blocks is given {len(mine)} times; give it once")
        if not mine:
            groups.setdefault("", []).append(plain)
            continue
        for value in mine[-1].split("=", 1)[1].split("|"):
            _, setting = split_sparse_spec(f"{name}{_MARK}{value.strip()}")
            groups.setdefault(setting.suffix if setting is not None else "", []).append(plain)
    return sorted(groups.items(), key=lambda kv: (kv[0] != "", kv[0]))
