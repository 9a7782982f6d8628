"""The sim node over real DDS on localhost: the PyBullet Franka behind franka_ros2's names, types and
QoS, in its own process as deployed, driven only through ROS 2 from this one.

One sim process serves the module's tests in turn (each leaves the arm commandable); the SIGINT
test starts its own, in a namespace, which also shows every name resolving under it.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from franka_msgs.action import ErrorRecovery, Grasp, Homing, Move, PTPMotion
from franka_msgs.msg import FrankaRobotState, GraspEpsilon, TargetStatus
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient, get_action_names_and_types
from rclpy.exceptions import InvalidParameterValueException
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import Spinning, eventually, interrupt, node_process
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from vjepa_wm.embodiments import rotations
from vjepa_wm.ros_nodes import franka_interface as fi
from vjepa_wm.ros_nodes.franka_interface import RobotMode
from vjepa_wm.ros_nodes.images import image_to_rgb
from vjepa_wm.ros_nodes.sim_arm import SimArm, gripper_step
from vjepa_wm.ros_nodes.sim_node import GOAL_IMAGE_QOS, FrankaSimNode
from vjepa_wm.sim.franka.config import SimConfig
from vjepa_wm.sim.franka.env import FrankaEnv
from vjepa_wm.sim.franka.ik import PandaIK

SETTINGS = {"image_size": 48, "seed": 3, "robot_state_rate_hz": 100.0, "pose_rate_hz": 100.0,
            "gripper_rate_hz": 15.0, "camera_rate_hz": 15.0}
SUCCEEDED, ABORTED = 4, 6  # action_msgs/GoalStatus
RATE_WINDOW_S = 2.0  # rates are counted over this long (a longer window averages out a loaded machine's pauses)


class Probe:
    """This process's view of the sim: the latest of every stream with its arrival times, clients for
    every action, the reflex service and the fault parameters."""

    def __init__(self, node: Node, namespace: str = ""):
        self.node, self.lock = node, threading.Lock()
        self.received: dict[str, list[tuple[float, object]]] = {}
        for name, kind in ((fi.ROBOT_STATE_TOPIC, FrankaRobotState), (fi.CURRENT_POSE_TOPIC, PoseStamped),
                           (fi.GRIPPER_JOINT_STATES_TOPIC, JointState), ("camera/image_raw", Image)):
            self.received[name] = []
            node.create_subscription(kind, f"{namespace}/{name}", lambda msg, name=name: self._take(name, msg),
                                     fi.FROM_ROBOT_QOS)
        self.target = node.create_publisher(PoseStamped, fi.DEFAULT_TARGET_TOPIC, fi.COMMAND_QOS)
        self.actions = {kind: ActionClient(node, kind, name) for kind, name in (
            (PTPMotion, fi.PTP_MOTION_ACTION), (ErrorRecovery, fi.ERROR_RECOVERY_ACTION), (Move, fi.GRIPPER_MOVE_ACTION),
            (Grasp, fi.GRIPPER_GRASP_ACTION), (Homing, fi.GRIPPER_HOMING_ACTION))}
        self.reflex = node.create_client(Trigger, "/franka_sim/inject_reflex")
        self.parameters = AsyncParameterClient(node, "franka_sim")

    def _take(self, name: str, msg) -> None:
        with self.lock:
            self.received[name].append((time.monotonic(), msg))

    def latest(self, name: str):
        with self.lock:
            return self.received[name][-1][1] if self.received[name] else None

    def count_since(self, name: str, since: float) -> int:
        with self.lock:
            return sum(arrived >= since for arrived, _ in self.received[name])

    def fresh(self, name: str, timeout_s: float = 5.0):
        """The first message of `name` that arrives from now on."""
        since = time.monotonic()
        eventually(lambda: self.count_since(name, since), timeout_s, f"a fresh {name}")
        return self.latest(name)

    def state(self) -> np.ndarray:
        """The 7-D state from robot_state and the gripper's joint states, as a bridge would read it."""
        width = fi.width_from_joint_states(self.fresh(fi.GRIPPER_JOINT_STATES_TOPIC))
        return fi.state_from_robot_state(self.fresh(fi.ROBOT_STATE_TOPIC), fi.width_to_gripper(width))

    def aim(self, state: np.ndarray, frame_id: str = "fr3_link0") -> None:
        self.target.publish(fi.pose_stamped(state, time.time(), frame_id))

    def run(self, kind, goal, timeout_s: float = 15.0):
        """Send a goal and wait for its end: (status, result, feedback seen)."""
        client, feedback = self.actions[kind], []
        assert client.wait_for_server(timeout_sec=10), kind.__name__
        sent = client.send_goal_async(goal, feedback_callback=lambda msg: feedback.append(msg.feedback))
        handle = eventually(lambda: sent.done() and sent.result(), timeout_s, f"{kind.__name__} accepted")
        assert handle.accepted, kind.__name__
        done = handle.get_result_async()
        eventually(done.done, timeout_s, f"the {kind.__name__} result")
        return done.result().status, done.result().result, feedback

    def set_faults(self, **values) -> list:
        results = self.parameters.set_parameters([Parameter(name, value=value) for name, value in values.items()])
        eventually(results.done, 5.0, "the parameters set")
        return results.result().results

    def mode(self) -> RobotMode:
        return RobotMode(self.fresh(fi.ROBOT_STATE_TOPIC).robot_mode)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    process = node_process("vjepa_wm.ros_nodes.sim_node", "franka_sim", SETTINGS, tmp_path_factory.mktemp("sim"))
    ros = Spinning()
    probe = Probe(ros.add(Node("sim_probe", context=ros.context)))
    try:
        eventually(lambda: probe.latest(fi.ROBOT_STATE_TOPIC) and probe.latest("camera/image_raw"), 30,
                   "the sim node's first state and image")
        assert probe.parameters.wait_for_services(timeout_sec=10) and probe.reflex.wait_for_service(timeout_sec=10)
        yield probe
    finally:
        ros.close()
        status, output = interrupt(process)
        assert status == 0, output


