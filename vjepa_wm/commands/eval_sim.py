"""`vjepa-wm eval-sim --task T --episodes N --seed S [--json FILE]`: goal-image planning in the sim.

Runs seeded episodes of a task with a world model (default: the bundled sim model), planning
from goal images only (one per stage for grasp and pick-and-place), and prints the success rate
(scored by the simulator after each episode) and the planning time per action. --out DIR keeps
rollout videos (current view beside the goal) and energy plots of the first --videos episodes.
"""
from __future__ import annotations

import argparse

from vjepa_wm.commands.plan import add_cem_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval-sim", help="success rate of goal-image planning in the sim", description=__doc__)
    parser.add_argument("--task", default="reach", choices=["reach", "grasp", "reach_with_object", "pick_and_place"])
    parser.add_argument("--object", default="cup", choices=["cup", "box"], help="target object (default cup)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=10_000, help="first episode seed (development used seeds below 10000)")
    parser.add_argument("--model", help="world model directory (default: the bundled sim model)")
    parser.add_argument("--max-steps", type=int, help="control steps per episode (default: 20, pick_and_place 30)")
    parser.add_argument("--gripper", choices=["commanded", "search"], default="commanded",
                        help="commanded (default): each stage keeps, closes or opens the gripper, stages straight "
                             "above or below the one before move vertically, and CEM searches the position; search: "
                             "CEM searches the gripper and all of xyz (the published search)")
    parser.add_argument("--image-size", type=int, default=128, help="render size (match the training data)")
    parser.add_argument("--full-meshes", action="store_true", help="render the full Panda meshes (default low-poly)")
    parser.add_argument("--out", help="folder for rollout videos and energy plots")
    parser.add_argument("--videos", type=int, default=2, help="episodes to keep videos of (with --out)")
    parser.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    parser.add_argument("--device", default="cpu")
    add_cem_arguments(parser, samples=64, iterations=5, with_seed=False)  # each episode seeds its search
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from benchmarks.common import print_table
    from vjepa_wm.sim_eval import SimEvalConfig, evaluate, sim_cem_config
    from vjepa_wm.sim_model import load_sim_model

    from vjepa_wm.commands.plan import cem_config_from

    if args.episodes < 1 or (args.max_steps is not None and args.max_steps < 1):
        raise ValueError("--episodes and --max-steps must be positive")
    model = load_sim_model(args.model).to(args.device)
    config = SimEvalConfig(task=args.task, target_object=args.object, episodes=args.episodes, seed=args.seed,
                           max_steps=args.max_steps, gripper=args.gripper, image_size=args.image_size,
                           low_poly=not args.full_meshes,
                           cem=sim_cem_config(cem_config_from(args)), device=args.device)
    report = evaluate(model, config, args.out, args.videos)
    print_table([report], ["task", "target_object", "gripper", "episodes", "seed", "success_rate", "seconds_per_action",
                           "mean_goal_distance"])
    for r in report["results"]:
        if not r["success"]:
            print(f"  seed {r['seed']}: failed, {100 * r['goal_distance']:.1f} cm from the goal ({r['stop_reason']})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
