"""The ``mcts`` strategy: PUCT selection, backup, widening, measured costs, seeds, and a real lab run."""

from __future__ import annotations

import json

import pytest
from scripted_backend import ScriptedBackend, TinyChainTask, right_chain

from profiling.strategies import RunContext, get_descriptor, get_strategy
from profiling.strategies.mcts import Node, backup, puct_score, select_child

CTX = RunContext(seed=0, max_new_tokens=64, model="scripted-model")
TASK = TinyChainTask()


def problems(level: str | None = None, per_level: int = 3):
    return [p for p in TASK.problems(per_level=per_level) if level is None or p.difficulty == level]


# ---- the tree's arithmetic ------------------------------------------------------------------------
def test_puct_picks_the_child_the_formula_picks():
    """Parent visited 4 times; A: scorer value 1, 3 visits, no reward backed up, prior 0.5;
    B: scorer value 0, unvisited, prior 0.5. Q(A) = (1 + 0) / 4 = 0.25, Q(B) = 0.
    c = 1: U(A) = 0.25 + 0.5 * 2 / 4 = 0.5, U(B) = 0 + 0.5 * 2 / 1 = 1.0 -> B (exploration).
    c = 0.1: U(A) = 0.25 + 0.1 * 0.5 * 2 / 4 = 0.275, U(B) = 0.10 -> A (exploitation)."""
    a = Node("a\n", 1, prior=0.5, value0=1.0, visits=3)
    b = Node("b\n", 1, prior=0.5, value0=0.0, visits=0)
    parent = Node(visits=4, children=[a, b])
    assert a.q == pytest.approx(0.25) and b.q == 0.0
    assert puct_score(a.q, a.prior, 4, a.visits, 1.0) == pytest.approx(0.5)
    assert puct_score(b.q, b.prior, 4, b.visits, 1.0) == pytest.approx(1.0)
    assert select_child(parent, 1.0) is b
    assert puct_score(a.q, a.prior, 4, a.visits, 0.1) == pytest.approx(0.275)
    assert select_child(parent, 0.1) is a
    tie = Node(visits=1, children=[Node("x", prior=0.5), Node("y", prior=0.5)])
    assert select_child(tie, 1.0) is tie.children[0]  # ties go to the first child


def test_backup_adds_one_visit_and_the_reward_along_the_path():
    root, mid, leaf = Node(value0=1.0), Node("s\n", 1, value0=1.0), Node("s\nt\n", 2, value0=0.0)
    backup([root, mid, leaf], 1.0)
    backup([root, mid], 0.0)
    assert [(n.visits, n.total) for n in (root, mid, leaf)] == [(2, 1.0), (2, 1.0), (1, 1.0)]
    # Q = (value0 + W) / (1 + N): the scorer's value counts as one prior visit
    assert (root.q, mid.q, leaf.q) == pytest.approx((2 / 3, 2 / 3, 1 / 2))


# ---- the search on a scripted model -----------------------------------------------------------------
def first_two_steps_hard(sample_idx, step, request):
    """The first sample of every request gets steps 0 and 1 wrong; other samples and later steps are right."""
    return sample_idx == 0 and step < 2


def test_oracle_search_descends_along_right_steps_to_the_right_chain():
    """Rollouts (one sample) from the root or from one step down are wrong; the second sample of
    each expansion is right. One simulation expands the root and rolls out from its right
    child: wrong. The second selects that child (PUCT: (1 + 0) / 2 + 0.5 * 1 / 2 = 0.75 against
    0 + 0.5 * 1 / 1 = 0.5 for the wrong one), expands it, and rolls out from two right steps down:
    the right chain, reward 1, which later simulations keep."""
    ps = problems(level="3")
    backend = ScriptedBackend(wrong=first_two_steps_hard)
    assert not any(o.correct for o in get_strategy("mcts:simulations=1").run(backend, TASK, ps, CTX))
    for sims in (2, 8):
        outcomes = get_strategy(f"mcts:simulations={sims}").run(
            ScriptedBackend(wrong=first_two_steps_hard), TASK, ps, CTX
        )
        assert all(o.correct and o.text == right_chain(o.problem) and o.reward == 1.0 for o in outcomes)


