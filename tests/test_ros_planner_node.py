"""The planner node over real DDS on localhost, in its own process beside the sim node and the
watchdog (each in its own, as deployed), driven by this process as an operator's client would:
the PlanToGoal action, the sim's topics, the watchdog's hold word.

The module's processes are shared by its tests in the order they are written; the kill test
replaces the planner process it kills and the last test stops them all. Settings are those of
`eval-sim --ros` (`evaluation.ros_reach`): judged on the sim's clock, with limits for a CPU planner.
"""
from __future__ import annotations

import array
import os
import signal
import threading
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import SCHEDULING_SLACK_S, Spinning, eventually, interrupt, node_process, output
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32MultiArray, String
from vjepa_wm_interfaces.action import PlanToGoal
from vjepa_wm_interfaces.msg import PinnedDimension

from vjepa_wm.embodiments import Franka
from vjepa_wm.evaluation.ros_reach import MAX_OBSERVATION_AGE_S, SIM_RATES, WATCHDOG_LIMITS
from vjepa_wm.ros_nodes import franka_interface as fi
from vjepa_wm.ros_nodes.image_messages import rgb8_message
from vjepa_wm.ros_nodes.plan_goals import GoalDefaults, parse_goal
from vjepa_wm.ros_nodes.planner_node import OUTPUT_QOS, PlannerNodeConfig
from vjepa_wm.ros_nodes.watchdog_rules import HOLD_BUDGET_S
from vjepa_wm.sim.franka.config import SimConfig
from vjepa_wm.sim.franka.env import FrankaEnv
from vjepa_wm.sim.franka.tasks import ReachTask

SEED = 21  # a development seed whose goal lies 10 cm from the start (reached in-process in 6 steps)
REACH_STEPS = 8
SIZE = 128  # the bundled model's frames
SIM_SETTINGS = {"image_size": SIZE, "seed": SEED, **SIM_RATES}
PLANNER_SETTINGS = {"image_topic": "camera/image_raw", "max_observation_age_s": MAX_OBSERVATION_AGE_S,
                    "use_sim_time": True}
HEARTBEAT_TIMEOUT_S = 0.5  # the watchdog's default
Result = PlanToGoal.Result


class MeasuredArm:
    """What the reach task's success rule reads of a scene, from a pose received over ROS."""

    def __init__(self, position):
        self.position = np.asarray(position)

    def ee_pose(self):
        return self.position, None


