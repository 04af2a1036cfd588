"""Adaptive profiling: pools grown a block at a time, rounds that resume, stopping, the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import betaln
from typer.testing import CliRunner

from fitting import schema as S
from fitting.betabinom import BetaBinomial
from fitting.importer import read_input
from planner.adaptive_profiling import STATE_FILE, profile_adaptive, spent
from planner.cli import app
from planner.costs import lab_checkpoint_dirs
from planner.profile import load_profile
from planner.recommend import plan
from planner.report.data import default_budgets, planning_context
from planner.request import PlanRequest
from profiling.backends.replay import ReplaySource
from profiling.runner import profile as run_profile

DATA = Path(__file__).resolve().parents[1] / "data"
MODELS = {"Pythia_12B_300B": "pythia-12b", "Pythia_1B_300B": "pythia-1b"}
ROOT = Path(__file__).resolve().parents[2]


def _adaptive(src: ReplaySource, out: Path, budgets=({"flops": 1e14},), **kw):
    """An adaptive run of the recording's two models with the shared request, blocks of 2."""
    return profile_adaptive(
        list(MODELS),
        src.task(),
        out,
        _request(),
        budgets=list(budgets),
        block=2,
        runner_kwargs={"loader": src.load},
        **kw,
    )


def _request() -> PlanRequest:
    return PlanRequest(
        {"flops": 1e14},
        hardware="h100",
        verifier="exact",
        model_specs=MODELS,
        assume_prompt_tokens=256,
        assume_completion_tokens=256,
    )


def _counts(folder: Path) -> pd.DataFrame:
    _, counts = read_input(folder)
    cols = [S.MODEL, S.CONFIG, S.QUESTION_ID, S.N_SAMPLES, S.N_CORRECT]
    return counts[cols].sort_values(cols[:3]).reset_index(drop=True)


def test_blocks_of_a_pool_read_back_as_one_pool_equal_to_drawing_it_whole(recording, tmp_path):
    src = ReplaySource.read(recording)
    task = src.task()
    model = "Pythia_12B_300B"
    blocks = [f"pool:n=4,block={j}" for j in range(3)]
    run_profile([model], task, blocks, tmp_path / "blocks", loader=src.load, seed=3)
    run_profile([model], task, ["pool:n=12"], tmp_path / "whole", loader=src.load, seed=3)
    got, whole = _counts(tmp_path / "blocks"), _counts(tmp_path / "whole")
    from profiling.strategies import get_strategy

    # the block key left the config: one pool, under the config of its first block
    assert (got[S.CONFIG] == get_strategy("pool:n=4").config_json()).all()
    assert (got[S.N_SAMPLES] == 12).all()
    # blocks j of n take samples j*n .. j*n+n-1 of the same seeded order: the same draws
    assert got[S.N_CORRECT].tolist() == whole[S.N_CORRECT].tolist()


def test_pool_configs_keep_their_old_form_in_block_zero():
    from fitting.blocks import BLOCK
    from profiling.strategies import get_strategy
    from profiling.strategies.pool import BLOCK as POOL_BLOCK

    assert POOL_BLOCK == BLOCK  # the strategy writes the key the readers merge on

    assert get_strategy("pool:n=8").config_json() == get_strategy("pool:n=8,block=0").config_json()
    assert '"block": 2' in get_strategy("pool:n=8,block=2").config_json()


def test_a_high_stop_regret_stops_after_the_seed_round(recording, tmp_path):
    src = ReplaySource.read(recording)
    res = _adaptive(src, tmp_path / "a", budget_samples=10_000, stop_regret=100.0)
    assert len(res.rounds) == 1 and res.stopped.startswith("expected regret")
    assert res.samples == 2 * 128 * 2 * res.rounds[0]["grow"]["Pythia_12B_300B"]
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    assert meta["adaptive"]["stopped"] == res.stopped


def test_the_budget_is_never_overspent_and_the_run_says_why_it_stopped(recording, tmp_path):
    src = ReplaySource.read(recording)
    budget = 2 * 128 * 10
    res = _adaptive(
        src,
        tmp_path / "b",
        budgets=[{"flops": 1e14}, {"flops": 1e15}],
        budget_samples=budget,
        stop_regret=0.0,
    )
    assert res.samples <= budget
    assert spent(tmp_path / "b")[0] == res.samples
    assert len(res.rounds) >= 2  # grew past the seed round
    assert res.stopped


_KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from profiling.backends.replay import ReplaySource
    from profiling.runner import profile as run_profile
    from planner.adaptive_profiling import profile_adaptive
    from planner.request import PlanRequest
    calls = []
    def runner(*a, **k):
        if len(calls) == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9, mid-run
        calls.append(1)
        return run_profile(*a, **k)
    src = ReplaySource.read({rec!r})
    req = PlanRequest({{"flops": 1e14}}, hardware="h100", verifier="exact", model_specs={models!r},
                      assume_prompt_tokens=256, assume_completion_tokens=256)
    profile_adaptive(list({models!r}), src.task(), Path({out!r}), req, budgets=[{{"flops": 1e14}}, {{"flops": 1e15}}],
                     budget_samples={budget}, stop_regret=0.0, block=2, runner=runner,
                     runner_kwargs={{"loader": src.load}})
    """
)


def test_a_run_killed_with_kill_9_and_resumed_ends_with_the_same_samples(recording, tmp_path):
    src = ReplaySource.read(recording)
    budget = 2 * 128 * 8
    kw = dict(budgets=[{"flops": 1e14}, {"flops": 1e15}], budget_samples=budget, stop_regret=0.0, block=2)
    whole = profile_adaptive(
        list(MODELS), src.task(), tmp_path / "whole", _request(), **kw, runner_kwargs={"loader": src.load}
    )
    assert len(whole.rounds) >= 2
    # the child is killed at its third profiler call: after the seed round, inside round 1
    script = _KILLED.format(
        root=str(ROOT),
        kill_at=2,
        rec=str(recording),
        models=MODELS,
        out=str(tmp_path / "killed"),
        budget=budget,
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr
    state = json.loads((tmp_path / "killed" / STATE_FILE).read_text())
    assert not state["rounds"][-1]["done"]  # killed inside a recorded round
    resumed = profile_adaptive(
        list(MODELS), src.task(), tmp_path / "killed", _request(), **kw, runner_kwargs={"loader": src.load}
    )
    assert resumed.stopped == whole.stopped
    pd.testing.assert_frame_equal(_counts(tmp_path / "killed"), _counts(tmp_path / "whole"))


def test_other_settings_into_the_same_folder_are_refused(recording, tmp_path):
    src = ReplaySource.read(recording)
    kw = dict(budgets=[{"flops": 1e14}], stop_regret=100.0, block=2, runner_kwargs={"loader": src.load})
    profile_adaptive(list(MODELS), src.task(), tmp_path / "c", _request(), budget_samples=1000, **kw)
    with pytest.raises(ValueError, match="other settings"):
        profile_adaptive(
            list(MODELS), src.task(), tmp_path / "c", _request(), budget_samples=1000, **{**kw, "block": 3}
        )
    # a larger budget continues the same run
    more = profile_adaptive(list(MODELS), src.task(), tmp_path / "c", _request(), budget_samples=2000, **kw)
    assert more.rounds[0]["round"] == 0 and more.stopped


def test_the_beta_binomial_fit_is_unbiased_on_adaptively_stopped_pools():
    """Which questions get more samples depends only on samples already seen, so each
    question's likelihood is that of a fixed pool (the binomial coefficient does not involve
    the rates): the maximum-likelihood fit recovers the rates' distribution, while the naive
    per-k average over the questions whose pool reaches k does not."""
    rng = np.random.default_rng(7)
    a, b, q = 0.3, 3.0, 4000
    p = rng.beta(a, b, size=q)
    first = rng.binomial(4, p)
    more = first == 0  # hard questions first: only those without a success get 60 more
    n = np.where(more, 64, 4)
    c = first + np.where(more, rng.binomial(60, p), 0)
    fit = BetaBinomial().fit(n, c)
    assert abs(fit.params_["a"] - a) < 0.05 and abs(fit.params_["b"] - b) < 0.6
    k = 64
    truth = 1 - np.exp(betaln(a, b + k) - betaln(a, b))
    assert abs(float(fit.predict(k)) - truth) < 0.02
    naive = float(np.mean(c[n >= k] > 0))  # pass@64 of the questions sampled 64 times
    assert abs(naive - truth) > 0.05  # the stopping rule biases what a per-k average sees


def test_the_cli_runs_an_adaptive_replay_and_recommend_reads_its_folder(recording, tmp_path):
    out = tmp_path / "cli"
    specs = [x for m, c in MODELS.items() for x in ("--model-spec", f"{m}={c}")]
    assumed = ["--assume-prompt-tokens", "256", "--assume-completion-tokens", "256"]
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "profile",
            "--backend",
            "replay",
            "--source",
            str(recording),
            "-s",
            "pool",
            "--adaptive",
            "--budget-samples",
            "1500",
            "--budget-flops",
            "1e14",
            "--gpu",
            "h100",
            "--verifier",
            "exact",
            "--block",
            "2",
            "--out",
            str(out),
            "--no-progress",
            *specs,
            *assumed,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "adaptive profile:" in r.output and "stopped:" in r.output
    assert spent(out)[0] <= 1500
    rec = runner.invoke(
        app,
        [
            "recommend",
            str(out),
            "--budget-flops",
            "1e14",
            "--gpu",
            "h100",
            "--verifier",
            "exact",
            "--json",
            *specs,
            *assumed,
        ],
    )
    assert rec.exit_code == 0, rec.output
    data = json.loads(rec.output[rec.output.index("{") :])
    assert "measure_next" in data


def test_adaptive_flags_without_adaptive_are_refused(tmp_path):
    r = CliRunner().invoke(
        app,
        ["profile", "-m", "lab-s", "-t", "lab-arith", "--budget-samples", "10", "--out", str(tmp_path / "x")],
    )
    assert r.exit_code == 2
    assert "--budget-samples applies to --adaptive runs only" in r.output


def test_adaptive_needs_one_pool_strategy(recording, tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "profile",
            "--backend",
            "replay",
            "--source",
            str(recording),
            "-s",
            "greedy",
            "--adaptive",
            "--budget-samples",
            "10",
            "--out",
            str(tmp_path / "y"),
        ],
    )
    assert r.exit_code == 2
    assert "--adaptive grows one pool per model" in r.output


def test_one_space_for_every_budget_plans_and_values_as_plan_does(recording, tmp_path):
    """A round plans every target budget on one option space (priced once) and draws the
    replicates once: the choices and what-to-measure answers equal plan() + measure_next
    called budget by budget."""
    from planner.adaptive_profiling import _contexts
    from planner.profile import load_profile
    from planner.recommend import plan
    from planner.what_to_measure import measure_next, measure_next_in

    src = ReplaySource.read(recording)
    out = tmp_path / "one"
    run_profile(list(MODELS), src.task(), ["pool:n=8"], out, loader=src.load, seed=0)
    req = _request()
    prof = load_profile(out, model_specs=MODELS, n_boot=0, verifier="exact", assumed=req.assumed_lengths)
    budgets = [{"flops": v} for v in (1e12, 3e13, 1e14, 1e15)]
    shared: dict = {}
    got = list(_contexts(prof, req, budgets, 100))
    assert len(got) >= 3
    for label, ctx in got:
        b = {"flops": float(label.split("=")[1])}
        rec = plan(prof, req.replace(budget=b, n_boot=100, method="exhaustive"))
        assert (ctx["best"]["arm"], ctx["best"]["knob_value"]) == (
            rec.context["best"]["arm"],
            rec.context["best"]["knob_value"],
        )
        assert measure_next_in(prof, ctx, n_boot=100, seed=0, beliefs=shared) == measure_next(
            prof, rec, n_boot=100, seed=0
        )
    assert len(shared) == 1  # one draw of the replicates for every budget


def test_a_round_grows_the_rarely_solved_questions_of_a_model(recording, tmp_path):
    """A grown model's new samples go first to the questions with the fewest successes so far
    (the allocation inside a pool): in some round the least solved questions get more blocks on
    average than the most solved ones, and the grown models' pools end uneven."""
    from planner._pool_allocation import QuestionSubset, question_pools

    src = ReplaySource.read(recording)
    out = tmp_path / "q"
    now, before = {"round": 1}, {}

    def runner(models, task, specs, folder, **kw):
        if isinstance(task, QuestionSubset) and now["round"] not in before:
            before[now["round"]] = question_pools(folder)  # what the round was planned from
        return run_profile(models, task, specs, folder, **kw)

    res = profile_adaptive(
        list(MODELS),
        src.task(),
        out,
        _request(),
        budgets=[{"flops": 1e14}, {"flops": 1e15}],
        budget_samples=2 * 128 * 24,
        stop_regret=0.0,
        block=2,
        runner=runner,
        runner_kwargs={"loader": src.load},
        on_round=lambda r: now.update(round=r["round"] + 1),
    )
    grown = [r for r in res.rounds if r.get("questions")]
    assert grown and before, res.stopped
    strict = False
    for r in grown:
        for model, questions in r["questions"].items():
            seen = before[r["round"]][model]
            blocks = {q: b - a for q, (a, b) in questions.items()}
            added = pd.Series(blocks).reindex(seen.index.astype(str)).fillna(0).to_numpy()
            c = seen["c"].to_numpy()
            strict |= bool(c.min() < c.max() and added[c == c.min()].mean() > added[c == c.max()].mean())
            assert question_pools(out)[model]["n"].nunique() > 1
    assert strict


