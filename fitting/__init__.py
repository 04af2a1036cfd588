"""Estimate and fit: the samples schema, all-k estimators, scaling laws, bootstrap.

Never imports torch, :mod:`profiling` or :mod:`planner`.
"""

from __future__ import annotations

from .schema import SchemaError, read_samples, validate_samples

__all__ = ["SchemaError", "read_samples", "validate_samples"]
