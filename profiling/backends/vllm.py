"""vLLM backend (offline ``LLM`` API, GPU): ``pip install ttc-planner[vllm]``.

Written from vLLM's documentation (V1 engine); it could not be run where it was written (no GPU,
no vLLM), so the pure functions below, which build requests and parse outputs, are what the
tests check, on objects shaped like vLLM's.

How a call runs and what is measured
------------------------------------
* All requests go to ONE ``LLM.generate`` call, one ``SamplingParams`` each (``n``, ``seed``,
  ``temperature``, ``top_p``, ``max_tokens``, ``stop``, ``logprobs=0``: the drawn token's
  log-prob only). vLLM schedules them with continuous batching; ``enable_prefix_caching=True``
  lets a request's ``n`` samples (and requests with a common prefix) share prompt KV blocks.
* ``completion_tokens`` = ``len(CompletionOutput.token_ids)`` (vLLM's own count: EOS and the
  tokens of a stop string included, the stop string excluded from the text);
  ``prompt_tokens`` = ``len(RequestOutput.prompt_token_ids)``; ``logprob`` =
  ``cumulative_logprob / completion_tokens`` (raw model log-probs in V1, before temperature).
* ``latency_s``: the batch's wall time (``time.perf_counter`` around ``generate``), attributed
  to requests in proportion to their generated tokens, as in the ``hf`` backend; per-request
  engine timings (``RequestOutput.metrics``) go to ``extra`` and ``ttft_s`` when present.
* ``kv_bytes_peak``: vLLM does not expose the blocks a request holds, so a thread samples the
  engine's KV usage gauge (``vllm:kv_cache_usage_perc``, older ``vllm:gpu_cache_usage_perc``,
  via ``LLM(disable_log_stats=False).get_metrics()``) every ``kv_poll_s`` during the call; the
  batch's KV peak is ``peak usage fraction * total KV cache bytes``, where the total is
  ``num_gpu_blocks * block bytes`` from the engine's cache config and
  ``block bytes = 2 * layers * kv_heads * head_size * block_size * dtype bytes`` (times the
  tensor-parallel size). A request's share is proportional to its tokens (prompt plus
  generated). ``kv_source`` says so, or says why it is None.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ._base import Backend, Completion, GenerationRequest, GenerationResult
from ._checks import check_request

__all__ = [
    "VLLMBackend",
    "sampling_params_kwargs",
    "parse_request_output",
    "engine_timing",
    "kv_usage_fraction",
    "kv_block_bytes",
    "proportional_shares",
]

KV_GAUGES = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
KV_SOURCE = "vllm-kv-usage-gauge-peak x kv-cache-bytes, shared by tokens"
INSTALL_HINT = "the vllm backend needs vLLM: pip install ttc-planner[vllm] (Linux with a CUDA GPU)"


def sampling_params_kwargs(request: GenerationRequest, *, logprobs: bool = True) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for ``request``.

    Examples
    --------
    >>> kw = sampling_params_kwargs(GenerationRequest("2+2=", n=4, temperature=0.7, stop=("\\n",), seed=3))
    >>> kw["n"], kw["seed"], kw["stop"], kw["logprobs"], kw["max_tokens"]
    (4, 3, ['\\n'], 0, 256)
    """
    check_request(request)
    return {
        "n": int(request.n),
        "temperature": float(request.temperature),
        "top_p": float(request.top_p),
        "max_tokens": int(request.max_new_tokens),
        "stop": [s for s in request.stop if s] or None,
        "seed": None if request.seed is None else int(request.seed),
        "logprobs": 0 if logprobs else None,
        "include_stop_str_in_output": False,
    }


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

    Reads V1 ``RequestStateStats`` (``queued_ts``, ``scheduled_ts``, ``first_token_ts``,
    ``last_token_ts``, engine-core monotonic clock; or ``first_token_latency``) or V0
    ``RequestMetrics`` (``arrival_time``, ``first_token_time``, ``last_token_time``).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> engine_timing(NS(queued_ts=1.0, scheduled_ts=1.5, first_token_ts=2.0, last_token_ts=4.0))
    {'engine_ttft_s': 0.5, 'engine_e2e_s': 3.0, 'engine_queued_s': 0.5}
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
    elif first is not None and scheduled is not None:
        out["engine_ttft_s"] = first - scheduled
    if last is not None and queued is not None:
        out["engine_e2e_s"] = last - queued
    if scheduled is not None and queued is not None:
        out["engine_queued_s"] = scheduled - queued
    arrival, first0, last0 = (get(k) for k in ("arrival_time", "first_token_time", "last_token_time"))
    if not out and arrival is not None:
        if first0 is not None:
            out["engine_ttft_s"] = first0 - arrival
        if last0 is not None:
            out["engine_e2e_s"] = last0 - arrival
    return out


