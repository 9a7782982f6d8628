"""The planning objective, written once: the mean L1 distance between imagined and goal latents.

Computed in float32 whatever the latents' dtype (bf16 rollouts on a GPU), one value per row.
"""
from __future__ import annotations

from typing import Callable

import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def energy(z: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
    """Mean |z - z_goal| over tokens and features: ``[B, ...]`` -> ``[B]`` (the goal broadcasts)."""
    return (z.float() - z_goal.float()).abs().flatten(1).mean(1)


def rollout_energy(world_model, z: torch.Tensor, state: torch.Tensor, z_goal: torch.Tensor, cache=None) -> ScoreFn:
    """The CEM objective: candidate actions ``[S, H, A]`` -> the energy ``[S]`` of the last latent
    each sequence leads to from the current latent `z` and `state` (`cache`: earlier steps, if any)."""

    def score(actions: torch.Tensor) -> torch.Tensor:
        latents = world_model.rollout(z, state, actions, cache=cache.expand(actions.shape[0]) if cache else None).latents
        return energy(latents[:, -1], z_goal)

    return score
