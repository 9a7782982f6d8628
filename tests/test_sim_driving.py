"""The PyBullet off-road car: determinism, waypoint tracking, the Robot contract, sensors and rates.

A small world (40 m, 33 x 33 heightfield, tiny textures) and 32 x 24 frames keep this fast;
everything runs the real PyBullet simulator.
"""
from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest

from vjepa_wm.datasets.tartandrive.messages import quaternion_yaw
from vjepa_wm.embodiments import Car, Robot
from vjepa_wm.embodiments.rotations import wrap_angle
from vjepa_wm.sim.driving.config import CameraConfig, DrivingConfig, RatesConfig, TerrainConfig
from vjepa_wm.sim.driving.controller import PurePursuit, arc_heading_change
from vjepa_wm.sim.driving.env import STOPPED, DrivingEnv
from vjepa_wm.sim.driving.scripted import SECONDS, ScriptedDriver, plan

TERRAIN = TerrainConfig(size=40.0, grid=33, texture_size=64, rocks=4, trees=3, grass_patches=2, clear_radius=6.0)
SMALL = DrivingConfig(terrain=TERRAIN, camera=CameraConfig(width=32, height=24))
OPEN = DrivingConfig(terrain=TerrainConfig(size=60.0, grid=33, texture_size=64, rocks=0, trees=0, grass_patches=0),
                     camera=CameraConfig(width=32, height=24))


@pytest.fixture(scope="module")
def env():
    environment = DrivingEnv(SMALL)
    yield environment
    environment.close()


