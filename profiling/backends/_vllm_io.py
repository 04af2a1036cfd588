"""Request building and output parsing of the vllm backend: pure functions on vLLM's
``SamplingParams``/``RequestOutput``/metrics shapes, without importing vLLM (see
:mod:`profiling.backends.vllm`; ``tests/test_vllm_conformance.py`` runs them on vLLM's real
classes)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Sequence
from typing import Any

from ._base import Completion, GenerationRequest, GenerationResult
from ._checks import check_request

__all__ = [
    "KV_GAUGES",
    "GREEDY_TEMPERATURE",
    "FINISH_REASONS",
    "is_greedy",
    "sampling_params_kwargs",
    "prompt_token_ids",
    "parse_request_output",
    "engine_timing",
    "kv_usage_fraction",
    "proportional_shares",
    "model_runner_version",
    "validation_errors",
]

KV_GAUGES = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
#: vLLM's ``_SAMPLING_EPS``: a temperature below it means greedy sampling
GREEDY_TEMPERATURE = 1e-5
#: finish reasons vLLM reports (``vllm.v1.engine.FinishReason``)
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")


def is_greedy(request: GenerationRequest) -> bool:
    """True when vLLM treats ``request`` as greedy (temperature below 1e-5).

    Examples
    --------
    >>> is_greedy(GenerationRequest("2+2=", n=4)), is_greedy(GenerationRequest("2+2=", temperature=0.7))
    (True, False)
    """
    return request.temperature < GREEDY_TEMPERATURE


def sampling_params_kwargs(request: GenerationRequest, *, logprobs: bool = True) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for ``request``; ``n`` is 1 for greedy
    requests (vLLM rejects greedy sampling with ``n > 1``: the backend replicates the result).

    Examples
    --------
    >>> kw = sampling_params_kwargs(GenerationRequest("2+2=", n=4, temperature=0.7, stop=("\\n",), seed=3))
    >>> kw["n"], kw["seed"], kw["stop"], kw["logprobs"], kw["max_tokens"]
    (4, 3, ['\\n'], 0, 256)
    >>> sampling_params_kwargs(GenerationRequest("2+2=", n=4))["n"]
    1
    """
    check_request(request)
    return {
        "n": 1 if is_greedy(request) else int(request.n),
        "temperature": float(request.temperature),
        "top_p": float(request.top_p),
        "max_tokens": int(request.max_new_tokens),
        "stop": [s for s in request.stop if s] or None,
        "seed": None if request.seed is None else int(request.seed),
        "logprobs": 0 if logprobs else None,
        "include_stop_str_in_output": False,
    }


def prompt_token_ids(tokenizer: Any, prompt: str, *, chat: bool = False) -> list[int]:
    """Token ids of ``prompt`` as the backend sends them: a plain prompt tokenized as vLLM
    tokenizes text (``add_special_tokens=True``); a chat prompt rendered by the chat template
    (one user message, generation prompt added) and tokenized with ``add_special_tokens=False``,
    since the template already holds BOS.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> tok = NS(encode=lambda text, add_special_tokens: [1] * add_special_tokens + [ord(c) for c in text],
    ...          apply_chat_template=lambda messages, tokenize, add_generation_prompt: "<s>[" + messages[0]["content"] + "]")
    >>> prompt_token_ids(tok, "ab")
    [1, 97, 98]
    >>> prompt_token_ids(tok, "ab", chat=True)[:2]  # the template's BOS, once
    [60, 115]
    """
    if not chat:
        return list(tokenizer.encode(prompt, add_special_tokens=True))
    messages = [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer.encode(text, add_special_tokens=False))


def _mean_logprob(completion: Any, tokens: int) -> float | None:
    cumulative = getattr(completion, "cumulative_logprob", None)
    if cumulative is not None and tokens > 0:
        return float(cumulative) / tokens
    entries = getattr(completion, "logprobs", None)
    token_ids = list(getattr(completion, "token_ids", []) or [])
    if not entries or not token_ids:
        return None
    values = []
    for token_id, entry in zip(token_ids, entries, strict=False):
        lp = entry.get(token_id) if isinstance(entry, dict) else None
        value = getattr(lp, "logprob", lp)
        if value is not None:
            values.append(float(value))
    return sum(values) / len(values) if values else None


def engine_timing(metrics: Any) -> dict[str, float]:
    """Per-request engine timings (seconds) from ``RequestOutput.metrics``, where present.

    Reads V1 ``RequestStateStats`` (``first_token_latency``: front-end time from arrival to the
    first token, vLLM's TTFT; ``queued_ts``, ``scheduled_ts``, ``first_token_ts``,
    ``last_token_ts``: engine-core monotonic clock, giving the queue and prefill times and, when
    ``first_token_latency`` is unset, TTFT from the queue) or V0 ``RequestMetrics``
    (``arrival_time``, ``first_token_time``, ``last_token_time``).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> engine_timing(NS(queued_ts=1.0, scheduled_ts=1.5, first_token_ts=2.0, last_token_ts=4.0))
    {'engine_ttft_s': 1.0, 'engine_e2e_s': 3.0, 'engine_queued_s': 0.5, 'engine_prefill_s': 0.5}
    """
    if metrics is None:
        return {}

    def get(name: str) -> float | None:
        value = getattr(metrics, name, None)
        return float(value) if isinstance(value, (int, float)) and value > 0 else None

    out: dict[str, float] = {}
    queued, scheduled, first, last = (
        get(k) for k in ("queued_ts", "scheduled_ts", "first_token_ts", "last_token_ts")
    )
    if get("first_token_latency") is not None:
        out["engine_ttft_s"] = get("first_token_latency")  # type: ignore[assignment]
    elif first is not None and queued is not None:
        out["engine_ttft_s"] = first - queued
    if last is not None and queued is not None:
        out["engine_e2e_s"] = last - queued
    if scheduled is not None and queued is not None:
        out["engine_queued_s"] = scheduled - queued
    if first is not None and scheduled is not None:
        out["engine_prefill_s"] = first - scheduled
    arrival, first0, last0 = (get(k) for k in ("arrival_time", "first_token_time", "last_token_time"))
    if not out and arrival is not None:
        if first0 is not None:
            out["engine_ttft_s"] = first0 - arrival
        if last0 is not None:
            out["engine_e2e_s"] = last0 - arrival
    return out


