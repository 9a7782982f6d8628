"""Closed-loop navigation in the sim car: drive from a start to a goal image taken elsewhere.

NWM has no closed-loop test; this one is ours. Each episode (`sim.driving.episodes`, seeded):
a world, a straight lead-in whose `context` frames the planner sees at the start, and a goal
pose a few steps of arc driving away whose camera view is the goal image (rendered before the
run; the goal is reachable because the same car drove there). Then `planner.mpc.run_mpc` drives
the sim car (a `Robot`) for `max_steps` 4 Hz steps with the car CEM (`nwm` straight lines or
`free` steps) toward the goal image, replanning at every step warm-started from the last plan
(the first from the CEM's prior or, with `--start context_velocity`, centred on the lead-in's last step).

**Success**: the car's position comes within `success_radius` waypoint spacings (1: 0.72 m at
TartanDrive's spacing) of the goal position at the end of some step within the budget. The
goal's heading is not asked for. Also reported: the distance at the end of the budget, the
closest approach, the steps to the goal, and seconds per plan (encoding included).

The step budget is three times the goal drive: every plan is scored by its last imagined frame
against the goal, so a plan spreads the way left over its 8 steps and the car, executing one step
of each, closes about an eighth of the remaining distance per step (to 1 waypoint from 8 takes ~15
steps). The straight-line candidates (`--mode nwm`) are centred on the sim car's pace (`sim_lines`).

The planner sees what nav-replay's does (`evaluation.nav.NavPlanner`): its `context` latest
frames as history (the predictor's KV cache) and poses seen from the pose now, which is always
(0, 0, 0): the navigation model was trained with states relative to the last context frame, and
the odometry frame of a drive means nothing to it. `EgocentricCar` keeps the true poses (for the
referee and the pictures) and hands the planner only the egocentric ones; `ContextModel` turns
the kept frames into the history cache, once per plan.

Beside the model, in the same worlds from the same starts, three drives that need no model:
constant velocity (the lead-in's last measured step, repeated), NWM's initial mean (the straight
line the CEM starts from, `lines.mean`, repeated), and an oracle that steers toward the goal's *true*
position (an upper reference: it is told where the goal is).
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vjepa_wm.embodiments import Car, Observation
from vjepa_wm.planner.cem import CEMConfig, Plan
from vjepa_wm.planner.mpc import MPCConfig, run_mpc
from vjepa_wm.planner.nav_candidates import NWM_ACTION_MAX, NWM_ACTION_MIN, PlanMode, StraightLineConfig, StraightLines, car_cem
from vjepa_wm.planner.planning_model import planning_model
from vjepa_wm.sim.driving.config import CameraConfig, DrivingConfig, TerrainConfig
from vjepa_wm.sim.driving.episodes import NavEpisode, NavEpisodeConfig, draw_episode, restart
from vjepa_wm.world_model.training.distributed import check_device

from .nav import (Situation, check_model, check_start, constant_velocity_actions, nwm_cem_config, plot_replay, relative_poses,
                  replay_frame, to_world, velocity_start)

SIM_PACE = 1.2  # waypoint units per step: the lead-in's, and the middle of the goal drives


def sim_lines() -> StraightLineConfig:
    """NWM's straight lines centred on the sim car's pace. NWM's TartanDrive mean (3.1 waypoint
    units per step, 9 m/s) is beyond the sim car's top speed (6 m/s, 2.1 units per step): one CEM
    iteration around it only ever proposes lines far past any goal."""
    low, high = NWM_ACTION_MIN[0], NWM_ACTION_MAX[0]
    return StraightLineConfig(mean=(2 * (SIM_PACE - low) / (high - low) - 1, 0.0, 0.0))


METHODS = ("model", "constant_velocity", "nwm_mean", "oracle")  # rows of the table, in order
ORACLE_STEP = 2.0  # waypoint units per step the oracle asks for at most (1.44 m: about the car's top speed)


@dataclass
class NavDriveConfig:
    """Closed-loop navigation in the sim car: start pose -> goal image, success within 1 waypoint."""

    model: str = ""  # car world model directory (our format) or its hub id ("": the bundled sim car model)
    episodes: int = 20  # seeded episodes, seeds seed .. seed+episodes-1
    seed: int = 0  # first episode's seed
    mode: PlanMode = "nwm"  # nwm: straight lines plus a final yaw (published); free: one action per step
    # prior: the first plan starts from the CEM's own initial mean; context_velocity: centred on the lead-in's
    # last step repeated (as nav-replay's --start); later plans are warm-started from the last one either way
    start: Literal["prior", "context_velocity"] = "prior"
    context_std: tuple[float, float, float] = (0.3, 0.05, 0.1)  # free mode, context_velocity: spread (dx, dy, dyaw a step)
    context: int = 4  # frames the planner sees as history (NWM: 4)
    max_steps: int = 24  # 4 Hz control steps per episode (3x the goal drive; see the module docstring)
    success_radius: float = 1.0  # waypoint spacings from the goal position that count as reached
    episode: NavEpisodeConfig = field(default_factory=NavEpisodeConfig)  # how starts and goals are drawn
    cem: CEMConfig = field(default_factory=nwm_cem_config)  # the search (NWM's budget; horizon 8)
    lines: StraightLineConfig = field(default_factory=sim_lines)  # NWM's candidate distribution, centred on the sim car's pace
    car: Car = field(default_factory=Car)  # step bounds (the waypoint spacing is the model's)
    terrain: TerrainConfig = field(default_factory=TerrainConfig)  # the world drawn for each episode
    width: int = 160  # camera frame width, px (as the model's training drives were recorded)
    height: int = 120  # camera frame height, px
    video: str | None = None  # folder for a top-down plot and a video of each episode's model drive
    fps: float = 4.0  # frame rate of the videos
    device: str = "cpu"  # torch device of the planner
    json: str | None = None  # write the table and every episode's figures here as JSON

    def __post_init__(self):
        if self.mode not in ("nwm", "free"):
            raise ValueError(f"mode must be nwm or free, got {self.mode!r}")
        self.context_std = check_start(self.start, self.context_std)
        for name in ("episodes", "context", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.success_radius < math.inf:
            raise ValueError(f"success_radius must be a positive number of waypoint spacings, got {self.success_radius}")
        if not 0 < self.fps < math.inf:
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        check_device(self.device, "device", auto=False)

    def driving_config(self) -> DrivingConfig:
        return DrivingConfig(terrain=self.terrain, camera=CameraConfig(width=self.width, height=self.height))


class EgocentricCar:
    """The sim car as nav-drive's planner sees it (a `Robot`): observations carry the pose seen from
    itself, (0, 0, 0); the true observations of the last `context` looks, and the true pose after
    every applied step, are kept here."""

    def __init__(self, env, context: int, observations: list[Observation]):
        self.env = env
        self.history: deque[Observation] = deque(observations, maxlen=context)
        self.poses = [np.asarray(env.state(), dtype=np.float64)]  # start, then after each step

    def now(self) -> float:
        return self.env.now()

    def observe(self) -> Observation:
        obs = self.env.observe()
        if self.history and self.history[-1].stamp == obs.stamp:  # a second look at the same instant
            self.history.pop()
        self.history.append(obs)
        return Observation(obs.image, np.zeros(3), obs.stamp)

    def apply(self, action) -> None:
        self.env.apply(action)
        self.poses.append(np.asarray(self.env.state(), dtype=np.float64))

    def hold(self) -> None:
        self.env.hold()


class ContextModel:
    """A world model that plans from the frames `robot` kept: each rollout continues the history
    (the earlier frames, the car actions between them and their poses seen from the pose now) run
    once per plan into the predictor's KV cache, as `NavPlanner.plan` does."""

    def __init__(self, model, robot: EgocentricCar, car: Car, device: torch.device, horizon: int):
        steps = (robot.history.maxlen or 1) - 1 + horizon  # history steps, then the imagined ones
        self.model, self.robot, self.car = planning_model(model, device, steps), robot, car
        self.embodiment = model.embodiment
        self._latents: dict[float, torch.Tensor] = {}  # per observation stamp
        self._history: tuple[float, object] | None = None  # (stamp now, its cache)

    def encode_images(self, images) -> torch.Tensor:
        return self.model.encode_images(images)

    def rollout(self, z, state, actions, cache=None):
        history = self.history()
        if history is not None:
            cache = history.expand(actions.shape[0])
        return self.model.rollout(z, state, actions, cache=cache)

    def history(self):
        kept = list(self.robot.history)
        if self._history is not None and self._history[0] == kept[-1].stamp:
            return self._history[1]
        cache = None
        if len(kept) > 1:
            self._latents = {o.stamp: self._latents.get(o.stamp) for o in kept[:-1]}
            for o in kept[:-1]:
                if self._latents[o.stamp] is None:
                    self._latents[o.stamp] = self.model.encode_images(o.image)
            z = torch.cat([self._latents[o.stamp] for o in kept[:-1]], 1)
            poses = relative_poses(np.stack([o.state for o in kept]), kept[-1].state)
            states = torch.as_tensor(poses, dtype=torch.float32, device=z.device)
            cache = self.model.observe_history(z, self.car.deltas(states)[None], states[None, :-1])
        self._history = (kept[-1].stamp, cache)
        return cache


