"""Forward and inverse kinematics of the Franka Panda (FER) and FR3, for commanding a stock arm in
joint space (franka_ros2's ``PTPMotion``) with targets in the house's end-effector convention.

Source: Franka's published kinematic parameters ("Robot and interface specifications" of the
Franka Control Interface documentation, frankaemika.github.io/docs/control_parameters.html), the
modified (Craig) Denavit-Hartenberg table that both arms share, and the joint limits published per
arm there. The same numbers sit in franka_description's URDF, whose PyBullet copy the sim loads;
the tests compare this code with PyBullet's own FK of that URDF.

Convention: frame i follows frame i-1 by Rx(alpha_{i-1}) Tx(a_{i-1}) Rz(q_i) Tz(d_i); joint i turns
about z_i. The flange is 0.107 m along z_7. The end effector (what franka_ros2 reports as O_T_EE
and the house's 7-D state measures) is the Franka Hand's TCP: F_T_EE = Rz(-pi/4) Tz(tcp_offset_m),
0.1034 m in Franka's default end-effector configuration. The sim's grasp point sits 0.105 m
beyond the hand, so the sim uses ``tcp_offset_m=0.105``.

Poses are the house's (`embodiments.franka`): xyz (m) and extrinsic xyz Euler angles (rad) of the
end effector in the arm's base frame (link0).

IK is damped least squares on the 6-D pose error (position; rotation vector of R_target R^T),
started from a seed (the measured joints, so the answer is the nearby posture and the motion
small), each step clamped to the joint limits, with joints pressed against a limit taken out of
the step. It either returns joints within the limits whose FK meets the tolerances, or raises
`IKRefusal` (a ValueError) saying why in one line: the target lies beyond the arm's reach, or
needs joints outside their limits, or the search did not converge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .rotations import euler_to_matrix, matrix_to_euler, rotation_vector

JOINTS = 7
# (a_{i-1} m, d_i m, alpha_{i-1} rad) for joints 1..7, Franka's modified DH table.
DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
FLANGE_D = 0.107  # joint 7 -> flange along z_7
HAND_YAW = -math.pi / 4  # the Franka Hand sits turned -45 degrees about the flange's z
HAND_TCP_M = 0.1034  # flange -> TCP of the Franka Hand (Franka's default F_T_EE)
DAMPING_FADE = 0.01  # pose error (m, rad together) below which IK's damping shrinks in proportion
SHOULDER = np.array([0.0, 0.0, DH[0][1]])  # joints 1 and 2 meet here, whatever the posture


@dataclass(frozen=True)
class ArmModel:
    """One arm's published joint limits (the kinematics are the shared DH table)."""

    name: str
    lower: tuple[float, ...]  # rad
    upper: tuple[float, ...]  # rad
    max_velocity: tuple[float, ...]  # rad/s (FR3: the constant part; its limits also depend on position)