class Client:
    """This process's view: the action client, and every target, pose, hold word and heartbeat with its arrival time."""

    def __init__(self, ros: Spinning):
        node = ros.add(Node("planner_test_client", context=ros.context))
        self.lock = threading.Lock()
        self.targets: list[float] = []
        self.poses: list[tuple[float, np.ndarray]] = []
        self.holds: list[tuple[float, bool]] = []
        self.beats: list[tuple[float, str]] = []
        self.energies: list[list[float]] = []
        self.debug: list[Image] = []
        keep = self._keep
        node.create_subscription(PoseStamped, fi.DEFAULT_TARGET_TOPIC, lambda m: keep(self.targets, time.monotonic()),
                                 fi.COMMAND_QOS)
        node.create_subscription(PoseStamped, fi.CURRENT_POSE_TOPIC, lambda m: keep(self.poses, (
            time.monotonic(), np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z]))), fi.FROM_ROBOT_QOS)
        node.create_subscription(Bool, "vjepa_wm/watchdog/hold", lambda m: keep(self.holds, (time.monotonic(), m.data)),
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        node.create_subscription(String, PlannerNodeConfig().heartbeat_topic,
                                 lambda m: keep(self.beats, (time.monotonic(), m.data)), QoSProfile(depth=10))
        node.create_subscription(Float32MultiArray, PlannerNodeConfig().energy_topic,
                                 lambda m: keep(self.energies, list(m.data)), OUTPUT_QOS)
        node.create_subscription(Image, PlannerNodeConfig().debug_image_topic, lambda m: keep(self.debug, m), OUTPUT_QOS)
        self.action = ActionClient(node, PlanToGoal, PlannerNodeConfig().action_name)

    def _keep(self, into: list, item) -> None:
        with self.lock:
            into.append(item)

    def count(self, what: list) -> int:
        with self.lock:
            return len(what)

    def position(self) -> np.ndarray:
        """A current_pose that arrives after this call."""
        seen = self.count(self.poses)
        eventually(lambda: self.count(self.poses) > seen, 10, "a fresh current_pose")
        with self.lock:
            return self.poses[-1][1]

    def send(self, goal: PlanToGoal.Goal, feedback: list | None = None):
        sent = self.action.send_goal_async(goal, feedback_callback=None if feedback is None else feedback.append)
        return eventually(lambda: sent.done() and sent.result(), 20, "the goal response")

    def result(self, handle, timeout_s: float) -> PlanToGoal.Result:
        future = handle.get_result_async()
        return eventually(lambda: future.done() and future.result(), timeout_s, "the plan's result").result

    def plan(self, goal: PlanToGoal.Goal, timeout_s: float = 30) -> PlanToGoal.Result:
        handle = self.send(goal)
        assert handle.accepted
        return self.result(handle, timeout_s)


def reach_goal() -> tuple[np.ndarray, object]:
    """The goal image and episode of reach seed SEED from the sim's own task generator, as eval-sim makes them."""
    env = FrankaEnv(SimConfig(image_size=SIZE, low_poly=True), task="reach")
    try:
        _, info = env.reset(seed=SEED)
        return info["goal_image"], env.episode
    finally:
        env.close()


def goal_of(*images: np.ndarray, **fields) -> PlanToGoal.Goal:
    return PlanToGoal.Goal(goal_images=[rgb8_message(image, 0.0, "goal") for image in images], **fields)


def start_planner(cwd):
    return node_process("vjepa_wm.ros_nodes.planner_node", "vjepa_wm_planner", PLANNER_SETTINGS, cwd)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("nodes")
    processes = {"sim": node_process("vjepa_wm.ros_nodes.sim_node", "franka_sim", SIM_SETTINGS, cwd),
                 "watchdog": node_process("vjepa_wm.ros_nodes.watchdog_node", "watchdog", WATCHDOG_LIMITS, cwd),
                 "planner": start_planner(cwd)}
    ros = Spinning()
    client = Client(ros)
    goal_image, episode = reach_goal()
    try:
        eventually(lambda: client.action.server_is_ready() and client.count(client.poses) > 0, 90,
                   "the planner's action server and the sim's pose")
        eventually(lambda: client.beats and client.beats[-1][1] == "", 10, "the idle heartbeat")
        yield client, processes, goal_image, episode, cwd
    finally:
        ros.close()
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_reach_through_ros_alone_meets_the_sims_success_rule(rig):
    client, _, goal_image, episode, _ = rig
    feedback: list = []
    handle = client.send(goal_of(goal_image, max_steps=REACH_STEPS,
                                 pinned=[PinnedDimension(goal_index=0, dimension=6, value=0.0)]), feedback)
    assert handle.accepted
    result = client.result(handle, 40 * REACH_STEPS)
    assert result.outcome == Result.OUTCOME_BUDGET and result.steps == REACH_STEPS, result
    position = client.position()
    distance = np.linalg.norm(position - np.asarray(episode.target_position))
    assert ReachTask().success(MeasuredArm(position), episode), f"{100 * distance:.1f} cm from the goal"
    steps = [f.feedback for f in feedback]
    assert [s.step for s in steps] == list(range(1, REACH_STEPS + 1))
    assert all(s.goal_index == 0 and len(s.action) == 7 and s.action[6] == 0.0 for s in steps)
    assert all(np.isfinite(s.observed_energy) and np.isfinite(s.planned_energy) for s in steps)
    assert result.final_energy == steps[-1].observed_energy < steps[0].observed_energy
    eventually(lambda: client.count(client.debug) >= REACH_STEPS, 5, "a debug image per step")
    debug = client.debug[-1]
    assert (debug.encoding, debug.width, debug.height) == ("rgb8", 2 * SIZE, SIZE)
    right = np.frombuffer(bytes(debug.data), np.uint8).reshape(SIZE, 2 * SIZE, 3)[:, SIZE:]
    np.testing.assert_array_equal(right, goal_image)  # view | goal
    assert client.energies[-1] == pytest.approx([steps[-1].observed_energy, steps[-1].planned_energy], rel=1e-6)
    assert client.beats[-1][1] == "" or eventually(lambda: client.beats[-1][1] == "", 5, "the idle heartbeat")


def test_goal_settings_left_at_0_take_the_nodes_defaults():
    image = np.zeros((8, 8, 3), np.uint8)
    defaults = GoalDefaults(max_steps=20, stop_energy=None, max_steps_limit=100)
    request = parse_goal(goal_of(image, image), Franka(), defaults)
    assert (request.max_steps, request.stop_energy) == (20, None)
    assert [(g.max_steps, g.switch_energy, g.pinned) for g in request.goals] == [(None, None, None)] * 2
    request = parse_goal(goal_of(image, image, max_steps=7, stop_energy=0.5, max_steps_per_goal=[3, 0],
                                 switch_energy=[0.0, 0.2], pinned=[PinnedDimension(goal_index=1, dimension=6, value=0.5)]),
                         Franka(), defaults)
    assert (request.max_steps, request.stop_energy) == (7, 0.5)
    assert [(g.max_steps, g.switch_energy, g.pinned) for g in request.goals] == [(3, None, None), (None, 0.2, {6: 0.5})]


def malformed_goals(image: np.ndarray) -> list[tuple[PlanToGoal.Goal, str]]:
    mono = rgb8_message(image, 0.0, "goal")
    mono.encoding = "mono8"
    short = rgb8_message(image, 0.0, "goal")
    short.step -= 1
    truncated = rgb8_message(image, 0.0, "goal")
    truncated.data = array.array("B", bytes(truncated.data)[:-5])
    pin = PinnedDimension
    return [
        (PlanToGoal.Goal(), "no goal images"),
        (PlanToGoal.Goal(goal_images=[mono]), "goal image 0: encoding 'mono8'"),
        (PlanToGoal.Goal(goal_images=[short]), "goal image 0: step"),
        (PlanToGoal.Goal(goal_images=[truncated]), "goal image 0: "),
        (goal_of(image, image[:64, :64]), "goal image 1 is 64x64"),
        (goal_of(image[:64, :64]), "the camera's view is 128x128"),
        (goal_of(image, pinned=[pin(goal_index=0, dimension=6, value=float("nan"))]), "pinned dgripper must be a finite"),
        (goal_of(image, pinned=[pin(goal_index=0, dimension=0, value=0.2)]), "pinned dx must be a finite number in the "
                                                                            "step bounds"),
        (goal_of(image, pinned=[pin(goal_index=0, dimension=9, value=0.0)]), "action dimension 9"),
        (goal_of(image, pinned=[pin(goal_index=1, dimension=6, value=0.0)]), "a pin names goal 1"),
        (goal_of(image, pinned=[pin(goal_index=0, dimension=6, value=0.0)] * 2), "pinned twice"),
        (goal_of(image, max_steps=5000), "max_steps 5000 is beyond"),
        (goal_of(image, max_steps_per_goal=[3, 3]), "max_steps_per_goal has 2 entries for 1 goal"),
        (goal_of(image, switch_energy=[float("nan")]), "switch_energy[0] must be a finite number"),
        (goal_of(image, stop_energy=-1.0), "stop_energy must be a finite number >= 0"),
    ]


def test_b_malformed_goals_end_refused_and_nothing_reaches_the_sim(rig):
    client, _, goal_image, _, _ = rig
    time.sleep(0.5)  # the last plan's final hold has arrived
    targets = client.count(client.targets)
    for goal, reason in malformed_goals(goal_image):
        feedback: list = []
        handle = client.send(goal, feedback)
        assert handle.accepted
        result = client.result(handle, 20)
        assert result.outcome == Result.OUTCOME_REFUSED and result.steps == 0, (reason, result)
        assert result.stop_reason.startswith("refused: ") and reason in result.stop_reason, result.stop_reason
        assert np.isnan(result.final_energy) and not feedback
    time.sleep(0.3)
    assert client.count(client.targets) == targets


def wait_for_motion(handle, feedback: list, planner) -> None:
    """Until the first step's feedback; a plan that ends first fails with its result and the planner's log."""
    result = handle.get_result_async()
    eventually(lambda: feedback or result.done(), 60, "the first step's feedback")
    assert feedback, f"the plan ended before its first step: {result.result().result}\n{output(planner, 3000)}"


def test_a_second_goal_is_rejected_while_one_runs_and_cancel_holds(rig):
    client, processes, goal_image, _, _ = rig
    feedback: list = []
    handle = client.send(goal_of(goal_image, max_steps=50), feedback)
    assert handle.accepted
    wait_for_motion(handle, feedback, processes["planner"])
    goal_id = bytes(handle.goal_id.uuid).hex()
    assert any(beat == goal_id for _, beat in client.beats)
    assert not client.send(goal_of(goal_image)).accepted
    canceled = handle.cancel_goal_async()
    eventually(lambda: canceled.done(), 10, "the cancel response")
    result = client.result(handle, 60)
    assert result.outcome == Result.OUTCOME_CANCELED and result.stop_reason == "canceled by the client", result
    assert result.steps < 50
    still = client.position()
    time.sleep(1.0)
    assert np.linalg.norm(client.position() - still) < 2e-3  # the arm holds
    eventually(lambda: client.beats[-1][1] == "", 5, "the idle heartbeat")


def test_c_killing_the_planner_mid_plan_leaves_the_arm_held_by_the_watchdog(rig):
    client, processes, goal_image, _, cwd = rig
    feedback: list = []
    handle = client.send(goal_of(goal_image, max_steps=50), feedback)
    assert handle.accepted
    wait_for_motion(handle, feedback, processes["planner"])
    with client.lock:
        assert client.holds and client.holds[-1][1] is False, "the watchdog holds already"
    processes["planner"].send_signal(signal.SIGKILL)
    processes["planner"].wait()
    killed = time.monotonic()
    held = eventually(lambda: next((t for t, word in list(client.holds) if t > killed and word), None), 5,
                      "the watchdog's hold")
    with client.lock:
        last_beat = max(t for t, _ in client.beats)
    assert held - last_beat <= HEARTBEAT_TIMEOUT_S + HOLD_BUDGET_S + SCHEDULING_SLACK_S, \
        f"hold {held - last_beat:.3f} s after the last heartbeat"
    time.sleep(2.5)  # the last target, if one was under way, is reached
    targets, still = client.count(client.targets), client.position()
    time.sleep(1.0)
    assert np.linalg.norm(client.position() - still) < 1e-3 and client.count(client.targets) == targets
    with client.lock:
        assert all(word for t, word in client.holds if t > held)
    processes["planner"] = start_planner(cwd)  # for the next test


def test_d_sigint_shuts_every_node_down_cleanly_even_mid_plan(rig):
    client, processes, goal_image, _, _ = rig
    eventually(lambda: client.action.server_is_ready() and client.beats and client.beats[-1][1] == "", 90,
               "the new planner")
    feedback: list = []
    handle = client.send(goal_of(goal_image, max_steps=50), feedback)
    assert handle.accepted
    wait_for_motion(handle, feedback, processes["planner"])
    result = handle.get_result_async()
    for name in ("planner", "watchdog", "sim"):
        status, output = interrupt(processes.pop(name), timeout_s=30)
        assert status == 0 and "Traceback" not in output, (name, output[-3000:])
        if name == "planner":  # the running plan ended, and said why, before the node went
            assert result.done() and result.result().result.outcome == Result.OUTCOME_REFUSED
            assert result.result().result.stop_reason == "stopped: the planner node is shutting down"
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
