"""Goal-image planning in the PyBullet sim, scored by the simulator: what `eval-sim` and `demo` run.

Each episode: reset the task with a seed, show the planner only the goal image(s), run the MPC
loop (`planner.mpc.run_mpc`) for a fixed step budget (or until the model's own energy says the
goal is reached), then ask the simulator whether the task succeeded. Simulator success is read
only after the episode: it never feeds the planner.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planner.cem import CEM, CEMConfig
from planner.goals import SubgoalRule
from planner.mpc import MPCConfig, MPCResult, run_mpc


@dataclass
class SimEvalConfig:
    task: str = "reach"
    target_object: str = "cup"
    episodes: int = 50
    seed: int = 10_000  # first episode seed; development used seeds below 10 000
    max_steps: int = 20  # control steps per episode
    stop_energy: float | None = None  # stop early when the view is this close (model energy) to the goal
    image_size: int = 128  # render size; must match the data the model was trained on
    low_poly: bool = True
    cem: CEMConfig = field(default_factory=lambda: CEMConfig(samples=64, iterations=5, elites=10, horizon=1))
    subgoals: SubgoalRule = field(default_factory=lambda: SubgoalRule(max_steps=8))
    device: str = "cpu"


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
    from sim.config import SimConfig
    from sim.franka_env import FrankaEnv

    return FrankaEnv(SimConfig(image_size=config.image_size, low_poly=config.low_poly), task=config.task,
                     target_object=config.target_object, max_episode_steps=config.max_steps)


def run_episode(env, model, config: SimEvalConfig, seed: int, video: Path | None = None, plot: Path | None = None):
    """One seeded episode; returns its `EpisodeResult` (and writes the rollout video / energy plot if asked)."""
    _, info = env.reset(seed=seed)
    goals = list(info["subgoal_images"]) + [info["goal_image"]]
    cem = CEM(CEMConfig(**{**config.cem.__dict__, "seed": seed}), config.device)
    mpc = MPCConfig(max_steps=config.max_steps, stop_energy=config.stop_energy, subgoals=config.subgoals,
                    keep_frames=video is not None)
    result = run_mpc(env, model, goals, cem, mpc)
    outcome = EpisodeResult(seed, env.is_success(), result.steps, env.goal_distance(), result.seconds_per_action(),
                            result.stop_reason)
    if video is not None:
        from datasets.video_io import write_mp4

        result.frames.append(env.observe().image)  # the final view
        write_mp4(video, rollout_frames(result, goals), fps=2)
    if plot is not None and result.records:
        from planner.plots import save_energy_plot

        save_energy_plot(result.records, plot, title=f"{config.task} seed {seed}: {'success' if outcome.success else 'failure'}")
    return outcome


def evaluate(model, config: SimEvalConfig, out_dir: str | Path | None = None, videos: int = 0, progress: bool = True) -> dict:
    """Run `config.episodes` seeded episodes; returns the summary record (per-episode results included)."""
    from tqdm import tqdm

    env = make_env(config)
    out = Path(out_dir) if out_dir else None
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
        "wall_seconds": time.perf_counter() - start,
        "results": [r.__dict__ for r in results],
    }
