"""`vjepa-wm demo`: the main job on built-in defaults.

Goal-image planning in the PyBullet sim with the bundled world model, on the CPU: for a few
seeded reach episodes the arm is shown only a goal image (the scene rendered with the arm at
the goal) and plans toward it with CEM in latent space. Prints each episode's outcome and the
success rate; writes a rollout video (current view beside the goal) and the energy plot of
each episode to --out. `--what encode` instead encodes a generated clip and writes its feature
PCA picture.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the main demo on built-in defaults", description=__doc__)
    parser.add_argument("--what", choices=["plan", "encode"], default="plan")
    parser.add_argument("--task", default="reach", choices=["reach", "grasp", "reach_with_object", "pick_and_place"])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--max-steps", type=int, help="control steps per episode (default: 20, pick_and_place 30)")
    parser.add_argument("--seed", type=int, default=20_000)
    parser.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return encode_demo(Path(args.out)) if args.what == "encode" else plan_demo(args)


def plan_demo(args: argparse.Namespace) -> int:
    from vjepa_wm.sim_eval import SimEvalConfig, evaluate
    from vjepa_wm.sim_model import BUNDLED_SIM_MODEL, load_sim_model

    model = load_sim_model()
    config = SimEvalConfig(task=args.task, episodes=args.episodes, seed=args.seed, max_steps=args.max_steps)
    print(f"planning with {BUNDLED_SIM_MODEL.name} ({config.cem.samples} samples x {config.cem.iterations} iterations "
          f"per action, {config.max_steps} actions per episode, CPU)")
    report = evaluate(model, config, args.out, videos=args.episodes, progress=False)
    for result in report["results"]:
        outcome = "success" if result["success"] else "failure"
        print(f"episode seed {result['seed']}: {outcome}, end effector {100 * result['goal_distance']:.1f} cm from the goal, "
              f"{result['steps']} actions, {result['seconds_per_action']:.3f} s per action")
    print(f"success rate {report['success_rate']:.2f} over {report['episodes']} {args.task} episodes")
    print(f"rollout videos and energy plots -> {args.out}")
    return 0


def encode_demo(out: Path) -> int:
    from datasets.moving_shapes import moving_shapes_clip
    from datasets.video_io import write_mp4
    from vjepa_wm.cli import main

    clip = write_mp4(out / "moving_shapes.mp4", moving_shapes_clip(num_frames=32, size=160, seed=0), fps=4)
    print(f"clip -> {clip}")
    return main(
        [
            "encode", str(clip), "--random", "tiny", "--version", "2.1", "--frames", "16", "--fps", "4",
            "--crop", "128", "--out", str(out / "features.npy"), "--pca", str(out / "features_pca.png"),
        ]
    )
