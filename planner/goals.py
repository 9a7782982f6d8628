"""Goal images, sub-goal sequences and the switching rule (e.g. pick-and-place: grasp -> vicinity -> place)."""
from __future__ import annotations

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
