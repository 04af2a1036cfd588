"""Hugging Face ``transformers`` backend: batched sampling with a KV cache on CPU or CUDA.

How a call to :meth:`HFBackend.generate` runs
---------------------------------------------
* Requests are packed, in order, into batches of at most ``max_batch_rows`` rows (a request
  with ``n`` samples takes ``n`` rows and is never split, so its ``n`` samples are always ONE
  ``generate`` call). Each request's prompt is repeated ``n`` times; prompts of different
  lengths are left-padded.
* Sampling is done per row by :class:`RowSampler`, a logits processor run inside an
  otherwise greedy ``generate`` (``do_sample=False``): it applies the row's temperature and
  top-p to all rows at once and draws each row's token by inverse CDF at a uniform taken from
  the row's request's own ``torch.Generator`` (seeded with ``request.seed``), records the model's log-probability of the drawn token and masks every
  other token, so the greedy pick is the sampled one. One generator per request makes a seeded
  request's samples independent of what it is batched with (up to floating-point differences
  that padding can cause in the attention sums).
* Log-probabilities are those of the model's raw distribution (log-softmax of the logits
  before temperature and top-p, as vLLM V1 reports by default); ``Completion.logprob`` is their
  mean over the tokens counted in ``completion_tokens``.
* Stopping is per row (:class:`RowStopper`): EOS, one of the request's stop strings (found by
  decoding the row's last few tokens after each step), or the request's ``max_new_tokens``.
  A row that stops is padded while the rest of the batch continues.

What is measured
----------------
* ``completion_tokens``: every token the model generated for that sequence, up to and
  including the EOS token or the token that completed a stop string (padding after it is not
  counted). The returned text is the decoded tokens without special tokens, cut before the
  first stop string, so ``count_tokens(text) <= completion_tokens``.
* ``prompt_tokens``: the prompt's tokens as fed (chat template included, padding excluded).
* ``latency_s``: wall time (``time.perf_counter``, with ``torch.cuda.synchronize`` on CUDA) of
  the whole batch, from tokenization to decoded text, attributed to the batch's requests in
  proportion to their generated tokens: :math:`t_i = T \\cdot g_i / \\sum_j g_j`, so the
  requests' latencies add up to the batch's wall time. ``ttft_s``: time from the batch's
  start until its first token was drawn (the batch's prefill), the same for every request of
  a batch. ``extra`` holds the batch's wall time and size.
* ``kv_bytes_peak``: bytes of the key and value tensors held in the cache that ``generate``
  returns (``kv_source="hf-cache-tensors"``). The cache only grows during one call, so its
  final size is the peak. It holds every row at the padded length:
  :math:`\\text{KV} = 2 \\cdot L \\cdot H_{kv} \\cdot d_{head} \\cdot b \\cdot R \\cdot (P + T - 1)`
  bytes for ``L`` layers, ``R`` rows, padded prompt ``P`` and ``T`` generation steps (the last
  token drawn is never fed back). A request's share is its rows' share, ``KV * n_i / R``.
  On CUDA, ``extra["cuda_alloc_peak_delta_bytes"]`` also reports the allocator's peak over the
  call minus what was allocated before it (KV plus activations and logits), shared the same
  way.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._base import Backend, Completion, GenerationRequest, GenerationResult
from ._checks import check_request
from ._hf_hooks import RowSampler, RowStopper
from ._sparse_attention import enable_sparse_attention
from .sparse import SparseAttention

__all__ = ["HFBackend", "available_memory_bytes", "cache_tensor_bytes", "pack_batches", "resolve_device"]

KV_SOURCE = "hf-cache-tensors"


def pack_batches(rows_per_request: Sequence[int], max_batch_rows: int) -> list[list[int]]:
    """Group request indices, in order, into batches of at most ``max_batch_rows`` rows.

    A request larger than ``max_batch_rows`` gets a batch of its own (it is never split).

    Examples
    --------
    >>> pack_batches([4, 4, 4, 70, 1], max_batch_rows=8)
    [[0, 1], [2], [3], [4]]
    """
    batches: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for i, n in enumerate(rows_per_request):
        if current and rows + n > max_batch_rows:
            batches.append(current)
            current, rows = [], 0
        current.append(i)
        rows += n
    if current:
        batches.append(current)
    return batches


def cache_tensor_bytes(cache: Any) -> int | None:
    """Bytes of the key/value tensors a ``transformers`` cache holds, or None if unreadable.

    Reads ``cache.layers[i].keys/values`` (transformers 5), ``cache.key_cache/value_cache``
    (transformers 4) or a legacy tuple of ``(key, value)`` pairs.
    """
    tensors: list[Any] = []
    if hasattr(cache, "layers"):
        for layer in cache.layers:
            tensors += [getattr(layer, "keys", None), getattr(layer, "values", None)]
    elif hasattr(cache, "key_cache") and hasattr(cache, "value_cache"):
        tensors = list(cache.key_cache) + list(cache.value_cache)
    elif isinstance(cache, (tuple, list)):
        tensors = [t for pair in cache for t in pair]
    else:
        return None
    tensors = [t for t in tensors if t is not None and hasattr(t, "element_size")]
    if not tensors:
        return None
    return int(sum(t.numel() * t.element_size() for t in tensors))


@dataclass
class BatchClock:
    """A batch's measurement: its start and its first token (``perf_counter``; None: not seen)
    and, on CUDA, the bytes allocated before it and the allocator's peak above them once it is
    done."""

    t0: float
    alloc_before: int | None = None
    alloc_peak: float | None = None
    first_token: float | None = None


def _truncate_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` cut before the earliest occurrence of any stop string."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def available_memory_bytes() -> int | None:
    """Memory this machine can still give a process (Linux ``MemAvailable``, else the free
    physical pages), or None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def resolve_device(device: str | None):
    """The ``torch.device`` an hf model runs on: ``device`` (``cpu``, ``cuda``, ``cuda:N``,
    ``mps``), or cuda when there is one and else cpu. Raises ``ValueError`` in one line for a
    name torch does not know, a device type this backend does not run on, or a device this
    machine does not have (e.g. ``cuda`` with a CPU-only torch).

    Examples
    --------
    >>> str(resolve_device("cpu"))
    'cpu'
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r}: not a device name; expected cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ValueError(f"device {device!r}: CUDA is not available here ({why}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r}: MPS (Apple GPUs) is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r}: the hf backend runs on cpu, cuda or mps, not {dev.type}")
    return dev


@contextmanager
def _no_weight_loading_bar():
    """Turn off transformers' progress bars (its "Loading weights" bar) for one load, then restore them."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


