"""The Franka bridge: a `Robot` (`embodiments.robot`) over ROS 2 for the MPC loop, in the planner's
process, against a franka_ros2 bringup or the sim node, over one of two command paths
(`command_path`, ../shared/reference/ros2.md §1.4):

* ``pose`` (a): a stamped `PoseStamped` target for a Cartesian controller of our own on the robot PC;
* ``ptp`` (b): stock franka_ros2 (v2.2.0+/v3.2.0+), no controller of ours: the target pose goes
  through IK on the arm's model (`embodiments.franka_kinematics`, the model named by `arm_id`,
  the tool `tcp_offset_m` beyond the flange), seeded from the measured joints, to one
  ``action_server/ptp_motion`` (`PTPMotion`) goal: joint-space point to point, at most
  `ptp_max_joint_velocity_rad_s` per joint.

Two lifecycle nodes do the ROS side, spun by the caller's executor (one SingleThreadedExecutor,
§3.5): `FrankaBridgeNode` (state, hold, target, gripper actions) and the `CameraBridge` (the
latest good RGB frame; its conversion and refusals are not repeated here). `FrankaBridge` is the
`Robot` on top of them. Its methods block and wait on what the executor delivers, so they must be
called from another thread than the one spinning (never from a callback).

* ``observe()``: the latest camera frame (one received after the last `apply`, if one comes within
  `frame_timeout_s`; else the latest), the 7-D state (the measured end-effector pose from
  ``franka_robot_state_broadcaster/current_pose`` or ``robot_state``'s ``o_t_ee``, and the gripper
  from ``franka_gripper/joint_states``, `franka_interface`'s conversions) and the frame's stamp
  (seconds on the robot's clock). It waits up to `first_data_timeout_s` for the first of each,
  then raises a one-line RuntimeError.
* ``now()``: the node's ROS time, the clock stamps are judged on (simulated time under
  ``use_sim_time``).
* ``apply(delta)``: the absolute target `embodiments.franka.integrate`(latest measured state,
  delta), published once, stamped now, in the base frame on `target_topic` (RELIABLE, depth 1):
  on path (a) the controller's input, on path (b) the record of what the `PTPMotion` goal aims
  for (the watchdog's command input; nothing may follow it there: the sim node for path (b) takes
  another `target_topic`). Path (b) first solves the IK from the joints of the latest
  ``robot_state`` and checks the model against the measured pose (FK of those joints within
  `MODEL_CHECK_M` and `MODEL_CHECK_RAD` of it: a wrong `arm_id` or `tcp_offset_m` is refused, not
  obeyed), then sends the goal.
  If the delta's gripper part is larger than `gripper_threshold` (0 open .. 1 closed), a
  ``franka_gripper/grasp`` goal (closing: the target's width, any narrower width accepted, so an
  empty grasp succeeds too) or a ``franka_gripper/move`` goal (opening to the target's width) goes
  out; smaller gripper changes are ignored, so a grasped object is not let go by the planner's
  small gripper noise (the measured width of a grasp stays short of the goal's).
  **Blocking**: `apply` then waits until the measured pose is within `position_tolerance_m` and
  `rotation_tolerance_rad` of the target (path (b): after the `PTPMotion` result came, and not if
  the motion failed) and the gripper goal (if any) has finished, or until `settle_timeout_s` has
  passed, or until a hold or a robot stop ends the motion; it does not raise then (the arm may be
  blocked by a real obstacle): `last_apply` says how it ended, and the next `observe` shows where
  the arm got. So one MPC step is one settled motion; a `PTPMotion` goal still running when the
  wait ends is canceled (no motion outlives its step).
  It **refuses** (a one-line ValueError, nothing sent) a malformed delta, and while the watchdog
  says hold, or no hold message arrived within `hold_timeout_s` (the watchdog is gone; the first
  one is waited for up to `first_data_timeout_s`, as discovery of a watchdog process takes a
  moment), or no robot state has come yet (waited for the same way), or ``robot_mode`` is
  REFLEX or USER_STOPPED or ``current_errors`` holds a flag; on path (b) also when there is no
  `PTPMotion` server, no measured joints, a model that disagrees with the measured pose, or the IK
  finds no joints (unreachable, outside the joint limits less `LIMIT_MARGIN_RAD`, not converged).
* ``hold()``: publishes the measured pose as the target once and cancels the `PTPMotion` goal
  under way, if any (always allowed).

The watchdog's contract (`watchdog_node`) on the bridge's side: on every entry into the held
condition (a True on the hold topic after False, the hold topic silent for `hold_timeout_s`, and
at the first measured pose while held from the start) the node publishes the measured pose as the
target once and cancels a `PTPMotion` goal under way, from a steady-clock check timer, so the arm
stops even while nobody calls `apply`.

No model math: the delta comes from the planner, its integration and the IK from the embodiments.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from action_msgs.msg import GoalStatus
from franka_msgs.action import Grasp, Move, PTPMotion
from franka_msgs.msg import FrankaRobotState, GraspEpsilon
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from vjepa_wm.embodiments import rotations
from vjepa_wm.embodiments.franka import integrate
from vjepa_wm.embodiments.franka_kinematics import FR3, PANDA, FrankaKinematics, IKSettings
from vjepa_wm.embodiments.robot import Observation

from . import franka_interface as fi
from .camera_bridge import CameraBridge, sensor_qos
from .franka_interface import RobotMode
from .parameters import Spec, declare, read
from .watchdog_rules import HOLD_BUDGET_S

STATE_SOURCES = ("current_pose", "robot_state")
COMMAND_PATHS = ("pose", "ptp")
# franka_description's arm ids -> the published model of that arm (same DH table, own joint limits).
ARM_MODELS = {"fer": PANDA, "panda": PANDA, "fr3": FR3}
HAND_TCP_M = 0.1034  # Franka Hand: flange -> TCP (Franka's default F_T_EE); the sim's grasp point is 0.105
# Path (b) solutions stay this far inside the published limits: a position controller overshooting
# a goal right at a limit trips joint_position_limits_violation.
LIMIT_MARGIN_RAD = 0.02
# FK of the measured joints must be this close to the measured pose, or the model (arm_id,
# tcp_offset_m) is not the robot's and its IK would send the arm elsewhere.
MODEL_CHECK_M = 0.005
MODEL_CHECK_RAD = 0.02
CANCEL_WAIT_S = 1.0  # apply waits this long for a canceled PTPMotion goal to end
STATE_DIM = 7
CHECK_PERIOD_S = 0.02  # the steady timer that notices a silent hold topic


@dataclass(frozen=True)
class FrankaBridgeConfig:
    arm_id: str = "fr3"  # franka_description's arm id: the base frame is <arm_id>_link0
    state_source: str = "current_pose"  # where the measured pose comes from: current_pose or robot_state (o_t_ee)
    command_path: str = "pose"  # pose: (a) PoseStamped targets; ptp: (b) IK -> PTPMotion goals (stock franka_ros2)
    target_topic: str = fi.DEFAULT_TARGET_TOPIC  # PoseStamped targets: (a) the controller's input, (b) a record
    hold_topic: str = "vjepa_wm/watchdog/hold"  # the watchdog's std_msgs/Bool
    hold_timeout_s: float = HOLD_BUDGET_S  # no hold message in this time: held
    settle_timeout_s: float = 2.0  # apply waits at most this long for the arm (and gripper) to get there
    position_tolerance_m: float = 0.003  # apply's wait ends when the measured position is this close ...
    rotation_tolerance_rad: float = 0.02  # ... and the rotation this close
    gripper_threshold: float = 0.1  # a delta's gripper part (0 open .. 1 closed) beyond this moves the gripper
    gripper_speed_mps: float = fi.GRIPPER_DEFAULT_SPEED_MPS  # Move and Grasp speed
    grasp_force_n: float = 20.0  # Grasp force
    frame_timeout_s: float = 0.2  # observe waits this long for a camera frame newer than the last apply
    first_data_timeout_s: float = 5.0  # observe: for the first state, gripper, frame; apply: the first hold word
    tcp_offset_m: float = HAND_TCP_M  # path (b): flange -> end effector along the flange's z (the measured EE)
    ptp_max_joint_velocity_rad_s: float = 1.0  # path (b): PTPMotion's maximum_joint_velocities, every joint
    ptp_goal_tolerance_rad: float = 0.002  # path (b): PTPMotion's goal_tolerance

    def __post_init__(self):
        for name in ("arm_id", "target_topic", "hold_topic"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")
        if self.state_source not in STATE_SOURCES:
            raise ValueError(f"state_source must be one of {', '.join(STATE_SOURCES)}, got {self.state_source!r}")
        if self.command_path not in COMMAND_PATHS:
            raise ValueError(f"command_path must be one of {', '.join(COMMAND_PATHS)}, got {self.command_path!r}")
        if self.command_path == "ptp" and self.arm_id not in ARM_MODELS:
            raise ValueError(f"command_path ptp needs the kinematic model of arm_id {self.arm_id!r}; known: "
                             f"{', '.join(ARM_MODELS)}")
        for name, low, high in (("hold_timeout_s", 0.01, 10.0), ("settle_timeout_s", 0.0, 60.0),
                                ("position_tolerance_m", 1e-4, 0.1), ("rotation_tolerance_rad", 1e-4, 0.5),
                                ("gripper_threshold", 0.01, 1.0), ("gripper_speed_mps", 0.001, 0.2),
                                ("grasp_force_n", 0.0, 140.0), ("frame_timeout_s", 0.0, 5.0),
                                ("first_data_timeout_s", 0.0, 60.0), ("tcp_offset_m", 0.0, 0.5),
                                ("ptp_max_joint_velocity_rad_s", 0.01, 2.0), ("ptp_goal_tolerance_rad", 1e-4, 0.1)):
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name} must be {low}..{high}, got {getattr(self, name)}")


PARAMETERS = {
    "arm_id": Spec("arm id; the base frame is <arm_id>_link0", read_only=True),
    "state_source": Spec("measured pose from current_pose or robot_state's o_t_ee", choices=STATE_SOURCES,
                         read_only=True),
    "command_path": Spec("pose: PoseStamped targets for a Cartesian controller (a); ptp: IK -> PTPMotion goals (b)",
                         choices=COMMAND_PATHS, read_only=True),
    "target_topic": Spec("PoseStamped target topic (path a: the controller's input; path b: a record)", read_only=True),
    "hold_topic": Spec("the watchdog's std_msgs/Bool hold topic", read_only=True),
    "hold_timeout_s": Spec("no hold message in this time holds (read at configure)", low=0.01, high=10.0),
    "settle_timeout_s": Spec("apply waits at most this long for the arm (read at configure)", low=0.0, high=60.0),
    "position_tolerance_m": Spec("apply's wait ends within this position error (read at configure)",
                                 low=1e-4, high=0.1),
    "rotation_tolerance_rad": Spec("... and this rotation error (read at configure)", low=1e-4, high=0.5),
    "gripper_threshold": Spec("gripper change (0..1) that moves the gripper (read at configure)", low=0.01, high=1.0),
    "gripper_speed_mps": Spec("Move and Grasp speed (read at configure)", low=0.001, high=0.2),
    "grasp_force_n": Spec("Grasp force (read at configure)", low=0.0, high=140.0),
    "frame_timeout_s": Spec("observe waits this long for a frame newer than the last apply (read at configure)",
                            low=0.0, high=5.0),
    "first_data_timeout_s": Spec("observe / apply wait this long for the first state and frame / hold word and state "
                                 "(read at configure)",
                                 low=0.0, high=60.0),
    "tcp_offset_m": Spec("path b: flange -> end effector along the flange z; Franka Hand 0.1034 (read at configure)",
                         low=0.0, high=0.5),
    "ptp_max_joint_velocity_rad_s": Spec("path b: PTPMotion speed limit of every joint (read at configure)",
                                         low=0.01, high=2.0),
    "ptp_goal_tolerance_rad": Spec("path b: PTPMotion goal_tolerance (read at configure)", low=1e-4, high=0.1),
}


@dataclass(frozen=True)
class Measured:
    pose: np.ndarray  # [6] xyz + extrinsic xyz Euler, base frame
    stamp: float  # seconds, robot clock


@dataclass(frozen=True)
class ApplyOutcome:
    """How the last `apply`'s wait ended."""

    settled: bool  # within the tolerances (and the gripper goal finished) before the timeout
    waited_s: float
    position_error_m: float
    rotation_error_rad: float
    gripper_goal: str | None  # "move" / "grasp" sent with it, or None
    gripper_status: int | None  # action_msgs GoalStatus of that goal when the wait ended (None: still running)
    ptp_status: int | None = None  # path (b): the PTPMotion goal's GoalStatus when the wait ended (None: running)
    joints: np.ndarray | None = None  # path (b): the goal joints sent


