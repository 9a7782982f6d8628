"""`vjepa-wm ros-goal IMAGE [IMAGE ...]`: send goal images to a running planner node (the
`PlanToGoal` action) and follow the plan: one line per applied step, then the result.

The images are sub-goals in order (PNG/JPEG, the camera's size: the planner refuses another);
a setting left at 0 takes the planner node's default. Run it in the deployment's ROS domain
(ROS_DOMAIN_ID, or --domain-id); Ctrl-C cancels the goal (the arm holds) and waits for the
planner's answer. Exit status 0 when the plan ended REACHED or BUDGET, 1 otherwise. E.g.
  vjepa-wm ros-launch config/sim.yaml &          # the sim arm, watchdog and planner
  vjepa-wm ros-goal --goal-topic /franka_sim/goal_image --max-steps 20   # the sim task's goal view
  vjepa-wm ros-goal goal.png --max-steps 20
  vjepa-wm ros-goal grasp.png place.png --max-steps-per-goal '[10, 10]' --pin '["0:dgripper=0.0"]'
"""
from __future__ import annotations

import signal
from dataclasses import dataclass, field

import numpy as np

from vjepa_wm.config_cli import ConfigCommand, add_config_command, positional
from vjepa_wm.embodiments import Franka


@dataclass
class RosGoalConfig:
    images: list[str] = positional(default_factory=list, nargs="*")  # goal images (sub-goals in order)
    goal_topic: str | None = None  # or: the goal image from this latched topic (the sim node's /franka_sim/goal_image)
    max_steps: int = 0  # actions over all goals (0: the planner's default)
    stop_energy: float | None = None  # end REACHED when the last goal's energy falls to this (null: the planner's)
    max_steps_per_goal: list[int] = field(default_factory=list)  # one budget per image, or none (0: the planner's)
    switch_energy: list[float] = field(default_factory=list)  # move to the next image below this energy, per image
    pin: list[str] = field(default_factory=list)  # fixed action values, "GOAL:DIM=VALUE" (DIM a Franka action name or index)
    action_name: str = "vjepa_wm/plan_to_goal"  # the planner's action (/NS/vjepa_wm/plan_to_goal in a namespace)
    domain_id: int | None = None  # ROS domain (null: ROS_DOMAIN_ID, else 0)
    wait_s: float = 30.0  # how long to wait for a planner to serve the action
    timeout_s: float = 600.0  # cancel the goal if it has not ended after this long
    json: str | None = None  # also write the steps and the result here

    def __post_init__(self):
        if bool(self.images) == bool(self.goal_topic):
            raise ValueError("ros-goal needs goal images or --goal-topic (one of the two)")
        for name, values in (("max_steps_per_goal", self.max_steps_per_goal), ("switch_energy", self.switch_energy)):
            if values and len(values) != self.count:
                raise ValueError(f"{name} has {len(values)} entries for {self.count} goal images (give none or one per image)")
        if self.max_steps < 0 or any(steps < 0 for steps in self.max_steps_per_goal):
            raise ValueError("step budgets must be >= 0 (0: the planner's default)")
        if not (self.wait_s > 0 and self.timeout_s > 0):
            raise ValueError("wait_s and timeout_s must be positive")
        self.pins()

    @property
    def count(self) -> int:
        """How many goal images: the files', or the topic's one."""
        return len(self.images) or 1

    def pins(self) -> list[dict[int, float]]:
        """The pins per goal image; ValueError naming a malformed one."""
        franka = Franka()
        per_goal: list[dict[int, float]] = [{} for _ in range(self.count)]
        for text in self.pin:
            try:
                goal, rest = text.split(":", 1)
                dim, value = rest.split("=", 1)
                index = int(goal)
                dimension = int(dim) if dim.strip().isdigit() else franka.index(dim.strip())
                per_goal[index][dimension] = float(value)
            except (ValueError, IndexError, KeyError) as err:
                raise ValueError(f"pin {text!r}: expected GOAL:DIM=VALUE with GOAL 0..{self.count - 1} and DIM "
                                 f"one of {', '.join(franka.action_names)} or its index ({err})") from None
        return per_goal


def read_images(paths: list[str]) -> list[np.ndarray]:
    """RGB images from files; OSError naming one that cannot be read."""
    import cv2

    images = []
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"{path}: not a readable image")
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return images


def goals_of(config: RosGoalConfig, images: list[np.ndarray]) -> list:
    """The goal images with their per-goal settings (0: the planner's default)."""
    from vjepa_wm.planner.goals import Goal

    budgets = config.max_steps_per_goal or [0] * config.count
    energies = config.switch_energy or [0.0] * config.count
    return [Goal(image=image, pinned=pinned or None, max_steps=budget or None, switch_energy=energy or None)
            for image, pinned, budget, energy in zip(images, config.pins(), budgets, energies)]


def run(config: RosGoalConfig) -> int:
    import json
    import threading
    from dataclasses import asdict
    from pathlib import Path

    from vjepa_wm.ros_nodes.plan_client import PlanClient

    images = read_images(config.images)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: (print("canceling the goal ..."), stop.set()))
    client = PlanClient(config.domain_id, config.action_name, node_name="vjepa_wm_ros_goal")
    try:
        if config.goal_topic:
            images = [client.latched_image(config.goal_topic, config.wait_s)]
        goals = goals_of(config, images)
        client.wait_for_planner(config.wait_s)
        print(f"{len(goals)} goal image(s) to {client.action_name}")

        def show(step) -> None:
            print(f"step {step.step + 1} (goal {step.goal_index}{', switched' if step.switched_goal else ''}): "
                  f"energy {step.observed_energy:.4f}, planned {step.planned_energy:.4f}, "
                  f"action [{', '.join(f'{value:+.4f}' for value in step.action)}]")

        outcome = client.plan(goals, config.max_steps, config.timeout_s, config.stop_energy, show, stop)
    finally:
        client.close()
        signal.signal(signal.SIGINT, previous)
    result = outcome.result
    print(f"{outcome.outcome} after {result.steps} step(s) (goal {result.goal_index}, final energy "
          f"{result.final_energy:.4f}): {result.stop_reason}")
    if config.json:
        record = {"outcome": outcome.outcome, "stop_reason": result.stop_reason, "steps": int(result.steps),
                  "goal_index": int(result.goal_index), "final_energy": float(result.final_energy),
                  "images": config.images or [config.goal_topic], "feedback": [asdict(step) for step in outcome.feedback]}
        Path(config.json).write_text(json.dumps(record, indent=2, allow_nan=True) + "\n")
    return 0 if outcome.outcome in ("REACHED", "BUDGET") else 1


def register(subparsers) -> None:
    add_config_command(subparsers, "ros-goal", ConfigCommand(RosGoalConfig, run),
                       help="send goal images to a running planner node and follow the plan", description=__doc__)
