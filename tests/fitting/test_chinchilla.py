"""JointPowerLaw on real data: reproduce the Chinchilla replication fit (Besiroglu et al. 2024).

Data: 245 training runs extracted from Hoffmann et al. 2022, Figure 4 (see
``shared/data/README.md``). Published fit on the 240 runs left after dropping the 5
highest-loss ones, Huber loss (delta 1e-3) on log L: E = 1.82, A = 482.01, B = 2085.43,
alpha = 0.3478, beta = 0.3658.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fitting.joint import JointPowerLaw, joint_objective

DATA = Path(__file__).parents[1] / "data" / "chinchilla_svg_extracted.csv"  # tests/data/README.md

PUBLISHED = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


@pytest.fixture(scope="module")
def runs():
    df = pd.read_csv(DATA)
    n = df["Model Size"].to_numpy(float)
    d = df["Training FLOP"].to_numpy(float) / (6.0 * n)  # tokens D = C / (6 N)
    loss = df["loss"].to_numpy(float)
    keep = np.argsort(loss)[:-5]  # drop the 5 highest-loss runs, as the replication did
    return np.column_stack([n, d])[keep], loss[keep]


def test_reproduces_the_published_replication_fit_quickly(runs):
    X, y = runs
    assert len(y) == 240
    start = time.process_time()  # CPU seconds of this process: other processes' load does not count
    law = JointPowerLaw(space="log", loss="huber", delta=1e-3).fit(X, y)
    cpu_s = time.process_time() - start
    p = law.params_
    assert law.converged_, law.report()
    assert p["E"] == pytest.approx(PUBLISHED["E"], abs=0.05)
    assert p["A"] == pytest.approx(PUBLISHED["A"], rel=0.10)
    assert p["B"] == pytest.approx(PUBLISHED["B"], rel=0.10)
    assert p["alpha"] == pytest.approx(PUBLISHED["alpha"], abs=0.01)
    assert p["beta"] == pytest.approx(PUBLISHED["beta"], abs=0.01)
    # measured 0.07-0.9 s (wall) on the shared 2-core dev machine; the naive 4,500-start L-BFGS-B
    # grid (numerical gradient) extrapolates to ~160 s there from a timed 45-start subset
    assert cpu_s < 20.0, f"fit took {cpu_s:.1f} CPU s"


def test_fit_is_at_least_as_good_as_the_published_and_the_original_estimates(runs):
    X, y = runs
    law = JointPowerLaw().fit(X, y)
    l1, l2 = np.log(X[:, 0]), np.log(X[:, 1])
    w = np.ones_like(y)

    def objective(p):
        theta = [np.log(p["A"]), np.log(p["B"]), np.log(p["E"]), p["alpha"], p["beta"]]
        return joint_objective(np.array(theta), l1, l2, np.log(y), w)[0]

    hoffmann = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    ours = objective(law.params_)
    assert ours == pytest.approx(law.objective_, rel=1e-6)
    assert ours <= objective(PUBLISHED) * (1 + 1e-6)  # the published values are rounded
    assert ours < 0.5 * objective(hoffmann)  # the replication's point: the original fits badly
