"""Typed configuration of a V-JEPA 2 / 2.1 pretraining run (`vjepa-wm pretrain --config X.yaml`).

Every field can be set from YAML or as ``--section.field=value`` on the command line; the
defaults are the published V-JEPA 2.1 recipe where one exists (vjepa_wm/configs/pretrain/*.yaml hold
complete recipes). Batch sizes are *global* (summed over ranks), so a config means the same
optimisation whatever the number of processes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vjepa_wm.world_model.pretraining.masks import IMAGE_MASKS, VIDEO_MASKS, MaskSpec
from vjepa_wm.world_model.training.distributed import check_device
from vjepa_wm.world_model.training.settings import check_adamw, check_counts, check_finite


@dataclass
class ModelConfig:
    """Encoder size and V-JEPA version, and the predictor's width."""

    preset: str = "vit_l"  # encoder size (world_model.vit.ENCODER_SIZES)
    version: Literal["2", "2.1"] = "2.1"  # 2: tiled RoPE, final norm; 2.1: image tokenizer, four hierarchical levels, interleaved RoPE
    predictor_depth: int = 0  # 0 = the published depth (12 for V-JEPA 2, 24 for 2.1)
    predictor_dim: int = 384  # predictor width (published 384)
    predictor_heads: int = 12  # predictor heads (published 12)
    drop_path_rate: float = 0.0  # stochastic depth at the last block (linear from 0)
    activation_checkpointing: bool = False  # recompute block activations in the backward pass (saves memory)


@dataclass
class PhaseConfig:
    """A stretch of training at one resolution (progressive resolution: short clips first)."""

    steps: int = 1000
    frames: int = 16
    crop: int = 256
    batch_size: int = 24  # video clips per step, all ranks together
    image_batch_size: int = 0  # images per step, all ranks together (V-JEPA 2.1 mixes them in)
    image_crop: int = 0  # 0 = the video crop


@dataclass
class EpisodeSourceConfig:
    """An episode dataset, named by a clip source the caller registers (the command line offers
    ``droid_raw``: raw DROID or our sim recordings; see `world_model.pretraining.data`)."""

    source: str = ""  # registered clip-source name, e.g. droid_raw
    path: str = ""  # what the source reads: a folder of episodes, an episode list, ...


@dataclass
class DataConfig:
    """Videos, images and episode datasets, and their augmentation."""

    video_dirs: list[str] = field(default_factory=list)  # folders searched recursively for video files
    image_dirs: list[str] = field(default_factory=list)  # folders searched recursively for image files
    episodes: list[EpisodeSourceConfig] = field(default_factory=list)  # episode datasets by registered source, e.g. [{source: droid_raw, path: data/sim}]
    # Also draw images (single frames) from the episode datasets, e.g. to train 2.1's image
    # tokenizer on robot views when there is no image folder.
    episode_images: bool = False
    fps: float = 4.0  # frame rate clips are sampled at (episodes: by 15 Hz row stride)
    crop_scale: tuple[float, float] = (0.3, 1.0)  # random resized crop: area fraction range
    crop_aspect: tuple[float, float] = (0.75, 1.35)  # random resized crop: aspect ratio range
    horizontal_flip: bool = True  # flip half the samples left-right
    num_workers: int = 0  # DataLoader worker processes


@dataclass
class MaskConfig:
    """Multiblock mask sets per modality."""

    video: list[MaskSpec] = field(default_factory=lambda: list(VIDEO_MASKS))  # multiblock mask sets of video clips (published: 8 blocks of 15%, 2 of 70%)
    image: list[MaskSpec] = field(default_factory=lambda: list(IMAGE_MASKS))  # multiblock mask sets of images (published: 10 blocks of 15%)


@dataclass
class OptimConfig:
    """AdamW, a warmup-constant-cooldown learning rate and the EMA momentum."""

    lr: float = 6e-4  # learning rate after warmup
    start_lr: float = 1e-4  # learning rate at step 0 (linear warmup to lr)
    final_lr: float = 1e-6  # learning rate at the end of the cooldown
    warmup_steps: int = 12000  # steps of linear warmup
    cooldown_steps: int = 0  # the last steps of the run, decayed linearly to final_lr
    weight_decay: float = 0.04  # AdamW weight decay (off for biases and 1-D parameters)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    eps: float = 1e-8  # AdamW epsilon
    ema: tuple[float, float] = (0.99925, 0.99925)  # momentum at the first and the last step


@dataclass
class LossConfig:
    """V-JEPA 2.1 context loss: weight λ, warmed up linearly between two steps, then held."""

    context_lambda: float = 0.5  # weight of the context loss once warmed up
    context_lambda_start: int = 15000  # step where the context-loss warmup begins
    context_lambda_end: int = 30000  # step where it reaches context_lambda
    distance_weighting: bool = True  # 1/sqrt(distance to the nearest masked token)


