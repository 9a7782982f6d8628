"""`vjepa-wm nav-replay --data DIR --index FILE --model M [--json FILE]`: NWM's planning eval, in latent space.

For every entry of an NWM eval index (e.g. `splits/test/navigation_eval.pkl`): 4 context frames,
a goal frame 8 steps (2 s) ahead, an 8-waypoint plan by CEM with the car world model (`--mode
nwm`: NWM's straight lines plus a final yaw; `free`: one action per step), scored against the
driven path (ATE, RPE, final position and yaw error, in waypoint units and metres) beside
model-free baselines, with the seconds per plan. --landscape also says how well the model's energy
ranks paths (`evaluation.nav_landscape`). --replay also plans at every step of one whole
trajectory and writes a top-down plot and a video to --out.
"""
from __future__ import annotations

from vjepa_wm.config_cli import ConfigCommand, add_config_command
from vjepa_wm.evaluation.nav import NavReplayConfig

COLUMNS = ["method", "plans", "ate_wu", "ate_m", "rpe_trans_wu", "rpe_trans_m", "rpe_rot_deg", "final_pos_wu",
           "final_pos_m", "final_yaw", "seconds_per_plan"]


def run(config: NavReplayConfig) -> int:
    from vjepa_wm.benchmarks.common import print_table, write_json
    from vjepa_wm.evaluation.nav import car_model_source, entries, evaluate, load_car_model
    from vjepa_wm.evaluation.nav_landscape import FIGURES as LANDSCAPE_FIGURES
    from vjepa_wm.provenance import provenance

    entries(config)  # flags and index checked before the model is loaded
    model = load_car_model(config.model, config.device)
    origin = provenance("nav-replay", config, car_model_source(config.model))  # the weights just loaded
    report = evaluate(model, config)
    print_table(report["table"], COLUMNS)
    if "landscape" in report:
        print_table([report["landscape"]], ["plans", *LANDSCAPE_FIGURES])
    if "replay" in report:
        r = report["replay"]
        print(f"replay {r['trajectory']}: {r['steps']} plans, ATE {r['ate_wu']:.3f} wu, plot {r['plot']}, video {r['video']}")
    write_json(config.json, {**report, "provenance": origin})
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "nav-replay", ConfigCommand(NavReplayConfig, run),
                       help="NWM's navigation planning eval on recorded drives", description=__doc__)
