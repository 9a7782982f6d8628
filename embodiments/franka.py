"""The Franka arm: 7-D end-effector states and deltas, the DROID convention.

State (7): end-effector xyz (m), extrinsic "xyz" Euler angles (rad) in the robot base frame,
gripper (0 open ... 1 closed). Action (7): the change between consecutive states, with the
rotation part taken from R_{t+1} R_t^T (expressed in the base frame) and converted back to
extrinsic xyz Euler angles. This is how DROID actions are derived for V-JEPA 2-AC training, so
`integrate` (the planner's imagined rollouts) exactly inverts `states_to_actions` (the dataset
readers), up to gripper clipping. DROID, the PyBullet arm and a real arm over ROS 2 share it.

The functions take torch tensors or numpy arrays and answer in the same kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .embodiment import Embodiment
from .rotations import as_input_kind, as_tensor, euler_to_matrix, matrix_to_euler

# DROID's control and camera-grab rate: one row of trajectory.h5 (one RLDS step) per 1/15 s.
CONTROL_HZ = 15
XYZ = (0, 1, 2)
ROTATION = (3, 4, 5)
GRIPPER = 6


def integrate(state, action, clip_gripper: bool = True):
    """Apply a 7-D action to a 7-D state: xyz add, R_new = R_delta R, gripper add (clipped to [0, 1])."""
    state, was_numpy = as_tensor(state)
    action, _ = as_tensor(action)
    action = action.to(state.dtype)
    xyz = state[..., :3] + action[..., :3]
    rotation = euler_to_matrix(action[..., 3:6]) @ euler_to_matrix(state[..., 3:6])
    gripper = state[..., 6:7] + action[..., 6:7]
    if clip_gripper:
        gripper = gripper.clamp(0.0, 1.0)
    return as_input_kind(torch.cat([xyz, matrix_to_euler(rotation), gripper], -1), was_numpy)


def relative_action(current, following):
    """The action that takes state `current` to state `following` (both ``[..., 7]``)."""
    current, was_numpy = as_tensor(current)
    following, _ = as_tensor(following)
    rotation = euler_to_matrix(following[..., 3:6]) @ euler_to_matrix(current[..., 3:6]).transpose(-1, -2)
    out = torch.cat(
        [following[..., :3] - current[..., :3], matrix_to_euler(rotation), following[..., 6:7] - current[..., 6:7]], -1
    )
    return as_input_kind(out, was_numpy)


def states_to_actions(states):
    """``[..., T, 7]`` states -> ``[..., T-1, 7]`` actions between consecutive states."""
    return relative_action(states[..., :-1, :], states[..., 1:, :])


@dataclass(frozen=True)
class Franka(Embodiment):
    """The Franka embodiment with the published planning box (V-JEPA 2-AC's CEM): xyz and the
    gripper searched, rotations held at zero unless `search_rotation`."""

    name: ClassVar[str] = "franka"
    state_names: ClassVar[tuple[str, ...]] = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
    action_names: ClassVar[tuple[str, ...]] = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")
    translation: ClassVar[tuple[int, ...]] = XYZ
    # 10 cm, 0.5 rad and the whole gripper range per step: the PyBullet arm's own per-action limits
    # (`sim.franka.config.ActionLimits`), twice the published 5 cm box.
    ceilings: ClassVar[dict[str, float]] = {"max_step": 0.1, "max_rotation": 0.5, "max_gripper": 1.0}
    # Base frame: the Panda reaches 0.855 m, so 2 m covers any mounting; Euler angles as
    # `rotations.matrix_to_euler` gives them; the gripper 0 (open) .. 1 (closed) with some sensor slack.
    state_low: ClassVar[tuple[float, ...]] = (-2.0, -2.0, -2.0, -math.pi - 1e-3, -math.pi - 1e-3, -math.pi - 1e-3, -0.05)
    state_high: ClassVar[tuple[float, ...]] = (2.0, 2.0, 2.0, math.pi + 1e-3, math.pi + 1e-3, math.pi + 1e-3, 1.05)

    max_step: float = 0.05  # metres per step along each of x, y, z (the paper's 0.075 is also common)
    max_rotation: float = 0.1  # rad per step about each axis, used only when rotations are searched
    max_gripper: float = 0.75  # largest gripper change per step (the gripper spans 0 open .. 1 closed)
    search_rotation: bool = False  # published: rotations held at zero
    init_std_gripper: float = 1.0  # spread of the gripper in a cold-started search
    gripper_round: float = 0.25  # a planned |gripper change| below this is returned as 0 (published)

    def __post_init__(self):
        self.check_settings()
        if not 0 < self.init_std_gripper < float("inf"):
            raise ValueError(f"franka.init_std_gripper must be a positive finite number, got {self.init_std_gripper}")
        if not 0 <= self.gripper_round < float("inf"):
            raise ValueError(f"franka.gripper_round must be >= 0 and finite, got {self.gripper_round}")

    @property
    def action_high(self) -> tuple[float, ...]:
        return (self.max_step,) * 3 + (self.max_rotation,) * 3 + (self.max_gripper,)

    @property
    def action_low(self) -> tuple[float, ...]:
        return tuple(-v for v in self.action_high)

    @property
    def searched(self) -> tuple[bool, ...]:
        return (True,) * 3 + (self.search_rotation,) * 3 + (True,)

    @property
    def initial_std(self) -> tuple[float, ...]:
        return (self.max_step,) * 3 + (self.max_rotation,) * 3 + (self.init_std_gripper,)

    @property
    def round_below(self) -> tuple[float, ...]:
        return (0.0,) * 6 + (self.gripper_round,)

    def integrate(self, state, action):
        return integrate(state, action)

    def deltas(self, states):
        return states_to_actions(states)
