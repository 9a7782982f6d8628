"""Goal images, sub-goal sequences and the switching rule (e.g. pick-and-place: grasp -> vicinity -> place)."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class SubgoalRule:
    """When to move on from a sub-goal: its observed energy falls to `switch_energy` or below, or
    `max_steps` control steps were spent on it (0 = no step limit; a `Goal` may set its own).
    The last goal never switches."""

    switch_energy: float | None = None  # move on once the observed energy falls to this (null: never by energy)
    max_steps: int = 0  # control steps per goal before moving on (0: no limit)

    def __post_init__(self):
        check_switch_settings(self.switch_energy, self.max_steps, "subgoals.")


@dataclass
class Goal:
    """One goal image and how to plan toward it.

    pinned: action dimensions held at a constant while planning toward this goal, replacing the
        search's own (the published CEM's `axis` option per goal), e.g. ``{6: 0.75}`` closes the
        gripper while the position is searched, ``{6: 0.0}`` leaves the gripper as it is.
    max_steps: control steps to spend on this goal before the next one (None: the rule's).
    switch_energy: move on once the observed energy to this goal falls to this value (None: the
        rule's), e.g. as soon as the gripper hovers over the object, before the plan drifts off.
    """

    image: np.ndarray
    pinned: dict[int, float] | None = None
    max_steps: int | None = None
    switch_energy: float | None = None

    def __post_init__(self):
        """Pins must be action indices with finite values (whether they fit the robot's step bounds
        is checked against its embodiment before the loop moves, `GoalSequence.check`)."""
        if self.pinned is not None:
            try:
                self.pinned = {int(dim): float(value) for dim, value in dict(self.pinned).items()}
            except (TypeError, ValueError):
                raise ValueError(f"goal pins must map action indices to numbers, got {self.pinned!r}") from None
            bad = {dim: value for dim, value in self.pinned.items() if dim < 0 or not math.isfinite(value)}
            if bad:
                raise ValueError(f"goal pins must map action indices to finite numbers, got {bad}")
        check_switch_settings(self.switch_energy, 0 if self.max_steps is None else self.max_steps, "goal ")


def check_switch_settings(switch_energy: float | None, max_steps: int, where: str) -> None:
    if switch_energy is not None and not math.isfinite(switch_energy):
        raise ValueError(f"{where}switch_energy must be a finite number or None, got {switch_energy}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 0:
        raise ValueError(f"{where}max_steps must be an integer >= 0, got {max_steps!r}")


def as_goal(goal) -> Goal:
    """A `Goal` from a `Goal` or a bare image."""
    return goal if isinstance(goal, Goal) else Goal(np.asarray(goal))


@dataclass
class GoalSequence:
    """The goals' latents in order and where the loop is among them."""

    latents: list[torch.Tensor]
    goals: list[Goal]  # per-goal settings, parallel to `latents`
    rule: SubgoalRule = field(default_factory=SubgoalRule)
    index: int = 0
    steps_on_goal: int = 0

    def __post_init__(self):
        if not self.latents:
            raise ValueError("at least one goal image is needed (V-JEPA 2-AC plans toward an image)")
        if len(self.goals) != len(self.latents):
            raise ValueError(f"{len(self.goals)} goal settings for {len(self.latents)} goal latents")

    @property
    def current(self) -> torch.Tensor:
        return self.latents[self.index]

    @property
    def pinned(self) -> dict[int, float] | None:
        """The current goal's pinned action dimensions (None: the search's own)."""
        return self.goals[self.index].pinned

    @property
    def is_last(self) -> bool:
        return self.index == len(self.latents) - 1

    def step_limit(self) -> int:
        own = self.goals[self.index].max_steps
        return self.rule.max_steps if own is None else own

    def switch_energy(self) -> float | None:
        own = self.goals[self.index].switch_energy
        return self.rule.switch_energy if own is None else own

    def update(self, observed_energy: float) -> bool:
        """Advance if the rule says so, given the energy between the current view and the current goal.
        Returns True when it switched."""
        if self.is_last:
            return False
        threshold = self.switch_energy()
        reached = threshold is not None and observed_energy <= threshold
        limit = self.step_limit()
        timed_out = limit > 0 and self.steps_on_goal >= limit
        if reached or timed_out:
            self.index += 1
            self.steps_on_goal = 0
            return True
        return False

    def count_step(self) -> None:
        self.steps_on_goal += 1
