"""The car: SE(2) poses and waypoint deltas, the Navigation World Models (NWM) convention.

State (3): x, y (metres, in the odometry frame of the log) and yaw (rad). Action (3): the next
pose seen from the current one, (dx, dy) rotated into the current pose's frame and divided by the
log's waypoint spacing (metres between consecutive 4 Hz samples; 0.72 for TartanDrive), and dyaw,
the yaw change wrapped into [-pi, pi), in radians and not scaled. This is how NWM turns recorded
positions into actions (to_local_coords of the position difference, then / metric_waypoint_spacing),
so `integrate` inverts `deltas` exactly. TartanDrive, the PyBullet car and any recorded drive share it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .embodiment import Embodiment
from .rotations import as_input_kind, as_tensor, wrap_angle

TARTANDRIVE_WAYPOINT_SPACING = 0.72  # metres (NWM's config/data_config.yaml)


@dataclass(frozen=True)
class Car(Embodiment):
    """A car on the ground plane. The step box defaults to NWM's action range for TartanDrive
    (its normalisation maps dx in [-2.5, 5] and dy in [-4, 4] waypoint units onto [-1, 1])."""

    name: ClassVar[str] = "car"
    state_names: ClassVar[tuple[str, ...]] = ("x", "y", "yaw")
    action_names: ClassVar[tuple[str, ...]] = ("dx", "dy", "dyaw")
    meaning: ClassVar[tuple[str, ...]] = ("waypoint_spacing",)
    # Twice NWM's TartanDrive action range per step, and at most a half turn.
    ceilings: ClassVar[dict[str, float]] = {"max_forward": 10.0, "max_backward": 5.0, "max_lateral": 8.0, "max_yaw": math.pi}
    # Odometry frames of recorded drives stay within a few km of their origin; yaw as any source may wrap it.
    state_low: ClassVar[tuple[float, ...]] = (-1e6, -1e6, -2 * math.pi)
    state_high: ClassVar[tuple[float, ...]] = (1e6, 1e6, 2 * math.pi)

    waypoint_spacing: float = TARTANDRIVE_WAYPOINT_SPACING  # metres per waypoint unit of dx, dy
    max_forward: float = 5.0  # largest dx per step, waypoint units
    max_backward: float = 2.5  # largest -dx per step, waypoint units
    max_lateral: float = 4.0  # largest |dy| per step, waypoint units
    max_yaw: float = math.pi  # largest |dyaw| per step, rad
    init_std: tuple[float, float, float] = (1.0, 0.5, 0.25)  # spread of a cold-started search per dimension

    def __post_init__(self):
        self.check_settings()
        if not 0 < self.waypoint_spacing < float("inf"):
            raise ValueError(f"car.waypoint_spacing must be a positive finite number, got {self.waypoint_spacing}")
        if len(self.init_std) != 3 or not all(0 <= v < float("inf") for v in self.init_std):
            raise ValueError(f"car.init_std must be 3 non-negative numbers, got {self.init_std}")

    @property
    def action_low(self) -> tuple[float, ...]:
        return (-self.max_backward, -self.max_lateral, -self.max_yaw)

    @property
    def action_high(self) -> tuple[float, ...]:
        return (self.max_forward, self.max_lateral, self.max_yaw)

    @property
    def searched(self) -> tuple[bool, ...]:
        return (True, True, True)

    @property
    def initial_std(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.init_std)

    def integrate(self, state, action):
        """``[..., 3]`` pose and ``[..., 3]`` action -> the next pose."""
        state, was_numpy = as_tensor(state)
        action, _ = as_tensor(action)
        action = action.to(state.dtype)
        yaw = state[..., 2]
        cos, sin = yaw.cos(), yaw.sin()
        forward, left = action[..., 0] * self.waypoint_spacing, action[..., 1] * self.waypoint_spacing
        x = state[..., 0] + cos * forward - sin * left
        y = state[..., 1] + sin * forward + cos * left
        return as_input_kind(torch.stack([x, y, wrap_angle(yaw + action[..., 2])], -1), was_numpy)

    def deltas(self, states):
        """``[..., T, 3]`` poses -> ``[..., T-1, 3]`` actions (NWM's local-frame waypoint deltas)."""
        states, was_numpy = as_tensor(states)
        before, after = states[..., :-1, :], states[..., 1:, :]
        dx, dy = after[..., 0] - before[..., 0], after[..., 1] - before[..., 1]
        cos, sin = before[..., 2].cos(), before[..., 2].sin()
        forward = (cos * dx + sin * dy) / self.waypoint_spacing
        left = (-sin * dx + cos * dy) / self.waypoint_spacing
        return as_input_kind(torch.stack([forward, left, wrap_angle(after[..., 2] - before[..., 2])], -1), was_numpy)
