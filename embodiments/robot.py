"""The contract between the planning loop and whatever it drives (the PyBullet sim, the ROS 2 bridge,
a recorded log replayed).

`planner.mpc` runs against `Robot`; the sim arm, the ROS 2 bridge and the sim car all implement it,
so the loop never knows which one it drives. A robot whose stamps are not wall-clock seconds (the
sim counts simulated time) also offers ``now()``, the clock its stamps are judged against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Observation:
    """One synchronised look at the robot.

    image: uint8 ``[H, W, 3]`` RGB from the planning camera; state: float ``[S]`` in the layout of
    the robot's `Embodiment`; stamp: seconds on the robot's clock when the image was taken.
    """

    image: np.ndarray
    state: np.ndarray
    stamp: float


@runtime_checkable
class Robot(Protocol):
    def observe(self) -> Observation:
        """The latest image and state."""

    def apply(self, action: np.ndarray) -> None:
        """Execute one action (a vector in the layout of the robot's `Embodiment`)."""

    def hold(self) -> None:
        """Stop moving and keep the current pose (used on errors and at the end of a run)."""
