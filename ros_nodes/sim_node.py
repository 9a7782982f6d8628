"""The sim node: the PyBullet Franka behind franka_ros2's names, types and QoS (`franka_interface`),
so the Franka bridge, the watchdog and the planner can be proven without an arm.

What it serves, all under the node's namespace:
- state: ``franka_robot_state_broadcaster/robot_state`` (FrankaRobotState, reliable),
  ``.../current_pose`` (PoseStamped, best effort, depth 1), ``franka_gripper/joint_states``
  (JointState, reliable, depth 1), each on a steady-clock timer at its own rate parameter, and the
  planning camera on ``image_topic`` (sensor_msgs/Image rgb8, best effort), and the task's goal
  view for its seed on ``~/goal_image`` (rgb8, latched): what `vjepa-wm ros-goal --goal-topic`
  sends, the image `FrankaEnv.reset(seed)` gives in-process;
- path (a): a stamped PoseStamped target on ``target_topic`` in the base frame, held until replaced;
- path (b): ``action_server/ptp_motion`` (PTPMotion); a cancel is accepted and stops the arm, and
  the goal then ends aborted, as franka_ros2's server does (its cancel stops the motion, whose
  feedback then reads aborted);
- the gripper: ``franka_gripper/{move,grasp,homing}``; recovery: ``action_server/error_recovery``;
- faults (`sim_faults`): ``fault_*`` parameters and the ``~/inject_reflex`` service.

Time. The sim advances in rows of 1/15 s (`sim_arm`), one per tick of a steady-clock timer of
period 1/15 s / ``real_time_factor``: 1 is real time, more runs ahead of the wall clock. Every
stamp is simulated time, ``epoch + row / 15`` with the epoch the system time at activation, and
``/clock`` carries it each row: at factor 1 it stays within a row of the wall clock (never ahead);
at any other factor, nodes judging these stamps need ``use_sim_time:=true``. A state message
repeats its row's stamp until the next row: the stamp says when the state was true.

What the sim does not do as the robot would: PTPMotion moves the end effector to the pose of the
goal joints with the sim's own IK (FrankaEnv has no joint-space command), so success means that
pose reached within ``reach_tolerance_m``/``reach_tolerance_rad``; the joint posture may differ in
the null space and ``maximum_joint_velocities`` is checked, not followed (the sim's per-action limits
set the pace). The gripper ignores speed and force (the sim's finger motors have their own). A
reflex or the user stop holds the arm and refuses arm commands; the gripper, a device of its own
on a Franka, keeps working.

Run alone: ``python -m vjepa_wm.ros_nodes.sim_node --ros-args -p image_size:=128``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from franka_msgs.action import ErrorRecovery, Grasp, Homing, Move, PTPMotion
from franka_msgs.msg import Errors, FrankaRobotState, TargetStatus
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from vjepa_wm.sim.franka.config import SimConfig
from vjepa_wm.sim.franka.tasks import TASKS

from . import franka_interface as fi
from .franka_interface import RobotMode
from .image_messages import rgb8_message
from .node_process import run_node
from .parameters import Spec, declare, read
from .sim_arm import ROW_S, SimArm, Snapshot
from .sim_faults import PARAMETERS as FAULT_PARAMETERS
from .sim_faults import SimFaults

CAMERA_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.BEST_EFFORT)  # a camera driver's usual choice
GOAL_IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)  # latched: a client joining later gets it
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # what rclpy's TimeSource subscribes with
STILL_M = 1e-4  # fingers moving less than this per row count as still
STILL_ROWS = 3  # ... for this many rows in a row: the gripper action is over
WIDTH_TOLERANCE_M = 1e-3  # Move and Homing: within this of the goal width is there


@dataclass(frozen=True)
class SimNodeConfig:
    task: str = "reach"  # the sim task whose start the arm and objects take (sim.franka.tasks.TASKS)
    seed: int = 0  # the episode the task samples (same seed: same scene, as in-process)
    image_size: int = 256  # square camera images, pixels
    low_poly: bool = True  # draw the Panda with its collision meshes (several times faster to render)
    arm_id: str = "fr3"  # franka_description's arm id: frame names fr3_link0 ..., joint names fr3_joint1 ...
    target_topic: str = fi.DEFAULT_TARGET_TOPIC  # command path (a): PoseStamped targets in the base frame
    image_topic: str = "camera/image_raw"  # the planning camera
    camera_frame_id: str = "camera_color_optical_frame"  # header.frame_id of the camera images
    real_time_factor: float = 1.0  # simulated seconds per wall second (1: real time)
    robot_state_rate_hz: float = 100.0  # robot_state publications per second (1 kHz on the robot)
    pose_rate_hz: float = 100.0  # current_pose per second (convenience_publish_rate, 1..1000 upstream)
    gripper_rate_hz: float = 15.0  # franka_gripper/joint_states per second (state_publish_rate upstream)
    camera_rate_hz: float = 15.0  # camera frames per second (the sim renders one image per row)
    reach_tolerance_m: float = 0.002  # a PTPMotion goal (and a pose target, for MOVE vs IDLE) is reached within this
    reach_tolerance_rad: float = 0.01  # ... and within this rotation
    motion_timeout_s: float = 10.0  # simulated seconds a PTPMotion or gripper goal may take before it aborts

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name in ("arm_id", "target_topic", "image_topic"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")
        SimConfig(image_size=self.image_size)  # its own checks


PARAMETERS = {
    "task": Spec("sim task of the scene (read at configure)", choices=tuple(TASKS)),
    "seed": Spec("episode seed of the scene (read at configure)", low=0, high=2**31 - 1),
    "image_size": Spec("camera image side in pixels (read at configure)", low=16, high=1024),
    "low_poly": Spec("render the Panda's collision meshes (faster; read at configure)"),
    "arm_id": Spec("arm id of frame and joint names", read_only=True),
    "target_topic": Spec("PoseStamped target topic (command path a)", read_only=True),
    "image_topic": Spec("camera image topic", read_only=True),
    "camera_frame_id": Spec("frame id of the camera images", read_only=True),
    "real_time_factor": Spec("simulated seconds per wall second (read at activate)", low=0.1, high=20.0),
    "robot_state_rate_hz": Spec("robot_state rate (read at activate)", low=1.0, high=1000.0),
    "pose_rate_hz": Spec("current_pose rate (read at activate)", low=1.0, high=1000.0),
    "gripper_rate_hz": Spec("gripper joint_states rate (read at activate)", low=1.0, high=1000.0),
    "camera_rate_hz": Spec("camera frame rate (read at activate)", low=1.0, high=60.0),
    "reach_tolerance_m": Spec("position tolerance of a reached target (read at configure)", low=1e-4, high=0.1),
    "reach_tolerance_rad": Spec("rotation tolerance of a reached target (read at configure)", low=1e-4, high=0.5),
    "motion_timeout_s": Spec("simulated seconds before a PTPMotion or gripper goal aborts (read at configure)",
                             low=0.1, high=600.0),
}


@dataclass
class Motion:
    """An action goal under way: the row tick finishes it by setting `done`'s result."""

    done: Future  # result: (succeeded, message)
    deadline_row: int
    pose: np.ndarray | None = None  # PTPMotion: the end-effector pose of the goal joints
    width: float = 0.0  # gripper: the goal width (Move, Homing) or the grasp width
    epsilon: tuple[float, float] | None = None  # Grasp: (inner, outer); None: reach `width`
    still_rows: int = 0
    last_width: float = float("nan")
    feedback: object = None  # the goal handle's publish_feedback