def test_every_call_is_counted_and_calls_stay_within_the_shape():
    p = problems(level="3")[0]
    backend = ScriptedBackend(err=0.3)
    strategy = get_strategy("mcts:simulations=6,expansions=3")
    (o,) = strategy.run(backend, TASK, [p], CTX)
    results = [c.result for c in backend.calls]
    assert o.cost.calls == len(backend.calls)
    assert o.cost.completion_tokens == sum(c.completion_tokens for r in results for c in r.completions)
    assert o.cost.prompt_tokens == sum(r.prompt_tokens for r in results)  # context re-sent per call
    assert o.cost.latency_s == pytest.approx(sum(r.latency_s for r in results))
    assert o.cost.kv_bytes_peak == max(r.kv_bytes_peak for r in results)  # calls run one after another
    shape = get_descriptor("mcts").workload_shape(strategy.params)
    assert shape.calls == 12 and o.cost.calls <= shape.calls + 1  # + a forced answer at most
    expansions = [c.request for c in backend.calls if c.request.stop]
    assert expansions[0].n == 3 and expansions[0].prompt == TASK.format_prompt(p)
    assert all(c.request.n == 1 for c in backend.calls if not c.request.stop)  # rollouts
    assert json.loads(strategy.config_json())["prm_source"] == "oracle-step-checker"


@pytest.mark.parametrize("widen, root_expansions", [(0.0, 1), (0.5, 3), (1.0, 9)])
def test_progressive_widening_reexpands_the_root_at_its_schedule(widen, root_expansions):
    """The root is expanded again when (1 + N)^widen reaches its expansions + 1: with 9
    simulations, at N = 0 only (widen 0), N = 0, 3, 8 (0.5), every simulation (1)."""
    p = problems(level="3")[0]
    backend = ScriptedBackend(wrong=lambda i, step, req: True)  # every step wrong: scores 0 everywhere
    get_strategy(f"mcts:simulations=9,widen={widen}").run(backend, TASK, [p], CTX)
    root = TASK.format_prompt(p)
    assert sum(1 for c in backend.calls if c.request.prompt == root and c.request.stop) == root_expansions


def sampled_calls(backend) -> list[tuple[str, int | None]]:
    """(prompt, seed) of every sampling call (the forced answer is greedy)."""
    return [(c.request.prompt, c.request.seed) for c in backend.calls if c.request.temperature > 0]


def test_more_simulations_never_cost_less_and_extend_the_same_search():
    """The simulations run in order with seeds of their own, so a run of 2k simulations starts
    with the calls of a run of k: calls, tokens and re-sent context only grow."""
    ps = problems()
    runs = {}
    for sims in (1, 2, 4, 8, 16):
        backend = ScriptedBackend(err=0.4)
        outcomes = get_strategy(f"mcts:simulations={sims}").run(backend, TASK, ps, CTX)
        runs[sims] = (backend, {o.problem.id: o.cost for o in outcomes})
    for small, big in zip((1, 2, 4, 8), (2, 4, 8, 16), strict=True):
        for q, cost in runs[small][1].items():
            other = runs[big][1][q]
            assert other.calls >= cost.calls - 1  # the smaller run may have forced one answer
            assert other.completion_tokens >= cost.completion_tokens - 8
            assert other.prompt_tokens >= cost.prompt_tokens - 64
        shorter, longer = sampled_calls(runs[small][0]), sampled_calls(runs[big][0])
        assert longer[: len(shorter)] == shorter
    totals = [sum(c.calls for c in runs[s][1].values()) for s in (1, 2, 4, 8, 16)]
    tokens = [sum(c.completion_tokens for c in runs[s][1].values()) for s in (1, 2, 4, 8, 16)]
    assert totals == sorted(totals) and totals[-1] > totals[0]
    assert tokens == sorted(tokens) and tokens[-1] > tokens[0]