@dataclass
class Drive:
    """One method's drive of one episode: true poses from the start, then after each step."""

    poses: np.ndarray  # [steps + 1, 3]
    seconds_per_plan: float | None = None
    stop_reason: str | None = None
    plans: list[np.ndarray] | None = None  # [H, 3] car actions planned at each step (the model's)
    frames: list[np.ndarray] | None = None  # the view at each step (the model's, with --video)

    def figures(self, goal: np.ndarray, spacing: float, radius: float) -> dict:
        distance = np.linalg.norm(self.poses[:, :2] - goal[:2], axis=1) / spacing  # waypoint units
        driven = distance[1:] if len(distance) > 1 else distance  # a loop that stopped at once: where it stands
        within = np.flatnonzero(distance[1:] <= radius)
        return {"success": bool(within.size), "steps_to_goal": int(within[0]) + 1 if within.size else None,
                "steps": len(self.poses) - 1, "final_distance_wu": float(distance[-1]), "min_distance_wu": float(driven.min()),
                "seconds_per_plan": self.seconds_per_plan, "stop_reason": self.stop_reason}


class PlanLog:
    """A CEM that keeps every plan it returns (for the pictures) and may start its first search from
    `first` (`--start context_velocity`); everything else is the CEM's."""

    def __init__(self, cem, first: Plan | None = None):
        self.cem, self.first, self.plans = cem, first, []

    def __getattr__(self, name):
        return getattr(self.cem, name)

    def search(self, score, warm_start: Plan | None = None, *args, **kwargs):
        if warm_start is None and not self.plans:
            warm_start = self.first
        plan = self.cem.search(score, warm_start, *args, **kwargs)
        self.plans.append(plan.actions.detach().cpu().numpy().astype(np.float64))
        return plan


