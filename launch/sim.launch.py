"""`ros2 launch vjepa_wm sim.launch.py [deployment:=FILE.yaml]`: config/sim.yaml, the PyBullet Franka behind franka_ros2's names, the watchdog and the planner on the bundled sim model.

The same deployment as `vjepa-wm ros-launch config/sim.yaml` (see vjepa_wm.ros_nodes.launch_description).
"""
from vjepa_wm.ros_nodes.launch_description import generate


def generate_launch_description():
    return generate("sim")
