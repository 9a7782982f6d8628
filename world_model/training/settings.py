"""Checks of the settings both trainers share, run by their configs' ``validate()`` before any
data is read or any weight is built, so a nonsense value (``--optim.lr=nan``, ``--run.save_every=0``)
is one line naming the setting instead of a traceback hours into a run.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator


def _numbers(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every float anywhere in a config tree (sections, lists, tuples)."""
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            yield from _numbers(getattr(node, f.name), f"{prefix}.{f.name}" if prefix else f.name)
    elif isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from _numbers(item, f"{prefix}[{index}]")
    elif isinstance(node, float):
        yield prefix, node


def check_finite(config: Any) -> None:
    """Every float setting is finite (NaN would train silently to NaN weights; inf breaks schedules)."""
    for name, value in _numbers(config, ""):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")


def _setting(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def check_counts(config: Any, minimums: dict[str, int]) -> None:
    """Each named integer setting is at least its minimum (steps, batch sizes, periods, workers)."""
    for dotted, minimum in minimums.items():
        value = _setting(config, dotted)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
            raise ValueError(f"{dotted} must be {kind}, got {value!r}")


def check_adamw(optim: Any, section: str = "optim") -> None:
    """AdamW settings of an ``optim`` section: learning rates (every ``*lr`` field) and weight decay
    at least 0, both betas in [0, 1), eps above 0."""
    for f in dataclasses.fields(optim):
        if f.name.endswith("lr") or f.name == "weight_decay":
            if getattr(optim, f.name) < 0:
                raise ValueError(f"{section}.{f.name} must be at least 0, got {getattr(optim, f.name)}")
    betas = tuple(optim.betas)
    if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
        raise ValueError(f"{section}.betas must be two numbers in [0, 1), got {list(betas)}")
    if not optim.eps > 0:
        raise ValueError(f"{section}.eps must be above 0, got {optim.eps}")
