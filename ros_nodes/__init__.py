"""ROS 2 room: thin adapters between franka_ros2 / camera messages and `planner.mpc`; it holds no
model math. Built so far: the interface packages (`interfaces/`: our `franka_msgs`, field for field
franka_ros2 v3.4.0's, and `vjepa_wm_interfaces` with the `PlanToGoal` action, built into the venv
by `make`), image conversion (`images`), typed ROS parameters (`parameters`) and the camera bridge
(`camera_bridge`). The Franka bridge, planner node, watchdog and sim node come next.
"""
