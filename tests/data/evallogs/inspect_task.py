"""Inspect AI task over tests/data/evallogs/lab_questions.jsonl (the lab's chain-of-thought prompt)."""

import json
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import pattern
from inspect_ai.solver import generate

QUESTIONS = Path(__file__).with_name("lab_questions.jsonl")


@task
def lab_arith() -> Task:
    docs = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    dataset = [
        Sample(
            input=f"Q: {d['question']} (steps)\n",
            target=d["answer"],
            id=d["id"],
            metadata={"level": d["level"]},
        )
        for d in docs
    ]
    return Task(dataset=dataset, solver=generate(), scorer=pattern(r"Answer: (-?[0-9]+)"))
