"""Scripted exploration for data collection: random reaches, grasps, pushes and releases.

The script is a privileged expert: it reads object poses from the simulator (the planner never
does). It moves through waypoints with bounded, noisy steps, so grasps sometimes miss and pushes
sometimes slide past; those failures are kept, as DROID keeps its failed episodes. Each episode is a
chain of primitives that fills a fixed action budget.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vjepa_wm.embodiments import rotations
from vjepa_wm.sim.franka import tasks
from vjepa_wm.sim.franka.env import FrankaEnv
from vjepa_wm.sim.franka.objects import OBJECTS
from vjepa_wm.sim.franka.tasks import EE_HIGH, EE_LOW, LIFT_THRESHOLD, OBJECT_HIGH, OBJECT_LOW, OBJECT_SEPARATION, REACH_THRESHOLD

DOWN = np.array([np.pi, 0.0, 0.0])
OBJECT_COLOURS = {"cup": "red cup", "box": "blue box"}
PRIMITIVE_WEIGHTS = {"grasp": 0.45, "push": 0.25, "reach": 0.30}
GRASP_FOLLOW_UPS = ("place", "release", "carry")
PUSH_SUCCESS = 0.03  # m the object must move for a push to count


@dataclass(frozen=True)
class Waypoint:
    """Where the end effector should go next: position, yaw of the downward gripper, gripper command."""

    position: np.ndarray
    yaw: float
    gripper: float
    tolerance: float = 0.008
    max_actions: int = 10


@dataclass
class Style:
    """Per-episode motion style, so actions vary in size and smoothness across episodes."""

    step: float  # m per action at most
    noise: float  # std of the xyz noise added to every action (m)
    rotation_noise: float  # std of the rotation noise (rad)
    grasp_error: float  # std of the grasp-point error (m); large values make misses


@dataclass
class Outcome:
    """What one episode tried (language instruction parts) and whether every attempt worked."""

    phrases: list[str] = field(default_factory=list)
    results: list[bool] = field(default_factory=list)
    unfinished: str = ""  # the attempt the action budget cut short, if any

    @property
    def success(self) -> bool:
        return bool(self.results) and all(self.results)

    @property
    def instruction(self) -> str:
        """The judged attempts in order (a repeat named once); the cut-short one if none was judged."""
        kept = [p for i, p in enumerate(self.phrases) if i == 0 or p != self.phrases[i - 1]]
        return ", then ".join(kept) or self.unfinished


def wrap(angle: float, period: float) -> float:
    """`angle` shifted by multiples of `period` into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