def reference_arm() -> SimArm:
    """The same scene in this process: what the sim node must report before anything moves it."""
    return SimArm(SimConfig(image_size=SETTINGS["image_size"], low_poly=True), "reach", SETTINGS["seed"])


def test_interface_conversions_round_trip_and_name_franka_ros2s_modes_and_errors():
    state = np.array([0.45, -0.1, 0.2, 3.0, 0.2, -0.4, 0.3])
    back = fi.pose_to_state(fi.state_to_pose(state), 0.3)
    assert np.allclose(back, state, atol=1e-9)
    stamped = fi.pose_stamped(state, 12.25, "fr3_link0")
    assert fi.to_seconds(stamped.header.stamp) == 12.25 and stamped.header.frame_id == "fr3_link0"
    for width in (0.0, 0.02, 0.08):
        msg = fi.gripper_joint_state(width, 1.0, "fr3")
        assert msg.name == ["fr3_finger_joint1", "fr3_finger_joint2"] and msg.position[0] == width / 2
        assert fi.width_from_joint_states(msg) == pytest.approx(width)
    assert fi.width_to_gripper(0.08) == 0.0 and fi.width_to_gripper(0.0) == 1.0 and fi.gripper_to_width(0.5) == 0.04
    with pytest.raises(ValueError):
        fi.width_from_joint_states(JointState(name=["fr3_joint1"], position=[0.1]))
    pose = fi.state_to_pose(state)
    pose.orientation.w = pose.orientation.x = pose.orientation.y = pose.orientation.z = 0.0
    with pytest.raises(ValueError):
        fi.pose_to_state(pose, 0.0)
    assert [m.value for m in RobotMode] == list(range(7)) and RobotMode.REFLEX == FrankaRobotState.ROBOT_MODE_REFLEX
    assert len(fi.ERROR_FIELDS) == 36 and fi.ERROR_FIELDS[0] == "joint_position_limits_violation"
    msg = FrankaRobotState(robot_mode=int(RobotMode.MOVE))
    assert not fi.needs_recovery(msg)
    msg.current_errors = fi.errors_with(["joint_reflex", "power_limit_violation"])
    assert fi.active_errors(msg.current_errors) == ("joint_reflex", "power_limit_violation") and fi.needs_recovery(msg)
    assert fi.needs_recovery(FrankaRobotState(robot_mode=int(RobotMode.REFLEX)))
    with pytest.raises(ValueError):
        fi.errors_with(["no_such_flag"])
    assert fi.CONVENIENCE_QOS.reliability == ReliabilityPolicy.BEST_EFFORT == fi.FROM_ROBOT_QOS.reliability


