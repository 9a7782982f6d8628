"""Path errors of a planned path against the driven one, as NWM's planning eval scores them.

NWM (`planning_eval.py`) builds `evo` trajectories from the 8 planned and the 8 driven waypoints
(x, y in waypoint units in the planning pose's frame; the start pose itself is not included) with
one constant orientation for every pose, and takes, without alignment or scale correction:

* ATE: the RMSE over poses of the translation APE, here ||p_i - q_i||;
* RPE translation, delta 1 frame: the RMSE over consecutive pairs of the relative translation
  error, which with constant orientations is ||(p_{i+1} - p_i) - (q_{i+1} - q_i)||;
* the final position error ||p_H - g|| and yaw error |wrap(yaw_H - yaw_g)| against the goal pose.

NWM also asks evo for the rotation RPE, but with constant orientations it is always 0 and it is
not reported; ours uses the real headings: the RMSE of |wrap(dyaw_est - dyaw_ref)| over consecutive
pairs, in degrees (evo's `rotation_angle_deg` on SE(2) poses). Written in numpy so scoring needs
no extra package; tests check every figure against evo itself.
"""
from __future__ import annotations

import numpy as np

METRICS = ("ate", "rpe_trans", "rpe_rot_deg", "final_pos", "final_yaw")  # in this order in `path_errors`
TRANSLATION = ("ate", "rpe_trans", "final_pos")  # the metrics in distance units (scale to metres)


def wrap(angle):
    """Angles into [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(errors)))) if len(errors) else float("nan")


def ate(reference: np.ndarray, estimate: np.ndarray) -> float:
    """RMSE of ||p_i - q_i|| over ``[T, >=2]`` poses (only x, y are used)."""
    return rmse(np.linalg.norm(estimate[:, :2] - reference[:, :2], axis=1))


def rpe_translation(reference: np.ndarray, estimate: np.ndarray) -> float:
    """RMSE of the one-step displacement error, orientations held constant (NWM's evo call)."""
    return rmse(np.linalg.norm(np.diff(estimate[:, :2], axis=0) - np.diff(reference[:, :2], axis=0), axis=1))


def rpe_rotation_deg(reference: np.ndarray, estimate: np.ndarray) -> float:
    """RMSE of the one-step heading-change error in degrees, over ``[T, 3]`` (x, y, yaw) poses."""
    return float(np.degrees(rmse(wrap(np.diff(estimate[:, 2]) - np.diff(reference[:, 2])))))


def path_errors(reference: np.ndarray, estimate: np.ndarray, goal: np.ndarray) -> dict[str, float]:
    """All five figures for one plan: ``[T, 3]`` driven and planned poses after each step, ``[3]`` goal pose."""
    reference, estimate, goal = (np.asarray(a, dtype=np.float64) for a in (reference, estimate, goal))
    if reference.shape != estimate.shape or reference.ndim != 2 or reference.shape[1] != 3 or goal.shape != (3,):
        raise ValueError(f"expected [T, 3] paths of one shape and a [3] goal, got {reference.shape}, {estimate.shape}, {goal.shape}")
    return {
        "ate": ate(reference, estimate),
        "rpe_trans": rpe_translation(reference, estimate),
        "rpe_rot_deg": rpe_rotation_deg(reference, estimate),
        "final_pos": float(np.linalg.norm(estimate[-1, :2] - goal[:2])),
        "final_yaw": float(np.abs(wrap(estimate[-1, 2] - goal[2]))),
    }
