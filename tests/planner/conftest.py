"""Tests of :mod:`planner`: the cost model and catalog, the option space, the searches,
allocation, adaptive policies, recommendations, the report and the ``ttc`` commands.
Helpers: ``planner_fixtures.py`` (synthetic curves from known per-question probabilities),
``report_fixtures.py`` (a synthetic profile folder), ``costs_helpers.py`` (tiny configs).

The synthetic curves and their option space are built once per session (fitting their laws is
the slow part) and shared by the modules that read them; tests must not modify them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import planner_fixtures as F
import pytest

from fitting.importer import import_file
from planner.space import OptionSpace

#: the two Pythia checkpoints of the adaptive-profiling tests' recording
RECORDED_MODELS = ("Pythia_12B_300B", "Pythia_1B_300B")


@pytest.fixture(scope="session")
def curves():
    """Curves of 30 questions per difficulty, pools of 16 (planner_fixtures.py)."""
    return F.curves_table(n_questions=30, pool=16)


@pytest.fixture(scope="session")
def space(curves):
    """The option space of :func:`curves` with the toy coster (no law fitted beyond the records)."""
    return OptionSpace.from_curves(curves, F.toy_coster(), architectures=F.ARCH)


@pytest.fixture(scope="session")
def recording(tmp_path_factory) -> Path:
    """Two Pythia checkpoints' real counts (128 GSM8K questions each, pools of 128 and 640), from
    tests/data, imported without lengths; tests read it, never write into it."""
    d = tmp_path_factory.mktemp("rec")
    df = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "monkeys_gsm8k_pythia_counts_slice.csv")
    df = df[df["model"].isin(RECORDED_MODELS)][["model", "question_id", "n_samples", "n_correct"]]
    df.to_csv(d / "counts.csv", index=False)
    import_file(d / "counts.csv", d / "imp")
    return d / "imp"