def _scripted_drive(env: DrivingEnv, seed: int, steps: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Images and poses at 4 Hz of a scripted drive in the world of `seed`."""
    rng = np.random.default_rng(seed)
    env.set_world(rng)
    driver = ScriptedDriver(env, rng, steps / 4)
    images, poses = [], []
    for _ in range(steps):
        env.drive(driver, 0.25)
        observation = env.observe()
        images.append(observation.image)
        poses.append(observation.state)
    return np.stack(images), np.stack(poses)


def _arc(units: float, curvature: float, spacing: float = Car().waypoint_spacing) -> np.ndarray:
    """The waypoint delta of driving `units` waypoints along a circle of `curvature` (1/m)."""
    s = units * spacing
    if abs(curvature) < 1e-9:
        return np.array([units, 0.0, 0.0])
    return np.array([math.sin(curvature * s) / curvature / spacing, (1 - math.cos(curvature * s)) / curvature / spacing,
                     curvature * s])


def test_same_seed_gives_bit_identical_images_and_poses(env):
    images, poses = _scripted_drive(env, seed=3)
    other_images, other_poses = _scripted_drive(env, seed=4)
    again_images, again_poses = _scripted_drive(env, seed=3)  # another world was driven in between
    fresh = DrivingEnv(SMALL)
    try:
        fresh_images, fresh_poses = _scripted_drive(fresh, seed=3)
    finally:
        fresh.close()
    assert np.array_equal(images, again_images) and np.array_equal(poses, again_poses)
    assert np.array_equal(images, fresh_images) and np.array_equal(poses, fresh_poses)
    assert not np.array_equal(images, other_images) and np.abs(poses - other_poses).max() > 1.0
    assert np.linalg.norm(poses[-1, :2] - poses[0, :2]) > 2.0  # it drove
    assert images.dtype == np.uint8 and images.shape == (12, 24, 32, 3) and images.std() > 10


def test_frames_show_sky_above_ground(env):
    env.set_world(np.random.default_rng(5))
    image = env.observe().image.astype(np.float64)
    top, bottom = image[:4].reshape(-1, 3).mean(0), image[-6:].reshape(-1, 3).mean(0)
    assert top[2] > top[0] + 20  # blue sky
    assert bottom[2] < bottom[0] and bottom[1] > bottom[2]  # green-brown ground


def test_waypoint_delta_reaches_the_pose_car_integrate_predicts():
    """While driving, arcs within the steering limit and speed changes within the motor's reach
    land within 0.15 m (0.2 waypoint units) and 0.15 rad of `Car.integrate`'s pose, 6 cm and
    0.06 rad on average: what remains is the wheel-speed and steering-rate lag over 0.25 s and
    slip on the slopes, which pure pursuit re-plans against every 10 ms but cannot undo (a car
    that ends a step off its arc reaches the next position with a heading error). A controller
    that ignored dy or mis-scaled the speed by a fifth would miss these bounds."""
    env = DrivingEnv(OPEN)
    try:
        env.set_world(np.random.default_rng(1))
        for units in (0.3, 0.6, 0.9, 1.0):  # get moving
            env.apply([units, 0.0, 0.0])
        rng = np.random.default_rng(0)
        units, curvature, errors = 1.0, 0.0, []
        for _ in range(12):
            units = float(np.clip(units + rng.uniform(-0.2, 0.2), 0.6, 1.4))
            curvature = float(np.clip(curvature + rng.uniform(-0.06, 0.06), -0.2, 0.2))  # the limit: tan(0.5) / 1.95 m
            delta = _arc(units, curvature)
            assert delta[2] == pytest.approx(arc_heading_change(delta[0], delta[1]), abs=1e-9)
            before = env.state()
            env.apply(delta)
            error = env.state() - env.embodiment.integrate(before, delta)
            errors.append((np.hypot(error[0], error[1]), abs(float(wrap_angle(np.array(error[2]))))))
        errors = np.array(errors)
        assert errors[:, 0].max() < 0.15 and errors[:, 0].mean() < 0.06  # measured: 0.08 m, 0.04 m
        assert errors[:, 1].max() < 0.15 and errors[:, 1].mean() < 0.06  # measured: 0.11 rad, 0.04 rad

        env.hold()
        start = env.state()
        for _ in range(3):  # reversing, after a first step spent accelerating from rest
            env.apply(_arc(-0.5, 0.1))
        moved = Car().deltas(np.stack([start, env.state()]))[0]
        assert -1.6 < moved[0] < -1.0 and abs(moved[1]) < 0.2
    finally:
        env.close()


def test_robot_contract_stamps_on_the_sim_clock_and_hold_stops(env):
    assert isinstance(env, Robot)
    env.set_world(np.random.default_rng(2))
    first = env.observe()
    assert first.stamp == 0.0 == env.now() and first.state.shape == (3,) and first.image.shape == (24, 32, 3)
    for k in range(1, 5):
        env.apply([1.0, 0.0, 0.0])
        assert env.observe().stamp == pytest.approx(0.25 * k) == env.now()
    assert env.speed() > 1.0
    began = env.now()
    env.hold()
    assert env.speed() < STOPPED and env.now() > began
    parked = env.state()
    env.drive(lambda: (0.0, 0.0), 1.0)
    assert np.linalg.norm(env.state()[:2] - parked[:2]) < 0.05
    with pytest.raises(ValueError, match="shape"):
        env.apply([1.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        env.apply([float("nan"), 0.0, 0.0])


class _Sink:
    """Keeps what a `TartanDriveBagWriter` would write."""

    def __init__(self):
        self.images, self.poses, self.commands = [], [], []

    def image(self, stamp_ns, rgb):
        self.images.append((stamp_ns, rgb))

    def odometry(self, stamp_ns, position, orientation, linear=(0, 0, 0), angular=(0, 0, 0)):
        self.poses.append((stamp_ns, np.asarray(position), np.asarray(orientation), np.asarray(linear)))

    def command(self, stamp_ns, throttle, steer):
        self.commands.append((stamp_ns, throttle, steer))


def test_recording_has_the_published_rates_and_tartandrive_odometry_frame(env):
    env.set_world(np.random.default_rng(6))
    sink, origin = _Sink(), 1_630_000_000 * 10**9
    env.start_recording(sink, origin)
    env.drive(lambda: (0.5, 0.3), 1.0)
    heading = env.state()[2]
    env.stop_recording()
    env.drive(lambda: (0.5, 0.3), 0.25)
    rates = RatesConfig()
    for messages, hz, first in ((sink.images, rates.image_hz, 0), (sink.poses, rates.odometry_hz, 0),
                                (sink.commands, rates.command_hz, 0)):
        stamps = np.array([m[0] for m in messages])
        assert len(stamps) == hz + (1 if messages is not sink.commands else 0)
        assert stamps[first] == origin and np.all(np.diff(stamps) == 10**9 // hz)
    stamp, position, quaternion, linear = sink.poses[-1]
    # TartanDrive's odometry yaw is the heading - pi/2: nav-process adds pi/2 back.
    assert float(wrap_angle(np.array(quaternion_yaw(*quaternion) + math.pi / 2 - heading))) == pytest.approx(0.0, abs=1e-9)
    assert linear[1] > 1.0 and abs(linear[0]) < 0.5  # driving along the child frame's y, as TartanDrive's ATV does
    assert all(-1 <= t <= 1 and -1 <= s <= 1 for _, t, s in sink.commands)
    assert sink.commands[-1][1] == pytest.approx(0.5) and sink.commands[-1][2] == pytest.approx(0.3)


def test_scripted_plans_start_cruising_reverse_and_commands_are_smooth(env):
    for seed in range(20):
        manoeuvres = plan(np.random.default_rng(seed), 12.0)
        starts = np.cumsum([0.0] + [m.seconds for m in manoeuvres])
        assert manoeuvres[0].kind == "cruise" and starts[-1] >= 12.0
        assert any(m.kind == "reverse" and start + SECONDS["reverse"][1] <= 12.0 for m, start in zip(manoeuvres, starts))
    rng = np.random.default_rng(7)
    env.set_world(rng)
    driver = ScriptedDriver(env, rng, 12.0)
    commands = []
    env.drive(lambda: commands.append(driver()) or commands[-1], 12.0)
    commands = np.array(commands)
    assert commands[:, 0].min() < -0.1 and commands[:, 0].max() > 0.3  # reverses and drives
    assert np.abs(np.diff(commands, axis=0)).max() < 0.07  # at 100 Hz: no jumps (a full swing takes 0.3 s or more)


def test_pure_pursuit_commands():
    controller = PurePursuit(wheelbase=1.95, max_speed=6.0, max_steer=0.5)
    throttle, steer = controller.command(np.zeros(3), np.array([1.5, 0.0]), 1, 0.25)
    assert throttle == pytest.approx(1.0) and steer == 0.0  # 6 m/s asked: clipped at full throttle
    throttle, steer = controller.command(np.zeros(3), np.array([0.6, 0.05]), 1, 0.25)
    assert 0.3 < throttle < 0.5 and 0 < steer < 1  # a left arc of ~0.6 m in 0.25 s
    throttle, steer = controller.command(np.zeros(3), np.array([-0.6, 0.05]), -1, 0.25)
    assert -0.5 < throttle < -0.3 and steer > 0  # backing up to the left steers left
    assert controller.command(np.zeros(3), np.array([-0.3, 0.0]), 1, 0.1)[0] == 0.0  # passed the target: brake


def test_gymnasium_env():
    env = gymnasium.make("vjepa_wm/OffroadCar-v0", config=SMALL)
    try:
        obs, info = env.reset(seed=0)
        assert obs["pixels"].shape == (24, 32, 3) and obs["agent_pos"].shape == (3,) and info["sim_time"] == 0.0
        obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0, 0.0]))
        assert reward == 0.0 and not terminated and not truncated and info["sim_time"] == pytest.approx(0.25)
        again, _ = env.reset(seed=0)
        assert np.array_equal(again["pixels"], env.reset(seed=0)[0]["pixels"])
    finally:
        env.close()


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="image_hz"):
        RatesConfig(image_hz=30)
    with pytest.raises(ValueError, match="terrain.grid"):
        TerrainConfig(grid=4)
    with pytest.raises(ValueError, match="camera size"):
        CameraConfig(width=8)
