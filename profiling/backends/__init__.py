"""Backends: models behind inference engines (see :mod:`profiling.backends._base`).

:func:`load_backend` resolves a spec string:

========================================  ==========================================================
spec                                      backend
========================================  ==========================================================
``lab-s`` (a lab model name)              the checkpoint ``profiling.lab.checkpoint_path(name)``, engine auto
``path/to/checkpoint``                    a local checkpoint folder, engine auto
``hf:PATH_OR_LAB``                        :class:`HFBackend` (transformers' ``generate``) on it
``fast:PATH_OR_LAB``                      :class:`FastLabBackend` (the fast decode loop) on it
``vllm:PATH_OR_NAME``                     :class:`VLLMBackend` (a lab name, a path or a hub name)
``openai:URL/MODEL``                      :class:`OpenAIBackend`, e.g. ``openai:http://127.0.0.1:8000/v1/lab-s``
``SPEC@attn_blocks=K`` (an hf spec)       :class:`HFBackend` decoding with block top-k sparse attention
                                          (:mod:`profiling.backends.sparse`), named ``SPEC@attn_blocks=K``
========================================  ==========================================================

A recorded data set is replayed by :class:`ReplayBackend` (:mod:`profiling.backends.replay`,
``ttc profile --backend replay --source PATH``): its models are built from the recording by
:class:`~profiling.backends.replay.ReplaySource`, not by a spec string.

Engine auto picks :class:`FastLabBackend` for a checkpoint its loop runs (Llama or Mixtral:
:func:`profiling.backends._decode.unsupported_reason`) of at most :data:`FAST_AUTO_MAX_PARAMS`
parameters (sizes where ``generate``'s per-step Python costs as much as the arithmetic), else
:class:`HFBackend`; :func:`with_engine` writes the spec that forces one (``ttc profile --engine``).
The two give the same samples under the rule stated in :mod:`profiling.backends.fastlab`.

For ``openai:``, the model is what follows ``/v1/`` when the URL has it (so a model name may
contain slashes: ``openai:http://host:8000/v1/Qwen/Qwen2.5-7B``), else the last path segment.
The backend classes are imported on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ._base import (
    REASONING_EFFORTS,
    UNFINISHED,
    Backend,
    Completion,
    ExhaustedUnit,
    GenerationRequest,
    GenerationResult,
)
from .sparse import SparseAttention, split_sparse_spec

__all__ = [
    "REASONING_EFFORTS",
    "UNFINISHED",
    "Backend",
    "Completion",
    "ExhaustedUnit",
    "GenerationRequest",
    "GenerationResult",
    "HFBackend",
    "FastLabBackend",
    "VLLMBackend",
    "OpenAIBackend",
    "ReplayBackend",
    "SparseAttention",
    "lab_checkpoint",
    "load_backend",
    "split_openai_spec",
    "split_sparse_spec",
    "ENGINES",
    "FAST_AUTO_MAX_PARAMS",
    "choose_engine",
    "with_engine",
]

#: generation loops of a local checkpoint; auto chooses (:func:`choose_engine`)
ENGINES = ("auto", "fast", "hf")
#: the largest checkpoint (parameters, estimated from config.json) that auto runs on the fast engine
FAST_AUTO_MAX_PARAMS = 50_000_000

_LAZY = {
    "HFBackend": ".hf",
    "FastLabBackend": ".fastlab",
    "VLLMBackend": ".vllm",
    "OpenAIBackend": ".openai",
    "ReplayBackend": ".replay",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def split_openai_spec(rest: str) -> tuple[str, str]:
    """``"http://host:8000/v1/lab-s"`` -> ``("http://host:8000/v1", "lab-s")``.

    Examples
    --------
    >>> split_openai_spec("http://127.0.0.1:8000/v1/Qwen/Qwen2.5-7B")
    ('http://127.0.0.1:8000/v1', 'Qwen/Qwen2.5-7B')
    >>> split_openai_spec("https://api.example.com/gpt-x")
    ('https://api.example.com', 'gpt-x')
    """
    if "://" not in rest:
        raise ValueError(
            f"openai spec needs a URL and a model (openai:http://HOST:PORT/v1/MODEL), got {rest!r}"
        )
    scheme, _, after = rest.partition("://")
    if "/v1/" in after:
        base, _, model = after.partition("/v1/")
        base += "/v1"
    else:
        base, _, model = after.rpartition("/")
    if not base or not model or "/" not in after:
        raise ValueError(
            f"openai spec needs a URL and a model (openai:http://HOST:PORT/v1/MODEL), got {rest!r}"
        )
    return f"{scheme}://{base}", model


def lab_checkpoint(name: str) -> Path | None:
    """The lab checkpoint folder for ``name`` (which may not be trained yet), or None when
    ``name`` is not a lab model."""
    checkpoint_path = None
    for module in ("profiling.lab", "profiling.lab.models"):
        try:
            checkpoint_path = getattr(importlib.import_module(module), "checkpoint_path", None)
        except ImportError:
            continue
        if checkpoint_path is not None:
            break
    if checkpoint_path is None:
        return None
    try:
        return Path(checkpoint_path(name))
    except (KeyError, ValueError, FileNotFoundError):
        return None


def _local_or_lab(spec: str) -> tuple[str, str | None]:
    """A checkpoint location for ``spec`` and the lab name when it is one."""
    if Path(spec).expanduser().exists():
        return str(Path(spec).expanduser()), None
    lab = lab_checkpoint(spec)
    if lab is not None:
        return str(lab), spec
    return spec, None


def with_engine(spec: str, engine: str) -> str:
    """``spec`` with its local checkpoint forced onto ``engine`` (one of :data:`ENGINES`; auto
    leaves the choice to :func:`load_backend`). Raises ``ValueError`` for an unknown engine, or
    for fast/hf with a served model (``openai:``, ``vllm:``).

    Examples
    --------
    >>> with_engine("lab-s", "hf"), with_engine("fast:lab-s", "auto"), with_engine("hf:ckpt", "fast")
    ('hf:lab-s', 'lab-s', 'fast:ckpt')
    """
    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if spec.startswith(("openai:", "vllm:")):
        if engine != "auto":
            raise ValueError(f"--engine {engine} applies to local checkpoints only, not to {spec!r}")
        return spec
    bare = spec.removeprefix("hf:").removeprefix("fast:")
    return bare if engine == "auto" else f"{engine}:{bare}"


def choose_engine(location: str | Path) -> tuple[str, str]:
    """``(engine, why)``: the engine auto picks for the checkpoint folder ``location``."""
    import json

    from ._decode import estimate_params, unsupported_reason

    try:
        config = json.loads((Path(location) / "config.json").read_text(encoding="utf-8"))
        reason = unsupported_reason(config)
        params = estimate_params(config) if reason is None else 0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return "hf", f"config.json not readable for the fast engine ({type(exc).__name__})"
    if reason is not None:
        return "hf", f"the fast engine does not run {reason}"
    if params > FAST_AUTO_MAX_PARAMS:
        return "hf", f"{params:,} parameters > {FAST_AUTO_MAX_PARAMS:,}"
    return "fast", f"{config['model_type']} with {params:,} parameters"


def load_backend(spec: str, **kwargs: Any) -> Backend:
    """A backend for ``spec`` (see the module docstring); ``kwargs`` go to its constructor.

    Examples
    --------
    >>> backend = load_backend("lab-s", device="cpu")  # doctest: +SKIP
    >>> backend = load_backend("openai:http://127.0.0.1:8000/v1/lab-s", max_concurrency=4)  # doctest: +SKIP
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"backend spec must be a non-empty string, got {spec!r}")
    spec, sparse = split_sparse_spec(spec)
    if spec.startswith("openai:"):
        from .openai import OpenAIBackend

        base_url, model = split_openai_spec(spec.removeprefix("openai:"))
        lab = lab_checkpoint(model)
        if lab is not None:  # a served lab model: count tokens with its own tokenizer
            kwargs.setdefault("tokenizer", str(lab))
        return OpenAIBackend(base_url, model, **kwargs)
    if spec.startswith("vllm:"):
        from .vllm import VLLMBackend

        location, lab_name = _local_or_lab(spec.removeprefix("vllm:"))
        if lab_name is not None:
            kwargs.setdefault("model_name", lab_name)
        return VLLMBackend(location, **kwargs)
    engine = "fast" if spec.startswith("fast:") else "hf" if spec.startswith("hf:") else "auto"
    location, lab_name = _local_or_lab(spec.removeprefix("hf:").removeprefix("fast:"))
    if lab_name is not None and not Path(location).is_dir():
        raise FileNotFoundError(
            f"lab model {lab_name!r} has no checkpoint at {location} yet (train the lab models first)"
        )
    if Path(location).is_dir():
        if lab_name is not None:
            kwargs.setdefault("model_name", lab_name)
        if sparse is not None:
            kwargs["model_name"] = kwargs.get("model_name", Path(location).name) + sparse.suffix
            kwargs["sparse"] = sparse
            if engine == "fast":
                raise ValueError(f"{spec}: sparse attention runs on the hf engine only (drop fast:)")
            engine = "hf"  # the fast engine has no sparse attention
        if engine == "auto":
            engine = choose_engine(location)[0]
        if engine == "fast":
            from .fastlab import FastLabBackend

            return FastLabBackend(location, **kwargs)
        from .hf import HFBackend

        return HFBackend(location, **kwargs)
    raise ValueError(
        f"unknown backend spec {spec!r}: expected a lab model name, a local checkpoint folder, "
        "'hf:PATH', 'fast:PATH', 'vllm:PATH_OR_NAME' or 'openai:http://HOST:PORT/v1/MODEL'"
    )
