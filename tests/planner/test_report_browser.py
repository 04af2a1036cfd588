"""The report in a real browser: headless Chromium (Debian's `chromium` package) opens the page
from a file with every host unresolvable, renders every chart into SVG without a console
message, and takes a screenshot. Skipped when /usr/bin/chromium is absent
(install it with `apt-get install -y chromium`).

Set TTC_REPORT_SCREENSHOT=PATH to keep the screenshot (e.g. to look at it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import report_fixtures as F

from planner.report import build_report

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless browser test needs /usr/bin/chromium (apt-get install -y chromium)",
)
CHARTS = ("budget_map", "accuracy", "pareto", "allocation", "moe", "kv")


def chromium(url: str, profile_dir: Path, *extra: str, timeout_s: float = 120.0) -> tuple[str, list[str]]:
    """Run headless Chromium on ``url``; return (stdout, console lines from its log).

    Every host resolves to nothing (``--host-resolver-rules``), so a page that needs the network
    fails to render and says so on the console; the virtual time budget lets asynchronous
    rendering finish before the DOM is dumped or the screenshot taken.
    """
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile_dir}",
        "--enable-logging=stderr",
        "--v=0",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=20000",
        *extra,
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = F.write_profile(tmp_path_factory.mktemp("profile"), n_questions=6)
    return build_report(folder, tmp_path_factory.mktemp("report") / "report.html", n_boot=5, png=False).html


def test_console_capture_catches_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); null.x;</script></body></html>")
    _, console = chromium(bad.as_uri(), tmp_path / "ud", "--dump-dom")
    assert any("boom" in line for line in console) and any("Uncaught" in line for line in console)


def test_every_chart_renders_to_svg_without_console_messages(report, tmp_path):
    dom, console = chromium(report.as_uri(), tmp_path / "ud", "--dump-dom")
    assert console == [], "\n".join(console)
    assert 'data-rendered="error"' not in dom
    for key in CHARTS:
        m = re.search(rf"<div[^>]*id=\"chart-{key}\"[^>]*>", dom)
        assert m, f"no chart-{key} element"
        assert 'data-rendered="true"' in m.group(0), f"chart-{key} did not finish rendering"
        body = dom[m.end() : m.end() + 400_000].split("<section", 1)[0]
        assert body.startswith("<svg"), f"chart-{key} has no SVG"
        assert body.count('class="mark-') >= 3, f"chart-{key} drew almost nothing"


def test_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    _, console = chromium(
        report.as_uri(),
        tmp_path / "ud",
        f"--screenshot={shot}",
        "--window-size=1400,4000",
        "--hide-scrollbars",
    )
    assert console == [], "\n".join(console)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 100_000  # a blank page compresses to a few kB
    keep = os.environ.get("TTC_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