def test_the_gripper_step_makes_the_sims_command_exactly_the_goal():
    # (goal, measured, commanded): opening, closing, closing from a squeeze, opening a little from a squeeze
    assert gripper_step(0.2, 0.6, 0.6) == pytest.approx(-0.4)
    assert gripper_step(0.7, 0.2, 0.2) == pytest.approx(0.5)
    assert gripper_step(1.0, 0.3, 0.8) == pytest.approx(0.2)
    assert -1e-6 < gripper_step(0.5, 0.25, 1.0) < 0  # first down to the measurement; the next row closes
    assert gripper_step(0.5, 0.25, 0.25) == pytest.approx(0.25)


def test_state_topics_come_with_franka_ros2s_types_qos_and_rates_and_the_sims_own_state(sim):
    node = sim.node
    topics = dict(node.get_topic_names_and_types())
    for name, kind in ((fi.ROBOT_STATE_TOPIC, "franka_msgs/msg/FrankaRobotState"),
                       (fi.CURRENT_POSE_TOPIC, "geometry_msgs/msg/PoseStamped"),
                       (fi.GRIPPER_JOINT_STATES_TOPIC, "sensor_msgs/msg/JointState"),
                       (fi.DEFAULT_TARGET_TOPIC, "geometry_msgs/msg/PoseStamped"),
                       ("camera/image_raw", "sensor_msgs/msg/Image"), ("clock", "rosgraph_msgs/msg/Clock")):
        assert topics.get(f"/{name}") == [kind], name
    reliability = {name: node.get_publishers_info_by_topic(f"/{name}")[0].qos_profile.reliability
                   for name in (fi.ROBOT_STATE_TOPIC, fi.CURRENT_POSE_TOPIC, fi.GRIPPER_JOINT_STATES_TOPIC)}
    assert reliability == {fi.ROBOT_STATE_TOPIC: ReliabilityPolicy.RELIABLE,
                           fi.CURRENT_POSE_TOPIC: ReliabilityPolicy.BEST_EFFORT,
                           fi.GRIPPER_JOINT_STATES_TOPIC: ReliabilityPolicy.RELIABLE}
    actions = dict(get_action_names_and_types(node))
    for name, kind in ((fi.PTP_MOTION_ACTION, "PTPMotion"), (fi.ERROR_RECOVERY_ACTION, "ErrorRecovery"),
                       (fi.GRIPPER_MOVE_ACTION, "Move"), (fi.GRIPPER_GRASP_ACTION, "Grasp"),
                       (fi.GRIPPER_HOMING_ACTION, "Homing")):
        assert actions.get(f"/{name}") == [f"franka_msgs/action/{kind}"], name

    since = time.monotonic()
    time.sleep(RATE_WINDOW_S)
    for name in (fi.ROBOT_STATE_TOPIC, fi.CURRENT_POSE_TOPIC, fi.GRIPPER_JOINT_STATES_TOPIC, "camera/image_raw"):
        rate = {"camera/image_raw": SETTINGS["camera_rate_hz"],
                fi.GRIPPER_JOINT_STATES_TOPIC: SETTINGS["gripper_rate_hz"]}.get(name, SETTINGS["pose_rate_hz"])
        count = sim.count_since(name, since)
        assert 0.5 * rate * RATE_WINDOW_S <= count <= 1.3 * rate * RATE_WINDOW_S, (name, count)

    robot_state, pose = sim.fresh(fi.ROBOT_STATE_TOPIC), sim.latest(fi.CURRENT_POSE_TOPIC)
    assert robot_state.header.frame_id == pose.header.frame_id == "fr3_link0"
    assert robot_state.measured_joint_state.name == [f"fr3_joint{i}" for i in range(1, 8)]
    assert RobotMode(robot_state.robot_mode) == RobotMode.IDLE and not fi.needs_recovery(robot_state)
    stamp = fi.to_seconds(robot_state.header.stamp)
    assert time.time() - 1.0 < stamp <= time.time() + 0.05  # simulated time, within a row or so of the wall at factor 1
    reference = reference_arm()
    try:
        state = sim.state()
        assert np.abs(state[:3] - reference.snapshot.state[:3]).max() < 1e-3
        assert rotations.rotation_angle(rotations.euler_to_matrix(state[3:6]) @
                                        rotations.euler_to_matrix(reference.snapshot.state[3:6]).T) < 1e-2
        assert state[6] == pytest.approx(reference.snapshot.state[6], abs=1e-3)
        assert np.abs(np.asarray(robot_state.measured_joint_state.position) - reference.snapshot.joints).max() < 1e-2
        frame = sim.fresh("camera/image_raw")
        image = image_to_rgb(frame)
        assert frame.encoding == "rgb8" and image.shape == (48, 48, 3)
        assert np.abs(image.astype(int) - reference.image()).mean() < 2.0
    finally:
        reference.close()


