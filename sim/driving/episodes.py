"""Navigation episodes in the sim car: a start, a goal a few steps of driving away, and its view.

An episode is a pure function of its seed. The world is drawn from a generator seeded
``[seed, 0]``; the car first rolls `context - 1` 4 Hz steps straight ahead at a cruising speed
(the lead-in: a planner with a multi-frame context sees the car moving, as in every recorded
drive), and where it stands then is the start. The goal is where a seeded drive from the start
ends: `goal_steps` steps along one circular arc (speed and turn per step drawn from a generator
seeded ``[seed, 1]``), driven by the same car through the same controller that a planner's
actions go through. So every goal is reachable by construction, and its image is exactly what
the camera sees when the car stands there: the view of the last step of that drive, taken
before any planner runs. A drive that ends closer than `min_distance` to the start (the car
stuck on a rock, say) is drawn again.

`restart(env, episode)` rebuilds the same world and drives the same lead-in: the physics is
deterministic, so every method tried on an episode starts from the same pose with the same
context frames (`DrivingEnv.set_world`: same generator state and commands, same images and poses).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vjepa_wm.embodiments import Observation

DRAWS = 10  # goal drives tried before an episode is given up


@dataclass(frozen=True)
class NavEpisodeConfig:
    """How nav-drive episodes are drawn (distances in waypoint units of the car's embodiment)."""

    lead_in: float = 1.2  # waypoint units per step driven straight ahead for the context frames
    goal_steps: int = 8  # 4 Hz steps of the drive that defines the goal (NWM's goal: 8 steps ahead)
    speed: tuple[float, float] = (0.8, 1.6)  # range of the goal drive's waypoint units per step
    turn: float = 0.15  # largest heading change per step of the goal drive, rad
    min_distance: float = 3.0  # waypoint units the goal must lie from the start

    def __post_init__(self):
        if not 0 <= self.lead_in <= 5:
            raise ValueError(f"episode.lead_in must be 0..5 waypoint units per step, got {self.lead_in}")
        if self.goal_steps < 1:
            raise ValueError(f"episode.goal_steps must be at least 1, got {self.goal_steps}")
        low, high = (float(v) for v in self.speed)
        if not 0 < low <= high <= 5:
            raise ValueError(f"episode.speed must be (low, high) with 0 < low <= high <= 5, got {self.speed}")
        if not 0 <= self.turn <= math.pi / 2:
            raise ValueError(f"episode.turn must be 0..pi/2 rad per step, got {self.turn}")
        if not 0 <= self.min_distance < math.inf:
            raise ValueError(f"episode.min_distance must be a finite number >= 0, got {self.min_distance}")


@dataclass(frozen=True)
class NavEpisode:
    seed: int
    context: int  # frames the planner sees at the start (the lead-in's steps + 1)
    lead_in: float  # waypoint units per step of the straight lead-in
    context_poses: np.ndarray  # [context, 3] poses (x, y m, heading rad) of the context frames
    start: np.ndarray  # [3] pose where planning begins (the last context pose)
    goal_actions: np.ndarray  # [goal_steps, 3] the drive that found the goal
    goal: np.ndarray  # [3] pose the goal drive ended at
    goal_image: np.ndarray  # uint8 [H, W, 3] the camera's view there


def arc_step(length: float, turn: float) -> np.ndarray:
    """The car action of one step along a circular arc: chord `length` (waypoint units) at half
    the turn off the heading, then the full turn (what pure pursuit drives exactly)."""
    return np.array([length * math.cos(turn / 2), length * math.sin(turn / 2), turn])


def begin(env, episode_seed: int, context: int, lead_in: float) -> list[Observation]:
    """Rebuild episode `episode_seed`'s world and drive its lead-in; the `context` observations,
    the last one taken where planning begins."""
    env.set_world(np.random.default_rng([episode_seed, 0]))
    observations = [env.observe()]
    for _ in range(context - 1):
        env.apply(arc_step(lead_in, 0.0))
        observations.append(env.observe())
    return observations


def restart(env, episode: NavEpisode) -> list[Observation]:
    """`begin` for a drawn episode: the same world, lead-in and context frames, from the same start."""
    return begin(env, episode.seed, episode.context, episode.lead_in)


def draw_episode(env, seed: int, config: NavEpisodeConfig, context: int) -> NavEpisode:
    """Episode `seed` in `env` (a `DrivingEnv`): see the module docstring."""
    if context < 1:
        raise ValueError(f"context must be at least 1 frame, got {context}")
    rng = np.random.default_rng([seed, 1])
    spacing = env.embodiment.waypoint_spacing
    for _ in range(DRAWS):
        speed = float(rng.uniform(*config.speed))
        turn = float(rng.uniform(-config.turn, config.turn))
        goal_actions = np.repeat(arc_step(speed, turn)[None], config.goal_steps, 0)
        context_poses = np.stack([o.state for o in begin(env, seed, context, config.lead_in)])
        start = context_poses[-1]
        for action in goal_actions:
            env.apply(action)
        view = env.observe()
        if np.linalg.norm(view.state[:2] - start[:2]) / spacing >= config.min_distance:
            return NavEpisode(seed, context, config.lead_in, context_poses, start, goal_actions, view.state, view.image)
    raise ValueError(f"episode {seed}: no goal drive of {DRAWS} ended {config.min_distance} waypoints from the start "
                     "(an obstacle in the way?); use another seed or a lower episode.min_distance")
