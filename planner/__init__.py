"""Decide: cost model, catalog, Optuna search, allocation, reports and the ``ttc`` CLI."""