def test_the_tasks_goal_view_is_latched_for_a_client_that_joins_later(sim):
    """What `ros-goal --goal-topic` sends: the goal image `FrankaEnv.reset(seed)` gives in-process."""
    got: list = []
    sim.node.create_subscription(Image, "/franka_sim/goal_image", got.append, GOAL_IMAGE_QOS)
    eventually(lambda: got, 10, "the latched goal image")
    env = FrankaEnv(SimConfig(image_size=SETTINGS["image_size"], low_poly=True), task="reach")
    try:
        _, info = env.reset(seed=SETTINGS["seed"])
    finally:
        env.close()
    np.testing.assert_array_equal(image_to_rgb(got[0]), info["goal_image"])
    assert not np.array_equal(info["goal_image"], image_to_rgb(sim.latest("camera/image_raw")))  # not the start view


def test_a_pose_target_moves_the_arm_there_and_one_in_another_frame_is_ignored(sim):
    start = sim.state()
    wrong = start.copy()
    wrong[:3] += [0.0, 0.08, 0.0]
    sim.aim(wrong, frame_id="camera_color_optical_frame")
    time.sleep(0.4)
    assert np.linalg.norm(sim.state()[:3] - start[:3]) < 1e-3
    target = start.copy()
    target[:3] += [0.06, -0.07, 0.05]  # 10.5 cm: more than one action's 10 cm
    sim.aim(target)
    eventually(lambda: np.linalg.norm(sim.state()[:3] - target[:3]) < 2e-3, 10, "the arm at the target")
    eventually(lambda: sim.mode() == RobotMode.IDLE, 5, "the arm idle at the target")


def test_a_ptp_motion_goal_succeeds_and_a_malformed_one_aborts_saying_why(sim):
    robot_state = sim.fresh(fi.ROBOT_STATE_TOPIC)
    start = fi.state_from_robot_state(robot_state, 0.0)
    ik = PandaIK()
    try:
        goal_position = start[:3] + [-0.05, 0.06, -0.04]
        joints = ik.solve(goal_position, rotations.euler_to_matrix(start[3:6]),
                          np.asarray(robot_state.measured_joint_state.position)).arm
        reached, _ = ik.forward(joints)
    finally:
        ik.close()
    status, result, feedback = sim.run(PTPMotion, PTPMotion.Goal(
        goal_joint_configuration=joints.tolist(), maximum_joint_velocities=[1.0] * 7, goal_tolerance=0.01))
    assert status == SUCCEEDED and result.target_status.status == TargetStatus.TARGET_REACHED, result.error_message
    assert feedback and feedback[0].target_status.status == TargetStatus.EXECUTING
    assert np.linalg.norm(sim.state()[:3] - reached) < 2e-3

    status, result, _ = sim.run(PTPMotion, PTPMotion.Goal(goal_joint_configuration=[0.0] * 6,
                                                          maximum_joint_velocities=[1.0] * 7, goal_tolerance=0.01))
    assert status == ABORTED and result.target_status.status == TargetStatus.ABORTED
    assert "goal_joint_configuration must be 7" in result.error_message