class HFBackend(Backend):
    """A causal LM checkpoint run with ``transformers`` (see the module docstring for what is measured).

    Parameters
    ----------
    path : str or Path
        A local checkpoint folder (``config.json``, weights, tokenizer files).
    device : str, optional
        ``"cuda"``, ``"cuda:1"``, ``"cpu"``...; default CUDA when available, else CPU.
    dtype : str, default "auto"
        ``"auto"`` (the checkpoint's dtype), ``"float32"``, ``"bfloat16"`` or ``"float16"``.
    chat : bool, default False
        Apply the tokenizer's chat template to each prompt (as one user message, with the
        generation prompt). Raises ``ValueError`` when the tokenizer has no template.
    max_batch_rows : int, default 64
        Most rows (prompt copies) per ``generate`` call; requests are never split.
    model_name : str, optional
        Name written to the samples table; default the checkpoint folder's name.
    sparse : SparseAttention, optional
        Decode with block top-k attention (:mod:`profiling.backends.sparse`); default dense.

    Examples
    --------
    >>> backend = HFBackend("profiling/lab/checkpoints/lab-s", device="cpu")  # doctest: +SKIP
    >>> [r] = backend.generate([GenerationRequest("3+4=", n=8, temperature=1.0, seed=0)])  # doctest: +SKIP
    >>> len(r.completions), r.kv_source  # doctest: +SKIP
    (8, 'hf-cache-tensors')
    """

    name = "hf"
    #: the generation loop: "hf" (transformers' ``generate``) or "fast" (:mod:`profiling.backends.fastlab`)
    engine = "hf"

    def __init__(
        self,
        path: str | Path,
        *,
        device: str | None = None,
        dtype: str = "auto",
        chat: bool = False,
        max_batch_rows: int = 64,
        model_name: str | None = None,
        sparse: SparseAttention | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a checkpoint folder (no config.json)")
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be >= 1, got {max_batch_rows}")
        dtypes = {
            "auto": "auto",
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }
        if dtype not in dtypes:
            raise ValueError(f"dtype must be one of {sorted(dtypes)}, got {dtype!r}")
        self.path = path
        self.model_name = model_name or path.name
        self.device = resolve_device(device)
        self.max_batch_rows = int(max_batch_rows)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if chat and not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{path}: chat=True but the tokenizer has no chat template")
        self.chat = bool(chat)
        # the profiler shows its own progress; transformers' bar would interleave with it
        with _no_weight_loading_bar():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtypes[dtype])
        self.model = model.to(self.device).eval()
        self.sparse = sparse
        if sparse is not None:
            enable_sparse_attention(self.model, sparse, path.name)
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None}
        self._cuda = self.device.type == "cuda"

    # ---- contract -------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the checkpoint's tokenizer, without added special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def metadata(self) -> dict[str, Any]:
        """Model config (``model.config.to_dict()``), dtype, device, versions, parameter count."""
        import torch
        import transformers

        return {
            **super().metadata(),
            "path": str(self.path),
            "engine": self.engine,
            "config": self.model.config.to_dict(),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.device),
            "num_parameters": int(sum(p.numel() for p in self.model.parameters())),
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
            "chat_template_applied": self.chat,
            "max_batch_rows": self.max_batch_rows,
            "logprob": "mean log-softmax of raw logits (before temperature/top-p) of the drawn tokens",
            **({"sparse_attention": self.sparse.to_dict()} if self.sparse is not None else {}),
        }

    def close(self) -> None:
        """Drop the model (and free CUDA memory)."""
        self.model = None
        if self._cuda:
            import torch

            torch.cuda.empty_cache()

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Run ``requests`` in batches; one result per request, in order (see the module docstring)."""
        if self.model is None:
            raise RuntimeError("HFBackend.generate called after close()")
        for i, request in enumerate(requests):
            check_request(request, i)
        results: list[GenerationResult | None] = [None] * len(requests)
        for batch in pack_batches([r.n for r in requests], self.max_batch_rows):
            for i, result in zip(batch, self._generate_batch([requests[i] for i in batch]), strict=True):
                results[i] = result
        return results  # type: ignore[return-value]

    # ---- internals ------------------------------------------------------------------------
    def _prompt_text(self, prompt: str) -> str:
        if not self.chat:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def request_bytes(self, rows: int, prompt_len: int, max_new_tokens: int) -> int | None:
        """Memory one ``generate`` call of ``rows`` sequences needs at its end, estimated: the KV
        cache of every row at ``prompt_len + max_new_tokens`` tokens (the cache's dtype and
        layout from the model config) plus two float32 copies of a step's logits. None when
        the config lacks the sizes (then nothing is checked)."""
        cfg = self.model.config
        try:
            heads = int(cfg.num_attention_heads)
            kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
            head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
            layers, vocab = int(cfg.num_hidden_layers), int(cfg.vocab_size)
        except (AttributeError, TypeError, ValueError):
            return None
        per_token = 2 * layers * kv_heads * head_dim * self.model.dtype.itemsize
        return rows * (prompt_len + max_new_tokens) * per_token + 2 * rows * vocab * 4

    def _check_memory(self, rows: int, prompt_len: int, max_new_tokens: int) -> None:
        """Refuse (ValueError, before generating) a call whose estimate (:meth:`request_bytes`)
        exceeds half the memory available on the device (e.g. ``pool:n=100000``): the cache
        grows by concatenation, so its old and new copies coexist at each step."""
        import torch

        need = self.request_bytes(rows, prompt_len, max_new_tokens)
        free = torch.cuda.mem_get_info(self.device)[0] if self._cuda else available_memory_bytes()
        if need is None or free is None or 2 * need <= free:
            return
        raise ValueError(
            f"{self.model_name}: one call of {rows} sequences x {prompt_len + max_new_tokens} tokens needs about "
            f"{need / 2**30:.1f} GiB (KV cache and logits, estimated; twice that must fit) but {free / 2**30:.1f} GiB "
            f"are available on {self.device}; lower the pool size n (or --max-new-tokens)"
        )

    def _sync(self) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def _encode(self, requests: list[GenerationRequest]) -> tuple[Any, list[int]]:
        """The batch's prompts tokenized and left-padded, and each prompt's own token count."""
        texts = [self._prompt_text(r.prompt) for r in requests]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not self.chat)
        prompt_tokens = [int(x) for x in enc["attention_mask"].sum(dim=1)]
        for i, count in enumerate(prompt_tokens):
            if count == 0:
                raise ValueError(f"request prompt {requests[i].prompt!r} tokenizes to no tokens")
        return enc, prompt_tokens

    def _row_groups(self, requests: list[GenerationRequest]) -> tuple[list[tuple], list[int]]:
        """One ``(start, stop, temperature, top_p, generator)`` per request (its rows and its
        generator, seeded with its seed or a fresh one) and the seeds used."""
        import torch

        groups, seeds, start = [], [], 0
        for r in requests:
            seed = r.seed if r.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
            generator = torch.Generator(device=self.device).manual_seed(int(seed))
            groups.append((start, start + r.n, float(r.temperature), float(r.top_p), generator))
            seeds.append(int(seed))
            start += r.n
        return groups, seeds

    def _completion(
        self, ids: list[int], length: int, reason: str, logprobs: list[float], stops
    ) -> Completion:
        """One row's completion: its first ``length`` tokens decoded and cut at a stop string,
        their mean log-prob."""
        text = _truncate_at_stop(self.tokenizer.decode(ids[:length], skip_special_tokens=True), stops)
        mean_lp = math.fsum(logprobs[:length]) / length if length else None
        return Completion(text, int(length), mean_lp, reason)

    def _start_batch(self) -> BatchClock:
        """Wait for the device, reset its allocator peak (CUDA) and start a batch's clock."""
        self._sync()
        alloc_before = None
        if self._cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            alloc_before = torch.cuda.memory_allocated(self.device)
        return BatchClock(time.perf_counter(), alloc_before)

    def _generated(self, clock: BatchClock, first_token: float | None) -> None:
        """Wait for the device to finish the batch's generation, note when its first token was
        drawn and read the allocator's peak."""
        self._sync()
        clock.first_token = first_token
        if clock.alloc_before is not None:
            import torch

            clock.alloc_peak = torch.cuda.max_memory_allocated(self.device) - clock.alloc_before

    def _results(
        self,
        requests: list[GenerationRequest],
        groups: list[tuple],
        completions: list[Completion],
        prompt_tokens: list[int],
        clock: BatchClock,
        kv: tuple[float | None, str],
        extra: dict[str, Any],
    ) -> list[GenerationResult]:
        """One result per request of a batch timed by ``clock`` (its wall time ends now): latency
        shared by generated tokens, KV bytes ``kv = (batch bytes, source)`` and the allocator peak
        shared by rows (module docstring)."""
        wall_s = time.perf_counter() - clock.t0
        ttft_s = clock.first_token - clock.t0 if clock.first_token is not None else None
        alloc_peak = clock.alloc_peak
        rows = groups[-1][1] if groups else 0
        generated = [sum(c.completion_tokens for c in completions[g[0] : g[1]]) for g in groups]
        total_generated = sum(generated)
        kv_total, kv_source = kv
        results = []
        for i, (r, g) in enumerate(zip(requests, groups, strict=True)):
            token_share = generated[i] / total_generated if total_generated else r.n / rows
            row_share = r.n / rows
            info: dict[str, Any] = {
                "seed": extra["seeds"][i],
                "batch_latency_s": wall_s,
                "batch_requests": len(requests),
                "batch_rows": rows,
            }
            info.update({k: v for k, v in extra.items() if k != "seeds"})
            if alloc_peak is not None:
                info["cuda_alloc_peak_delta_bytes"] = alloc_peak * row_share
                info["batch_cuda_alloc_peak_delta_bytes"] = alloc_peak
            results.append(
                GenerationResult(
                    completions=completions[g[0] : g[1]],
                    prompt_tokens=prompt_tokens[i],
                    latency_s=wall_s * token_share,
                    ttft_s=ttft_s,
                    kv_bytes_peak=None if kv_total is None else kv_total * row_share,
                    kv_source=kv_source,
                    extra=info,
                )
            )
        return results

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        clock = self._start_batch()
        enc, prompt_tokens = self._encode(requests)
        counts = torch.tensor([r.n for r in requests])
        input_ids = enc["input_ids"].repeat_interleave(counts, dim=0).to(self.device)
        attention_mask = enc["attention_mask"].repeat_interleave(counts, dim=0).to(self.device)
        prompt_len = int(input_ids.shape[1])
        self._check_memory(int(input_ids.shape[0]), prompt_len, max(r.max_new_tokens for r in requests))

        groups, seeds = self._row_groups(requests)
        rows = groups[-1][1]
        sampler = RowSampler(groups, self._sync if self._cuda else None)
        stopper = RowStopper(
            self.tokenizer,
            prompt_len,
            max_new=[r.max_new_tokens for r in requests for _ in range(r.n)],
            stops=[tuple(s for s in r.stop if s) for r in requests for _ in range(r.n)],
            eos_ids=self.eos_ids,
        )
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=max(r.max_new_tokens for r in requests),
            eos_token_id=sorted(self.eos_ids) or None,
            pad_token_id=self.tokenizer.pad_token_id,
            return_dict_in_generate=True,
            use_cache=True,
        )
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
                stopping_criteria=StoppingCriteriaList([stopper]),
            )
        cache = getattr(out, "cache", None)
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        kv_total = cache_tensor_bytes(cache) if cache is not None else None
        del cache
        self._generated(clock, sampler.first_token_time)

        sequences = out.sequences[:, prompt_len:].tolist()
        steps = len(sampler.step_logprobs)
        logprobs = torch.stack(sampler.step_logprobs).T.tolist() if steps else [[] for _ in range(rows)]
        completions = [
            self._completion(
                ids,
                stopper.finish_len[row] if stopper.finish_len[row] >= 0 else len(ids),
                stopper.finish_reason[row],
                logprobs[row],
                stopper.stops[row],
            )
            for row, ids in enumerate(sequences)
        ]
        kv_source = KV_SOURCE if kv_total is not None else "unavailable: cache tensors not readable"
        extra = {"seeds": seeds, "padded_prompt_tokens": prompt_len, "generation_steps": steps}
        return self._results(
            requests, groups, completions, prompt_tokens, clock, (kv_total, kv_source), extra
        )
