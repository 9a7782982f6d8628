"""Reach episodes through ROS 2, scored like the in-process `eval-sim` (`evaluation.sim`), for the
same seeds: what `eval-sim --ros` and `demo --ros` run.

The deployed processes do the work: the sim node (the PyBullet arm behind franka_ros2's names),
the watchdog and the planner node (the MPC loop against the Franka bridge), each started as
`python -m ...` (`ros_processes`). This process only does what an operator's client would: it
sends each episode's goal image through the `PlanToGoal` action and listens. Per episode, the sim
node is started afresh with the episode's seed, so it builds the scene `FrankaEnv.reset(seed)`
builds in-process; the goal image and the success rule come from a `FrankaEnv` of this process
reset with the same seed (the sim's own task generator, as `eval-sim` uses them), and success is
judged on the end-effector position the sim node publishes after the plan (``current_pose``), never
shown to the planner. The planner's CEM seed is set to the episode seed and the goals carry the
settings `evaluation.sim.episode_goals` gives them (the reach keeps the gripper as it is), as
in-process.

Timing: `seconds_per_action` here is the whole step as the client sees it (between feedback
messages: the view's transport, planning, the motion and the bridge's wait for it), where
in-process it is encoding and planning alone; `wall_seconds` counts the node starts too.
"""
from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from vjepa_wm.evaluation.ros_processes import NodeProcesses, default_domain
from vjepa_wm.evaluation.sim import EpisodeResult, SimEvalConfig, episode_goals, make_env, summary
from vjepa_wm.planner.goals import Goal

# On a CPU the bundled model plans an action in about a second (more on a loaded machine): the
# planner may act on a view up to this old, and the watchdog allows this long between commands
# of a running plan. Image and state ages are relaxed too. A PyBullet sim on a busy CPU runs its
# rows late, so its stamps fall behind the wall clock: the planner and the watchdog judge them on
# the sim's /clock (use_sim_time). A real arm with a GPU planner keeps the watchdog's own limits.
MAX_OBSERVATION_AGE_S = 3.0
WATCHDOG_LIMITS = {"max_command_age_s": 5.0, "max_image_age_s": 1.0, "max_state_age_s": 1.0, "use_sim_time": True}
SIM_RATES = {"robot_state_rate_hz": 30.0, "pose_rate_hz": 30.0}  # enough for one settled motion per step; spares the CPU
START_TIMEOUT_S = 60.0  # for the nodes' first messages (a cold start imports torch and PyBullet)
EXTRA_SECONDS_PER_STEP = 20.0  # a plan's time limit: this per step of its budget


class SimPlanClient:
    """The operator's `PlanClient` (`ros_nodes.plan_client`) plus what scoring a sim episode needs:
    the planner's `cem_seed`, the sim's ``current_pose`` and camera, the debug images of a plan."""

    def __init__(self, domain: int, image_topic: str = "camera/image_raw", planner: str = "vjepa_wm_planner"):
        from geometry_msgs.msg import PoseStamped
        from rclpy.parameter_client import AsyncParameterClient
        from sensor_msgs.msg import Image

        from vjepa_wm.ros_nodes import franka_interface as fi
        from vjepa_wm.ros_nodes.camera_bridge import sensor_qos
        from vjepa_wm.ros_nodes.plan_client import PlanClient
        from vjepa_wm.ros_nodes.planner_node import OUTPUT_QOS, PlannerNodeConfig

        self.client = PlanClient(domain, node_name="vjepa_wm_ros_eval")
        node = self.client.node
        self.lock = threading.Condition()
        self.pose: np.ndarray | None = None  # the latest end-effector xyz
        self.frame = None  # the latest camera Image message
        self.debug: list = []  # debug Image messages of the running plan
        self.parameters = AsyncParameterClient(node, planner)
        node.create_subscription(PoseStamped, fi.CURRENT_POSE_TOPIC, self._take_pose, fi.FROM_ROBOT_QOS)
        node.create_subscription(Image, image_topic, lambda msg: self._keep("frame", msg), sensor_qos(2))
        node.create_subscription(Image, PlannerNodeConfig().debug_image_topic, self._take_debug, OUTPUT_QOS)

    def _keep(self, name: str, value) -> None:
        with self.lock:
            setattr(self, name, value)
            self.lock.notify_all()

    def _take_pose(self, msg) -> None:
        self._keep("pose", np.array([msg.pose.position.x, msg.pose.position.y, msg.pose.position.z]))

    def _take_debug(self, msg) -> None:
        with self.lock:
            self.debug.append(msg)
            self.lock.notify_all()

    def forget_robot(self) -> None:
        """Drop the last pose and frame (the sim is being replaced)."""
        with self.lock:
            self.pose = self.frame = None

    def wait_for_robot(self, timeout_s: float, processes: NodeProcesses) -> None:
        """Until a pose and a frame of the running sim have arrived and the planner's action server is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            processes.check_running()
            with self.lock:
                ready = self.pose is not None and self.frame is not None
            if ready and self.client.action.server_is_ready() and self.parameters.wait_for_services(timeout_sec=0.0):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the sim node and the planner did not come up in {timeout_s} s (logs: {processes.log_dir})")

    def fresh_pose(self, timeout_s: float = 5.0) -> np.ndarray:
        """The end-effector position from a current_pose that arrives after this call."""
        with self.lock:
            self.pose = None
            if not self.lock.wait_for(lambda: self.pose is not None, timeout_s):
                raise TimeoutError(f"no current_pose in {timeout_s} s")
            return self.pose.copy()

    def latest_view(self) -> np.ndarray:
        from vjepa_wm.ros_nodes.images import image_to_rgb

        with self.lock:
            return image_to_rgb(self.frame)

    def set_planner(self, **values) -> None:
        """Set planner node parameters (read at its next goal); ValueError if it refuses one."""
        from rclpy.parameter import Parameter

        future = self.parameters.set_parameters([Parameter(name, value=value) for name, value in values.items()])
        deadline = time.monotonic() + 10
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not future.done() or not all(r.successful for r in future.result().results):
            raise ValueError(f"the planner did not take the parameters {values}")

    def plan(self, goals: list[Goal], max_steps: int, timeout_s: float):
        """One goal through the action (`PlanClient.plan`), with the debug image of every step."""
        from vjepa_wm.ros_nodes.images import image_to_rgb

        with self.lock:
            self.debug = []
        outcome = self.client.plan(goals, max_steps, timeout_s)
        with self.lock:  # the last debug images may come after the result (another topic)
            self.lock.wait_for(lambda: len(self.debug) >= outcome.result.steps, 5.0)
            outcome.debug_frames = [image_to_rgb(msg) for msg in self.debug]
        return outcome

    def close(self) -> None:
        self.client.close()


class _MeasuredArm:
    """What a task's success rule reads of the scene (`scene.ee_pose()`), from the pose read over ROS."""

    def __init__(self, position: np.ndarray):
        self.position = position

    def ee_pose(self):
        return self.position, None


