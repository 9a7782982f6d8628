"""The ground floor: what a state and an action mean (`Embodiment`: `Franka`, `Car`), the `Robot`
contract with its `Observation`, and the one rotation module every room uses."""
from __future__ import annotations

import dataclasses

from .car import Car
from .embodiment import Embodiment
from .franka import Franka
from .robot import Observation, Robot

EMBODIMENTS: dict[str, type[Embodiment]] = {"franka": Franka, "car": Car}

__all__ = ["Car", "EMBODIMENTS", "Embodiment", "Franka", "Observation", "Robot", "embodiment_from_dict", "get_embodiment"]


def get_embodiment(name: str, **settings) -> Embodiment:
    """An embodiment by name (``franka``, ``car``) with optional settings (its dataclass fields)."""
    if name not in EMBODIMENTS:
        raise ValueError(f"unknown embodiment {name!r} (known: {', '.join(EMBODIMENTS)})")
    cls = EMBODIMENTS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{name} has no setting {unknown[0]!r} (settings: {', '.join(sorted(known))})")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})


def embodiment_from_dict(data: dict) -> Embodiment:
    """The inverse of `Embodiment.to_dict` (``{"name": ..., **settings}``), e.g. from a checkpoint."""
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValueError(f"an embodiment record needs a name, got {data!r}")
    settings = {k: v for k, v in data.items() if k != "name"}
    return get_embodiment(data["name"], **settings)