def model_drive(env, model, episode: NavEpisode, car: Car, config: NavDriveConfig) -> Drive:
    robot = EgocentricCar(env, config.context, restart(env, episode))
    device = torch.device(config.device)
    first = None
    if config.start == "context_velocity":
        lines = StraightLines(car, config.cem.horizon, config.lines)
        actions = constant_velocity_actions(car, episode.context_poses, config.cem.horizon)
        first = velocity_start(actions, config.mode, lines, config.context_std)
    cem = PlanLog(car_cem(config.mode, replace(config.cem, seed=episode.seed), car, device, config.lines), first)
    planner_view = ContextModel(model, robot, car, device, config.cem.horizon)
    result = run_mpc(robot, planner_view, [episode.goal_image], cem, MPCConfig(max_steps=config.max_steps,
                                                                             keep_frames=config.video is not None))
    seconds = result.seconds_per_action()
    return Drive(np.stack(robot.poses), seconds if math.isfinite(seconds) else None, result.stop_reason, cem.plans,
                 result.frames or None)


def blind_drive(env, episode: NavEpisode, step, steps: int) -> Drive:
    """Drive `steps` steps from the episode's start, `step(pose)` choosing each action."""
    restart(env, episode)
    poses = [np.asarray(env.state(), dtype=np.float64)]
    for _ in range(steps):
        env.apply(step(poses[-1]))
        poses.append(np.asarray(env.state(), dtype=np.float64))
    env.hold()
    return Drive(np.stack(poses))


