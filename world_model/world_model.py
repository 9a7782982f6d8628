"""`WorldModel`: a frozen encoder plus the action-conditioned predictor, as the planner uses them.

* `encode(frames)` encodes every frame on its own (V-JEPA 2 encoders see it duplicated into one
  tubelet, 2.1 encoders use their image tokenizer) and layer-normalises the tokens without affine,
  giving ``[B, T*N, D]`` latents: the V-JEPA 2-AC contract.
* `rollout(z, state, actions)` imagines the latents that a sequence of actions leads to, feeding
  each normalised prediction back in (with a KV cache, numerically the same as re-running the
  predictor on the growing trajectory) and integrating the state with the model's `Embodiment`
  (the robot whose actions it was trained on).

What the planner minimises over these latents (the energy) is the planner's; reading and writing
world models is `world_model.checkpoints`'.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vjepa_wm.embodiments import Embodiment

from .ac_predictor import ACPredictor, KVCache
from .preprocessing import DroidTransform
from .vit import VisionTransformer


def normalize_latents(z: torch.Tensor) -> torch.Tensor:
    """LayerNorm over features without affine parameters (the AC model's latent normalisation)."""
    return F.layer_norm(z, (z.shape[-1],))


@dataclass
class Rollout:
    latents: torch.Tensor  # [B, H, N, D], each frame layer-normalised
    states: torch.Tensor  # [B, H+1, S], the start state first


class WorldModel(nn.Module):
    def __init__(self, encoder: VisionTransformer, predictor: ACPredictor, img_size: int, embodiment: Embodiment):
        super().__init__()
        if predictor.config.action_dim != embodiment.action_dim or embodiment.state_dim != embodiment.action_dim:
            raise ValueError(
                f"the predictor takes {predictor.config.action_dim}-D actions and states; {embodiment.name} has "
                f"{embodiment.action_dim}-D actions and {embodiment.state_dim}-D states"
            )
        if predictor.config.embed_dim != encoder.config.embed_dim:
            raise ValueError(
                f"predictor expects {predictor.config.embed_dim}-wide latents, encoder gives {encoder.config.embed_dim}"
            )
        grid = (img_size // encoder.config.patch_size,) * 2
        if tuple(predictor.config.grid) != grid:
            raise ValueError(f"predictor grid {predictor.config.grid} does not match {img_size}-px frames ({grid})")
        self.encoder = encoder.eval().requires_grad_(False)
        self.predictor = predictor
        self.img_size = img_size
        self.embodiment = embodiment
        self.transform = DroidTransform(img_size)

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen, always
        return self

    @property
    def tokens_per_frame(self) -> int:
        return self.predictor.config.tokens_per_frame

    @property
    def device(self) -> torch.device:
        return next(self.predictor.parameters()).device

    # ------------------------------------------------------------------ encoding

    def preprocess(self, images) -> torch.Tensor:
        """uint8 RGB ``[T, H, W, 3]`` (or one image) -> normalised ``[1, 3, T, S, S]`` on the model's device."""
        return self.transform(np.asarray(images)).unsqueeze(0).to(self.device)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """Normalised video ``[B, C, T, H, W]`` -> layer-normed latents ``[B, T*N, D]``, frame by frame."""
        batch, channels, steps, height, width = frames.shape
        singles = frames.permute(0, 2, 1, 3, 4).reshape(batch * steps, channels, 1, height, width)
        outputs = [self.encoder(singles[i : i + chunk]) for i in range(0, singles.shape[0], chunk)]
        z = torch.cat(outputs).view(batch, steps * self.tokens_per_frame, -1)
        return normalize_latents(z.float())

    def encode_images(self, images) -> torch.Tensor:
        """uint8 RGB images ``[T, H, W, 3]`` -> latents ``[1, T*N, D]``."""
        return self.encode(self.preprocess(images))

    def encode_clips(self, frames) -> torch.Tensor:
        """A batch of uint8 RGB clips ``[B, T, H, W, 3]`` (numpy or tensor) -> latents ``[B, T*N, D]``."""
        videos = torch.stack([self.transform(np.asarray(clip)) for clip in frames])
        return self.encode(videos.to(self.device))

    # ------------------------------------------------------------------ prediction

    def predict(self, z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Teacher-forced next-frame latents (layer-normed) for every step of ``z`` ``[B, T*N, D]``."""
        return normalize_latents(self.predictor(z, actions, states))

    def rollout(self, z: torch.Tensor, state: torch.Tensor, actions: torch.Tensor, cache: KVCache | None = None) -> Rollout:
        """Imagine ``H`` frames from the current latent ``z`` ``[B|1, N, D]``, state ``[B|1, S]`` and
        actions ``[B, H, A]``; rows of ``z``/``state`` broadcast over the candidates.

        `cache` may hold already-processed history steps (from `observe_history`).
        """
        batch, horizon, _ = actions.shape
        n = self.tokens_per_frame
        if z.dim() != 3 or z.shape[1] != n:
            raise ValueError(f"z must be one frame of latents [B, {n}, D], got {tuple(z.shape)}")
        cache = cache or KVCache()
        z_t = z  # a batch-1 frame is embedded once for all candidates (see ACPredictor.embed)
        s_t = state.to(actions.dtype).expand(batch, -1)
        latents, states = [], [s_t]
        for step in range(horizon):
            prediction = self.predictor.forward_step(z_t, actions[:, step], s_t, cache)
            z_t = normalize_latents(prediction)
            s_t = self.embodiment.integrate(s_t, actions[:, step])
            latents.append(z_t)
            states.append(s_t)
        return Rollout(torch.stack(latents, 1), torch.stack(states, 1))

    def observe_history(self, z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> KVCache:
        """Run already-executed steps once (``z`` ``[1, T*N, D]``, actions/states ``[1, T, A]``) into a cache."""
        cache = KVCache()
        n = self.tokens_per_frame
        for step in range(actions.shape[1]):
            self.predictor.forward_step(z[:, step * n : (step + 1) * n], actions[:, step], states[:, step], cache)
        return cache
