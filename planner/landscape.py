"""The energy landscape over a grid of xyz actions around the current pose (one predictor step),
as in the published energy-landscape notebook: where the model thinks the goal lies."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Landscape:
    offsets: torch.Tensor  # [P] metres, the same along x, y and z
    energies: torch.Tensor  # [P, P, P] indexed (dx, dy, dz)

    def argmin(self) -> tuple[float, float, float]:
        flat = int(torch.argmin(self.energies))
        p = len(self.offsets)
        i, j, k = flat // (p * p), (flat // p) % p, flat % p
        return float(self.offsets[i]), float(self.offsets[j]), float(self.offsets[k])


@torch.no_grad()
def energy_landscape(world_model, z, state, z_goal, radius: float = 0.075, points: int = 5, batch: int = 256) -> Landscape:
    """Energy of every xyz delta on a ``points^3`` grid in ``[-radius, radius]^3`` (rotation and gripper 0)."""
    offsets = torch.linspace(-radius, radius, points)
    grid = torch.stack(torch.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3)
    actions = torch.zeros(grid.shape[0], 1, 7, device=z.device)
    actions[:, 0, :3] = grid.to(z.device)
    energies = []
    for start in range(0, actions.shape[0], batch):
        latents = world_model.rollout(z, state, actions[start : start + batch]).latents
        energies.append((latents[:, -1] - z_goal).abs().flatten(1).mean(1).float().cpu())
    return Landscape(offsets, torch.cat(energies).view(points, points, points))
