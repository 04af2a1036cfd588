"""The report's "What to measure next" section: for the mix's choice at each report budget, how
sure it is and which profiling would settle it (:func:`planner.what_to_measure.measure_next`,
the block ``ttc recommend`` prints), as two tables over the budgets."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..request import PlanRequest
from ..search import search_exhaustive
from ..what_to_measure import measure_next_in
from . import data as D
from .format import format_budget, format_cost

__all__ = ["measure_next_blocks", "measure_next_tables", "MEASURE_TEXT"]

MEASURE_TEXT = (
    "How sure the planner is of its choice for the mix at each budget, and the profiling runs that would "
    "lower its expected regret most per unit of profiling cost (the block `ttc recommend` prints). P(best) "
    "and the expected regret are over the joint question bootstrap of the measured options and the 90% "
    "intervals of the predicted ones; each command resumes the profile folder and adds what it names. "
    "Costs of the runs are predicted from the measured tokens per query."
)


def _request(ctx: D.PlanContext, budget: float, seed: int, n_boot: int) -> PlanRequest:
    hw = ctx.hardware.name if ctx.hardware is not None else None
    return PlanRequest(
        {ctx.budget_key: float(budget)},
        hardware=hw,
        concurrency=ctx.coster.concurrency,
        tp=ctx.coster.tp,
        verifier=ctx.verifier or "none",
        risk=ctx.risk,
        seed=seed,
        n_boot=n_boot,
    )


def measure_next_blocks(
    ctx: D.PlanContext, budgets: Sequence[float], *, seed: int = 0, n_boot: int = 200
) -> list[dict | None]:
    """The ``measure_next`` block of the mix's choice at each budget (None where nothing fits),
    from the report's own option space and search (the choice of the budget map).

    The budgets share one option space and target, so the bootstrap replicates are drawn once
    (:func:`~planner.what_to_measure.measure_next_in`'s ``beliefs``: the same draw a call of
    its own makes) and only feasibility, the choice and the actions are redone per budget."""
    beliefs: dict = {}
    out = []
    for b in budgets:
        budget = ctx.budget(b)
        best = search_exhaustive(ctx, ctx.mix, budget, ctx.risk).best
        if best is None:
            out.append(None)
            continue
        plan_ctx = {
            "space": ctx.space,
            "target": dict(ctx.mix),
            "budget": budget,
            "coster": ctx.coster,
            "hardware": ctx.hardware,
            "request": _request(ctx, b, seed, n_boot),
            "best": best,
        }
        out.append(measure_next_in(ctx.profile, plan_ctx, beliefs=beliefs))
    return out


def _tag(i: int, key: str, b: float) -> str:
    return f"B{i + 1}: {format_budget(key, b)}"


def measure_next_tables(
    ctx: D.PlanContext, budgets: Sequence[float], blocks: Sequence[dict | None], grid: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(how sure each budget's choice is, one row per budget; the actions, one row per command
    with the budgets it serves and its largest expected regret reduction among them). ``grid``
    is the report's :func:`~planner.report.data.budget_grid_frame` (the choices' labels)."""
    key, sure, actions = ctx.budget_key, [], {}
    options = grid.loc[grid[D.TARGET] == ctx.mix_label, D.OPTION].tolist()
    for i, (b, block) in enumerate(zip(budgets, blocks, strict=True)):
        tag = _tag(i, key, b)
        if block is None:
            sure.append({"budget": tag, "choice": "no option fits"})
            continue
        sure.append(
            {
                "budget": tag,
                "choice": options[i] if i < len(options) else "",
                "P(choice is best)": _num(block["p_best"], ".2f"),
                "expected regret (points)": _num(block["expected_regret_points"], ".2f"),
                "P(best beyond the extrapolation limit)": _num(block["p_best_beyond_reach"], ".2f"),
                "actions worth >= 0.01 point": len(block["actions"]),
            }
        )
        for a in block["actions"]:
            row = actions.setdefault(a["command"], {**a, "budgets": [], "gain": 0.0})
            row["budgets"].append(f"B{i + 1}")
            row["gain"] = max(row["gain"], float(a["expected_regret_reduction_points"]))
    rows = [
        {
            "action": f"{a['kind']}: {a['informs']}",
            "budgets": ", ".join(a["budgets"]),
            "expected regret reduction (points, best budget)": f"{a['gain']:.2f}",
            "generated tokens (predicted)": format_cost("tokens", a["predicted_generated_tokens"]),
            "GPU-seconds (predicted)": _num(a["predicted_gpu_seconds"], ".3g"),
            "command": cmd,
        }
        for cmd, a in sorted(actions.items(), key=lambda kv: -kv[1]["gain"])
    ]
    return pd.DataFrame(sure), pd.DataFrame(rows)


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(float(v), fmt)
