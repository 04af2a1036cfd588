"""Write a computed report: the self-contained HTML page, one PNG per chart, the Markdown summary.

The HTML page opens offline: the Vega, Vega-Lite and vega-embed libraries are inlined once from
vl-convert's bundle (:func:`vl_convert.javascript_bundle`), each chart's Vega-Lite spec is embedded
as JSON (``<script type="application/json">``) with its data inline, and nothing is loaded from a
URL (no ``src=`` or ``href=`` to the network; vega-embed's action menu, which links to the online
editor, is off). PNGs are rendered by vl-convert with external data requests forbidden
(``allowed_base_urls=[]``).
"""

from __future__ import annotations

import functools
import html
import json
import math
from pathlib import Path

import altair as alt
import pandas as pd

from common.atomic import atomic_write

from .build import ReportContent

__all__ = ["write_html", "write_pngs", "write_markdown", "vega_lite_version"]


def vega_lite_version() -> str | None:
    """The vl-convert Vega-Lite version matching Altair's schema (``"6.4"``), or None (latest)."""
    import vl_convert

    want = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return want if want in vl_convert.get_vegalite_versions() else None


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1320px;color:#222;
line-height:1.45;padding:0 16px}
h1{font-size:26px;margin-bottom:4px}h2{margin-top:42px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.note{color:#7a4b00;background:#fff6e0;padding:6px 10px;border-left:3px solid #e0a800;margin:8px 0}
table{border-collapse:collapse;margin:10px 0 18px;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.caption,summary{font-weight:600;margin:14px 0 2px}
summary{cursor:pointer}.chart{margin:12px 0;overflow-x:auto}nav a{margin-right:14px}ul.summary li{margin:2px 0}
.legend-src{font-size:13px;color:#444}
"""

_RENDER_JS = """
(function () {
  var opts = {actions: false, renderer: "svg"};
  document.querySelectorAll("script.vl-spec").forEach(function (node) {
    var target = document.getElementById(node.dataset.target);
    var spec = JSON.parse(node.textContent);
    vegaEmbed(target, spec, opts).then(function () {
      target.dataset.rendered = "true";
    }).catch(function (err) {
      target.dataset.rendered = "error";
      target.textContent = "chart failed to render: " + err;
      console.error("chart " + node.dataset.target + " failed: " + err);
    });
  });
})();
"""


def _spec_json(spec: dict) -> str:
    """A Vega-Lite spec as JSON safe inside a <script> element."""
    text = json.dumps(spec, allow_nan=False, separators=(",", ":"))
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


#: tables longer than this are folded (<details>) so that the charts stay close together
_FOLD_ROWS = 12


def _table_html(caption: str, df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return f"<p class='meta'>{html.escape(caption)}: none</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if len(df) > _FOLD_ROWS:
        return f"<details><summary>{html.escape(caption)} ({len(df)} rows)</summary>{table}</details>"
    return f"<p class='caption'>{html.escape(caption)}</p>{table}"


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return str(v)


@functools.lru_cache(maxsize=2)
def _js_bundle(version: str | None) -> str:
    """vega-embed, Vega-Lite and Vega as one script (~0.9 MB; built once per process, ~1 s)."""
    import vl_convert

    return vl_convert.javascript_bundle(vl_version=version)


_SUMMARY = "The planner's choice for every question at each budget (in sample: planned and scored on the same questions)."


def _nav(content: ReportContent) -> list[tuple[str, str]]:
    """(anchor, title) of every part of the page, in order."""
    out = [("findings", "Headline findings")] if content.findings is not None else []
    out += [(s.key, s.title) for s in content.sections]
    return out + ([("next", "Next steps")] if content.next_steps else [])


def write_html(content: ReportContent, path: Path) -> Path:
    """Write the self-contained page (module docstring)."""
    bundle = _js_bundle(vega_lite_version())
    if "</script" in bundle.lower():  # never expected; a bare one would end the element early
        raise RuntimeError("vl-convert's JavaScript bundle contains '</script': cannot inline it safely")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(content.title)}</title><style>{_CSS}</style>",
        f"<script>{bundle}</script></head><body>",
        f"<h1>{html.escape(content.title)}</h1>",
        "<p class='meta'>Every number says where it comes from: <b>measured</b> (the profile), <b>fitted</b> or "
        "<b>extrapolated</b> (a fitted law), or <b>predicted</b> (the analytic cost model, from measured tokens).</p>",
        "<nav>" + "".join(f"<a href='#{k}'>{html.escape(t)}</a>" for k, t in _nav(content)) + "</nav>",
        f"<h2>Summary</h2><p class='meta'>{html.escape(_SUMMARY)}</p><ul class='summary'>"
        + "".join(f"<li>{html.escape(x)}</li>" for x in content.summary)
        + "</ul>",
    ]
    if content.findings is not None:
        f = content.findings
        parts += [
            "<section id='findings'><h2>Headline findings, checked on held-out questions</h2><ol class='findings'>",
            *(f"<li>{html.escape(x)}</li>" for x in f.texts),
            "</ol>",
            f"<p class='meta'>{html.escape(f.method())}.</p>",
            _table_html("Every number of the findings", f.table()),
            "</section>",
        ]
    for s in content.sections:
        parts.append(f"<section id='{s.key}'><h2>{html.escape(s.title)}</h2><p>{html.escape(s.text)}</p>")
        parts += [f"<p class='note'>{html.escape(n)}</p>" for n in s.notes]
        if s.chart is not None:
            parts.append(f"<div class='chart' id='chart-{s.key}' data-chart='{s.key}'></div>")
            parts.append(
                f"<script type='application/json' class='vl-spec' data-target='chart-{s.key}'>"
                f"{_spec_json(content.specs()[s.key])}</script>"
            )
        parts += [_table_html(cap, df) for cap, df in s.tables]
        parts.append("</section>")
    if content.next_steps:
        parts.append("<section id='next'><h2>Next steps</h2><ol>")
        parts += [
            f"<li><code>{html.escape(cmd)}</code>: {html.escape(why)}</li>" for cmd, why in content.next_steps
        ]
        parts.append("</ol></section>")
    parts.append(f"<script>{_RENDER_JS}</script></body></html>")
    return atomic_write(path, "".join(parts))


def write_pngs(content: ReportContent, folder: Path, scale: float = 2.0) -> dict[str, Path]:
    """One PNG per chart (vl-convert; no external data requests), at ``scale`` pixels per CSS
    pixel (2: sharp on high-density screens and readable when zoomed)."""
    import vl_convert

    folder = Path(folder)
    out = {}
    version = vega_lite_version()
    for key, spec in content.specs().items():
        png = vl_convert.vegalite_to_png(spec, vl_version=version, scale=scale, allowed_base_urls=[])
        out[key] = atomic_write(folder / f"{key}.png", png)
    return out


def _md_table(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "_none_\n"

    def esc(v) -> str:
        return _cell(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_markdown(content: ReportContent, path: Path, pngs: dict[str, Path] | None = None) -> Path:
    """The Markdown summary: the same sections and tables, charts as PNG links."""
    path = Path(path)
    lines = (
        [
            f"# {content.title}",
            "",
            "Every number says where it comes from: **measured** (the profile), **fitted** or **extrapolated** "
            "(a fitted law), or **predicted** (the analytic cost model, from measured tokens).",
            "",
            "## Summary",
            "",
            _SUMMARY,
            "",
        ]
        + [f"- {x}" for x in content.summary]
        + [""]
    )
    if content.findings is not None:
        f = content.findings
        lines += ["## Headline findings, checked on held-out questions", ""]
        lines += [f"{i}. {x}" for i, x in enumerate(f.texts, 1)] + ["", f"_{f.method()}._", ""]
        lines += ["**Every number of the findings**", "", _md_table(f.table())]
    for s in content.sections:
        lines += [f"## {s.title}", "", s.text, ""]
        lines += [f"> note: {n}" for n in s.notes]
        if s.notes:
            lines.append("")
        if pngs and s.key in pngs:
            rel = (
                Path(pngs[s.key]).resolve().relative_to(path.parent.resolve())
                if _under(pngs[s.key], path.parent)
                else pngs[s.key]
            )
            lines += [f"![{s.title}]({Path(rel).as_posix()})", ""]
        for cap, df in s.tables:
            lines += [f"**{cap}**", "", _md_table(df)]
    if content.next_steps:
        lines += ["## Next steps", ""] + [
            f"{i}. `{cmd}`: {why}" for i, (cmd, why) in enumerate(content.next_steps, 1)
        ]
        lines.append("")
    return atomic_write(path, "\n".join(lines))


def _under(p: Path, folder: Path) -> bool:
    try:
        Path(p).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False
