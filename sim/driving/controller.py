"""Pure pursuit: the low-level controller that drives the car to the pose a waypoint action names.

A car cannot move sideways or turn on the spot, so of a target pose it can reach the position
and arrive with the heading of the circular arc through it: the arc from the rear axle, tangent
to the current heading, through the target point (curvature k = 2 * left / d^2, d the distance,
`left` the target's lateral offset). Recorded 4 Hz deltas of a real drive are such arcs to
within a few hundredths of a radian, so their dyaw is honoured; a dyaw that disagrees with the
arc is not (see `DrivingEnv.apply`).

The controller is re-run at every command tick from the measured pose, with the time left in the
step: steer = the Ackermann angle of the arc, throttle = the speed that covers the remaining arc
length in the remaining time. That closes the loop over the wheel speed controller's lag, slope
and slip. The direction of travel is fixed for the step (forward if the target lay ahead when
the step began): a car that has reached or passed its target brakes instead of turning back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ARRIVED = 0.02  # m from the target counted as there
MIN_TIME_LEFT = 0.05  # s: the speed asked for in the last instants of a step is that of covering the rest in this


@dataclass(frozen=True)
class PurePursuit:
    wheelbase: float  # m
    max_speed: float  # m/s at throttle 1
    max_steer: float  # rad at steer 1

    def command(self, pose: np.ndarray, target: np.ndarray, direction: int, time_left: float) -> tuple[float, float]:
        """(throttle, steer) in [-1, 1] that bring the car at `pose` (x, y, heading) to the point
        `target` (x, y) in `time_left` seconds, driving forward (direction 1) or backward (-1)."""
        x, y, heading = (float(v) for v in pose)
        dx, dy = float(target[0]) - x, float(target[1]) - y
        ahead = math.cos(heading) * dx + math.sin(heading) * dy
        left = -math.sin(heading) * dx + math.cos(heading) * dy
        distance = math.hypot(ahead, left)
        if distance < ARRIVED:
            return 0.0, 0.0
        curvature = 2 * left / distance**2
        if ahead * direction <= 0.0:  # reached or passed: brake
            return 0.0, self.steer_for(curvature)
        central = 2 * math.atan2(abs(left), abs(ahead))  # angle the arc turns through
        arc = distance if abs(curvature) < 1e-9 else central / abs(curvature)
        speed = direction * arc / max(time_left, MIN_TIME_LEFT)
        return float(np.clip(speed / self.max_speed, -1.0, 1.0)), self.steer_for(curvature)

    def steer_for(self, curvature: float) -> float:
        """Steer in [-1, 1] of the Ackermann angle that drives a path of `curvature` (1/m)."""
        return float(np.clip(math.atan(curvature * self.wheelbase) / self.max_steer, -1.0, 1.0))


def arc_heading_change(dx: float, dy: float) -> float:
    """The heading change (rad) of the arc tangent to the current heading through (dx, dy) in the
    car's frame, forward (dx > 0) or backward (dx < 0): the dyaw a car can reach with that delta."""
    if dx == 0.0 and dy == 0.0:
        return 0.0
    return 2 * math.atan2(dy, dx) if dx > 0 else -2 * math.atan2(dy, -dx)
