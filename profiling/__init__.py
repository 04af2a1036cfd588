"""Measure: run strategies on models over tasks and write the samples table.

Imports only the schema of :mod:`fitting` (see docs/design.md, import direction).
"""
