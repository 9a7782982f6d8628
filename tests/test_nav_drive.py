"""nav-drive: seeded, reachable episodes in the sim car; the closed loop reaching the goal with a
world whose latent is the car's pose; the command line writing its table as JSON."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_wm.cli import main
from vjepa_wm.embodiments import Car, Observation
from vjepa_wm.evaluation.nav import relative_poses
from vjepa_wm.evaluation.nav_drive import METHODS, ContextModel, EgocentricCar, NavDriveConfig, arc_toward, evaluate
from vjepa_wm.planner.cem import CEMConfig
from vjepa_wm.sim.driving.config import CameraConfig, DrivingConfig, TerrainConfig
from vjepa_wm.sim.driving.env import DrivingEnv
from vjepa_wm.sim.driving.episodes import NavEpisodeConfig, draw_episode, restart
from vjepa_wm.world_model.ac_predictor import ACPredictor, ac_predictor_config
from vjepa_wm.world_model.checkpoints import save_world_model
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config
from vjepa_wm.world_model.world_model import Rollout, WorldModel

# A small open world (no obstacles in the way of the test's drives) and tiny frames: fast physics and rendering.
TERRAIN = TerrainConfig(size=40.0, grid=33, texture_size=64, rocks=0, trees=0, grass_patches=0, clear_radius=6.0)
EPISODE = NavEpisodeConfig(goal_steps=6)


@pytest.fixture(scope="module")
def env():
    env = DrivingEnv(DrivingConfig(terrain=TERRAIN, camera=CameraConfig(width=32, height=24)))
    yield env
    env.close()


def test_episodes_are_seeded_and_their_goals_reachable(env):
    first, again, other = (draw_episode(env, seed, EPISODE, 4) for seed in (3, 3, 4))
    assert np.array_equal(first.goal, again.goal) and np.array_equal(first.goal_image, again.goal_image)
    assert np.array_equal(first.start, again.start)
    assert np.linalg.norm(first.goal[:2] - other.goal[:2]) > 1.0
    spacing = env.embodiment.waypoint_spacing
    assert np.linalg.norm(first.goal[:2] - first.start[:2]) / spacing >= EPISODE.min_distance
    # Restarting gives the same context frames and start; the goal drive, replayed, ends at the goal and sees its image.
    context = restart(env, first)
    assert len(context) == 4 and np.allclose(context[-1].state, first.start)
    assert len({o.stamp for o in context}) == 4
    for action in first.goal_actions:
        env.apply(action)
    assert np.allclose(env.state(), first.goal) and np.array_equal(env.observe().image, first.goal_image)


def test_the_oracles_arc_passes_through_the_point():
    car = Car(waypoint_spacing=1.0)
    for ahead, left in ((5.0, 0.0), (3.0, 2.0), (2.0, -3.0), (-1.0, 2.0)):
        pose = np.zeros(3)
        for _ in range(30):  # half the arc left each step: the point is approached along one circle
            here = np.array([ahead, left]) - pose[:2]
            c, s = np.cos(pose[2]), np.sin(pose[2])
            local = (c * here[0] + s * here[1], -s * here[0] + c * here[1])
            pose = car.integrate(pose, arc_toward(*local, most=10.0, stop=1e-3))
        assert np.linalg.norm(pose[:2] - (ahead, left)) < 2e-3


# ---------------------------------------------------------------------------- the closed loop


class PoseWorld:
    """A car world model whose latent is a fixed random linear function of the car's pose.

    Its encoder reads the pose of the view it is shown from a table that the sim's observations
    fill (the fake's only knowledge of the sim); its rollout integrates the actions as the sim's
    pure pursuit drives them (to the position, with the arc's heading). The energy to a goal latent
    is then zero exactly at the goal pose.
    """

    embodiment = Car()
    tokens_per_frame = 4

    def __init__(self, seen: dict):
        self.seen, self.histories = seen, []
        self.weights = torch.randn(4, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def latent(self, pose: torch.Tensor) -> torch.Tensor:
        # Heading weighs little: a car reaches a position, the heading is the arc's.
        features = torch.stack([pose[..., 0], pose[..., 1], 0.2 * pose[..., 2].cos(), 0.2 * pose[..., 2].sin()], -1)
        return (features @ self.weights).view(*pose.shape[:-1], 4, 8).float()

    def encode_images(self, images):
        images = np.asarray(images)
        images = images[None] if images.ndim == 3 else images
        poses = torch.tensor(np.stack([self.seen[image.tobytes()] for image in images]))
        return self.latent(poses).reshape(1, -1, 8)

    def observe_history(self, z, actions, states):
        self.histories.append((z.shape, actions.clone(), states.clone()))
        return self  # a cache: `expand` gives it back

    def expand(self, batch):
        return self

    def rollout(self, z, state, actions, cache=None):
        features = z.reshape(-1, 32).double() @ torch.linalg.pinv(self.weights)
        pose = torch.stack([features[:, 0], features[:, 1], torch.atan2(features[:, 3], features[:, 2])], -1)
        poses = [pose.expand(actions.shape[0], -1)]
        for t in range(actions.shape[1]):
            step = actions[:, t].double().clone()
            step[:, 2] = 2 * torch.atan2(step[:, 1], step[:, 0].abs().clamp_min(1e-9)) * step[:, 0].sign()
            poses.append(self.embodiment.integrate(poses[-1], step))
        poses = torch.stack(poses, 1)
        return Rollout(self.latent(poses[:, 1:]), poses)


def small(**changes) -> NavDriveConfig:
    settings = dict(model="unused", episodes=2, seed=0, width=32, height=24, terrain=TERRAIN, episode=EPISODE)
    return NavDriveConfig(**{**settings, **changes})


def test_the_closed_loop_reaches_the_goal_in_a_world_of_poses(tmp_path, monkeypatch):
    seen = {}
    observe = DrivingEnv.observe

    def remembering(self):
        obs = observe(self)
        seen[obs.image.tobytes()] = np.asarray(obs.state, dtype=np.float64)
        return obs

    monkeypatch.setattr(DrivingEnv, "observe", remembering)
    world = PoseWorld(seen)
    report = evaluate(world, small(max_steps=14, episode=NavEpisodeConfig(goal_steps=4), video=str(tmp_path / "video")), progress=False)
    table = {r["method"]: r for r in report["table"]}
    assert list(table) == list(METHODS) and all(r["episodes"] == 2 for r in table.values())
    assert table["model"]["success_rate"] == 1.0 and table["model"]["seconds_per_plan"] > 0
    assert table["oracle"]["success_rate"] == 1.0 and table["constant_velocity"]["seconds_per_plan"] is None
    for episode in report["episodes"]:
        model = episode["figures"]["model"]
        assert model["min_distance_wu"] <= 1.0 and model["steps_to_goal"] <= model["steps"] == 14
        assert episode["goal_distance_wu"] >= EPISODE.min_distance
        for name in ("plot", "video"):
            assert Path(episode[name]).parent == tmp_path / "video" and Path(episode[name]).stat().st_size > 1000
    # The planner saw its 4-frame context: 3 history frames, the lead-in's steps between them,
    # poses seen from the pose now (the last history state is one lead-in step behind it).
    shape, actions, states = world.histories[0]
    assert shape == (1, 3 * 4, 8) and actions.shape == (1, 3, 3) and states.shape == (1, 3, 3)
    assert torch.all(actions[0, :, 0] > 0.1) and torch.all(actions[0, :, 0] < 1.3) and torch.all(states[0, :, 0] < 0)
    # Every episode starts where its lead-in ends, for every method.
    for episode in report["episodes"]:
        starts = [np.asarray(path[0]) for path in episode["paths"].values()]
        assert all(np.allclose(s, episode["start"]) for s in starts)


# ---------------------------------------------------------------------------- the command line


def car_model() -> WorldModel:
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config("micro", "2.1"))
    predictor = ACPredictor(ac_predictor_config("micro", 96, img_size=32, action_dim=3))
    return WorldModel(encoder, predictor, 32, Car()).eval()


def test_a_first_plan_started_on_constant_velocity_with_no_spread_drives_it():
    """No spread and nothing to refit: --start context_velocity's first step is the lead-in's last one,
    so the model's first step lands where constant velocity's does (the physics is deterministic)."""
    config = small(episodes=1, max_steps=1, mode="free", start="context_velocity", context_std=(0, 0, 0),
                   car=Car(init_std=(0, 0, 0)), cem=CEMConfig(samples=4, elites=2, iterations=1, horizon=8))
    report = evaluate(car_model(), config, progress=False)
    assert report["start"] == "context_velocity"
    (episode,) = report["episodes"]
    paths = {m: np.asarray(p) for m, p in episode["paths"].items()}
    assert np.allclose(paths["model"][1], paths["constant_velocity"][1], atol=1e-6)
    prior = evaluate(car_model(), replace(config, start="prior"), progress=False)["episodes"][0]
    assert not np.allclose(np.asarray(prior["paths"]["model"])[1], paths["constant_velocity"][1], atol=1e-2)


def test_the_command_writes_the_table_as_json(tmp_path, capsys):
    model_dir = save_world_model(car_model(), tmp_path / "model")
    out = tmp_path / "drive.json"
    flags = ["--terrain.size", "40", "--terrain.grid", "33", "--terrain.texture-size", "64", "--terrain.rocks", "0",
             "--terrain.trees", "0", "--terrain.grass-patches", "0", "--width", "32", "--height", "24"]
    assert main(["nav-drive", "--model", str(model_dir), "--episodes", "1", "--seed", "5", "--max-steps", "2",
                 "--episode.goal-steps", "3", "--episode.min-distance", "1", "--cem.samples", "8", "--cem.elites", "2",
                 "--json", str(out), *flags]) == 0
    printed = capsys.readouterr().out
    assert all(m in printed for m in METHODS) and "success_rate" in printed
    report = json.loads(out.read_text())
    assert report["samples"] == 8 and report["horizon"] == 8 and report["context"] == 4 and report["max_steps"] == 2
    assert report["waypoint_spacing"] == pytest.approx(0.72) and report["success_radius_wu"] == 1.0
    assert [r["method"] for r in report["table"]] == list(METHODS)
    (episode,) = report["episodes"]
    assert episode["seed"] == 5 and len(episode["paths"]["model"]) == 3
    assert report["table"][0]["seconds_per_plan"] > 0 and np.isfinite(episode["figures"]["model"]["final_distance_wu"])


def test_the_planner_sees_its_context_as_nav_replay_does():
    """The history cache of the closed loop is nav-replay's: the earlier frames, the car's steps
    between them and the poses seen from now, run once; imagined latents agree (RoPE folding included)."""
    model = car_model()
    car = Car()
    poses = car.rollout(np.array([3.0, -2.0, 0.5]), np.array([[1.0, 0.1, 0.05], [1.2, 0.0, -0.1], [0.9, -0.2, 0.0]]))
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    seen = [Observation(f, p, float(i)) for i, (f, p) in enumerate(zip(frames, poses))]

    class Parked:  # a car that stands where the context ended
        def observe(self):
            return seen[-1]

        def state(self):
            return poses[-1]

    robot = EgocentricCar(Parked(), 4, seen)
    view = ContextModel(model, robot, car, torch.device("cpu"), 8)
    now = robot.observe()
    assert np.array_equal(now.state, np.zeros(3)) and len(robot.history) == 4  # the same instant is not kept twice
    actions = torch.randn(5, 8, 3, generator=torch.Generator().manual_seed(0)) * 0.5
    ours = view.rollout(view.encode_images(now.image), torch.zeros(1, 3), actions).latents
    n = model.tokens_per_frame
    z = model.encode_images(frames)
    states = torch.as_tensor(relative_poses(poses, poses[-1]), dtype=torch.float32)
    cache = model.observe_history(z[:, :-n], car.deltas(states)[None], states[None, :-1])
    reference = model.rollout(z[:, -n:], states[-1:], actions, cache=cache.expand(5)).latents
    assert torch.allclose(ours, reference, atol=1e-4)
    assert torch.allclose(states[-1], torch.zeros(3), atol=1e-6)


def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("vjepa_wm.sim_model.BUNDLED_NAV_MODEL", tmp_path / "not_installed")
    assert main(["nav-drive", "--episodes", "1"]) == 2
    assert "--model is required (this install has no bundled navigation model)" in capsys.readouterr().err
    assert main(["nav-drive", "--model", str(tmp_path / "none")]) == 2
    assert "not a world model directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="episode.speed"):
        NavEpisodeConfig(speed=(2.0, 1.0))
    with pytest.raises(ValueError, match="success_radius"):
        small(success_radius=0.0)
