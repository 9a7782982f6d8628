"""ROS 2 room: thin adapters between franka_ros2 / camera messages and `planner.mpc`,
the safety watchdog and a sim node. It holds no model math.

Not built yet; this package only reserves the room.
"""
