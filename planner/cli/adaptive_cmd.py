"""``ttc profile --adaptive``: profile in rounds, each where the decision needs it
(:mod:`planner.adaptive_profiling`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._common import console, err_console, not_none, parse_pairs


@dataclass
class AdaptiveOptions:
    """The flags of ``ttc profile --adaptive`` (the profiling budget and what to plan for)."""

    budget_samples: int | None = None
    budget_profile_tokens: float | None = None
    stop_regret: float = 0.5
    block: int = 4
    budget_flops: list[float] | None = None
    budget_usd: list[float] | None = None
    gpu: str | None = None
    tp: int | None = None
    verifier: str | None = None
    difficulty: str | None = None
    model_spec: list[str] | None = None
    assume_prompt_tokens: int | None = None
    assume_completion_tokens: int | None = None
    forecast_at: int | None = None

    def given(self) -> list[str]:
        """The adaptive-only flags given (refused without --adaptive)."""
        flags = {
            "--budget-samples": self.budget_samples is not None,
            "--budget-profile-tokens": self.budget_profile_tokens is not None,
            "--budget-flops": bool(self.budget_flops),
            "--budget-usd": bool(self.budget_usd),
            "--gpu": self.gpu is not None,
            "--tp": self.tp is not None,
            "--verifier": self.verifier is not None,
            "--difficulty": self.difficulty is not None,
            "--model-spec": bool(self.model_spec),
            "--assume-prompt-tokens": self.assume_prompt_tokens is not None,
            "--assume-completion-tokens": self.assume_completion_tokens is not None,
            "--forecast-at": self.forecast_at is not None,
        }
        return [f for f, on in flags.items() if on]

    def budgets(self) -> list[dict[str, float]] | None:
        """The target budgets (one per value given), or None for the default grid."""
        out = [{"flops": float(v)} for v in self.budget_flops or []]
        out += [{"usd": float(v)} for v in self.budget_usd or []]
        return out or None


def pool_knobs(strategies: list) -> tuple[str, list[str]]:
    """The knobs of the one ``pool`` strategy an adaptive run grows (``n`` and ``block`` are the
    profiler's), as a spec suffix such as ``",temperature=0.7"``, and the full specs of the run's
    other strategies (profiled on every question in the seed round)."""
    pools = [s for s in strategies if s.name == "pool"]
    if len(pools) != 1:
        raise ValueError(
            "--adaptive grows one pool per model: give one --strategy pool (its n is left to the profiler), "
            f"got {', '.join(str(s.spec) for s in strategies)}"
        )
    params = pools[0].params
    defaults = pools[0].descriptor.knobs
    kept = {k: v for k, v in params.items() if k not in ("n", "block") and v != defaults[k].default}
    others = [str(s.spec) for s in strategies if s.name != "pool"]
    return "".join(f",{k}={v}" for k, v in sorted(kept.items())), others


def run_adaptive(
    models, task, strategies, out: Path, opts: AdaptiveOptions, runner_kwargs: dict[str, Any], seed: int
):
    """Run the adaptive profile and print what it did."""
    from ..adaptive_profiling import profile_adaptive
    from ..request import PlanRequest

    knobs, others = pool_knobs(strategies)
    if opts.forecast_at is not None:
        if others:  # refused, not dropped: the forecast narrows pass@K of the pools only
            raise ValueError(
                f"--forecast-at grows pools only: drop --strategy {' --strategy '.join(others)} "
                "(or leave out --forecast-at to plan with them)"
            )
        return run_forecast(models, task, out, opts, knobs, runner_kwargs, seed)
    budgets = opts.budgets()
    request = PlanRequest(
        budgets[0] if budgets else {"flops": 1.0},
        difficulty=opts.difficulty,
        hardware=opts.gpu,
        tp=opts.tp,
        **not_none(verifier=opts.verifier),
        model_specs=parse_pairs(opts.model_spec, "--model-spec"),
        assume_prompt_tokens=opts.assume_prompt_tokens,
        assume_completion_tokens=opts.assume_completion_tokens,
    )

    def said(r: dict) -> None:
        grown = ", ".join(f"{m} to {n * opts.block}" for m, n in sorted(r["grow"].items()))
        grown = f"pools of {grown} per question" if grown else "no pool grown"
        err_console.print(f"round {r['round']}: {grown} ({r['why']})", highlight=False)

    result = profile_adaptive(
        models,
        task,
        out,
        request,
        budgets=budgets,
        budget_samples=opts.budget_samples,
        budget_tokens=opts.budget_profile_tokens,
        stop_regret=opts.stop_regret,
        block=opts.block,
        seed=seed,
        pool_knobs=knobs,
        strategies=others,
        runner_kwargs=runner_kwargs,
        on_round=said,
    )
    regret = ", ".join(f"{k}: {v:.2f}" for k, v in result.regret.items())
    console.print(
        f"adaptive profile: {len(result.rounds)} round(s), {result.samples:,} samples"
        + (f", {result.tokens:,.0f} generated tokens" if result.tokens > 0 else "")
        + f" in {out}; stopped: {result.stopped}"
        + (f"; expected regret (points) {regret}" if regret else ""),
        highlight=False,
    )
    if result.unmeasured:
        err_console.print(
            f"warning: no measurement of {', '.join(result.unmeasured)}: the plan cannot choose it",
            highlight=False,
        )
    console.print(f"next: ttc recommend {out} ...", highlight=False)


def run_forecast(models, task, out: Path, opts: AdaptiveOptions, knobs: str, runner_kwargs, seed: int):
    """``--adaptive --forecast-at K``: grow the pools that narrow each model's pass@K interval
    (:mod:`planner.adaptive_forecast`) and print what it did."""
    from ..adaptive_forecast import profile_forecast

    if opts.budget_samples is None:
        raise ValueError(
            "--forecast-at spends a sample budget: give --budget-samples N (not --budget-profile-tokens)"
        )
    result = profile_forecast(
        models,
        task,
        out,
        forecast_at=opts.forecast_at,
        budget_samples=opts.budget_samples,
        block=opts.block,
        seed=seed,
        pool_knobs=knobs,
        runner_kwargs=runner_kwargs,
        on_round=lambda r: err_console.print(f"round {r['round']}: {r['why']}", highlight=False),
    )
    k = opts.forecast_at
    for model, est in sorted(result.estimates.items()):
        console.print(f"{model}: pass@{k} {est:.3f} (90% interval width {result.widths[model]:.3f})")
    console.print(
        f"adaptive profile: {len(result.rounds)} round(s), {result.samples:,} samples in {out}; "
        f"stopped: {result.stopped}",
        highlight=False,
    )
    console.print(f"next: ttc forecast {out} --at {k}", highlight=False)
