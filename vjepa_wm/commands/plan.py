"""`vjepa-wm plan`: one planning step from an image, a goal image and the robot state.

Encodes both images, runs the CEM search and prints the chosen action (the first of the planned
sequence) as dx dy dz droll dpitch dyaw dgripper. With --landscape it also writes the energy
landscape over an xyz grid around the current pose.
"""
from __future__ import annotations

import argparse
import json


def parse_state(text: str):
    import numpy as np

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--state must be 7 comma-separated numbers, got {text!r}") from None
    if len(values) != 7 or not np.all(np.isfinite(values)):
        raise argparse.ArgumentTypeError(f"--state must be 7 finite numbers x,y,z,roll,pitch,yaw,gripper; got {text!r}")
    return np.asarray(values, dtype=np.float32)


def add_cem_arguments(parser: argparse.ArgumentParser, samples=800, iterations=10, with_seed=True) -> None:
    group = parser.add_argument_group("search")
    group.add_argument("--samples", type=int, default=samples)
    group.add_argument("--iterations", type=int, default=iterations)
    group.add_argument("--horizon", type=int, default=1)
    group.add_argument("--elites", type=int, default=10)
    group.add_argument("--max-step", type=float, default=0.05, help="xyz box per step in metres (default 0.05)")
    if with_seed:
        group.add_argument("--seed", type=int, default=0, help="search RNG seed")


def cem_config_from(args):
    from planner.cem import CEMConfig

    return CEMConfig(samples=args.samples, iterations=args.iterations, horizon=args.horizon, elites=args.elites,
                     max_step=args.max_step, seed=getattr(args, "seed", 0))


def register(subparsers) -> None:
    parser = subparsers.add_parser("plan", help="plan one action toward a goal image", description=__doc__)
    parser.add_argument("--model", required=True, help="world model: our directory or the official AC .pt")
    parser.add_argument("--img-size", type=int, default=256, help="frame size for official .pt files (default 256)")
    parser.add_argument("--image", required=True, help="current camera image")
    parser.add_argument("--goal", required=True, help="goal image")
    parser.add_argument("--state", required=True, type=parse_state, help="x,y,z,roll,pitch,yaw,gripper")
    parser.add_argument("--landscape", metavar="PNG", help="also write the xyz energy landscape picture")
    parser.add_argument("--json", metavar="FILE", help="write the action and energies as JSON")
    parser.add_argument("--device", default="auto")
    add_cem_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.common import pick_device
    from planner.cem import CEM, world_model_score
    from world_model.preprocessing import read_image
    from world_model.world_model import load_world_model

    device = pick_device(args.device)
    model = load_world_model(args.model, img_size=args.img_size).to(device)
    z = model.encode_images(read_image(args.image))
    z_goal = model.encode_images(read_image(args.goal))
    state = torch.as_tensor(args.state, device=device)[None]
    cem = CEM(cem_config_from(args), device)
    plan = cem.search(world_model_score(model, z, state, z_goal))
    action = plan.first_action.cpu().tolist()
    start_energy = float(model.energy(z, z_goal)[0])
    print("action (dx dy dz droll dpitch dyaw dgripper): " + " ".join(f"{v:+.4f}" for v in action))
    print(f"energy now {start_energy:.4f} -> planned {plan.energy:.4f} ({plan.iterations_run} iterations, {plan.seconds:.2f} s)")
    if args.landscape:
        from planner.landscape import energy_landscape
        from planner.plots import save_landscape_plot

        save_landscape_plot(energy_landscape(model, z, state, z_goal), args.landscape)
        print(f"landscape -> {args.landscape}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"action": action, "energy_now": start_energy, "energy_planned": plan.energy,
                       "iterations": plan.iterations_run, "seconds": plan.seconds}, handle, indent=2)
    return 0
