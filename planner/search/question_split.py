"""Seeded, stratified splits of questions into two halves: what the adaptive policies are
chosen on and replayed on (:mod:`planner.search.adaptive`), and what ``ttc evaluate`` plans
on and measures on (:mod:`planner.holdout`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["split_questions"]


def split_questions(question_ids: Sequence[str], difficulty: Mapping[str, str] | None = None, seed: int = 0):
    """A seeded half/half split of questions, stratified by difficulty: ``(train, test)`` sets.

    Examples
    --------
    >>> train, test = split_questions([f"q{i}" for i in range(10)], seed=1)
    >>> len(train), len(test), train.isdisjoint(test)
    (5, 5, True)
    """
    rng = np.random.default_rng(seed)
    qs = sorted(set(map(str, question_ids)))
    groups: dict[str, list[str]] = {}
    for q in qs:
        groups.setdefault(str(difficulty.get(q, "")) if difficulty else "", []).append(q)
    train: set[str] = set()
    flip = int(rng.integers(0, 2))  # odd-sized groups give their extra question to alternate halves
    for label in sorted(groups):
        members = groups[label]
        order = rng.permutation(len(members))
        half = (len(members) + flip) // 2
        if len(members) % 2:
            flip ^= 1
        train.update(members[i] for i in order[:half])
    return train, set(qs) - train