def test_gripper_move_grasp_and_homing(sim):
    def width() -> float:
        return fi.width_from_joint_states(sim.fresh(fi.GRIPPER_JOINT_STATES_TOPIC))

    status, result, feedback = sim.run(Move, Move.Goal(width=0.03, speed=fi.GRIPPER_DEFAULT_SPEED_MPS))
    assert status == SUCCEEDED and result.success and feedback, result.error
    assert width() == pytest.approx(0.03, abs=1.5e-3)
    epsilon = GraspEpsilon(inner=fi.GRIPPER_DEFAULT_EPSILON_M, outer=fi.GRIPPER_DEFAULT_EPSILON_M)
    status, result, _ = sim.run(Grasp, Grasp.Goal(width=0.05, epsilon=epsilon, speed=0.1, force=20.0))
    assert status == ABORTED and not result.success and "outside" in result.error  # nothing to grasp: closed to 0
    status, result, _ = sim.run(Grasp, Grasp.Goal(width=0.0, epsilon=epsilon, speed=0.1, force=20.0))
    assert status == SUCCEEDED and result.success, result.error
    assert width() < fi.GRIPPER_DEFAULT_EPSILON_M and sim.state()[6] > 0.9
    status, result, _ = sim.run(Homing, Homing.Goal())
    assert status == SUCCEEDED and result.success and width() == pytest.approx(fi.MAX_WIDTH_M, abs=1.5e-3)
    status, result, _ = sim.run(Move, Move.Goal(width=0.2, speed=0.1))
    assert status == ABORTED and "width must be" in result.error


def test_a_reflex_refuses_arm_commands_until_error_recovery_and_the_user_stop_until_released(sim):
    called = sim.reflex.call_async(Trigger.Request())
    eventually(called.done, 5, "the reflex")
    assert called.result().success
    eventually(lambda: sim.mode() == RobotMode.REFLEX, 5, "REFLEX")
    robot_state = sim.latest(fi.ROBOT_STATE_TOPIC)
    assert fi.needs_recovery(robot_state)
    assert fi.active_errors(robot_state.current_errors) == ("cartesian_reflex",)
    start = sim.state()
    moved = start.copy()
    moved[:3] += [0.0, 0.0, 0.06]
    sim.aim(moved)
    status, result, _ = sim.run(PTPMotion, PTPMotion.Goal(
        goal_joint_configuration=list(robot_state.measured_joint_state.position), maximum_joint_velocities=[1.0] * 7,
        goal_tolerance=0.01))
    assert status == ABORTED and "REFLEX" in result.error_message
    assert np.linalg.norm(sim.state()[:3] - start[:3]) < 1e-3 and sim.mode() == RobotMode.REFLEX

    status, _, _ = sim.run(ErrorRecovery, ErrorRecovery.Goal())
    assert status == SUCCEEDED
    eventually(lambda: sim.mode() == RobotMode.IDLE, 5, "IDLE after recovery")
    robot_state = sim.latest(fi.ROBOT_STATE_TOPIC)
    assert not fi.needs_recovery(robot_state)
    assert fi.active_errors(robot_state.last_motion_errors) == ("cartesian_reflex",)
    sim.aim(moved)
    eventually(lambda: np.linalg.norm(sim.state()[:3] - moved[:3]) < 2e-3, 10, "the arm moving again")

    assert all(r.successful for r in sim.set_faults(fault_user_stopped=True))
    eventually(lambda: sim.mode() == RobotMode.USER_STOPPED, 5, "USER_STOPPED")
    sim.aim(start)
    status, _, _ = sim.run(ErrorRecovery, ErrorRecovery.Goal())
    assert status == ABORTED and np.linalg.norm(sim.state()[:3] - moved[:3]) < 2e-3
    assert all(r.successful for r in sim.set_faults(fault_user_stopped=False))
    eventually(lambda: sim.mode() == RobotMode.IDLE, 5, "released")


