"""The faults the sim node can be told to show, as ROS parameters that may change while it runs.

Conditions that last (a camera gone stale or frozen, state topics gone quiet, the user stop
pressed) are parameters: set them at start with ``-p`` or any time with a parameter client, clear
them the same way. A reflex is an event, not a condition: the `~/inject_reflex` service
(std_srvs/Trigger) raises one, and only `/action_server/error_recovery` clears it, as on the robot.
"""
from __future__ import annotations

from dataclasses import dataclass

from .franka_interface import ERROR_FIELDS
from .parameters import Spec

CAMERA_FAULTS = ("none", "stale", "frozen")


@dataclass(frozen=True)
class SimFaults:
    fault_camera: str = "none"  # "stale": stamps lag by fault_camera_lag_s; "frozen": the same image again, freshly stamped
    fault_camera_lag_s: float = 1.0  # how far a stale camera's stamps lag behind the simulated time
    fault_drop_state: bool = False  # robot_state, current_pose and the gripper's joint_states stop
    fault_user_stopped: bool = False  # robot_mode USER_STOPPED: the arm holds, commands and error recovery refused
    fault_reflex_error: str = "cartesian_reflex"  # the current_errors flag an injected reflex sets

    def __post_init__(self):
        if self.fault_camera not in CAMERA_FAULTS:
            raise ValueError(f"fault_camera must be one of {', '.join(CAMERA_FAULTS)}, got {self.fault_camera!r}")
        if not 0.0 <= self.fault_camera_lag_s <= 60.0:
            raise ValueError(f"fault_camera_lag_s must be 0..60, got {self.fault_camera_lag_s}")
        if self.fault_reflex_error not in ERROR_FIELDS:
            raise ValueError(f"fault_reflex_error must name a franka_msgs/Errors flag, got {self.fault_reflex_error!r}")


PARAMETERS = {
    "fault_camera": Spec("camera fault", choices=CAMERA_FAULTS),
    "fault_camera_lag_s": Spec("seconds a stale camera's stamps lag behind the simulated time", low=0.0, high=60.0),
    "fault_drop_state": Spec("stop publishing robot_state, current_pose and the gripper joint states"),
    "fault_user_stopped": Spec("the user stop is pressed: robot_mode USER_STOPPED, the arm holds, commands refused"),
    "fault_reflex_error": Spec("the franka_msgs/Errors flag an injected reflex sets (~/inject_reflex)"),
}
