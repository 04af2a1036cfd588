"""What the step-level strategies (``beam``, ``mcts``, ``refine``, ``budget``) share: their
sampling and reward knobs, a sampling request, a sampled step turned into a candidate chain,
the process reward of a chain, and the forced answer.

A chain is written in pieces, one per call; a piece is ``(mean log-prob, tokens)`` of that
call's completion (:func:`profiling.strategies._base.mean_logprob` weighs them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends import Backend, Completion, GenerationRequest
from ..tasks import Problem, Task
from ._base import Cost, Knob, RunContext, derive_seed
from .rewards import ProcessReward, is_required_reward_spec

Piece = tuple[float | None, int]


@dataclass
class Unit:
    """One question's run: its problem, prompt, unit seed and the cost its calls add up to."""

    problem: Problem
    prompt: str
    seed: int
    cost: Cost = field(default_factory=Cost)


def piece(c: Completion) -> Piece:
    """``(mean log-prob, tokens)`` of one completion."""
    return (c.logprob, c.completion_tokens)


def reward_knob(what: str) -> Knob:
    """The knob of a strategy's process reward (``oracle`` by default; one is required)."""
    return Knob(
        "oracle",
        str,
        f"{what}: oracle|noisy:P|module:function",
        is_required_reward_spec,
        "oracle, noisy:P, a registered name or module:function",
    )


def sampling_knobs(of: str) -> dict[str, Knob]:
    """``temperature`` (default 1, ``of`` says of which calls) and ``top_p`` (default 1)."""
    return {
        "temperature": Knob(1.0, float, f"sampling temperature of {of}", lambda v: v >= 0, "a number >= 0"),
        "top_p": Knob(1.0, float, "nucleus sampling mass", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    }


def sample_request(
    params: Mapping[str, Any], ctx: RunContext, prompt: str, n: int, seed: int, stop: tuple[str, ...] = ()
) -> GenerationRequest:
    """``n`` samples of ``prompt`` at the strategy's ``temperature`` and ``top_p``, up to the
    run's ``max_new_tokens`` (and ``stop``)."""
    return GenerationRequest(
        prompt,
        n=n,
        max_new_tokens=ctx.max_new_tokens,
        temperature=params["temperature"],
        top_p=params["top_p"],
        stop=stop,
        seed=seed,
    )


def next_step(
    text: str, pieces: Sequence[Piece], c: Completion, delim: str, marker: str
) -> tuple[str, list[Piece], bool]:
    """The chain ``text`` extended by the sampled step ``c``: its text, pieces and whether it is
    finished (the step holds the answer ``marker``, is empty, or ran out of tokens). An
    unfinished step gets its delimiter back (the engine drops the stop string)."""
    done = bool((marker and marker in c.text) or not c.text.strip() or c.finish_reason == "length")
    return text + c.text + ("" if done else delim), [*pieces, piece(c)], done


def step_score(strategy: str, prm: ProcessReward, problem: Problem, text: str, task: Task) -> float:
    """The process reward of ``text``; a ``ValueError`` naming ``strategy`` when ``prm`` needs
    a step checker that ``task`` lacks."""
    value = prm.score(problem, text)
    if value is None:
        raise ValueError(
            f"{strategy}:prm={prm.source} needs a step checker, which task {task.name!r} lacks; "
            "pass prm=module:function with a reward model"
        )
    return value


def with_trigger(text: str, trigger: str) -> str:
    """``text`` followed by the answer ``trigger``; trailing white space is dropped first when
    the trigger starts with white space, so that it is not doubled."""
    return (text.rstrip() if trigger[:1].isspace() else text) + trigger


def force_answers(
    backend: Backend, task: Task, units: Sequence[Unit], texts: Sequence[str], max_new_tokens: int
) -> list[tuple[str, Piece]]:
    """Append :attr:`Task.answer_trigger` to each unit's chain ``texts[i]`` and generate the
    answer greedily (up to the step delimiter), all in one call; each call is counted in its
    unit's cost. Returns each chain's full text and the answer's piece."""
    padded = [with_trigger(text, task.answer_trigger) for text in texts]
    requests = [
        GenerationRequest(
            u.prompt + text,
            n=1,
            max_new_tokens=max_new_tokens,
            temperature=0.0,
            stop=(task.step_delimiter,),
            seed=derive_seed(u.seed, "answer"),
        )
        for u, text in zip(units, padded, strict=True)
    ]
    out = []
    for u, text, result in zip(units, padded, backend.generate(requests) if requests else [], strict=True):
        (c,) = result.completions
        u.cost.observe_call(result, c.completion_tokens)
        out.append((text + c.text, piece(c)))
    return out
