"""The Franka bridge on command path (b), stock franka_ros2: IK on the arm's model -> one PTPMotion
goal per step, over real DDS on localhost against the sim node in its own process.

The sim node takes its pose targets on another topic here, so the bridge's record of each goal's
pose (on the bridge's target topic) cannot move it: every motion below is the PTPMotion goal's.
A probe watches the action's status topic, so "no goal sent" is seen at the server's side of the
wire, not only counted by the bridge. The watchdog is stood in for as in test_ros_franka_bridge.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from action_msgs.msg import GoalStatus, GoalStatusArray
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_helpers import BridgeRig, Spinning, eventually, interrupt, node_process
from sensor_msgs.msg import JointState

from vjepa_wm.embodiments.franka_kinematics import FR3, FrankaKinematics
from vjepa_wm.ros_nodes import franka_interface as fi
from vjepa_wm.ros_nodes.franka_bridge import FrankaBridge, FrankaBridgeConfig, FrankaBridgeNode, pose_error

SIM_TCP_M = 0.105  # the sim's end effector: the grasp point 0.105 m beyond the hand
SIM_SETTINGS = {"image_size": 32, "seed": 3, "robot_state_rate_hz": 100.0, "pose_rate_hz": 100.0,
                "target_topic": "sim/pose_target"}
STATUS_TOPIC = f"{fi.PTP_MOTION_ACTION}/_action/status"
STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
STEP_TOLERANCE_M = 0.003


class Rig(BridgeRig):
    def __init__(self, ros: Spinning):
        super().__init__(ros, {"command_path": "ptp", "tcp_offset_m": SIM_TCP_M, "settle_timeout_s": 4.0}, "ptp_probe")
        self.goal_ids: set[bytes] = set()  # every goal the PTPMotion server has reported
        self.probe.create_subscription(GoalStatusArray, STATUS_TOPIC, self._take_status, STATUS_QOS)

    def _take_status(self, msg: GoalStatusArray) -> None:
        with self.lock:
            self.goal_ids.update(bytes(status.goal_info.goal_id.uuid) for status in msg.status_list)

    def goals_seen(self) -> int:
        with self.lock:
            return len(self.goal_ids)

    def go(self) -> None:
        self.word = False
        eventually(lambda: self.node.hold_reason() is None and self.node.robot_reason() is None, 5,
                   "the bridge free to move")


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    process = node_process("vjepa_wm.ros_nodes.sim_node", "franka_sim", SIM_SETTINGS, tmp_path_factory.mktemp("sim"))
    ros = Spinning()
    try:
        rig = Rig(ros)
        rig.bridge.activate()
        eventually(lambda: rig.camera.latest() is not None and rig.node.pose is not None and rig.node.width is not None
                   and rig.node.joints is not None and rig.node.ptp_client.server_is_ready(), 30,
                   "the sim's first state, joints, image and PTPMotion server at the bridge")
        rig.go()
        yield rig
        rig.bridge.deactivate()
    finally:
        ros.close()
        status, output = interrupt(process)
        assert status == 0, output


def test_path_b_moves_the_arm_by_the_commanded_delta_through_one_ptp_goal(rig):
    rig.go()
    kinematics = FrankaKinematics(FR3, SIM_TCP_M)
    for delta in ([0.03, -0.02, 0.02, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0.15, 0]):
        start = rig.bridge.observe().state
        sent, seen = rig.node.ptp_goals_sent, rig.goals_seen()
        rig.bridge.apply(np.array(delta, dtype=np.float64))
        outcome = rig.bridge.last_apply
        assert outcome.settled and outcome.ptp_status == GoalStatus.STATUS_SUCCEEDED, outcome
        assert rig.node.ptp_goals_sent == sent + 1
        eventually(lambda: rig.goals_seen() == seen + 1, 5, "the goal at the server's status topic")
        target = start[:6].copy()
        target[:3] += delta[:3]
        target[5] += delta[5]  # Rz(dyaw) R = Rz(yaw + dyaw) Ry(pitch) Rx(roll): a yaw delta adds to the yaw
        reached = rig.measured()
        position_error, rotation_error = pose_error(reached, target)
        assert position_error < STEP_TOLERANCE_M and rotation_error < 0.02, (reached, target)
        # The goal joints are the model's answer for that pose, inside the FR3's limits.
        assert kinematics.within_limits(outcome.joints)
        assert pose_error(kinematics.pose(outcome.joints), target)[0] < 1e-4
        record = eventually(lambda: rig.targets and rig.targets[-1], 5, "the record of the goal's pose")
        assert pose_error(fi.pose_to_state(record.pose, 0.0)[:6], target)[0] < 1e-6


def refused_without_a_goal(rig, delta, match: str) -> None:
    before, sent, seen, records = rig.measured(), rig.node.ptp_goals_sent, rig.goals_seen(), rig.node.targets_sent
    with pytest.raises(ValueError, match=match):
        rig.bridge.apply(np.asarray(delta, dtype=np.float64))
    time.sleep(0.3)
    assert rig.node.ptp_goals_sent == sent and rig.goals_seen() == seen and rig.node.targets_sent == records
    assert pose_error(rig.measured(), before)[0] < 1e-3


def test_an_unreachable_target_is_refused_and_no_goal_is_sent(rig):
    rig.go()
    refused_without_a_goal(rig, [1.5, 0, 0, 0, 0, 0, 0], r"^apply refused, nothing sent: unreachable: the target is "
                                                         r"[0-9.]+ m from the shoulder")


def test_a_hold_refuses_and_a_hold_during_a_motion_cancels_its_goal(rig):
    rig.go()
    sent = rig.node.targets_sent
    rig.word = True
    eventually(lambda: rig.node.hold_reason() == "the watchdog says hold", 5, "the hold heard")
    eventually(lambda: rig.node.targets_sent == sent + 1, 5, "the bridge's hold (the measured pose, once)")
    refused_without_a_goal(rig, [0.03, 0, 0, 0, 0, 0, 0], "refused, nothing sent: the watchdog says hold")
    rig.go()
    start = rig.measured()
    # A long way across the sim's workspace (several rows of its per-step limit): the hold comes mid-way.
    delta = np.array([0.0, -0.35 if start[1] > 0 else 0.35, 0.2 if start[2] < 0.2 else -0.15, 0, 0, 0, 0])
    applying = threading.Thread(target=rig.bridge.apply, args=(delta,))
    applying.start()
    eventually(lambda: pose_error(rig.measured(), start)[0] > 0.01, 5, "the arm on its way")
    rig.word = True
    applying.join(10)
    assert not applying.is_alive()
    outcome = rig.bridge.last_apply
    assert not outcome.settled and outcome.ptp_status in (GoalStatus.STATUS_ABORTED, GoalStatus.STATUS_CANCELED), outcome
    time.sleep(0.3)
    stopped = rig.measured()
    time.sleep(0.3)
    assert pose_error(rig.measured(), stopped)[0] < 1e-3  # still
    assert np.linalg.norm(stopped[:3] - (start[:3] + delta[:3])) > 0.05  # short of the target
    rig.go()


def test_a_model_that_disagrees_with_the_measured_pose_is_refused(rig):
    """A TCP offset 5 cm off the robot's: its IK would command the arm elsewhere, so nothing is sent."""
    ros = Spinning()
    try:
        node = ros.add(FrankaBridgeNode("bridge_wrong_tcp", context=ros.context, parameter_overrides=[
            Parameter("command_path", value="ptp"), Parameter("tcp_offset_m", value=SIM_TCP_M + 0.05)]))
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        eventually(lambda: node.joints is not None and node.width is not None and node.hold_reason() is None
                   and node.ptp_client.server_is_ready(), 10, "joints, the hold word and the server at the bridge")
        sent, records = node.ptp_goals_sent, node.targets_sent
        with pytest.raises(ValueError, match=r"refused, nothing sent: the fr3 model \(TCP 0.155 m\) puts the measured "
                                             r"joints 0.05\d+ m"):
            FrankaBridge(node, None).apply(np.array([0.02, 0, 0, 0, 0, 0, 0]))
        assert node.ptp_goals_sent == sent and node.targets_sent == records
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        with pytest.raises(ValueError, match="command_path ptp needs the kinematic model of arm_id 'fp3'"):
            FrankaBridgeConfig(command_path="ptp", arm_id="fp3")
        with pytest.raises(ValueError, match="command_path must be one of pose, ptp"):
            FrankaBridgeConfig(command_path="joints")
    finally:
        ros.close()


def test_measured_joints_are_read_by_name():
    """franka_ros2 names the joints <arm_id>_joint1..7; their order in the message does not matter."""
    ros = Spinning()
    try:
        node = ros.add(FrankaBridgeNode("bridge_joints", context=ros.context, parameter_overrides=[
            Parameter("command_path", value="ptp")]))
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        names = fi.joint_names("fr3")
        shuffled = JointState(name=names[::-1], position=[float(i) for i in range(7)][::-1])
        np.testing.assert_array_equal(node._measure_joints(shuffled), np.arange(7.0))
        assert node._measure_joints(JointState(name=["a"] * 7, position=[0.0] * 7)) is None
        assert node._measure_joints(JointState(position=[0.0] * 7)) is not None
        node.trigger_cleanup()
    finally:
        ros.close()
