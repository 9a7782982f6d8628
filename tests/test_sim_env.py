"""The PyBullet Franka env: determinism, IK/tracking accuracy, safety clipping, input checks, APIs.

Small low-poly images keep this fast; everything runs the real PyBullet simulator.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest

from vjepa_wm.embodiments import rotations
from vjepa_wm.embodiments.franka import CONTROL_HZ, relative_action
from vjepa_wm.embodiments.robot import Observation, Robot
from vjepa_wm.sim.franka.assets import panda_urdf
from vjepa_wm.sim.franka.config import SimConfig
from vjepa_wm.sim.franka.env import FrankaEnv, tilt
from vjepa_wm.sim.franka.ik import PandaIK
from vjepa_wm.sim.franka.scene import NEUTRAL_ARM

SMALL = SimConfig(image_size=64, low_poly=True)


@pytest.fixture(scope="module")
def env():
    environment = FrankaEnv(SMALL, task="reach")
    yield environment
    environment.close()


def _actions(seed: int, count: int) -> list[np.ndarray]:
    """Random moves that also reach down to the objects and close the gripper (contacts happen)."""
    rng = np.random.default_rng(seed)
    actions = [np.r_[rng.uniform(-0.04, 0.04, 3), rng.uniform(-0.06, 0.06, 3), rng.uniform(-0.5, 0.5)] for _ in range(count)]
    for index in (2, 3, 4):
        actions[index][2] = -0.09
    return actions


def _rollout(env: FrankaEnv, seed: int, actions) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    states, images = [obs["agent_pos"]], [obs["pixels"]]
    for action in actions:
        obs, *_ = env.step(action)
        states.append(obs["agent_pos"])
        images.append(obs["pixels"])
    return np.array(states), np.array(images)


def test_same_seed_and_actions_give_identical_states_and_images():
    actions = _actions(0, 8)
    first = FrankaEnv(SMALL, task="grasp")
    second = FrankaEnv(SMALL, task="grasp")
    try:
        states_a, images_a = _rollout(first, 3, actions)
        _rollout(second, 9, _actions(1, 8))  # a different history must not leak into the next episode
        states_b, images_b = _rollout(second, 3, actions)
        states_c, _ = _rollout(first, 3, actions)
        assert np.array_equal(states_a, states_b) and np.array_equal(images_a, images_b)
        assert np.array_equal(states_a, states_c)
        states_d, images_d = _rollout(first, 4, actions)
        assert not np.array_equal(states_a[0], states_d[0]) and not np.array_equal(images_a[0], images_d[0])
    finally:
        first.close()
        second.close()


def test_achieved_delta_matches_commanded_delta(env):
    """Random free-space moves: the measured state change equals the commanded action to ~1 mm."""
    rng = np.random.default_rng(7)
    position_errors, rotation_errors, gripper_errors = [], [], []
    env.reset(seed=1)
    for step in range(40):
        state = env.state()
        if not (0.38 < state[0] < 0.62 and abs(state[1]) < 0.18 and 0.12 < state[2] < 0.30) or step % 10 == 0:
            env.reset(seed=100 + step)
            state = env.state()
        action = np.r_[rng.uniform(-0.05, 0.05, 3), rng.uniform(-0.12, 0.12, 3), rng.uniform(-0.4, 0.4)]
        action[6] = np.clip(state[6] + action[6], 0.0, 1.0) - state[6]
        env.apply(action)
        assert not env.last_report.clipped
        achieved = relative_action(state, env.state())
        position_errors.append(np.linalg.norm(achieved[:3] - action[:3]))
        rotation_errors.append(rotations.rotation_angle(
            rotations.euler_to_matrix(achieved[3:6]) @ rotations.euler_to_matrix(action[3:6]).T))
        gripper_errors.append(abs(achieved[6] - action[6]))
    assert np.median(position_errors) < 3e-4, np.median(position_errors)
    assert np.max(position_errors) < 1.5e-3, np.max(position_errors)
    assert np.max(rotation_errors) < 3e-3, np.max(rotation_errors)
    assert np.max(gripper_errors) < 0.01, np.max(gripper_errors)


def test_iterated_ik_is_sub_millimetre():
    ik = PandaIK()
    try:
        rng = np.random.default_rng(0)
        errors = []
        for _ in range(30):
            position = rng.uniform([0.35, -0.2, 0.02], [0.65, 0.2, 0.35])
            rotation = rotations.euler_to_matrix(np.array([np.pi, 0.0, 0.0]) + rng.uniform(-0.3, 0.3, 3))
            result = ik.solve(position, rotation, np.asarray(NEUTRAL_ARM))
            reached, reached_rotation = ik.forward(result.arm)
            assert np.all(result.arm >= ik.lower[:7]) and np.all(result.arm <= ik.upper[:7])
            errors.append(np.linalg.norm(reached - position))
            assert rotations.rotation_angle(rotation @ reached_rotation.T) < 1e-3
        assert np.max(errors) < 1e-4, np.max(errors)
    finally:
        ik.close()


def test_safety_limits_clip_large_commands(env):
    limits = env.config.limits
    env.reset(seed=2)
    state = env.state()
    env.apply(np.array([0.5, 0.0, 0.0, 0, 0, 0, 0]))
    report = env.last_report
    assert report.clipped and np.linalg.norm(report.applied[:3]) == pytest.approx(limits.max_translation, abs=1e-9)
    moved = env.state()[:3] - state[:3]
    assert np.linalg.norm(moved) == pytest.approx(limits.max_translation, abs=2e-3)

    env.apply(np.array([0, 0, 0, 1.2, 0.0, 0.0, 0]))  # a 69 degree tilt, limited in angle and in tilt
    report = env.last_report
    assert report.clipped
    assert rotations.rotation_angle(rotations.euler_to_matrix(report.applied[3:6])) <= limits.max_rotation + 1e-6
    assert tilt(rotations.euler_to_matrix(env.state()[3:6])) <= limits.max_tilt + 5e-3

    for _ in range(4):  # pushing down into the table stops at the workspace floor
        env.apply(np.array([0, 0, -0.1, 0, 0, 0, 0]))
    assert env.state()[2] >= limits.workspace_low[2] - 2e-3


@pytest.mark.parametrize("bad", [np.full(7, np.nan), np.r_[np.zeros(6), np.inf], np.zeros(6), np.zeros((1, 7)), "left", None])
def test_bad_actions_are_rejected_and_not_executed(env, bad):
    env.reset(seed=0)
    before, clock = env.state(), env.now()
    with pytest.raises(ValueError):
        env.apply(bad)
    with pytest.raises(ValueError):
        env.step(bad)
    assert np.array_equal(env.state(), before) and env.now() == clock


def test_robot_protocol(env):
    assert isinstance(env, Robot)
    env.reset(seed=0)
    observation = env.observe()
    assert isinstance(observation, Observation)
    assert observation.image.dtype == np.uint8 and observation.image.shape == (64, 64, 3)
    assert observation.state.shape == (7,) and observation.stamp == 0.0
    env.apply(np.array([0.03, 0, 0, 0, 0, 0, 0]))
    stamp = env.observe().stamp
    rows = round(stamp * CONTROL_HZ)
    assert stamp == env.now() and env.config.rows_per_action <= rows <= env.config.rows_per_action + env.config.max_settle_rows
    assert not np.array_equal(env.observe().image, observation.image)
    env.hold()
    held = env.state()
    env.apply(np.zeros(7))
    assert np.linalg.norm(env.state()[:3] - held[:3]) < 5e-4


def test_gymnasium_api():
    from gymnasium.utils.env_checker import check_env

    import vjepa_wm.sim.franka  # noqa: F401  (registers the ids)

    environment = gymnasium.make("vjepa_wm/FrankaPickAndPlace-v0", config=SMALL, target_object="box")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(environment.unwrapped)
        obs, info = environment.reset(seed=5)
        assert environment.observation_space.contains(obs)
        assert info["goal_image"].shape == (64, 64, 3) and len(info["subgoal_images"]) == 6 and info["is_success"] is False
        assert environment.spec.max_episode_steps == 50 and environment.render().shape == (64, 64, 3)
        _, reward, terminated, truncated, info = environment.step(environment.action_space.sample())
        assert reward == 0.0 and terminated is False and truncated is False and "is_success" in info
    finally:
        environment.close()


def test_episode_truncates_after_max_steps():
    environment = FrankaEnv(SMALL, task="reach", max_episode_steps=2)
    try:
        environment.reset(seed=0)
        assert environment.step(np.zeros(7))[3] is False
        assert environment.step(np.zeros(7))[3] is True
    finally:
        environment.close()


def test_low_poly_model_is_generated_outside_the_repository(env):
    path = Path(panda_urdf(low_poly=True))
    repository = Path(__file__).resolve().parents[1]
    assert path.is_file() and repository not in path.parents
    text = path.read_text()
    assert "meshes/visual" not in text and "package://" not in text
    assert "meshes/visual" in Path(panda_urdf(low_poly=False)).read_text()


def test_full_and_low_poly_renders_differ_and_wrist_camera_works():
    full = FrankaEnv(SimConfig(image_size=64, low_poly=False, wrist_camera=True))
    low = FrankaEnv(SimConfig(image_size=64, low_poly=True, wrist_camera=True))
    try:
        full.reset(seed=0)
        low.reset(seed=0)
        exterior_full, exterior_low = full.observe().image, low.observe().image
        assert exterior_full.std() > 10 and np.abs(exterior_full.astype(int) - exterior_low).mean() > 1
        wrist = low.cameras.wrist()
        assert wrist.shape == (64, 64, 3) and wrist.std() > 10 and not np.array_equal(wrist, exterior_low)
    finally:
        full.close()
        low.close()


def test_config_errors_are_one_line():
    with pytest.raises(ValueError, match="image_size"):
        SimConfig(image_size=4)
    with pytest.raises(ValueError, match="renderer"):
        SimConfig(renderer="vulkan")
    with pytest.raises(ValueError, match="unknown task"):
        FrankaEnv(SMALL, task="juggle")
