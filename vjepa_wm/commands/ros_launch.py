"""`vjepa-wm ros-launch DEPLOYMENT.yaml`: start a whole ROS 2 setup from one YAML and keep it whole.

The deployment (config/sim.yaml, config/franka_cartesian.yaml, config/franka_ptp.yaml, or a copy
edited for your robot) names each node, its namespace and parameters. Everything is checked
before anything starts; then the nodes start in the file's order, each once the one before is
ready, their output prefixed with their names. Ctrl-C (or SIGTERM) stops them all; so does a
required node exiting (exit status 1). E.g.
  vjepa-wm ros-launch config/sim.yaml
  vjepa-wm ros-launch config/franka_ptp.yaml --check      # check the file, show the commands
"""
from __future__ import annotations

from dataclasses import dataclass

from vjepa_wm.config_cli import ConfigCommand, add_config_command, positional


@dataclass
class RosLaunchConfig:
    deployment: str = positional("")  # the deployment YAML (config/*.yaml)
    domain_id: int | None = None  # ROS_DOMAIN_ID of every node instead of the file's (null: the file's)
    duration_s: float | None = None  # stop the setup after this many seconds (null: run until SIGINT/SIGTERM)
    check: bool = False  # only check the file and print each node's command; start nothing

    def __post_init__(self):
        if not self.deployment:
            raise ValueError("ros-launch needs a deployment YAML (e.g. config/sim.yaml)")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {self.duration_s}")


def run(config: RosLaunchConfig) -> int:
    from pathlib import Path

    from vjepa_wm.ros_nodes.launch_config import load_deployment
    from vjepa_wm.ros_nodes.launcher import Launcher, command

    if not Path(config.deployment).is_file():
        raise OSError(f"{config.deployment}: no such deployment file")
    plan = load_deployment(config.deployment, config.domain_id)
    if config.check:
        for planned in plan.nodes:
            params = "PARAMS.yaml" if planned.params_document() else None
            print(f"{planned.label}: {' '.join(command(planned, params)[1:])}")
        print(f"{plan.source}: {len(plan.nodes)} nodes, parameters valid")
        return 0
    return Launcher(plan, duration_s=config.duration_s).run()


def register(subparsers) -> None:
    add_config_command(subparsers, "ros-launch", ConfigCommand(RosLaunchConfig, run),
                       help="start a ROS 2 deployment (nodes, parameters, order) from one YAML", description=__doc__)