def parse_request_output(
    output: Any,
    *,
    latency_s: float,
    kv_bytes_peak: float | None = None,
    kv_source: str | None = None,
    extra: dict[str, Any] | None = None,
) -> GenerationResult:
    """A :class:`GenerationResult` from a vLLM ``RequestOutput`` (or an object shaped like one).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> out = NS(prompt_token_ids=[1, 2, 3], metrics=None, outputs=[
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
                finish_reason="length" if c.finish_reason == "length" else "stop",
            )
        )
    timing = engine_timing(getattr(output, "metrics", None))
    return GenerationResult(
        completions=completions,
        prompt_tokens=len(list(output.prompt_token_ids or [])),
        latency_s=float(latency_s),
        ttft_s=timing.get("engine_ttft_s"),
        kv_bytes_peak=kv_bytes_peak,
        kv_source=kv_source,
        extra={**timing, **(extra or {})},
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


def kv_block_bytes(
    num_layers: int, num_kv_heads: int, head_size: int, block_size: int, dtype_bytes: int
) -> int:
    """Bytes of one paged KV block: :math:`2 L H_{kv} d_{head} B b` (keys and values).

    Examples
    --------
    >>> kv_block_bytes(32, 8, 128, 16, 2)  # Llama-3-8B, bf16, 16-token blocks
    2097152
    """
    return 2 * num_layers * num_kv_heads * head_size * block_size * dtype_bytes


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


class VLLMBackend(Backend):
    """A model run with vLLM's offline ``LLM`` engine (see the module docstring).

    Parameters
    ----------
    model : str
        A local checkpoint folder or a model name vLLM can load.
    chat : bool, default False
        Apply the tokenizer's chat template to each prompt (one user message).
    dtype : str, default "auto"
    gpu_memory_utilization : float, default 0.9
    max_model_len : int, optional
    seed : int, default 0
        Engine seed (requests carry their own seeds).
    kv_poll_s : float, default 0.01
        Interval of the KV usage sampling thread.
    model_name : str, optional
        Name written to the samples table; default ``model``.
    **llm_kwargs
        Passed to ``vllm.LLM`` (e.g. ``tensor_parallel_size``).
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        chat: bool = False,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        seed: int = 0,
        kv_poll_s: float = 0.01,
        model_name: str | None = None,
        **llm_kwargs: Any,
    ) -> None:
        try:
            import vllm
        except ImportError as err:
            raise ImportError(INSTALL_HINT) from err
        self._vllm = vllm
        self.model = str(model)
        self.model_name = model_name or self.model
        self.chat = bool(chat)
        self.kv_poll_s = float(kv_poll_s)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
            "enable_prefix_caching": True,
            "disable_log_stats": False,
        }
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        kwargs.update(llm_kwargs)
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        if self.chat and not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{model}: chat=True but the tokenizer has no chat template")
        self.kv_total_bytes, self.kv_total_why = self._kv_capacity()

    def _kv_capacity(self) -> tuple[float | None, str]:
        """Total KV cache bytes from the engine's config, or None and why."""
        try:
            config = self.llm.llm_engine.vllm_config
            cache, model, parallel = config.cache_config, config.model_config, config.parallel_config
            blocks = cache.num_gpu_blocks
            if not blocks:
                return None, "unavailable: cache_config.num_gpu_blocks not set"
            cache_dtype = str(getattr(cache, "cache_dtype", "auto"))
            if cache_dtype == "auto":
                dtype_bytes = model.dtype.itemsize
            elif cache_dtype.startswith("fp8"):
                dtype_bytes = 1
            else:
                dtype_bytes = 4 if "32" in cache_dtype else 2
            per_rank = kv_block_bytes(
                model.get_num_layers(parallel), model.get_num_kv_heads(parallel), model.get_head_size(),
                cache.block_size, dtype_bytes,
            )  # fmt: skip
            return float(blocks * per_rank * parallel.tensor_parallel_size), "cache_config"
        except AttributeError as err:
            return None, f"unavailable: engine config not readable ({err})"

    def _sample_kv_peak(self, stop: threading.Event, peak: list[float | None]) -> None:
        while not stop.is_set():
            try:
                frac = kv_usage_fraction(self.llm.get_metrics())
            except Exception:  # noqa: BLE001 - a failed sample only loses that sample
                frac = None
            if frac is not None:
                peak[0] = frac if peak[0] is None else max(peak[0], frac)
            stop.wait(self.kv_poll_s)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """All requests in one ``LLM.generate`` call; one result per request, in order."""
        params = [self._vllm.SamplingParams(**sampling_params_kwargs(r)) for r in requests]
        prompts = [self._prompt_text(r.prompt) for r in requests]
        peak: list[float | None] = [None]
        stop = threading.Event()
        sampler = threading.Thread(target=self._sample_kv_peak, args=(stop, peak), daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        finally:
            wall_s = time.perf_counter() - t0
            stop.set()
            sampler.join(timeout=5.0)
        generated = [sum(len(c.token_ids or []) for c in o.outputs) for o in outputs]
        held = [len(o.prompt_token_ids or []) + g for o, g in zip(outputs, generated, strict=True)]
        latencies = proportional_shares(wall_s, generated)
        if peak[0] is None or self.kv_total_bytes is None:
            why = (
                self.kv_total_why
                if self.kv_total_bytes is None
                else "unavailable: KV usage gauge not reported"
            )
            kv, source = [None] * len(outputs), why
        else:
            kv, source = proportional_shares(peak[0] * self.kv_total_bytes, held), KV_SOURCE
        extra = {
            "batch_latency_s": wall_s,
            "batch_requests": len(requests),
            "kv_usage_peak_fraction": peak[0],
        }
        return [
            parse_request_output(o, latency_s=lat, kv_bytes_peak=k, kv_source=source, extra=dict(extra))
            for o, lat, k in zip(outputs, latencies, kv, strict=True)
        ]

    def _prompt_text(self, prompt: str) -> str:
        if not self.chat:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the engine's tokenizer, without added special tokens."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def metadata(self) -> dict[str, Any]:
        """Model config, dtype, versions, KV cache capacity."""
        import torch

        meta: dict[str, Any] = {
            **super().metadata(),
            "vllm_version": getattr(self._vllm, "__version__", None),
            "torch_version": torch.__version__,
            "kv_cache_total_bytes": self.kv_total_bytes,
            "chat_template_applied": self.chat,
        }
        try:
            model_config = self.llm.llm_engine.vllm_config.model_config
            meta["config"] = model_config.hf_config.to_dict()
            meta["dtype"] = str(model_config.dtype).removeprefix("torch.")
        except AttributeError as err:
            meta["config"] = f"unavailable: {err}"
        return meta

    def close(self) -> None:
        """Drop the engine."""
        self.llm = None
