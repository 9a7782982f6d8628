"""Goal-image planning in the PyBullet sim, scored by the simulator: what `eval-sim` and `demo` run.

Each episode: reset the task with a seed, show the planner only the goal image(s), run the MPC
loop (`planner.mpc.run_mpc`) for a fixed step budget (or until the model's own energy says the
goal is reached), then ask the simulator whether the task succeeded. Simulator success is read
only after the episode: it never feeds the planner.

Staged tasks give one image per stage, each with its step budget (`Task.stage_steps`). The
gripper is either searched by CEM like the position (`gripper="search"`, the published search)
or given by each stage (`gripper="commanded"`: kept as it is, closed or opened on the way to
that stage's image, see `sim.franka.tasks.gripper_commands`; a stage straight above or below the
one before moves vertically, `sim.franka.tasks.vertical_moves`), while CEM searches the rest of
the position.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from vjepa_wm.embodiments import Franka
from vjepa_wm.embodiments.franka import GRIPPER, XYZ
from vjepa_wm.planner.cem import CEM, CEMConfig
from vjepa_wm.planner.goals import Goal, SubgoalRule
from vjepa_wm.planner.mpc import MPCConfig, MPCResult, run_mpc
from vjepa_wm.sim.franka.tasks import PLAN_HIGH, PLAN_LOW, TASKS, gripper_commands, vertical_moves
from vjepa_wm.world_model.training.distributed import check_device

# commanded: each stage keeps, closes or opens the gripper and CEM searches the position; search: CEM
# searches the gripper and all of xyz (the published search).
GripperMode = Literal["commanded", "search"]


def sim_cem_config(config: CEMConfig) -> CEMConfig:
    """`config` with the sim's planning workspace (`sim.franka.tasks.PLAN_LOW/HIGH`)."""
    return replace(config, workspace=(PLAN_LOW, PLAN_HIGH))


