"""Tests of :mod:`planner`: the cost model and catalog, the option space, the searches,
allocation, adaptive policies, recommendations, the report and the ``ttc`` commands.
Helpers: ``planner_fixtures.py`` (synthetic curves from known per-question probabilities),
``report_fixtures.py`` (a synthetic profile folder), ``costs_helpers.py`` (tiny configs).

The synthetic curves and their option space are built once per session (fitting their laws is
the slow part) and shared by the modules that read them; tests must not modify them.
"""

from __future__ import annotations

import planner_fixtures as F
import pytest

from planner.space import OptionSpace


@pytest.fixture(scope="session")
def curves():
    """Curves of 30 questions per difficulty, pools of 16 (planner_fixtures.py)."""
    return F.curves_table(n_questions=30, pool=16)


@pytest.fixture(scope="session")
def space(curves):
    """The option space of :func:`curves` with the toy coster (no law fitted beyond the records)."""
    return OptionSpace.from_curves(curves, F.toy_coster(), architectures=F.ARCH)
