"""Backends: models behind inference engines (see :mod:`profiling.backends._base`).

:func:`load_backend` resolves a spec string:

========================================  ==========================================================
spec                                      backend
========================================  ==========================================================
``lab-s`` (a lab model name)              :class:`HFBackend` on ``profiling.lab.checkpoint_path(name)``
``path/to/checkpoint`` or ``hf:PATH``     :class:`HFBackend` on a local checkpoint folder
``vllm:PATH_OR_NAME``                     :class:`VLLMBackend` (a lab name, a path or a hub name)
``openai:URL/MODEL``                      :class:`OpenAIBackend`, e.g. ``openai:http://127.0.0.1:8000/v1/lab-s``
``SPEC@attn_blocks=K`` (an hf spec)       :class:`HFBackend` decoding with block top-k sparse attention
                                          (:mod:`profiling.backends.sparse`), named ``SPEC@attn_blocks=K``
========================================  ==========================================================

A recorded data set is replayed by :class:`ReplayBackend` (:mod:`profiling.backends.replay`,
``ttc profile --backend replay --source PATH``): its models are built from the recording by
:class:`~profiling.backends.replay.ReplaySource`, not by a spec string.

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
    "VLLMBackend",
    "OpenAIBackend",
    "ReplayBackend",
    "SparseAttention",
    "lab_checkpoint",
    "load_backend",
    "split_openai_spec",
    "split_sparse_spec",
]

_LAZY = {"HFBackend": ".hf", "VLLMBackend": ".vllm", "OpenAIBackend": ".openai", "ReplayBackend": ".replay"}


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
    location, lab_name = _local_or_lab(spec.removeprefix("hf:"))
    if lab_name is not None and not Path(location).is_dir():
        raise FileNotFoundError(
            f"lab model {lab_name!r} has no checkpoint at {location} yet (train the lab models first)"
        )
    if Path(location).is_dir():
        from .hf import HFBackend

        if lab_name is not None:
            kwargs.setdefault("model_name", lab_name)
        if sparse is not None:
            kwargs["model_name"] = kwargs.get("model_name", Path(location).name) + sparse.suffix
            kwargs["sparse"] = sparse
        return HFBackend(location, **kwargs)
    raise ValueError(
        f"unknown backend spec {spec!r}: expected a lab model name, a local checkpoint folder, "
        "'hf:PATH', 'vllm:PATH_OR_NAME' or 'openai:http://HOST:PORT/v1/MODEL'"
    )
