"""Typed configuration of `vjepa-wm train-ac` (settable from YAML and --dotted.flags).

Defaults follow the published V-JEPA 2-AC recipe (configs/train/vitg16/droid-256px-8f.yaml):
8-frame clips at 3.75 Hz (4 rows of 15 Hz DROID), 256 px, AdamW with weight decay 0.04, a
warmup-stable-decay learning rate 7.5e-5 -> 4.25e-4 (4.5k warmup steps) -> 0 (last 4.5k steps)
over 94.5k steps, teacher forcing + 2-step rollout loss, bf16 on GPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vjepa_wm.world_model.training.settings import check_adamw, check_counts, check_finite


@dataclass
class ACModelConfig:
    """The frozen encoder and the predictor to train."""

    encoder: str = ""  # frozen encoder checkpoint: our directory, a Hugging Face VJEPA2 directory or an official .pt
    encoder_key: str | None = None  # state-dict key inside an official .pt (default target_encoder)
    predictor: str = "vitg_ac"  # preset: vitg_ac (published 24 x 1024), small, sim, tiny, micro
    embodiment: str = "franka"  # whose states and actions the data holds: franka (DROID, the sim arm) or car
    predictor_depth: int | None = None  # override the preset's depth
    img_size: int = 256  # frame size the encoder sees (the predictor's grid is img_size / 16)
    init: str | None = None  # start from a world-model checkpoint (ours or the official AC .pt) instead
    normalize_conditioning: bool = False  # standardise actions and states by the training data's mean/std (not published; a model.init keeps its own)


@dataclass
class ACOptimConfig:
    """AdamW with a warmup-stable-decay learning rate."""

    lr: float = 4.25e-4  # peak learning rate (warmup-stable-decay)
    start_lr: float = 7.5e-5  # learning rate at step 0
    final_lr: float = 0.0  # learning rate at the end of the decay
    warmup_steps: int = 4500  # steps of linear warmup
    decay_steps: int = 4500  # last steps of linear decay to final_lr
    weight_decay: float = 0.04  # AdamW weight decay (off for biases and norms)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    eps: float = 1e-8  # AdamW epsilon
    grad_clip: float = 0.0  # 0 = off (the published recipe does not clip)


@dataclass
class ACDataConfig:
    """Where the clips come from and how they are cut."""

    format: Literal["raw", "rlds", "lerobot", "nwm"] = "raw"  # raw: DROID raw (or our sim recordings); rlds: DROID RLDS through tensorflow-datasets; lerobot: DROID in LeRobot v2.1/v3.0 form (path: a folder or a hub id in the Hugging Face cache, e.g. lerobot/droid_1.0.1; camera exterior_1/exterior_2/wrist); nwm: NWM-format drives (car)
    path: str = ""  # raw: a folder of episodes or an episode-list file; rlds: the TFDS version folder; nwm: the dataset folder (its splits/train when present)
    val_path: str | None = None  # held-out episodes (nwm: a traj_names.txt naming trajectories of data.path, or another dataset folder); raw and nwm may instead split off `val_fraction`
    val_fraction: float = 0.05  # held-out share of raw episodes (nwm: of trajectories, when it has no splits/test) without a val_path
    camera: str | None = None  # raw: left/ext1/ext2/wrist; rlds: exterior_1/exterior_2/wrist; nwm: none (one camera)
    frames_per_clip: int = 8  # frames per training clip (published 8)
    row_stride: int = 4  # recorded rows between sampled frames: DROID's 15 Hz rows (4 = 3.75 Hz, published); nwm's 4 Hz samples (1 = NWM's rate)
    clips_per_episode: int = 1  # random windows cut from each episode (nwm: trajectory) per pass
    state_origin: int = 0  # nwm: the clip frame whose pose the states are seen from (a planner's "now", the last context frame)
    success_only: bool = True  # keep only successful episodes, as DROID consumers do
    workers: int = 2  # DataLoader worker processes
    cache_dir: str | None = None  # pre-encode clips once into sharded latent files here, then train on them
    cache_passes: int = 1  # passes over the episodes when filling the cache (each pass draws new windows)
    cache_shard_size: int = 64  # clips per latent-cache shard file


@dataclass
class ACRunConfig:
    """Length, batch, device, logging and checkpoints of the run."""

    out_dir: str = "runs/ac"  # checkpoints, TensorBoard logs and the exported world_model/
    steps: int = 94500  # optimisation steps in all
    batch_size: int = 8  # per process; the global batch is batch_size x world_size
    rollout_steps: int = 2  # frames of the autoregressive rollout loss (published 2)
    rollout_context: int = 1  # real frames the rollout starts from (published 1; a 4-frame-context planner: 4)
    device: str = "auto"  # auto (this process's GPU, else the CPU), cpu, cuda, cuda:N
    bf16: bool = True  # autocast on CUDA only
    activation_checkpointing: bool = False  # recompute block activations in the backward pass (saves memory)
    log_every: int = 10  # steps between logged losses
    val_every: int = 500  # steps between validation passes
    val_batches: int = 8  # batches per validation pass
    save_every: int = 1000  # steps between checkpoints
    keep_checkpoints: int = 2  # newest checkpoints kept
    seed: int = 0  # seed of the initial weights and the data order
    resume: bool = True  # continue from the latest checkpoint in out_dir
    resume_changed: list[str] = field(default_factory=list)  # resume out_dir's run although these keys changed: exactly the changed ones, e.g. [optim.lr, data]
    tensorboard: bool = True  # write TensorBoard scalars


@dataclass
class ACTrainConfig:
    """Everything `vjepa-wm train-ac` needs."""

    model: ACModelConfig = field(default_factory=ACModelConfig)
    optim: ACOptimConfig = field(default_factory=ACOptimConfig)
    data: ACDataConfig = field(default_factory=ACDataConfig)
    run: ACRunConfig = field(default_factory=ACRunConfig)

    def validate(self) -> "ACTrainConfig":
        from vjepa_wm.world_model.training.distributed import check_device  # imports torch, which this module must not

        check_finite(self)
        check_counts(self, {"run.steps": 1, "run.batch_size": 1, "run.log_every": 1, "run.val_every": 1,
                            "run.val_batches": 1, "run.save_every": 1, "run.keep_checkpoints": 1, "model.img_size": 1,
                            "optim.warmup_steps": 0, "optim.decay_steps": 0, "data.row_stride": 1,
                            "data.clips_per_episode": 1, "data.workers": 0, "data.cache_passes": 1,
                            "data.cache_shard_size": 1})
        if self.model.img_size % 16:  # the patch size of every V-JEPA encoder; the predictor's grid is img_size / 16
            raise ValueError(f"model.img_size must be a multiple of the patch size 16, got {self.model.img_size}")
        if self.model.predictor_depth is not None:
            check_counts(self, {"model.predictor_depth": 1})
        check_adamw(self.optim)
        if self.optim.grad_clip < 0:
            raise ValueError(f"optim.grad_clip must be at least 0 (0 = off), got {self.optim.grad_clip}")
        if not 0 <= self.data.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {self.data.val_fraction}")
        check_device(self.run.device)
        if not self.data.path:
            raise ValueError("data.path is required (a DROID raw folder / episode list, an RLDS folder, or an NWM dataset folder)")
        if not (self.model.encoder or self.model.init):
            raise ValueError("model.encoder (or model.init) is required: the frozen encoder to plan with")
        if self.data.format in ("raw", "rlds", "lerobot") and self.model.embodiment != "franka":
            raise ValueError(f"data.format {self.data.format} is DROID, which records Franka states; model.embodiment "
                             f"{self.model.embodiment!r} needs data of its own (a car: data.format nwm)")
        if self.data.format == "nwm" and self.model.embodiment != "car":
            raise ValueError(f"data.format nwm holds car poses (x, y, yaw); model.embodiment must be car, not {self.model.embodiment!r}")
        if self.data.format == "nwm" and self.data.camera is not None:
            raise ValueError("data.camera picks a DROID camera; NWM trajectories have one (leave data.camera unset)")
        if self.data.frames_per_clip < 2:
            raise ValueError("data.frames_per_clip must be at least 2")
        if not 0 <= self.data.state_origin < self.data.frames_per_clip:
            raise ValueError(f"data.state_origin must be a frame of the clip, 0..{self.data.frames_per_clip - 1}")
        if not 1 <= self.run.rollout_context <= self.data.frames_per_clip - 1:
            raise ValueError(f"run.rollout_context must be in [1, {self.data.frames_per_clip - 1}]")
        if not 1 <= self.run.rollout_steps <= self.data.frames_per_clip - self.run.rollout_context:
            raise ValueError(f"run.rollout_steps must be in [1, {self.data.frames_per_clip - self.run.rollout_context}] "
                             f"for {self.data.frames_per_clip}-frame clips and {self.run.rollout_context} context frames")
        if self.optim.warmup_steps + self.optim.decay_steps > self.run.steps:
            raise ValueError("optim.warmup_steps + optim.decay_steps must fit in run.steps")
        return self
