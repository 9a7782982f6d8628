"""What franka_ros2 (v3.4.0 / v2.5.0, ../shared/reference/ros2.md §1.3, §5.3) exposes, as this
project uses it: names, message types, QoS, robot modes, and the conversions between its messages
and the house's 7-D Franka state (`embodiments.franka`: xyz, extrinsic xyz Euler, gripper 0 open ..
1 closed).

One place, so the Franka bridge that talks to a real arm and the sim node that stands in for one
cannot drift apart. Names are relative: they resolve under the node's namespace, as
`franka.launch.py namespace:=NS` puts everything under ``/NS/``; with no namespace they are the
upstream absolute names. QoS follows upstream's publishers; anything subscribing to the robot
subscribes best effort (`FROM_ROBOT_QOS`), which matches best-effort and reliable publishers alike,
because the convenience topics are best effort since v2.4.0/v3.3.0 and a reliable subscriber would
get nothing from them.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np
from builtin_interfaces.msg import Time
from franka_msgs.action import ErrorRecovery, Grasp, Homing, Move, PTPMotion
from franka_msgs.msg import Errors, FrankaRobotState
from geometry_msgs.msg import Pose, PoseStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from vjepa_wm.embodiments import rotations
from vjepa_wm.sim.franka.objects import MAX_OPENING, gripper_to_opening, opening_to_gripper

# --- names and types (franka_bringup/launch/franka.launch.py, single arm, no prefix) -------------
ROBOT_STATE_TOPIC = "franka_robot_state_broadcaster/robot_state"  # FrankaRobotState, 1 kHz on the robot
CURRENT_POSE_TOPIC = "franka_robot_state_broadcaster/current_pose"  # PoseStamped (= o_t_ee), convenience_publish_rate
GRIPPER_JOINT_STATES_TOPIC = "franka_gripper/joint_states"  # JointState, two fingers of width/2 each, 15 Hz
PTP_MOTION_ACTION = "action_server/ptp_motion"  # PTPMotion (v2.2.0+/v3.2.0+)
ERROR_RECOVERY_ACTION = "action_server/error_recovery"  # ErrorRecovery
GRIPPER_MOVE_ACTION = "franka_gripper/move"  # Move
GRIPPER_GRASP_ACTION = "franka_gripper/grasp"  # Grasp
GRIPPER_HOMING_ACTION = "franka_gripper/homing"  # Homing
# franka_ros2 has no Cartesian target input (its example controllers play built-in motions, §1.4):
# path (a) needs a controller of our own on the robot PC that reads a stamped PoseStamped here.
DEFAULT_TARGET_TOPIC = "vjepa_wm/target_pose"
TYPES = {
    ROBOT_STATE_TOPIC: FrankaRobotState, CURRENT_POSE_TOPIC: PoseStamped, GRIPPER_JOINT_STATES_TOPIC: JointState,
    PTP_MOTION_ACTION: PTPMotion, ERROR_RECOVERY_ACTION: ErrorRecovery, GRIPPER_MOVE_ACTION: Move,
    GRIPPER_GRASP_ACTION: Grasp, GRIPPER_HOMING_ACTION: Homing,
}
ARM_JOINTS = 7
GRIPPER_DEFAULT_SPEED_MPS = 0.1  # franka_gripper_node.yaml default_speed
GRIPPER_DEFAULT_EPSILON_M = 0.005  # franka_gripper_node.yaml / GraspEpsilon defaults
MAX_WIDTH_M = MAX_OPENING  # the Franka Hand opens to 80 mm, as the sim's fingers do

# --- QoS (§1.3 as upstream publishes, §5.3 for our side) ---------------------------------------
ROBOT_STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # SystemDefaultsQoS
CONVENIENCE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # current_pose and the like
GRIPPER_STATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
FROM_ROBOT_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # every subscription to the robot
COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)  # stamped targets, planner -> robot


class RobotMode(IntEnum):
    """`FrankaRobotState.robot_mode` (libfranka's RobotMode)."""

    OTHER = FrankaRobotState.ROBOT_MODE_OTHER
    IDLE = FrankaRobotState.ROBOT_MODE_IDLE
    MOVE = FrankaRobotState.ROBOT_MODE_MOVE
    GUIDING = FrankaRobotState.ROBOT_MODE_GUIDING
    REFLEX = FrankaRobotState.ROBOT_MODE_REFLEX
    USER_STOPPED = FrankaRobotState.ROBOT_MODE_USER_STOPPED
    AUTOMATIC_ERROR_RECOVERY = FrankaRobotState.ROBOT_MODE_AUTOMATIC_ERROR_RECOVERY


ERROR_FIELDS: tuple[str, ...] = tuple(Errors.get_fields_and_field_types())  # the 36 flags, in wire order


def base_frame(arm_id: str) -> str:
    """The frame of every pose franka_ros2 publishes, as franka_description names it for `arm_id` (fr3, fer, ...)."""
    return f"{arm_id}_link0"


def joint_names(arm_id: str) -> list[str]:
    return [f"{arm_id}_joint{i}" for i in range(1, ARM_JOINTS + 1)]


def finger_names(arm_id: str) -> list[str]:
    return [f"{arm_id}_finger_joint1", f"{arm_id}_finger_joint2"]


# --- time --------------------------------------------------------------------------------------
def to_time(seconds: float) -> Time:
    sec = int(np.floor(seconds))
    return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


# --- poses and states --------------------------------------------------------------------------
def pose_to_state(pose: Pose, gripper: float) -> np.ndarray:
    """A pose in the base frame and a gripper value -> the 7-D state. ValueError on a non-finite
    pose or a quaternion too short to name a rotation (an unset ``Pose()`` has w = 1)."""
    q = pose.orientation
    quaternion = np.array([q.x, q.y, q.z, q.w])
    position = np.array([pose.position.x, pose.position.y, pose.position.z])
    if not (np.all(np.isfinite(quaternion)) and np.all(np.isfinite(position))):
        raise ValueError("the pose holds NaN or infinite values")
    if np.linalg.norm(quaternion) < 1e-6:
        raise ValueError("the pose's quaternion is zero")
    euler = rotations.matrix_to_euler(rotations.matrix_from_quaternion(quaternion))
    return np.concatenate([position, euler, [float(gripper)]])


def state_to_pose(state) -> Pose:
    """The pose part of a 7-D state (the gripper travels through the gripper actions)."""
    state = np.asarray(state, dtype=np.float64)
    x, y, z, w = rotations.quaternion_from_matrix(rotations.euler_to_matrix(state[3:6]))
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in state[:3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = x, y, z, w
    return pose


def pose_stamped(state, stamp: float, frame_id: str) -> PoseStamped:
    msg = PoseStamped(pose=state_to_pose(state))
    msg.header.stamp, msg.header.frame_id = to_time(stamp), frame_id
    return msg


def state_from_robot_state(msg: FrankaRobotState, gripper: float) -> np.ndarray:
    """The 7-D state from the measured end-effector pose (o_t_ee) and the gripper's own reading."""
    return pose_to_state(msg.o_t_ee.pose, gripper)


# --- gripper -----------------------------------------------------------------------------------
def width_to_gripper(width_m: float) -> float:
    """Finger distance (m) -> gripper state (0 open .. 1 closed), the sim's and DROID's convention."""
    return opening_to_gripper(width_m)


def gripper_to_width(gripper: float) -> float:
    return gripper_to_opening(gripper)


def gripper_joint_state(width_m: float, stamp: float, arm_id: str) -> JointState:
    """`/franka_gripper/joint_states` as franka_gripper_node publishes it: each finger at width / 2."""
    msg = JointState(name=finger_names(arm_id), position=[width_m / 2] * 2, velocity=[0.0, 0.0], effort=[0.0, 0.0])
    msg.header.stamp = to_time(stamp)
    return msg


def width_from_joint_states(msg: JointState) -> float:
    """The finger distance (m) from `/franka_gripper/joint_states`: the sum of the two finger joints
    (named ``*finger_joint1`` and ``*finger_joint2``). ValueError if either is missing or not finite."""
    positions = dict(zip(msg.name, msg.position))
    fingers = [value for name, value in positions.items() if name.endswith(("finger_joint1", "finger_joint2"))]
    if len(fingers) != 2 or not np.all(np.isfinite(fingers)):
        raise ValueError(f"gripper joint states need two finite finger joints, got {list(msg.name)}")
    return float(sum(fingers))


# --- errors and modes --------------------------------------------------------------------------
def active_errors(errors: Errors) -> tuple[str, ...]:
    """The names of the flags set in an `Errors` message, in wire order."""
    return tuple(name for name in ERROR_FIELDS if getattr(errors, name))


def errors_with(names) -> Errors:
    """An `Errors` message with exactly the flags `names` set; ValueError naming an unknown flag."""
    errors = Errors()
    for name in names:
        if name not in ERROR_FIELDS:
            raise ValueError(f"{name!r} is not a franka_msgs/Errors flag")
        setattr(errors, name, True)
    return errors


def needs_recovery(msg: FrankaRobotState) -> bool:
    """REFLEX or any current error: stop commanding and call error recovery (ros2.md §1.4, §5.6)."""
    return msg.robot_mode == RobotMode.REFLEX or bool(active_errors(msg.current_errors))
