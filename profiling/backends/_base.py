"""The backend contract: turn prompts into completions and measure what that took.

Every backend (``hf``, ``vllm``, ``openai``) implements :class:`Backend`. Strategies
talk only to this interface, so a strategy runs unchanged on every backend.

Call order::

    backend = load_backend("lab-s")                      # or a path, or "openai:URL/MODEL"
    meta = backend.metadata()                             # config, dtype, device, versions
    results = backend.generate([GenerationRequest(prompt, n=16, temperature=1.0, seed=0)])
    backend.close()

Measurement rules (docs/design.md): every number a backend returns is measured, never an
expected value. Token counts come from the backend's tokenizer or from server ``usage``
fields; ``latency_s`` is wall time (``time.perf_counter``, with ``torch.cuda.synchronize``
on GPU); ``kv_bytes_peak`` is read from the cache the backend actually holds and
``kv_source`` says how, or both are None when the backend cannot see its cache.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "GenerationRequest",
    "Completion",
    "GenerationResult",
    "Backend",
    "UNFINISHED",
    "ExhaustedUnit",
    "REASONING_EFFORTS",
]

#: the reasoning efforts a request may ask for (the OpenAI API's ``reasoning_effort`` values)
REASONING_EFFORTS = ("low", "medium", "high")

#: finish reasons of a sample the engine did not finish (vLLM: an aborted request, an engine
#: error): its text is partial, so the runner never writes a unit that used one
UNFINISHED = ("abort", "error")


@dataclass(frozen=True)
class ExhaustedUnit:
    """A unit a backend refuses because its recorded pool is used up (the replay backend):
    nothing is written for it and nothing is invented; the runner records ``reason`` in
    ``run.json`` and warns."""

    reason: str


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt and how to sample ``n`` continuations of it (sharing the prompt prefix)."""

    prompt: str
    n: int = 1
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 means greedy decoding
    top_p: float = 1.0
    stop: tuple[str, ...] = ()  # stop strings; the stop string itself is not part of the text
    seed: int | None = None
    #: how long a reasoning model thinks (:data:`REASONING_EFFORTS`), sent as the API's
    #: ``reasoning_effort``; None: not sent. Only backends that list it in
    #: :attr:`Backend.request_options` honour it.
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class Completion:
    """One generated continuation."""

    text: str
    completion_tokens: int  # measured: tokens actually generated for this continuation
    logprob: float | None = None  # mean token log-probability of the continuation
    # "stop" (EOS or stop string) or "length"; vLLM may also report "abort", "error" (partial
    # text: see UNFINISHED) or "repetition" (its repetition detector stopped the sample)
    finish_reason: str = "stop"


@dataclass(frozen=True)
class GenerationResult:
    """The completions of one request and what producing them cost, as measured."""

    completions: list[Completion]
    prompt_tokens: int
    latency_s: float  # wall time attributed to this request (see the backend's docs for batches)
    ttft_s: float | None = None  # time to first token, where the backend streams
    kv_bytes_peak: float | None = None  # KV-cache bytes held at the peak of this request
    kv_source: str | None = None  # how kv_bytes_peak was measured
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """A model behind some inference engine."""

    #: short backend name written to the samples table ("hf", "vllm", "openai")
    name: str = ""
    #: model name written to the samples table (lab name, checkpoint folder name, or served name)
    model_name: str = ""
    #: optional request fields this backend sends to its engine (``reasoning_effort``: openai)
    request_options: frozenset[str] = frozenset()

    @abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Run ``requests`` (possibly batched together) and return one result per request,
        in order. Each request's ``n`` samples share its prompt prefix."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under this model's tokenizer."""

    def metadata(self) -> dict[str, Any]:
        """Run metadata: model config (dict), dtype, device, library versions, seeds."""
        return {"backend": self.name, "model": self.model_name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model and any server connection."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
