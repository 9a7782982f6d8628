"""`Embodiment`: what one kind of robot's state and action vectors mean, and how far one step may go.

Every room that touches states or actions asks an embodiment instead of assuming a layout: the
planner searches `action_dim` numbers inside `action_low .. action_high`, the world model
imagines states with `integrate`, the dataset readers turn recorded states into actions with
`deltas`, and the MPC loop refuses states that are not `state_dim` finite numbers. Two are
built: `Franka` (7-D end-effector deltas, the DROID convention) and `Car` (SE(2) waypoint deltas,
the NWM / TartanDrive convention).

An embodiment is a frozen dataclass: its fields are the tunable limits of the search (a step
of at most 5 cm, say), so it doubles as a typed config section (``--franka.max_step=0.075``).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch

from .rotations import as_input_kind, as_tensor


class Embodiment(ABC):
    """The state/action contract of one kind of robot (subclasses are frozen dataclasses)."""

    name: ClassVar[str]
    state_names: ClassVar[tuple[str, ...]]
    action_names: ClassVar[tuple[str, ...]]
    # Action dimensions that add directly onto the same state dimensions (a position): only these
    # can be kept inside a workspace box step by step. Empty where no action moves the state additively.
    translation: ClassVar[tuple[int, ...]] = ()
    # Settings that change what a state or an action means (recorded with a trained model); the
    # other settings only bound a search.
    meaning: ClassVar[tuple[str, ...]] = ()
    # Step-bound settings and the largest value each may be set to: the safety ceiling no config
    # or flag can lift (a 10 m "step" is a typo, never a plan).
    ceilings: ClassVar[dict[str, float]] = {}
    # Per state dimension, the range a real state of this robot lies in (a reading outside it is a
    # broken sensor or a unit error, never planned from).
    state_low: ClassVar[tuple[float, ...]] = ()
    state_high: ClassVar[tuple[float, ...]] = ()

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    # ------------------------------------------------------------------ search settings

    @property
    @abstractmethod
    def action_low(self) -> tuple[float, ...]:
        """Per-dimension lower bound of one step."""

    @property
    @abstractmethod
    def action_high(self) -> tuple[float, ...]:
        """Per-dimension upper bound of one step."""

    @property
    @abstractmethod
    def searched(self) -> tuple[bool, ...]:
        """Which action dimensions a search varies; the others are held at zero unless pinned."""

    @property
    @abstractmethod
    def initial_std(self) -> tuple[float, ...]:
        """Per-dimension spread of a cold-started search."""

    @property
    def round_below(self) -> tuple[float, ...]:
        """Per dimension: a planned value smaller than this in magnitude is returned as exactly 0."""
        return (0.0,) * self.action_dim

    # ------------------------------------------------------------------ kinematics

    @abstractmethod
    def integrate(self, state, action):
        """The state after `action`: ``[..., S]`` and ``[..., A]`` -> ``[..., S]`` (torch or numpy)."""

    @abstractmethod
    def deltas(self, states):
        """The actions between consecutive recorded states: ``[..., T, S]`` -> ``[..., T-1, A]``."""

    def rollout(self, state, actions):
        """Integrate ``[..., H, A]`` actions from ``[..., S]``: ``[..., H+1, S]``, the start first."""
        state, was_numpy = as_tensor(state)
        actions, _ = as_tensor(actions)
        states = [state]
        for step in range(actions.shape[-2]):
            states.append(self.integrate(states[-1], actions[..., step, :]))
        return as_input_kind(torch.stack(states, -2), was_numpy)

    # ------------------------------------------------------------------ checks and names

    def index(self, action_name: str) -> int:
        """Position of an action dimension by name (e.g. ``"gripper"``)."""
        if action_name not in self.action_names:
            raise ValueError(f"{self.name} has no action {action_name!r} (actions: {', '.join(self.action_names)})")
        return self.action_names.index(action_name)

    def check_settings(self) -> None:
        """Every step-bound setting positive, finite and at most its safety ceiling (`ceilings`);
        subclasses call it from ``__post_init__`` so that no config can hold an unsafe box."""
        for name, ceiling in self.ceilings.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value <= ceiling):
                raise ValueError(f"{self.name}.{name} must be a positive finite number at most {ceiling:g} "
                                 f"(the safety ceiling), got {value}")

    def check_pinned(self, pinned: dict[int, float]) -> None:
        """Pinned dimensions must be action indices and their values finite and inside the step bounds."""
        for dim, value in pinned.items():
            if not 0 <= dim < self.action_dim:
                raise ValueError(f"pinned dimensions must be {self.name} action indices 0..{self.action_dim - 1}, got {sorted(pinned)}")
            low, high = self.action_low[dim], self.action_high[dim]
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"pinned {self.action_names[dim]} must be a finite number in the step bounds "
                                 f"[{low:g}, {high:g}], got {value}")

    def checked_action(self, action) -> np.ndarray:
        """A finite float64 ``[A]`` copy of `action`, or a one-line ValueError (what a robot's
        ``apply`` takes, whoever calls it)."""
        try:
            array = np.array(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action must be {self.action_dim} numbers ({', '.join(self.action_names)}), "
                             f"got {type(action).__name__}") from None
        if array.shape != (self.action_dim,):
            raise ValueError(f"action must have shape ({self.action_dim},), got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError("action contains NaN or infinite values")
        return array

    def state_problem(self, state) -> str | None:
        """Why `state` is not a usable state of this embodiment (malformed, non-finite or outside
        the range a real one lies in), or None."""
        try:
            array = np.asarray(state, dtype=np.float64)
        except (TypeError, ValueError):
            array = np.empty(0)
        if array.shape != (self.state_dim,) or not np.all(np.isfinite(array)):
            return f"non-finite or malformed state (expected {self.state_dim} finite numbers: {', '.join(self.state_names)})"
        for name, value, low, high in zip(self.state_names, array, self.state_low, self.state_high):
            if not low <= value <= high:
                return f"implausible state: {name} {value:g} outside [{low:g}, {high:g}]"
        return None

    def to_dict(self) -> dict:
        """Name and the settings that give states and actions their meaning, as checkpoints record
        them (`embodiments.embodiment_from_dict` reads it back)."""
        return {"name": self.name, **{key: getattr(self, key) for key in self.meaning}}
