"""`vjepa-wm plan`: one planning step from an image, a goal image and the robot state.

Encodes both images, runs the CEM search and prints the chosen action (the first of the planned
sequence) with the embodiment's action names (Franka: dx dy dz droll dpitch dyaw dgripper). With
--landscape it also writes the energy landscape over an xyz grid around the current pose.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from vjepa_wm.config_cli import ConfigCommand, add_config_command
from vjepa_wm.embodiments import Franka
from vjepa_wm.planner.cem import CEMConfig


@dataclass
class PlanConfig:
    model: str = ""  # world model: our directory (or its hub id) or the official V-JEPA 2-AC .pt
    img_size: int = 256  # frame size of an official .pt (ours record it)
    image: str = ""  # current camera image
    goal: str = ""  # goal image
    state: str = ""  # the robot's state now, comma-separated: x,y,z,roll,pitch,yaw,gripper
    landscape: str | None = None  # also write the xyz energy landscape picture here (PNG)
    json: str | None = None  # write the action and energies here as JSON
    device: str = "auto"  # torch device: auto (a GPU if there is one), cpu, cuda, cuda:N
    cem: CEMConfig = field(default_factory=CEMConfig)
    franka: Franka = field(default_factory=Franka)  # the planning box per step


def parse_state(text: str, embodiment) -> np.ndarray:
    """The --state flag as the embodiment's state, or a one-line error (malformed, non-finite, implausible)."""
    names = ",".join(embodiment.state_names)
    try:
        values = [float(v) for v in text.split(",")] if text else []
    except ValueError:
        values = []
    if len(values) != embodiment.state_dim or not np.all(np.isfinite(values)):
        raise ValueError(f"--state must be {embodiment.state_dim} finite comma-separated numbers {names}; got {text!r}")
    problem = embodiment.state_problem(values)
    if problem is not None:
        raise ValueError(f"--state: {problem}")
    return np.asarray(values, dtype=np.float32)


def run(config: PlanConfig) -> int:
    import torch

    from vjepa_wm.benchmarks.common import pick_device
    from vjepa_wm.planner.cem import CEM
    from vjepa_wm.planner.energy import energy, rollout_energy
    from vjepa_wm.planner.planning_model import planning_model
    from vjepa_wm.planner.safety import SafetyEnvelope
    from vjepa_wm.world_model.checkpoints import load_world_model
    from vjepa_wm.world_model.preprocessing import read_image

    embodiment = config.franka
    state = parse_state(config.state, embodiment)
    for name in ("model", "image", "goal"):
        if not getattr(config, name):
            raise ValueError(f"--{name} is required")
    device = pick_device(config.device)
    model = load_world_model(config.model, img_size=config.img_size).to(device)
    if model.embodiment.name != embodiment.name:
        raise ValueError(f"{config.model} is a {model.embodiment.name} model; plan searches Franka actions")
    model = planning_model(model, device, config.cem.horizon)
    z = model.encode_images(read_image(config.image))
    z_goal = model.encode_images(read_image(config.goal))
    state = torch.as_tensor(state, device=device)[None]
    cem = CEM(config.cem, embodiment, device)
    try:
        plan = cem.search(rollout_energy(model, z, state, z_goal), position=cem.position_of(state[0]))
    except FloatingPointError as err:
        raise ValueError(f"no action: {err}") from None
    action = plan.first_action.cpu().tolist()
    unsafe = SafetyEnvelope(embodiment, config.cem.workspace).action_problem(action, state[0].cpu().numpy())
    if unsafe is not None:  # the search keeps to the same box: this is a planner bug, never printed as a plan
        raise ValueError(f"no action: {unsafe.reason}")
    start_energy = float(energy(z, z_goal)[0])
    print(f"action ({' '.join(embodiment.action_names)}): " + " ".join(f"{v:+.4f}" for v in action))
    print(f"energy now {start_energy:.4f} -> planned {plan.energy:.4f} ({plan.iterations_run} iterations, {plan.seconds:.2f} s)")
    if config.landscape:
        from vjepa_wm.planner.landscape import energy_landscape
        from vjepa_wm.planner.plots import save_landscape_plot

        save_landscape_plot(energy_landscape(model, embodiment, z, state, z_goal), config.landscape)
        print(f"landscape -> {config.landscape}")
    if config.json:
        with open(config.json, "w") as handle:
            json.dump({"action": action, "action_names": list(embodiment.action_names), "energy_now": start_energy,
                       "energy_planned": plan.energy, "iterations": plan.iterations_run, "seconds": plan.seconds}, handle, indent=2)
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "plan", ConfigCommand(PlanConfig, run), help="plan one action toward a goal image",
                       description=__doc__)