PANDA = ArmModel(
    "panda",
    lower=(-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
    upper=(2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973),
    max_velocity=(2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100),
)
FR3 = ArmModel(
    "fr3",
    lower=(-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159),
    upper=(2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159),
    max_velocity=(2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26),
)
MODELS = {model.name: model for model in (PANDA, FR3)}


class IKRefusal(ValueError):
    """No joints for the target: the one-line reason is the message."""


@dataclass(frozen=True)
class IKSettings:
    position_tolerance_m: float = 1e-5  # a solution's FK is this close to the target ...
    rotation_tolerance_rad: float = 1e-4  # ... and this close in rotation
    max_iterations: int = 200
    damping: float = 0.01  # lambda of damped least squares: keeps steps bounded near singularities
    max_step_rad: float = 0.2  # largest joint change per iteration (keeps the linearisation honest)
    limit_margin_rad: float = 0.0  # solutions stay this far inside the published limits

    def __post_init__(self):
        for name in ("position_tolerance_m", "rotation_tolerance_rad", "damping", "max_step_rad"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a positive finite number, got {getattr(self, name)}")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")
        if not 0 <= self.limit_margin_rad < 0.5:
            raise ValueError(f"limit_margin_rad must be 0..0.5, got {self.limit_margin_rad}")


@dataclass(frozen=True)
class IKSolution:
    joints: np.ndarray  # [7] rad, within the limits (less the margin)
    position_error_m: float  # of FK(joints) from the target
    rotation_error_rad: float
    iterations: int


def _link(a: float, d: float, alpha: float, q: float) -> np.ndarray:
    """Rx(alpha) Tx(a) Rz(q) Tz(d) as a 4x4 matrix."""
    ca, sa, cq, sq = math.cos(alpha), math.sin(alpha), math.cos(q), math.sin(q)
    return np.array([
        [cq, -sq, 0.0, a],
        [sq * ca, cq * ca, -sa, -d * sa],
        [sq * sa, cq * sa, ca, d * ca],
        [0.0, 0.0, 0.0, 1.0],
    ])


def pose_vector(transform: np.ndarray) -> np.ndarray:
    """A 4x4 transform -> [6] xyz + extrinsic xyz Euler."""
    return np.concatenate([transform[:3, 3], matrix_to_euler(transform[:3, :3])])


def pose_matrix(pose) -> np.ndarray:
    """[6] xyz + extrinsic xyz Euler -> a 4x4 transform."""
    pose = np.asarray(pose, dtype=np.float64)
    transform = np.eye(4)
    transform[:3, :3], transform[:3, 3] = euler_to_matrix(pose[3:6]), pose[:3]
    return transform


class FrankaKinematics:
    """FK, Jacobian and IK of one arm model with a tool `tcp_offset_m` beyond the flange (Franka Hand)."""

    def __init__(self, model: ArmModel = FR3, tcp_offset_m: float = HAND_TCP_M, settings: IKSettings = IKSettings()):
        if not 0 <= tcp_offset_m < 1.0:
            raise ValueError(f"tcp_offset_m must be 0..1 m, got {tcp_offset_m}")
        self.model, self.tcp_offset_m, self.settings = model, float(tcp_offset_m), settings
        self.lower = np.asarray(model.lower) + settings.limit_margin_rad
        self.upper = np.asarray(model.upper) - settings.limit_margin_rad
        self.flange_to_ee = _link(0.0, self.tcp_offset_m, 0.0, HAND_YAW)
        # Beyond this distance from the shoulder nothing is reachable: the chain's three rigid
        # pieces (shoulder -> elbow, elbow -> wrist, wrist -> TCP) laid end to end.
        self.reach_m = (math.hypot(DH[2][1], DH[3][0]) + math.hypot(DH[4][1], DH[4][0])
                        + math.hypot(DH[6][0], FLANGE_D + self.tcp_offset_m))

    # --- forward ---------------------------------------------------------------------------------
    def frames(self, joints) -> np.ndarray:
        """[9, 4, 4]: frames 1..7 (joint i turns about frame i's z), the flange, the end effector."""
        q = self._joints(joints, "joints")
        out = np.empty((JOINTS + 2, 4, 4))
        transform = np.eye(4)
        for i, (a, d, alpha) in enumerate(DH):
            transform = transform @ _link(a, d, alpha, q[i])
            out[i] = transform
        out[JOINTS] = transform @ _link(0.0, FLANGE_D, 0.0, 0.0)
        out[JOINTS + 1] = out[JOINTS] @ self.flange_to_ee
        return out

    def forward(self, joints) -> np.ndarray:
        """The end effector's 4x4 pose in the base frame."""
        return self.frames(joints)[-1]

    def pose(self, joints) -> np.ndarray:
        """The end effector's [6] pose (xyz + extrinsic xyz Euler)."""
        return pose_vector(self.forward(joints))

    def jacobian(self, joints) -> np.ndarray:
        """[6, 7] geometric Jacobian of the end effector: rows vx, vy, vz, wx, wy, wz (base frame)."""
        frames = self.frames(joints)
        tip = frames[-1][:3, 3]
        axes, origins = frames[:JOINTS, :3, 2], frames[:JOINTS, :3, 3]
        return np.concatenate([np.cross(axes, tip - origins).T, axes.T])

    # --- inverse ---------------------------------------------------------------------------------
    def within_limits(self, joints) -> bool:
        q = self._joints(joints, "joints")
        return bool(np.all(q >= self.lower - 1e-12) and np.all(q <= self.upper + 1e-12))

    def solve(self, target, seed) -> IKSolution:
        """Joints within the limits that put the end effector at `target` ([6] pose), searched from
        `seed` ([7], clipped into the limits first); `IKRefusal` when there are none to be found."""
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (6,) or not np.all(np.isfinite(target)):
            raise ValueError(f"an IK target needs 6 finite numbers (xyz, Euler), got shape {target.shape}")
        seed = self._joints(seed, "seed")
        goal = pose_matrix(target)
        distance = float(np.linalg.norm(goal[:3, 3] - SHOULDER))
        if distance > self.reach_m:
            raise IKRefusal(f"unreachable: the target is {distance:.3f} m from the shoulder, the {self.model.name} "
                            f"reaches at most {self.reach_m:.3f} m")
        solution = self._search(goal, np.clip(seed, self.lower, self.upper), limited=True)
        if self._converged(solution):
            return solution
        free = self._search(goal, seed, limited=False)
        if self._converged(free) and self.within_limits(free.joints):
            return free  # a solution the clamped search missed (it stalled on a limit on the way)
        if self._converged(free):
            outside = [i + 1 for i in range(JOINTS) if not self.lower[i] <= free.joints[i] <= self.upper[i]]
            raise IKRefusal(f"outside the joint limits: the target needs joint(s) {', '.join(map(str, outside))} of the "
                            f"{self.model.name} beyond their limits (nearest within them: "
                            f"{solution.position_error_m:.4f} m, {solution.rotation_error_rad:.4f} rad off)")
        raise IKRefusal(f"did not converge: {solution.position_error_m:.4f} m, {solution.rotation_error_rad:.4f} rad from "
                        f"the target after {solution.iterations} iterations")

    def _search(self, goal: np.ndarray, q: np.ndarray, limited: bool) -> IKSolution:
        settings = self.settings
        q = q.copy()
        for iteration in range(settings.max_iterations + 1):
            frames = self.frames(q)
            ee = frames[-1]
            error = np.concatenate([goal[:3, 3] - ee[:3, 3], rotation_vector(goal[:3, :3] @ ee[:3, :3].T)])
            position_error, rotation_error = float(np.linalg.norm(error[:3])), float(np.linalg.norm(error[3:]))
            if (iteration == settings.max_iterations or (position_error <= settings.position_tolerance_m
                                                         and rotation_error <= settings.rotation_tolerance_rad)):
                break
            axes, origins = frames[:JOINTS, :3, 2], frames[:JOINTS, :3, 3]
            jacobian = np.concatenate([np.cross(axes, ee[:3, 3] - origins).T, axes.T])
            # Damping fades with the error: bounded steps far away, Gauss-Newton's fast finish close by.
            fade = min(1.0, float(np.linalg.norm(error)) / DAMPING_FADE)
            damping = ((settings.damping * fade) ** 2 + 1e-12) * np.eye(6)
            step = self._step(jacobian, error, damping)
            if limited:
                # A joint at its limit that the step would push further is taken out, and the rest re-solved.
                pressed = ((q <= self.lower) & (step < 0)) | ((q >= self.upper) & (step > 0))
                if pressed.any():
                    step = self._step(jacobian * ~pressed, error, damping)
            largest = float(np.abs(step).max())
            if largest > settings.max_step_rad:
                step *= settings.max_step_rad / largest
            q = q + step
            if limited:
                q = np.clip(q, self.lower, self.upper)
        return IKSolution(q, position_error, rotation_error, iteration)

    @staticmethod
    def _step(jacobian: np.ndarray, error: np.ndarray, damping: np.ndarray) -> np.ndarray:
        return jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + damping, error)

    def _converged(self, solution: IKSolution) -> bool:
        return (solution.position_error_m <= self.settings.position_tolerance_m
                and solution.rotation_error_rad <= self.settings.rotation_tolerance_rad)

    @staticmethod
    def _joints(joints, what: str) -> np.ndarray:
        q = np.asarray(joints, dtype=np.float64)
        if q.shape != (JOINTS,) or not np.all(np.isfinite(q)):
            raise ValueError(f"{what} must be {JOINTS} finite joint angles, got shape {q.shape}")
        return q
