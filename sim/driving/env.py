"""The simulated off-road car: a `gymnasium.Env` that also implements the planner's `Robot` protocol.

One clock drives everything: physics ticks at `rates.physics_hz` (200 Hz). Every command period
(100 Hz, TartanDrive's `/cmd` rate) the active driver (the pure-pursuit controller of `apply`, a
scripted driver in `drive`, the brake of `hold`) sets throttle and steer; every odometry period
(50 Hz) and camera period (20 Hz) the sensors are read. Simulated time passes only inside
`apply`, `hold` and `drive`; `now()` is that clock, and observation stamps are on it.

`Robot`, speaking `embodiments.Car`: `observe()` -> the forward camera's frame, the planar pose
(x, y, heading) and the stamp; `apply(delta)` takes a waypoint delta (dx, dy in the car's frame
in waypoint units, dyaw), clipped to the embodiment's step box, and drives for one 4 Hz step
(0.25 s) towards the position `Car.integrate` names, with pure pursuit (`controller`): the car
arrives with the heading of the arc through that position (what a car can do), so a dyaw that
disagrees with the arc is not reached. `hold()` brakes until the car stands still.

Recording: between `start_recording(sink, origin_ns)` and `stop_recording()` every command,
odometry reading and camera frame goes to `sink` (a `datasets.tartandrive.TartanDriveBagWriter`
or anything with its `image`, `odometry` and `command` methods), stamped `origin_ns` + the sim
clock. Odometry is written in TartanDrive's frame convention: its quaternion's yaw is the heading
minus pi/2 (the published processing adds pi/2 back), the chassis' roll and pitch kept; the twist
is in that child frame. Positions are the base's (rear axle on the ground) in the world frame.

Gymnasium conventions: obs = {"pixels": uint8 [H, W, 3], "agent_pos": float64 [3]}; the action
is the waypoint delta; reward 0, never terminated (episodes end by truncation); `reset(seed=s)`
draws the world from the seed.
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vjepa_wm.embodiments import Car, Observation
from vjepa_wm.embodiments.rotations import quaternion_from_matrix

from .camera import ForwardCamera
from .config import DrivingConfig
from .controller import PurePursuit
from .scene import Scene
from .terrain import generate
from .vehicle import WHEELBASE

SETTLE_SECONDS = 1.0  # physics after placing the car, before t = 0, so it rests on its wheels
STOPPED = 0.05  # m/s counted as standing still
HOLD_SECONDS = 3.0  # the longest `hold` brakes for (a car on a steep slope may creep)
TARTANDRIVE_YAW = -math.pi / 2  # odometry yaw minus heading in TartanDrive's logs (their processing adds pi/2)
_TO_ODOMETRY = np.array([[math.cos(TARTANDRIVE_YAW), -math.sin(TARTANDRIVE_YAW), 0.0],
                         [math.sin(TARTANDRIVE_YAW), math.cos(TARTANDRIVE_YAW), 0.0], [0.0, 0.0, 1.0]])

Policy = Callable[[], tuple[float, float]]  # called every command tick: (throttle, steer)


class Sink(Protocol):
    """Where a recording goes (`TartanDriveBagWriter`'s methods)."""

    def image(self, stamp_ns: int, rgb: np.ndarray) -> None: ...

    def odometry(self, stamp_ns: int, position, orientation, linear=(0.0, 0.0, 0.0), angular=(0.0, 0.0, 0.0)) -> None: ...

    def command(self, stamp_ns: int, throttle: float, steer: float) -> None: ...


class DrivingEnv(gym.Env):
    """The PyBullet off-road car on a procedural terrain (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    embodiment = Car()  # what its states and actions mean; also the step box `apply` clips to

    def __init__(self, config: DrivingConfig | None = None, max_episode_steps: int = 200,
                 render_mode: str | None = "rgb_array"):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.config = config or DrivingConfig()
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        rates = self.config.rates
        self.metadata = {**self.metadata, "render_fps": rates.step_hz}
        self.scene = Scene(self.config)
        # The sky panorama stands 0.8 terrain sides from the middle: 2 sides reach it from any corner.
        self.camera = ForwardCamera(self.scene.client, self.config.camera, far=2.0 * self.config.terrain.size)
        vehicle = self.config.vehicle
        self.controller = PurePursuit(WHEELBASE * vehicle.scale, vehicle.max_speed, vehicle.max_steer)
        cam = self.config.camera
        self.observation_space = spaces.Dict({
            "pixels": spaces.Box(0, 255, (cam.height, cam.width, 3), np.uint8),
            "agent_pos": spaces.Box(np.array(Car.state_low), np.array(Car.state_high), dtype=np.float64),
        })
        self.action_space = spaces.Box(np.array(self.embodiment.action_low), np.array(self.embodiment.action_high),
                                       dtype=np.float64)
        self._ticks = 0
        self._steps = 0
        self._image_cache: tuple[int, np.ndarray] | None = None
        self._sink: Sink | None = None
        self._origin_ns = 0
        self.set_world(np.random.default_rng(0))

    # -- Robot protocol ---------------------------------------------------------------------------
    def observe(self) -> Observation:
        return Observation(self._image(), self.state(), self.now())

    def apply(self, action) -> None:
        """Drive one 4 Hz step towards the position the waypoint delta names (see the module docstring)."""
        delta = np.clip(self.embodiment.checked_action(action), self.embodiment.action_low, self.embodiment.action_high)
        start = self.state()
        target = self.embodiment.integrate(start, delta)[:2]
        direction = 1 if delta[0] >= 0 else -1
        rates = self.config.rates
        end = self._ticks + rates.ticks(rates.step_hz)

        def pursue() -> tuple[float, float]:
            return self.controller.command(self.state(), target, direction, (end - self._ticks) / rates.physics_hz)

        self._run(end - self._ticks, pursue)

    def hold(self) -> None:
        """Brake (throttle 0, steering kept) until the car stands still, at most `HOLD_SECONDS`."""
        rates = self.config.rates
        period = rates.ticks(rates.command_hz)
        steer = self.scene.vehicle.steer
        for _ in range(int(HOLD_SECONDS * rates.command_hz)):
            self._run(period, lambda: (0.0, steer))
            if self.speed() < STOPPED:
                break

    def now(self) -> float:
        """Simulated seconds since the world was built (the clock of the observation stamps)."""
        return self._ticks / self.config.rates.physics_hz

    def state(self) -> np.ndarray:
        """[3]: x, y (m) and heading (rad) of the car, the `Car` embodiment's state."""
        return self.scene.vehicle.planar_pose()

    def speed(self) -> float:
        """m/s over the ground (any direction)."""
        return float(np.linalg.norm(self.scene.vehicle.velocity()[0]))

    # -- the world and driving by throttle and steer ----------------------------------------------
    @property
    def layout(self):
        return self.scene.layout

    def set_world(self, rng: np.random.Generator) -> None:
        """Draw a world from `rng`, build it and let the car settle; the clock restarts at 0.

        The world is rebuilt from scratch, so the outcome never depends on what ran before
        (same generator state + same commands -> same images and poses)."""
        vehicle = self.scene.build(generate(self.config.terrain, rng))
        rates = self.config.rates
        vehicle.command(0.0, 0.0, 1.0 / rates.command_hz)
        for _ in range(int(SETTLE_SECONDS * rates.physics_hz)):
            self.scene.step()
        self._ticks = 0
        self._steps = 0
        self._image_cache = None

    def drive(self, policy: Policy, seconds: float) -> None:
        """Run `seconds` of sim time with `policy` setting throttle and steer every command tick."""
        self._run(round(seconds * self.config.rates.physics_hz), policy)

    # -- recording -----------------------------------------------------------------------------------
    def start_recording(self, sink: Sink, origin_ns: int) -> None:
        """Send every message from now on to `sink`, stamped `origin_ns` + sim time; the current
        odometry and frame are sent at once."""
        self._sink, self._origin_ns = sink, int(origin_ns)
        self._record_odometry()
        self._sink.image(self._stamp_ns(), self._image())

    def stop_recording(self) -> None:
        self._sink = None

    # -- gymnasium -----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.set_world(self.np_random)
        return self._obs(), self._info()

    def step(self, action):
        self.apply(action)
        self._steps += 1
        return self._obs(), 0.0, False, self._steps >= self.max_episode_steps, self._info()

    def render(self):
        return self._image() if self.render_mode == "rgb_array" else None

    def close(self):
        self.scene.close()

    # -- internals -----------------------------------------------------------------------------------
    def _run(self, ticks: int, policy: Policy) -> None:
        rates = self.config.rates
        command_period, odometry_period, image_period = (rates.ticks(hz) for hz in (rates.command_hz, rates.odometry_hz,
                                                                                      rates.image_hz))
        vehicle = self.scene.vehicle
        for _ in range(ticks):
            if self._ticks % command_period == 0:
                throttle, steer = policy()
                vehicle.command(throttle, steer, command_period / rates.physics_hz)
                if self._sink is not None:
                    self._sink.command(self._stamp_ns(), vehicle.throttle, vehicle.steer)
            self.scene.step()
            self._ticks += 1
            if self._sink is not None:
                if self._ticks % odometry_period == 0:
                    self._record_odometry()
                if self._ticks % image_period == 0:
                    self._sink.image(self._stamp_ns(), self._image())

    def _stamp_ns(self) -> int:
        return self._origin_ns + self._ticks * 1_000_000_000 // self.config.rates.physics_hz

    def _record_odometry(self) -> None:
        vehicle = self.scene.vehicle
        position, _ = vehicle.pose()
        rotation = _TO_ODOMETRY @ vehicle.rotation()
        linear, angular = vehicle.velocity()
        self._sink.odometry(self._stamp_ns(), position, quaternion_from_matrix(rotation), rotation.T @ linear,
                            rotation.T @ angular)

    def _image(self) -> np.ndarray:
        """The camera frame now: rendered once per tick, handed out as a fresh copy each time."""
        if self._image_cache is None or self._image_cache[0] != self._ticks:
            position, _ = self.scene.vehicle.pose()
            self._image_cache = (self._ticks, self.camera.render(position, self.scene.vehicle.rotation()))
        return self._image_cache[1].copy()

    def _obs(self) -> dict:
        return {"pixels": self._image(), "agent_pos": self.state()}

    def _info(self) -> dict:
        return {"sim_time": self.now(), "speed": self.speed()}
