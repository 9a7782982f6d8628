"""Tabletop tasks of the V-JEPA 2-AC robot evaluation: reach, grasp, reach-with-object, pick-and-place.

A task samples an `Episode` from a seeded generator: the start `Configuration`, the goal
configuration(s) and the quantities its success check needs. The env renders goal images by
putting the scene into a goal configuration. Success is judged from simulator state and is
reported in `info` only: it must never reach the planner (peers that let it into CEM/MPC report
inflated numbers).

Tasks that handle an object come as stages, one goal image each, because a planner that looks
one step ahead can only descend its energy: from above a cup it cannot see that going down,
closing and lifting leads to the "cup in the air" image. Grasp: hover above the object, open
fingers around it, fingers closed on it, lifted. Pick-and-place: the grasp stages, then carried
above the target spot, lowered onto it, released. Each stage also says what the gripper does on
the way there (`gripper_commands`: keep, close or open) and whether it lies straight above or
below the one before (`vertical_moves`), which a planner may be given instead of searching them,
and a step budget (`Task.stage_steps`).

Thresholds follow the published evaluations: reach within 4 cm of the goal position, an object
lifted by at least 5 cm, a placed object within 5 cm of its target (panda-gym's threshold).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vjepa_wm.sim.franka.objects import OBJECTS, opening_to_gripper

if TYPE_CHECKING:  # the PyBullet world, only named in annotations here
    from vjepa_wm.sim.franka.scene import Scene

REACH_THRESHOLD = 0.04
LIFT_THRESHOLD = 0.05
PLACE_THRESHOLD = 0.05
HELD_DISTANCE = 0.05  # a held object's centre stays within this of the grasp point

OBJECT_LOW, OBJECT_HIGH = np.array([0.40, -0.18]), np.array([0.62, 0.18])
OBJECT_SEPARATION = 0.14  # between object centres (cup with handle ~11 cm across)
OBJECT_YAW = 0.4  # |yaw| of placed objects: the cup's handle points away from the robot, clear of the fingers
EE_LOW, EE_HIGH = np.array([0.36, -0.20, 0.05]), np.array([0.64, 0.20, 0.28])
START_LOW, START_HIGH = np.array([0.38, -0.15, 0.16]), np.array([0.60, 0.15, 0.28])
# Where planning should keep the end effector: the region the scripted data covers (the EE box
# grown by 2 cm, down to the table for grasps and pushes), where the camera sees the arm and the
# world model has seen it move. Outside it a goal-image energy can fall for the wrong reason (an
# arm that leaves the picture differs less from the goal image than one in the wrong place).
PLAN_LOW, PLAN_HIGH = (0.34, -0.22, 0.01), (0.66, 0.22, 0.30)
MIN_GOAL_DISTANCE = 0.10
LIFT_HEIGHT = 0.10
CARRY_HEIGHT = 0.10
HOVER_HEIGHT = 0.10  # above the grasp point, where the fingers start their way down around the object


@dataclass(frozen=True)
class Configuration:
    """Where everything is. The gripper points down, turned by `ee_yaw` about the vertical
    (state Euler angles (pi, 0, ee_yaw)). `objects`: name -> (x, y, yaw) standing on the table;
    `held`: an object in the closed gripper instead (centred on the grasp point, its yaw kept)."""

    ee_position: tuple[float, float, float]
    gripper: float = 0.0
    ee_yaw: float = 0.0
    objects: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    held: str | None = None


@dataclass(frozen=True)
class Episode:
    """One sampled task instance. `goals`: sub-goals in order, the final goal last."""

    task: str
    start: Configuration
    goals: tuple[Configuration, ...]
    target_object: str | None = None
    target_position: tuple[float, float, float] | None = None


def sample_objects(rng: np.random.Generator, names=tuple(OBJECTS)) -> dict[str, tuple[float, float, float]]:
    """Object positions on the table, at least OBJECT_SEPARATION apart, yaw within +-OBJECT_YAW."""
    placed: dict[str, tuple[float, float, float]] = {}
    for name in names:
        for _ in range(1000):
            xy = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
            if all(np.hypot(*(xy - np.array(other[:2]))) >= OBJECT_SEPARATION for other in placed.values()):
                break
        else:
            raise RuntimeError("could not place the objects apart; the object region is too small")
        placed[name] = (float(xy[0]), float(xy[1]), float(rng.uniform(-OBJECT_YAW, OBJECT_YAW)))
    return placed


def sample_free_position(rng: np.random.Generator, low, high, objects, avoid=None, min_distance=0.0) -> np.ndarray:
    """An end-effector position in [low, high] that keeps the fingers out of the standing objects
    and, when `avoid` is given, lies at least `min_distance` from it."""
    for _ in range(1000):
        position = rng.uniform(low, high)
        clear = all(
            np.hypot(position[0] - x, position[1] - y) > 0.09 or position[2] > 2 * OBJECTS[name].rest_height + 0.04
            for name, (x, y, _) in objects.items()
        )
        if clear and (avoid is None or np.linalg.norm(position - np.asarray(avoid)) >= min_distance):
            return position
    raise RuntimeError("could not sample a free end-effector position")


def _tuple(v) -> tuple[float, float, float]:
    return tuple(float(x) for x in v)


def held_gripper(name: str) -> float:
    """Gripper state when closed on object `name`."""
    return opening_to_gripper(OBJECTS[name].width)


def grasp_point(name: str, x: float, y: float) -> np.ndarray:
    """Where the end effector closes on object `name` standing at (x, y): its centre (as the scripted grasps)."""
    return np.array([x, y, max(OBJECTS[name].rest_height, 0.02)])


def grasp_stages(name: str, objects: dict) -> tuple[Configuration, ...]:
    """Hover above the object, fingers open around it, fingers closed on it, lifted."""
    x, y, _ = objects[name]
    point = grasp_point(name, x, y)
    closed = held_gripper(name)
    return (
        Configuration(_tuple(point + [0, 0, HOVER_HEIGHT]), objects=objects),
        Configuration(_tuple(point), objects=objects),
        Configuration(_tuple(point), closed, objects=objects, held=name),
        Configuration(_tuple(point + [0, 0, LIFT_HEIGHT]), closed, objects=objects, held=name),
    )


def gripper_commands(episode: "Episode") -> tuple[str, ...]:
    """What the gripper does on the way to each goal: "close" where a goal holds an object the one
    before did not, "open" where it lets go of one, "keep" otherwise."""
    commands, before = [], episode.start.held
    for goal in episode.goals:
        commands.append("close" if goal.held and not before else "open" if before and not goal.held else "keep")
        before = goal.held
    return tuple(commands)


def vertical_moves(episode: "Episode") -> tuple[bool, ...]:
    """Whether each goal lies straight above or below the one before (same x, y): descending
    around an object, closing or opening on it, lifting it, lowering it onto its spot. The first
    goal is reached from anywhere, so it never counts."""
    moves, before = [], None
    for goal in episode.goals:
        moves.append(before is not None and np.allclose(goal.ee_position[:2], before[:2]))
        before = goal.ee_position
    return tuple(moves)


class Task(ABC):
    """Base class: `sample` an episode, judge `success` from the simulator.

    episode_steps: control steps a planner gets for the whole episode.
    stage_steps: control steps to spend on each goal of an episode, in order (0: until the episode ends).
    """

    name = "task"
    episode_steps: int = 20
    stage_steps: tuple[int, ...] = (0,)

    def __init__(self, target_object: str = "cup"):
        if target_object not in OBJECTS:
            raise ValueError(f"unknown object {target_object!r} (known: {', '.join(OBJECTS)})")
        self.target_object = target_object

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Episode:
        """A seeded start and goal(s)."""

    @abstractmethod
    def success(self, scene: Scene, episode: Episode) -> bool:
        """Whether the simulator state meets the goal (for `info` only)."""

    def _start(self, rng: np.random.Generator, objects) -> Configuration:
        return Configuration(_tuple(sample_free_position(rng, START_LOW, START_HIGH, objects)), objects=objects)


def object_held(scene: Scene, name: str) -> bool:
    """Off the table and at the grasp point."""
    position = scene.object_position(name)
    ee, _ = scene.ee_pose()
    lifted = position[2] > OBJECTS[name].rest_height + 0.01
    return bool(lifted and np.linalg.norm(position - ee) < HELD_DISTANCE)


class ReachTask(Task):
    """Move the open gripper to a goal position; the objects only stand by."""

    name = "reach"

    def sample(self, rng):
        objects = sample_objects(rng)
        start = self._start(rng, objects)
        goal_position = sample_free_position(rng, EE_LOW, EE_HIGH, objects, start.ee_position, MIN_GOAL_DISTANCE)
        goal = Configuration(_tuple(goal_position), objects=objects)
        return Episode(self.name, start, (goal,), target_position=goal.ee_position)

    def success(self, scene, episode):
        ee, _ = scene.ee_pose()
        return bool(np.linalg.norm(ee - np.asarray(episode.target_position)) < REACH_THRESHOLD)


class GraspTask(Task):
    """Pick up the target object: success once it is 5 cm above where it stood. Stages: hover,
    open around the object, closed on it, lifted (the last is the goal)."""

    name = "grasp"
    stage_steps = (11, 3, 2, 0)

    def sample(self, rng):
        objects = sample_objects(rng)
        start = self._start(rng, objects)
        x, y, _ = objects[self.target_object]
        rest = OBJECTS[self.target_object].rest_height
        return Episode(self.name, start, grasp_stages(self.target_object, objects), self.target_object, (x, y, rest))

    def success(self, scene, episode):
        lifted = scene.object_position(self.target_object)[2] - episode.target_position[2]
        return bool(lifted >= LIFT_THRESHOLD)


class ReachWithObjectTask(Task):
    """Carry the already grasped target object to a goal position (gripper within 4 cm, object still held)."""

    name = "reach_with_object"

    def sample(self, rng):
        objects = sample_objects(rng)
        gripper = held_gripper(self.target_object)
        others = {k: v for k, v in objects.items() if k != self.target_object}
        low = np.array([EE_LOW[0], EE_LOW[1], 0.12])
        start_position = sample_free_position(rng, low, EE_HIGH, others)
        goal_position = sample_free_position(rng, low, EE_HIGH, others, start_position, MIN_GOAL_DISTANCE)
        start = Configuration(_tuple(start_position), gripper, objects=objects, held=self.target_object)
        goal = Configuration(_tuple(goal_position), gripper, objects=objects, held=self.target_object)
        return Episode(self.name, start, (goal,), self.target_object, goal.ee_position)

    def success(self, scene, episode):
        ee, _ = scene.ee_pose()
        near = np.linalg.norm(ee - np.asarray(episode.target_position)) < REACH_THRESHOLD
        return bool(near and object_held(scene, self.target_object))


class PickAndPlaceTask(Task):
    """Move the target object to a spot on the table. Stages: the four grasp stages, carried above
    the spot, lowered onto it, released (the last is the goal)."""

    name = "pick_and_place"
    episode_steps = 30
    stage_steps = (11, 3, 2, 2, 7, 3, 0)

    def sample(self, rng):
        objects = sample_objects(rng)
        start = self._start(rng, objects)
        name = self.target_object
        x, y, yaw = objects[name]
        rest = OBJECTS[name].rest_height
        others = [v for k, v in objects.items() if k != name]
        for _ in range(1000):
            spot = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
            far_from_start = np.hypot(spot[0] - x, spot[1] - y) >= 0.15
            if far_from_start and all(np.hypot(spot[0] - o[0], spot[1] - o[1]) >= OBJECT_SEPARATION for o in others):
                break
        else:
            raise RuntimeError("could not sample a place target")
        placed = dict(objects)
        placed[name] = (float(spot[0]), float(spot[1]), yaw)
        gripper = held_gripper(name)
        down = grasp_point(name, float(spot[0]), float(spot[1]))
        goals = grasp_stages(name, objects) + (
            Configuration(_tuple(down + [0, 0, CARRY_HEIGHT]), gripper, objects=objects, held=name),
            Configuration(_tuple(down), gripper, objects=objects, held=name),
            Configuration(_tuple(down), 0.0, objects=placed),
        )
        return Episode(self.name, start, goals, name, (float(spot[0]), float(spot[1]), rest))

    def success(self, scene, episode):
        distance = np.linalg.norm(scene.object_position(self.target_object) - np.asarray(episode.target_position))
        return bool(distance < PLACE_THRESHOLD)


TASKS = {cls.name: cls for cls in (ReachTask, GraspTask, ReachWithObjectTask, PickAndPlaceTask)}


def make_task(name: str, target_object: str = "cup") -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name](target_object)
