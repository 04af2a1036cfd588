"""The exploration notebooks run end to end, so they never rot.

Each notebook is executed in a fresh kernel of this interpreter (nbclient replaces the
``python`` of the ``python3`` kernelspec with ``sys.executable``), from the repository root;
a cell that raises fails the test (:class:`nbclient.exceptions.CellExecutionError`). The
notebooks assert their own invariants (majority@k equals brute force over all subsets, the
recommendation fits its budget and beats every option within it, latency rises with
concurrency...); here we also check that the outputs a reader looks for are there.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

#: notebook -> (texts that must appear in the outputs, number of Altair charts it draws)
EXPECTED = {
    "01_profile_and_fit.ipynb": (
        ["rows in", "majority@k matches brute force", "converged: yes", "predicted majority@32"],
        1,
    ),
    "02_plan_a_budget.ipynb": (
        ['"expected_accuracy"', '"binding_constraint"', "choice: lab-", "mix accuracy", "- Level 5: lab-l"],
        1,
    ),
    "03_capacity.ipynb": (["MB of KV cache per 1,000-token sequence", "deepseek-r1:", "kv_memory"], 1),
}


def _outputs(nb) -> tuple[str, int]:
    """All text of the code cells' outputs, and how many rendered Altair charts (vegaEmbed) they hold."""
    texts, charts = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append(out.get("text", ""))
            data = out.get("data", {})
            texts.append(str(data.get("text/plain", "")))
            html = str(data.get("text/html", ""))
            charts += "vegaEmbed" in html or any(m.startswith("application/vnd.vegalite") for m in data)
    return "\n".join(texts), charts


def _builder():
    """``notebooks/_build.py`` as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_tested_and_built():
    committed = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert committed == sorted(EXPECTED) == sorted(_builder().NOTEBOOKS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_notebook_is_what_the_builder_writes(name):
    """The JSON in git has not drifted from its source of truth, notebooks/_build.py."""
    committed = (NOTEBOOKS / name).read_text(encoding="utf-8")
    assert committed == _builder().render(name), f"{name} differs from notebooks/_build.py: run it and commit"


def test_notebooks_are_committed_without_outputs():
    for name in EXPECTED:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear outputs"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell on any error
    elapsed_s = time.perf_counter() - t0
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    text, charts = _outputs(nb)
    want_text, want_charts = EXPECTED[name]
    for snippet in want_text:
        assert snippet in text, f"{name}: no output contains {snippet!r}"
    assert charts == want_charts, f"{name}: {charts} charts rendered, expected {want_charts}"
    print(f"{name}: executed in {elapsed_s:.1f} s")