def test_dropped_state_stops_the_state_topics_and_camera_faults_lag_or_freeze_the_images(sim):
    state_topics = (fi.ROBOT_STATE_TOPIC, fi.CURRENT_POSE_TOPIC, fi.GRIPPER_JOINT_STATES_TOPIC)
    assert all(r.successful for r in sim.set_faults(fault_drop_state=True))
    time.sleep(0.2)  # what was under way arrives
    since = time.monotonic()
    time.sleep(0.6)
    assert [sim.count_since(name, since) for name in state_topics] == [0, 0, 0]
    assert sim.count_since("camera/image_raw", since) > 3
    assert all(r.successful for r in sim.set_faults(fault_drop_state=False))
    for name in state_topics:
        sim.fresh(name)

    assert all(r.successful for r in sim.set_faults(fault_camera="stale", fault_camera_lag_s=2.0))
    time.sleep(0.2)
    frame, robot_state = sim.fresh("camera/image_raw"), sim.fresh(fi.ROBOT_STATE_TOPIC)
    lag = fi.to_seconds(robot_state.header.stamp) - fi.to_seconds(frame.header.stamp)
    assert 1.8 < lag < 2.3, lag

    assert all(r.successful for r in sim.set_faults(fault_camera="frozen"))
    time.sleep(0.2)
    frozen = sim.fresh("camera/image_raw")
    target = sim.state()
    target[:3] += [0.0, 0.1, 0.0]
    sim.aim(target)
    eventually(lambda: np.linalg.norm(sim.state()[:3] - target[:3]) < 2e-3, 10, "the arm moved")
    later = sim.fresh("camera/image_raw")
    assert bytes(later.data) == bytes(frozen.data)
    assert fi.to_seconds(later.header.stamp) > fi.to_seconds(frozen.header.stamp) + 0.2  # fresh stamps
    assert all(r.successful for r in sim.set_faults(fault_camera="none"))
    time.sleep(0.2)
    assert bytes(sim.fresh("camera/image_raw").data) != bytes(frozen.data)

    refused = sim.set_faults(fault_camera="blurry") + sim.set_faults(fault_camera_lag_s=100.0) + \
        sim.set_faults(fault_reflex_error="no_such_flag")
    assert not any(r.successful for r in refused)
    assert "fault_camera must be one of" in refused[0].reason and "no_such_flag" in refused[2].reason


def test_parameters_are_checked_at_declaration_and_at_configure():
    ros = Spinning()
    try:
        with pytest.raises(InvalidParameterValueException):
            FrankaSimNode("sim_bad_size", context=ros.context, parameter_overrides=[Parameter("image_size", value=8)])
        node = ros.add(FrankaSimNode("sim_bad_task", context=ros.context,
                                     parameter_overrides=[Parameter("task", value="juggle")]))
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        described = node.describe_parameter("pose_rate_hz")
        assert (described.floating_point_range[0].from_value, described.floating_point_range[0].to_value) == (1, 1000)
        assert node.describe_parameter("target_topic").read_only
    finally:
        ros.close()


def test_deactivation_holds_the_arm_and_refuses_goals_and_cleanup_releases_the_sim():
    ros = Spinning()
    try:
        node = ros.add(FrankaSimNode("sim_lifecycle", context=ros.context, parameter_overrides=[
            Parameter("image_size", value=16), Parameter("target_topic", value="lifecycle/target_pose")]))
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        eventually(lambda: node.arm.row >= 3, 5, "rows passing")
        node.arm.aim(node.arm.snapshot.state + np.array([0.0, 0.0, 0.05, 0, 0, 0, 0]))
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert np.allclose(node.arm.target[:6], node.arm.env.state()[:6]) and node._accept(None).name == "REJECT"
        row = node.arm.row
        time.sleep(0.3)
        assert node.arm.row == row  # no time passes while inactive
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS and node.arm is None
    finally:
        ros.close()


def test_the_node_runs_in_a_namespace_and_exits_0_on_sigint(tmp_path):
    process = node_process("vjepa_wm.ros_nodes.sim_node", "franka_sim", {"image_size": 16}, tmp_path, namespace="/left")
    ros = Spinning()
    try:
        probe = ros.add(Node("sigint_probe", context=ros.context))
        got = []
        probe.create_subscription(FrankaRobotState, f"/left/{fi.ROBOT_STATE_TOPIC}", got.append,
                                  QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        eventually(lambda: got, 30, "robot_state under /left")
        assert ActionClient(probe, PTPMotion, f"/left/{fi.PTP_MOTION_ACTION}").wait_for_server(timeout_sec=5)
    finally:
        ros.close()
        status, output = interrupt(process)
    assert status == 0, output
