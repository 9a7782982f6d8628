"""Fakes for the planner tests: a latent world whose optimum is known in closed form, and a
kinematic arm (the arm itself is the only hardware faked; it speaks the `Robot` contract)."""
from __future__ import annotations

import numpy as np
import torch

from vjepa_wm.embodiments import Franka, Observation
from vjepa_wm.embodiments.franka import integrate
from vjepa_wm.world_model.world_model import Rollout

FRANKA = Franka()  # the published box: 5 cm per axis, gripper 0.75 per step

TOKENS, WIDTH = 4, 8


class LinearLatentWorld:
    """Latents are a fixed random linear function of (x, y, z, gripper); images encode the state.

    Its energy to a goal latent is minimal exactly when the imagined state equals the goal state, so
    the optimum of any search is known in closed form.
    """

    def __init__(self, seed=0, nan_energy=False):
        g = torch.Generator().manual_seed(seed)
        self.weights = torch.randn(4, TOKENS * WIDTH, generator=g)
        self.nan_energy = nan_energy

    def latent(self, states: torch.Tensor) -> torch.Tensor:
        features = torch.cat([states[..., :3] * 10, states[..., 6:7]], -1)
        z = (features @ self.weights).view(*states.shape[:-1], TOKENS, WIDTH)
        return z * float("nan") if self.nan_energy else z

    def rollout(self, z, state, actions, cache=None):
        states = [state.expand(actions.shape[0], -1)]
        for t in range(actions.shape[1]):
            states.append(integrate(states[-1], actions[:, t]))
        states = torch.stack(states, 1)
        return Rollout(self.latent(states[:, 1:]), states)

    # MPC side: images carry the state (16 bits per coordinate), the "encoder" reads it back.
    @staticmethod
    def image_of(state: np.ndarray) -> np.ndarray:
        image = np.zeros((2, 7, 3), dtype=np.uint8)
        code = np.round((np.asarray(state) + 2.0) / 4.0 * 65535).astype(np.int64)
        image[0, :, 0], image[1, :, 0] = code // 256, code % 256
        return image

    def encode_images(self, image):
        image = np.asarray(image).astype(np.int64)
        state = (image[0, :, 0] * 256 + image[1, :, 0]) / 65535 * 4.0 - 2.0
        return self.latent(torch.tensor(state, dtype=torch.float32)[None])



START = torch.tensor([[0.5, 0.0, 0.3, 3.0, 0.0, 0.0, 0.0]])


class FakeArm:
    """A kinematic arm for the MPC tests: applies actions exactly, stamps observations with its clock."""

    def __init__(self, world, state, stale_after=None):
        self.world, self.state = world, np.asarray(state, dtype=np.float64)
        self.time, self.applied, self.holds, self.stale_after = 0.0, [], 0, stale_after

    def now(self):
        return self.time

    def observe(self):
        stamp = self.time if self.stale_after is None or len(self.applied) < self.stale_after else self.time - 5.0
        return Observation(self.world.image_of(np.nan_to_num(self.state)), self.state.copy(), stamp)

    def apply(self, action):
        self.applied.append(np.asarray(action))
        self.state = integrate(self.state, np.asarray(action, dtype=np.float64))
        self.time += 0.25

    def hold(self):
        self.holds += 1
