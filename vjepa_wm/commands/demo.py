"""`vjepa-wm demo`: the main job on built-in defaults.

Goal-image planning in the PyBullet sim with the bundled world model, on the CPU: for a few
seeded reach episodes the arm is shown only a goal image (the scene rendered with the arm at
the goal) and plans toward it with CEM in latent space. Prints each episode's outcome and the
success rate; writes a rollout video (current view beside the goal) and the energy plot of
each episode to --out. `--ros` runs the same episodes through ROS 2: the sim node, the watchdog
and the planner node start as processes, each goal goes through the planner's PlanToGoal action,
and the video and plot are made from what the nodes publish (`evaluation.ros_reach`); the nodes
are shut down at the end. `--what encode` instead encodes a generated clip and writes its feature
PCA picture.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vjepa_wm.config_cli import ConfigCommand, add_config_command


@dataclass
class DemoConfig:
    what: Literal["plan", "encode"] = "plan"  # plan: goal-image planning in the sim; encode: features of a generated clip
    task: str = "reach"  # sim task: reach, grasp, reach_with_object or pick_and_place
    episodes: int = 3  # seeded episodes to plan
    max_steps: int | None = None  # control steps per episode (null: the task's own, 20; 30 for pick_and_place)
    seed: int = 20_000  # first episode seed
    out: str = "outputs/demo"  # folder for the videos, plots and pictures
    ros: bool = False  # plan through ROS 2 (sim node, watchdog, planner node as processes; reach only)


def run(config: DemoConfig) -> int:
    return encode_demo(Path(config.out)) if config.what == "encode" else plan_demo(config)


def plan_demo(config: DemoConfig) -> int:
    from vjepa_wm.evaluation.sim import SimEvalConfig, evaluate
    from vjepa_wm.sim_model import BUNDLED_SIM_MODEL, load_sim_model

    sim = SimEvalConfig(task=config.task, episodes=config.episodes, seed=config.seed, max_steps=config.max_steps,
                        out=config.out, videos=config.episodes)
    print(f"planning with {BUNDLED_SIM_MODEL.name} ({sim.cem.samples} samples x {sim.cem.iterations} iterations "
          f"per action, {sim.max_steps} actions per episode, CPU{', through ROS 2' if config.ros else ''})")
    if config.ros:
        from vjepa_wm.evaluation.ros_reach import evaluate_ros

        report = evaluate_ros(sim, progress=False)
    else:
        report = evaluate(load_sim_model(), sim, progress=False)
    for result in report["results"]:
        outcome = "success" if result["success"] else "failure"
        print(f"episode seed {result['seed']}: {outcome}, end effector {100 * result['goal_distance']:.1f} cm from the goal, "
              f"{result['steps']} actions, {result['seconds_per_action']:.3f} s per action")
    print(f"success rate {report['success_rate']:.2f} over {report['episodes']} {config.task} episodes")
    print(f"rollout videos and energy plots -> {config.out}")
    return 0


def encode_demo(out: Path) -> int:
    from vjepa_wm.commands.encode import EncodeConfig
    from vjepa_wm.commands.encode import run as encode
    from vjepa_wm.datasets.moving_shapes import moving_shapes_clip
    from vjepa_wm.datasets.video_io import write_mp4

    clip = write_mp4(out / "moving_shapes.mp4", moving_shapes_clip(num_frames=32, size=160, seed=0), fps=4)
    print(f"clip -> {clip}")
    return encode(EncodeConfig(inputs=[str(clip)], random="tiny", version="2.1", frames=16, fps=4.0, crop=128,
                               out=str(out / "features.npy"), pca=str(out / "features_pca.png")))


def register(subparsers) -> None:
    add_config_command(subparsers, "demo", ConfigCommand(DemoConfig, run), help="run the main demo on built-in defaults",
                       description=__doc__)
