"""One command-line vocabulary: every flag is declared once, in the shared option modules
(``planner/cli/_options*.py``), so its help text, default handling and help panel are the same in
every command; command functions stay short; ``ttc --version`` answers."""

from __future__ import annotations

import ast
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from planner.cli import app

CLI = Path(__file__).resolve().parents[2] / "planner" / "cli"
MAX_BODY_LINES = 80


def _is_options_module(path: Path) -> bool:
    return path.name.startswith("_options")


def _typer_declarations(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, Option or Argument, flag strings) of each ``typer.Option``/``typer.Argument`` call."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("Option", "Argument"):
            continue
        flags = [
            name
            for arg in node.args
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            for name in arg.value.split("/")
            if name.startswith("--")
        ]
        found.append((node.lineno, node.func.attr, flags))
    return found


def test_no_option_or_argument_is_declared_outside_the_shared_option_modules():
    """A command takes its options as Annotated types; a typer.Option/Argument in a command
    module is a second declaration with its own help, default and panel."""
    outside = [
        f"{path.name}:{line} {kind} {' '.join(flags)}".strip()
        for path in sorted(CLI.glob("*.py"))
        if not _is_options_module(path)
        for line, kind, flags in _typer_declarations(path)
    ]
    assert not outside, outside


def test_every_flag_is_declared_once_in_the_shared_option_modules():
    seen: dict[str, str] = {}
    twice = []
    for path in sorted(CLI.glob("_options*.py")):
        for line, _, flags in _typer_declarations(path):
            for flag in flags:
                where = f"{path.name}:{line}"
                if flag in seen:
                    twice.append(f"{flag} at {seen[flag]} and {where}")
                seen.setdefault(flag, where)
    assert not twice, twice
    assert {"--samples", "--profile", "--gpu", "--no-cache", "--json", "--version"} <= set(seen)


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body without its signature, decorators and docstring."""
    body = node.body
    first = body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        body = body[1:]
    return 0 if not body else body[-1].end_lineno - body[0].lineno + 1


def test_no_function_body_in_the_cli_is_longer_than_80_lines():
    long = [
        f"{path.name}:{node.lineno} {node.name} ({_body_lines(node)} lines)"
        for path in sorted(CLI.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_BODY_LINES
    ]
    assert not long, long


def test_body_length_counts_the_body_only():
    """The measure the rule uses: the signature and the docstring do not count."""
    tree = ast.parse('def f(\n    a,\n    b,\n):\n    """Doc.\n\n    More."""\n    x = 1\n    return x\n')
    assert _body_lines(tree.body[0]) == 2


def test_version_prints_the_installed_version_and_exits_0():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"ttc-planner {version('ttc-planner')}"
    assert re.fullmatch(r"ttc-planner \d+\.\d+\.\d+\S*", r.output.strip())


@pytest.mark.parametrize("spelling", ["--samples", "--profile", "-p"])
def test_samples_and_its_alias_profile_name_the_same_folder(tmp_path, spelling):
    """--profile is an alias of --samples (kept for compatibility): given with a different
    positional folder, the command refuses in one line naming both, before any work."""
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "a"), spelling, str(tmp_path / "b")])
    assert r.exit_code == 2, r.output
    flag = "--profile" if spelling == "-p" else spelling
    assert (
        f"give the samples folder once (got argument {tmp_path / 'a'} and {flag} {tmp_path / 'b'})"
        in r.output
    )


@pytest.mark.parametrize("command", ["fit", "forecast", "evaluate", "report", "recommend"])
def test_every_command_that_reads_a_samples_folder_takes_samples(command):
    out = CliRunner().invoke(app, [command, "--help"], terminal_width=200).output
    assert "--samples" in out and "SAMPLES" in out
    assert "--profile" not in out  # the alias works but is not advertised


def test_recommend_refuses_a_repeated_budget_in_one_line(tmp_path):
    """--budget-flops repeats in `ttc profile --adaptive` (several budgets to plan for); a plan
    has one budget per cost, so recommend says so instead of taking the last."""
    r = CliRunner().invoke(app, ["recommend", str(tmp_path), "--budget-flops", "1", "--budget-flops", "2"])
    assert r.exit_code == 2
    assert "give --budget-flops once here, got 2 values" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("command", [["fit", "S", "--out", "O"], ["forecast", "S", "--at", "4"]])
def test_n_boot_and_level_are_checked_alike_in_every_command(tmp_path, command):
    for flag, value, message in (
        ("--n-boot", "-1", "--n-boot must be >= 0 (0: no intervals), got -1"),
        ("--level", "1.5", "--level must be a coverage in (0, 1), e.g. 0.9, got 1.5"),
    ):
        r = CliRunner().invoke(app, [*command, flag, value])
        assert r.exit_code == 2, r.output
        assert message in r.output


def test_the_adaptive_profiling_token_budget_has_its_own_flag(tmp_path):
    """--budget-tokens is a per-query budget (ttc recommend); the generated tokens an adaptive
    profile may spend in all are --budget-profile-tokens, refused without --adaptive."""
    argv = ["profile", "-m", "lab-s", "-t", "lab-arith", "--budget-profile-tokens", "100"]
    r = CliRunner().invoke(app, [*argv, "--out", str(tmp_path / "x")])
    assert r.exit_code == 2, r.output
    assert "--budget-profile-tokens applies to --adaptive runs only" in r.output