@dataclass
class SimEvalConfig:
    """Goal-image planning in the PyBullet Franka sim, scored by the simulator."""

    task: str = "reach"  # reach, grasp, reach_with_object or pick_and_place
    target_object: str = "cup"  # cup or box
    episodes: int = 50  # seeded episodes, seeds seed .. seed+episodes-1
    seed: int = 10_000  # first episode seed; development used seeds below 10 000
    max_steps: int | None = None  # control steps per episode (null: the task's own, 20; 30 for pick_and_place)
    gripper: GripperMode = "commanded"  # commanded: each stage keeps, closes or opens the gripper; search: CEM searches it (published)
    # Commanded mode: a sideways sub-goal (hover over the object, carry over the spot) counts as
    # reached, and the next stage starts, once the observed energy falls this low (bundled model:
    # about 1 cm from the pose); None: only the stage's step budget switches.
    arrival_energy: float | None = 0.012
    stop_energy: float | None = None  # stop early when the view is this close (model energy) to the goal
    image_size: int = 128  # render size; must match the data the model was trained on
    low_poly: bool = True  # draw the Panda with its collision meshes (the bundled model's data did)
    cem: CEMConfig = field(default_factory=lambda: sim_cem_config(CEMConfig(samples=64, iterations=5)))
    franka: Franka = field(default_factory=Franka)  # the planning box per step
    subgoals: SubgoalRule = field(default_factory=SubgoalRule)  # stages switch by their step budgets
    device: str = "cpu"  # torch device of the planner
    model: str | None = None  # world model directory or its hub id (null: the bundled sim model)
    out: str | None = None  # folder for rollout videos and energy plots
    videos: int = 2  # episodes to keep videos and plots of (with out)
    json: str | None = None  # write the summary here as JSON

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r} (known: {', '.join(TASKS)})")
        if self.max_steps is None:
            self.max_steps = TASKS[self.task].episode_steps
        if self.gripper not in get_args(GripperMode):
            raise ValueError(f"gripper must be one of {', '.join(get_args(GripperMode))}, got {self.gripper!r}")
        for name, minimum in (("episodes", 1), ("max_steps", 1), ("videos", 0), ("image_size", 16)):
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be at least {minimum}, got {getattr(self, name)}")
        for name in ("arrival_energy", "stop_energy"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number at least 0 (or null), got {value}")
        check_device(self.device, "device", auto=False)


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    goal_distance: float  # end effector to the final goal position, metres (simulator truth)
    seconds_per_action: float
    stop_reason: str


def rollout_frames(result: MPCResult, goal_images: list[np.ndarray]) -> np.ndarray:
    """Each observed view beside the goal image in force at that step: uint8 ``[T, H, 2W, 3]``."""
    frames = []
    for index, view in enumerate(result.frames):
        goal_index = result.records[index].goal_index if index < len(result.records) else len(goal_images) - 1
        goal = goal_images[min(goal_index, len(goal_images) - 1)]
        frames.append(np.concatenate([view, goal], axis=1))
    return np.stack(frames) if frames else np.zeros((0, 1, 2, 3), np.uint8)


def make_env(config: SimEvalConfig):
    from vjepa_wm.sim.franka.config import SimConfig
    from vjepa_wm.sim.franka.env import FrankaEnv  # PyBullet: imported when an env is made

    return FrankaEnv(SimConfig(image_size=config.image_size, low_poly=config.low_poly), task=config.task,
                     target_object=config.target_object, max_episode_steps=config.max_steps)


def episode_goals(env, info: dict, config: SimEvalConfig) -> list[Goal]:
    """The episode's goal images in order, each with its step budget and, in commanded mode, what
    the stage fixes: the gripper command, and for a goal straight above or below the one before
    (descend, close, lift, lower, release) no sideways motion, so that the fingers go down around
    the object and come up with it instead of sweeping it away. Where the arm goes is still found
    by CEM from the goal image alone."""
    images = list(info["subgoal_images"]) + [info["goal_image"]]
    budgets = list(env.task.stage_steps) + [0] * (len(images) - len(env.task.stage_steps))
    step = config.franka.max_gripper
    grippers = {"keep": {GRIPPER: 0.0}, "close": {GRIPPER: step}, "open": {GRIPPER: -step}}
    sideways = {XYZ[0]: 0.0, XYZ[1]: 0.0}
    if config.gripper == "search":
        return [Goal(image, max_steps=budget or None) for image, budget in zip(images, budgets)]
    goals = []
    for image, budget, command, vertical in zip(images, budgets, gripper_commands(env.episode), vertical_moves(env.episode)):
        pinned = {**grippers[command], **(sideways if vertical else {})}
        switch = config.arrival_energy if budget and not vertical else None
        goals.append(Goal(image, pinned=pinned, max_steps=budget or None, switch_energy=switch))
    return goals


def run_episode(env, model, config: SimEvalConfig, seed: int, video: Path | None = None, plot: Path | None = None):
    """One seeded episode; returns its `EpisodeResult` (and writes the rollout video / energy plot if asked)."""
    _, info = env.reset(seed=seed)
    goals = episode_goals(env, info, config)
    cem = CEM(replace(config.cem, seed=seed), config.franka, config.device)
    mpc = MPCConfig(max_steps=config.max_steps, stop_energy=config.stop_energy, subgoals=config.subgoals,
                    keep_frames=video is not None)
    result = run_mpc(env, model, goals, cem, mpc)
    outcome = EpisodeResult(seed, env.is_success(), result.steps, env.goal_distance(), result.seconds_per_action(),
                            result.stop_reason)
    if video is not None:
        from vjepa_wm.datasets.video_io import write_mp4

        result.frames.append(env.observe().image)  # the final view
        write_mp4(video, rollout_frames(result, [goal.image for goal in goals]), fps=2)
    if plot is not None and result.records:
        from vjepa_wm.planner.plots import save_energy_plot

        save_energy_plot(result.records, plot, title=f"{config.task} seed {seed}: {'success' if outcome.success else 'failure'}")
    return outcome


def evaluate(model, config: SimEvalConfig, progress: bool = True) -> dict:
    """Run `config.episodes` seeded episodes; returns the summary record (per-episode results included).
    Videos and energy plots of the first `config.videos` episodes go to `config.out` when it is set."""
    from tqdm import tqdm

    env = make_env(config)
    out, videos = (Path(config.out) if config.out else None), config.videos
    results: list[EpisodeResult] = []
    start = time.perf_counter()
    try:
        bar = tqdm(range(config.episodes), desc=f"eval {config.task}", unit="episode", disable=not progress)
        for index in bar:
            seed = config.seed + index
            keep = out is not None and index < videos
            video = out / f"{config.task}_seed{seed}.mp4" if keep else None
            plot = out / f"{config.task}_seed{seed}_energy.png" if keep else None
            results.append(run_episode(env, model, config, seed, video, plot))
            bar.set_postfix(success=f"{np.mean([r.success for r in results]):.2f}")
    finally:
        env.close()
    return summary(config, results, start)


def summary(config: SimEvalConfig, results: list[EpisodeResult], start: float) -> dict:
    """The eval JSON of `results` (episodes run since `perf_counter` read `start`): rates and means
    beside every episode, the same whichever way the episodes reached the sim."""
    timed = [r.seconds_per_action for r in results if np.isfinite(r.seconds_per_action)]
    return {
        "task": config.task,
        "target_object": config.target_object,
        "episodes": len(results),
        "seed": config.seed,
        "success_rate": float(np.mean([r.success for r in results])) if results else float("nan"),
        "seconds_per_action": float(np.mean(timed)) if timed else float("nan"),
        "mean_goal_distance": float(np.mean([r.goal_distance for r in results])) if results else float("nan"),
        "samples": config.cem.samples,
        "iterations": config.cem.iterations,
        "max_steps": config.max_steps,
        "gripper": config.gripper,
        "wall_seconds": time.perf_counter() - start,
        "results": [r.__dict__ for r in results],
    }
