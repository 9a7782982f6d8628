"""From sampled odometry to NWM trajectories: planar poses with the yaw offset, backwards cut.

Poses (GNM's `nav_to_xy_yaw`): position = (x, y) of ``pose.pose.position`` in the odometry frame,
not re-zeroed; yaw = `quaternion_yaw` of ``pose.pose.orientation`` + `ang_offset`, not wrapped.
TartanDrive's offset is pi/2 (`process_bags_config.yaml`): its odometry's yaw points pi/2 away
from the direction the vehicle drives, and the offset yaw is the heading the forward test and
NWM's actions use.

The cut (GNM's `filter_backwards`, which `process_bags` applies to every bag): step i-1 -> i is
forward when (p_i - p_{i-1}) . (cos yaw_{i-1}, sin yaw_{i-1}) >= 1e-5 m, the forward component of
the car's step (`embodiments.Car.deltas` in metres). Every maximal run of forward steps s..e
becomes one trajectory, and exactly as published it holds samples s-1 .. e-1: the sample a run
reaches last is not kept, and a run that reaches the end of the bag also loses its last two
samples (so a final run of one step yields nothing). Runs are numbered 0, 1, ... in bag order.
"""
from __future__ import annotations

import math

import numpy as np

from vjepa_wm.embodiments import Car

from .messages import quaternion_yaw

TARTANDRIVE_ANG_OFFSET = math.pi / 2  # rad added to the odometry yaw (GNM process_bags_config.yaml)
FORWARD_EPS = 1e-5  # metres a step must advance along the previous heading (GNM is_backwards)

_METRES = Car(waypoint_spacing=1.0)  # deltas in metres: dx is the forward component of a step


def planar_poses(odometry: np.ndarray, ang_offset: float = TARTANDRIVE_ANG_OFFSET) -> np.ndarray:
    """``[T, 7]`` odometry poses (x, y, z, qx, qy, qz, qw) -> ``[T, 3]`` x, y, yaw + offset (float64)."""
    odometry = np.asarray(odometry, dtype=np.float64).reshape(-1, 7)
    yaw = quaternion_yaw(odometry[:, 3], odometry[:, 4], odometry[:, 5], odometry[:, 6]) + ang_offset
    return np.stack([odometry[:, 0], odometry[:, 1], yaw], axis=1)


def forward_steps(poses: np.ndarray) -> np.ndarray:
    """``[T, 3]`` poses -> bool ``[T-1]``: step i-1 -> i goes forward (the published test)."""
    poses = np.asarray(poses, dtype=np.float64)
    if len(poses) < 2:
        return np.zeros(0, dtype=bool)
    return _METRES.deltas(poses)[:, 0] >= FORWARD_EPS


def forward_segments(poses: np.ndarray) -> list[range]:
    """The sample indices of each trajectory the published backwards cut keeps, in bag order."""
    forward = forward_steps(poses)
    count = len(poses)
    segments, step = [], 1
    while step < count:
        if not forward[step - 1]:
            step += 1
            continue
        first = step
        while step + 1 < count and forward[step]:
            step += 1
        last = step  # run of forward steps first..last
        samples = range(first - 1, min(last, count - 2))
        if len(samples):
            segments.append(samples)
        step += 1
    return segments