@dataclass
class RunConfig:
    """Output folder, device, precision, resuming, logging and checkpoints."""

    out_dir: str = "runs/pretrain"  # checkpoints, TensorBoard logs and the exported encoder / predictor
    seed: int = 0  # seed of the weights, masks and samples
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: the local rank's GPU)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto = bf16 autocast on GPU, fp32 on CPU
    resume: str = "auto"  # auto (latest checkpoint in out_dir, if any) | never | a checkpoint path
    resume_changed: list[str] = field(default_factory=list)  # resume out_dir's run although these keys changed: exactly the changed ones, e.g. [optim.lr, data]
    save_every: int = 1000  # steps between checkpoints
    keep_checkpoints: int = 2  # newest checkpoints kept
    log_every: int = 10  # steps between logged losses
    monitor_every: int = 100  # collapse monitor period (steps)
    collapse_min_std: float = 0.05  # collapse warning below this target-feature spread
    collapse_min_rank: float = 2.0  # collapse warning below this effective rank
    tensorboard: bool = True  # write TensorBoard scalars
    progress: bool = True  # show a progress bar


@dataclass
class PretrainConfig:
    """Everything `vjepa-wm pretrain` needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    phases: list[PhaseConfig] = field(default_factory=lambda: [PhaseConfig()])
    data: DataConfig = field(default_factory=DataConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def total_steps(self) -> int:
        return sum(phase.steps for phase in self.phases)

    def validate(self, world_size: int = 1) -> None:
        """Raise a one-line ValueError for settings that cannot train."""
        check_finite(self)
        check_adamw(self.optim)
        if not all(0 <= momentum <= 1 for momentum in self.optim.ema):
            raise ValueError(f"optim.ema must be momenta in [0, 1], got {list(self.optim.ema)}")
        check_counts(self, {"optim.warmup_steps": 0, "optim.cooldown_steps": 0, "model.predictor_depth": 0,
                            "model.predictor_dim": 1, "model.predictor_heads": 1, "loss.context_lambda_start": 0,
                            "loss.context_lambda_end": 0, "data.num_workers": 0})
        if not 0 <= self.model.drop_path_rate < 1:
            raise ValueError(f"model.drop_path_rate must be in [0, 1), got {self.model.drop_path_rate}")
        if self.loss.context_lambda < 0:
            raise ValueError(f"loss.context_lambda must be at least 0, got {self.loss.context_lambda}")
        check_device(self.run.device)
        if not self.phases:
            raise ValueError("phases: at least one training phase is needed")
        for index, phase in enumerate(self.phases):
            where = f"phases[{index}]"
            if phase.steps < 1 or phase.frames < 1 or phase.crop < 16:
                raise ValueError(f"{where}: steps and frames must be positive and crop at least 16")
            if phase.batch_size < 0 or phase.image_batch_size < 0 or phase.batch_size + phase.image_batch_size == 0:
                raise ValueError(f"{where}: needs video clips (batch_size) or images (image_batch_size)")
            for name in ("batch_size", "image_batch_size"):
                if getattr(phase, name) % world_size:
                    raise ValueError(f"{where}.{name} {getattr(phase, name)} is not divisible by {world_size} processes")
            if phase.image_batch_size and not self.masks.image:
                raise ValueError(f"{where}: images need at least one masks.image set")
            if phase.batch_size and not self.masks.video:
                raise ValueError(f"{where}: videos need at least one masks.video set")
        if any(p.batch_size for p in self.phases) and not (self.data.video_dirs or self.data.episodes):
            raise ValueError("data: video clips are asked for but no data.video_dirs or data.episodes are given")
        has_images = self.data.image_dirs or (self.data.episode_images and self.data.episodes)
        if any(p.image_batch_size for p in self.phases) and not has_images:
            raise ValueError("data: images are asked for (image_batch_size) but there are no data.image_dirs (or episode_images)")
        if self.run.save_every < 1 or self.run.log_every < 1 or self.run.monitor_every < 1:
            raise ValueError("run.save_every, run.log_every and run.monitor_every must be positive")
        if self.run.keep_checkpoints < 1:
            raise ValueError("run.keep_checkpoints must be at least 1")
        if not 0 < self.data.crop_scale[0] <= self.data.crop_scale[1] <= 1:
            raise ValueError("data.crop_scale must be a range inside (0, 1]")
        if not 0 < self.data.crop_aspect[0] <= self.data.crop_aspect[1]:
            raise ValueError("data.crop_aspect must be a positive range")
        for entry in self.data.episodes:
            if not entry.source or not entry.path:
                raise ValueError(f"data.episodes: each entry needs a source name and a path, got {entry}")
        if self.data.fps <= 0:
            raise ValueError("data.fps must be positive")
