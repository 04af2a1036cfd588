"""Costs written for people (shared by the CLI tables and the report); stdlib only, so cheap to import."""

from __future__ import annotations

import math

from ..constants import MEMORY_BYTES

__all__ = ["format_cost"]


def format_cost(key: str, value: float | None) -> str:
    """A cost for people: ``$1.2e-05``, ``0.12 s``, ``1,234`` tokens, ``3.4 MB``, ``1.2e+10``.

    Examples
    --------
    >>> format_cost("usd", 1.234e-5), format_cost("tokens", 1234.4), format_cost("flops", 2e10)
    ('$1.23e-05', '1,234', '2e+10')
    """
    if value is None or not math.isfinite(float(value)):
        return "-"
    v = float(value)
    if key == "usd":
        return f"${v:.3g}"
    if key == "latency_s":
        return f"{v:.3g} s"
    if key == "tokens":
        return f"{v:,.0f}"
    if key in ("kv_bytes", MEMORY_BYTES):
        return f"{v / 1e6:.3g} MB"
    return f"{v:.3g}"
