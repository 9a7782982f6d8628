"""`WorldModel`: a frozen encoder plus the action-conditioned predictor, as the planner uses them.

* `encode(frames)` encodes every frame on its own (V-JEPA 2 encoders see it duplicated into one
  tubelet, 2.1 encoders use their image tokenizer) and layer-normalises the tokens without affine,
  giving ``[B, T*N, D]`` latents: the V-JEPA 2-AC contract.
* `rollout(z, state, actions)` imagines the latents that a sequence of actions leads to, feeding
  each normalised prediction back in (with a KV cache, numerically the same as re-running the
  predictor on the growing trajectory) and integrating the state with `planner.poses`.
* `energy(z_pred, z_goal)` is the mean L1 distance, the planner's objective.

`planner.poses` is the one module outside this room that is imported here: it is the pure pose
math of the state/action contract, a leaf shared by datasets, world_model, planner and sim.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from planner.poses import integrate
from world_model.ac_predictor import ACPredictor, ACPredictorConfig, KVCache
from world_model.checkpoints import (
    CheckpointError,
    ENCODER_KEYS,
    detect_format,
    encoder_from_official_state,
    load_strict,
    read_our_checkpoint,
    safe_torch_load,
    save_our_checkpoint,
    select_state,
    strip_prefixes,
)
from world_model.preprocessing import DroidTransform
from world_model.vit import EncoderConfig, VisionTransformer


def normalize_latents(z: torch.Tensor) -> torch.Tensor:
    """LayerNorm over features without affine parameters (the AC model's latent normalisation)."""
    return F.layer_norm(z, (z.shape[-1],))


def energy(z_pred: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
    """Mean |z_pred - z_goal| over tokens and features, one value per batch row (goal broadcasts)."""
    return (z_pred - z_goal).abs().flatten(1).mean(dim=1)


@dataclass
class Rollout:
    latents: torch.Tensor  # [B, H, N, D], each frame layer-normalised
    states: torch.Tensor  # [B, H+1, 7], the start state first


class WorldModel(nn.Module):
    def __init__(self, encoder: VisionTransformer, predictor: ACPredictor, img_size: int = 256):
        super().__init__()
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
        """Imagine ``H`` frames from the current latent ``z`` ``[B|1, N, D]``, state ``[B|1, 7]`` and
        actions ``[B, H, 7]``; rows of ``z``/``state`` broadcast over the candidates.

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
            s_t = integrate(s_t, actions[:, step])
            latents.append(z_t)
            states.append(s_t)
        return Rollout(torch.stack(latents, 1), torch.stack(states, 1))

    def observe_history(self, z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> KVCache:
        """Run already-executed steps once (``z`` ``[1, T*N, D]``, actions/states ``[1, T, 7]``) into a cache."""
        cache = KVCache()
        n = self.tokens_per_frame
        for step in range(actions.shape[1]):
            self.predictor.forward_step(z[:, step * n : (step + 1) * n], actions[:, step], states[:, step], cache)
        return cache

    @staticmethod
    def energy(z_pred: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        return energy(z_pred, z_goal)


# ---------------------------------------------------------------------------- checkpoints

AC_HEADS_BY_WIDTH = {1024: 16, 384: 6, 192: 3, 96: 3}


def infer_ac_config(state: dict[str, torch.Tensor], img_size: int, patch_size: int, source: str = "") -> ACPredictorConfig:
    try:
        width, embed_dim = state["predictor_embed.weight"].shape
        action_dim = state["action_encoder.weight"].shape[1]
        mlp_hidden = state["predictor_blocks.0.mlp.fc1.weight"].shape[0]
    except KeyError as err:
        raise CheckpointError(f"{source}: not a V-JEPA 2-AC predictor (missing {err.args[0]})") from None
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("predictor_blocks."))
    heads = AC_HEADS_BY_WIDTH.get(width, max(1, width // 64))
    grid = (img_size // patch_size, img_size // patch_size)
    return ACPredictorConfig(
        embed_dim=embed_dim, predictor_dim=width, depth=depth, num_heads=heads, mlp_hidden=mlp_hidden,
        action_dim=action_dim, grid=grid,
    )


def load_world_model(source: str | os.PathLike, img_size: int = 256) -> WorldModel:
    """Our ``world_model`` directory, or the official V-JEPA 2-AC ``.pt`` (``img_size`` is the frame
    resolution, which the published file does not record; ours records it)."""
    path = Path(source)
    if detect_format(path) == "ours":
        meta, weights = read_our_checkpoint(path, "world_model")
        try:
            encoder = VisionTransformer(EncoderConfig.from_dict(meta["config"]["encoder"]))
            predictor = ACPredictor(ACPredictorConfig.from_dict(meta["config"]["predictor"]))
            img_size = int(meta["config"]["img_size"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: bad world-model config ({err})") from None
        load_strict(encoder, {k[8:]: v for k, v in weights.items() if k.startswith("encoder.")}, f"{path} (encoder)")
        load_strict(predictor, {k[10:]: v for k, v in weights.items() if k.startswith("predictor.")}, f"{path} (predictor)")
        return WorldModel(encoder, predictor, img_size).eval()
    if path.is_dir():
        raise CheckpointError(f"{path}: a Hugging Face directory holds no action-conditioned predictor")
    checkpoint = safe_torch_load(path)
    encoder = encoder_from_official_state(select_state(checkpoint, None, ENCODER_KEYS, path, "encoder"), source=str(path))
    predictor_state = strip_prefixes(select_state(checkpoint, "predictor", (), path, "predictor"))
    predictor = ACPredictor(infer_ac_config(predictor_state, img_size, encoder.config.patch_size, str(path)))
    load_strict(predictor, predictor_state, f"{path} (predictor)")
    return WorldModel(encoder, predictor, img_size).eval()


def save_world_model(model: WorldModel, target: str | os.PathLike, overwrite: bool = False) -> Path:
    config = {
        "encoder": model.encoder.config.to_dict(),
        "predictor": model.predictor.config.to_dict(),
        "img_size": model.img_size,
    }
    state = {f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}
    state.update({f"predictor.{k}": v for k, v in model.predictor.state_dict().items()})
    return save_our_checkpoint(target, "world_model", config, state, overwrite)
