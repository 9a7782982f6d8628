"""What stands on the table and how the gripper state maps to the finger gap: pure data, no PyBullet,
so tasks and configs can use it without starting a simulator."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_OPENING = 0.08  # finger gap (m) at gripper state 0; 0 at state 1


@dataclass(frozen=True)
class ObjectSpec:
    """A graspable object built from primitives. `rest_height`: centre height when it stands on the table."""

    name: str
    rest_height: float
    width: float  # extent across the fingers when grasped (m)
    rgba: tuple[float, float, float, float]


CUP = ObjectSpec("cup", rest_height=0.045, width=0.06, rgba=(0.85, 0.16, 0.12, 1.0))
BOX = ObjectSpec("box", rest_height=0.025, width=0.05, rgba=(0.16, 0.36, 0.82, 1.0))
OBJECTS = {spec.name: spec for spec in (CUP, BOX)}


def gripper_to_opening(gripper: float) -> float:
    """Gripper state (0 open ... 1 closed) -> finger gap (m)."""
    return float(np.clip(1.0 - gripper, 0.0, 1.0)) * MAX_OPENING


def opening_to_gripper(opening: float) -> float:
    return float(np.clip(1.0 - opening / MAX_OPENING, 0.0, 1.0))


