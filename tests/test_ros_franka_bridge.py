"""The Franka bridge (command path a) over real DDS on localhost, against the sim node in its own
process: the `Robot` the MPC loop drives, in this process as in the planner node.

One sim process and one bridge serve the module's tests in turn (each leaves the arm commandable
and the watchdog stand-in saying "go"). The watchdog is stood in for by a node of this process
that publishes the hold word on the watchdog's topic every 20 ms (as the watchdog does every
check), or stays silent.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from franka_msgs.action import ErrorRecovery
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.exceptions import InvalidParameterValueException
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from ros_helpers import BridgeRig, Spinning, eventually, interrupt, node_process
from std_srvs.srv import Trigger

from vjepa_wm.embodiments.robot import Robot
from vjepa_wm.ros_nodes import franka_interface as fi
from vjepa_wm.ros_nodes.franka_bridge import FrankaBridgeConfig, FrankaBridgeNode, pose_error
from vjepa_wm.ros_nodes.franka_interface import RobotMode

SIM_SETTINGS = {"image_size": 48, "seed": 3, "robot_state_rate_hz": 100.0, "pose_rate_hz": 100.0}
STEP_TOLERANCE_M = 0.003  # a 3 cm step lands within this of 3 cm (the bridge's position tolerance)


class Rig(BridgeRig):
    """The bridge, a watchdog stand-in and a probe of the target topic and the measured pose."""

    def __init__(self, ros: Spinning):
        super().__init__(ros, {"settle_timeout_s": 3.0}, "bridge_probe")
        self.direct = self.probe.create_publisher(PoseStamped, fi.DEFAULT_TARGET_TOPIC, fi.COMMAND_QOS)

    def target_count(self) -> int:
        with self.lock:
            return len(self.targets)

    def go(self) -> None:
        """The stand-in says "go" and the bridge has heard it."""
        self.word = False
        eventually(lambda: self.node.hold_reason() is None, 5, "the bridge free to move")


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    process = node_process("vjepa_wm.ros_nodes.sim_node", "franka_sim", SIM_SETTINGS, tmp_path_factory.mktemp("sim"))
    ros = Spinning()
    try:
        rig = Rig(ros)
        rig.bridge.activate()
        eventually(lambda: rig.camera.latest() is not None and rig.node.pose is not None and rig.node.width is not None
                   and rig.node.mode is not None, 30, "the sim's first state and image at the bridge")
        rig.go()
        yield rig
        rig.bridge.deactivate()
    finally:
        ros.close()
        status, output = interrupt(process)
        assert status == 0, output


def test_observe_gives_the_sims_current_pose_an_rgb_image_and_its_stamp(rig):
    bridge = rig.bridge
    assert isinstance(bridge, Robot)
    obs = bridge.observe()
    assert obs.image.dtype == np.uint8 and obs.image.shape == (48, 48, 3) and obs.image.std() > 0
    assert obs.state.shape == (7,)
    position_error, rotation_error = pose_error(obs.state[:6], rig.measured())
    assert position_error < 1e-3 and rotation_error < 1e-3  # the arm is at rest
    assert 0.0 <= obs.state[6] <= 1.0
    assert fi.width_to_gripper(rig.node.width) == pytest.approx(obs.state[6])
    now = bridge.now()
    # The sim's stamps: simulated time, never ahead of the wall at factor 1, behind it while its rows run late
    # (a loaded machine, right after start).
    assert now - 2.0 < obs.stamp <= now + 0.05
    frame = rig.camera.latest()
    assert frame.stamp >= obs.stamp and frame.stamp - obs.stamp < 1.0  # the frame's own stamp
    assert abs(now - time.time()) < 0.5  # the node's ROS time (no use_sim_time here)


def test_apply_of_a_3_cm_x_step_moves_the_arm_3_cm_and_waits_for_it(rig):
    rig.go()
    start = rig.bridge.observe().state
    sent = rig.node.targets_sent
    rig.bridge.apply(np.array([0.03, 0, 0, 0, 0, 0, 0]))
    outcome = rig.bridge.last_apply
    assert outcome.settled and outcome.gripper_goal is None, outcome
    moved = rig.measured()[:3] - start[:3]  # at once: apply returned when the arm got there
    assert moved[0] == pytest.approx(0.03, abs=STEP_TOLERANCE_M) and np.abs(moved[1:]).max() < STEP_TOLERANCE_M, moved
    assert rig.node.targets_sent == sent + 1
    target = eventually(lambda: rig.targets and rig.targets[-1], 5, "the target at the probe")
    assert target.header.frame_id == "fr3_link0" and fi.to_seconds(target.header.stamp) > 0
    assert fi.pose_to_state(target.pose, 0.0)[0] == pytest.approx(start[0] + 0.03, abs=1e-6)
    with pytest.raises(ValueError, match="7 finite numbers"):
        rig.bridge.apply(np.array([0.03, 0, 0]))


def test_a_gripper_close_and_open_through_apply_move_the_fingers(rig):
    rig.go()
    rig.bridge.apply(np.array([0, 0, 0, 0, 0, 0, 1.0]))  # close: a grasp
    assert rig.bridge.last_apply.gripper_goal == "grasp" and rig.bridge.last_apply.settled, rig.bridge.last_apply
    assert rig.node.width < fi.GRIPPER_DEFAULT_EPSILON_M and rig.bridge.observe().state[6] > 0.9
    rig.bridge.apply(np.array([0, 0, 0, 0, 0, 0, -1.0]))  # open: a move
    assert rig.bridge.last_apply.gripper_goal == "move" and rig.bridge.last_apply.settled, rig.bridge.last_apply
    assert rig.node.width == pytest.approx(fi.MAX_WIDTH_M, abs=2e-3) and rig.bridge.observe().state[6] < 0.05
    width = rig.node.width
    rig.bridge.apply(np.array([0, 0, 0, 0, 0, 0, 0.05]))  # below the threshold: no gripper goal
    assert rig.bridge.last_apply.gripper_goal is None and rig.node.width == pytest.approx(width, abs=1e-3)


def refused_without_motion(rig, match: str) -> None:
    """apply refuses with a ValueError saying `match`; the bridge sends no target and the arm stays."""
    before, sent = rig.measured(), rig.node.targets_sent
    with pytest.raises(ValueError, match=match):
        rig.bridge.apply(np.array([0.03, 0, 0, 0, 0, 0, 1.0]))
    time.sleep(0.4)
    assert rig.node.targets_sent == sent
    assert pose_error(rig.measured(), before)[0] < 1e-3


def test_apply_refuses_and_nothing_moves_while_the_watchdog_says_hold(rig):
    rig.go()
    sent = rig.node.targets_sent
    rig.word = True
    eventually(lambda: rig.node.hold_reason() == "the watchdog says hold", 5, "the hold heard")
    eventually(lambda: rig.node.targets_sent == sent + 1, 5, "the bridge's hold target (the measured pose, once)")
    width = rig.node.width
    refused_without_motion(rig, "refused, nothing sent: the watchdog says hold")
    assert rig.node.width == pytest.approx(width, abs=1e-3)  # the gripper part was not sent either
    rig.go()


def test_apply_refuses_when_no_hold_message_came_for_a_quarter_second(rig):
    rig.go()
    sent = rig.node.targets_sent
    rig.word = None  # the watchdog is gone
    time.sleep(0.3)
    assert "no watchdog hold message for" in rig.node.hold_reason()
    eventually(lambda: rig.node.targets_sent == sent + 1, 5, "the bridge's hold target on the silence")
    refused_without_motion(rig, "no watchdog hold message for")
    rig.go()


def test_hold_publishes_the_measured_pose_once_and_the_arm_keeps_it(rig):
    rig.go()
    start = rig.measured()
    far = np.concatenate([start + [0.0, 0.0, 0.08, 0, 0, 0], [0.0]])
    rig.direct.publish(fi.pose_stamped(far, time.time(), "fr3_link0"))  # a command from elsewhere
    eventually(lambda: pose_error(rig.measured(), start)[0] > 0.005, 3, "the arm on its way up")
    sent, received = rig.node.targets_sent, rig.target_count()  # the far target has arrived: the arm moves
    rig.bridge.hold()
    assert rig.node.targets_sent == sent + 1
    eventually(lambda: rig.target_count() == received + 1, 5, "the hold target")
    held = fi.pose_to_state(rig.targets[-1].pose, 0.0)[:6]
    time.sleep(0.6)
    after = rig.measured()
    assert rig.node.targets_sent == sent + 1 and rig.target_count() == received + 1  # once
    assert pose_error(after, held)[0] < 0.01 and pose_error(after, far[:6])[0] > 0.03, (after, held, far)
    settled = rig.measured()
    time.sleep(0.3)
    assert pose_error(rig.measured(), settled)[0] < 1e-3  # still


def test_apply_refuses_while_the_robot_is_user_stopped_or_in_reflex(rig):
    rig.go()
    parameters = AsyncParameterClient(rig.probe, "franka_sim")
    reflex = rig.probe.create_client(Trigger, "/franka_sim/inject_reflex")
    recovery = ActionClient(rig.probe, ErrorRecovery, fi.ERROR_RECOVERY_ACTION)
    assert parameters.wait_for_services(timeout_sec=10) and reflex.wait_for_service(timeout_sec=10)

    def set_user_stop(value: bool) -> None:
        done = parameters.set_parameters([Parameter("fault_user_stopped", value=value)])
        eventually(done.done, 5, "the parameter set")

    set_user_stop(True)
    eventually(lambda: rig.node.mode == RobotMode.USER_STOPPED, 5, "USER_STOPPED at the bridge")
    refused_without_motion(rig, "the robot is in USER_STOPPED")
    set_user_stop(False)
    eventually(lambda: rig.node.robot_reason() is None, 5, "the robot released")

    called = reflex.call_async(Trigger.Request())
    eventually(called.done, 5, "the reflex")
    eventually(lambda: rig.node.mode == RobotMode.REFLEX, 5, "REFLEX at the bridge")
    refused_without_motion(rig, "the robot is in REFLEX")
    assert recovery.wait_for_server(timeout_sec=10)
    sent = recovery.send_goal_async(ErrorRecovery.Goal())
    eventually(lambda: sent.done() and sent.result().get_result_async(), 5, "the recovery accepted")
    eventually(lambda: rig.node.robot_reason() is None, 5, "the robot recovered")
    rig.bridge.apply(np.zeros(7))
    assert rig.bridge.last_apply.settled


def test_the_pose_can_come_from_robot_state_and_bad_parameters_are_refused_at_configure(rig):
    ros = Spinning()
    try:
        node = ros.add(FrankaBridgeNode("bridge_robot_state", context=ros.context, parameter_overrides=[
            Parameter("state_source", value="robot_state")]))
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        eventually(lambda: node.pose is not None, 10, "a pose from robot_state")
        assert pose_error(node.pose.pose, rig.measured())[0] < 1e-3
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        wrong = ros.add(FrankaBridgeNode("bridge_wrong", context=ros.context, parameter_overrides=[
            Parameter("state_source", value="odometry")]))
        assert wrong.trigger_configure() == TransitionCallbackReturn.FAILURE
        with pytest.raises(InvalidParameterValueException):
            FrankaBridgeNode("bridge_out_of_range", context=ros.context, parameter_overrides=[
                Parameter("hold_timeout_s", value=0.0)])
        with pytest.raises(ValueError, match="gripper_threshold"):
            FrankaBridgeConfig(gripper_threshold=0.0)
    finally:
        ros.close()
