"""The safety envelope at the `Robot` boundary: the last checks before anything moves.

The planning loop (`planner.mpc.run_mpc`) asks two questions on every control step, whichever
robot it drives (the PyBullet arm, the ROS 2 bridge, a replayed log):

* may this observation be planned from? (`observation_problem`: a well-formed image, a state
  the embodiment can have, a stamp neither too old nor from the future beyond a small clock
  tolerance);
* may this action be applied? (`SafetyEnvelope.action_problem`: the embodiment's shape, finite
  numbers, inside the embodiment's per-step bounds, and a position that stays in the workspace box,
  or, from outside it, never goes farther out).

The search (`planner.cem`) already keeps its candidates inside the same bounds and box; the
envelope does not trust it: it is the independent check of the number that is about to be sent.
Answers are `Refusal`s, which say why and whether a later look may succeed (a stale or early
stamp) or the loop must stop (a malformed image, an impossible state, an unsafe plan).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vjepa_wm.embodiments import Embodiment, Observation

# The search runs in float32: its box-clipped numbers may sit a rounding error beyond a float64 bound.
ROUNDING = 1e-6


@dataclass(frozen=True)
class Refusal:
    """Why the loop will not plan from an observation or apply an action."""

    reason: str
    retry: bool  # True: hold and look again (the stamp may be fine next time); False: hold and stop


def workspace_problem(workspace, embodiment: Embodiment) -> str | None:
    """Why `workspace` (low corner, high corner) cannot bound `embodiment`'s positions, or None."""
    if workspace is None:
        return None
    if not embodiment.translation:
        return f"{embodiment.name} has no action that adds directly to a position, so no workspace box can be kept"
    low, high = workspace
    if len(low) != len(embodiment.translation) or len(high) != len(low):
        return f"workspace has {len(low)} coordinates; {embodiment.name} positions have {len(embodiment.translation)}"
    if not all(math.isfinite(v) for v in (*low, *high)) or any(a >= b for a, b in zip(low, high)):
        return f"workspace must be (low corner, high corner) of finite numbers with low < high, got {workspace}"
    return None


@dataclass(frozen=True)
class SafetyEnvelope:
    """What an action applied to a robot of `embodiment` in state `state` may be."""

    embodiment: Embodiment
    workspace: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # box of the translation dims (None: none)

    def __post_init__(self):
        problem = workspace_problem(self.workspace, self.embodiment)
        if problem is not None:
            raise ValueError(problem)

    def action_problem(self, action, state) -> Refusal | None:
        """Why `action` must not be applied in `state`, or None if it may."""
        e = self.embodiment
        try:
            values = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            return Refusal("malformed action (not numbers)", retry=False)
        if values.shape != (e.action_dim,):
            return Refusal(f"malformed action of shape {values.shape} (expected {e.action_dim}: {', '.join(e.action_names)})", False)
        if not np.all(np.isfinite(values)):
            return Refusal("non-finite action", retry=False)
        for name, value, low, high in zip(e.action_names, values, e.action_low, e.action_high):
            if not low - ROUNDING <= value <= high + ROUNDING:
                return Refusal(f"unsafe action: {name} {value:+.4g} outside the per-step bounds [{low:+.4g}, {high:+.4g}]", False)
        if self.workspace is not None:
            position = np.asarray(state, dtype=np.float64)[list(e.translation)]
            reached = position + values[list(e.translation)]
            for dim, before, after, low, high in zip(e.translation, position, reached, *self.workspace):
                # Inside the box it must stay inside; from outside it may only come closer.
                if not min(low, before) - ROUNDING <= after <= max(high, before) + ROUNDING:
                    return Refusal(f"unsafe action: {e.state_names[dim]} would reach {after:.4f}, outside the workspace "
                                   f"[{low:g}, {high:g}]", False)
        return None


def observation_problem(obs: Observation, embodiment: Embodiment, now: float, max_age: float,
                        clock_tolerance: float) -> Refusal | None:
    """Why this observation must not be planned from at time `now` on the robot's clock, or None."""
    image = np.asarray(obs.image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        return Refusal(f"malformed image ({image.dtype} {image.shape}, expected uint8 [H, W, 3])", retry=False)
    problem = embodiment.state_problem(obs.state)
    if problem is not None:
        return Refusal(problem, retry=False)
    return stamp_problem(obs.stamp, now, max_age, clock_tolerance)


def stamp_problem(stamp: float, now: float, max_age: float, clock_tolerance: float) -> Refusal | None:
    """Why an image stamped `stamp` is no longer (or not yet) a view of the robot at `now`, or None."""
    try:
        age = float(now) - float(stamp)
    except (TypeError, ValueError):
        return Refusal(f"malformed stamp {stamp!r} or clock reading {now!r}", retry=False)
    if not math.isfinite(age):
        return Refusal(f"non-finite stamp {stamp!r} or clock reading {now!r}", retry=False)
    if age > max_age:
        return Refusal(f"stale observation ({age:.3f} s old, limit {max_age} s)", retry=True)
    if age < -clock_tolerance:
        return Refusal(f"observation from the future (stamped {-age:.3f} s ahead of the robot's clock, "
                       f"tolerance {clock_tolerance} s)", retry=True)
    return None
