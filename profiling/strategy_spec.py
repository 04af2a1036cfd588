"""Parse strategy specs of the form ``NAME:key=value,key=value`` (the ``--strategy`` syntax).

The same syntax is used by ``ttc profile``, ``ttc costs`` and the planner, so it lives here,
in one place.

Examples
--------
>>> parse_strategy_spec("pool:n=64,temperature=1.0")
StrategySpec(name='pool', knobs={'n': 64, 'temperature': 1.0})
>>> parse_strategy_spec("greedy").knobs
{}
>>> str(parse_strategy_spec("beam:width=4"))
'beam:width=4'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["StrategySpec", "parse_strategy_spec", "parse_value"]


@dataclass(frozen=True)
class StrategySpec:
    name: str
    knobs: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.knobs:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_fmt(v)}" for k, v in self.knobs.items())

    def config_json(self) -> str:
        """Knobs as the canonical JSON string stored in the samples table's ``config`` column."""
        return json.dumps(self.knobs, sort_keys=True)


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_value(text: str) -> object:
    """A knob value as int, float or bool when it reads as one, else the text."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_strategy_spec(spec: str) -> StrategySpec:
    """Parse ``NAME[:key=value,...]``; values become int, float, bool or str.

    Raises ``ValueError`` naming the offending part when the spec is malformed.
    """
    text = spec.strip()
    if not text:
        raise ValueError("empty strategy spec; expected NAME or NAME:key=value,...")
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"strategy spec {spec!r}: bad strategy name {name!r}")
    knobs: dict[str, object] = {}
    if rest.strip():
        for part in rest.split(","):
            key, eq, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key or not value:
                raise ValueError(f"strategy spec {spec!r}: expected key=value, got {part!r}")
            if key in knobs:
                raise ValueError(f"strategy spec {spec!r}: knob {key!r} given twice")
            knobs[key] = parse_value(value)
    return StrategySpec(name, knobs)
