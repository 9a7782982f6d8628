"""The car planner's two modes: NWM's straight-line candidates (published formulas) and free steps."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vjepa_wm.embodiments import Car
from vjepa_wm.planner.cem import CEMConfig
from vjepa_wm.planner.energy import energy
from vjepa_wm.planner.nav_candidates import StraightLineConfig, StraightLines, car_cem

CAR = Car()  # TartanDrive: 0.72 m waypoints, NWM's action range as the step box


def published(nx, ny, s, horizon=8):
    """NWM planning_eval.generate_actions, written out: repeat the unnormalised step, heading from
    atan2 on the first step, + s*pi on the last; positions are the cumsum, yaw the sum."""
    dx, dy = (nx + 1) / 2 * (5 - -2.5) + -2.5, (ny + 1) / 2 * (4 - -4) + -4
    positions = np.array([[k * dx, k * dy] for k in range(1, horizon + 1)])
    dyaw = [math.atan2(dy, dx)] + [0.0] * (horizon - 1)
    dyaw[-1] += s * math.pi
    return positions, np.cumsum(dyaw)


def params(*rows):
    return torch.tensor(rows, dtype=torch.float64)[:, None, :]


def test_straight_lines_reproduce_the_published_formulas():
    lines = StraightLines(CAR, 8)
    samples = [(0.5, 0.0, 0.0), (0.3, -0.2, 0.4), (-0.5, 0.6, -0.7), (0.1, 0.4, 1.0), (-1 / 3, 0.0, 0.25)]
    poses = lines.poses(params(*samples))
    for pose, sample in zip(poses.numpy(), samples):
        positions, yaw = published(*sample)
        assert np.allclose(pose[:, :2], positions, atol=1e-9) and np.allclose(pose[:, 2], yaw, atol=1e-9)
    # The Car actions they expand to drive exactly through those poses (positions in metres).
    driven = CAR.rollout(torch.zeros(len(samples), 3, dtype=torch.float64), lines.expand(params(*samples)))[:, 1:]
    assert np.allclose(driven[..., :2].numpy() / 0.72, poses[..., :2].numpy(), atol=1e-9)
    assert torch.allclose(torch.cos(driven[..., 2] - poses[..., 2]), torch.ones((), dtype=torch.float64), atol=1e-9)
    # NWM's TartanDrive initial mean: 3.125 waypoints (2.25 m) straight ahead per step.
    assert StraightLineConfig().mean == (0.5, 0.0, 0.0) and StraightLineConfig().std == (0.07, 0.1, 0.1)
    actions = lines.expand(params((0.5, 0.0, 0.0)))[0]
    assert torch.allclose(actions, torch.tensor([[3.125, 0.0, 0.0]] * 8, dtype=torch.float64))


def test_a_line_longer_than_the_step_box_is_shortened_along_itself():
    lines = StraightLines(CAR, 8)
    actions = lines.expand(params((1.0, 1.0, 1.0), (-1.0, -1.0, -1.0), (1.0, -1.0, 0.0)))
    low, high = torch.tensor(CAR.action_low, dtype=torch.float64), torch.tensor(CAR.action_high, dtype=torch.float64)
    assert torch.all(actions >= low) and torch.all(actions <= high)
    poses = lines.poses(params((1.0, 1.0, 1.0)))[0]
    assert torch.allclose(poses[:, 1] / poses[:, 0], torch.full((8,), 4 / 5, dtype=torch.float64))  # same direction
    assert math.isclose(float(poses[0, :2].norm()), 5.0, rel_tol=1e-9)  # as long as max_forward allows
    narrow = Car(max_forward=2.0, max_lateral=1.0, max_backward=0.5, max_yaw=1.0)
    actions = StraightLines(narrow, 4).expand(params((0.9, 0.8, 0.9), (-1.0, -0.5, -0.9)))
    low, high = torch.tensor(narrow.action_low, dtype=torch.float64), torch.tensor(narrow.action_high, dtype=torch.float64)
    assert torch.all(actions >= low - 1e-12) and torch.all(actions <= high + 1e-12)


class PoseWorld:
    """Latents linear in (x, y, cos yaw, sin yaw) of the pose the actions reach: the minimum is known."""

    def __init__(self, car: Car, seed=0):
        self.car = car
        self.weights = torch.randn(4, 32, generator=torch.Generator().manual_seed(seed))

    def latent(self, poses):
        features = torch.stack([poses[..., 0], poses[..., 1], poses[..., 2].cos(), poses[..., 2].sin()], -1)
        return (features.float() @ self.weights).view(*poses.shape[:-1], 4, 8)

    def score(self, goal_pose, seen=None):
        z_goal = self.latent(torch.as_tensor(goal_pose, dtype=torch.float32)[None])

        def score(actions):
            if seen is not None:
                seen.append(actions.clone())
            final = self.car.rollout(torch.zeros(actions.shape[0], 3), actions)[:, -1]
            return energy(self.latent(final), z_goal)

        return score


def test_nwm_mode_finds_the_straight_line_to_a_known_goal():
    world = PoseWorld(CAR)
    target = params((0.6, 0.1, 0.2)).float()
    goal = CAR.rollout(torch.zeros(1, 3), StraightLines(CAR, 8).expand(target))[0, -1]
    config = CEMConfig(samples=200, iterations=10, elites=10, horizon=8, momentum_mean=0.0, momentum_std=0.0, seed=1)
    seen = []
    cem = car_cem("nwm", config, CAR)
    plan = cem.search(world.score(goal, seen))
    assert plan.mean.shape == (1, 3) and plan.actions.shape == (8, 3)
    assert torch.allclose(plan.mean[0], target[0, 0], atol=0.02)
    reached = CAR.rollout(torch.zeros(3), plan.actions)[-1]
    assert torch.norm(reached[:2] - goal[:2]) < 0.1 and plan.elite_energies[-1] < plan.elite_energies[0]
    scored = torch.cat(seen)
    assert torch.all(scored >= torch.tensor(CAR.action_low) - 1e-6) and torch.all(scored <= torch.tensor(CAR.action_high) + 1e-6)
    # Seeded; a warm start continues the same line.
    again = car_cem("nwm", config, CAR).search(world.score(goal))
    assert torch.equal(again.actions, plan.actions)
    warm = car_cem("nwm", config, CAR).search(world.score(goal), plan.shifted())
    assert torch.allclose(warm.mean, plan.mean, atol=0.02)


def test_free_mode_finds_a_known_goal_with_per_step_actions():
    world = PoseWorld(CAR)
    goal = CAR.rollout(torch.zeros(3), torch.tensor([[2.0, 0.5, 0.3], [1.5, -0.5, -0.2]]))[-1]
    plan = car_cem("free", CEMConfig(samples=400, iterations=12, elites=20, horizon=2), CAR).search(world.score(goal))
    reached = CAR.rollout(torch.zeros(3), plan.actions)[-1]
    assert plan.mean.shape == (2, 3)
    assert torch.norm(reached[:2] - goal[:2]) < 0.1 and abs(float(reached[2] - goal[2])) < 0.1


def test_nwm_mode_refuses_settings_it_cannot_honour():
    with pytest.raises(ValueError, match="cem.pinned"):
        car_cem("nwm", CEMConfig(horizon=8, pinned={2: 0.0}), CAR)
    with pytest.raises(ValueError, match="unknown name 'dgripper'"):
        car_cem("nwm", CEMConfig(horizon=8, momentum_overrides={"dgripper": [0.1, 0.1]}), CAR)
    with pytest.raises(ValueError, match="mode must be nwm or free"):
        car_cem("straight", CEMConfig(), CAR)
    with pytest.raises(ValueError, match="lines.mean"):
        StraightLineConfig(mean=(2.0, 0.0, 0.0))
    cem = car_cem("nwm", CEMConfig(horizon=8, samples=8, elites=2, iterations=1), CAR)
    with pytest.raises(ValueError, match="warm start of shape"):
        cem.search(PoseWorld(CAR).score([1.0, 0.0, 0.0]), car_cem("free", CEMConfig(horizon=8, samples=8, elites=2), CAR)
                   .search(PoseWorld(CAR).score([1.0, 0.0, 0.0])))