class Explorer:
    """Drives a `FrankaEnv` through a random chain of primitives within `budget` actions."""

    def __init__(self, env: FrankaEnv, rng: np.random.Generator, budget: int):
        self.env = env
        self.rng = rng
        self.budget = budget
        self.used = 0
        self.style = Style(step=float(rng.uniform(0.03, 0.08)), noise=float(rng.uniform(0.001, 0.008)),
                           rotation_noise=float(rng.uniform(0.0, 0.03)), grasp_error=float(rng.choice([0.004, 0.01, 0.02])))

    @property
    def left(self) -> int:
        return self.budget - self.used

    def run(self) -> Outcome:
        outcome = Outcome()
        names = list(PRIMITIVE_WEIGHTS)
        weights = np.array(list(PRIMITIVE_WEIGHTS.values()))
        while self.left > 0:
            primitive = names[int(self.rng.choice(len(names), p=weights / weights.sum()))]
            target = str(self.rng.choice(list(OBJECTS)))
            phrase, result = getattr(self, primitive)(target)
            if result is None:  # the budget ran out before the attempt could be judged
                outcome.unfinished = phrase
            else:
                outcome.phrases.append(phrase)
                outcome.results.append(result)
        return outcome

    # -- primitives ---------------------------------------------------------------------------------
    def reach(self, _target: str) -> tuple[str, bool | None]:
        """One to three random waypoints; the gripper sometimes toggles on the way."""
        gripper = float(self.env.state()[6] > 0.5)
        waypoint = None
        for _ in range(int(self.rng.integers(1, 4))):
            if self.rng.random() < 0.3:
                gripper = 1.0 - gripper
            position = self.rng.uniform(EE_LOW + [0, 0, 0.05], EE_HIGH)
            waypoint = Waypoint(position, float(self.rng.uniform(-0.6, 0.6)), gripper)
            if not self.go(waypoint):
                return "move the gripper around", None
        reached = np.linalg.norm(self.env.state()[:3] - waypoint.position) < REACH_THRESHOLD
        return "move the gripper around", bool(reached)

    def grasp(self, name: str) -> tuple[str, bool | None]:
        """Approach from above, close, lift; then place elsewhere, release in the air, or carry around."""
        spec = OBJECTS[name]
        position = self.env.scene.object_position(name)
        yaw = self._grasp_yaw(name)
        error = np.append(self.rng.normal(0.0, self.style.grasp_error, 2), 0.0)
        grasp_point = tasks.grasp_point(name, position[0], position[1]) + error
        lift = float(self.rng.uniform(0.08, 0.16))
        phrase = f"pick up the {OBJECT_COLOURS[name]}"
        plan = [
            Waypoint(grasp_point + [0, 0, 0.10], yaw, 0.0),
            Waypoint(grasp_point, yaw, 0.0, tolerance=0.005),
            Waypoint(grasp_point, yaw, 1.0, max_actions=2),
            Waypoint(grasp_point + [0, 0, lift], yaw, 1.0),
        ]
        start_height = self.env.scene.object_position(name)[2]
        for waypoint in plan:
            if not self.go(waypoint):
                return phrase, None
        lifted = self.env.scene.object_position(name)[2] - start_height >= LIFT_THRESHOLD
        follow_up = str(self.rng.choice(GRASP_FOLLOW_UPS))
        if follow_up == "place":
            spot = self._free_spot(name)
            above = np.array([spot[0], spot[1], spec.rest_height + 0.10])
            for waypoint in (Waypoint(above, yaw, 1.0), Waypoint(above - [0, 0, 0.08], yaw, 1.0),
                             Waypoint(above - [0, 0, 0.08], yaw, 0.0, max_actions=2), Waypoint(above, yaw, 0.0)):
                if not self.go(waypoint):
                    break
            return f"{phrase} and put it down elsewhere", bool(lifted)
        if follow_up == "carry":
            held = self.rng.uniform(EE_LOW + [0, 0, 0.1], EE_HIGH)
            self.go(Waypoint(held, yaw, 1.0))
        self.go(Waypoint(self.env.state()[:3], yaw, 0.0, max_actions=2))
        return f"{phrase} and drop it", bool(lifted)

    def push(self, name: str) -> tuple[str, bool | None]:
        """Lower the closed gripper beside the object and sweep through where it stands."""
        position = self.env.scene.object_position(name)
        heading = float(self.rng.uniform(-np.pi, np.pi))
        direction = np.array([np.cos(heading), np.sin(heading), 0.0])
        height = float(self.rng.uniform(0.015, 0.03))
        start = np.array([position[0], position[1], height]) - 0.09 * direction
        start[:2] = np.clip(start[:2], EE_LOW[:2], EE_HIGH[:2])
        end = start + float(self.rng.uniform(0.12, 0.2)) * direction
        yaw = float(self.rng.uniform(-0.6, 0.6))
        for waypoint in (Waypoint(start + [0, 0, 0.12], yaw, 1.0), Waypoint(start, yaw, 1.0), Waypoint(end, yaw, 1.0),
                         Waypoint(end + [0, 0, 0.10], yaw, 1.0)):
            if not self.go(waypoint):
                return f"push the {OBJECT_COLOURS[name]}", None
        moved = np.linalg.norm(self.env.scene.object_position(name)[:2] - position[:2]) >= PUSH_SUCCESS
        return f"push the {OBJECT_COLOURS[name]}", bool(moved)

    # -- motion -------------------------------------------------------------------------------------
    def go(self, waypoint: Waypoint) -> bool:
        """Step towards `waypoint` until reached or its action allowance is spent; False when the budget ends."""
        for _ in range(waypoint.max_actions):
            if self.left <= 0:
                return False
            before = self.env.state()
            self.env.apply(self._action(before, waypoint))
            self.used += 1
            after = self.env.state()
            # Reached: in position, turned, and the gripper has stopped moving (at its target or on an object).
            near = np.linalg.norm(after[:3] - waypoint.position) < waypoint.tolerance
            turned = rotations.rotation_angle(self._target_rotation(waypoint) @ rotations.euler_to_matrix(after[3:6]).T) < 0.05
            if near and turned and abs(after[6] - before[6]) < 0.01:
                return True
        return self.left > 0

    def _action(self, state: np.ndarray, waypoint: Waypoint) -> np.ndarray:
        translation = waypoint.position - state[:3]
        distance = float(np.linalg.norm(translation))
        if distance > self.style.step:
            translation *= self.style.step / distance
        translation += self.rng.normal(0.0, self.style.noise, 3)
        delta = self._target_rotation(waypoint) @ rotations.euler_to_matrix(state[3:6]).T
        vector = rotations.rotation_vector(delta)
        angle = float(np.linalg.norm(vector))
        if angle > 0.3:
            vector *= 0.3 / angle
        vector += self.rng.normal(0.0, self.style.rotation_noise, 3)
        rotation = rotations.matrix_to_euler(rotations.matrix_from_rotation_vector(vector))
        # Closing asks for a full close (the fingers stop at the object); opening goes to the waypoint's value.
        gripper = 1.0 - state[6] if waypoint.gripper >= 1.0 else waypoint.gripper - state[6]
        return np.concatenate([translation, rotation, [gripper]])

    def _free_spot(self, name: str) -> np.ndarray:
        """A table spot for object `name` clear of the other objects (the last draw if none is)."""
        others = [self.env.scene.object_position(other)[:2] for other in OBJECTS if other != name]
        for _ in range(100):
            spot = self.rng.uniform(OBJECT_LOW, OBJECT_HIGH)
            if all(np.linalg.norm(spot - other) >= OBJECT_SEPARATION for other in others):
                break
        return spot

    @staticmethod
    def _target_rotation(waypoint: Waypoint) -> np.ndarray:
        return rotations.euler_to_matrix(DOWN + [0.0, 0.0, waypoint.yaw])

    def _grasp_yaw(self, name: str) -> float:
        """A gripper yaw that closes across the object: across the box's faces, or with the cup's handle
        along the gripper's x so the fingers straddle the body only."""
        yaw = self.env.scene.object_yaw(name)
        return wrap(yaw, np.pi / 2) if name == "box" else wrap(yaw, np.pi)
