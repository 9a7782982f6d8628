"""ROS 2 room: thin adapters between franka_ros2 / camera messages and `planner.mpc`; it holds no
model math. Built so far: the interface packages (`interfaces/`: our `franka_msgs`, field for field
franka_ros2 v3.4.0's, and `vjepa_wm_interfaces` with the `PlanToGoal` action, built into the venv
by `make`), what franka_ros2 exposes and the conversions to the Franka state (`franka_interface`),
image conversion (`images`), typed ROS parameters (`parameters`), one node per process
(`node_process`), the camera bridge (`camera_bridge`), the watchdog (`watchdog_rules`, ROS-free,
and `watchdog_node`), the PyBullet arm behind franka_ros2's names (`sim_node`, `sim_arm`,
`sim_faults`), the Franka bridge (`franka_bridge`: a `Robot` over command path (a), PoseStamped
targets, or (b), IK on the arm's model -> PTPMotion goals), the planner node (`planner_node`:
`PlanToGoal` -> `planner.mpc.run_mpc` against the Franka bridge; goal parsing in `plan_goals`) and
our launcher (`launch_config`, the typed deployment YAML; `launcher`; `launch_description` for
`ros2 launch`).
"""
