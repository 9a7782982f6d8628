"""The project's one rotation module: Euler angles, matrices, rotation vectors, quaternions, yaw.

Every function takes torch tensors or numpy arrays (lists too) and answers in the same kind, so
the planner's batched torch rollouts and the numpy code of the sim and the dataset readers use
one convention and the same arithmetic (numpy goes through the torch implementation, keeping
its float dtype; integer or list input becomes float64).

Euler angles are extrinsic "xyz" (roll, pitch, yaw about the fixed x, y, z axes):
(a, b, c) means R = Rz(c) Ry(b) Rx(a), scipy's lowercase "xyz" and PyBullet's roll-pitch-yaw.
Quaternions are (x, y, z, w), as PyBullet and scipy order them.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def as_tensor(x) -> tuple[torch.Tensor, bool]:
    """(tensor, was_numpy): numpy keeps a float dtype, anything else not a tensor becomes float64."""
    if isinstance(x, torch.Tensor):
        return x, False
    array = np.asarray(x)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return torch.from_numpy(array), True


def as_input_kind(x: torch.Tensor, was_numpy: bool):
    return x.numpy() if was_numpy else x


def euler_to_matrix(euler):
    """Extrinsic xyz Euler angles ``[..., 3]`` -> rotation matrices ``[..., 3, 3]``."""
    euler, was_numpy = as_tensor(euler)
    a, b, c = euler.unbind(-1)
    ca, sa, cb, sb, cc, sc = a.cos(), a.sin(), b.cos(), b.sin(), c.cos(), c.sin()
    rows = [
        torch.stack([cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa], -1),
        torch.stack([sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa], -1),
        torch.stack([-sb, cb * sa, cb * ca], -1),
    ]
    return as_input_kind(torch.stack(rows, -2), was_numpy)


def matrix_to_euler(matrix):
    """Rotation matrices ``[..., 3, 3]`` -> extrinsic xyz Euler ``[..., 3]`` (pitch in [-pi/2, pi/2])."""
    matrix, was_numpy = as_tensor(matrix)
    r20, r21, r22 = matrix[..., 2, 0], matrix[..., 2, 1], matrix[..., 2, 2]
    r10, r00 = matrix[..., 1, 0], matrix[..., 0, 0]
    cos_b = torch.sqrt(r21 * r21 + r22 * r22)
    b = torch.atan2(-r20, cos_b)
    regular = cos_b > 1e-6
    a = torch.where(regular, torch.atan2(r21, r22), torch.zeros_like(r21))
    # Gimbal lock (|b| = pi/2): only a - c (or a + c) is defined; put it all on c, as scipy does.
    c_locked = torch.atan2(-matrix[..., 0, 1], matrix[..., 1, 1])
    c = torch.where(regular, torch.atan2(r10, r00), c_locked)
    return as_input_kind(torch.stack([a, b, c], -1), was_numpy)


def rotation_angle(matrix) -> float:
    """Angle (rad, in [0, pi]) of one rotation matrix ``[3, 3]``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return float(np.arccos(np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0)))


def rotation_vector(matrix) -> np.ndarray:
    """Axis * angle ``[3]`` (angle in [0, pi]) of one rotation matrix ``[3, 3]``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    angle = rotation_angle(matrix)
    if angle < 1e-9:
        return np.zeros(3)
    if angle > np.pi - 1e-4:
        # sin(angle) ~ 0: read the axis from the symmetric part, R + I = 2 a a^T at angle pi.
        half = (matrix + np.eye(3)) / 2.0
        column = int(np.argmax(np.diag(half)))
        axis = half[:, column] / np.sqrt(max(half[column, column], 1e-12))
        return axis / np.linalg.norm(axis) * angle
    skew = np.array([matrix[2, 1] - matrix[1, 2], matrix[0, 2] - matrix[2, 0], matrix[1, 0] - matrix[0, 1]])
    return skew / (2.0 * np.sin(angle)) * angle


def matrix_from_rotation_vector(vector) -> np.ndarray:
    """Rodrigues: axis * angle ``[3]`` -> rotation matrix ``[3, 3]``."""
    vector = np.asarray(vector, dtype=np.float64)
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = vector / angle
    skew = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * skew + (1.0 - np.cos(angle)) * skew @ skew


def quaternion_from_matrix(matrix) -> tuple[float, float, float, float]:
    """One rotation matrix ``[3, 3]`` -> unit quaternion (x, y, z, w)."""
    m = np.asarray(matrix, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = (0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s)
    q = np.asarray(q)
    return tuple(float(v) for v in q / np.linalg.norm(q))


def matrix_from_quaternion(quaternion) -> np.ndarray:
    """Quaternion (x, y, z, w), not necessarily unit -> rotation matrix ``[3, 3]``."""
    x, y, z, w = np.asarray(quaternion, dtype=np.float64) / np.linalg.norm(quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def wrap_angle(angle):
    """Angles shifted by multiples of 2 pi into [-pi, pi)."""
    angle, was_numpy = as_tensor(angle)
    return as_input_kind(torch.remainder(angle + math.pi, 2 * math.pi) - math.pi, was_numpy)
