"""Validation of requests shared by the backends."""

from __future__ import annotations

from ._base import REASONING_EFFORTS, GenerationRequest


def check_request(request: GenerationRequest, index: int = 0) -> None:
    """Raise ``TypeError``/``ValueError`` naming request ``index`` and the field that is invalid.

    Examples
    --------
    >>> check_request(GenerationRequest("2+2=", n=0), 3)
    Traceback (most recent call last):
    ...
    ValueError: request 3: n must be >= 1, got 0
    """
    if not isinstance(request.prompt, str):
        raise TypeError(f"request {index}: prompt must be a string, got {type(request.prompt).__name__}")
    if request.n < 1:
        raise ValueError(f"request {index}: n must be >= 1, got {request.n}")
    if request.max_new_tokens < 1:
        raise ValueError(f"request {index}: max_new_tokens must be >= 1, got {request.max_new_tokens}")
    if request.temperature < 0:
        raise ValueError(f"request {index}: temperature must be >= 0, got {request.temperature}")
    if not 0.0 < request.top_p <= 1.0:
        raise ValueError(f"request {index}: top_p must be in (0, 1], got {request.top_p}")
    if isinstance(request.stop, str) or not all(isinstance(s, str) for s in request.stop):
        raise TypeError(f"request {index}: stop must be a tuple of strings, got {request.stop!r}")
    if request.reasoning_effort is not None and request.reasoning_effort not in REASONING_EFFORTS:
        raise ValueError(
            f"request {index}: reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, "
            f"got {request.reasoning_effort!r}"
        )
