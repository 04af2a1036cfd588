"""Test doubles for the profiler: a tiny chained-addition task and a scripted backend.

NOT a model: :class:`ScriptedBackend` writes the chain of thought of :class:`TinyChainTask`
by rule, with seeded step errors, so strategy tests have known answers. It is never used
to produce profile data.

The task: ``q: 3+4+5`` -> completion ``3+4=7\\n7+5=12\\nAnswer: 12``; one character is one
token (like the lab's character-level tokenizer).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from profiling.backends import Backend, Completion, GenerationRequest, GenerationResult
from profiling.tasks import Problem, Task

#: KV bytes per cached token of the imaginary model (2 layers x 2 (K,V) x 8 dims x 4 bytes)
KV_BYTES_PER_TOKEN = 128
_STEP = re.compile(r"^(-?\d+)\+(-?\d+)=(-?\d+)$")


class TinyChainTask(Task):
    """Sums of ``level + 1`` one-digit terms; one step per addition; exact step checker."""

    name = "tiny-chain"
    supports_direct = True

    def __init__(self, levels: int = 3, per_level_available: int = 50) -> None:
        self.levels = levels
        self.available = per_level_available

    def problems(
        self, split: str = "eval", per_level: int | None = None, limit: int | None = None
    ) -> Iterator[Problem]:
        count = 0
        for level in range(1, self.levels + 1):
            for i in range(min(per_level or self.available, self.available)):
                if limit is not None and count >= limit:
                    return
                rng = np.random.default_rng([level, i])
                terms = [int(t) for t in rng.integers(1, 10, size=level + 1)]
                yield Problem(
                    f"L{level}-{i}", "+".join(map(str, terms)), str(sum(terms)), str(level), {"terms": terms}
                )
                count += 1

    def format_prompt(self, problem: Problem, cot: bool = True) -> str:
        return f"q: {problem.question}\n" + ("" if cot else "Answer: ")

    def extract_answer(self, completion: str) -> str | None:
        m = re.search(r"Answer: ?(-?\d+)", completion) or re.fullmatch(r"\s*(-?\d+)\s*", completion)
        return m.group(1) if m else None

    def check_steps(self, completion: str, problem: Problem) -> list[bool] | None:
        terms = problem.meta["terms"]
        verdicts, running = [], terms[0]
        for i, line in enumerate(completion.split("\n")):
            if not line:
                continue
            if line.startswith("Answer:"):
                verdicts.append(self.extract_answer(line) == problem.answer)
                break
            m = _STEP.match(line)
            ok = bool(m) and i + 1 < len(terms) and int(m[1]) == running and int(m[2]) == terms[i + 1]
            ok = ok and int(m[1]) + int(m[2]) == int(m[3])
            verdicts.append(ok)
            running = int(m[3]) if m else running
        return verdicts


def right_chain(problem: Problem) -> str:
    """The correct completion of a tiny-chain problem."""
    terms, lines, running = problem.meta["terms"], [], problem.meta["terms"][0]
    for t in terms[1:]:
        lines.append(f"{running}+{t}={running + t}")
        running += t
    return "\n".join(lines + [f"Answer: {running}"])


def parse_prompt(prompt: str) -> tuple[list[int], list[str], bool]:
    """Terms, the lines already written after the question, and whether the prompt is direct."""
    head, _, rest = prompt.partition("\n")
    terms = [int(t) for t in head.removeprefix("q: ").split("+")]
    direct = rest.startswith("Answer: ") and "=" not in rest
    return terms, rest.split("\n"), direct


@dataclass
class Call:
    """One request as the backend saw it (for assertions)."""

    request: GenerationRequest
    batch: int  # index of the generate() call it came in
    result: GenerationResult | None = None


class ScriptedBackend(Backend):
    """Writes chains of :class:`TinyChainTask` by rule; each step is wrong (off by one) with
    probability ``err`` when sampling (temperature > 0), never when greedy.

    ``wrong(sample_idx, step_idx, request)`` overrides the random rule. ``delay_s`` sleeps in
    every request (to simulate slow models). ``exit_on``: a request whose prompt contains it
    ends the process at once (``os._exit``), as a worker killed by the OS would; ``raise_on``:
    such a request raises ``ValueError("scripted failure")``, as a bug would. Costs are measured like a real backend's:
    wall time with ``perf_counter``; KV = ``KV_BYTES_PER_TOKEN * n * (prompt + longest output)``.
    """

    name = "scripted"

    def __init__(
        self,
        err: float = 0.0,
        wrong: Callable[[int, int, GenerationRequest], bool] | None = None,
        delay_s: float = 0.0,
        model_name: str = "scripted-model",
        exit_on: str | None = None,
        raise_on: str | None = None,
    ) -> None:
        self.err = err
        self.wrong = wrong
        self.delay_s = delay_s
        self.exit_on = exit_on
        self.raise_on = raise_on
        self.model_name = model_name
        self.calls: list[Call] = []
        self.batches = 0

    def count_tokens(self, text: str) -> int:
        return len(text)

    def metadata(self) -> dict:
        return {"backend": self.name, "model": self.model_name, "config": {"err": self.err}, "dtype": "none"}

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.batches += 1
        return [self._one(r) for r in requests]

    def _one(self, req: GenerationRequest) -> GenerationResult:
        if self.exit_on is not None and self.exit_on in req.prompt:
            os._exit(1)
        if self.raise_on is not None and self.raise_on in req.prompt:
            raise ValueError("scripted failure")
        call = Call(req, self.batches)
        self.calls.append(call)
        t0 = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        completions = [self._sample(req, i) for i in range(req.n)]
        longest = max(c.completion_tokens for c in completions)
        kv = float(KV_BYTES_PER_TOKEN * req.n * (len(req.prompt) + longest))
        call.result = GenerationResult(
            completions, len(req.prompt), time.perf_counter() - t0, None, kv, "scripted-test-double"
        )
        return call.result

    def _sample(self, req: GenerationRequest, idx: int) -> Completion:
        terms, lines, direct = parse_prompt(req.prompt)
        rng = np.random.default_rng([req.seed or 0, idx])
        done, partial = lines[:-1], lines[-1]  # complete lines already written, then the open line
        running = terms[0]
        for line in done:
            m = _STEP.match(line)
            running = int(m[3]) if m else running
        if direct:
            text = str(sum(terms))
        elif partial.startswith("Answer:"):  # forced to answer: state the running value
            text = str(running)
        else:
            out = []
            for step in range(len(done), len(terms) - 1):
                value = running + terms[step + 1]
                bad = (
                    self.wrong(idx, step, req)
                    if self.wrong
                    else (req.temperature > 0 and rng.random() < self.err)
                )
                out.append(f"{running}+{terms[step + 1]}={value + int(bad)}")
                running = value + int(bad)
            out.append(f"Answer: {running}")
            full = "\n".join(out)
            text = full[len(partial) :] if full.startswith(partial) else "\n" + full
        finish = "stop"
        for s in req.stop:
            if s and s in text:
                text, finish = text[: text.index(s)], "stop"
        if len(text) > req.max_new_tokens:
            text, finish = text[: req.max_new_tokens], "length"
        lp = -0.1 if "=" not in text or self._consistent(text) else -1.0
        return Completion(text, len(text), lp, finish)

    @staticmethod
    def _consistent(text: str) -> bool:
        return all(int(m[1]) + int(m[2]) == int(m[3]) for m in map(_STEP.match, text.split("\n")) if m)
