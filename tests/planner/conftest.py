"""Tests of :mod:`planner`: the cost model and catalog, the option space, the searches,
allocation, adaptive policies, recommendations, the report and the ``ttc`` commands.
Helpers: ``planner_fixtures.py`` (synthetic curves from known per-question probabilities),
``report_fixtures.py`` (a synthetic profile folder), ``costs_helpers.py`` (tiny configs)."""
