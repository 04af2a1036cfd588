"""Measure: run strategies on models over tasks and write the samples table.

Imports only the schema of :mod:`fitting` (see DESIGN.md, import direction).
"""
