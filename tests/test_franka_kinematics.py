"""Franka kinematics (`embodiments.franka_kinematics`) against an independent implementation:
PyBullet's forward kinematics and Jacobian of the Panda URDF the sim loads (franka_description's
model, the same one Franka publishes), and IK checked by FK round trips."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pybullet as pb
import pytest

from vjepa_wm.embodiments import rotations
from vjepa_wm.embodiments.franka_kinematics import (
    FR3,
    HAND_TCP_M,
    HAND_YAW,
    PANDA,
    ArmModel,
    FrankaKinematics,
    IKRefusal,
    IKSettings,
)
from vjepa_wm.sim.franka.assets import panda_urdf
from vjepa_wm.sim.franka.scene import EE_LINK, HAND_LINK, NEUTRAL_ARM

SIM_TCP_M = 0.105  # panda_grasptarget_hand: the sim's end effector, 0.105 m beyond the hand
FLANGE_LINK = 7  # panda_link8


@pytest.fixture(scope="module")
def bullet():
    client = pb.connect(pb.DIRECT)
    robot = pb.loadURDF(panda_urdf(low_poly=False), useFixedBase=True, physicsClientId=client)
    yield client, robot
    pb.disconnect(client)


def bullet_frame(bullet, joints, link: int) -> np.ndarray:
    client, robot = bullet
    for joint, value in enumerate(joints):
        pb.resetJointState(robot, joint, float(value), physicsClientId=client)
    state = pb.getLinkState(robot, link, computeForwardKinematics=True, physicsClientId=client)
    frame = np.eye(4)
    frame[:3, :3] = np.asarray(pb.getMatrixFromQuaternion(state[5])).reshape(3, 3)
    frame[:3, 3] = state[4]  # the URDF link frame, not the centre of mass
    return frame


def random_joints(rng, model: ArmModel, count: int, inset: float = 0.0) -> np.ndarray:
    return rng.uniform(np.asarray(model.lower) + inset, np.asarray(model.upper) - inset, (count, 7))


def assert_frames_close(mine: np.ndarray, theirs: np.ndarray, what: str) -> None:
    position = np.linalg.norm(mine[:3, 3] - theirs[:3, 3])
    angle = rotations.rotation_angle(mine[:3, :3] @ theirs[:3, :3].T)
    assert position < 1e-6 and angle < 1e-6, (what, position, angle)


def test_fk_matches_pybullet_at_every_joint_the_flange_the_hand_and_the_grasp_point(bullet):
    rng = np.random.default_rng(0)
    kinematics = FrankaKinematics(PANDA, tcp_offset_m=SIM_TCP_M)
    hand_turn = np.eye(4)
    hand_turn[:3, :3] = rotations.euler_to_matrix([0.0, 0.0, HAND_YAW])
    for joints in random_joints(rng, PANDA, 40):
        frames = kinematics.frames(joints)
        for link in range(7):  # PyBullet's link i is panda_link(i+1), DH frame i+1
            assert_frames_close(frames[link], bullet_frame(bullet, joints, link), f"link {link + 1}")
        assert_frames_close(frames[7], bullet_frame(bullet, joints, FLANGE_LINK), "flange (panda_link8)")
        assert_frames_close(frames[7] @ hand_turn, bullet_frame(bullet, joints, HAND_LINK), "panda_hand")
        assert_frames_close(frames[8], bullet_frame(bullet, joints, EE_LINK), "grasp target")
        assert_frames_close(kinematics.forward(joints), frames[8], "forward")


def test_the_end_effector_pose_is_the_house_convention_and_the_tcp_offset_moves_it_along_the_tool_axis():
    joints = np.asarray(NEUTRAL_ARM)
    sim, hand = FrankaKinematics(PANDA, SIM_TCP_M), FrankaKinematics(PANDA)
    pose, frame = sim.pose(joints), sim.forward(joints)
    np.testing.assert_allclose(rotations.euler_to_matrix(pose[3:]), frame[:3, :3], atol=1e-12)
    np.testing.assert_allclose(pose[:3], frame[:3, 3])
    shift = sim.forward(joints)[:3, 3] - hand.forward(joints)[:3, 3]
    np.testing.assert_allclose(shift, (SIM_TCP_M - HAND_TCP_M) * frame[:3, 2], atol=1e-12)
    assert frame[2, 2] < -0.99  # the neutral posture points the gripper down


def test_jacobian_matches_pybullets(bullet):
    client, robot = bullet
    rng = np.random.default_rng(1)
    kinematics = FrankaKinematics(PANDA, tcp_offset_m=SIM_TCP_M)
    for joints in random_joints(rng, PANDA, 10):
        bullet_frame(bullet, joints, EE_LINK)
        positions = [*map(float, joints), 0.0, 0.0]  # every movable joint: 7 arm + 2 fingers
        linear, angular = pb.calculateJacobian(robot, EE_LINK, [0.0, 0.0, 0.0], positions, [0.0] * 9, [0.0] * 9,
                                               physicsClientId=client)
        theirs = np.concatenate([np.asarray(linear)[:, :7], np.asarray(angular)[:, :7]])
        np.testing.assert_allclose(kinematics.jacobian(joints), theirs, atol=1e-6)


def test_published_panda_limits_are_the_urdfs_soft_limits():
    """franka_description puts Franka's published limits in safety_controller; the hard URDF limits are wider."""
    root = ET.parse(panda_urdf(low_poly=False)).getroot()
    for i in range(7):
        joint = root.find(f"joint[@name='panda_joint{i + 1}']")
        soft = joint.find("safety_controller").attrib
        assert float(soft["soft_lower_limit"]) == PANDA.lower[i] and float(soft["soft_upper_limit"]) == PANDA.upper[i]
        assert float(joint.find("limit").attrib["velocity"]) == PANDA.max_velocity[i]
    assert all(low < high for low, high in zip(FR3.lower, FR3.upper))