def baseline_steps(episode: NavEpisode, car: Car, config: NavDriveConfig) -> dict:
    """The model-free methods: each a function of the true pose now to the next action."""
    low, high = np.array(car.action_low), np.array(car.action_high)
    last = constant_velocity_actions(car, episode.context_poses, 1)[0]
    mean_line = StraightLines(car, config.cem.horizon, config.lines)
    first = mean_line.expand(mean_line.initial()[0][None].double())[0, 0].numpy()
    spacing = car.waypoint_spacing

    arrived = False

    def oracle(pose: np.ndarray) -> np.ndarray:
        """Along the arc to the goal; once there it stands (rolling out again, it would circle back)."""
        nonlocal arrived
        ahead, left = relative_poses(episode.goal[None], pose)[0, :2] / spacing
        step = arc_toward(ahead, left, ORACLE_STEP, config.success_radius)
        arrived = arrived or not step.any()
        return np.zeros(3) if arrived else np.clip(step, low, high)

    return {"constant_velocity": lambda pose: last, "nwm_mean": lambda pose: first, "oracle": oracle}


def arc_toward(ahead: float, left: float, most: float, stop: float) -> np.ndarray:
    """The car action along the circular arc from the pose now (tangent to its heading) through the
    point (ahead, left), waypoint units: half the arc's remaining length, at most `most`, so the car
    slows on the way in, and nothing once within `stop`. A car can follow that arc wherever its
    turning circle allows."""
    squared = ahead**2 + left**2
    if squared <= stop**2:  # there: stand (the arc to a point beside the car would circle)
        return np.zeros(3)
    curvature = 2 * left / squared
    turn = 2 * math.atan2(left, ahead)  # heading change over the whole arc (beyond +-pi for points behind)
    length = turn / curvature if abs(curvature) > 1e-9 else math.sqrt(squared)
    travel = min(most, length / 2)
    if abs(curvature) <= 1e-9:
        return np.array([travel, 0.0, 0.0])
    angle = curvature * travel
    return np.array([math.sin(angle) / curvature, (1 - math.cos(angle)) / curvature, angle])


def summary(method: str, rows: list[dict], spacing: float) -> dict:
    reached = [r["steps_to_goal"] for r in rows if r["success"]]
    timed = [r["seconds_per_plan"] for r in rows if r["seconds_per_plan"] is not None]
    record = {"method": method, "episodes": len(rows), "success_rate": float(np.mean([r["success"] for r in rows]))}
    for name in ("final_distance", "min_distance"):
        record[f"{name}_wu"] = float(np.mean([r[f"{name}_wu"] for r in rows]))
        record[f"{name}_m"] = record[f"{name}_wu"] * spacing
    record["steps_to_goal"] = float(np.mean(reached)) if reached else None
    record["seconds_per_plan"] = float(np.mean(timed)) if timed else None
    return record