@pytest.mark.skipif(
    not {"lab-s", "lab-l"} <= {p.name for p in lab_checkpoint_dirs()}, reason="lab checkpoints missing"
)
def test_a_greedy_strategy_beside_the_pool_is_profiled_in_the_seed_round_and_planned_with(tmp_path):
    """The run's other strategies are the cheap options a small budget picks: the seed round
    profiles greedy on every question of every model (one sample each), and the plan at a
    budget only greedy fits chooses it."""
    out = tmp_path / "lab"
    res = profile_adaptive(
        ["lab-s", "lab-l"],
        "lab-arith",
        out,
        PlanRequest({"flops": 1e9}, hardware="h100"),
        budgets=[{"flops": 1e9}],
        budget_samples=10_000,
        stop_regret=100.0,
        strategies=["greedy:cot=true"],
        runner_kwargs={"per_level": 2, "max_new_tokens": 128, "batch_size": 32, "progress": False},
    )
    assert res.rounds[0]["strategies"] == {"lab-s": ["greedy:cot=true"], "lab-l": ["greedy:cot=true"]}
    assert res.unmeasured == [] and res.stopped.startswith("expected regret")
    samples, _ = read_input(out)
    greedy = samples[samples[S.STRATEGY] == "greedy"]
    pools = samples[samples[S.STRATEGY] == "pool"]
    for model in ("lab-s", "lab-l"):
        ids = set(pools.loc[pools[S.MODEL] == model, S.QUESTION_ID])
        mine = greedy[greedy[S.MODEL] == model]
        assert len(mine) == len(ids) and set(mine[S.QUESTION_ID]) == ids  # one sample per question
    prof = load_profile(out, n_boot=20)
    cheapest = default_budgets(planning_context(prof, gpu="h100"), 8)[0]  # greedy is all that fits
    assert plan(prof, {"flops": cheapest}, hardware="h100", n_boot=20).choice["strategy"] == "greedy"


