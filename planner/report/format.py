"""Numbers written for people (shared by the CLI tables, the findings and the report); stdlib
only, so cheap to import."""

from __future__ import annotations

import json
import math

from ..constants import MEMORY_BYTES

__all__ = [
    "format_cost",
    "format_pct",
    "format_pct_interval",
    "format_points",
    "format_points_interval",
    "format_flops",
    "format_params",
    "format_budget",
    "format_serving",
    "strict_json",
    "NULL_REASONS",
    "UNITS",
]

#: the unit of each cost key, as column headers say it
UNITS = {
    "flops": "FLOPs/query",
    "effective_flops": "eFLOPs/query",
    "tokens": "tokens/query",
    "usd": "US$/query",
    "latency_s": "s/query",
    "kv_bytes": "KV MB",
    MEMORY_BYTES: "memory MB",
}


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def format_cost(key: str, value: float | None) -> str:
    """A cost for people: ``$1.2e-05``, ``0.12 s``, ``1,234`` tokens, ``3.4 MB``, ``1.2e+10``.

    Examples
    --------
    >>> format_cost("usd", 1.234e-5), format_cost("tokens", 1234.4), format_cost("flops", 2e10)
    ('$1.23e-05', '1,234', '2e+10')
    """
    if not _finite(value):
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


def format_flops(value: float | None) -> str:
    """FLOPs per query with the unit: ``1.5e+08 FLOPs/query``.

    Examples
    --------
    >>> format_flops(1.53e8)
    '1.53e+08 FLOPs/query'
    """
    return "-" if not _finite(value) else f"{float(value):.3g} FLOPs/query"


def format_pct(value: float | None) -> str:
    """An accuracy as a whole percentage: ``41%``.

    Examples
    --------
    >>> format_pct(0.4062), format_pct(None)
    ('41%', '-')
    """
    return "-" if not _finite(value) else f"{100 * float(value):.0f}%"


def format_pct_interval(lo: float | None, hi: float | None) -> str:
    """An accuracy interval: ``[33%, 49%]`` (``no interval`` when an end is missing)."""
    if not (_finite(lo) and _finite(hi)):
        return "no interval"
    return f"[{format_pct(lo)}, {format_pct(hi)}]"


def format_points(value: float | None) -> str:
    """A difference of accuracies in percentage points, signed: ``+1.3 points``.

    Examples
    --------
    >>> format_points(0.0132), format_points(-0.05)
    ('+1.3 points', '-5.0 points')
    """
    return "-" if not _finite(value) else f"{100 * float(value):+.1f} points"


def format_points_interval(lo: float | None, hi: float | None) -> str:
    """A difference's interval in points: ``[-5.0, +7.6]``."""
    if not (_finite(lo) and _finite(hi)):
        return "no interval"
    return f"[{100 * float(lo):+.1f}, {100 * float(hi):+.1f}]"


def format_params(n: float) -> str:
    """A parameter count with an SI suffix: ``3.35B``, ``91.6k``.

    Examples
    --------
    >>> format_params(3.353e9), format_params(91_600), format_params(420_000)
    ('3.35B', '91.6k', '420k')
    """
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.3g}"


def format_budget(key: str, value: float | None) -> str:
    """A per-query budget with its unit: ``2e+08 FLOPs/query``, ``$1e-05/query``, ``1,500 tokens/query``.

    Examples
    --------
    >>> format_budget("flops", 2e8), format_budget("usd", 1e-5), format_budget("latency_s", 0.5)
    ('2e+08 FLOPs/query', '$1e-05/query', '0.5 s/query')
    """
    if not _finite(value):
        return "-"
    if key == "flops":
        return format_flops(value)
    if key == "tokens":
        return f"{format_cost(key, value)} tokens/query"
    if key == "effective_flops":
        return f"{format_cost(key, value)} effective FLOPs/query"
    return f"{format_cost(key, value)}/query"


def format_serving(serving: dict) -> str:
    """The serving assumptions of a recommendation or an evaluation (their ``serving`` JSON) in words.

    Examples
    --------
    >>> format_serving({"gpu": "h100", "tp": 2, "tp_source": "auto", "concurrency": 64, "prefix_sharing": True})
    'served on h100 x 2 (tp auto), 64 sequences per step, prefix sharing'
    >>> format_serving({"gpu": "h100", "tp": "auto", "concurrency": 64, "prefix_sharing": True, "checker_cost": {}})
    'served on h100 (tp: the fewest GPUs that fit each option), 64 sequences per step, prefix sharing; exact checker free'
    """
    where = serving.get("api") or serving.get("gpu") or "?"
    tp = serving.get("tp")
    if "gpu" in serving and isinstance(tp, int):
        where += f" x {tp} (tp {serving.get('tp_source', 'given')})"
    elif "gpu" in serving and tp == "auto":
        where += " (tp: the fewest GPUs that fit each option)"
    sharing = "prefix sharing" if serving.get("prefix_sharing") else "no prefix sharing"
    text = f"served on {where}, {serving.get('concurrency')} sequences per step, {sharing}"
    if "checker_cost" in serving:
        cost = serving["checker_cost"]
        text += "; exact checker " + (
            ", ".join(f"{k} {v:g} per checked sample" for k, v in cost.items())
            if isinstance(cost, dict) and cost
            else "free"
        )
    return text


#: the key under which :func:`strict_json` says why a number was written as null
NULL_REASONS = "null_reasons"


def strict_json(value, **dumps_kwargs) -> str:
    """``value`` as strict JSON (no NaN or Infinity, which JSON does not have): a non-finite
    number is written as null, and the object it sits in (the top-level object, or each
    object of a top-level list) gains :data:`NULL_REASONS`, mapping the number's path to why.

    Examples
    --------
    >>> strict_json({"a": 1.0, "b": {"c": float("inf")}})
    '{"a": 1.0, "b": {"c": null}, "null_reasons": {"b.c": "not a finite number (inf)"}}'
    >>> strict_json([{"x": float("nan")}, {"x": 2}])
    '[{"x": null, "null_reasons": {"x": "not a finite number (nan)"}}, {"x": 2}]'
    """

    def clean(v, path: str, reasons: dict[str, str]):
        if isinstance(v, dict):
            return {str(k): clean(x, f"{path}.{k}" if path else str(k), reasons) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x, f"{path}[{i}]", reasons) for i, x in enumerate(v)]
        if isinstance(v, float) and not math.isfinite(v):
            reasons[path] = f"not a finite number ({v})"
            return None
        return v

    def document(v):
        reasons: dict[str, str] = {}
        out = clean(v, "", reasons)
        if reasons and isinstance(out, dict):
            out[NULL_REASONS] = reasons
        return out

    top = [document(v) for v in value] if isinstance(value, (list, tuple)) else document(value)
    return json.dumps(top, allow_nan=False, **dumps_kwargs)
