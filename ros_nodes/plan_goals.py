"""A `PlanToGoal` goal message -> what `planner.mpc.run_mpc` takes (goal images as RGB arrays with
their per-goal settings, the step budget, the stop energy), or a one-line refusal.

Everything a goal says is checked here, before the robot is looked at, so that a malformed goal
ends REFUSED with its reason and never produces a command: an empty goal list, an image the
camera path would refuse too (`images`: encoding, step, size), goal images of different sizes,
per-goal lists whose length is neither 0 nor one per image, non-finite or negative energies,
pins naming no goal or no action dimension, pinned twice, non-finite or outside the embodiment's
per-step bounds, and budgets beyond `max_steps_limit`. A setting left at 0 takes the node's
default (the action's convention): a per-goal one becomes None in the `Goal`, which
`planner.goals.SubgoalRule` (the node's) then fills. Whether the goal images match the camera's
view is for the node to check against a live frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vjepa_wm.embodiments import Embodiment
from vjepa_wm.planner.goals import Goal

from .images import ImageRejected, image_to_rgb


class GoalRefused(ValueError):
    """A goal the node will not plan toward; the message is the one-line reason."""


@dataclass(frozen=True)
class GoalDefaults:
    """The node's settings for whatever a goal leaves at 0."""

    max_steps: int  # actions over all goals
    stop_energy: float | None  # None: run the whole budget
    max_steps_limit: int  # the largest budget a goal may ask for


@dataclass(frozen=True)
class PlanRequest:
    goals: list[Goal]  # in order, the final goal last
    max_steps: int
    stop_energy: float | None

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.goals[0].image.shape


def _energy(value: float, what: str) -> float | None:
    """A goal's energy setting: None for 0 (the node's), else a finite number >= 0."""
    if not math.isfinite(value) or value < 0:
        raise GoalRefused(f"{what} must be a finite number >= 0, got {value}")
    return None if value == 0 else float(value)


def _per_goal(values, count: int, what: str) -> list:
    values = list(values)
    if len(values) not in (0, count):
        raise GoalRefused(f"{what} has {len(values)} entries for {count} goal images (give none or one per image)")
    return values


def _budget(value: int, limit: int, what: str) -> int:
    if value > limit:
        raise GoalRefused(f"{what} {value} is beyond the node's limit of {limit}")
    return int(value)


def parse_goal(goal, embodiment: Embodiment, defaults: GoalDefaults) -> PlanRequest:
    """The `PlanToGoal.Goal` `goal` as a `PlanRequest`; `GoalRefused` with the reason otherwise."""
    count = len(goal.goal_images)
    if count == 0:
        raise GoalRefused("the goal has no goal images")
    images = []
    for index, msg in enumerate(goal.goal_images):
        try:
            images.append(image_to_rgb(msg))
        except ImageRejected as rejection:
            raise GoalRefused(f"goal image {index}: {rejection}") from None
        if images[-1].shape != images[0].shape:
            raise GoalRefused(f"goal image {index} is {_size(images[-1])}, goal image 0 is {_size(images[0])} "
                              f"(all goal images must have one size)")
    steps = [_budget(value, defaults.max_steps_limit, f"max_steps_per_goal[{index}]")
             for index, value in enumerate(_per_goal(goal.max_steps_per_goal, count, "max_steps_per_goal"))]
    switches = [_energy(value, f"switch_energy[{index}]")
                for index, value in enumerate(_per_goal(goal.switch_energy, count, "switch_energy"))]
    pins: list[dict[int, float]] = [{} for _ in range(count)]
    for pin in goal.pinned:
        if pin.goal_index >= count:
            raise GoalRefused(f"a pin names goal {pin.goal_index}, but the goal has {count} image(s)")
        if pin.dimension >= embodiment.action_dim:
            raise GoalRefused(f"a pin names action dimension {pin.dimension}; {embodiment.name} actions have "
                              f"{embodiment.action_dim} ({', '.join(embodiment.action_names)})")
        if pin.dimension in pins[pin.goal_index]:
            raise GoalRefused(f"action dimension {pin.dimension} is pinned twice for goal {pin.goal_index}")
        pins[pin.goal_index][pin.dimension] = float(pin.value)
    for index, pinned in enumerate(pins):
        try:
            embodiment.check_pinned(pinned)
        except ValueError as err:
            raise GoalRefused(f"goal {index}: {err}") from None
    goals = [Goal(image, pinned=pins[index] or None, max_steps=(steps[index] or None) if steps else None,
                  switch_energy=switches[index] if switches else None)
             for index, image in enumerate(images)]
    max_steps = _budget(goal.max_steps, defaults.max_steps_limit, "max_steps") or defaults.max_steps
    stop = _energy(goal.stop_energy, "stop_energy")
    return PlanRequest(goals, max_steps, defaults.stop_energy if stop is None else stop)


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"
