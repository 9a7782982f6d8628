"""The same deployments for `ros2 launch`, where ROS 2 is installed (launch/*.launch.py call this).

`launch` and `launch_ros` have no pip wheels, so they are imported only here, when `ros2 launch`
asks; everything else (the check of every key, the params files with fully qualified names, the
renames that leave a process's other nodes alone) is `launch_config`'s, shared with our launcher.
What `ros2 launch` does differently: it starts every node at once (no waiting for readiness; our
nodes wait for their inputs anyway), and a required node exiting shuts the launch down
(`on_exit=Shutdown()`), whatever its status.

    ros2 launch vjepa_wm sim.launch.py                                   # share/vjepa_wm/config/sim.yaml
    ros2 launch vjepa_wm franka_ptp.launch.py deployment:=$HOME/my_arm.yaml   # an edited copy
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from .launch_config import load_deployment, write_params_file

PACKAGE = "vjepa_wm"


def deployment_path(choice: str) -> Path:
    """A YAML path as given, or the name of a deployment installed in share/vjepa_wm/config."""
    if "/" in choice or choice.endswith((".yaml", ".yml")):
        return Path(choice).expanduser()
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / "config" / f"{choice}.yaml"


def generate(default_deployment: str):
    """A LaunchDescription with a ``deployment`` argument (default: `default_deployment`)."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable, Shutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    def actions(context):
        plan = load_deployment(deployment_path(LaunchConfiguration("deployment").perform(context)))
        folder = Path(tempfile.mkdtemp(prefix="vjepa_wm_launch_"))
        environment = plan.environment({})  # only what the deployment sets, over the shell's
        out = [SetEnvironmentVariable(name, value) for name, value in environment.items()]
        for planned in plan.nodes:
            out.append(Node(package=PACKAGE, executable=planned.entry.executable, output="screen",
                            ros_arguments=planned.ros_arguments(write_params_file(planned, folder))[1:],
                            additional_env=dict(planned.entry.env),
                            on_exit=Shutdown(reason=f"{planned.label} exited") if planned.entry.required else None))
        return out

    return LaunchDescription([
        DeclareLaunchArgument("deployment", default_value=default_deployment,
                              description="a deployment YAML, or the name of one in share/vjepa_wm/config"),
        OpaqueFunction(function=actions),
    ])
