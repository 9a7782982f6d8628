"""The planner node: goal images in through the `PlanToGoal` action, `planner.mpc.run_mpc` against a
`FrankaBridge` in this process, energies, actions and a debug image out. The node only converts
(`plan_goals` for the goal message, the bridge for the robot); every number it publishes comes
from the MPC loop.

One process, one SingleThreadedExecutor (`node_process.run_node`) spinning three nodes: this
one (``vjepa_wm_planner``), the `FrankaBridgeNode` (``franka_bridge``) and the `CameraBridge`
(``camera_bridge``); their parameters (``-p image_topic:=...``, a params file section per node
name) are their own. Rename the planner with ``-r vjepa_wm_planner:__node:=NAME``: a bare
``__node`` remap would give all three one name. The MPC loop runs in a worker thread, because
the bridge's `observe` and `apply` block on what the executor delivers; the action's execute
callback is a coroutine that awaits the worker's end, so the executor keeps serving state,
frames, the hold word and cancel requests meanwhile.

Configuring loads the model and runs one search on a blank frame (`planner.mpc.warm_up`), so a
process's one-off costs do not delay the first command of the first goal past the watchdog's
command limit; a model that cannot plan on the device fails the configure transition.

What it does with a goal:

* one at a time: a goal arriving while another runs, or while the node is not active, is rejected;
* the goal message is parsed (`plan_goals`); a malformed goal, or goal images of another size than
  the camera's current view, ends REFUSED with the reason before anything is commanded;
* otherwise `run_mpc` plans with the settings read at this moment (CEM samples, iterations,
  horizon, seed, energies, budgets) and the model loaded at configure; each applied action gives
  one feedback message and one message on each of `energy_topic` (Float32MultiArray
  ``[observed, planned]``), `action_topic` (Float64MultiArray, the embodiment's layout) and, with
  `debug_image`, `debug_image_topic` (rgb8: the view the step was planned from | its goal image);
* cancel: the arm is told to hold at once and the loop stops at its next look or action: CANCELED.
  The loop's end always holds (`run_mpc`), the result says why it ended (REACHED: the final
  goal's energy fell to stop_energy; BUDGET; REFUSED: the goal, an observation, a plan or the
  bridge refused). Its `final_energy` is the observed energy of the last step planned.

`heartbeat_topic` (std_msgs/String) carries the running goal's id (hex of its UUID), "" when
idle, every `heartbeat_period_s` and at once when a goal starts: the watchdog holds the arm when
it stops (the process died) and, after a recovery, until a new goal id appears. SIGINT/SIGTERM
stops a running plan (REFUSED, "stopped: ..."), deactivates the bridges (which hold) and exits 0.

Run: ``python -m vjepa_wm.ros_nodes.planner_node --ros-args -p image_topic:=camera/image_raw``.
"""
from __future__ import annotations

import math
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from importlib import resources

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, Float64MultiArray, String
from vjepa_wm_interfaces.action import PlanToGoal

from vjepa_wm.embodiments import Franka
from vjepa_wm.planner.cem import CEM, CEMConfig
from vjepa_wm.planner.goals import SubgoalRule
from vjepa_wm.planner.mpc import MPCConfig, StepRecord, run_mpc, warm_up
from vjepa_wm.sim.franka.tasks import PLAN_HIGH, PLAN_LOW
from vjepa_wm.world_model.checkpoints import load_world_model
from vjepa_wm.world_model.training.distributed import check_device

from .camera_bridge import CameraBridge
from .franka_bridge import FrankaBridge, FrankaBridgeNode
from .image_messages import rgb8_message
from .node_process import run_node
from .parameters import Spec, declare, read
from .plan_goals import GoalDefaults, GoalRefused, PlanRequest, parse_goal

Result = PlanToGoal.Result
OUTPUT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # every step, for plots and videos
HEARTBEAT_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
STOP_WAIT_S = 10.0  # how long shutting down waits for a running plan to end (it holds then)
RESULT_FLUSH_S = 0.5  # ... and then spins on, so that the plan's result reaches the client