def test_a_requested_strategy_with_no_measurement_keeps_the_run_from_stopping(recording, tmp_path):
    """An engine that returns nothing for greedy: the seed round's regret alone would stop the
    run (stop_regret 100), but the plan knows nothing of greedy, so the run profiles it once
    more and then stops saying which strategy of which model has no measurement."""
    src = ReplaySource.read(recording)
    asked = []

    def runner(models, task, specs, folder, **kw):
        if not specs[0].startswith("pool"):
            asked.append((models[0], list(specs)))
            return None  # the engine returned nothing
        return run_profile(models, task, specs, folder, **kw)

    res = _adaptive(
        src,
        tmp_path / "m",
        budget_samples=10_000,
        stop_regret=100.0,
        strategies=["greedy:cot=false"],
        runner=runner,
    )
    assert len(res.rounds) == 2 and res.rounds[1]["grow"] == {}
    assert sorted(asked) == sorted([(m, ["greedy:cot=false"]) for m in MODELS] * 2)
    assert res.stopped.startswith("no measurement of") and "greedy:cot=false" in res.stopped
    assert res.unmeasured == sorted(f"{m} greedy:cot=false" for m in MODELS)


def test_forecast_mode_refuses_strategies_it_would_not_profile(tmp_path):
    """--forecast-at grows pools only: a greedy strategy beside it is refused, not dropped."""
    args = ["profile", "-m", "lab-s", "-t", "lab-arith", "-s", "pool", "-s", "greedy"]
    args += ["--adaptive", "--budget-samples", "100", "--forecast-at", "8", "--out", str(tmp_path / "f")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert "--forecast-at grows pools only: drop --strategy greedy:cot=true" in r.output


def test_a_seed_round_over_the_budget_says_by_how_much(recording, tmp_path):
    """The seed round is one block on every question of every model and is never cut short: a
    budget below it (2 models x 128 questions x 2 samples = 512 > 300) is overspent, and the
    stop reason says by how much instead of hiding it."""
    src = ReplaySource.read(recording)
    res = _adaptive(src, tmp_path / "o", budget_samples=300, stop_regret=0.0)
    assert res.samples == 512 and len(res.rounds) == 1
    assert res.stopped.endswith("; 212 samples over the budget")
