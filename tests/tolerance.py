"""Comparing results of two code paths: floats within a stated tolerance, everything else exactly.

Two computations of one number (a fit from the cache path and the reference path, a batched
and a one-at-a-time solve) may sum in another order or take another SIMD kernel, so their
last bits differ from one CPU to another. Tests compare such floats with :func:`close_to`;
identity columns, counts, names and flags must still be equal.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

#: relative tolerance for two code paths that compute the same number (float64 round-off
#: amplified by a fit's conditioning stays far below it; a real change does not)
REL = 1e-9
#: absolute floor, for numbers that should be zero
ABS = 1e-12


def close_to(expected: Any, rel: float = REL, abs: float = ABS) -> Any:  # noqa: A002 - pytest's name
    """``expected`` with every float (NaN included) replaced by ``pytest.approx``, in nested
    dicts, lists and tuples; ints, bools, strings and None stay exact.

    >>> {"law": "power", "params": {"a": 0.1 + 0.2}} == close_to({"law": "power", "params": {"a": 0.3}})
    True
    >>> {"n": 3} == close_to({"n": 3.0000001})
    False
    """
    if isinstance(expected, dict):
        return {key: close_to(value, rel, abs) for key, value in expected.items()}
    if isinstance(expected, (list, tuple)):
        return type(expected)(close_to(value, rel, abs) for value in expected)
    if isinstance(expected, float):
        return pytest.approx(expected, rel=rel, abs=abs, nan_ok=math.isnan(expected))
    return expected
