"""The PyBullet world: a table, a Franka Panda on it, a cup and a box, in one DIRECT client.

`Scene` owns the physics client and knows bodies, joints and links; it has no notion of actions,
cameras or tasks. Joint and link indices are those of `pybullet_data`'s panda.urdf.
"""
from __future__ import annotations

import numpy as np
import pybullet as pb

from vjepa_wm.sim.franka.assets import panda_urdf
from vjepa_wm.sim.franka.client import OwnsClient
from vjepa_wm.sim.franka.config import SimConfig
from vjepa_wm.sim.franka.objects import BOX, CUP, MAX_OPENING

ARM_JOINTS = (0, 1, 2, 3, 4, 5, 6)
FINGER_JOINTS = (9, 10)
MOVABLE_JOINTS = ARM_JOINTS + FINGER_JOINTS  # the 9 joints IK's null-space lists must cover
HAND_LINK = 8
EE_LINK = 11  # panda_grasptarget: between the fingertips, 0.105 m beyond the hand
NEUTRAL_ARM = (0.0, 0.41, 0.0, -1.85, 0.0, 2.26, 0.79)  # gripper pointing down, ~0.2 m above the table
ARM_FORCES = (87.0, 87.0, 87.0, 87.0, 12.0, 120.0, 120.0)
TABLE_RGBA = (0.72, 0.58, 0.42, 1.0)
FLOOR_RGBA = (0.35, 0.35, 0.38, 1.0)
WALL_RGBA = (0.78, 0.80, 0.84, 1.0)
ROBOT_LIGHT_RGBA = (0.92, 0.92, 0.92, 1.0)
ROBOT_DARK_RGBA = (0.22, 0.22, 0.25, 1.0)


def rotation_from_quaternion(quaternion) -> np.ndarray:
    return np.asarray(pb.getMatrixFromQuaternion(quaternion), dtype=np.float64).reshape(3, 3)


