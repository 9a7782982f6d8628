"""`vjepa-wm eval-sim --task T --episodes N --seed S [--json FILE]`: goal-image planning in the sim.

Runs seeded episodes of a task with a world model (default: the bundled sim model), planning
from goal images only (one per stage for grasp and pick-and-place), and prints the success rate
(scored by the simulator after each episode) and the planning time per action. --out DIR keeps
rollout videos (current view beside the goal) and energy plots of the first --videos episodes.
--ros runs the same reach episodes through ROS 2 instead (the sim node, the watchdog and the
planner node as processes, `evaluation.ros_reach`) and writes the same record.
"""
from __future__ import annotations

from dataclasses import dataclass

from vjepa_wm.config_cli import ConfigCommand, add_config_command
from vjepa_wm.evaluation.sim import SimEvalConfig


@dataclass
class EvalSimCommand(SimEvalConfig):
    ros: bool = False  # through ROS 2: sim node, watchdog and planner node as processes, goals by the action (reach only)


def run(config: EvalSimCommand) -> int:

    from vjepa_wm.benchmarks.common import print_table, write_json
    from vjepa_wm.evaluation.sim import evaluate
    from vjepa_wm.provenance import provenance
    from vjepa_wm.sim_model import BUNDLED_SIM_MODEL, load_sim_model

    origin = provenance("eval-sim", config, config.model or BUNDLED_SIM_MODEL)
    if config.ros:  # the planner node loads the same weights in its own process
        from vjepa_wm.evaluation.ros_reach import evaluate_ros

        report = evaluate_ros(config)
    else:
        report = evaluate(load_sim_model(config.model).to(config.device), config)
    print_table([report], ["task", "target_object", "gripper", "episodes", "seed", "success_rate", "seconds_per_action",
                           "mean_goal_distance"])
    for r in report["results"]:
        if not r["success"]:
            print(f"  seed {r['seed']}: failed, {100 * r['goal_distance']:.1f} cm from the goal ({r['stop_reason']})")
    write_json(config.json, {**report, "provenance": origin})
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "eval-sim", ConfigCommand(EvalSimCommand, run),
                       help="success rate of goal-image planning in the sim", description=__doc__)