@dataclass(frozen=True)
class PlannerNodeConfig:
    model: str = ""  # world model: our checkpoint directory, an official .pt or a hub id; "": the bundled sim model
    device: str = "cpu"  # torch device of the model and the search
    cem_samples: int = 64  # CEM candidates per iteration (as eval-sim)
    cem_iterations: int = 5  # CEM refits per planned action (as eval-sim)
    cem_horizon: int = 1  # actions per candidate sequence
    cem_seed: int = 0  # seed of the search's random generator, read at each goal
    max_steps: int = 20  # actions per goal request whose max_steps is 0 (the reach task's budget)
    max_steps_limit: int = 1000  # the largest max_steps or max_steps_per_goal a goal may ask for
    max_steps_per_goal: int = 0  # per-goal budget where the goal gives none (0: none)
    switch_energy: float = 0.0  # move on from a sub-goal once its observed energy falls to this (0: by budgets only)
    stop_energy: float = 0.0  # stop once the final goal's observed energy falls to this (0: run the budget)
    max_observation_age_s: float = 1.0  # a view (and its plan) older than this on the robot's clock is not acted on
    clock_tolerance_s: float = 0.05  # a view may be stamped this far ahead of the node's clock
    stale_retries: int = 3  # stale views in a row before the plan ends REFUSED
    workspace_low: tuple[float, ...] = PLAN_LOW  # low corner (x, y, z; m, base frame) of the box planned positions keep to
    workspace_high: tuple[float, ...] = PLAN_HIGH  # its high corner
    debug_image: bool = True  # publish the view beside the goal image at every step
    first_frame_timeout_s: float = 5.0  # a goal waits this long for a camera frame taken after it arrived
    heartbeat_period_s: float = 0.1  # at most the watchdog's heartbeat_timeout_s / 3
    action_name: str = "vjepa_wm/plan_to_goal"  # the PlanToGoal action server
    energy_topic: str = "vjepa_wm/planner/energy"  # std_msgs/Float32MultiArray [observed, planned] per step
    action_topic: str = "vjepa_wm/planner/action"  # std_msgs/Float64MultiArray, the action applied per step
    debug_image_topic: str = "vjepa_wm/planner/debug_image"  # sensor_msgs/Image rgb8: view | goal, per step
    heartbeat_topic: str = "vjepa_wm/planner/heartbeat"  # std_msgs/String: the running goal's id, "" idle

    def __post_init__(self):
        for name in ("workspace_low", "workspace_high"):  # rclpy hands arrays back as lists or array.array
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in ("action_name", "energy_topic", "action_topic", "debug_image_topic", "heartbeat_topic"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must name a topic or action")
        if len(self.workspace_low) != 3 or len(self.workspace_high) != 3:
            raise ValueError(f"workspace_low and workspace_high need 3 numbers (x, y, z), got "
                             f"{list(self.workspace_low)} and {list(self.workspace_high)}")
        if self.max_steps > self.max_steps_limit:
            raise ValueError(f"max_steps {self.max_steps} is beyond max_steps_limit {self.max_steps_limit}")
        check_device(self.device, "device", auto=False)
        self.cem_config()  # its own checks: workspace corners, counts
        self.mpc_config(1, None)

    def cem_config(self) -> CEMConfig:
        return CEMConfig(samples=self.cem_samples, iterations=self.cem_iterations, horizon=self.cem_horizon,
                         workspace=(self.workspace_low, self.workspace_high), seed=self.cem_seed)

    def mpc_config(self, max_steps: int, stop_energy: float | None) -> MPCConfig:
        return MPCConfig(max_steps=max_steps, stop_energy=stop_energy, max_observation_age=self.max_observation_age_s,
                         clock_tolerance=self.clock_tolerance_s, stale_retries=self.stale_retries, keep_frames=False,
                         subgoals=SubgoalRule(switch_energy=self.switch_energy or None,
                                              max_steps=self.max_steps_per_goal))

    def goal_defaults(self) -> GoalDefaults:
        return GoalDefaults(max_steps=self.max_steps, stop_energy=self.stop_energy or None,
                            max_steps_limit=self.max_steps_limit)


_AT_GOAL = " (read at each goal)"
PARAMETERS = {
    "model": Spec("world model: our checkpoint directory, an official V-JEPA 2-AC .pt or a hub id; empty: the "
                  "bundled sim model (loaded once, at configure)", read_only=True),
    "device": Spec("torch device of the model and the search: cpu, cuda or cuda:N", read_only=True),
    "cem_samples": Spec("CEM candidates per iteration" + _AT_GOAL, low=1, high=100_000),
    "cem_iterations": Spec("CEM refits per planned action" + _AT_GOAL, low=1, high=1000),
    "cem_horizon": Spec("actions per candidate sequence" + _AT_GOAL, low=1, high=32),
    "cem_seed": Spec("seed of the search's random generator" + _AT_GOAL, low=0, high=2**31 - 1),
    "max_steps": Spec("actions per goal request whose max_steps is 0" + _AT_GOAL, low=1, high=100_000),
    "max_steps_limit": Spec("the largest max_steps or max_steps_per_goal a goal may ask for" + _AT_GOAL,
                            low=1, high=100_000),
    "max_steps_per_goal": Spec("per-goal step budget where the goal gives none, 0: none" + _AT_GOAL,
                               low=0, high=100_000),
    "switch_energy": Spec("next sub-goal once the observed energy falls to this, 0: by budgets only" + _AT_GOAL,
                          low=0.0, high=1e6),
    "stop_energy": Spec("stop once the final goal's energy falls to this, 0: run the budget" + _AT_GOAL,
                        low=0.0, high=1e6),
    "max_observation_age_s": Spec("a view or plan older than this is not acted on" + _AT_GOAL, low=0.01, high=60.0),
    "clock_tolerance_s": Spec("a view may be stamped this far ahead of the node's clock" + _AT_GOAL,
                              low=1e-4, high=10.0),
    "stale_retries": Spec("stale views in a row before the plan is refused" + _AT_GOAL, low=0, high=100),
    "workspace_low": Spec("low corner x, y, z (m, base frame) of the box planned positions keep to" + _AT_GOAL),
    "workspace_high": Spec("high corner x, y, z (m, base frame) of that box" + _AT_GOAL),
    "debug_image": Spec("publish the view beside the goal image at every step" + _AT_GOAL),
    "first_frame_timeout_s": Spec("a goal waits this long for a camera frame taken after it arrived" + _AT_GOAL,
                                  low=0.1, high=60.0),
    "heartbeat_period_s": Spec("seconds between heartbeats (read at activate)", low=0.01, high=1.0),
    "action_name": Spec("the PlanToGoal action server", read_only=True),
    "energy_topic": Spec("std_msgs/Float32MultiArray [observed, planned] energy per step", read_only=True),
    "action_topic": Spec("std_msgs/Float64MultiArray, the action applied per step", read_only=True),
    "debug_image_topic": Spec("sensor_msgs/Image rgb8, the view beside its goal image per step", read_only=True),
    "heartbeat_topic": Spec("std_msgs/String, the running goal's id; empty when idle", read_only=True),
}


def model_source(model: str):
    """Where the world model comes from: `model`, or the sim model bundled with the package."""
    return model if model.strip() else resources.files("vjepa_wm").joinpath("assets", "sim_model")


def outcome_of(stop_reason: str) -> int:
    """The action's outcome for `run_mpc`'s stop reason."""
    if stop_reason == "goal energy reached":
        return Result.OUTCOME_REACHED
    if stop_reason == "step budget":
        return Result.OUTCOME_BUDGET
    return Result.OUTCOME_REFUSED


class PlanStopped(Exception):
    """The running goal was canceled, or the node is stopping: the loop ends at its next look or action."""


@dataclass
class Run:
    """The goal being executed."""

    handle: object  # rclpy ServerGoalHandle
    goal_id: str
    received_ns: int  # camera bridge's steady clock when execution began
    stop: threading.Event
    done: Future  # result: (PlanToGoal.Result, how the goal ends: "succeed", "abort" or "canceled")


class GoalRobot:
    """The bridge as the loop's `Robot` for one goal: the loop stops (PlanStopped) at its next look or
    action once `stop` is set, and the last view is kept for the debug image."""

    def __init__(self, bridge: FrankaBridge, stop: threading.Event):
        self.bridge, self.stop = bridge, stop
        self.view: np.ndarray | None = None

    def _check(self) -> None:
        if self.stop.is_set():
            raise PlanStopped()

    def now(self) -> float:
        return self.bridge.now()

    def observe(self):
        self._check()
        obs = self.bridge.observe()
        self.view = obs.image
        return obs

    def apply(self, action) -> None:
        self._check()
        self.bridge.apply(action)

    def hold(self) -> None:
        self.bridge.hold()


class PlannerNode(LifecycleNode):
    def __init__(self, node_name: str = "vjepa_wm_planner", **kwargs):
        super().__init__(node_name, **kwargs)
        declare(self, PlannerNodeConfig(), PARAMETERS)
        context = kwargs.get("context")
        self.bridge = FrankaBridge(FrankaBridgeNode(context=context), CameraBridge(context=context))
        self.model = None  # loaded at configure; the plan settings are read at each goal
        self.embodiment: Franka | None = None
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._server: ActionServer | None = None
        self._outputs: dict[str, object] = {}
        self._timer = None
        self._lock = threading.Lock()  # guards the two below
        self._busy = False  # a goal was accepted and has not ended
        self._run: Run | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            config = read(self, PlannerNodeConfig)
            model = load_world_model(model_source(config.model)).eval().to(config.device)
        except (ValueError, OSError) as err:
            self.get_logger().error(f"planner not configured: {err}")
            return TransitionCallbackReturn.FAILURE
        if not isinstance(model.embodiment, Franka):
            self.get_logger().error(f"planner not configured: the model plans {model.embodiment.name} actions; "
                                    f"the Franka bridge takes franka actions")
            return TransitionCallbackReturn.FAILURE
        try:
            warm_seconds = warm_up(model, CEM(config.cem_config(), model.embodiment, config.device))
        except (ValueError, RuntimeError) as err:  # e.g. out of device memory: better now than at a goal
            self.get_logger().error(f"planner not configured: its first search failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self.model, self.embodiment = model, model.embodiment
        for part in (self.bridge.node, self.bridge.camera):
            if part not in self.executor.get_nodes():
                self.executor.add_node(part)
        publish = self.create_lifecycle_publisher
        self._outputs = {"energy": publish(Float32MultiArray, config.energy_topic, OUTPUT_QOS),
                         "action": publish(Float64MultiArray, config.action_topic, OUTPUT_QOS),
                         "debug": publish(Image, config.debug_image_topic, OUTPUT_QOS),
                         "heartbeat": publish(String, config.heartbeat_topic, HEARTBEAT_QOS)}
        self._server = ActionServer(self, PlanToGoal, config.action_name, execute_callback=self._execute,
                                    goal_callback=self._take_goal, cancel_callback=self._cancel)
        self.get_logger().info(f"planner: model {model_source(config.model)} on {config.device}, "
                               f"{config.cem_samples} samples x {config.cem_iterations} iterations "
                               f"(first search, warming up: {warm_seconds:.2f} s)")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.bridge.activate()
        except ValueError as err:
            self.get_logger().error(f"planner not activated: {err}")
            return TransitionCallbackReturn.FAILURE
        self._timer = self.create_timer(read(self, PlannerNodeConfig).heartbeat_period_s, self._beat, clock=self.steady)
        result = super().on_activate(state)
        self._beat()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_plan("the planner was deactivated")
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self.bridge.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._server is not None:
            self._server.destroy()
            self._server = None
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        self.model = self.embodiment = None

    def stop(self) -> None:
        """On SIGINT/SIGTERM, while the executor is still ours: end a running plan (spinning until it
        has, so its result goes out), then deactivate the bridges (they hold)."""
        running = self._busy
        self._stop_plan("stopped: the planner node is shutting down")
        deadline = time.monotonic() + STOP_WAIT_S
        while self._busy and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        if self._busy:
            self.get_logger().error(f"the running plan did not end in {STOP_WAIT_S} s")
        flushed = time.monotonic() + (RESULT_FLUSH_S if running else 0.0)
        while time.monotonic() < flushed:  # the action server answers the result request from a task of its own
            self.executor.spin_once(timeout_sec=0.05)
        self.bridge.deactivate()

    def destroy_bridges(self) -> None:
        self.bridge.node.destroy_node()
        self.bridge.camera.destroy_node()

    # --- goals -----------------------------------------------------------------------------------
    def _take_goal(self, goal) -> GoalResponse:
        with self._lock:
            why = "a goal is running" if self._busy else None
            if self._timer is None:
                why = "the planner is not active"
            self._busy = self._busy or why is None
        if why is not None:
            self.get_logger().warning(f"goal rejected: {why}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _cancel(self, handle) -> CancelResponse:
        run = self._run
        if run is None or run.handle is not handle:
            return CancelResponse.REJECT
        self.get_logger().info(f"goal {run.goal_id} canceled: holding")
        run.stop.set()
        self.bridge.hold()
        return CancelResponse.ACCEPT

    def _stop_plan(self, why: str) -> None:
        run = self._run
        if run is not None and not run.stop.is_set():
            self.get_logger().warning(f"goal {run.goal_id}: {why}")
            run.stop.set()
            self.bridge.hold()

    def _beat(self) -> None:
        publisher = self._outputs.get("heartbeat")
        if publisher is not None:
            run = self._run
            publisher.publish(String(data=run.goal_id if run is not None else ""))

    async def _execute(self, handle):
        """Run the plan in a worker thread; await its end (the executor goes on serving meanwhile)."""
        run = Run(handle, bytes(handle.goal_id.uuid).hex(), self.bridge.camera.steady.now().nanoseconds,
                  threading.Event(), Future(executor=self.executor))
        self._run = run
        self._beat()  # the watchdog learns the new plan at once
        worker = threading.Thread(target=self._plan, args=(run,), name="mpc", daemon=True)
        worker.start()
        result, ending = await run.done
        worker.join()
        {"succeed": handle.succeed, "abort": handle.abort, "canceled": handle.canceled}[ending]()
        self.get_logger().info(f"goal {run.goal_id}: {result.stop_reason} after {result.steps} steps")
        with self._lock:
            self._run, self._busy = None, False
        self._beat()
        return result

    def _plan(self, run: Run) -> None:
        """The worker: parse, check against a fresh view, run the MPC loop; always sets `run.done`."""
        records: list[StepRecord] = []
        try:
            config = read(self, PlannerNodeConfig)
            request = parse_goal(run.handle.request, self.embodiment, config.goal_defaults())
            robot = GoalRobot(self.bridge, run.stop)
            self._check_view(robot, run, request, config)
            cem = CEM(config.cem_config(), self.embodiment, config.device)

            def report(record: StepRecord) -> None:
                records.append(record)
                self._report(run, robot, request, record, config.debug_image)

            result = run_mpc(robot, self.model, request.goals, cem,
                             config.mpc_config(request.max_steps, request.stop_energy), on_step=report)
            stop_reason, outcome = result.stop_reason, outcome_of(result.stop_reason)
        except GoalRefused as err:
            stop_reason, outcome = f"refused: {err}", Result.OUTCOME_REFUSED
        except PlanStopped:
            canceled = run.handle.is_cancel_requested
            stop_reason = "canceled by the client" if canceled else "stopped: the planner node is shutting down"
            outcome = Result.OUTCOME_CANCELED if canceled else Result.OUTCOME_REFUSED
        except (ValueError, RuntimeError) as err:  # the bridge refused an action, or a view did not come
            stop_reason, outcome = f"refused: {err}", Result.OUTCOME_REFUSED
        except Exception as err:  # noqa: BLE001 - whatever went wrong, the goal ends and the node lives on
            self.get_logger().error(f"goal {run.goal_id} failed: {traceback.format_exc()}")
            stop_reason, outcome = f"refused: planner error {type(err).__name__}: {err}", Result.OUTCOME_REFUSED
        last = records[-1] if records else None
        result = Result(outcome=outcome, stop_reason=stop_reason, steps=len(records),
                        goal_index=last.goal_index if last else 0,
                        final_energy=last.observed_energy if last else math.nan)
        ending = {Result.OUTCOME_CANCELED: "canceled", Result.OUTCOME_REFUSED: "abort"}.get(outcome, "succeed")
        run.done.set_result((result, ending))

    def _check_view(self, robot: GoalRobot, run: Run, request: PlanRequest, config: PlannerNodeConfig) -> None:
        """A frame taken after the goal arrived must come (never plan from a view of before), and be
        as large as the goal images (the energy compares them)."""
        if self.bridge.camera.wait_for_frame(run.received_ns, config.first_frame_timeout_s) is None:
            raise GoalRefused(f"no camera frame in {config.first_frame_timeout_s} s")
        view = robot.observe().image
        if view.shape != request.image_shape:
            raise GoalRefused(f"the goal images are {request.image_shape[1]}x{request.image_shape[0]}, "
                              f"the camera's view is {view.shape[1]}x{view.shape[0]}")

    def _report(self, run: Run, robot: GoalRobot, request: PlanRequest, record: StepRecord, debug: bool) -> None:
        """One applied step out: feedback, energies, the action and the debug image."""
        run.handle.publish_feedback(PlanToGoal.Feedback(
            step=record.step + 1, goal_index=record.goal_index, switched_goal=record.switched_goal,
            observed_energy=record.observed_energy, planned_energy=record.planned_energy, action=record.action))
        self._outputs["energy"].publish(Float32MultiArray(data=[record.observed_energy, record.planned_energy]))
        self._outputs["action"].publish(Float64MultiArray(data=record.action))
        if debug and robot.view is not None:
            goal = request.goals[record.goal_index].image
            self._outputs["debug"].publish(rgb8_message(np.concatenate([robot.view, goal], axis=1), record.stamp,
                                                        "vjepa_wm_planner_debug"))


def main(args: list[str] | None = None) -> int:
    """Configure (load the model), activate (the bridges) and spin until SIGINT or SIGTERM; exit
    status 1 if the parameters or the model are refused."""
    return run_node(PlannerNode, args, on_stop=PlannerNode.stop, release=PlannerNode.destroy_bridges)


if __name__ == "__main__":
    sys.exit(main())
