"""The operator's side of the `PlanToGoal` action: goal images and their settings into a goal
message, sent to a planner node, its feedback and result collected as they come.

What `vjepa-wm ros-goal` runs against a deployment, and what `eval-sim --ros` / `demo --ros` build
on (`evaluation.ros_reach` adds the sim's pose and camera). The client is a node of its own, in an
rclpy context of its own with a SingleThreadedExecutor spinning in a thread, so the caller's
thread only waits; a goal canceled by the caller (`stop`) is canceled on the planner too, whose
result then says CANCELED.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import rclpy
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from vjepa_wm_interfaces.action import PlanToGoal
from vjepa_wm_interfaces.msg import PinnedDimension

from vjepa_wm.planner.goals import Goal

from .image_messages import rgb8_message
from .planner_node import PlannerNodeConfig

ENDED = (GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_CANCELED, GoalStatus.STATUS_ABORTED)
FEEDBACK_SETTLE_S = 0.2  # after a goal ends, how long without feedback before its result is fetched
OUTCOMES = {PlanToGoal.Result.OUTCOME_REACHED: "REACHED", PlanToGoal.Result.OUTCOME_BUDGET: "BUDGET",
            PlanToGoal.Result.OUTCOME_REFUSED: "REFUSED", PlanToGoal.Result.OUTCOME_CANCELED: "CANCELED"}


def goal_message(goals: list[Goal], max_steps: int = 0, stop_energy: float | None = None) -> PlanToGoal.Goal:
    """`goals` (images with their settings) as a `PlanToGoal.Goal`; an unset setting goes as 0,
    which the node reads as its own default."""
    return PlanToGoal.Goal(
        goal_images=[rgb8_message(goal.image, 0.0, "goal") for goal in goals],
        max_steps_per_goal=[goal.max_steps or 0 for goal in goals],
        switch_energy=[float(goal.switch_energy or 0.0) for goal in goals],
        pinned=[PinnedDimension(goal_index=index, dimension=dim, value=value)
                for index, goal in enumerate(goals) for dim, value in (goal.pinned or {}).items()],
        max_steps=max_steps, stop_energy=float(stop_energy or 0.0))


@dataclass
class Feedback:
    """One applied step as the client received it (the fields `save_energy_plot` reads)."""

    step: int  # 0-based, as `planner.mpc.StepRecord`
    goal_index: int
    switched_goal: bool
    observed_energy: float
    planned_energy: float
    action: list[float]
    received: float  # monotonic seconds


@dataclass
class PlanOutcome:
    result: PlanToGoal.Result
    accepted_at: float  # monotonic seconds
    feedback: list[Feedback] = field(default_factory=list)
    debug_frames: list[np.ndarray] = field(default_factory=list)  # view | goal per step, where collected

    @property
    def outcome(self) -> str:
        return OUTCOMES.get(self.result.outcome, f"unknown ({self.result.outcome})")

    def step_seconds(self) -> list[float]:
        times = [self.accepted_at] + [f.received for f in self.feedback]
        return list(np.diff(times))


class PlanClient:
    """A `PlanToGoal` client node on `domain` (None: ROS_DOMAIN_ID, else 0) for the action `action_name`."""

    def __init__(self, domain: int | None = None, action_name: str = PlannerNodeConfig().action_name,
                 node_name: str = "vjepa_wm_plan_client"):
        self.context = Context()
        options = {} if domain is None else {"domain_id": domain}
        rclpy.init(args=["--ros-args", "--disable-external-lib-logs"], context=self.context, **options)
        self.node = Node(node_name, context=self.context)
        self.action_name = self.node.resolve_topic_name(action_name)
        self.action = ActionClient(self.node, PlanToGoal, action_name)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def wait_for_planner(self, timeout_s: float) -> None:
        """TimeoutError naming the action if no planner serves it within `timeout_s`."""
        if not self.action.wait_for_server(timeout_sec=timeout_s):
            raise TimeoutError(f"no planner serves {self.action_name} (waited {timeout_s:g} s): is the deployment up, "
                               f"on this ROS_DOMAIN_ID?")

    def plan(self, goals: list[Goal], max_steps: int, timeout_s: float, stop_energy: float | None = None,
             on_feedback: Callable[[Feedback], object] | None = None, stop: threading.Event | None = None) -> PlanOutcome:
        """Send one goal and wait for its result; ValueError if it is rejected, TimeoutError if it
        takes longer than `timeout_s` (the goal is canceled then). `stop` set: cancel it and wait
        for the planner's answer."""
        feedback: list[Feedback] = []

        def take(message) -> None:
            f = message.feedback
            feedback.append(Feedback(f.step - 1, f.goal_index, f.switched_goal, f.observed_energy, f.planned_energy,
                                     list(f.action), time.monotonic()))
            if on_feedback is not None:
                on_feedback(feedback[-1])

        sent = self.action.send_goal_async(goal_message(goals, max_steps, stop_energy), feedback_callback=take)
        handle = self._wait(sent, 10.0, "the goal's acceptance")
        accepted_at = time.monotonic()
        if not handle.accepted:
            raise ValueError("the planner rejected the goal (is another goal running?)")
        deadline = accepted_at + timeout_s
        canceled = False
        while handle.status not in ENDED:
            late = time.monotonic() > deadline
            if (late or (stop is not None and stop.is_set())) and not canceled:
                handle.cancel_goal_async()
                canceled, deadline = True, time.monotonic() + 10.0  # the planner holds, then answers
                if late:
                    self._wait(handle.get_result_async(), 10.0, "the canceled goal's result")
                    raise TimeoutError(f"the plan took longer than {timeout_s:.0f} s: canceled")
            elif canceled and late:
                raise TimeoutError("the planner did not answer the cancel in 10 s")
            time.sleep(0.01)
        # The result is asked for only once the goal has ended and its feedback has stopped coming:
        # rclpy drops feedback that arrives after the result, and feedback travels on a topic of its own.
        settled = time.monotonic()
        while time.monotonic() - settled < FEEDBACK_SETTLE_S:
            count = len(feedback)
            time.sleep(0.02)
            if len(feedback) != count:
                settled = time.monotonic()
        result = self._wait(handle.get_result_async(), 10.0, "the ended goal's result")
        return PlanOutcome(result.result, accepted_at, feedback)

    def latched_image(self, topic: str, timeout_s: float) -> np.ndarray:
        """The RGB image of one message on the latched `topic` (e.g. the sim node's goal view);
        TimeoutError if none comes, `images.ImageRejected` if its encoding is not accepted."""
        from sensor_msgs.msg import Image

        from .images import image_to_rgb

        got = threading.Event()
        taken: list = []
        subscription = self.node.create_subscription(
            Image, topic, lambda msg: (taken.append(msg), got.set()),
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        try:
            if not got.wait(timeout_s):
                raise TimeoutError(f"no image on {self.node.resolve_topic_name(topic)} in {timeout_s:g} s")
        finally:
            self.node.destroy_subscription(subscription)
        return image_to_rgb(taken[0])

    @staticmethod
    def _wait(future, timeout_s: float, what: str):
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(0.01)
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=10)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
