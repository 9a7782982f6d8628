"""The watchdog node: `watchdog_rules` over ROS 2. It listens to the camera, the robot state, the
planner's heartbeat and the commands sent to the arm, checks on a steady-clock timer, and tells
the arm's bridges whether they may follow the planner.

What it says, and what a bridge must do with it:

* `hold_topic` (`std_msgs/Bool`, reliable, transient local, depth 1), published every check period:
  True means do not follow the planner: send no new target, hold the current pose (path (a): publish
  the measured pose as the target once; path (b): cancel the `PTPMotion` goal). A bridge must also
  hold when no message came on it for `watchdog_rules.HOLD_BUDGET_S` (the watchdog is gone) and
  before the first one.
* `status_topic` (`std_msgs/String`, latched) on every change: the verdict and its reasons.
* `fresh_plan_topic` (`std_msgs/Bool`, latched) on every change: after an error recovery or a
  cleared user stop the planner must start another plan (a new `PlanToGoal` goal) and name it in
  its heartbeat; the hold stays until it does.
* On RECOVER it sends one `franka_msgs/ErrorRecovery` goal to `error_recovery_action` (never
  waiting inside a callback) and logs the outcome.
* `~/clear_user_stop` (`std_srvs/Trigger`): the operator's clear of a latched USER_STOPPED.

The planner's heartbeat is a `std_msgs/String` naming the plan it is executing (the PlanToGoal goal
id; "" when idle), sent at least every `heartbeat_timeout_s / 3`, and at once when a plan starts.
While a plan runs, a target stamped when sent must reach `command_topic` at least every
`max_command_age_s`; the bridge's own hold target counts, so a hold for a stale command lasts until
the arm has been told to stay where it is. Everything is subscribed best effort (the sensor-data QoS), which also receives from reliable
publishers. A lifecycle node: configure reads and checks the parameters, activate subscribes and
starts checking, deactivate stops and leaves the hold on; the rules, with a latched user stop,
live from configure to cleanup. One SingleThreadedExecutor; the input callbacks only note a time
and a mode, so the check timer is never late by more than one message's conversion.

Run alone: ``python -m vjepa_wm.ros_nodes.watchdog_node --ros-args -p image_topic:=/camera/color/image_raw``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from franka_msgs.action import ErrorRecovery
from franka_msgs.msg import Errors, FrankaRobotState
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from . import franka_interface as fi
from .camera_bridge import sensor_qos
from .node_process import run_node
from .parameters import Spec, declare, read
from .watchdog_rules import HOLD_BUDGET_S, Decision, Verdict, Watchdog, WatchdogLimits

ERROR_FLAGS = tuple(Errors.get_fields_and_field_types())


@dataclass(frozen=True)
class WatchdogTopics:
    image_topic: str = "camera/image_raw"  # sensor_msgs/Image from the camera (the camera bridge's input; the sim node publishes it)
    robot_state_topic: str = fi.ROBOT_STATE_TOPIC  # franka_msgs/FrankaRobotState
    heartbeat_topic: str = "vjepa_wm/planner/heartbeat"  # std_msgs/String: the plan being executed ("" idle)
    command_topic: str = fi.DEFAULT_TARGET_TOPIC  # geometry_msgs/PoseStamped: the targets sent to the arm
    error_recovery_action: str = fi.ERROR_RECOVERY_ACTION  # franka_msgs/action/ErrorRecovery
    hold_topic: str = "vjepa_wm/watchdog/hold"  # std_msgs/Bool out, every check: True = do not follow the planner
    status_topic: str = "vjepa_wm/watchdog/status"  # std_msgs/String out, latched: the verdict and its reasons
    fresh_plan_topic: str = "vjepa_wm/watchdog/fresh_plan_required"  # std_msgs/Bool out, latched

    def __post_init__(self):
        for name, value in vars(self).items():
            if not value.strip():
                raise ValueError(f"{name} must name a topic or action")


TOPIC_PARAMETERS = {name: Spec(description, read_only=True) for name, description in {
    "image_topic": "camera images (sensor_msgs/Image) whose arrival and stamps are watched",
    "robot_state_topic": "franka_msgs/FrankaRobotState: stamps, robot_mode and current_errors",
    "heartbeat_topic": "planner heartbeat (std_msgs/String naming the plan executing, empty when idle)",
    "command_topic": "targets sent to the arm (geometry_msgs/PoseStamped)",
    "error_recovery_action": "franka_msgs/action/ErrorRecovery server called on REFLEX or current_errors",
    "hold_topic": "std_msgs/Bool published every check; True: the arm must not follow the planner",
    "status_topic": "std_msgs/String (latched): the verdict and its reasons, on every change",
    "fresh_plan_topic": "std_msgs/Bool (latched): a new plan is required before moving again",
}.items()}

LIMIT_PARAMETERS = {
    "max_image_age_s": Spec("a camera frame older than this (arrival; stamp + skew) holds the arm", low=0.001, high=60.0),
    "max_state_age_s": Spec("robot state older than this (arrival; stamp + skew) holds the arm", low=0.001, high=60.0),
    "heartbeat_timeout_s": Spec("no planner heartbeat in this time holds the arm", low=0.001, high=60.0),
    "max_command_age_s": Spec("while a plan runs, a last command older than this holds the arm", low=0.001, high=60.0),
    "check_period_s": Spec("seconds between checks (steady clock)", low=0.001, high=HOLD_BUDGET_S / 2),
    "clock_skew_s": Spec("seconds stamps may differ from this node's clock", low=0.0001, high=10.0),
}

FLUSH_S = 0.2  # how long shutting down waits for the readers to acknowledge the last hold

LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class WatchdogNode(LifecycleNode):
    def __init__(self, node_name: str = "watchdog", **kwargs):
        super().__init__(node_name, **kwargs)
        declare(self, WatchdogLimits(), LIMIT_PARAMETERS)
        declare(self, WatchdogTopics(), TOPIC_PARAMETERS)
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.rules: Watchdog | None = None
        self.topics: WatchdogTopics | None = None
        self._outputs: dict[str, object] = {}
        self._recovery: ActionClient | None = None
        self._inputs: list = []  # these three are made at activate
        self._timer = None
        self._service = None
        self._last: Decision | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            limits, self.topics = read(self, WatchdogLimits), read(self, WatchdogTopics)
        except ValueError as err:
            self.get_logger().error(f"watchdog not configured: {err}")
            return TransitionCallbackReturn.FAILURE
        self.rules = Watchdog(limits, lambda: self.steady.now().nanoseconds * 1e-9,
                              lambda: self.get_clock().now().nanoseconds * 1e-9)
        topics = self.topics
        self._outputs = {"hold": self.create_publisher(Bool, topics.hold_topic, LATCHED),
                         "status": self.create_publisher(String, topics.status_topic, LATCHED),
                         "fresh": self.create_publisher(Bool, topics.fresh_plan_topic, LATCHED)}
        self._recovery = ActionClient(self, ErrorRecovery, topics.error_recovery_action)
        self._publish_hold("watchdog configured, not active")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        topics, rules, qos = self.topics, self.rules, sensor_qos(1)
        self._inputs = [
            self.create_subscription(Image, topics.image_topic, lambda msg: rules.image(seconds(msg.header.stamp)), qos),
            self.create_subscription(FrankaRobotState, topics.robot_state_topic, self._robot_state, qos),
            self.create_subscription(String, topics.heartbeat_topic, lambda msg: rules.heartbeat(msg.data), qos),
            self.create_subscription(PoseStamped, topics.command_topic, lambda msg: rules.command(seconds(msg.header.stamp)),
                                     qos),
        ]
        self._service = self.create_service(Trigger, "~/clear_user_stop", self._clear_user_stop)
        self._timer = self.create_timer(rules.limits.check_period_s, self._check, clock=self.steady)
        self._check()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_checking()
        self._publish_hold("watchdog inactive")
        self._last = None  # so that activating again says where things stand
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_checking()
        if self._outputs:
            self._publish_hold("watchdog shutting down")
            for publisher in self._outputs.values():  # delivered before the publishers go, where a reader listens
                publisher.wait_for_all_acked(Duration(seconds=FLUSH_S))
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_checking(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self.destroy_service(self._service)
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs, self._timer, self._service = [], None, None

    def _release(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        if self._recovery is not None:
            self._recovery.destroy()
            self._recovery = None
        self.rules, self.topics, self._last = None, None, None

    # --- inputs ----------------------------------------------------------------------------------
    def _robot_state(self, msg: FrankaRobotState) -> None:
        errors = msg.current_errors
        self.rules.robot_state(seconds(msg.header.stamp), msg.robot_mode,
                               tuple(flag for flag in ERROR_FLAGS if getattr(errors, flag)))

    def _clear_user_stop(self, request, response):
        refusal = self.rules.clear_user_stop()
        response.success, response.message = refusal is None, refusal or "user stop cleared; a fresh plan is required"
        self.get_logger().warning(f"operator clear_user_stop: {response.message}")
        self._check()
        return response

    # --- the check -------------------------------------------------------------------------------
    def _check(self) -> None:
        decision = self.rules.check()
        self._outputs["hold"].publish(Bool(data=decision.hold))
        if decision.verdict is Verdict.RECOVER:
            self._call_recovery()
        last = self._last
        if last is None or (decision.verdict, decision.subjects) != (last.verdict, last.subjects):
            # Said once per change of what is wrong, with the numbers at that moment; an age counting
            # up is not news.
            self._outputs["status"].publish(String(data=decision.summary()))
            self._log(decision)
        if last is None or decision.fresh_plan_required != last.fresh_plan_required:
            self._outputs["fresh"].publish(Bool(data=decision.fresh_plan_required))
        self._last = decision

    def _log(self, decision: Decision) -> None:
        # One call site per severity: rclpy refuses a logging call whose severity changes.
        if decision.verdict is Verdict.OK:
            self.get_logger().info(decision.summary())
        elif decision.verdict is Verdict.HOLD:
            self.get_logger().warning(decision.summary())
        else:
            self.get_logger().error(decision.summary())

    def _publish_hold(self, why: str) -> None:
        self._outputs["hold"].publish(Bool(data=True))
        self._outputs["status"].publish(String(data=f"HOLD: {why}"))

    def _call_recovery(self) -> None:
        name = self.topics.error_recovery_action
        if not self._recovery.server_is_ready():
            self.get_logger().error(f"no ErrorRecovery server at {name}: the robot needs recovering by hand")
            return
        self.get_logger().error(f"calling error recovery ({name})")
        self._recovery.send_goal_async(ErrorRecovery.Goal()).add_done_callback(self._recovery_accepted)

    def _recovery_accepted(self, future) -> None:
        handle = future.result()
        if not handle.accepted:
            self.get_logger().error("error recovery refused by the robot; recover by hand")
            return
        handle.get_result_async().add_done_callback(
            lambda result: self.get_logger().warning(f"error recovery finished (status {result.result().status})"))


def main(args: list[str] | None = None) -> int:
    """Configure, activate and spin until SIGINT or SIGTERM; exit status 1 if the parameters are refused.
    Its last word on the hold topic is: hold (the shutdown transition publishes it)."""
    return run_node(WatchdogNode, args, on_stop=WatchdogNode.trigger_shutdown)


if __name__ == "__main__":
    sys.exit(main())