def pose_error(pose: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(position error m, rotation angle rad) between two 6-D poses."""
    rotation = rotations.euler_to_matrix(pose[3:6]) @ rotations.euler_to_matrix(target[3:6]).T
    return float(np.linalg.norm(pose[:3] - target[:3])), rotations.rotation_angle(rotation)


class FrankaBridgeNode(LifecycleNode):
    """The ROS side: latest measured pose, joints, gripper width, robot mode and hold word; the target
    publisher, the PTPMotion and gripper action clients. Configure reads the parameters and makes
    the publisher (and, on path (b), the kinematics); activate subscribes and starts the hold check;
    deactivate holds first, then stops."""

    def __init__(self, node_name: str = "franka_bridge", **kwargs):
        super().__init__(node_name, **kwargs)
        declare(self, FrankaBridgeConfig(), PARAMETERS)
        self.config: FrankaBridgeConfig | None = None
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.changed = threading.Condition()  # guards everything below; notified on every new state
        self.pose: Measured | None = None
        self.width: float | None = None
        self.mode: RobotMode | None = None
        self.errors: tuple[str, ...] = ()
        self.joints: np.ndarray | None = None  # [7] rad: the measured joints of the latest robot_state
        self.hold_word: bool | None = None  # the last hold message
        self.hold_received_s: float | None = None  # steady seconds of its arrival
        self.was_held = False
        self.hold_pending = True  # publish the measured pose once when it comes (held from the start)
        self.targets_sent = 0
        self.ptp_goals_sent = 0
        self.kinematics: FrankaKinematics | None = None  # path (b)
        self._ptp: PTPGoal | None = None  # path (b): the goal under way
        self._base_frame = ""
        self._target = None
        # For the node's life: destroying an action client while another thread spins the node races
        # the executor's wait set (rclpy checks no pointer there), and they name no hardware setting.
        self.move_client = ActionClient(self, Move, fi.GRIPPER_MOVE_ACTION)
        self.grasp_client = ActionClient(self, Grasp, fi.GRIPPER_GRASP_ACTION)
        self.ptp_client = ActionClient(self, PTPMotion, fi.PTP_MOTION_ACTION)
        self._inputs: list = []
        self._timer = None

    # --- lifecycle -------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = read(self, FrankaBridgeConfig)
        except ValueError as err:
            self.get_logger().error(f"franka bridge not configured: {err}")
            return TransitionCallbackReturn.FAILURE
        self._base_frame = fi.base_frame(self.config.arm_id)
        if self.config.command_path == "ptp":
            self.kinematics = FrankaKinematics(ARM_MODELS[self.config.arm_id], self.config.tcp_offset_m,
                                               IKSettings(limit_margin_rad=LIMIT_MARGIN_RAD))
        self._target = self.create_lifecycle_publisher(PoseStamped, self.config.target_topic, fi.COMMAND_QOS)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        config = self.config
        self._inputs = [
            self.create_subscription(FrankaRobotState, fi.ROBOT_STATE_TOPIC, self._take_robot_state, fi.FROM_ROBOT_QOS),
            self.create_subscription(JointState, fi.GRIPPER_JOINT_STATES_TOPIC, self._take_gripper, fi.FROM_ROBOT_QOS),
            self.create_subscription(Bool, config.hold_topic, self._take_hold, sensor_qos(1)),
        ]
        if config.state_source == "current_pose":
            self._inputs.append(self.create_subscription(PoseStamped, fi.CURRENT_POSE_TOPIC, self._take_pose,
                                                         fi.FROM_ROBOT_QOS))
        self._timer = self.create_timer(CHECK_PERIOD_S, self._check_hold, clock=self.steady)
        with self.changed:
            self.was_held, self.hold_pending = False, True
        commands = (f"targets on {self.resolve_topic_name(config.target_topic)}" if config.command_path == "pose" else
                    f"IK ({self.kinematics.model.name}, TCP {config.tcp_offset_m} m) -> PTPMotion goals on "
                    f"{self.resolve_topic_name(fi.PTP_MOTION_ACTION)}, a record of each on {self.resolve_topic_name(config.target_topic)}")
        self.get_logger().info(f"franka bridge: pose from {config.state_source}, {commands}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.publish_hold("the bridge was deactivated")
        self._stop()
        with self.changed:
            self.pose = self.width = self.mode = self.joints = self.hold_word = self.hold_received_s = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _release(self) -> None:
        if self._target is not None:
            self.destroy_publisher(self._target)
            self._target = None
        self.config = self.kinematics = None

    # --- inputs ----------------------------------------------------------------------------------
    def _measure(self, msg: PoseStamped) -> Measured | None:
        try:
            pose = fi.pose_to_state(msg.pose, 0.0)[:6]
        except ValueError as err:
            self.get_logger().warning(f"measured pose ignored: {err}", throttle_duration_sec=1.0)
            return None
        return Measured(pose, fi.to_seconds(msg.header.stamp))

    def _take_robot_state(self, msg: FrankaRobotState) -> None:
        measured = self._measure(msg.o_t_ee) if self.config.state_source == "robot_state" else None
        joints = self._measure_joints(msg.measured_joint_state) if self.kinematics is not None else None
        with self.changed:
            self.mode, self.errors = RobotMode(msg.robot_mode), fi.active_errors(msg.current_errors)
            if measured is not None:
                self.pose = measured
            if joints is not None:
                self.joints = joints
            self.changed.notify_all()

    def _measure_joints(self, msg: JointState) -> np.ndarray | None:
        """The 7 arm joints in order: by name (<arm_id>_joint1..7) when named, else the 7 positions as they come."""
        expected = fi.joint_names(self.config.arm_id)
        positions = dict(zip(msg.name, msg.position))
        if all(name in positions for name in expected):
            joints = np.array([positions[name] for name in expected])
        elif not msg.name and len(msg.position) == fi.ARM_JOINTS:
            joints = np.array(msg.position, dtype=np.float64)
        else:
            joints = None
        if joints is None or not np.all(np.isfinite(joints)):
            self.get_logger().warning(f"measured joints ignored: need finite {', '.join(expected)}, got "
                                      f"{list(msg.name)}", throttle_duration_sec=1.0)
            return None
        return joints

    def _take_pose(self, msg: PoseStamped) -> None:
        measured = self._measure(msg)
        if measured is not None:
            with self.changed:
                self.pose = measured
                self.changed.notify_all()

    def _take_gripper(self, msg: JointState) -> None:
        try:
            width = fi.width_from_joint_states(msg)
        except ValueError as err:
            self.get_logger().warning(f"gripper state ignored: {err}", throttle_duration_sec=1.0)
            return
        with self.changed:
            self.width = width
            self.changed.notify_all()

    def _take_hold(self, msg: Bool) -> None:
        with self.changed:
            self.hold_word, self.hold_received_s = bool(msg.data), self.steady.now().nanoseconds * 1e-9
        self._check_hold()

    # --- the hold --------------------------------------------------------------------------------
    def hold_reason(self) -> str | None:
        """Why the watchdog's word forbids following the planner now, or None."""
        with self.changed:
            word, received = self.hold_word, self.hold_received_s
        if received is None:
            return "no watchdog hold message has arrived"
        age = self.steady.now().nanoseconds * 1e-9 - received
        if age > self.config.hold_timeout_s:
            return f"no watchdog hold message for {age:.2f} s (limit {self.config.hold_timeout_s} s)"
        return "the watchdog says hold" if word else None

    def robot_reason(self) -> str | None:
        """Why the robot's state forbids commanding it now, or None."""
        with self.changed:
            pose, mode, errors = self.pose, self.mode, self.errors
        if pose is None or mode is None:
            return "no robot state has arrived"
        if mode in (RobotMode.REFLEX, RobotMode.USER_STOPPED):
            return f"the robot is in {mode.name}"
        return f"the robot reports errors ({', '.join(errors)})" if errors else None

    def _check_hold(self) -> None:
        """On entering the held condition, hold the measured pose once (the watchdog's contract)."""
        held = self.hold_reason() is not None
        with self.changed:
            entered = held and not self.was_held
            self.was_held = held
            if entered:
                self.hold_pending = True
            due = self.hold_pending and held and self.pose is not None
        if due:
            self.publish_hold("watchdog hold")
        elif held:
            self.cancel_ptp("watchdog hold")  # a goal sent in the moment the hold began

    # --- outputs ---------------------------------------------------------------------------------
    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def publish_target(self, pose: np.ndarray) -> None:
        self._target.publish(fi.pose_stamped(np.concatenate([pose[:6], [0.0]]), self.now_s(), self._base_frame))
        with self.changed:
            self.targets_sent += 1

    def publish_hold(self, why: str) -> bool:
        """Cancel the PTPMotion goal under way, then the measured pose as the target, once; False if
        there is no measured pose (no target sent)."""
        self.cancel_ptp(why)
        with self.changed:
            pose = self.pose
            self.hold_pending = pose is None
        if pose is None or self._target is None or not self._target.is_activated:
            return False
        self.publish_target(pose.pose)
        self.get_logger().info(f"holding the measured pose ({why})", throttle_duration_sec=1.0)
        return True

    # --- path (b) --------------------------------------------------------------------------------
    def send_ptp(self, joints: np.ndarray) -> PTPGoal:
        """Send one PTPMotion goal to `joints`; the returned `PTPGoal` fills in as the server answers
        (every change notifies `changed`)."""
        config = self.config
        goal = PTPMotion.Goal(goal_joint_configuration=[float(v) for v in joints],
                              maximum_joint_velocities=[min(config.ptp_max_joint_velocity_rad_s, limit)
                                                        for limit in self.kinematics.model.max_velocity],
                              goal_tolerance=config.ptp_goal_tolerance_rad)
        motion = PTPGoal()
        with self.changed:
            self._ptp = motion
            self.ptp_goals_sent += 1
        self.ptp_client.send_goal_async(goal).add_done_callback(lambda sent: self._ptp_answered(motion, sent))
        return motion

    def _ptp_answered(self, motion: PTPGoal, sent) -> None:
        handle = sent.result()
        with self.changed:
            if not handle.accepted:
                motion.status = GoalStatus.STATUS_ABORTED
                motion.error = "the PTPMotion goal was rejected"
                if self._ptp is motion:
                    self._ptp = None
            else:
                motion.handle = handle
            self.changed.notify_all()
            cancel = motion.handle is not None and motion.cancel_requested
        if motion.handle is not None:
            handle.get_result_async().add_done_callback(lambda result: self._ptp_over(motion, result))
        if cancel:
            handle.cancel_goal_async()

    def _ptp_over(self, motion: PTPGoal, result) -> None:
        answer = result.result()
        with self.changed:
            motion.status, motion.error = answer.status, answer.result.error_message
            if self._ptp is motion:
                self._ptp = None
            self.changed.notify_all()

    def cancel_ptp(self, why: str) -> None:
        """Cancel the PTPMotion goal under way (the server stops the arm); once the server has
        accepted it, if that answer is still to come."""
        with self.changed:
            motion = self._ptp
            if motion is None or motion.status is not None or motion.cancel_requested:
                return
            motion.cancel_requested = True
            handle = motion.handle
        self.get_logger().info(f"canceling the PTPMotion goal ({why})", throttle_duration_sec=1.0)
        if handle is not None:
            handle.cancel_goal_async()

    def solve_ptp(self, target: np.ndarray) -> np.ndarray:
        """Goal joints for the 6-D `target` from the latest measured joints; ValueError (one line) if
        there are none, the model disagrees with the measured pose, or the IK refuses."""
        kinematics = self.kinematics
        with self.changed:
            joints, pose = self.joints, self.pose
        if joints is None:
            raise ValueError(f"no measured joint positions from {fi.ROBOT_STATE_TOPIC}")
        position_error, rotation_error = pose_error(kinematics.pose(joints), pose.pose)
        if position_error > MODEL_CHECK_M or rotation_error > MODEL_CHECK_RAD:
            raise ValueError(f"the {kinematics.model.name} model (TCP {kinematics.tcp_offset_m} m) puts the measured "
                             f"joints {position_error:.4f} m, {rotation_error:.4f} rad from the measured pose: check "
                             "arm_id and tcp_offset_m")
        return kinematics.solve(target[:6], joints).joints


@dataclass
class PTPGoal:
    """A PTPMotion goal as far as its server has answered (guarded by the node's `changed`)."""

    handle: object = None  # the goal handle once accepted
    status: int | None = None  # action_msgs GoalStatus once over (rejected: ABORTED)
    error: str = ""
    cancel_requested: bool = False


class FrankaBridge:
    """The `Robot` over a `FrankaBridgeNode` and a `CameraBridge` (both spun by the caller's
    executor; call these methods from another thread). `activate()` configures and activates both."""

    def __init__(self, node: FrankaBridgeNode, camera: CameraBridge):
        self.node, self.camera = node, camera
        self.last_apply: ApplyOutcome | None = None
        self._applied_ns = 0  # steady ns at the end of the last apply

    def activate(self) -> None:
        for part in (self.node, self.camera):
            if part.trigger_configure() != TransitionCallbackReturn.SUCCESS or \
                    part.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                raise ValueError(f"{part.get_name()} refused its parameters (see its log)")

    def deactivate(self) -> None:
        """Hold, then deactivate and clean up both nodes."""
        for part in (self.node, self.camera):
            if part.trigger_deactivate() == TransitionCallbackReturn.SUCCESS:
                part.trigger_cleanup()

    @property
    def config(self) -> FrankaBridgeConfig:
        return self.node.config

    # --- Robot -----------------------------------------------------------------------------------
    def now(self) -> float:
        return self.node.now_s()

    def _measured(self, timeout_s: float) -> tuple[Measured, float]:
        node = self.node
        with node.changed:
            node.changed.wait_for(lambda: node.pose is not None and node.width is not None, timeout_s)
            pose, width = node.pose, node.width
        if pose is None:
            raise RuntimeError(f"no measured pose from {self.config.state_source} in {timeout_s} s")
        if width is None:
            raise RuntimeError(f"no gripper state from {fi.GRIPPER_JOINT_STATES_TOPIC} in {timeout_s} s")
        return pose, width

    def state(self, timeout_s: float = 0.0) -> np.ndarray:
        """The latest measured 7-D state."""
        pose, width = self._measured(timeout_s)
        return np.concatenate([pose.pose, [fi.width_to_gripper(width)]])

    def observe(self) -> Observation:
        config = self.config
        frame = self.camera.wait_for_frame(self._applied_ns, config.frame_timeout_s) or self.camera.latest()
        if frame is None:
            frame = self.camera.wait_for_frame(0, config.first_data_timeout_s)
        if frame is None:
            raise RuntimeError(f"no camera frame in {config.first_data_timeout_s} s")
        state = self.state(config.first_data_timeout_s)
        return Observation(image=frame.image, state=state, stamp=frame.stamp)

    def apply(self, action) -> None:
        """Send the target `integrate(measured, action)` and wait for the arm (see the module doc)."""
        delta = np.asarray(action, dtype=np.float64)
        if delta.shape != (STATE_DIM,) or not np.all(np.isfinite(delta)):
            raise ValueError(f"apply needs {STATE_DIM} finite numbers, got shape {delta.shape}")
        node, config = self.node, self.config
        with node.changed:  # a planner started just now may not have heard the watchdog or the robot yet (DDS discovery)
            node.changed.wait_for(lambda: node.hold_received_s is not None and node.pose is not None and node.mode is not None,
                                  config.first_data_timeout_s)
        why = node.hold_reason() or node.robot_reason()
        if why is not None:
            raise ValueError(f"apply refused, nothing sent: {why}")
        current = self.state()
        target = np.asarray(integrate(current, delta), dtype=np.float64)
        joints = self._ptp_joints(target) if config.command_path == "ptp" else None
        started = time.monotonic()
        node.publish_target(target)
        motion = None if joints is None else node.send_ptp(joints)
        gripper = self._move_gripper(float(delta[6]), float(target[6]))
        deadline = started + config.settle_timeout_s

        def over() -> bool:  # there, or no longer to be followed (held, stopped, deactivated, motion failed)
            if node.pose is None or node.hold_reason() or node.robot_reason():
                return True
            if motion is not None and motion.status != GoalStatus.STATUS_SUCCEEDED:
                return motion.status is not None
            position_error, rotation_error = pose_error(node.pose.pose, target)
            return position_error <= config.position_tolerance_m and rotation_error <= config.rotation_tolerance_rad

        with node.changed:
            node.changed.wait_for(over, max(0.0, deadline - time.monotonic()))
        if motion is not None:
            node.cancel_ptp("apply's wait is over")  # nothing once the goal is over
            with node.changed:  # the server's answer: the arm has stopped, and the outcome is known
                node.changed.wait_for(lambda: motion.status is not None, CANCEL_WAIT_S)
        with node.changed:
            pose = target if node.pose is None else node.pose.pose
        status = None
        if gripper is not None:
            status = _wait_result(gripper[1], deadline)
        position_error, rotation_error = pose_error(pose, target)
        ptp_status = None if motion is None else motion.status
        settled = (position_error <= config.position_tolerance_m and rotation_error <= config.rotation_tolerance_rad
                   and (gripper is None or status is not None)
                   and (motion is None or ptp_status == GoalStatus.STATUS_SUCCEEDED))
        self.last_apply = ApplyOutcome(settled, time.monotonic() - started, position_error, rotation_error,
                                       None if gripper is None else gripper[0], status, ptp_status, joints)
        if not settled:
            ptp = "" if motion is None else f"; PTPMotion status {ptp_status} {motion.error}".rstrip()
            node.get_logger().warning(f"apply: not settled in {config.settle_timeout_s} s ({position_error:.4f} m, "
                                      f"{rotation_error:.4f} rad off; gripper status {status}{ptp})")
        self._applied_ns = node.steady.now().nanoseconds

    def hold(self) -> None:
        self.node.publish_hold("hold() called")

    def _ptp_joints(self, target: np.ndarray) -> np.ndarray:
        """Path (b): the goal joints for `target`, or the one-line refusal (nothing sent)."""
        node = self.node
        if not node.ptp_client.server_is_ready():
            raise ValueError(f"apply refused, nothing sent: no PTPMotion server at "
                             f"{node.resolve_topic_name(fi.PTP_MOTION_ACTION)}")
        try:
            return node.solve_ptp(target)
        except ValueError as err:
            raise ValueError(f"apply refused, nothing sent: {err}") from None

    # --- gripper ---------------------------------------------------------------------------------
    def _move_gripper(self, change: float, goal: float):
        """Send a Grasp (closing) or Move (opening) goal to `goal` if the gripper `change` exceeds the
        threshold; (kind, future of the goal handle) or None."""
        config, node = self.config, self.node
        if abs(change) <= config.gripper_threshold:
            return None
        width = fi.gripper_to_width(goal)
        if change > 0:
            kind, client = "grasp", node.grasp_client
            message = Grasp.Goal(width=width, speed=config.gripper_speed_mps, force=config.grasp_force_n,
                                 epsilon=GraspEpsilon(inner=width, outer=fi.GRIPPER_DEFAULT_EPSILON_M))
        else:
            kind, client = "move", node.move_client
            message = Move.Goal(width=width, speed=config.gripper_speed_mps)
        if not client.server_is_ready():
            node.get_logger().error(f"no gripper {kind} server; the gripper stays")
            return None
        return kind, client.send_goal_async(message)


def _wait_result(sent, deadline: float) -> int | None:
    """Wait (until `deadline`, monotonic) for a sent goal's end: its GoalStatus, or None if not over."""
    while not sent.done() and time.monotonic() < deadline:
        time.sleep(0.005)
    if not sent.done():
        return None
    handle = sent.result()
    if not handle.accepted:
        return 0  # refused by the server counts as over
    result = handle.get_result_async()
    while not result.done() and time.monotonic() < deadline:
        time.sleep(0.005)
    return result.result().status if result.done() else None
