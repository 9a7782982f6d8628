"""The simulated Franka: a `gymnasium.Env` that also implements the planner's `Robot` protocol.

An action is the 7-D state delta of the project's contract (xyz, extrinsic-xyz Euler of
R_{t+1} R_t^T, gripper). It is executed as a blocking move, as V-JEPA 2-AC's robot did:

1. the delta is clipped to `ActionLimits` (translation norm, rotation angle, gripper step,
   workspace box and reach, gripper tilt) and integrated onto the *measured* state;
2. IK is iterated until the end-effector target is matched to ~1e-5 m (`sim.ik`);
3. the joint targets are held for `rows_per_action` rows (4 x 1/15 s = 0.267 s), plus up to
   `max_settle_rows` more while the arm has not converged.

So the achieved delta matches the commanded one to about a millimetre, unless something (the
table, an object) blocks the arm. Simulated time advances in rows of 1/15 s (DROID's rate); a
recording keeps every row, and every 4th row lies on an action boundary.

Gripper semantics: the state reports the *measured* finger gap (0 open ... 1 closed). An
opening delta acts on that measurement (what the planner sees); a zero or closing delta acts on
the commanded target, so a grasp keeps squeezing while the action's gripper part is 0.

Gymnasium conventions: obs = {"pixels": uint8 [H, W, 3], "agent_pos": float64 [7]};
`info["is_success"]` from simulator state. The reward is always 0 and `terminated` always False:
success must not leak into anything a planner could consume; episodes end by truncation.
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vjepa_wm.embodiments import Franka, Observation, rotations
from vjepa_wm.embodiments.franka import CONTROL_HZ, relative_action
from vjepa_wm.sim.franka.camera import Cameras
from vjepa_wm.sim.franka.config import SimConfig
from vjepa_wm.sim.franka.ik import PandaIK
from vjepa_wm.sim.franka.objects import OBJECTS, gripper_to_opening, opening_to_gripper
from vjepa_wm.sim.franka.scene import NEUTRAL_ARM, Scene
from vjepa_wm.sim.franka.tasks import Configuration, Episode, Task, make_task

DOWN = np.array([np.pi, 0.0, 0.0])  # gripper pointing down, fingers closing along y
SETTLE_SPEED = 0.02  # rad/s: arm joints slower than this count as still
RESET_ROWS = 2  # rows of physics after a teleport, so contacts settle before t = 0
GRASP_ROWS = 4  # rows to close the fingers on a held object at reset
# Bounds of the state: xyz within the Panda's reach, Euler angles in matrix_to_euler's ranges, gripper 0..1.
STATE_LOW = np.array([-1.2, -1.2, -1.2, -np.pi, -np.pi / 2, -np.pi, 0.0])
STATE_HIGH = np.array([1.2, 1.2, 1.2, np.pi, np.pi / 2, np.pi, 1.0])


@dataclass(frozen=True)
class Row:
    """One recorded 1/15 s tick.

    state: the contract's [7] state; arm: [7] joint angles; command: the [7] target state in force
    while the row was reached (the last action's clipped target); wrist_pose: [6] wrist-camera pose
    when the wrist camera is on; stamp: simulated seconds.
    """

    exterior: np.ndarray
    wrist: np.ndarray | None
    wrist_pose: np.ndarray | None
    state: np.ndarray
    arm: np.ndarray
    command: np.ndarray
    stamp: float


@dataclass(frozen=True)
class StepReport:
    """What `apply` did with the last action (for logs and tests; never needed by the planner)."""

    commanded: np.ndarray  # the action as given
    applied: np.ndarray  # the clipped action, as a delta from the state before the step
    clipped: bool
    ik_error: float  # m, IK residual of the end-effector target
    rows: int  # rows the step took


class FrankaEnv(gym.Env):
    """PyBullet Franka tabletop. `task`: a task name (see `sim.franka.tasks.TASKS`) or a `Task`."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}
    embodiment = Franka()  # what its states and actions mean (the planning box is the planner's own)

    def __init__(
        self,
        config: SimConfig | None = None,
        task: str | Task = "reach",
        target_object: str = "cup",
        max_episode_steps: int = 50,
        render_mode: str | None = "rgb_array",
    ):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.config = config or SimConfig()
        self.render_mode = render_mode
        self.task = task if isinstance(task, Task) else make_task(task, target_object)
        self.max_episode_steps = max_episode_steps
        self.metadata = {**self.metadata, "render_fps": CONTROL_HZ / self.config.rows_per_action}
        self.scene = Scene(self.config)
        self.cameras = Cameras(self.scene, self.config)
        self.ik = PandaIK(tolerance=self.config.ik_tolerance)

        size = self.config.image_size
        self.observation_space = spaces.Dict({
            "pixels": spaces.Box(0, 255, (size, size, 3), np.uint8),
            "agent_pos": spaces.Box(STATE_LOW, STATE_HIGH, dtype=np.float64),
        })
        lim = self.config.limits
        bound = np.array([lim.max_translation] * 3 + [lim.max_rotation] * 3 + [lim.max_gripper])
        self.action_space = spaces.Box(-bound, bound, dtype=np.float64)

        self.episode: Episode | None = None
        self.goal_images: tuple[np.ndarray, ...] = ()
        self.last_report: StepReport | None = None
        self._rows = 0
        self._steps = 0
        self._command = np.zeros(7)  # the target state in force (the gripper part drives the fingers)
        self._image_cache: tuple[int, np.ndarray] | None = None
        self._recording: list[Row] | None = None
        self.set_configuration(Configuration(ee_position=(0.5, 0.0, 0.25)))

    # -- Robot protocol ---------------------------------------------------------------------------
    def observe(self) -> Observation:
        return Observation(self._exterior(), self.state(), self.now())

    def apply(self, action) -> None:
        """Execute one action (blocking); see the module docstring for clipping and gripper rules."""
        commanded = self.embodiment.checked_action(action)
        before = self.state()
        target, clipped = self._target(before, commanded)
        position, rotation = target[:3], rotations.euler_to_matrix(target[3:6])
        solution = self.ik.solve(position, rotation, self.scene.arm_joints())
        self._command = target
        self.scene.command(solution.arm, gripper_to_opening(target[6]))
        goal_position, _ = self.ik.forward(solution.arm)
        rows = 0
        while rows < self.config.rows_per_action + self.config.max_settle_rows:
            self._advance_row()
            rows += 1
            if rows >= self.config.rows_per_action and self._settled(goal_position):
                break
        applied = relative_action(before, target)
        self.last_report = StepReport(commanded, applied, clipped, solution.position_error, rows)

    def hold(self) -> None:
        """Stop: the current joint angles become the targets; the gripper keeps its command."""
        self.scene.command(self.scene.arm_joints(), gripper_to_opening(self._command[6]))
        self._command = np.append(self.state()[:6], self._command[6])

    def now(self) -> float:
        """Simulated seconds since the last reset (the clock of the observation stamps)."""
        return self._rows / CONTROL_HZ

    def state(self) -> np.ndarray:
        """[7]: end-effector xyz, extrinsic xyz Euler, measured gripper (0 open ... 1 closed)."""
        position, rotation = self.scene.ee_pose()
        return np.concatenate([position, rotations.matrix_to_euler(rotation), [opening_to_gripper(self.scene.opening())]])

    # -- gymnasium --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.episode = self.task.sample(self.np_random)
        self.set_configuration(self.episode.start)
        self.goal_images = tuple(self.render_configuration(goal) for goal in self.episode.goals)
        info = self._info()
        info["goal_image"] = self.goal_images[-1]
        info["subgoal_images"] = self.goal_images[:-1]
        return self._obs(), info

    def step(self, action):
        self.apply(action)
        self._steps += 1
        truncated = self._steps >= self.max_episode_steps
        return self._obs(), 0.0, False, truncated, self._info()

    def render(self):
        return self._exterior() if self.render_mode == "rgb_array" else None

    def close(self):
        self.ik.close()
        self.scene.close()

    # -- configurations ---------------------------------------------------------------------------
    def set_configuration(self, configuration: Configuration) -> None:
        """Start a fresh episode from `configuration` (simulated time restarts at 0).

        The world is rebuilt first, so the outcome never depends on what happened before (same
        seed + same actions -> same states and images).
        """
        self.scene.build()
        self._pose_scene(configuration, hold=True)
        rows, gripper = RESET_ROWS, float(configuration.gripper)
        if configuration.held is not None:
            gripper = 1.0  # close on the object and keep squeezing
            self.scene.command(self.scene.arm_joints(), 0.0)
            rows += GRASP_ROWS
        self.scene.step(rows * self.config.substeps_per_row)
        self._rows = 0
        self._steps = 0
        self._image_cache = None
        self.last_report = None
        self._command = np.append(self.state()[:6], gripper)

    def render_configuration(self, configuration: Configuration) -> np.ndarray:
        """The exterior image of `configuration`, rendered by teleporting there and back (no physics)."""
        saved = self.scene.save()
        try:
            self._pose_scene(configuration, hold=False)
            return self.cameras.exterior()
        finally:
            self.scene.restore(saved, remove=True)

    def _pose_scene(self, configuration: Configuration, hold: bool) -> None:
        for name, (x, y, yaw) in configuration.objects.items():
            if name != configuration.held:
                self.scene.place_object(name, (x, y, OBJECTS[name].rest_height), yaw)
        position = np.asarray(configuration.ee_position, dtype=np.float64)
        rotation = rotations.euler_to_matrix(DOWN + np.array([0.0, 0.0, configuration.ee_yaw]))
        arm = self.ik.solve(position, rotation, np.asarray(NEUTRAL_ARM)).arm
        if configuration.held is not None:
            name = configuration.held
            self.scene.place_object(name, position, configuration.objects.get(name, (0, 0, configuration.ee_yaw))[2])
            opening = OBJECTS[name].width + 0.001
        else:
            opening = gripper_to_opening(configuration.gripper)
        self.scene.set_arm(arm, opening, hold=hold)
        self._image_cache = None

    # -- recording ----------------------------------------------------------------------------------
    def start_recording(self) -> None:
        """Keep every row from now on (the current one included) until `stop_recording`."""
        self._recording = []
        self._record_row()

    def stop_recording(self) -> list[Row]:
        rows, self._recording = self._recording or [], None
        return rows

    # -- internals ----------------------------------------------------------------------------------
    def _target(self, state: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, bool]:
        """The target state for `action` from `state`, after the safety limits; and whether any limit bit."""
        lim = self.config.limits
        translation = action[:3].copy()
        norm = float(np.linalg.norm(translation))
        clipped = norm > lim.max_translation
        if clipped:
            translation *= lim.max_translation / norm
        position = state[:3] + translation
        bounded = np.clip(position, lim.workspace_low, lim.workspace_high)
        reach = float(np.hypot(bounded[0], bounded[1]))
        if reach > lim.max_reach:
            bounded[:2] *= lim.max_reach / reach
        clipped |= not np.allclose(bounded, position, atol=1e-12, rtol=0)

        current = rotations.euler_to_matrix(state[3:6])
        vector = rotations.rotation_vector(rotations.euler_to_matrix(action[3:6]))
        angle = float(np.linalg.norm(vector))
        if angle > lim.max_rotation:
            vector *= lim.max_rotation / angle
            clipped = True
        allowed_tilt = max(lim.max_tilt, tilt(current))
        scale = _largest_scale(lambda s: tilt(rotations.matrix_from_rotation_vector(s * vector) @ current) <= allowed_tilt)
        clipped |= scale < 1.0
        rotation = rotations.matrix_from_rotation_vector(scale * vector) @ current

        step = float(np.clip(action[6], -lim.max_gripper, lim.max_gripper))
        clipped |= step != action[6]
        base = state[6] if step < 0 else max(self._command[6], state[6])
        gripper = float(np.clip(base + step, 0.0, 1.0))
        return np.concatenate([bounded, rotations.matrix_to_euler(rotation), [gripper]]), bool(clipped)

    def _advance_row(self) -> None:
        self.scene.step(self.config.substeps_per_row)
        self._rows += 1
        self._image_cache = None
        if self._recording is not None:
            self._record_row()

    def _record_row(self) -> None:
        wrist = self.cameras.wrist() if self.config.wrist_camera else None
        wrist_pose = self.cameras.wrist_pose() if self.config.wrist_camera else None
        self._recording.append(Row(self._exterior(), wrist, wrist_pose, self.state(), self.scene.arm_joints(),
                                   self._command.copy(), self.now()))

    def _settled(self, goal_position: np.ndarray) -> bool:
        position, _ = self.scene.ee_pose()
        close = np.linalg.norm(position - goal_position) < self.config.settle_tolerance
        return bool(close and self.scene.joint_speed() < SETTLE_SPEED)

    def _exterior(self) -> np.ndarray:
        """The exterior image now: rendered once per row, handed out as a fresh copy each time."""
        if self._image_cache is None or self._image_cache[0] != self._rows:
            self._image_cache = (self._rows, self.cameras.exterior())
        return self._image_cache[1].copy()

    def _obs(self) -> dict:
        return {"pixels": self._exterior(), "agent_pos": self.state()}

    def is_success(self) -> bool:
        """Whether the current episode's task is achieved (simulator truth: for scoring, never for planning)."""
        return bool(self.task.success(self.scene, self.episode)) if self.episode is not None else False

    def goal_distance(self) -> float:
        """End-effector distance (m) to the final goal's end-effector position (simulator truth, for reports)."""
        if self.episode is None:
            return float("nan")
        position, _ = self.scene.ee_pose()
        return float(np.linalg.norm(position - np.asarray(self.episode.goals[-1].ee_position)))

    def _info(self) -> dict:
        info = {"is_success": self.is_success(), "sim_time": self.now()}
        if self.last_report is not None:
            info["applied_action"] = self.last_report.applied.copy()
            info["clipped"] = self.last_report.clipped
        return info


def tilt(matrix: np.ndarray) -> float:
    """Angle (rad) between the gripper axis (the frame's z) and straight down."""
    return float(np.arccos(np.clip(-matrix[2, 2], -1.0, 1.0)))


def _largest_scale(allowed, iterations: int = 12) -> float:
    """The largest s in [0, 1] with allowed(s) (bisection; allowed(0) is assumed true)."""
    if allowed(1.0):
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(iterations):
        middle = (low + high) / 2
        low, high = (middle, high) if allowed(middle) else (low, middle)
    return low
