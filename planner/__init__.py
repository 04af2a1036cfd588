"""Decide: cost model, option space, search, allocation, reports and the ``ttc`` CLI.

The public API, importable from here::

    from planner import load_profile, plan, PlanRequest
    prof = load_profile("runs/lab")
    rec = plan(prof, PlanRequest({"flops": 1e13}, difficulty="4", hardware="h100"))
    rec.to_json()

The layout (one folder per question; docs/architecture.md):

* :mod:`planner.space`: what is possible and what it is worth (arms, predictions, pricing);
* :mod:`planner.search`: which option to pick (single objective, Pareto, allocation, adaptive);
* :mod:`planner.costs`, :mod:`planner.catalog`: the cost model and its data;
* :mod:`planner.report`: charts, tables, findings and formatting;
* :mod:`planner.cli`: the ``ttc`` commands, one module each.

Names are loaded on first use (this package's ``__init__`` imports nothing heavy), so that
``ttc --help`` stays fast.
"""

from __future__ import annotations

import importlib

#: public name -> the module that defines it
_EXPORTS = {
    "Profile": "planner.profile",
    "load_profile": "planner.profile",
    "profile_from_tables": "planner.profile",
    "PlanRequest": "planner.request",
    "PlanError": "planner.recommend",
    "Recommendation": "planner.recommend",
    "plan": "planner.recommend",
    "build_space": "planner.recommend",
    "measure_next": "planner.what_to_measure",
    "evaluate_profile": "planner.holdout",
    "run_demo": "planner.demo",
    "Budget": "planner.search",
    "OptionSpace": "planner.space",
    "ExtraModel": "planner.space",
    "CostModel": "planner.space",
    "build_report": "planner.report",
    "headline_findings": "planner.report.findings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'planner' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
