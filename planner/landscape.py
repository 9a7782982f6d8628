"""The energy landscape over a grid of translation actions around the current pose (one predictor
step), as in the published energy-landscape notebook: where the model thinks the goal lies."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vjepa_wm.embodiments import Embodiment

from .energy import energy


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
def energy_landscape(world_model, embodiment: Embodiment, z, state, z_goal, radius: float = 0.075, points: int = 5,
                     batch: int = 256) -> Landscape:
    """Energy of every step on a ``points^3`` grid in ``[-radius, radius]^3`` over the embodiment's
    three translation dimensions (the other action dimensions 0)."""
    dims = list(embodiment.translation)
    if len(dims) != 3:
        raise ValueError(f"an xyz landscape needs three translation dimensions; {embodiment.name} has {len(dims)}")
    offsets = torch.linspace(-radius, radius, points)
    grid = torch.stack(torch.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3)
    actions = torch.zeros(grid.shape[0], 1, embodiment.action_dim, device=z.device)
    actions[:, 0, dims] = grid.to(z.device)
    energies = []
    for start in range(0, actions.shape[0], batch):
        latents = world_model.rollout(z, state, actions[start : start + batch]).latents
        energies.append(energy(latents[:, -1], z_goal).cpu())
    return Landscape(offsets, torch.cat(energies).view(points, points, points))
