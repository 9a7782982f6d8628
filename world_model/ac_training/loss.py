"""The V-JEPA 2-AC training objective: teacher forcing plus an autoregressive rollout term."""
from __future__ import annotations

from typing import NamedTuple

import torch

from vjepa_wm.world_model.ac_predictor import ACPredictor
from vjepa_wm.world_model.world_model import normalize_latents


class ACLoss(NamedTuple):
    total: torch.Tensor
    teacher_forcing: torch.Tensor
    rollout: torch.Tensor


def ac_loss(predictor: ACPredictor, z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor, rollout_steps: int = 2,
            rollout_context: int = 1) -> ACLoss:
    """Loss for a clip of T frames, as the official V-JEPA 2-AC training computes it.

    ``z`` ``[B, T*N, D]`` layer-normed latents, ``actions`` ``[B, T-1, A]``, ``states`` ``[B, T, A]`` (the
    predictor's `action_dim`; V-JEPA 2-AC states and actions have the same width).

    * Teacher forcing: frames 0..T-2 with their actions and states predict frames 1..T-1 (L1 mean).
    * Rollout: starting from the `rollout_context` real frames [z_0 .. z_{c-1}] and the teacher-forced
      prediction of z_c, the predictor is run on its own outputs with ground-truth states until
      `rollout_steps` frames are predicted; L1 of [z^_c .. z^_{c+k-1}] against [z_c .. z_{c+k-1}].
      Nothing is detached, so gradients flow through z^_c into both terms. The total is the
      unweighted sum. The published objective starts from one frame (c = 1); a planner that looks at
      several frames before it imagines (NWM's 4 context frames) trains the rollout it will run
      with c = its context.
    """
    n, width = predictor.config.tokens_per_frame, predictor.config.action_dim
    steps = z.shape[1] // n
    if steps < 2:
        raise ValueError("a clip needs at least 2 frames")
    if actions.shape[1:] != (steps - 1, width) or states.shape[1:] != (steps, width):
        raise ValueError(f"for {steps} frames expect actions [B, {steps - 1}, {width}] and states [B, {steps}, {width}], "
                         f"got {tuple(actions.shape)} and {tuple(states.shape)}")
    if not 1 <= rollout_context <= steps - 1:
        raise ValueError(f"rollout_context must be in [1, {steps - 1}] for {steps}-frame clips")
    if not 0 <= rollout_steps <= steps - rollout_context:
        raise ValueError(f"rollout_steps must be in [0, {steps - rollout_context}] for {steps}-frame clips "
                         f"and {rollout_context} context frames")
    teacher = normalize_latents(predictor(z[:, :-n], actions, states[:, :-1]))
    teacher_loss = (teacher - z[:, n:]).abs().mean()
    if rollout_steps == 0:
        rollout_loss = teacher_loss.new_zeros(())
    else:
        real = rollout_context * n
        context = torch.cat([z[:, :real], teacher[:, real - n : real]], dim=1)
        for step in range(rollout_context, rollout_context + rollout_steps - 1):
            following = normalize_latents(predictor(context, actions[:, : step + 1], states[:, : step + 1]))[:, -n:]
            context = torch.cat([context, following], dim=1)
        imagined = context[:, real:]
        rollout_loss = (imagined - z[:, real : real + imagined.shape[1]]).abs().mean()
    return ACLoss(teacher_loss + rollout_loss, teacher_loss, rollout_loss)
