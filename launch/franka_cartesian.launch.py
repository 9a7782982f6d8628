"""`ros2 launch vjepa_wm franka_cartesian.launch.py [deployment:=FILE.yaml]`: config/franka_cartesian.yaml, a real arm on command path (a): PoseStamped targets for a Cartesian controller of your own.

The same deployment as `vjepa-wm ros-launch config/franka_cartesian.yaml` (see vjepa_wm.ros_nodes.launch_description).
"""
from vjepa_wm.ros_nodes.launch_description import generate


def generate_launch_description():
    return generate("franka_cartesian")
