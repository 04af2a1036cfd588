"""Specs from given numbers: price an architecture that no config, catalog entry or lab
checkpoint covers.

Four numbers are enough: ``params`` (total parameters), ``layers``, ``kv_heads`` and
``head_dim``; they give the weight bytes, the KV bytes per token
(``2 kv_heads head_dim layers x dtype bytes``) and the context growth of every cost. Written
on the command line as ``NAME=params:8.0e9,layers:32,kv_heads:8,head_dim:128`` (``--model-spec``)
or in a catalog file as a ``[models.NAME]`` table with the same keys instead of a ``[config]``.

Optional keys: ``active_params`` (MoE; then ``experts`` and ``experts_per_token`` are needed
to price the expert weights a batch reads), ``heads`` (query heads; the attention FLOPs are
``4 heads head_dim`` per layer and context token), ``hidden``, ``context`` (longest sequence)
and ``dtype``.

ASSUMPTIONS, recorded in :attr:`ModelSpec.assumptions`:

* every given parameter is a matmul weight: ``2 x active params`` FLOPs per token (Kaplan et
  al. 2020's ``2N``; it counts the embedding as if it were a matmul, which overstates a
  token's FLOPs by ``2 V h``, under 10% at >= 1B parameters);
* without ``heads``: ``heads x head_dim = hidden`` with ``hidden`` given, else the hidden size
  estimated from ``12 layers hidden^2 ~ active params`` (the dense-transformer count, Kaplan
  et al. 2020, Table 1) and the heads rounded to a multiple of ``kv_heads``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .spec import DTYPE_BYTES, LayerSpec, ModelSpec, SpecError

__all__ = ["parse_model_spec", "looks_like_numbers", "spec_from_numbers", "spec_from_fields", "FIELDS"]

EXAMPLE = "NAME=params:8.0e9,layers:32,kv_heads:8,head_dim:128"
REQUIRED = ("params", "layers", "kv_heads", "head_dim")
#: field -> (kind, meaning)
FIELDS: dict[str, tuple[str, str]] = {
    "params": ("number", "total parameters"),
    "layers": ("int", "decoder layers"),
    "kv_heads": ("int", "key/value heads"),
    "head_dim": ("int", "dimension of one head"),
    "active_params": ("number", "parameters one token uses (MoE)"),
    "heads": ("int", "query heads"),
    "hidden": ("int", "hidden size"),
    "experts": ("int", "routed experts per MoE layer"),
    "experts_per_token": ("int", "experts each token runs"),
    "context": ("int", "longest sequence in tokens"),
    "dtype": ("str", "weight and KV dtype"),
}
_ALIASES = {"top_k": "experts_per_token", "n_layers": "layers", "num_layers": "layers", "kv": "kv_heads"}
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_PAIR = re.compile(r"^\s*[A-Za-z_]+\s*:")


def looks_like_numbers(text: str) -> bool:
    """True for ``NAME=key:value,...`` or ``key:value,...`` (rather than a name or a path)."""
    body = text.split("=", 1)[1] if "=" in text else text
    return bool(_PAIR.match(body)) and "/" not in body and "\\" not in body


def _number(where: str, key: str, raw: str) -> float:
    text = raw.strip().lower().replace("_", "")
    scale = 1.0
    if text and text[-1] in _SUFFIX:
        text, scale = text[:-1], _SUFFIX[text[-1]]
    try:
        value = float(text) * scale
    except ValueError:
        raise SpecError(f"{where}: field {key!r} must be a number (e.g. 8.0e9 or 8B), got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SpecError(f"{where}: field {key!r} must be > 0, got {raw!r}")
    return value


def parse_model_spec(text: str, *, name: str | None = None, dtype: str | None = None) -> ModelSpec:
    """A :class:`ModelSpec` from ``NAME=params:8.0e9,layers:32,kv_heads:8,head_dim:128``.

    Raises one-line :class:`SpecError` naming the missing, unknown or malformed fields.

    Examples
    --------
    >>> spec = parse_model_spec("mine=params:8e9,layers:32,kv_heads:8,head_dim:128")
    >>> spec.name, spec.num_layers, spec.kv_bytes_per_token
    ('mine', 32, 131072.0)
    """
    where = f"--model-spec {text!r}"
    label, body = text.split("=", 1) if "=" in text else (None, text)
    fields: dict[str, Any] = {}
    for part in body.split(","):
        if not part.strip():
            continue
        if ":" not in part:
            raise SpecError(f"{where}: {part.strip()!r} is not key:value (expected {EXAMPLE})")
        key, value = (s.strip() for s in part.split(":", 1))
        key = _ALIASES.get(key, key)
        if key in fields:  # the last of two would win silently
            raise SpecError(f"{where}: field {key!r} given twice ({fields[key]} and {value}); give it once")
        fields[key] = value
    return spec_from_fields((name or (label or "").strip() or "given"), fields, where=where, dtype=dtype)


def spec_from_fields(name: str, fields: dict[str, Any], *, where: str, dtype: str | None = None) -> ModelSpec:
    """A :class:`ModelSpec` from a mapping of :data:`FIELDS` (strings or numbers), as parsed from
    the command line or read from a catalog table; errors name ``where`` and the fields."""
    fields = {_ALIASES.get(k, k): v for k, v in fields.items()}
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    missing = [k for k in REQUIRED if k not in fields]
    if missing:
        raise SpecError(f"{where}: missing field(s) {', '.join(missing)} (expected {EXAMPLE})")
    values: dict[str, Any] = {}
    for key, raw in fields.items():
        kind = FIELDS[key][0]
        if kind == "str":
            values[key] = str(raw)
            continue
        value = raw if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
        if value is None:
            value = _number(where, key, str(raw))
        elif not value > 0:
            raise SpecError(f"{where}: field {key!r} must be > 0, got {raw!r}")
        if kind == "int":
            if float(value) != int(value):
                raise SpecError(f"{where}: field {key!r} must be a whole number, got {raw!r}")
            value = int(value)
        values[key] = value
    return spec_from_numbers(name, where=where, dtype=dtype or values.pop("dtype", None), **values)


def _check_experts(where: str, n_exp: int, top_k: int, sparse: bool) -> None:
    """Refuse expert counts that cannot describe one MoE (or would be priced as a dense model
    without a word): one of the two alone, more experts per token than experts, or experts
    that a token does not all run without the ``active_params`` that say how many weights it uses."""
    if bool(n_exp) != bool(top_k):
        given, lacking = ("experts", "experts_per_token") if n_exp else ("experts_per_token", "experts")
        raise SpecError(f"{where}: {given} needs {lacking} too")
    if top_k > n_exp:
        raise SpecError(f"{where}: experts_per_token ({top_k}) exceeds experts ({n_exp})")
    if top_k < n_exp and not sparse:
        raise SpecError(
            f"{where}: {top_k} of {n_exp} experts per token needs active_params (the parameters one "
            "token uses, below params); without it the model would be priced as dense"
        )


def spec_from_numbers(
    name: str,
    *,
    params: float,
    layers: int,
    kv_heads: int,
    head_dim: int,
    active_params: float | None = None,
    heads: int | None = None,
    hidden: int | None = None,
    experts: int | None = None,
    experts_per_token: int | None = None,
    context: int | None = None,
    dtype: str | None = None,
    where: str | None = None,
) -> ModelSpec:
    """A :class:`ModelSpec` whose totals equal the given numbers (module docstring).

    The parameters are spread evenly over ``layers`` identical layers (a dense block plus,
    for MoE, ``experts`` experts of which ``experts_per_token`` run), with no separate
    embedding; the rounding remainder (fewer than ``layers x experts`` parameters) is held
    outside the layers so that :attr:`ModelSpec.params_total` equals ``params`` exactly.
    """
    where = where or f"model {name!r}"
    total = int(round(params))
    active = total if active_params is None else int(round(active_params))
    if active > total:
        raise SpecError(f"{where}: active_params ({active:,}) exceeds params ({total:,})")
    notes = ["2 FLOPs per given parameter per token (2N; the embedding counted as a matmul)"]
    n_exp, top_k = int(experts or 0), int(experts_per_token or 0)
    _check_experts(where, n_exp, top_k, active < total)
    if active < total:
        lacking = [k for k, v in (("experts", n_exp), ("experts_per_token", top_k)) if not v]
        if lacking:
            raise SpecError(
                f"{where}: active_params < params needs {' and '.join(lacking)} "
                "(to price the expert weights a batch reads)"
            )
        if top_k >= n_exp:
            raise SpecError(f"{where}: experts_per_token ({top_k}) must be < experts ({n_exp})")
        expert = (total - active) // (layers * (n_exp - top_k))
        dense = active // layers - top_k * expert
        if dense < 0:
            raise SpecError(f"{where}: active_params too small for {top_k} of {n_exp} experts per token")
    else:
        n_exp = top_k = expert = 0
        dense = total // layers
    rest = total - layers * (dense + n_exp * expert)
    if heads is None:
        if hidden is not None:
            heads = max(1, hidden // head_dim)
            notes.append(f"heads = hidden / head_dim = {heads}")
        else:
            est = math.sqrt(active / (12.0 * layers))
            heads = max(kv_heads, int(round(est / head_dim / kv_heads)) * kv_heads)
            notes.append(
                f"heads ESTIMATED as {heads} from 12 x layers x hidden^2 = active params (give heads: for exact attention FLOPs)"
            )
    if heads % kv_heads:
        raise SpecError(f"{where}: heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
    hidden = hidden or heads * head_dim
    dtype_name = str(dtype or "bfloat16").removeprefix("torch.").lower()
    if dtype_name not in DTYPE_BYTES:
        raise SpecError(
            f"{where}: field 'dtype': unknown dtype {dtype!r}; known: {', '.join(sorted(DTYPE_BYTES))}"
        )
    layer = LayerSpec(
        attn_matmul=0, dense_matmul=dense, expert_matmul=expert, num_experts=n_exp, experts_per_token=top_k
    )
    if kv_heads == heads:
        kind = "MHA"
    elif kv_heads == 1:
        kind = "MQA"
    else:
        kind = "GQA"
    return ModelSpec(
        name=name,
        model_type="given",
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=0,
        tie_word_embeddings=True,
        layers=(layer,) * layers,
        attention=kind,
        weight_bytes_per_param=DTYPE_BYTES[dtype_name],
        kv_dtype_bytes=DTYPE_BYTES[dtype_name],
        dtype=dtype_name,
        final_norm_params=rest,
        max_context_tokens=context,
        assumptions=tuple(notes),
        source=f"given numbers ({where})",
    )
