"""Per-row sampling shared by the hf backend and the fast lab engine, so both draw alike.

A batch holds several requests, each with ``n`` rows, its own temperature and top-p, and its
own ``torch.Generator`` seeded with the request's seed. At every decode step each sampled
request draws ``n`` uniforms from its generator (one per row, in row order, whether or not
the row has already finished), and each row's token is the inverse CDF of its tempered,
top-p-masked distribution at its uniform. So row ``j`` of a request uses the ``t * n + j``-th
number of the request's stream at step ``t`` whatever the request is batched with, and two
engines that compute the same logits draw the same tokens.

Log-probabilities are those of the model's raw distribution (log-softmax of the logits before
temperature and top-p) at the drawn token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RowSettings", "row_settings", "draw_uniforms", "sample_rows"]


@dataclass
class RowSettings:
    """The sampling settings of a batch's rows as tensors, and its sampled requests' generators."""

    temperature: Any  # rows x 1
    top_p: Any  # rows x 1
    sampled: Any  # rows, bool: False for greedy rows (temperature 0)
    hot: list[tuple[int, int, Any]]  # (start, stop, generator) of each sampled request
    any_top_p: bool

    def take(self, index: Any) -> RowSettings:
        """The settings of rows ``index`` (a 1-D index tensor) only; ``hot`` is kept whole."""
        return RowSettings(
            self.temperature[index], self.top_p[index], self.sampled[index], self.hot, self.any_top_p
        )


def row_settings(groups: list[tuple[int, int, float, float, Any]], rows: int, device: Any) -> RowSettings:
    """Settings of ``rows`` rows from ``groups``: one ``(start, stop, temperature, top_p,
    generator)`` per request, covering rows ``start:stop``."""
    import torch

    temperature = torch.ones(rows, 1, device=device)
    top_p = torch.ones(rows, 1, device=device)
    sampled = torch.zeros(rows, dtype=torch.bool, device=device)
    for start, stop, t, p, _ in groups:
        if t > 0.0:
            temperature[start:stop], top_p[start:stop], sampled[start:stop] = t, p, True
    hot = [(start, stop, g) for start, stop, t, _, g in groups if t > 0.0]
    return RowSettings(temperature, top_p, sampled, hot, bool((top_p < 1.0).any()))


def draw_uniforms(settings: RowSettings, rows: int, device: Any, skip: Any = None) -> Any:
    """One step's uniforms (``rows`` x 1): ``stop - start`` draws from each sampled request's
    generator, in row order; rows of greedy requests get 0. ``skip(start, stop)`` -> True
    leaves a request's generator untouched (all its rows have finished: nothing reads them)."""
    import torch

    u = torch.zeros(rows, 1, device=device)
    for start, stop, generator in settings.hot:
        if skip is None or not skip(start, stop):
            u[start:stop, 0] = torch.rand(stop - start, generator=generator, device=device)
    return u


def sample_rows(scores: Any, settings: RowSettings, u: Any) -> tuple[Any, Any]:
    """``(tokens, logprobs)`` of one step: each sampled row's token by inverse CDF at its
    uniform ``u`` (rows x 1), each greedy row's argmax; log-probs of the raw distribution.

    ``scores`` are the step's raw logits (rows x vocab), cast to float32 here.
    """
    import torch

    scores = scores.float()
    chosen = scores.argmax(dim=-1)
    if settings.hot:
        # every sampled row at once: softmax at the row's temperature, top-p mask, then the
        # inverse CDF at the row's uniform
        probs = torch.softmax(scores / settings.temperature, dim=-1)
        if settings.any_top_p:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            # drop a token when the mass before it already reaches top_p (the first always stays)
            drop_sorted = (sorted_p.cumsum(dim=-1) - sorted_p) >= settings.top_p
            probs = probs.masked_fill(torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted), 0.0)
        cdf = probs.cumsum(dim=-1)
        drawn = (
            torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1).clamp_(max=scores.shape[1] - 1)
        )
        chosen = torch.where(settings.sampled, drawn, chosen)
    logprobs = torch.log_softmax(scores, dim=-1).gather(1, chosen[:, None]).squeeze(1)
    return chosen, logprobs