def _finish_reason(value: Any) -> str:
    reason = "" if value is None else str(value).lower()
    return reason if reason in FINISH_REASONS else f"unknown:{reason or None}"


def parse_request_output(
    output: Any,
    *,
    latency_s: float,
    kv_bytes_peak: float | None = None,
    kv_source: str | None = None,
    extra: dict[str, Any] | None = None,
    replicate: int = 1,
) -> GenerationResult:
    """A :class:`GenerationResult` from a vLLM ``RequestOutput`` (or an object shaped like one).

    ``replicate=n`` repeats a single (greedy) completion ``n`` times. ``finish_reason`` is
    vLLM's own (``stop``, ``length``, ``abort``, ``error``, ``repetition``);
    ``extra["cached_prompt_tokens"]`` is ``num_cached_tokens`` (prefix-cache hits).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> out = NS(prompt_token_ids=[1, 2, 3], metrics=None, num_cached_tokens=0, outputs=[
    ...     NS(text="4", token_ids=[7, 2], cumulative_logprob=-1.0, logprobs=None, finish_reason="stop")])
    >>> r = parse_request_output(out, latency_s=0.5)
    >>> r.prompt_tokens, r.completions[0].completion_tokens, r.completions[0].logprob
    (3, 2, -0.5)
    """
    completions = []
    for c in sorted(output.outputs, key=lambda c: getattr(c, "index", 0)):
        tokens = len(list(c.token_ids or []))
        completions.append(
            Completion(
                text=c.text,
                completion_tokens=tokens,
                logprob=_mean_logprob(c, tokens),
                finish_reason=_finish_reason(getattr(c, "finish_reason", None)),
            )
        )
    if replicate > 1:
        if len(completions) != 1:
            raise ValueError(f"replicate={replicate} needs one completion, got {len(completions)}")
        completions = completions * replicate
    timing = engine_timing(getattr(output, "metrics", None))
    cached = getattr(output, "num_cached_tokens", None)
    preempted = getattr(getattr(output, "metrics", None), "num_preemptions", None)
    own: dict[str, Any] = {**timing, "cached_prompt_tokens": cached}
    if isinstance(preempted, int):
        own["num_preemptions"] = preempted
    if replicate > 1:
        own["greedy_replicated"] = replicate
    return GenerationResult(
        completions=completions,
        prompt_tokens=len(list(output.prompt_token_ids or [])),
        latency_s=float(latency_s),
        ttft_s=timing.get("engine_ttft_s"),
        kv_bytes_peak=kv_bytes_peak,
        kv_source=kv_source,
        extra={**own, **(extra or {})},
    )


def kv_usage_fraction(metrics: Iterable[Any]) -> float | None:
    """The KV usage gauge (0-1) among ``LLM.get_metrics()`` results; the largest over engines.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> kv_usage_fraction([NS(name="vllm:num_requests_running", value=3.0), NS(name="vllm:kv_cache_usage_perc", value=0.25)])
    0.25
    """
    values = [
        float(m.value) for m in metrics if getattr(m, "name", None) in KV_GAUGES and hasattr(m, "value")
    ]
    return max(values) if values else None


def proportional_shares(total: float, weights: Sequence[float]) -> list[float]:
    """``total`` split in proportion to ``weights`` (equal split when all weights are 0).

    Examples
    --------
    >>> proportional_shares(3.0, [1, 2])
    [1.0, 2.0]
    """
    s = float(sum(weights))
    if s <= 0:
        return [total / len(weights)] * len(weights) if weights else []
    return [total * w / s for w in weights]


def model_runner_version(vllm_config: Any) -> str | None:
    """``"v2"`` or ``"v1"``: the GPU model runner the engine config selects
    (``VllmConfig.use_v2_model_runner``, else the ``VLLM_USE_V2_MODEL_RUNNER`` variable), or
    None when neither says."""
    try:
        v2 = vllm_config.use_v2_model_runner
    except Exception:  # noqa: BLE001 - older vLLM has no such property; a failing one says nothing
        v2 = None
    if isinstance(v2, bool):
        return "v2" if v2 else "v1"
    env = os.environ.get("VLLM_USE_V2_MODEL_RUNNER")
    if env is not None and env.strip().lower() in ("1", "true", "0", "false"):
        return "v2" if env.strip().lower() in ("1", "true") else "v1"
    return None


def validation_errors(vllm: Any) -> tuple[type[BaseException], ...]:
    """Exception types vLLM raises for invalid requests (``VLLMValidationError`` is not a
    ``ValueError`` in recent versions)."""
    found: list[type[BaseException]] = [ValueError, TypeError]
    try:
        cls = getattr(importlib.import_module(f"{vllm.__name__}.exceptions"), "VLLMValidationError", None)
    except ImportError:
        cls = None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        found.append(cls)
    return tuple(found)
