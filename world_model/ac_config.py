"""Typed configuration of `vjepa-wm train-ac` (settable from YAML and --dotted.flags).

Defaults follow the published V-JEPA 2-AC recipe (configs/train/vitg16/droid-256px-8f.yaml):
8-frame clips at 3.75 Hz (4 rows of 15 Hz DROID), 256 px, AdamW with weight decay 0.04, a
warmup-stable-decay learning rate 7.5e-5 -> 4.25e-4 (4.5k warmup steps) -> 0 (last 4.5k steps)
over 94.5k steps, teacher forcing + 2-step rollout loss, bf16 on GPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ACModelConfig:
    encoder: str = ""  # frozen encoder checkpoint: our directory, a Hugging Face VJEPA2 directory or an official .pt
    encoder_key: str | None = None  # state-dict key inside an official .pt (default target_encoder)
    predictor: str = "vitg_ac"  # preset: vitg_ac (published 24 x 1024), small, tiny, micro
    predictor_depth: int | None = None  # override the preset's depth
    img_size: int = 256
    init: str | None = None  # start from a world-model checkpoint (ours or the official AC .pt) instead


@dataclass
class ACOptimConfig:
    lr: float = 4.25e-4
    start_lr: float = 7.5e-5
    final_lr: float = 0.0
    warmup_steps: int = 4500
    decay_steps: int = 4500
    weight_decay: float = 0.04
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 0.0  # 0 = off (the published recipe does not clip)


@dataclass
class ACDataConfig:
    format: Literal["raw", "rlds"] = "raw"
    path: str = ""  # raw: a folder of episodes or an episode-list file; rlds: the TFDS version folder
    val_path: str | None = None  # held-out episodes; raw sources may instead split off `val_fraction`
    val_fraction: float = 0.05
    camera: str | None = None  # raw: left/ext1/ext2/wrist; rlds: exterior_1/exterior_2/wrist
    frames_per_clip: int = 8
    row_stride: int = 4
    clips_per_episode: int = 1
    success_only: bool = True
    workers: int = 2
    cache_dir: str | None = None  # pre-encode clips once into sharded latent files here, then train on them
    cache_passes: int = 1  # passes over the episodes when filling the cache (each pass draws new windows)
    cache_shard_size: int = 64


@dataclass
class ACRunConfig:
    out_dir: str = "runs/ac"
    steps: int = 94500
    batch_size: int = 8  # per process; the global batch is batch_size x world_size
    rollout_steps: int = 2
    device: str = "auto"
    bf16: bool = True  # autocast on CUDA only
    activation_checkpointing: bool = False
    log_every: int = 10
    val_every: int = 500
    val_batches: int = 8
    save_every: int = 1000
    keep_checkpoints: int = 2
    seed: int = 0
    resume: bool = True
    tensorboard: bool = True


@dataclass
class ACTrainConfig:
    model: ACModelConfig = field(default_factory=ACModelConfig)
    optim: ACOptimConfig = field(default_factory=ACOptimConfig)
    data: ACDataConfig = field(default_factory=ACDataConfig)
    run: ACRunConfig = field(default_factory=ACRunConfig)

    def validate(self) -> "ACTrainConfig":
        if not self.data.path:
            raise ValueError("data.path is required (a DROID raw folder / episode list, or an RLDS folder)")
        if not (self.model.encoder or self.model.init):
            raise ValueError("model.encoder (or model.init) is required: the frozen encoder to plan with")
        if self.data.frames_per_clip < 2:
            raise ValueError("data.frames_per_clip must be at least 2")
        if not 1 <= self.run.rollout_steps <= self.data.frames_per_clip - 1:
            raise ValueError(f"run.rollout_steps must be in [1, {self.data.frames_per_clip - 1}]")
        if self.optim.warmup_steps + self.optim.decay_steps > self.run.steps:
            raise ValueError("optim.warmup_steps + optim.decay_steps must fit in run.steps")
        return self
