"""ttc demo end to end on the real lab checkpoints, at a tiny preset (the default is ~3 minutes)."""

import html
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import fitting.cache as C
from fitting import schema as S
from planner import demo
from planner.cli import app
from planner.search import split_questions
from planner.split_engine import split_seeds
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
    n_splits=5,
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
    findings = _findings(out)
    assert len(findings) == 3
    samples = S.read_samples(out / "profile")
    assert set(samples[S.MODEL]) == {"lab-s", "lab-l", "lab-moe"}
    assert samples[S.KV_SOURCE].eq("fast-cache-filled-slots").all()  # the demo runs the fast engine


def _findings(out) -> list[str]:
    lines = (out / "findings.md").read_text().splitlines()
    return [
        re.sub(r"^\d\. ", "", line) for line in lines if re.match(r"^\d\. ", line) and "`ttc " not in line
    ]


def test_the_findings_printed_are_those_the_report_quotes(demo_run):
    out, result = demo_run
    printed = " ".join(result.output.split())
    page, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    for finding in _findings(out):
        assert " ".join(finding.split()) in printed
        assert html.escape(finding) in page and finding in md


def test_the_size_finding_quotes_the_held_out_greedy_accuracy(demo_run):
    """lab-l greedy's accuracy in the first finding is the mean, over the demo's random splits,
    of its accuracy on each split's held-out half, computed here from the raw samples."""
    out, _ = demo_run
    finding = _findings(out)[0]
    m = re.match(r"Level (\d): lab-l greedy( cot=True)? answers (\d+)% ", finding)
    assert m, finding
    samples = S.read_samples(out / "profile")
    diff = samples.groupby(S.QUESTION_ID)[S.DIFFICULTY].first().astype(str).to_dict()
    rows = samples[(samples[S.MODEL] == "lab-l") & (samples[S.STRATEGY] == "greedy")]
    rows = rows[rows[S.CONFIG].str.contains('"cot": true') & (rows[S.DIFFICULTY] == m.group(1))]
    correct = rows.groupby(S.QUESTION_ID)[S.CORRECT].mean()
    held_out = []
    for seed in split_seeds(0, TINY.n_splits):
        _, test = split_questions(list(diff), diff, seed)
        held_out.append(correct[[q for q in correct.index if q in test]].mean())
    assert int(m.group(3)) == round(100 * float(np.mean(held_out)))


def test_the_demo_ends_with_the_next_commands(demo_run):
    out, result = demo_run
    tail = result.output[result.output.index("next steps") :]
    assert f"ttc recommend {out / 'profile'}" in tail and f"ttc evaluate {out / 'profile'}" in tail
    assert "ttc profile --model" in tail
    assert "## Next steps" in (out / "findings.md").read_text()


def test_the_demo_prints_what_to_measure_next_after_the_findings(demo_run):
    """The block `ttc recommend` prints (P(best), expected regret, the profiling runs), for the
    report's middle budget, between the findings and the next steps, and in findings.md."""
    out, result = demo_run
    text = result.output
    at = text.index("What to measure next (the choice for every question at ")
    assert text.index("headline findings") < at < text.index("next steps")
    assert "P(choice is the best feasible option)" in text[at:]
    md = (out / "findings.md").read_text()
    assert md.index("## What to measure next") < md.index("## Next steps")


def test_rerun_reuses_every_measurement_and_fit_and_says_the_same(demo_run):
    """A rerun measures nothing, estimates no curve group and fits no law (counted through the
    one cache module, fitting.cache), and prints the same findings."""
    out, first = demo_run
    before = sorted(p.name for p in (out / "profile").glob("*.parquet"))
    calls = {"groups": 0, "curves": 0}
    estimate, fit = C.estimate_group, C.fit_curves

    def estimate_group(*args, **kwargs):
        calls["groups"] += 1
        return estimate(*args, **kwargs)

    def fit_curves(curves, *args, **kwargs):
        calls["curves"] += len(C.curve_units(curves))
        return fit(curves, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(demo.PRESETS, "quick", TINY)
        mp.setattr(C, "estimate_group", estimate_group)
        mp.setattr(C, "fit_curves", fit_curves)
        result = CliRunner().invoke(app, ["demo", "--out", str(out)], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "profile").glob("*.parquet")) == before
    assert calls == {"groups": 0, "curves": 0}

    def findings(text):
        return text[text.index("headline findings, checked") :].strip()

    assert findings(first.output) == findings(result.output)
