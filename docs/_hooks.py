"""MkDocs hook: the planner API page lists every public name of ``planner``, read from the
package's own export table, so the page cannot fall behind the API."""

from __future__ import annotations

import ast
from pathlib import Path

MARKER = "<!-- planner-public-api -->"


def _exports() -> dict[str, str]:
    """``planner._EXPORTS`` (public name -> defining module), read without importing planner."""
    tree = ast.parse((Path(__file__).parents[1] / "planner" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
                return ast.literal_eval(node.value)
    raise RuntimeError("planner/__init__.py has no _EXPORTS table")


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    blocks = [
        f"::: {module}.{name}" for name, module in sorted(_exports().items(), key=lambda kv: kv[0].lower())
    ]
    return markdown.replace(MARKER, "\n\n".join(blocks))
