"""Dollars: GPU time for self-hosted serving, tokens for an API.

Self-hosted: one execution occupies ``tp x replica_s`` GPU-seconds, its share of a replica of
``tp`` GPUs (:class:`~planner.costs.latency.LatencyBreakdown`: its prefill steps' share plus
its decode tokens' share of the batched decode steps), priced at the GPU-hour rate:

.. math:: \\mathrm{USD} = \\tau \\, t_{replica} \\cdot \\frac{p_{hour}}{3600}

(:func:`gpu_seconds` is the lockstep special case ``tau t / c`` for ``c`` executions that
start and end together.)

API: every sequence of every call is a stateless request that sends its whole context
(:attr:`Workload.request_input_tokens`) and is billed its generated tokens (reasoning tokens
bill as output):

.. math:: \\mathrm{USD} = 10^{-6} \\big( I_{new} \\, p_{in} + I_{cached} \\, p_{cached} + O \\, p_{out} \\big)

When the workload shares prefixes and the API has a cached-input price, the prompt's repeats
(every request after the first sends the same ``P`` prompt tokens) are billed at the cached
price; this is the provider's best-effort prefix cache, so it is a lower bound. Without
sharing, every input token is billed at the full input price.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..catalog import ApiPrice
from .workload import Workload

__all__ = ["ApiCost", "gpu_seconds", "self_hosted_usd", "api_usd", "api_cost"]


def gpu_seconds(latency_s: float, *, tp: int = 1, concurrency: int = 1) -> float:
    """GPU-seconds one execution occupies: ``tp * latency_s / concurrency``."""
    if concurrency < 1 or tp < 1:
        raise ValueError(f"tp and concurrency must be >= 1, got tp={tp!r}, concurrency={concurrency!r}")
    return tp * latency_s / concurrency


def self_hosted_usd(gpu_s: float, usd_per_gpu_hour: float) -> float:
    """US$ of ``gpu_s`` GPU-seconds at ``usd_per_gpu_hour``: ``gpu_s * usd_per_gpu_hour / 3600``.

    Examples
    --------
    >>> self_hosted_usd(3600.0, 2.95)
    2.95
    """
    return gpu_s * usd_per_gpu_hour / 3600.0


def api_usd(
    input_tokens: float, output_tokens: float, price: ApiPrice, *, cached_input_tokens: float = 0.0
) -> float:
    """US$ of an API bill: ``1e-6 * (new_input * p_in + cached * p_cached + output * p_out)``,
    where ``new_input = input_tokens - cached_input_tokens``; the cached price falls back to the
    input price when the API has none.

    Examples
    --------
    >>> from planner.catalog import get_api_price
    >>> round(api_usd(1e6, 1e6, get_api_price("deepseek-r1")), 6)
    2.74
    """
    if cached_input_tokens > input_tokens:
        raise ValueError(f"cached_input_tokens ({cached_input_tokens}) exceeds input_tokens ({input_tokens})")
    cached_price = price.cached_input_usd_per_mtok
    if cached_price is None:
        cached_price = price.input_usd_per_mtok
    new = input_tokens - cached_input_tokens
    return 1e-6 * (
        new * price.input_usd_per_mtok
        + cached_input_tokens * cached_price
        + output_tokens * price.output_usd_per_mtok
    )


@dataclass(frozen=True)
class ApiCost:
    """An API bill for one execution (tokens and US$), with the price's provenance."""

    api: str
    input_tokens: float
    cached_input_tokens: float
    output_tokens: float
    usd: float
    price_date: str
    price_source: str

    def to_dict(self) -> dict[str, object]:
        """JSON-safe dict of the bill."""
        return asdict(self)


def api_cost(workload: Workload, price: ApiPrice) -> ApiCost:
    """The API bill of one execution of ``workload`` (module docstring); with per-sample lengths,
    the expected bill (token counts are then expectations, possibly fractional).

    Examples
    --------
    >>> from planner.catalog import get_api_price
    >>> w = Workload.from_strategy("pool:n=4", 1000, 2000, prefix_sharing=False)
    >>> api_cost(w, get_api_price("o1")).usd  # 4 x (1000 in at $15/M + 2000 out at $60/M)
    0.54
    """
    inputs = workload.request_input_tokens
    requests = sum(ph.sequences for ph in workload.phases())
    cached = 0
    if workload.prefix_sharing and price.cached_input_usd_per_mtok is not None:
        cached = max(requests - 1, 0) * workload.expected_prompt_tokens
    outputs = workload.generated_tokens
    inputs, cached, outputs = (
        int(x) if float(x).is_integer() else float(x) for x in (inputs, cached, outputs)
    )
    return ApiCost(
        api=price.name,
        input_tokens=inputs,
        cached_input_tokens=cached,
        output_tokens=outputs,
        usd=round(api_usd(inputs, outputs, price, cached_input_tokens=cached), 12),
        price_date=price.price_date,
        price_source=price.source,
    )
