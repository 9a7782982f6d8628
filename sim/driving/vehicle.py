"""The car: `pybullet_data`'s racecar, scaled to an ATV, driven by throttle and steer.

Joint and link indices are those of ``racecar/racecar.urdf``. Its base link sits on the ground
under the middle of the rear axle, the reference point of the bicycle model, so the base pose
is the car's pose (pure pursuit steers that point). Only the wheels (and two small sensor boxes)
have collision shapes; the chassis mass and inertia are set here, the URDF's are a toy's. The
car is drawn invisible: the roof camera never sees it, and TinyRenderer would still spend more
time on its 8k triangles than on a small frame of the world.

Steering is Ackermann: for a centre-line angle delta the path curvature is k = tan(delta) / L
(L the wheelbase) and each front wheel is turned to be tangent to its own circle about the
common centre. Each wheel's speed set-point is the car's speed times its distance to that
centre over the rear axle's (an electronic differential), so turning does not scrub the tyres.
"""
from __future__ import annotations

import math

import numpy as np
import pybullet as pb
import pybullet_data

from .config import VehicleConfig

URDF = "racecar/racecar.urdf"
WHEELS = (2, 3, 5, 7)  # left rear, right rear, left front, right front
STEERING = (4, 6)  # left, right front hinges (positive turns left)
BODY_LINK = 1  # chassis_inertia, where the chassis mass sits
# Unscaled racecar geometry (m): wheelbase, track, wheel radius; wheel positions in the base frame.
WHEELBASE, TRACK, WHEEL_RADIUS = 0.325, 0.2, 0.05
WHEEL_XY = ((0.0, 0.1), (0.0, -0.1), (0.325, 0.1), (0.325, -0.1))
BODY_BOX = (0.55, 0.3, 0.2)  # unscaled length, width, height (m) of the box the chassis inertia is taken from
STEER_FORCE = 1e5  # N m: the steering hinges follow their targets stiffly (the rate limit is in `command`)


class Vehicle:
    """One car in a PyBullet client; `command` sets throttle and steer, the other methods read its state."""

    def __init__(self, client: int, config: VehicleConfig, position, heading: float):
        self.client, self.config = client, config
        s = config.scale
        self.wheelbase, self.track, self.wheel_radius = WHEELBASE * s, TRACK * s, WHEEL_RADIUS * s
        self.body = pb.loadURDF(str(pybullet_data.getDataPath() + "/" + URDF), [float(v) for v in position],
                                pb.getQuaternionFromEuler((0.0, 0.0, float(heading))), globalScaling=s, physicsClientId=client)
        length, width, height = (v * s for v in BODY_BOX)
        m = config.body_mass
        inertia = (m * (width**2 + height**2) / 12, m * (length**2 + height**2) / 12, m * (length**2 + width**2) / 12)
        pb.changeDynamics(self.body, BODY_LINK, mass=m, localInertiaDiagonal=inertia, physicsClientId=client)
        for wheel in WHEELS:
            pb.changeDynamics(self.body, wheel, mass=config.wheel_mass, lateralFriction=config.friction, physicsClientId=client)
        for joint in range(pb.getNumJoints(self.body, physicsClientId=client)):  # no default motors
            pb.setJointMotorControl2(self.body, joint, pb.VELOCITY_CONTROL, targetVelocity=0.0, force=0.0, physicsClientId=client)
        for link in range(-1, pb.getNumJoints(self.body, physicsClientId=client)):
            pb.changeVisualShape(self.body, link, rgbaColor=(1, 1, 1, 0), physicsClientId=client)
        self.throttle, self.steer = 0.0, 0.0  # the command in force
        self.steer_angle = 0.0  # rad, the centre-line angle reached so far (rate-limited)

    def command(self, throttle: float, steer: float, dt: float) -> None:
        """Hold (throttle, steer), both clipped to [-1, 1], for the next `dt` seconds."""
        self.throttle, self.steer = float(np.clip(throttle, -1.0, 1.0)), float(np.clip(steer, -1.0, 1.0))
        cfg = self.config
        step = cfg.steer_rate * dt
        self.steer_angle += float(np.clip(self.steer * cfg.max_steer - self.steer_angle, -step, step))
        curvature = math.tan(self.steer_angle) / self.wheelbase
        s, half = cfg.scale, self.track / 2
        left = math.atan2(self.wheelbase * curvature, 1 - half * curvature)
        right = math.atan2(self.wheelbase * curvature, 1 + half * curvature)
        pb.setJointMotorControlArray(self.body, STEERING, pb.POSITION_CONTROL, targetPositions=[left, right],
                                     forces=[STEER_FORCE] * 2, physicsClientId=self.client)
        speed = self.throttle * cfg.max_speed / self.wheel_radius  # rad/s of the rear axle's centre
        targets = [speed * math.hypot(curvature * x * s, 1 - curvature * y * s) for x, y in WHEEL_XY]
        pb.setJointMotorControlArray(self.body, WHEELS, pb.VELOCITY_CONTROL, targetVelocities=targets,
                                     forces=[cfg.wheel_torque] * 4, physicsClientId=self.client)

    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Base position [3] (m) and orientation quaternion [4] (x, y, z, w)."""
        position, quaternion = pb.getBasePositionAndOrientation(self.body, physicsClientId=self.client)
        return np.asarray(position, dtype=np.float64), np.asarray(quaternion, dtype=np.float64)

    def rotation(self) -> np.ndarray:
        """[3, 3] base orientation (columns: forward, left, up in the world frame)."""
        return np.asarray(pb.getMatrixFromQuaternion(self.pose()[1]), dtype=np.float64).reshape(3, 3)

    def planar_pose(self) -> np.ndarray:
        """[3]: x, y (m) and heading (rad, atan2's range): where the chassis points, projected on the ground."""
        position, _ = self.pose()
        forward = self.rotation()[:, 0]
        return np.array([position[0], position[1], math.atan2(forward[1], forward[0])])

    def velocity(self) -> tuple[np.ndarray, np.ndarray]:
        """World-frame linear (m/s) and angular (rad/s) velocity of the base, [3] each."""
        linear, angular = pb.getBaseVelocity(self.body, physicsClientId=self.client)
        return np.asarray(linear, dtype=np.float64), np.asarray(angular, dtype=np.float64)

    def forward_speed(self) -> float:
        """m/s along the heading (negative when reversing)."""
        return float(self.velocity()[0] @ self.rotation()[:, 0])