def test_seeded_runs_repeat_and_other_seeds_differ():
    ps = problems()
    strategy = get_strategy("mcts:simulations=4")
    key = lambda outs: [(o.problem.id, o.text, o.cost.completion_tokens, o.cost.calls) for o in outs]  # noqa: E731
    a = strategy.run(ScriptedBackend(err=0.4), TASK, ps, CTX)
    b = strategy.run(ScriptedBackend(err=0.4), TASK, ps, CTX)
    c = strategy.run(
        ScriptedBackend(err=0.4), TASK, ps, RunContext(seed=1, max_new_tokens=64, model="scripted-model")
    )
    assert key(a) == key(b) and key(a) != key(c)


def test_bad_knobs_and_tasks_without_a_step_checker_say_what_was_expected():
    with pytest.raises(ValueError, match="knob 'simulations' must be an integer >= 1, got 0"):
        get_strategy("mcts:simulations=0")
    with pytest.raises(ValueError, match="knob 'widen' must be a number in"):
        get_strategy("mcts:widen=2")
    with pytest.raises(ValueError, match="knob 'prm' must be oracle"):
        get_strategy("mcts:prm=none")

    class NoChecker(TinyChainTask):
        def check_steps(self, completion, problem):
            return None

    with pytest.raises(ValueError, match="mcts:prm=oracle-step-checker needs a step checker"):
        get_strategy("mcts").run(ScriptedBackend(), NoChecker(), problems(level="1")[:1], CTX)


# ---- the cost model's shape -------------------------------------------------------------------------
@pytest.mark.parametrize("sims, expansions, steps, depth", [(1, 2, 4, 0.5), (3, 2, 4, 0.5), (8, 3, 8, 0.25)])
def test_the_descriptors_shape_and_the_cost_models_calls_agree(sims, expansions, steps, depth):
    """WorkloadShape.generated_tokens (the closed form the planner solves chain lengths with)
    and planner.costs.Workload's calls (what FLOPs and latency are priced from) count the same
    tokens when a chain divides into whole steps (exact: integer arithmetic)."""
    from planner.costs import Workload

    spec = f"mcts:simulations={sims},expansions={expansions},max_steps={steps},depth={depth}"
    for G in (steps * 10, steps * 25):
        w = Workload.from_strategy(spec, prompt_tokens=50, gen_tokens=G)
        shape = get_descriptor("mcts").workload_shape(dict(w.knobs))
        assert w.generated_tokens == pytest.approx(shape.generated_tokens(G), abs=1e-9)
        assert len(w.phases()) == shape.calls == 2 * sims
        assert shape.chain_tokens(shape.generated_tokens(G)) == pytest.approx(G)
        assert w.max_sequences == expansions


# ---- the lab ----------------------------------------------------------------------------------------
def test_oracle_mcts_on_the_lab_finds_the_answer_more_often_with_more_simulations():
    """A real run: lab-l on 8 level-3 and level-4 questions, the oracle step checker guiding the
    search. A question is solved when the chosen chain is right at every step (oracle reward 1,
    hence the right answer). Searches are nested (simulation i draws the same samples whatever
    the total), so what 1 simulation solves, 8 solve too, and 8 solve more (measured: 4 of 8,
    then 6 of 8)."""
    from profiling.backends import load_backend
    from profiling.lab.task import LabArithTask

    task = LabArithTask()
    ps = [p for p in task.problems(per_level=4) if p.difficulty in ("3", "4")]
    ctx = RunContext(seed=0, max_new_tokens=128, model="lab-l")
    solved = {}
    with load_backend("lab-l", device="cpu") as backend:
        for sims in (1, 8):
            outcomes = get_strategy(f"mcts:simulations={sims}").run(backend, task, ps, ctx)
            assert all(o.correct for o in outcomes if o.reward == 1.0)
            solved[sims] = {o.problem.id for o in outcomes if o.reward == 1.0}
    assert solved[1] <= solved[8] and len(solved[8]) > len(solved[1]), solved
