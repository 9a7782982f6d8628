"""`vjepa-wm nav-drive --model M --episodes N --seed S [--json FILE] [--video DIR]`: closed loop in the sim car.

Each seeded episode draws a world, a start and a goal pose a few steps of driving away whose
camera view is the goal image; the car world model plans toward that image with the car CEM
(`--mode nwm`: NWM's straight lines plus a final yaw; `free`: one action per step) at every 4 Hz
step, from its 4 latest frames, and the sim car drives the first step of each plan. Success: the
car comes within 1 waypoint spacing (`--success-radius`) of the goal position within the step
budget. Beside the model, in the same worlds: constant velocity, NWM's initial straight line and
an oracle steering to the goal's true position. --video writes a top-down plot and a video
(view | goal | driven and planned paths) of each model drive.
"""
from __future__ import annotations

from vjepa_wm.config_cli import ConfigCommand, add_config_command
from vjepa_wm.evaluation.nav_drive import NavDriveConfig

COLUMNS = ["method", "episodes", "success_rate", "final_distance_wu", "final_distance_m", "min_distance_m", "steps_to_goal",
           "seconds_per_plan"]


def run(config: NavDriveConfig) -> int:
    from vjepa_wm.benchmarks.common import print_table, write_json
    from vjepa_wm.evaluation.nav import car_model_source, load_car_model
    from vjepa_wm.evaluation.nav_drive import evaluate
    from vjepa_wm.provenance import provenance

    model = load_car_model(config.model, config.device)
    origin = provenance("nav-drive", config, car_model_source(config.model))  # the weights just loaded
    report = evaluate(model, config)
    print_table(report["table"], COLUMNS)
    if config.video:
        print(f"plots and videos -> {config.video}")
    write_json(config.json, {**report, "provenance": origin})
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "nav-drive", ConfigCommand(NavDriveConfig, run),
                       help="closed-loop navigation to goal images in the sim car", description=__doc__)