def ptp_problem(goal: PTPMotion.Goal) -> str | None:
    """Why a PTPMotion goal cannot be executed, or None."""
    q, limits = np.asarray(goal.goal_joint_configuration), np.asarray(goal.maximum_joint_velocities)
    if q.shape != (fi.ARM_JOINTS,) or not np.all(np.isfinite(q)):
        return f"goal_joint_configuration must be {fi.ARM_JOINTS} finite angles, got {q.tolist()}"
    if limits.shape != (fi.ARM_JOINTS,) or not np.all(np.isfinite(limits)) or np.any(limits <= 0):
        return f"maximum_joint_velocities must be {fi.ARM_JOINTS} positive speeds, got {limits.tolist()}"
    if not 0 < goal.goal_tolerance < np.inf:
        return f"goal_tolerance must be positive, got {goal.goal_tolerance}"
    return None


class FrankaSimNode(LifecycleNode):
    def __init__(self, node_name: str = "franka_sim", **kwargs):
        super().__init__(node_name, **kwargs)
        declare(self, SimNodeConfig(), PARAMETERS)
        declare(self, SimFaults(), FAULT_PARAMETERS)
        self.faults = read(self, SimFaults)
        self.add_on_set_parameters_callback(self._check_faults)
        self.add_post_set_parameters_callback(self._take_faults)
        self.config: SimNodeConfig | None = None
        self.arm: SimArm | None = None
        self._active = False
        self._base_frame = ""
        self._outputs: dict[str, object] = {}
        self._servers: list = []
        self._tickers: list = []
        self._target_subscription = None
        self._epoch = 0.0
        self._errors = Errors()
        self._last_motion_errors = Errors()
        self._recovery: Motion | None = None
        self._ptp: Motion | None = None
        self._gripper: Motion | None = None
        self._tracking = False  # a pose target from path (a) is in force
        self._robot_state: FrankaRobotState | None = None
        self._frozen: np.ndarray | None = None  # the image a frozen camera repeats
        self.ignored_commands = 0

    # --- lifecycle -------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            config = read(self, SimNodeConfig)
        except ValueError as err:
            self.get_logger().error(f"sim node not configured: {err}")
            return TransitionCallbackReturn.FAILURE
        self.config = config
        self.arm = SimArm(SimConfig(image_size=config.image_size, low_poly=config.low_poly), config.task, config.seed)
        self._base_frame = fi.base_frame(config.arm_id)
        publish = self.create_lifecycle_publisher
        self._outputs = {
            "robot_state": publish(FrankaRobotState, fi.ROBOT_STATE_TOPIC, fi.ROBOT_STATE_QOS),
            "pose": publish(PoseStamped, fi.CURRENT_POSE_TOPIC, fi.CONVENIENCE_QOS),
            "gripper": publish(JointState, fi.GRIPPER_JOINT_STATES_TOPIC, fi.GRIPPER_STATE_QOS),
            "camera": publish(Image, config.image_topic, CAMERA_QOS),
            "clock": publish(ClockMsg, "/clock", CLOCK_QOS),
            "goal_image": publish(Image, "~/goal_image", GOAL_IMAGE_QOS),
        }
        accept = self._accept

        def server(kind, name, execute, **cancel):
            return ActionServer(self, kind, name, execute_callback=execute, goal_callback=accept, **cancel)

        self._servers = [
            server(PTPMotion, fi.PTP_MOTION_ACTION, self._execute_ptp, cancel_callback=self._cancel_ptp),
            server(ErrorRecovery, fi.ERROR_RECOVERY_ACTION, self._execute_recovery),
            server(Move, fi.GRIPPER_MOVE_ACTION, self._execute_move),
            server(Grasp, fi.GRIPPER_GRASP_ACTION, self._execute_grasp),
            server(Homing, fi.GRIPPER_HOMING_ACTION, self._execute_homing),
            self.create_service(Trigger, "~/inject_reflex", self._inject_reflex),
        ]
        self._robot_state = self._state_message(self.arm.snapshot)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        config = read(self, SimNodeConfig)
        self._epoch = Clock(clock_type=ClockType.SYSTEM_TIME).now().nanoseconds * 1e-9 - self.arm.row * ROW_S
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        every = [(ROW_S / config.real_time_factor, self._tick), (1 / config.robot_state_rate_hz, self._send_robot_state),
                 (1 / config.pose_rate_hz, self._send_pose), (1 / config.gripper_rate_hz, self._send_gripper),
                 (1 / config.camera_rate_hz, self._send_image)]
        self._tickers = [self.create_timer(period, callback, clock=steady) for period, callback in every]
        self._target_subscription = self.create_subscription(PoseStamped, self.config.target_topic, self._take_target,
                                                      fi.COMMAND_QOS)
        self._active = True
        result = super().on_activate(state)
        self._outputs["goal_image"].publish(rgb8_message(self.arm.goal_image, self._stamp(self.arm.row),
                                                         self.config.camera_frame_id))
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_arm("the sim node was deactivated")
        self._end(self._gripper, False, "the sim node was deactivated")
        self._gripper = None
        self._active = False
        for timer in self._tickers:
            self.destroy_timer(timer)
        self._tickers = []
        if self._target_subscription is not None:
            self.destroy_subscription(self._target_subscription)
            self._target_subscription = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """Take down the servers and the simulator (what configure made)."""
        for server in self._servers:
            if isinstance(server, ActionServer):
                server.destroy()
            else:
                self.destroy_service(server)
        self._servers = []
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        if self.arm is not None:
            self.arm.close()
            self.arm = None

    # --- faults ----------------------------------------------------------------------------------
    def _check_faults(self, parameters) -> SetParametersResult:
        changed = {p.name: p.value for p in parameters if p.name in FAULT_PARAMETERS}
        try:
            SimFaults(**{**vars(read(self, SimFaults)), **changed})
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _take_faults(self, parameters) -> None:
        faults = read(self, SimFaults)
        if faults.fault_user_stopped and not self.faults.fault_user_stopped and self.arm is not None:
            self._stop_arm("the user stop was pressed")
        if faults.fault_camera != "frozen":
            self._frozen = None
        self.faults = faults
        self._refresh()

    def _inject_reflex(self, request, response):
        if not self._active:
            response.success, response.message = False, "the sim node is not active"
            return response
        self._errors = fi.errors_with([self.faults.fault_reflex_error])
        self._stop_arm(f"reflex: {self.faults.fault_reflex_error}")
        self._refresh()
        response.success, response.message = True, f"reflex: {self.faults.fault_reflex_error}"
        self.get_logger().warning(f"injected reflex ({self.faults.fault_reflex_error}): arm commands refused until "
                                  "error recovery")
        return response

    def _arm_blocked(self) -> str | None:
        """Why the arm takes no command now, or None."""
        if self.faults.fault_user_stopped:
            return "the user stop is pressed"
        if self._recovery is not None:
            return "error recovery is running"
        errors = fi.active_errors(self._errors)
        return f"the robot is in REFLEX ({', '.join(errors)}); error recovery needed" if errors else None

    def _stop_arm(self, why: str) -> None:
        """Hold the arm where it is and end a PTPMotion goal under way."""
        self.arm.stop()
        self._tracking = False
        self._end(self._ptp, False, why)
        self._ptp = None

    # --- commands --------------------------------------------------------------------------------
    def _accept(self, goal) -> GoalResponse:
        return GoalResponse.ACCEPT if self._active else GoalResponse.REJECT

    def _take_target(self, msg: PoseStamped) -> None:
        blocked = self._arm_blocked()
        problem = blocked
        if problem is None and msg.header.frame_id not in ("", self._base_frame):
            problem = f"frame {msg.header.frame_id!r} is not the base frame {self._base_frame!r}"
        if problem is None:
            try:
                target = fi.pose_to_state(msg.pose, 0.0)
            except ValueError as err:
                problem = str(err)
        if problem is not None:
            self.ignored_commands += 1
            self.get_logger().warning(f"pose target ignored: {problem}", throttle_duration_sec=1.0)
            return
        self._end(self._ptp, False, "preempted by a pose target")
        self._ptp = None
        self.arm.aim(target)
        self._tracking = True

    async def _execute_ptp(self, handle):
        problem = ptp_problem(handle.request) or self._arm_blocked()
        if problem is None:
            self._end(self._ptp, False, "preempted by another PTPMotion goal")
            pose = self.arm.aim_joints(handle.request.goal_joint_configuration)
            self._tracking = False
            self._ptp = Motion(Future(), self._deadline(), pose=pose)
            handle.publish_feedback(PTPMotion.Feedback(target_status=TargetStatus(status=TargetStatus.EXECUTING)))
            succeeded, problem = await self._ptp.done
        else:
            succeeded = False
        if succeeded:
            handle.succeed()
            return PTPMotion.Result(target_status=TargetStatus(status=TargetStatus.TARGET_REACHED))
        self.get_logger().warning(f"PTPMotion aborted: {problem}")
        handle.abort()
        return PTPMotion.Result(target_status=TargetStatus(status=TargetStatus.ABORTED), error_message=problem)

    def _cancel_ptp(self, handle) -> CancelResponse:
        if self._ptp is not None:
            self._stop_arm("the PTPMotion goal was canceled")
        return CancelResponse.ACCEPT

    async def _execute_recovery(self, handle):
        if self.faults.fault_user_stopped:
            handle.abort()
            self.get_logger().warning("error recovery refused: the user stop is pressed")
            return ErrorRecovery.Result()
        self._end(self._recovery, False, "another recovery began")
        self._last_motion_errors, self._errors = self._errors, Errors()
        self._stop_arm("error recovery")
        self._recovery = Motion(Future(), self.arm.row + 1)
        self._refresh()
        await self._recovery.done
        handle.succeed()
        return ErrorRecovery.Result()

    async def _execute_move(self, handle):
        goal = handle.request
        if not (0.0 <= goal.width <= fi.MAX_WIDTH_M and goal.speed > 0):
            return self._gripper_result(handle, Move, False, f"width must be 0..{fi.MAX_WIDTH_M} m and speed positive, "
                                                             f"got {goal.width}, {goal.speed}")
        return self._gripper_result(handle, Move, *await self._grip(handle, Move, goal.width))

    async def _execute_grasp(self, handle):
        goal = handle.request
        epsilon = (goal.epsilon.inner, goal.epsilon.outer)
        if not (0.0 <= goal.width <= fi.MAX_WIDTH_M and goal.speed > 0 and goal.force >= 0 and min(epsilon) >= 0):
            return self._gripper_result(handle, Grasp, False, "width must be 0..0.08 m, speed positive, force and "
                                                              "epsilon not negative")
        return self._gripper_result(handle, Grasp, *await self._grip(handle, Grasp, goal.width, epsilon))

    async def _execute_homing(self, handle):
        return self._gripper_result(handle, Homing, *await self._grip(handle, Homing, fi.MAX_WIDTH_M))

    def _grip(self, handle, kind, width: float, epsilon: tuple[float, float] | None = None) -> Future:
        """Start a gripper motion (a grasp closes until the fingers stop); its future says how it ended."""
        self._end(self._gripper, False, f"preempted by a {kind.__name__} goal")
        self.arm.grip(1.0 if epsilon is not None else fi.width_to_gripper(width))
        self._gripper = Motion(Future(), self._deadline(), width=width, epsilon=epsilon,
                               feedback=lambda current: handle.publish_feedback(kind.Feedback(current_width=current)))
        return self._gripper.done

    @staticmethod
    def _gripper_result(handle, kind, succeeded: bool, error: str = ""):
        if succeeded:
            handle.succeed()
        else:
            handle.abort()
        return kind.Result(success=succeeded, error=error)

    def _deadline(self) -> int:
        return self.arm.row + int(np.ceil(self.config.motion_timeout_s / ROW_S))

    @staticmethod
    def _end(motion: Motion | None, succeeded: bool, message: str) -> None:
        if motion is not None and not motion.done.done():
            motion.done.set_result((succeeded, message))

    # --- time ------------------------------------------------------------------------------------
    def _tick(self) -> None:
        """One row of simulated time: move, then finish the goals that are over."""
        snapshot = self.arm.step()
        config = self.config
        if self._ptp is not None:
            position_error, rotation_error = self.arm.pose_error(self._ptp.pose)
            if position_error <= config.reach_tolerance_m and rotation_error <= config.reach_tolerance_rad:
                self._end(self._ptp, True, "")
                self._ptp = None
            elif snapshot.row >= self._ptp.deadline_row:
                self._end(self._ptp, False, f"the pose of the goal joints was not reached in {config.motion_timeout_s} s "
                                            f"({position_error:.4f} m, {rotation_error:.4f} rad away)")
                self._ptp = None
        if self._gripper is not None:
            self._follow_gripper(self._gripper, snapshot)
        if self._recovery is not None and snapshot.row >= self._recovery.deadline_row:
            self._end(self._recovery, True, "")
            self._recovery = None
        self._robot_state = self._state_message(snapshot)
        self._outputs["clock"].publish(ClockMsg(clock=fi.to_time(self._stamp(snapshot.row))))

    def _follow_gripper(self, motion: Motion, snapshot: Snapshot) -> None:
        width = snapshot.width
        motion.feedback(width)
        motion.still_rows = motion.still_rows + 1 if abs(width - motion.last_width) < STILL_M else 0
        motion.last_width = width
        if motion.epsilon is None and abs(width - motion.width) <= WIDTH_TOLERANCE_M:
            outcome = (True, "")
        elif motion.still_rows >= STILL_ROWS:
            if motion.epsilon is None:
                outcome = (False, f"the fingers stopped at {width:.4f} m, not {motion.width:.4f} m")
            else:
                inner, outer = motion.epsilon
                inside = motion.width - inner < width < motion.width + outer
                outcome = (inside, "" if inside else f"the fingers closed to {width:.4f} m, outside "
                                                     f"{motion.width:.4f} (-{inner}, +{outer}) m")
        elif snapshot.row >= motion.deadline_row:
            outcome = (False, f"the fingers did not settle in {self.config.motion_timeout_s} s")
        else:
            return
        self._end(motion, *outcome)
        self._gripper = None

    def _stamp(self, row: int) -> float:
        return self._epoch + row * ROW_S

    def _mode(self, snapshot: Snapshot) -> RobotMode:
        if self.faults.fault_user_stopped:
            return RobotMode.USER_STOPPED
        if self._recovery is not None:
            return RobotMode.AUTOMATIC_ERROR_RECOVERY
        if fi.active_errors(self._errors):
            return RobotMode.REFLEX
        if self._ptp is not None:
            return RobotMode.MOVE
        if self._tracking:
            position_error, rotation_error = self.arm.pose_error(snapshot.target)
            if position_error > self.config.reach_tolerance_m or rotation_error > self.config.reach_tolerance_rad:
                return RobotMode.MOVE
        return RobotMode.IDLE

    # --- messages --------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Rebuild the robot state between rows: a change of mode or errors shows at once, as on the robot."""
        if self.arm is not None and self._robot_state is not None:
            self._robot_state = self._state_message(self.arm.snapshot)

    def _state_message(self, snapshot: Snapshot) -> FrankaRobotState:
        stamp, arm_id = self._stamp(snapshot.row), self.config.arm_id
        msg = FrankaRobotState()
        msg.header.stamp, msg.header.frame_id = fi.to_time(stamp), self._base_frame
        names = fi.joint_names(arm_id)
        for joint_state in (msg.measured_joint_state, msg.desired_joint_state):
            joint_state.header.stamp, joint_state.name = msg.header.stamp, names
            joint_state.position, joint_state.velocity = snapshot.joints.tolist(), snapshot.velocities.tolist()
            joint_state.effort = [0.0] * fi.ARM_JOINTS
        msg.o_t_ee = fi.pose_stamped(snapshot.state, stamp, self._base_frame)
        msg.o_t_ee_d = fi.pose_stamped(snapshot.target, stamp, self._base_frame)
        msg.o_t_ee_c = msg.o_t_ee_d
        msg.time = snapshot.row * ROW_S
        msg.control_command_success_rate = 1.0
        msg.robot_mode = int(self._mode(snapshot))
        msg.current_errors, msg.last_motion_errors = self._errors, self._last_motion_errors
        return msg

    def _state_flowing(self) -> bool:
        return self._active and not self.faults.fault_drop_state

    def _send_robot_state(self) -> None:
        if self._state_flowing():
            self._outputs["robot_state"].publish(self._robot_state)

    def _send_pose(self) -> None:
        if self._state_flowing():
            self._outputs["pose"].publish(self._robot_state.o_t_ee)

    def _send_gripper(self) -> None:
        if self._state_flowing():
            snapshot = self.arm.snapshot
            self._outputs["gripper"].publish(
                fi.gripper_joint_state(snapshot.width, self._stamp(snapshot.row), self.config.arm_id))

    def _send_image(self) -> None:
        if not self._active:
            return
        row = self.arm.snapshot.row
        image, stamp, faults = self.arm.image(), self._stamp(row), self.faults  # the sim renders once per row
        if faults.fault_camera == "frozen":
            self._frozen = image if self._frozen is None else self._frozen
            image = self._frozen
        elif faults.fault_camera == "stale":
            stamp -= faults.fault_camera_lag_s
        self._outputs["camera"].publish(rgb8_message(image, stamp, self.config.camera_frame_id))


def main(args: list[str] | None = None) -> int:
    """Configure, activate and spin until SIGINT or SIGTERM; exit status 1 if the parameters are refused."""
    return run_node(FrankaSimNode, args, release=FrankaSimNode.release)


if __name__ == "__main__":
    sys.exit(main())