class Scene(OwnsClient):
    """One PyBullet DIRECT client holding the tabletop; `close()` (or garbage collection) disconnects."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.client = pb.connect(pb.DIRECT)
        if self.client < 0:
            raise RuntimeError("PyBullet could not open a DIRECT client")
        self.build()

    def build(self) -> None:
        """(Re)create the world from scratch.

        Rebuilding is how episodes start: restoreState does not wipe the solver's contact caches, so a
        restored world can diverge from a fresh one after the first contact; a rebuilt one cannot.
        """
        c, config = self.client, self.config
        pb.resetSimulation(physicsClientId=c)
        # Same seed + same calls -> same result: PyBullet orders overlapping pairs deterministically only on request.
        pb.setPhysicsEngineParameter(fixedTimeStep=1.0 / config.physics_hz, deterministicOverlappingPairs=1, physicsClientId=c)
        pb.setGravity(0, 0, -9.81, physicsClientId=c)
        self._box_body((0.35, 0.0, -0.025), (0.65, 0.55, 0.025), TABLE_RGBA)  # top at z = 0
        self._box_body((0.35, 0.0, -0.80), (3.0, 3.0, 0.05), FLOOR_RGBA)
        # Two walls behind the workspace (as seen from the exterior camera), instead of an empty sky.
        self._box_body((-0.60, 0.0, 0.2), (0.02, 2.0, 1.0), WALL_RGBA)
        self._box_body((0.35, 1.0, 0.2), (2.0, 0.02, 1.0), WALL_RGBA)
        self.robot = pb.loadURDF(panda_urdf(config.low_poly), useFixedBase=True, flags=pb.URDF_USE_INERTIA_FROM_FILE, physicsClientId=c)
        if config.low_poly:
            for link in range(-1, pb.getNumJoints(self.robot, physicsClientId=c)):
                dark = link in (HAND_LINK, *FINGER_JOINTS)
                pb.changeVisualShape(self.robot, link, rgbaColor=ROBOT_DARK_RGBA if dark else ROBOT_LIGHT_RGBA, physicsClientId=c)
        for joint in FINGER_JOINTS:
            pb.changeDynamics(self.robot, joint, lateralFriction=1.5, spinningFriction=0.002, physicsClientId=c)
        self.objects = {"cup": self._cup(), "box": self._box()}
        self.set_arm(np.asarray(NEUTRAL_ARM), 0.0)

    # -- building ---------------------------------------------------------------------------------
    def _box_body(self, position, half_extents, rgba, mass: float = 0.0) -> int:
        c = self.client
        collision = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half_extents, physicsClientId=c)
        visual = pb.createVisualShape(pb.GEOM_BOX, halfExtents=half_extents, rgbaColor=rgba, physicsClientId=c)
        return pb.createMultiBody(mass, collision, visual, basePosition=position, physicsClientId=c)

    def _cup(self) -> int:
        """A 6 cm wide, 9 cm tall cylinder with a dark rim disc on top and a handle along its local +x."""
        c, half_height, radius = self.client, CUP.rest_height, CUP.width / 2
        handle_half = (0.012, 0.005, 0.022)
        handle_at = (radius + handle_half[0] - 0.002, 0.0, 0.005)
        collision = pb.createCollisionShapeArray(
            [pb.GEOM_CYLINDER, pb.GEOM_BOX],
            radii=[radius, 0.0], lengths=[2 * half_height, 0.0], halfExtents=[[0, 0, 0], list(handle_half)],
            collisionFramePositions=[[0, 0, 0], list(handle_at)], physicsClientId=c,
        )
        visual = pb.createVisualShapeArray(
            [pb.GEOM_CYLINDER, pb.GEOM_CYLINDER, pb.GEOM_BOX],
            radii=[radius, radius - 0.005, 0.0], lengths=[2 * half_height, 0.002, 0.0],
            halfExtents=[[0, 0, 0], [0, 0, 0], list(handle_half)],
            rgbaColors=[list(CUP.rgba), [0.25, 0.04, 0.03, 1.0], list(CUP.rgba)],
            visualFramePositions=[[0, 0, 0], [0, 0, half_height + 0.0005], list(handle_at)], physicsClientId=c,
        )
        body = pb.createMultiBody(0.12, collision, visual, basePosition=(0.5, 0.2, half_height), physicsClientId=c)
        pb.changeDynamics(body, -1, lateralFriction=1.0, spinningFriction=0.002, physicsClientId=c)
        return body

    def _box(self) -> int:
        half = BOX.width / 2
        body = self._box_body((0.5, -0.2, BOX.rest_height), (half, half, BOX.rest_height), BOX.rgba, mass=0.1)
        pb.changeDynamics(body, -1, lateralFriction=1.0, spinningFriction=0.002, physicsClientId=self.client)
        return body

    # -- robot ----------------------------------------------------------------------------------------
    def arm_joints(self) -> np.ndarray:
        states = pb.getJointStates(self.robot, ARM_JOINTS, physicsClientId=self.client)
        return np.array([s[0] for s in states])

    def joint_speed(self) -> float:
        """Largest |velocity| over the arm joints (rad/s)."""
        states = pb.getJointStates(self.robot, ARM_JOINTS, physicsClientId=self.client)
        return float(max(abs(s[1]) for s in states))

    def opening(self) -> float:
        """Measured finger gap (m)."""
        states = pb.getJointStates(self.robot, FINGER_JOINTS, physicsClientId=self.client)
        return float(states[0][0] + states[1][0])

    def set_arm(self, arm: np.ndarray, opening: float, hold: bool = True) -> None:
        """Teleport the arm and fingers (zero velocity); `hold` also makes that the controller target.

        Goal renders teleport with hold=False: the targets of the running episode stay untouched.
        """
        half = float(np.clip(opening, 0.0, MAX_OPENING)) / 2
        for joint, value in zip(MOVABLE_JOINTS, (*arm, half, half)):
            pb.resetJointState(self.robot, joint, float(value), 0.0, physicsClientId=self.client)
        if hold:
            self.command(arm, opening)

    def command(self, arm: np.ndarray, opening: float) -> None:
        """Position-control targets for the arm joints and the finger gap."""
        c, half = self.client, float(np.clip(opening, 0.0, MAX_OPENING)) / 2
        pb.setJointMotorControlArray(
            self.robot, ARM_JOINTS, pb.POSITION_CONTROL, targetPositions=[float(v) for v in arm], forces=ARM_FORCES, physicsClientId=c
        )
        force = self.config.gripper_force
        pb.setJointMotorControlArray(
            self.robot, FINGER_JOINTS, pb.POSITION_CONTROL, targetPositions=[half, half], forces=[force, force], physicsClientId=c
        )

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector (grasp point) position [3] and rotation matrix [3, 3]."""
        state = pb.getLinkState(self.robot, EE_LINK, computeForwardKinematics=True, physicsClientId=self.client)
        return np.array(state[4]), rotation_from_quaternion(state[5])

    def hand_pose(self) -> tuple[np.ndarray, np.ndarray]:
        state = pb.getLinkState(self.robot, HAND_LINK, computeForwardKinematics=True, physicsClientId=self.client)
        return np.array(state[4]), rotation_from_quaternion(state[5])

    # -- objects --------------------------------------------------------------------------------------
    def object_position(self, name: str) -> np.ndarray:
        return np.array(pb.getBasePositionAndOrientation(self.objects[name], physicsClientId=self.client)[0])

    def object_yaw(self, name: str) -> float:
        quaternion = pb.getBasePositionAndOrientation(self.objects[name], physicsClientId=self.client)[1]
        return float(pb.getEulerFromQuaternion(quaternion)[2])

    def place_object(self, name: str, position, yaw: float) -> None:
        """Teleport an object (upright, at rest) to `position` with heading `yaw`."""
        c, body = self.client, self.objects[name]
        quaternion = pb.getQuaternionFromEuler((0.0, 0.0, float(yaw)))
        pb.resetBasePositionAndOrientation(body, [float(v) for v in position], quaternion, physicsClientId=c)
        pb.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0), physicsClientId=c)

    # -- time and state -------------------------------------------------------------------------------
    def step(self, substeps: int) -> None:
        for _ in range(substeps):
            pb.stepSimulation(physicsClientId=self.client)

    def save(self) -> int:
        return pb.saveState(physicsClientId=self.client)

    def restore(self, state_id: int, remove: bool = False) -> None:
        pb.restoreState(stateId=state_id, physicsClientId=self.client)
        if remove:
            pb.removeState(state_id, physicsClientId=self.client)