def start_nodes(processes: NodeProcesses, config: SimEvalConfig) -> None:
    """The watchdog and the planner node, for the whole run."""
    processes.start("watchdog", "watchdog_node", WATCHDOG_LIMITS)
    planner = {"image_topic": "camera/image_raw", "device": config.device, "cem_samples": config.cem.samples,
               "cem_iterations": config.cem.iterations, "cem_horizon": config.cem.horizon,
               "max_observation_age_s": MAX_OBSERVATION_AGE_S, "use_sim_time": True}
    if config.model:
        planner["model"] = config.model
    processes.start("vjepa_wm_planner", "planner_node", planner)


def start_sim(processes: NodeProcesses, config: SimEvalConfig, seed: int) -> None:
    processes.start("franka_sim", "sim_node", {"task": config.task, "seed": seed, "image_size": config.image_size,
                                               "low_poly": config.low_poly, **SIM_RATES})


def check_reach(config: SimEvalConfig) -> None:
    if config.task != "reach" or config.gripper != "commanded" or config.stop_energy is not None:
        raise ValueError("--ros runs the reach task as eval-sim does by default (gripper commanded, no stop energy): "
                         "its success is read from the arm's pose over ROS; the object tasks need the objects' poses")


def run_episode(client: SimPlanClient, processes: NodeProcesses, env, config: SimEvalConfig, seed: int,
                video: Path | None, plot: Path | None) -> tuple[EpisodeResult, list[float]]:
    """One seeded episode through ROS: its result and its step times (s)."""
    _, info = env.reset(seed=seed)
    goals = episode_goals(env, info, config)
    goal_image = goals[-1].image
    client.forget_robot()
    start_sim(processes, config, seed)
    try:
        client.wait_for_robot(START_TIMEOUT_S, processes)
        client.set_planner(cem_seed=seed)
        outcome = client.plan(goals, config.max_steps, EXTRA_SECONDS_PER_STEP * config.max_steps)
        position = client.fresh_pose()
        final_view = client.latest_view()
    finally:
        processes.stop("franka_sim")
    success = bool(env.task.success(_MeasuredArm(position), env.episode))
    distance = float(np.linalg.norm(position - np.asarray(env.episode.goals[-1].ee_position)))
    steps = outcome.step_seconds()
    result = EpisodeResult(seed, success, int(outcome.result.steps), distance,
                           float(np.mean(steps)) if steps else float("nan"), outcome.result.stop_reason)
    if video is not None:
        from vjepa_wm.datasets.video_io import write_mp4

        frames = outcome.debug_frames + [np.concatenate([final_view, goal_image], axis=1)]
        write_mp4(video, np.stack(frames), fps=2)
    if plot is not None and outcome.feedback:
        from vjepa_wm.planner.plots import save_energy_plot

        save_energy_plot([SimpleNamespace(**vars(f)) for f in outcome.feedback], plot,
                         title=f"{config.task} seed {seed} (ROS 2): {'success' if success else 'failure'}")
    return result, steps


def evaluate_ros(config: SimEvalConfig, progress: bool = True, domain: int | None = None) -> dict:
    """`evaluation.sim.evaluate` through ROS 2: the same summary record, plus ``transport``."""
    from tqdm import tqdm

    check_reach(config)
    out = Path(config.out) if config.out else None
    env = make_env(config)
    start = time.perf_counter()
    results: list[EpisodeResult] = []
    with tempfile.TemporaryDirectory(prefix="vjepa_wm_ros_") as scratch, \
            NodeProcesses(default_domain() if domain is None else domain,
                          out / "ros_logs" if out else Path(scratch)) as processes:
        client = SimPlanClient(processes.domain)
        try:
            start_nodes(processes, config)
            bar = tqdm(range(config.episodes), desc=f"eval {config.task} (ROS 2)", unit="episode", disable=not progress)
            for index in bar:
                seed = config.seed + index
                keep = out is not None and index < config.videos
                video = out / f"{config.task}_seed{seed}.mp4" if keep else None
                plot = out / f"{config.task}_seed{seed}_energy.png" if keep else None
                results.append(run_episode(client, processes, env, config, seed, video, plot)[0])
                bar.set_postfix(success=f"{np.mean([r.success for r in results]):.2f}")
        finally:
            client.close()
            env.close()
    return {**summary(config, results, start), "transport": "ros2"}