@pytest.mark.parametrize("model", [PANDA, FR3], ids=lambda m: m.name)
def test_ik_round_trips_from_nearby_seeds(model):
    rng = np.random.default_rng(2)
    kinematics = FrankaKinematics(model)
    for joints in random_joints(rng, model, 60, inset=0.15):
        target = kinematics.pose(joints)
        seed = joints + rng.normal(0.0, 0.1, 7)
        solution = kinematics.solve(target, seed)
        reached = kinematics.forward(solution.joints)
        wanted = np.eye(4)
        wanted[:3, :3], wanted[:3, 3] = rotations.euler_to_matrix(target[3:]), target[:3]
        assert np.linalg.norm(reached[:3, 3] - wanted[:3, 3]) < 1e-4
        assert rotations.rotation_angle(reached[:3, :3] @ wanted[:3, :3].T) < 1e-3
        assert kinematics.within_limits(solution.joints)
        assert solution.position_error_m <= kinematics.settings.position_tolerance_m


def test_a_5_cm_step_from_the_measured_joints_is_a_small_joint_motion():
    kinematics = FrankaKinematics(FR3, tcp_offset_m=SIM_TCP_M)
    start = np.asarray(NEUTRAL_ARM)
    for axis in range(3):
        target = kinematics.pose(start)
        target[axis] += 0.05
        solution = kinematics.solve(target, start)
        np.testing.assert_allclose(kinematics.pose(solution.joints)[:3], target[:3], atol=1e-5)
        assert np.abs(solution.joints - start).max() < 0.3  # the nearby posture, no flip


def test_a_measured_seed_just_past_a_limit_is_brought_inside_and_the_answer_stays_inside():
    kinematics = FrankaKinematics(FR3)
    joints = np.asarray(NEUTRAL_ARM)
    joints[0] = FR3.upper[0] - 0.001  # a posture at the edge of joint 1's range ...
    seed = joints.copy()
    seed[0] = FR3.upper[0] + 0.004  # ... measured a little beyond it
    target = kinematics.pose(joints)
    solution = kinematics.solve(target, seed)
    assert kinematics.within_limits(solution.joints)
    np.testing.assert_allclose(kinematics.pose(solution.joints)[:3], target[:3], atol=1e-4)


def test_unreachable_targets_are_refused_with_a_reason():
    kinematics = FrankaKinematics(FR3)
    seed = np.asarray(NEUTRAL_ARM)
    far = kinematics.pose(seed)
    far[:3] = (1.5, 0.0, 0.4)
    with pytest.raises(IKRefusal, match=r"^unreachable: the target is 1\.5\d+ m from the shoulder"):
        kinematics.solve(far, seed)
    # Within +-0.01 rad of the seed the end effector moves at most 7 * 0.01 rad * 0.95 m < 7 cm; 10 cm
    # up is beyond that, though the arm without those limits gets there.
    narrow = ArmModel("narrow", tuple(seed - 0.01), tuple(seed + 0.01), FR3.max_velocity)
    boxed = FrankaKinematics(narrow)
    target = boxed.pose(seed)
    target[2] += 0.1
    with pytest.raises(IKRefusal, match=r"^outside the joint limits: the target needs joint\(s\) [1-7]"):
        boxed.solve(target, seed)
    hurried = FrankaKinematics(FR3, settings=IKSettings(max_iterations=1))
    target = kinematics.pose(seed)
    target[2] += 0.1
    with pytest.raises(IKRefusal, match=r"^did not converge: .* after 1 iterations"):
        hurried.solve(target, seed)
    assert issubclass(IKRefusal, ValueError)


def test_malformed_inputs_are_refused():
    kinematics = FrankaKinematics(FR3)
    with pytest.raises(ValueError, match="6 finite numbers"):
        kinematics.solve([0.5, 0.0, 0.3], NEUTRAL_ARM)
    with pytest.raises(ValueError, match="seed must be 7 finite joint angles"):
        kinematics.solve(kinematics.pose(NEUTRAL_ARM), [0.0] * 6)
    with pytest.raises(ValueError, match="joints must be 7 finite"):
        kinematics.forward([math.nan] * 7)
    with pytest.raises(ValueError, match="tcp_offset_m"):
        FrankaKinematics(FR3, tcp_offset_m=-0.1)
    with pytest.raises(ValueError, match="damping"):
        IKSettings(damping=0.0)
