"""The "what to measure next" block of a recommendation, as plain lines (the CLI prints them;
the numbers come from :func:`planner.what_to_measure.measure_next`)."""

from __future__ import annotations

import shlex
import textwrap

from .format import format_cost

__all__ = ["measure_next_lines", "shell_lines"]

#: columns of the CLI's output
WIDTH = 100


def shell_lines(command: str, indent: str = "", width: int = WIDTH) -> list[str]:
    r"""A shell command over lines of at most ``width`` columns (when its words allow), joined by
    ``\`` continuations so that it still pastes into a shell as one command; each ``--flag``
    stays on the line of its value.

    Examples
    --------
    >>> shell_lines("ttc profile --model lab-s --out runs/lab", width=24)
    ['ttc profile \\', '  --model lab-s \\', '  --out runs/lab']
    """
    words = [shlex.quote(w) for w in shlex.split(command)]
    groups: list[str] = []
    for w in words:
        if groups and groups[-1].startswith("--") and " " not in groups[-1] and not w.startswith("--"):
            groups[-1] += " " + w
        else:
            groups.append(w)
    lines, line = [], indent + groups[0]
    for g in groups[1:]:
        if len(line) + 1 + len(g) + 2 > width:
            lines.append(line + " \\")
            line = indent + "  " + g
        else:
            line += " " + g
    return [*lines, line]


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def measure_next_lines(block: dict) -> list[str]:
    """The block's lines: how sure the choice is, then each action with its command.

    Examples
    --------
    >>> measure_next_lines({"p_best": 0.5, "expected_regret_points": 1.25, "p_best_beyond_reach": 0.0,
    ...                     "actions": []})[1:]
    ['  P(choice is the best feasible option) 0.50 · expected regret 1.2 points · nothing to measure: no', '    profiling of the profiled models is expected to lower the regret by 0.01 point']
    """
    head = (
        f"  P(choice is the best feasible option) {_num(block['p_best'], '.2f')} · "
        f"expected regret {_num(block['expected_regret_points'], '.1f')} points"
    )
    beyond = block.get("p_best_beyond_reach")
    if beyond:
        head += f" · P(the best lies beyond the extrapolation limit) {beyond:.2f}"
    actions = block.get("actions") or []
    if not actions:
        head += " · nothing to measure: no profiling of the profiled models is expected to lower the regret by 0.01 point"
    lines = ["What to measure next", *textwrap.wrap(head, WIDTH, subsequent_indent="    ")]
    for i, a in enumerate(actions, 1):
        cost = f"{format_cost('tokens', a['predicted_generated_tokens'])} generated tokens"
        if a.get("predicted_gpu_seconds") is not None:
            cost += f", {a['predicted_gpu_seconds']:.3g} GPU-s"
        text = (
            f"  {i}. expected regret -{a['expected_regret_reduction_points']:.2f} points for {cost}: "
            f"{a['kind']}, {a['informs']}"
        )
        lines += textwrap.wrap(text, WIDTH, subsequent_indent="     ")
        lines += shell_lines(a["command"], "     ")
        if a.get("note"):
            lines += textwrap.wrap(
                f"(edit first: {a['note']})", WIDTH, initial_indent="     ", subsequent_indent="     "
            )
    return lines
