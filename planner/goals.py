"""Goal latents and the sub-goal switching rule (e.g. pick-and-place: grasp -> vicinity -> place)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SubgoalRule:
    """When to move on from a sub-goal: its observed energy falls to `switch_energy` or below, or
    `max_steps` control steps were spent on it (0 = no step limit). The last goal never switches."""

    switch_energy: float | None = None
    max_steps: int = 0


class GoalSequence:
    def __init__(self, latents: list[torch.Tensor], rule: SubgoalRule | None = None):
        if not latents:
            raise ValueError("at least one goal image is needed (V-JEPA 2-AC plans toward an image)")
        self.latents = latents
        self.rule = rule or SubgoalRule()
        self.index = 0
        self.steps_on_goal = 0

    @property
    def current(self) -> torch.Tensor:
        return self.latents[self.index]

    @property
    def is_last(self) -> bool:
        return self.index == len(self.latents) - 1

    def update(self, observed_energy: float) -> bool:
        """Advance if the rule says so, given the energy between the current view and the current goal.
        Returns True when it switched."""
        if self.is_last:
            return False
        rule = self.rule
        reached = rule.switch_energy is not None and observed_energy <= rule.switch_energy
        timed_out = rule.max_steps > 0 and self.steps_on_goal >= rule.max_steps
        if reached or timed_out:
            self.index += 1
            self.steps_on_goal = 0
            return True
        return False

    def count_step(self) -> None:
        self.steps_on_goal += 1
