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
import threading
import time
import warnings
from typing import Any

from . import _vllm_io, _vllm_kv
from ._base import Backend, GenerationRequest, GenerationResult
from ._checks import check_request
from ._vllm_io import (  # noqa: F401 - re-exported: the backend's request/response helpers
    FINISH_REASONS,
    GREEDY_TEMPERATURE,
    KV_GAUGES,
    engine_timing,
    is_greedy,
    kv_usage_fraction,
    model_runner_version,
    parse_request_output,
    prompt_token_ids,
    proportional_shares,
    sampling_params_kwargs,
    validation_errors,
)
from ._vllm_kv import *  # noqa: F403  the KV layout arithmetic is part of this backend's public surface
from ._vllm_kv import KVCacheLayout, kv_layout_from_vllm_config

__all__ = ["VLLMBackend", "KV_SOURCE", "KV_SAMPLER_THREAD", *_vllm_io.__all__, *_vllm_kv.__all__]

KV_SOURCE = (
    "vllm-kv-usage-gauge peak (polled; a lower bound: set once per engine step after finished "
    "requests free their blocks) x (num_gpu_blocks-1) x block bytes of the cache layout, one copy; "
    "shared by tokens held"
)
INSTALL_HINT = "the vllm backend needs vLLM: pip install ttc-planner[vllm] (Linux with a CUDA GPU)"
#: name of the thread that polls the KV usage gauge during ``generate`` (seen in stack dumps;
#: engine stand-ins in the tests wait for it to read the gauge)
KV_SAMPLER_THREAD = "ttc-vllm-kv-usage-sampler"


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
        self._errors = validation_errors(vllm)
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
        #: group-aware token capacity at max_model_len as the engine reports it (None on older vLLM)
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
        if not requests:
            return []
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
            sampler = threading.Thread(
                target=self._sample_kv_peak, args=(stop, peak), name=KV_SAMPLER_THREAD, daemon=True
            )
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
