"""`ttc report` on a REAL lab profile: `ttc profile` runs the trained lab-s checkpoint on one
lab-arith question per level (greedy, a pool of 6, two budget-forcing configs), then `ttc
report` writes the page, PNGs and Markdown. Skipped when the lab-s checkpoint is not trained."""

from __future__ import annotations

import pytest
import report_fixtures as F
from lab_runs import profile_args
from typer.testing import CliRunner

from planner.cli import app
from planner.costs import lab_checkpoint_dirs


@pytest.mark.skipif(
    "lab-s" not in {p.name for p in lab_checkpoint_dirs()}, reason="lab-s checkpoint not trained yet"
)
def test_report_on_a_real_lab_profile(tmp_path):
    runner = CliRunner()
    prof = tmp_path / "lab"
    r = runner.invoke(app, profile_args(prof, "greedy", "pool:n=6", "budget:tokens=8|16"))
    assert r.exit_code == 0, r.output
    out = tmp_path / "report.html"
    r = runner.invoke(app, ["report", str(prof), "--out", str(out), "--n-boot", "5"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    page = out.read_text()
    parser = F.SpecParser()
    parser.feed(page)
    assert {t.removeprefix("chart-") for t, _ in parser.specs} == F.CHART_KEYS - {"moe"}
    assert "fast-cache-filled-slots" in page  # the measured KV points come from the fast engine's cache
    assert "model lab-s" in page and "backend=hf" in page  # provenance from run.json
    assert "At this scale the table says little" in page  # a 0.09M-parameter model leaves the GPU idle
    pngs = sorted((tmp_path / "report-charts").glob("*.png"))
    assert [p.stem for p in pngs] == sorted(F.CHART_KEYS - {"moe"})
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
