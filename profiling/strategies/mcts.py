r"""``mcts``: Monte Carlo tree search over reasoning steps, guided by a process reward.

The tree's root is the empty solution; a node is a partial chain of thought (whole steps, each
ending with :attr:`Task.step_delimiter`), and a child adds one step. One question runs
``simulations`` simulations; all questions of a batch advance together (one backend call per
phase of a simulation). Each simulation:

1. **Selection.** From the root, move to the child with the largest PUCT score
   (:func:`puct_score`; ties go to the first child) until a node that has no children or is
   due to be widened (below)

   .. math:: U(c) = Q(c) + c_\mathrm{puct}\, P(c)\, \frac{\sqrt{N(\mathrm{parent})}}{1 + N(c)},
      \qquad Q(c) = \frac{v_0(c) + W(c)}{1 + N(c)}

   where :math:`v_0(c)` is the step scorer's score of the child's partial chain (``prm``: the
   same process rewards as beam search, :mod:`profiling.strategies.rewards`), counted as one
   prior visit, :math:`W(c)` the sum of the rewards backed up through it, :math:`N(c)` its
   visits and :math:`P(c)` its prior: the share of the node's samples that wrote its step
   (the policy's own frequency; identical steps are one child).
2. **Expansion.** A selected node that is not finished and is above ``max_steps`` gets
   children: one request samples ``expansions`` next steps (stop at the step delimiter). A
   child is *finished* when its step holds the answer marker, is empty, or ran out of tokens
   (as in beam search). *Progressive widening*: a node is expanded again (``expansions`` more
   samples) when :math:`(1 + N)^{\alpha}` reaches the number of expansions it has had plus
   one (``widen`` = :math:`\alpha`; 0.5: at N = 0, 3, 8, 15, ...; 0: once), so a node whose
   first children are all wrong is not stuck with them.
3. **Rollout.** From the new child with the best (score, prior) (or from the selected node
   when it cannot be expanded) one sample continues to an answer (no stop string); the
   reward is the process reward of the whole rolled-out chain. A selected finished node is
   its own rollout (no call): its reward is its score.
4. **Backup.** Every node on the path from the root to the rollout's start gets one more
   visit and the reward added to :math:`W`.

The answer is the best complete chain seen (every rollout and finished node): one that
states an answer first, then the highest reward, then the mean log-prob. If none states an
answer, the best is forced to answer by appending :attr:`Task.answer_trigger` (greedy; those
tokens count too).

Knobs: ``simulations`` (the compute knob), ``expansions``, ``c_puct``, ``widen``,
``max_steps`` (the deepest node expanded), ``prm`` (``oracle``, ``noisy:P``: SIMULATED, or a callable reward
model), ``temperature``, ``top_p``. The cost model (:class:`planner.costs.Workload`) prices
a simulation as one expansion of ``expansions`` one-step sequences and one rollout, the first
from the root and the others from a node ``depth`` of the way down the chain (``depth``: an
ASSUMPTION, default 0.5).

One row per question execution (``sample_idx`` 0): ``completion_tokens`` sums every generated
child and rollout (and the forced answer); ``prompt_tokens`` sums every call's context (each
resends the prompt plus the node's partial chain); ``latency_s`` sums the calls;
``kv_bytes_peak`` is the largest call (the calls of one question run one after another).
``reward`` holds the process reward of the chosen chain. :attr:`Cost.calls` counts the engine
calls (at most ``2 * simulations``: a simulation that selects a finished node makes none).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..backends import Backend, Completion, GenerationResult
from ..tasks import Problem, Task
from ._base import (
    Knob,
    Outcome,
    RunContext,
    Strategy,
    StrategyDescriptor,
    WorkloadShape,
    derive_seed,
    mean_logprob,
)
from ._steps import (
    Piece,
    Unit,
    force_answers,
    next_step,
    piece,
    reward_knob,
    sample_request,
    sampling_knobs,
    step_score,
)
from .rewards import ProcessReward, get_reward

__all__ = ["MCTS", "DESCRIPTOR", "Node", "puct_score", "select_child", "backup"]

#: the cost model's ASSUMPTION for a tree search: the node a simulation expands is on average
#: half-way down a chain (the first simulation expands the root)
DEPTH = Knob(
    0.5,
    float,
    "fraction of a chain above the node a simulation expands (ASSUMED)",
    lambda v: 0 <= v < 1,
    "a number in [0, 1)",
)

DESCRIPTOR = StrategyDescriptor(
    name="mcts",
    summary="Monte Carlo tree search over steps: PUCT on process-reward values, rollouts, backup",
    knobs={
        "simulations": Knob(
            8, int, "simulations (select, expand, roll out, back up)", lambda v: v >= 1, "an integer >= 1"
        ),
        "expansions": Knob(
            2, int, "next steps sampled per expanded node", lambda v: v >= 1, "an integer >= 1"
        ),
        "c_puct": Knob(1.0, float, "exploration weight of PUCT", lambda v: v >= 0, "a number >= 0"),
        "widen": Knob(
            0.5,
            float,
            "progressive widening exponent (0: expand once)",
            lambda v: 0 <= v <= 1,
            "a number in [0, 1]",
        ),
        "max_steps": Knob(12, int, "deepest node expanded (steps)", lambda v: v >= 1, "an integer >= 1"),
        "prm": reward_knob("process reward"),
        **sampling_knobs("every call"),
    },
    compute_knob="simulations",
    cost_knobs=("simulations", "expansions", "max_steps", "depth"),
    assumptions={"depth": DEPTH},
    aliases={"steps": "max_steps"},
    shape=lambda k: WorkloadShape(
        expansions=k["expansions"], steps=k["max_steps"], simulations=k["simulations"], depth=k["depth"]
    ),
)


@dataclass(eq=False)
class Node:
    """A partial chain in the tree: its text, prior, the scorer's value and the search's counts."""

    text: str = ""
    depth: int = 0
    prior: float = 1.0
    value0: float = 0.0  # the step scorer's score of ``text``, one prior visit
    finished: bool = False
    visits: int = 0
    total: float = 0.0  # sum of the rewards backed up through this node
    expansions: int = 0  # times this node was expanded
    samples: int = 0  # next steps sampled from it over its expansions
    pieces: list[Piece] = field(default_factory=list)  # (mean logprob, tokens) per step
    children: list[Node] = field(default_factory=list)

    @property
    def q(self) -> float:
        """Mean value: ``(value0 + total) / (1 + visits)``."""
        return (self.value0 + self.total) / (1 + self.visits)


def puct_score(q: float, prior: float, parent_visits: int, visits: int, c_puct: float) -> float:
    """PUCT of a child: ``q + c_puct * prior * sqrt(parent_visits) / (1 + visits)``.

    Examples
    --------
    >>> puct_score(0.5, 0.5, 4, 1, 1.0)
    1.0
    """
    return q + c_puct * prior * math.sqrt(parent_visits) / (1 + visits)


def select_child(node: Node, c_puct: float) -> Node:
    """The child of ``node`` with the largest :func:`puct_score` (the first on ties)."""
    scores = [puct_score(c.q, c.prior, node.visits, c.visits, c_puct) for c in node.children]
    return node.children[scores.index(max(scores))]


def backup(path: Sequence[Node], reward: float) -> None:
    """One more visit and ``reward`` added to every node of ``path`` (root first)."""
    for node in path:
        node.visits += 1
        node.total += float(reward)


@dataclass
class _Chain:
    """A complete (rolled-out or finished) chain: a candidate answer."""

    text: str
    pieces: list[Piece]
    reward: float
    has_answer: bool

    @property
    def logprob(self) -> float | None:
        return mean_logprob(self.pieces)

    def rank_key(self) -> tuple[bool, float, float]:
        lp = self.logprob
        return (self.has_answer, self.reward, lp if lp is not None else float("-inf"))


@dataclass
class _Search(Unit):
    root: Node = field(default_factory=Node)
    chains: list[_Chain] = field(default_factory=list)
    path: list[Node] = field(default_factory=list)  # this simulation's path, root first


@dataclass(frozen=True)
class _Run:
    """What every phase of a batch's searches needs: the engine, the task, the scorer, the run."""

    backend: Backend
    task: Task
    prm: ProcessReward
    ctx: RunContext

    def score(self, s: _Search, text: str) -> float:
        """The process reward of ``text`` as a chain of ``s``'s question."""
        return step_score(DESCRIPTOR.name, self.prm, s.problem, text, self.task)


