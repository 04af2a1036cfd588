"""The fast engine for small Llama-family checkpoints (the lab's models): the hf backend with
its own decode loop.

:class:`FastLabBackend` is an :class:`~profiling.backends.hf.HFBackend`: the same checkpoint
loading, tokenizer, prompts (chat template), request validation, memory check, per-row
sampling (:mod:`profiling.backends._sampling`), stopping rules, log-probs and result
building; only the generation loop differs (:mod:`profiling.backends._decode`: every prompt
prefilled once and its KV copied into its ``n`` rows, a preallocated cache, finished rows
dropped from the batch). Every request of a call runs in ONE batch (``max_batch_rows``
defaults to 4,096 rows, under the hf backend's memory check).

Threads: the loop runs with ONE torch thread by default (``threads=1``, set for each call and
restored after). A lab model's matmuls are too small to split: measured on a shared 2-core
machine, two threads made the same calls 10-100x slower in wall time and 3-10x in CPU time
than one (idle OpenMP threads are woken for every small op; when another job holds the other
core, every op waits for it). ``threads=None`` keeps torch's setting.

How its samples compare with the hf backend's
---------------------------------------------
Both engines draw with the same per-request generators consumed the same way, from logits
that agree to float rounding (not bit for bit: the two attentions sum in different orders).
So:

* **greedy** completions are token-identical (a tie between two top logits closer than the
  rounding could break either way; none occurs in the tests);
* **sampled** completions are identical for the same seeds, except where a row's uniform falls
  within float rounding (~1e-6) of a boundary of the cumulative distribution, which happens
  with probability about 1e-6 per token; each token's log-prob agrees within 1e-4.

``tests/profiling/test_fastlab.py`` checks both on the lab's checkpoints.

What is measured
----------------
As the hf backend (its module docstring), except the KV bytes: ``kv_bytes_peak`` counts the
cache slots the batch filled, every row of the batch at the padded prompt plus every step but
the last (the hf backend's formula, so the two engines report the same bytes for the same
work), with ``kv_source="fast-cache-filled-slots"``; the cache allocated up front
(``rows x (padded prompt + max_new_tokens - 1)`` slots) is ``extra["batch_kv_bytes_allocated"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._base import GenerationRequest, GenerationResult
from ._decode import Decoder, decode, unsupported_reason
from ._sampling import row_settings
from .hf import HFBackend

__all__ = ["FastLabBackend", "KV_SOURCE"]

KV_SOURCE = "fast-cache-filled-slots"


class FastLabBackend(HFBackend):
    """A Llama or Mixtral checkpoint with the fast decode loop (module docstring).

    Takes :class:`~profiling.backends.hf.HFBackend`'s parameters; ``max_batch_rows`` defaults
    to 4,096 so that a strategy call is one batch; ``threads`` is the number of torch threads
    each call runs with (default 1, None: torch's setting; module docstring). Raises ``ValueError`` naming the reason for
    a checkpoint the loop does not run (:func:`profiling.backends._decode.unsupported_reason`).

    Examples
    --------
    >>> backend = FastLabBackend("profiling/lab/checkpoints/lab-s", device="cpu")  # doctest: +SKIP
    >>> [r] = backend.generate([GenerationRequest("Q: 3+4 (steps)\\n", n=8, temperature=1.0, seed=0)])  # doctest: +SKIP
    """

    engine = "fast"

    def __init__(
        self, path: str | Path, *, max_batch_rows: int = 4096, threads: int | None = 1, **kwargs: Any
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        super().__init__(path, max_batch_rows=max_batch_rows, **kwargs)
        self.threads = threads
        reason = unsupported_reason(self.model.config.to_dict())
        if reason is not None:
            raise ValueError(f"{path}: the fast engine does not run {reason}; use the hf engine")
        self.decoder = Decoder(self.model)

    def metadata(self) -> dict[str, Any]:
        """The hf backend's metadata and the torch threads of each call."""
        return {**super().metadata(), "torch_threads": self.threads}

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """The hf backend's :meth:`~profiling.backends.hf.HFBackend.generate`, with ``threads``
        torch threads."""
        with _torch_threads(self.threads):
            return super().generate(requests)

    def close(self) -> None:
        """Drop the model and the decoder's references to it."""
        self.decoder = None
        super().close()

    def _stop_check(self, stops: list[tuple[str, ...]]):
        """``stop_hit(row, tokens)`` for :func:`~profiling.backends._decode.decode`, or None when
        no row has a stop string: whether the row's last few tokens decode to text holding one
        of its stop strings (the hf backend's rule and window)."""
        if not any(stops):
            return None
        window = [max((len(s) for s in row), default=0) + 4 for row in stops]
        decode_text = self.tokenizer.decode

        def stop_hit(row: int, tokens: list[int]) -> bool:
            if not stops[row]:
                return False
            tail = decode_text(tokens[-window[row] :], skip_special_tokens=True)
            return any(s in tail for s in stops[row])

        return stop_hit

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        import torch

        clock = self._start_batch()
        enc, prompt_tokens = self._encode(requests)
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        counts = torch.tensor([r.n for r in requests], device=self.device)
        width, max_new = int(ids.shape[1]), [r.max_new_tokens for r in requests for _ in range(r.n)]
        self._check_memory(len(max_new), width, max(max_new))
        groups, seeds = self._row_groups(requests)
        stops = [tuple(s for s in r.stop if s) for r in requests for _ in range(r.n)]
        with torch.inference_mode():
            out = decode(
                self.decoder,
                ids,
                mask,
                counts,
                row_settings(groups, len(max_new), self.device),
                max_new,
                self.eos_ids,
                stop_hit=self._stop_check(stops),
                sync=self._sync if self._cuda else None,
            )
        self._generated(clock, out.first_token_time)
        completions = [
            self._completion(
                out.tokens[r], out.finish_len[r], out.finish_reason[r], out.logprobs[r], stops[r]
            )
            for r in range(len(max_new))
        ]
        slot = 2 * len(self.decoder.layers) * self.decoder.kv_heads * self.decoder.head_dim
        slot *= self.decoder.dtype.itemsize
        extra = {
            "seeds": seeds,
            "padded_prompt_tokens": width,
            "generation_steps": out.steps,
            "engine": self.engine,
            "batch_kv_bytes_allocated": slot * len(max_new) * (width + max(max_new) - 1),
            "compactions": out.compactions,
        }
        kv_total = slot * len(max_new) * (width + out.steps - 1)
        return self._results(
            requests, groups, completions, prompt_tokens, clock, (kv_total, KV_SOURCE), extra
        )


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` (None: unchanged) for the block, then restored."""
    import torch

    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
