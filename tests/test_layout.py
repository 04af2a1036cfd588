"""The layout's rules, checked statically on the source (docs/architecture.md).

* Imports go one way (docs/design.md): ``common`` (the plumbing every package uses) imports
  none of the three packages; ``fitting`` imports neither ``profiling`` nor ``planner``
  nor torch; ``profiling`` does not import ``planner``. Checked on the syntax tree, so an
  import inside a function counts too.
* Private stays private: no module imports another module's private name (``from m import
  _x``), and a private module (``pkg/_x.py``) is imported only from inside its package.
  Tests may import the private helper they test; the packages, benchmarks and the notebook
  builder may not.
* The import graph is visible: in-repo imports sit at the top of a module, except where a
  lazy import keeps something cheap (listed below with the reason).
* No module is longer than 600 lines.
* Every module of the three packages is imported from this checkout (an editable install
  of another checkout would otherwise fill in modules this one lacks).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "fitting", "profiling", "planner")
MAX_LINES = 600

#: modules allowed to import in-repo modules inside functions, and why
LAZY_IMPORTS = {
    "planner/cli/": "each command imports its work when it runs, so `ttc --help` stays fast",
    "planner/report/__init__.py": "the package stays cheap: the CLI imports planner.report.format",
    "planner/demo.py": "profiling.runner imports torch",
    "profiling/backends/__init__.py": "each backend imports its engine (torch, vllm, an HTTP client) when loaded",
    "planner/costs/spec.py": "ModelSpec's constructors dispatch to _hf_config, given and the catalog, which import ModelSpec",
}
#: modules allowed over MAX_LINES, and why
LONG_MODULES: dict[str, str] = {}


def _sources(*folders: str) -> list[Path]:
    return sorted(p for d in folders for p in (ROOT / d).rglob("*.py"))


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(line, imported module, names, inside a function) of every import statement."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((child.lineno, a.name, (), in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                out.append((child.lineno, target, tuple(a.name for a in child.names), in_function))
            visit(child, inside)

    visit(tree, False)
    return out


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("common", {"fitting", "profiling", "planner", "torch", "transformers", "vllm", "numpy", "pandas"}),
        ("fitting", {"profiling", "planner", "torch", "transformers", "vllm"}),
        ("profiling", {"planner"}),
    ],
)
def test_imports_go_one_way_even_inside_functions(package, forbidden):
    bad = [
        f"{_where(p, line)} imports {target}"
        for p in _sources(package)
        for line, target, _, _ in _imports(p)
        if target.split(".")[0] in forbidden
    ]
    assert not bad, "\n".join(bad)


def _private_violations(path: Path) -> list[str]:
    me = _module(path)
    bad = []
    for line, target, names, _ in _imports(path):
        parts = target.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                owner = ".".join(parts[:i])
                if not (me == owner or me.startswith(owner + ".")):
                    bad.append(f"{_where(path, line)} imports the private module {target}")
        for name in names:
            if not name.startswith("_") or name.startswith("__"):
                continue
            submodule = ROOT.joinpath(*target.split("."), name)
            own_package = me == target or me.startswith(target + ".")
            if own_package and (submodule.with_suffix(".py").exists() or submodule.is_dir()):
                continue  # a private module of the importer's own package
            bad.append(f"{_where(path, line)} imports the private name {name} from {target}")
    return bad


def test_no_module_imports_another_modules_private_names():
    files = _sources(*PACKAGES, "benchmarks") + [ROOT / "notebooks" / "_build.py"]
    bad = [v for p in files for v in _private_violations(p)]
    assert not bad, "\n".join(bad)


def test_in_repo_imports_are_at_the_top_unless_a_lazy_import_is_listed():
    bad = []
    for p in _sources(*PACKAGES):
        rel = p.relative_to(ROOT).as_posix()
        if any(rel.startswith(prefix) for prefix in LAZY_IMPORTS):
            continue
        for line, target, _, in_function in _imports(p):
            if in_function and target.split(".")[0] in PACKAGES:
                bad.append(f"{_where(p, line)} imports {target} inside a function")
    assert not bad, "\n".join(bad)


def test_no_module_is_longer_than_600_lines():
    files = _sources(*PACKAGES, "tests", "benchmarks", "notebooks")
    long = {
        p.relative_to(ROOT).as_posix(): n
        for p in files
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert set(long) <= set(LONG_MODULES), {k: v for k, v in long.items() if k not in LONG_MODULES}


def test_the_rule_checker_sees_what_it_should(tmp_path, monkeypatch):
    """The checks above flag what they are meant to (a checker that cannot fail proves nothing)."""
    pkg = tmp_path / "fitting" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "fitting" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "_private.py").write_text("def helper():\n    pass\n")
    (pkg / "ok.py").write_text(
        "from ._private import helper\n\n_cache = {}\n"
    )  # its own package's private module
    (tmp_path / "fitting" / "bad.py").write_text(
        "from fitting.sub._private import helper\nfrom fitting.sub.ok import _cache\n"
        "def f():\n    import planner.costs\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _private_violations(pkg / "ok.py") == []
    bad = _private_violations(tmp_path / "fitting" / "bad.py")
    assert len(bad) == 2 and "private module" in bad[0] and "private name _cache" in bad[1]
    (line, target, _, inside) = _imports(tmp_path / "fitting" / "bad.py")[-1]
    assert (line, target, inside) == (4, "planner.costs", True)


def test_every_module_is_imported_from_this_checkout():
    code = f"""
import importlib, pkgutil, sys
root = {str(ROOT)!r}
optional = ("profiling.backends.vllm",)  # needs the vllm extra
for name in {PACKAGES!r}:
    pkg = importlib.import_module(name)
    for m in pkgutil.walk_packages(pkg.__path__, name + "."):
        if m.name.startswith(optional) or m.name.endswith("__main__"):
            continue
        importlib.import_module(m.name)
outside = sorted(n for n, m in sys.modules.items() if n.split(".")[0] in {PACKAGES!r}
                 and getattr(m, "__file__", None) and not m.__file__.startswith(root))
print("\\n".join(outside))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"modules imported from another checkout:\n{out.stdout}"


def test_importing_fitting_loads_neither_torch_nor_the_other_packages():
    """The static check sees this repository's imports; this one sees third-party ones too."""
    code = "import fitting, fitting.pipeline, fitting.importer, sys; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert not loaded & {"torch", "transformers", "profiling", "planner"}
