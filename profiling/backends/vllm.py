"""vLLM backend (offline ``LLM`` API, V1 engine, GPU): ``pip install ttc-planner[vllm]``.

Checked line by line against the source of vLLM 0.33.0, and its request building, output
parsing, metrics reading and KV arithmetic run against vLLM's real classes in
``tests/test_vllm_conformance.py`` (``bash benchmarks/vllm_conformance.sh``, no GPU needed).
Running the engine itself needs a GPU (``benchmarks/gpu_check.sh``).

How a call runs and what is measured
------------------------------------
* Every request is validated first (fields, prompt tokens, ``SamplingParams``); an invalid
  one raises ``ValueError`` naming each bad request's index and nothing is submitted. Then
  all requests go to ONE ``LLM.generate`` call, as token ids (``{"prompt_token_ids": ids}``):
  plain prompts tokenized as vLLM does (``add_special_tokens=True``), chat prompts through the
  chat template with ``add_special_tokens=False`` (the template already holds BOS).
* One ``SamplingParams`` per request (``n``, ``seed``, ``temperature``, ``top_p``,
  ``max_tokens``, ``stop``, ``logprobs=0``: the drawn token's log-prob only). vLLM rejects
  greedy sampling (temperature below 1e-5) with ``n > 1``, so a greedy request is sent with
  ``n=1`` and its completion replicated ``n`` times (``extra["greedy_replicated"]``).
* Prefix caching is on (vLLM's default); the prefix cache is reset before each call
  (``reset_prefix_cache=True``) so a call's timing includes its own prefill, while a
  request's ``n`` samples still share their prompt blocks. ``extra["cached_prompt_tokens"]``
  is vLLM's ``num_cached_tokens``.
* ``completion_tokens`` = ``len(CompletionOutput.token_ids)`` (EOS and the tokens of a stop
  string included, the stop string excluded from the text); ``prompt_tokens`` =
  ``len(RequestOutput.prompt_token_ids)``; ``logprob`` = ``cumulative_logprob /
  completion_tokens`` (raw model log-probs in V1, before temperature); ``finish_reason`` is
  vLLM's: ``stop``, ``length``, ``abort``, ``error`` (a warning names the request) or
  ``repetition``.
* ``latency_s``: the batch's wall time (``time.perf_counter`` around ``generate``), attributed
  to requests in proportion to the tokens the engine generated, as in the ``hf`` backend;
  per-request engine timings (``RequestOutput.metrics``) go to ``extra`` and ``ttft_s``.
* ``kv_bytes_peak``: vLLM does not expose the blocks a request holds, so a thread reads the
  KV usage gauge (``vllm:kv_cache_usage_perc``, older ``vllm:gpu_cache_usage_perc``, via
  ``LLM(disable_log_stats=False).get_metrics()``) every ``kv_poll_s``. The gauge is set once
  per engine step, after finished requests have freed their blocks, so the polled peak is a
  LOWER BOUND of the true peak. Bytes = peak fraction x ``(num_gpu_blocks - 1)`` blocks x the
  bytes of one block, from the cache layout (:mod:`._vllm_kv`: MLA, sliding-window and hybrid
  groups, pipeline stages, quantized cache dtypes), one copy of the cache (tensor-parallel
  replicas divided out). A request's share is proportional to its tokens held (prompt plus
  generated). ``kv_source`` says so, or says why it is None.
* The model runner (V1 or V2: seeded sampling speed differs between them) is recorded in
  ``metadata()["vllm_model_runner"]`` where the engine config says.
"""

from __future__ import annotations

import gc
import importlib
import os
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from ._base import Backend, Completion, GenerationRequest, GenerationResult
from ._checks import check_request
from ._vllm_kv import KVCacheLayout, kv_layout_from_vllm_config

__all__ = [
    "VLLMBackend",
    "sampling_params_kwargs",
    "prompt_token_ids",
    "parse_request_output",
    "engine_timing",
    "kv_usage_fraction",
    "proportional_shares",
    "model_runner_version",
    "is_greedy",
]

KV_GAUGES = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
KV_SOURCE = (
    "vllm-kv-usage-gauge peak (polled; a lower bound: set once per engine step after finished "
    "requests free their blocks) x (num_gpu_blocks-1) x block bytes of the cache layout, one copy; "
    "shared by tokens held"
)
INSTALL_HINT = "the vllm backend needs vLLM: pip install ttc-planner[vllm] (Linux with a CUDA GPU)"
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