class MCTS(Strategy):
    descriptor = DESCRIPTOR

    def labels(self) -> dict[str, object]:
        return {"prm_source": get_reward(self.params["prm"], task=None).source}

    def unit_seed(self, ctx: RunContext, problem: Problem) -> int:
        """The unit's seed without the compute knob: simulation ``i`` draws the same samples
        whatever ``simulations`` is, so a search of N simulations is the first N of a longer
        one (the accuracy and cost curves over ``simulations`` are measured on nested searches)."""
        config = {k: v for k, v in self.config.items() if k != "simulations"}
        return derive_seed(ctx.seed, ctx.model, self.name, json.dumps(config, sort_keys=True), problem.id)

    def run(self, backend: Backend, task: Task, problems: list[Problem], ctx: RunContext) -> list[Outcome]:
        env = _Run(backend, task, get_reward(self.params["prm"], task, seed=ctx.seed), ctx)
        searches = [_Search(p, task.format_prompt(p, cot=True), self.unit_seed(ctx, p)) for p in problems]
        for s in searches:
            s.root.value0 = env.score(s, "")
        for sim in range(self.params["simulations"]):
            for s in searches:
                s.path = self._select(s.root)
            self._expand(env, [s for s in searches if self._expandable(s.path[-1])], sim)
            self._rollout(env, searches, sim)
        return self._finish(env, searches)

    # ---- the phases of one simulation --------------------------------------------------------
    def _select(self, root: Node) -> list[Node]:
        path = [root]
        while path[-1].children and not self._expandable(path[-1]):
            path.append(select_child(path[-1], self.params["c_puct"]))
        return path

    def _expandable(self, node: Node) -> bool:
        """Not finished, above ``max_steps``, and never expanded or due to be widened."""
        if node.finished or node.depth >= self.params["max_steps"]:
            return False
        return node.expansions == 0 or (
            self.params["widen"] > 0
            and (1 + node.visits) ** self.params["widen"] >= node.expansions + 1 - 1e-9
        )

    def _sample(
        self, env: _Run, searches: list[_Search], sim: int, phase: str, n: int, stop: tuple[str, ...]
    ) -> list[GenerationResult]:
        """One call of ``n`` samples from each search's last node (seeded by simulation and
        phase), each request counted in its search's cost."""
        requests = [
            sample_request(
                self.params, env.ctx, s.prompt + s.path[-1].text, n, derive_seed(s.seed, sim, phase), stop
            )
            for s in searches
        ]
        results = env.backend.generate(requests) if requests else []
        for s, result in zip(searches, results, strict=True):
            s.cost.observe_call(result, sum(c.completion_tokens for c in result.completions))
        return results

    def _expand(self, env: _Run, searches: list[_Search], sim: int) -> None:
        """Sample ``expansions`` next steps of each search's selected node; the best child
        (score, then prior) joins the path and is where the rollout starts."""
        delim, n = env.task.step_delimiter, self.params["expansions"]
        for s, result in zip(searches, self._sample(env, searches, sim, "expand", n, (delim,)), strict=True):
            leaf = s.path[-1]
            new = _add_children(leaf, result.completions, delim, env.task.answer_trigger.strip())
            for child in new:
                child.value0 = env.score(s, child.text)
            s.path.append(max(new or leaf.children, key=lambda c: (c.value0, c.prior)))

    def _rollout(self, env: _Run, searches: list[_Search], sim: int) -> None:
        """Roll each search's last node out to an answer, keep the chain and back its reward up."""
        open_ = [s for s in searches if not s.path[-1].finished]
        rolled = dict(zip(map(id, open_), self._sample(env, open_, sim, "rollout", 1, ()), strict=True))
        for s in searches:
            node = s.path[-1]
            result = rolled.get(id(s))
            if result is None:  # a finished node is its own rollout
                text, pieces = node.text, node.pieces
            else:
                (c,) = result.completions
                text, pieces = node.text + c.text, [*node.pieces, piece(c)]
            reward = env.score(s, text)
            s.chains.append(_Chain(text, pieces, reward, env.task.extract_answer(text) is not None))
            backup(s.path, reward)

    def _finish(self, env: _Run, searches: list[_Search]) -> list[Outcome]:
        best = [max(s.chains, key=_Chain.rank_key) for s in searches]
        forced = [i for i, b in enumerate(best) if not b.has_answer]
        units = [searches[i] for i in forced]
        answers = force_answers(
            env.backend, env.task, units, [best[i].text for i in forced], env.ctx.max_new_tokens
        )
        for i, (text, answer) in zip(forced, answers, strict=True):
            best[i] = _Chain(text, [*best[i].pieces, answer], env.score(searches[i], text), True)
        return [
            self.outcome(env.task, s.problem, 0, b.text, s.cost, b.logprob, b.reward)
            for s, b in zip(searches, best, strict=True)
        ]


def _add_children(leaf: Node, completions: Sequence[Completion], delim: str, marker: str) -> list[Node]:
    """Add the sampled next steps to ``leaf``'s children (identical steps are one child) and
    return the new ones; every child's prior becomes its share of all of ``leaf``'s samples."""
    by_text = {c.text: c for c in leaf.children}
    counts = {c.text: c.prior * leaf.samples for c in leaf.children}
    new = []
    for c in completions:
        text, pieces, done = next_step(leaf.text, leaf.pieces, c, delim, marker)
        if text not in by_text:
            by_text[text] = Node(text, leaf.depth + 1, finished=done, pieces=pieces)
            leaf.children.append(by_text[text])
            new.append(by_text[text])
        counts[text] = counts.get(text, 0.0) + 1.0
    leaf.expansions += 1
    leaf.samples += len(completions)
    for child in leaf.children:
        child.prior = counts[child.text] / leaf.samples
    return new