def evaluate(model, config: NavDriveConfig, progress: bool = True) -> dict:
    """Every episode driven by the model and by the baselines; the table rows and per-episode figures."""
    from tqdm import tqdm

    from vjepa_wm.sim.driving.env import DrivingEnv  # PyBullet: imported when an env is made

    check_model(model)
    car = replace(config.car, waypoint_spacing=model.embodiment.waypoint_spacing)
    spacing = car.waypoint_spacing
    env = DrivingEnv(config.driving_config())
    env.embodiment = car  # the sim reads the planner's waypoint deltas in the model's convention
    rows: dict[str, list[dict]] = {m: [] for m in METHODS}
    episodes = []
    began = time.perf_counter()
    try:
        bar = tqdm(range(config.episodes), desc="nav-drive", unit="episode", disable=not progress)
        for index in bar:
            episode = draw_episode(env, config.seed + index, config.episode, config.context)
            drives = {"model": model_drive(env, model, episode, car, config)}
            for name, step in baseline_steps(episode, car, config).items():
                drives[name] = blind_drive(env, episode, step, config.max_steps)
            figures = {m: drives[m].figures(episode.goal, spacing, config.success_radius) for m in METHODS}
            for m in METHODS:
                rows[m].append(figures[m])
            record = {"seed": episode.seed, "start": episode.start.tolist(), "goal": episode.goal.tolist(),
                      "goal_distance_wu": float(np.linalg.norm(episode.goal[:2] - episode.start[:2]) / spacing),
                      "figures": figures, "paths": {m: d.poses.tolist() for m, d in drives.items()}}
            if config.video is not None:
                record.update(pictures(drives["model"], episode, car, config, Path(config.video)))
            episodes.append(record)
            bar.set_postfix(success=f"{np.mean([r['success'] for r in rows['model']]):.2f}")
    finally:
        env.close()
    return {"mode": config.mode, "start": config.start, "samples": config.cem.samples, "iterations": config.cem.iterations,
            "horizon": config.cem.horizon, "context": config.context, "max_steps": config.max_steps,
            "success_radius_wu": config.success_radius, "waypoint_spacing": spacing,
            "wall_seconds": time.perf_counter() - began,
            "table": [summary(m, rows[m], spacing) for m in METHODS], "episodes": episodes}


def pictures(drive: Drive, episode: NavEpisode, car: Car, config: NavDriveConfig, out: Path) -> dict:
    """The model drive's top-down plot (driven path, every plan) and video (view | goal | paths)."""
    from vjepa_wm.datasets.video_io import write_mp4

    spacing, horizon = car.waypoint_spacing, config.cem.horizon
    units = np.array([spacing, spacing, 1.0])
    paths = [car.rollout(np.zeros(3), plan)[1:] / units for plan in drive.plans or []]
    steps = min(len(paths), len(drive.poses) - 1)  # a plan the loop refused to apply moved nothing
    planned = [to_world(path, drive.poses[t], spacing) for t, path in enumerate(paths[:steps])]
    name = f"nav_drive_seed{episode.seed}"
    figures = drive.figures(episode.goal, spacing, config.success_radius)
    outcome = "reached" if figures["success"] else f"missed by {figures['min_distance_wu']:.1f} wu"
    x, y = episode.goal[:2]
    plot = plot_replay(drive.poses, planned, list(range(steps)), out / f"{name}.png",
                       f"seed {episode.seed} ({config.mode}): goal at ({x:.1f}, {y:.1f}) m {outcome}")
    record = {"plot": str(plot)}
    shown = min(steps, len(drive.frames or []))
    if shown:
        frames = []
        for t in range(shown):
            here = drive.poses[t]
            goal = relative_poses(episode.goal[None], here)[0] / units
            truth = relative_poses(drive.poses[t + 1 : t + 1 + horizon], here) / units
            s = Situation(drive.frames[t][None], episode.goal_image, np.zeros((1, 3)), truth, goal)
            frames.append(replay_frame(s, paths[t]))
        record["video"] = str(write_mp4(out / f"{name}.mp4", np.stack(frames), config.fps))
    return record
