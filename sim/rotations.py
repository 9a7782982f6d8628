"""Small numpy rotation helpers the sim needs beyond `planner.poses` (which owns the Euler convention).

Euler angles always go through `planner.poses` so the sim's states use exactly the planner's
convention (extrinsic xyz, which is also PyBullet's roll-pitch-yaw).
"""
from __future__ import annotations

import numpy as np
import torch

from planner import poses


def euler_to_matrix(euler) -> np.ndarray:
    return poses.euler_to_matrix(torch.as_tensor(np.asarray(euler, dtype=np.float64))).numpy()


def matrix_to_euler(matrix) -> np.ndarray:
    return poses.matrix_to_euler(torch.as_tensor(np.asarray(matrix, dtype=np.float64))).numpy()


def rotation_vector(matrix: np.ndarray) -> np.ndarray:
    """Axis * angle (angle in [0, pi]) of a rotation matrix."""
    cos = np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
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


def matrix_from_rotation_vector(vector: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = np.asarray(vector) / angle
    skew = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * skew + (1.0 - np.cos(angle)) * skew @ skew


def rotation_angle(matrix: np.ndarray) -> float:
    return float(np.arccos(np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0)))


def tilt(matrix: np.ndarray) -> float:
    """Angle (rad) between the gripper axis (the frame's z) and straight down."""
    return float(np.arccos(np.clip(-matrix[2, 2], -1.0, 1.0)))


def quaternion_from_matrix(matrix: np.ndarray) -> tuple[float, float, float, float]:
    """Rotation matrix -> PyBullet quaternion (x, y, z, w)."""
    m = matrix
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
