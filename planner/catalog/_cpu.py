"""Calibrate the ``cpu`` hardware entry on this machine (measured, never assumed).

What is measured (torch, in ``dtype``, with torch's current thread count):

* ``peak_flops`` — FLOP/s of an ``n x n`` matmul, ``2 n^3 / t`` (median of timed repeats after a
  warm-up). Large matmuls are the best case; the small matmuls of tiny models run below it.
* ``memory_bandwidth_bytes_per_s`` — read bandwidth of ``x.sum()`` over a buffer much larger
  than the caches, ``bytes(x) / t`` (median).
* ``step_overhead_s`` and ``layer_overhead_s`` — the fixed cost of one forward step of a
  Hugging Face decoder that the roofline does not see (Python dispatch, small-kernel
  launches): decode steps of two near-zero-size ``LlamaForCausalLM`` models (1 and 4 layers,
  hidden size 8, vocabulary 8) are timed, and ``t(L) = step + layer * L`` is solved from the two.
  On a GPU serving engine (CUDA graphs) this term is small and the catalog leaves it at 0.

Results are cached as JSON in ``default_cache_path()`` — ``$TTC_CACHE_DIR`` or
``$XDG_CACHE_HOME/ttc-planner`` or ``~/.cache/ttc-planner``, file ``cpu_calibration.json`` —
keyed by host, torch version, thread count and dtype; ``recompute=True`` measures again.
Calibration takes a few seconds; numbers on a shared machine vary run to run (the cache
records when they were taken).
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.atomic import atomic_write

__all__ = ["calibrate_cpu", "default_cache_path"]

CACHE_ENV = "TTC_CACHE_DIR"
_CACHE_VERSION = 1


def default_cache_path() -> Path:
    """Where :func:`calibrate_cpu` caches its measurements (see the module docstring)."""
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base) / "cpu_calibration.json"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "ttc-planner" / "cpu_calibration.json"


def _median_time_s(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _physical_memory_bytes() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 0.0


def _decode_step_s(layers: int, torch: Any, repeats: int) -> float:
    """Median seconds of one cached decode step (batch 1) of a near-zero-size HF Llama."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        hidden_size=8,
        intermediate_size=8,
        num_hidden_layers=layers,
        num_attention_heads=1,
        num_key_value_heads=1,
        vocab_size=8,
        max_position_embeddings=256,
    )
    model = LlamaForCausalLM(cfg).eval()
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    ids = torch.zeros((1, 4), dtype=torch.long)
    with torch.no_grad():
        out = model(ids, use_cache=True)
        cache, nxt = out.past_key_values, torch.zeros((1, 1), dtype=torch.long)
        times = []
        for _ in range(repeats + 2):
            t0 = time.perf_counter()
            out = model(nxt, use_cache=True, **{cache_kw: cache})
            times.append(time.perf_counter() - t0)
            cache = out.past_key_values
    return statistics.median(times[2:])


def _matmul_time_s(torch: Any, dtype: Any, n: int, repeats: int) -> float:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dtype)
    b = torch.randn(n, n, generator=gen).to(dtype)
    return _median_time_s(lambda: torch.matmul(a, b), repeats)


def _sum_time_s(torch: Any, dtype: Any, n_bytes: int, repeats: int) -> tuple[float, int]:
    x = torch.ones(n_bytes * 8 // torch.finfo(dtype).bits, dtype=dtype)
    return _median_time_s(lambda: x.sum(), repeats), x.numel() * x.element_size()


def _measure(dtype_name: str, matmul_n: int, bandwidth_bytes: int, repeats: int) -> dict[str, Any]:
    import torch

    dtype = getattr(torch, dtype_name)
    t_mm = _matmul_time_s(torch, dtype, matmul_n, repeats)
    t_bw, n_bytes = _sum_time_s(torch, dtype, bandwidth_bytes, repeats)
    t1 = _decode_step_s(1, torch, repeats=20)
    t4 = _decode_step_s(4, torch, repeats=20)
    layer_s = max((t4 - t1) / 3.0, 0.0)
    step_s = max(t1 - layer_s, 0.0)
    return {
        "peak_flops": 2.0 * matmul_n**3 / t_mm,
        "memory_bandwidth_bytes_per_s": n_bytes / t_bw,
        "memory_bytes": _physical_memory_bytes(),
        "step_overhead_s": step_s,
        "layer_overhead_s": layer_s,
        "dtype": dtype_name,
        "threads": torch.get_num_threads(),
        "matmul_n": matmul_n,
        "bandwidth_probe_bytes": n_bytes,
        "torch_version": torch.__version__,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": platform.node(),
        "version": _CACHE_VERSION,
    }


def calibrate_cpu(
    *,
    dtype: str = "float32",
    recompute: bool = False,
    cache_path: str | os.PathLike[str] | None = None,
    matmul_n: int = 2048,
    bandwidth_bytes: int = 256 * 2**20,
    repeats: int = 5,
) -> dict[str, Any]:
    """Measure (or read from the cache) this CPU's roofline numbers.

    Parameters
    ----------
    dtype : torch dtype name of the probes; the lab models run in float32 on CPU.
    recompute : measure even when a cached result for this host/torch/threads/dtype exists.
    cache_path : JSON cache file (default :func:`default_cache_path`); ``""`` disables caching.
    matmul_n, bandwidth_bytes, repeats : probe sizes (n x n matmul; bytes summed) and timed repeats.

    Returns
    -------
    dict with ``peak_flops`` (FLOP/s), ``memory_bandwidth_bytes_per_s``, ``memory_bytes``,
    ``step_overhead_s`` and ``layer_overhead_s`` (seconds per forward step: fixed and per layer),
    and provenance (``dtype``, ``threads``, ``measured_at``, ``host``, ``torch_version``).

    Examples
    --------
    >>> cal = calibrate_cpu()  # doctest: +SKIP
    >>> cal["peak_flops"] > 1e9  # doctest: +SKIP
    True
    """
    import torch  # calibration path only

    key = f"{platform.node()}|torch={torch.__version__}|threads={torch.get_num_threads()}|{dtype}"
    path = None if cache_path == "" else Path(cache_path) if cache_path else default_cache_path()
    cached: dict[str, Any] = {}
    if path is not None and path.exists():
        try:
            cached = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            cached = {}  # a corrupt cache is recomputed and overwritten
        hit = cached.get(key)
        if not recompute and isinstance(hit, dict) and hit.get("version") == _CACHE_VERSION:
            return hit
    result = _measure(dtype, matmul_n, bandwidth_bytes, repeats)
    if path is not None:
        cached[key] = result
        try:
            atomic_write(path, json.dumps(cached, indent=1, sort_keys=True))
        except OSError:
            pass  # a read-only home still gets a measured (uncached) result
    return result