def _validation_errors(vllm: Any) -> tuple[type[BaseException], ...]:
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
        Default: the model's (``max_position_embeddings``).
    seed : int, default 0
        Engine seed (requests carry their own seeds).
    kv_poll_s : float or None, default 0.01
        Interval of the KV usage sampling thread; None or 0 disables it (``kv_bytes_peak``
        is then None with the reason).
    reset_prefix_cache : bool, default True
        Reset vLLM's prefix cache before each ``generate`` call, so that a call (a timed run
        after a warm-up, a later question with the same prompt) pays its own prefill.
    model_name : str, optional
        Name written to the samples table; default ``model``.
    **llm_kwargs
        Passed to ``vllm.LLM`` (e.g. ``tensor_parallel_size``, ``kv_cache_dtype``).
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
        kv_poll_s: float | None = 0.01,
        reset_prefix_cache: bool = True,
        model_name: str | None = None,
        **llm_kwargs: Any,
    ) -> None:
        try:
            import vllm
        except ImportError as err:
            raise ImportError(INSTALL_HINT) from err
        self._vllm = vllm
        self._errors = _validation_errors(vllm)
        self.model = str(model)
        self.model_name = model_name or self.model
        self.chat = bool(chat)
        self.kv_poll_s = float(kv_poll_s) if kv_poll_s else None
        self.reset_prefix_cache = bool(reset_prefix_cache)
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
        config = getattr(self.llm.llm_engine, "vllm_config", None)
        cache = getattr(config, "cache_config", None)
        self.max_model_len = getattr(getattr(config, "model_config", None), "max_model_len", None)
        self.num_gpu_blocks = getattr(cache, "num_gpu_blocks", None)
        #: group-aware token capacity at max_model_len (vLLM >= 0.2x), as the engine reports it
        self.kv_capacity_tokens = getattr(cache, "kv_cache_size_tokens", None)
        self.model_runner = model_runner_version(config)
        self.kv_layout: KVCacheLayout | None
        self.kv_layout, layout_why = kv_layout_from_vllm_config(config)
        self.kv_total_bytes, self.kv_total_why = self._kv_capacity(layout_why)

    def _kv_capacity(self, layout_why: str) -> tuple[float | None, str]:
        """Bytes of the KV pool (one copy), or None and why."""
        if self.kv_layout is None:
            return None, layout_why
        if not self.num_gpu_blocks:
            return None, "unavailable: cache_config.num_gpu_blocks not set"
        return self.kv_layout.pool_bytes(self.num_gpu_blocks), layout_why

    def _sample_kv_peak(self, stop: threading.Event, peak: list[Any]) -> None:
        while not stop.is_set():
            try:
                frac = kv_usage_fraction(self.llm.get_metrics())
            except Exception:  # noqa: BLE001 - a failed sample only loses that sample
                frac = None
            peak[1] += 1
            if frac is not None:
                peak[0] = frac if peak[0] is None else max(peak[0], frac)
            stop.wait(self.kv_poll_s)

    def _prepare(self, index: int, request: GenerationRequest) -> tuple[dict[str, Any], Any]:
        """Token-id prompt and ``SamplingParams`` of one request; errors name the request."""
        check_request(request, index)
        ids = prompt_token_ids(self.tokenizer, request.prompt, chat=self.chat)
        if not ids:
            raise ValueError(
                f"request {index}: prompt {request.prompt!r} tokenizes to no tokens (vLLM rejects empty prompts)"
            )
        if self.max_model_len and len(ids) >= self.max_model_len:
            raise ValueError(
                f"request {index}: prompt has {len(ids)} tokens; vLLM needs fewer than "
                f"max_model_len={self.max_model_len} (room for at least one generated token)"
            )
        try:
            params = self._vllm.SamplingParams(**sampling_params_kwargs(request))
        except self._errors as err:
            raise ValueError(f"request {index}: vLLM rejects its sampling parameters: {err}") from err
        return {"prompt_token_ids": ids}, params

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """All requests in one ``LLM.generate`` call; one result per request, in order."""
        if self.llm is None:
            raise RuntimeError("VLLMBackend.generate called after close()")
        prompts, params, errors = [], [], []
        for i, request in enumerate(requests):
            try:
                prompt, sp = self._prepare(i, request)
            except (TypeError, ValueError) as err:
                errors.append(err)
                continue
            prompts.append(prompt)
            params.append(sp)
        if errors:
            kind = type(errors[0]) if len(errors) == 1 else ValueError
            raise kind("; ".join(str(e) for e in errors) + " (nothing was submitted to vLLM)")
        reset = None
        if self.reset_prefix_cache:
            try:
                reset = bool(self.llm.reset_prefix_cache())  # False: requests still held blocks
            except AttributeError:  # an engine without prefix-cache control
                reset = None
        peak: list[Any] = [None, 0]  # peak fraction, polls
        stop = threading.Event()
        sampler = None
        if self.kv_poll_s:
            sampler = threading.Thread(target=self._sample_kv_peak, args=(stop, peak), daemon=True)
            sampler.start()
        t0 = time.perf_counter()
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        except self._errors as err:
            raise ValueError(f"vLLM rejected the batch of {len(requests)} requests: {err}") from err
        finally:
            wall_s = time.perf_counter() - t0
            stop.set()
            if sampler is not None:
                sampler.join(timeout=5.0)
        generated = [sum(len(c.token_ids or []) for c in o.outputs) for o in outputs]
        held = [len(o.prompt_token_ids or []) + g for o, g in zip(outputs, generated, strict=True)]
        latencies = proportional_shares(wall_s, generated)
        if self.kv_total_bytes is None or peak[0] is None:
            if self.kv_total_bytes is None:
                why = self.kv_total_why
            elif not self.kv_poll_s:
                why = "unavailable: KV usage polling disabled (kv_poll_s)"
            else:
                why = "unavailable: KV usage gauge not reported"
            kv, source = [None] * len(outputs), why
        else:
            kv, source = proportional_shares(peak[0] * self.kv_total_bytes, held), KV_SOURCE
        extra = {
            "batch_latency_s": wall_s,
            "batch_requests": len(requests),
            "kv_usage_peak_fraction": peak[0],
            "kv_usage_polls": peak[1],
            "prefix_cache_reset": reset,
        }
        results = []
        for i, (o, request, lat, k) in enumerate(zip(outputs, requests, latencies, kv, strict=True)):
            replicate = request.n if is_greedy(request) else 1
            result = parse_request_output(
                o, latency_s=lat, kv_bytes_peak=k, kv_source=source, extra=dict(extra), replicate=replicate
            )
            bad = sorted(
                {c.finish_reason for c in result.completions if c.finish_reason in ("abort", "error")}
            )
            if bad:
                warnings.warn(
                    f"request {i}: vLLM finished samples with {', '.join(bad)}; their text is partial",
                    RuntimeWarning,
                    stacklevel=2,
                )
            results.append(result)
        return results

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the engine's tokenizer, without added special tokens."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def metadata(self) -> dict[str, Any]:
        """Model config, dtype, versions, KV cache layout and capacity, model runner."""
        import torch

        layout = self.kv_layout
        meta: dict[str, Any] = {
            **super().metadata(),
            "vllm_version": getattr(self._vllm, "__version__", None),
            "torch_version": torch.__version__,
            "vllm_model_runner": self.model_runner,
            "kv_cache_total_bytes": self.kv_total_bytes,
            "kv_cache_total_why": self.kv_total_why,
            "kv_cache_allocated_bytes": None
            if layout is None or not self.num_gpu_blocks
            else layout.pool_bytes(self.num_gpu_blocks, logical=False),
            "kv_cache_num_gpu_blocks": self.num_gpu_blocks,
            "kv_cache_size_tokens": self.kv_capacity_tokens,
            "kv_block_size": None if layout is None else layout.block_size,
            "kv_block_bytes": None if layout is None else layout.block_bytes_logical,
            "kv_cache_groups": None if layout is None else [[k, w, len(ls)] for k, w, ls in layout.groups],
            "max_model_len": self.max_model_len,
            "chat_template_applied": self.chat,
            "prompt_tokenization": "chat template, add_special_tokens=False"
            if self.chat
            else "add_special_tokens=True (as vLLM tokenizes text)",
            "prefix_cache_reset_per_call": self.reset_prefix_cache,
        }
        try:
            config = self.llm.llm_engine.vllm_config
            meta["config"] = config.model_config.hf_config.to_dict()
            meta["dtype"] = str(config.model_config.dtype).removeprefix("torch.")
            meta["kv_cache_dtype"] = str(config.cache_config.cache_dtype)
            meta["tensor_parallel_size"] = config.parallel_config.tensor_parallel_size
            meta["pipeline_parallel_size"] = config.parallel_config.pipeline_parallel_size
        except AttributeError as err:
            meta["config"] = f"unavailable: {err}"
        return meta

    def close(self) -> None:
        """Shut the engine down (its engine-core process and the GPU memory it holds)."""
        llm, self.llm = self.llm, None
        if llm is None:
            return
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        shutdown = getattr(engine_core, "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm, engine_core, shutdown
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
