"""`ros2 launch vjepa_wm franka_ptp.launch.py [deployment:=FILE.yaml]`: config/franka_ptp.yaml, a real arm on command path (b): stock franka_ros2, IK -> PTPMotion.

The same deployment as `vjepa-wm ros-launch config/franka_ptp.yaml` (see vjepa_wm.ros_nodes.launch_description).
"""
from vjepa_wm.ros_nodes.launch_description import generate


def generate_launch_description():
    return generate("franka_ptp")
