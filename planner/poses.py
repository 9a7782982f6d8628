"""Pose math for 7-D robot states and actions, batched in torch (numpy in, numpy out also works).

State (7): end-effector xyz (m), extrinsic "xyz" Euler angles (rad) in the robot base frame,
gripper (0 open ... 1 closed). Action (7): the change between consecutive states, with the
rotation part taken from R_{t+1} R_t^T (expressed in the base frame) and converted back to
extrinsic xyz Euler angles. This is how DROID actions are derived for V-JEPA 2-AC training, so
`integrate` (used by the planner's imagined rollouts) exactly inverts `states_to_actions`
(used by the dataset readers), up to gripper clipping.

Extrinsic xyz Euler angles (a, b, c) mean R = Rz(c) Ry(b) Rx(a) (scipy's lowercase "xyz").
"""
from __future__ import annotations

import numpy as np
import torch


def _as_tensor(x):
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x), True
    return x, False


def _back(x: torch.Tensor, was_numpy: bool):
    return x.numpy() if was_numpy else x


def euler_to_matrix(euler: torch.Tensor) -> torch.Tensor:
    """Extrinsic xyz Euler ``[..., 3]`` -> rotation matrices ``[..., 3, 3]``."""
    a, b, c = euler.unbind(-1)
    ca, sa, cb, sb, cc, sc = a.cos(), a.sin(), b.cos(), b.sin(), c.cos(), c.sin()
    rows = [
        torch.stack([cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa], -1),
        torch.stack([sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa], -1),
        torch.stack([-sb, cb * sa, cb * ca], -1),
    ]
    return torch.stack(rows, -2)


def matrix_to_euler(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> extrinsic xyz Euler ``[..., 3]`` (b in [-pi/2, pi/2])."""
    r20, r21, r22 = matrix[..., 2, 0], matrix[..., 2, 1], matrix[..., 2, 2]
    r10, r00 = matrix[..., 1, 0], matrix[..., 0, 0]
    cos_b = torch.sqrt(r21 * r21 + r22 * r22)
    b = torch.atan2(-r20, cos_b)
    regular = cos_b > 1e-6
    a = torch.where(regular, torch.atan2(r21, r22), torch.zeros_like(r21))
    # Gimbal lock (|b| = pi/2): only a - c (or a + c) is defined; put it all on c, as scipy does.
    c_locked = torch.atan2(-matrix[..., 0, 1], matrix[..., 1, 1])
    c = torch.where(regular, torch.atan2(r10, r00), c_locked)
    return torch.stack([a, b, c], -1)


def integrate(state, action, clip_gripper: bool = True):
    """Apply a 7-D action to a 7-D state: xyz add, R_new = R_delta R, gripper add (clipped to [0, 1])."""
    state, was_numpy = _as_tensor(state)
    action, _ = _as_tensor(action)
    action = action.to(state.dtype)
    xyz = state[..., :3] + action[..., :3]
    rotation = euler_to_matrix(action[..., 3:6]) @ euler_to_matrix(state[..., 3:6])
    gripper = state[..., 6:7] + action[..., 6:7]
    if clip_gripper:
        gripper = gripper.clamp(0.0, 1.0)
    return _back(torch.cat([xyz, matrix_to_euler(rotation), gripper], -1), was_numpy)


def relative_action(current, following):
    """The action that takes state `current` to state `following` (both ``[..., 7]``)."""
    current, was_numpy = _as_tensor(current)
    following, _ = _as_tensor(following)
    rotation = euler_to_matrix(following[..., 3:6]) @ euler_to_matrix(current[..., 3:6]).transpose(-1, -2)
    out = torch.cat(
        [following[..., :3] - current[..., :3], matrix_to_euler(rotation), following[..., 6:7] - current[..., 6:7]], -1
    )
    return _back(out, was_numpy)


def states_to_actions(states):
    """``[..., T, 7]`` states -> ``[..., T-1, 7]`` actions between consecutive states."""
    return relative_action(states[..., :-1, :], states[..., 1:, :])


def rollout_states(state, actions, clip_gripper: bool = True):
    """Integrate actions ``[..., H, 7]`` from ``state`` ``[..., 7]``: returns ``[..., H+1, 7]`` (start included)."""
    state, was_numpy = _as_tensor(state)
    actions, _ = _as_tensor(actions)
    states = [state]
    for step in range(actions.shape[-2]):
        states.append(integrate(states[-1], actions[..., step, :], clip_gripper))
    return _back(torch.stack(states, -2), was_numpy)
