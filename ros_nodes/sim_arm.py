"""The PyBullet Franka driven like a robot behind a controller: absolute targets, one row at a time.

`FrankaEnv.apply` takes state deltas and blocks for a whole action. A ROS robot instead holds
whatever target it was last given while time passes and topics flow, so `SimArm` builds the sim
with one row per `apply` (`rows_per_action=1`, no settle rows) and, every row, applies the delta
from the *measured* state to the absolute target in force. Within the sim's per-action limits that
delta lands on the same target every row (as one blocking `apply` holds it); beyond them the sim
clips it and the arm closes in row by row. An absolute target also keeps a still arm from
creeping: re-applying zero deltas would re-aim at the measured pose each row and sag with gravity.

The gripper: the sim acts on an opening delta from the measurement but on a closing delta from the
commanded gap (so a grasp keeps squeezing). `gripper_step` inverts that rule, so the sim's gripper
command becomes exactly the goal.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from vjepa_wm.embodiments import rotations
from vjepa_wm.embodiments.franka import CONTROL_HZ, relative_action
from vjepa_wm.sim.franka.config import SimConfig
from vjepa_wm.sim.franka.env import FrankaEnv
from vjepa_wm.sim.franka.objects import gripper_to_opening

ROW_S = 1.0 / CONTROL_HZ
LOWER_FIRST = 1e-9  # a token opening step: the sim then commands the measured gap


def gripper_step(goal: float, measured: float, commanded: float) -> float:
    """The gripper delta after which the sim commands `goal`, given the measured gripper state and
    the one in force. When the goal lies between the measurement and a tighter command (opening a
    little from a squeeze) one row cannot do it: a tiny opening step first brings the command down
    to the measurement, and the next row closes onto the goal."""
    if goal < measured:
        return goal - measured
    if goal >= commanded:
        return goal - max(commanded, measured)
    return -LOWER_FIRST


@dataclass(frozen=True)
class Snapshot:
    """The simulated robot after one row."""

    row: int  # rows since the arm was built
    state: np.ndarray  # [7] the house's Franka state
    joints: np.ndarray  # [7] rad
    velocities: np.ndarray  # [7] rad/s over the last row
    width: float  # measured finger distance (m)
    target: np.ndarray  # [7] the target in force: pose and gripper goal


class SimArm:
    """A `FrankaEnv` (task `task`, reset with `seed`) that holds absolute targets row by row."""

    def __init__(self, config: SimConfig, task: str, seed: int):
        self.env = FrankaEnv(replace(config, rows_per_action=1, max_settle_rows=0), task=task)
        _, info = self.env.reset(seed=seed)
        self.goal_image = info["goal_image"]  # the task's goal view for this seed
        self.row = 0
        state = self.env.state()
        self.target = state.copy()
        self._commanded_gripper = state[6]
        self._joints = self.env.scene.arm_joints()
        self.snapshot = Snapshot(0, state, self._joints, np.zeros(7), self.width(), self.target.copy())

    def width(self) -> float:
        return self.env.scene.opening()

    def aim(self, pose_state: np.ndarray) -> None:
        """Hold the pose part of the 7-D `pose_state` from now on (its gripper value is ignored)."""
        self.target[:6] = pose_state[:6]

    def aim_joints(self, joints: np.ndarray) -> np.ndarray:
        """Aim at the end-effector pose of `joints` [7] and return it as a 7-D state (the sim has
        no joint-space command; its IK, seeded from the current joints, picks the posture)."""
        position, rotation = self.env.ik.forward(np.asarray(joints, dtype=np.float64))
        pose_state = np.concatenate([position, rotations.matrix_to_euler(rotation), [self.target[6]]])
        self.aim(pose_state)
        return pose_state

    def grip(self, gripper: float) -> None:
        """Make `gripper` (0 open .. 1 closed) the gripper goal; 1 squeezes whatever is between the fingers."""
        self.target[6] = float(np.clip(gripper, 0.0, 1.0))

    def stop(self) -> None:
        """Hold where the arm is now (the gripper keeps its goal)."""
        self.target[:6] = self.env.state()[:6]

    def step(self) -> Snapshot:
        """Advance one row (1/15 s of simulated time) toward the target."""
        before = self.env.state()
        delta = relative_action(before, self.target)
        delta[6] = gripper_step(self.target[6], before[6], self._commanded_gripper)
        self.env.apply(delta)
        self._commanded_gripper = before[6] + self.env.last_report.applied[6]
        self.row += 1
        joints = self.env.scene.arm_joints()
        velocities, self._joints = (joints - self._joints) / ROW_S, joints
        self.snapshot = Snapshot(self.row, self.env.state(), joints, velocities, self.width(), self.target.copy())
        return self.snapshot

    def pose_error(self, pose_state: np.ndarray) -> tuple[float, float]:
        """(m, rad) between the measured end-effector pose and the pose part of `pose_state`."""
        state = self.snapshot.state
        rotation = rotations.euler_to_matrix(pose_state[3:6]) @ rotations.euler_to_matrix(state[3:6]).T
        return float(np.linalg.norm(pose_state[:3] - state[:3])), rotations.rotation_angle(rotation)

    def target_width(self) -> float:
        return gripper_to_opening(self.target[6])

    def image(self) -> np.ndarray:
        """The planning (exterior) camera's RGB image of the current row."""
        return self.env.render()

    def close(self) -> None:
        self.env.close()
