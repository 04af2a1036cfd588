"""ttc demo end to end on the real lab checkpoints, at a tiny preset (the default is ~3 minutes)."""

import re

import pytest
from typer.testing import CliRunner

from fitting import schema as S
from planner import demo
from planner.cli import app
from profiling.lab import LAB_MODELS, checkpoint_path

pytestmark = pytest.mark.skipif(
    not all((checkpoint_path(m) / "config.json").is_file() for m in LAB_MODELS),
    reason="lab checkpoints missing",
)

TINY = demo.DemoPreset(
    models=("lab-s", "lab-l", "lab-moe"),
    strategies=("greedy", "pool:n=4,temperature=1.0"),
    per_level=2,
    n_boot=20,
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(demo.PRESETS, "quick", TINY)
        result = CliRunner().invoke(app, ["demo", "--out", str(out)], terminal_width=400)
    return out, result


def test_demo_writes_profile_fits_report_and_prints_three_findings(demo_run):
    out, result = demo_run
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and (out / "fit" / "fits.json").is_file()
    assert f"report: {out / 'report.html'}" in result.output.replace("\n", "")
    findings = (out / "findings.md").read_text().splitlines()[2:]
    assert len(findings) == 3
    samples = S.read_samples(out / "profile")
    assert set(samples[S.MODEL]) == {"lab-s", "lab-l", "lab-moe"}
    assert samples[S.KV_SOURCE].eq("hf-cache-tensors").all()


def test_the_size_finding_quotes_the_measured_greedy_accuracy(demo_run):
    out, _ = demo_run
    finding = (out / "findings.md").read_text().splitlines()[2]
    m = re.search(r"level (\d): lab-l greedy( cot=True)? reaches (\d+)%", finding)
    assert m, finding
    samples = S.read_samples(out / "profile")
    rows = samples[(samples[S.MODEL] == "lab-l") & (samples[S.STRATEGY] == "greedy")]
    rows = rows[rows[S.CONFIG].str.contains('"cot": true') & (rows[S.DIFFICULTY] == m.group(1))]
    assert int(m.group(3)) == round(100 * rows[S.CORRECT].mean())


def test_rerun_reuses_every_measurement(demo_run):
    out, _ = demo_run
    before = sorted(p.name for p in (out / "profile").glob("*.parquet"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(demo.PRESETS, "quick", TINY)
        result = CliRunner().invoke(app, ["demo", "--out", str(out)], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "profile").glob("*.parquet")) == before
