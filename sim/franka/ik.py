"""Inverse kinematics iterated to sub-millimetre accuracy on a private kinematic copy of the Panda.

One `calculateInverseKinematics` call with defaults is ~17 mm off (median); PyBullet's IK starts
from the body's current joint state, so re-solving from the previous answer converges. The
copy lives in its own DIRECT client: solving never disturbs the simulated robot or its contacts.

Strategy per target: the first solve carries the null-space lists (limits, ranges, rest pose:
9 entries each, one per movable joint; PyBullet silently ignores shorter lists), which keeps the
elbow near the neutral posture; the following solves are unconstrained re-solves from the last
answer, which converge to ~1e-3 mm. Every candidate is clipped to the joint limits and the best
one (by FK error) is kept, so an out-of-reach target yields the nearest feasible pose.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as pb

from vjepa_wm.embodiments.rotations import quaternion_from_matrix, rotation_angle
from vjepa_wm.sim.franka.assets import panda_urdf
from vjepa_wm.sim.franka.client import OwnsClient
from vjepa_wm.sim.franka.scene import ARM_JOINTS, EE_LINK, MOVABLE_JOINTS, NEUTRAL_ARM, rotation_from_quaternion

ROTATION_WEIGHT = 0.05  # m per rad when ranking candidates (1 degree ~ 0.9 mm)


@dataclass(frozen=True)
class IKResult:
    arm: np.ndarray  # [7] joint angles (rad), within the joint limits
    position_error: float  # m, by forward kinematics
    rotation_error: float  # rad
    solves: int


class PandaIK(OwnsClient):
    def __init__(self, tolerance: float = 2e-5, rotation_tolerance: float = 1e-4, max_solves: int = 8):
        self.tolerance = tolerance
        self.rotation_tolerance = rotation_tolerance
        self.max_solves = max_solves
        self.client = pb.connect(pb.DIRECT)
        self.robot = pb.loadURDF(panda_urdf(low_poly=True), useFixedBase=True, physicsClientId=self.client)
        info = [pb.getJointInfo(self.robot, j, physicsClientId=self.client) for j in MOVABLE_JOINTS]
        self.lower = np.array([i[8] for i in info])
        self.upper = np.array([i[9] for i in info])
        self.rest = np.array([*NEUTRAL_ARM, 0.04, 0.04])

    def forward(self, arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position [3] and rotation [3, 3] for arm joints [7]."""
        self._set(arm)
        state = pb.getLinkState(self.robot, EE_LINK, computeForwardKinematics=True, physicsClientId=self.client)
        return np.array(state[4]), rotation_from_quaternion(state[5])

    def solve(self, position: np.ndarray, rotation: np.ndarray, seed: np.ndarray) -> IKResult:
        """Joint angles putting the end effector at `position` with `rotation`, starting from `seed` [7].

        If the re-solves from `seed` stall more than a millimetre away (a seed far from the target,
        e.g. folded near the base), the search is repeated from the neutral posture.
        """
        best = self._solve_from(position, rotation, seed)
        if best.position_error > 1e-3 and not np.allclose(seed, NEUTRAL_ARM):
            retry = self._solve_from(position, rotation, np.asarray(NEUTRAL_ARM))
            best = retry if _cost(retry) < _cost(best) else best
        return best

    def _solve_from(self, position: np.ndarray, rotation: np.ndarray, seed: np.ndarray) -> IKResult:
        quaternion = quaternion_from_matrix(rotation)
        target = [float(v) for v in position]
        current = np.clip(np.asarray(seed, dtype=np.float64), self.lower[:7], self.upper[:7])
        best: IKResult | None = None
        for solve in range(1, self.max_solves + 1):
            self._set(current)
            extra = {}
            if solve == 1:
                extra = dict(lowerLimits=self.lower.tolist(), upperLimits=self.upper.tolist(),
                             jointRanges=(self.upper - self.lower).tolist(), restPoses=self.rest.tolist())
            answer = pb.calculateInverseKinematics(
                self.robot, EE_LINK, target, quaternion, maxNumIterations=100, residualThreshold=1e-7,
                physicsClientId=self.client, **extra,
            )
            current = np.clip(np.array(answer[:7]), self.lower[:7], self.upper[:7])
            reached, reached_rotation = self.forward(current)
            result = IKResult(current, float(np.linalg.norm(reached - position)),
                              rotation_angle(rotation @ reached_rotation.T), solve)
            if best is None or _cost(result) < _cost(best):
                best = result
            if best.position_error < self.tolerance and best.rotation_error < self.rotation_tolerance:
                break
        return best

    def _set(self, arm: np.ndarray) -> None:
        for joint, value in zip(ARM_JOINTS, arm):
            pb.resetJointState(self.robot, joint, float(value), physicsClientId=self.client)



def _cost(result: IKResult) -> float:
    return result.position_error + ROTATION_WEIGHT * result.rotation_error
