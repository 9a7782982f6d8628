"""V-JEPA 2 / 2.1 pretraining: `Pretrainer` runs the whole loop from a `PretrainConfig`.

One step: draw the global batch's masks (pure function of seed and step), take this rank's
share of clips and images, compute the EMA targets, run the context encoder + predictor (one
DDP module), combine the masked and context losses (world_model.pretraining.objective), step AdamW
(no weight decay on biases and other 1-D parameters) at the scheduled learning rate, then move
the target encoder towards the context encoder (EMA).

Around it: progressive resolution (frames and crop per phase), bf16 autocast on GPUs,
activation checkpointing, DDP under torchrun, exact resume from atomic checkpoints, TensorBoard
scalars, a tqdm bar, a collapse monitor, and at the end an export of the target encoder and the
predictor in our checkpoint format (``OUT/encoder``, ``OUT/predictor``).

``run.out_dir`` belongs to its run (`world_model.training.run_folder`): the run is its settings
(the model config among them) and the fingerprint of its data folders, and a folder of another
run is refused before training. Settings that do not change what is computed are not part of the
run (`NOT_DEFINING`): the device, loader workers, activation checkpointing, logging, monitoring,
checkpoint frequency, TensorBoard, the progress bar and the resume flags themselves.
"""
from __future__ import annotations

import copy
import math
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from vjepa_wm.world_model.checkpoints.encoder import save_encoder
from vjepa_wm.world_model.checkpoints.io import CheckpointError, load_strict
from vjepa_wm.world_model.checkpoints.predictor import save_predictor
from vjepa_wm.world_model.configuration import save_config, to_dict
from vjepa_wm.world_model.predictor import Predictor, predictor_config
from vjepa_wm.world_model.pretraining.collapse import check_collapse, collapse_stats
from vjepa_wm.world_model.pretraining.config import PretrainConfig
from vjepa_wm.world_model.pretraining.data import IMAGE_STREAM, VIDEO_STREAM, Batch, ClipSourceRegistry, make_loader, phase_at
from vjepa_wm.world_model.pretraining.masks import multiblock_masks
from vjepa_wm.world_model.pretraining.objective import Group, JepaStudent, jepa_loss, target_features
from vjepa_wm.world_model.training.distributed import (
    DistContext,
    barrier,
    gather_objects,
    init_distributed,
    mean_across,
    pick_device,
    shutdown,
)
from vjepa_wm.world_model.training.fingerprint import files_fingerprint
from vjepa_wm.world_model.training.run_folder import RunFolder, open_run_folder, run_identity
from vjepa_wm.world_model.training.schedules import LinearRamp, LinearWarmupHold, WarmupConstantCooldown
from vjepa_wm.world_model.training.train_state import latest_checkpoint, load_train_state, rng_state, save_train_state, set_rng_state
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config

# Distinct skipped files reported by name; the rest are only counted.
MAX_SKIP_REPORTS = 20
# Config keys that do not change what a run computes: changing them never makes another run.
NOT_DEFINING = ("run.out_dir", "run.device", "run.resume", "run.resume_changed", "run.save_every", "run.keep_checkpoints",
                "run.log_every", "run.monitor_every", "run.collapse_min_std", "run.collapse_min_rank", "run.tensorboard",
                "run.progress", "data.num_workers", "model.activation_checkpointing")
# Files the run writes under fixed names (refused up front if someone else's file holds one).
NEEDS = ("config.yaml", "checkpoints/latest.txt", "encoder/config.json", "encoder/model.safetensors",
         "predictor/config.json", "predictor/model.safetensors")


def build_models(config: PretrainConfig) -> tuple[VisionTransformer, Predictor]:
    """Context encoder and predictor of the configured size, freshly initialised."""
    m = config.model
    final_crop = config.phases[-1].crop
    encoder = VisionTransformer(
        encoder_config(
            m.preset, m.version, img_size=final_crop, drop_path_rate=m.drop_path_rate,
            activation_checkpointing=m.activation_checkpointing,
        )
    )
    overrides = dict(
        embed_dim=m.predictor_dim, num_heads=m.predictor_heads, mlp_hidden=4 * m.predictor_dim, img_size=final_crop,
        drop_path_rate=m.drop_path_rate, activation_checkpointing=m.activation_checkpointing,
    )
    if m.predictor_depth:
        overrides["depth"] = m.predictor_depth
    if m.version == "2.1":
        overrides["levels"] = len(encoder.config.levels)
    return encoder, Predictor(predictor_config(m.version, encoder.config.embed_dim, **overrides))


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay for weight matrices (and mask tokens), none for biases and 1-D parameters."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@dataclass
class StepResult:
    loss: float
    predicted: float
    context: float
    per_level: list[float]


@dataclass
class FitResult:
    steps: int
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) at log steps
    collapse_warnings: int = 0
    skipped: int = 0
    checkpoint: Path | None = None
    encoder_dir: Path | None = None
    predictor_dir: Path | None = None


class Pretrainer:
    """Holds models, optimizer and schedules; `fit()` trains from the current step to the end."""

    def __init__(self, config: PretrainConfig, context: DistContext | None = None, device: torch.device | None = None,
                 clip_sources: ClipSourceRegistry | None = None):
        """`clip_sources` builds the episode datasets that ``data.episodes`` names (by source name)."""
        if context is None:
            context, device = init_distributed(config.run.device)
        self.config = config
        self.clip_sources = dict(clip_sources or {})
        self.dist = context
        self.device = device or pick_device(config.run.device, context.local_rank)
        config.validate(context.world_size)
        self.out_dir = Path(config.run.out_dir)
        torch.manual_seed(config.run.seed)  # identical initial weights on every rank
        encoder, predictor = build_models(config)
        self.encoder = encoder.to(self.device)
        self.predictor = predictor.to(self.device)
        self.target = copy.deepcopy(self.encoder).requires_grad_(False).eval()
        self.levels = max(1, len(self.encoder.config.levels))
        self.student = JepaStudent(self.encoder, self.predictor)
        self.model: nn.Module = self.student
        if context.active:
            self.model = nn.parallel.DistributedDataParallel(
                self.student, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,  # image tokenizer / unused mask tokens / image embeddings
            )
        o = config.optim
        self.optimizer = torch.optim.AdamW(param_groups(self.student, o.weight_decay), lr=o.lr, betas=tuple(o.betas), eps=o.eps)
        total = config.total_steps
        self.lr_schedule = WarmupConstantCooldown(o.lr, total, o.warmup_steps, o.start_lr, o.cooldown_steps, o.final_lr)
        self.lambda_schedule = LinearWarmupHold(config.loss.context_lambda, config.loss.context_lambda_start, config.loss.context_lambda_end)
        self.ema_schedule = LinearRamp(o.ema[0], o.ema[1], total)
        precision = config.run.precision
        self.bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        if self.bf16 and self.device.type != "cuda":
            raise ValueError("run.precision bf16 is for GPUs; CPU training runs in fp32")
        torch.manual_seed(config.run.seed + 1 + context.rank)  # per-rank stochastic depth
        self.step = 0
        self.skipped = 0
        self._reported: set[str] = set()
        self._folder: RunFolder | None = None

    # ------------------------------------------------------------------ one step

    def _groups(self, batch: Batch, step: int) -> list[Group]:
        _, phase = phase_at(self.config.phases, step)
        groups = []
        for modality, clips, specs, global_batch, stream in (
            ("video", batch.video, self.config.masks.video, phase.batch_size, VIDEO_STREAM),
            ("image", batch.image, self.config.masks.image, phase.image_batch_size, IMAGE_STREAM),
        ):
            if clips is None:
                continue
            share = global_batch // self.dist.world_size
            if clips.shape[0] != share:
                raise ValueError(f"step {step}: got {clips.shape[0]} {modality} samples, expected {share} per process")
            clips = clips.to(self.device, non_blocking=True)
            grid = self.encoder.grid(clips.shape)
            masks = multiblock_masks(tuple(specs), global_batch, grid, self.config.run.seed, step, stream)
            first = self.dist.rank * share
            groups.append(Group(modality, clips, [m.slice(first, first + share).to(self.device) for m in masks], grid))
        return groups

    def train_step(self, batch: Batch, step: int) -> tuple[StepResult, torch.Tensor]:
        """One optimisation step at global step `step`; returns the losses and the video targets."""
        lr = self.lr_schedule(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        groups = self._groups(batch, step)
        context_lambda = self.lambda_schedule(step) if self.config.model.version == "2.1" else 0.0
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else nullcontext()
        self.model.train()
        with autocast:
            targets = [target_features(self.target, g.clips, self.levels) for g in groups]
            outputs = self.model(groups)
            terms = jepa_loss(outputs, targets, groups, self.levels, context_lambda, self.config.loss.distance_weighting)
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        self.optimizer.step()
        self._update_target(self.ema_schedule(step))
        values = torch.cat([torch.stack([terms.total.detach(), terms.predicted, terms.context]), terms.per_level])
        values = values.float().cpu()
        result = StepResult(float(values[0]), float(values[1]), float(values[2]), values[3:].tolist())
        return result, targets[0]

    @torch.no_grad()
    def _update_target(self, momentum: float) -> None:
        target = list(self.target.parameters())
        source = [p.detach() for p in self.encoder.parameters()]
        torch._foreach_lerp_(target, source, 1.0 - momentum)

    # ------------------------------------------------------------------ checkpoints

    def run_folder(self) -> RunFolder:
        """The output folder, checked on first use (every rank calls this in `resume` or `fit`)."""
        if self._folder is None:
            d = self.config.data
            data = files_fingerprint([*d.video_dirs, *d.image_dirs, *(entry.path for entry in d.episodes)])
            identity = run_identity("pretrain", self.config, NOT_DEFINING, {"data": data})
            self._folder = open_run_folder(self.out_dir, identity, NEEDS, self.config.run.resume_changed, self.dist)
        return self._folder

    def state_payload(self) -> dict:
        rng = gather_objects(rng_state(), self.dist)
        return {
            "config": to_dict(self.config),
            "world_size": self.dist.world_size,
            "encoder": self.encoder.state_dict(),
            "predictor": self.predictor.state_dict(),
            "target_encoder": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
            "data": {"skipped": self.skipped},
        }

    def save(self) -> Path | None:
        """Checkpoint the current state (main rank writes; every rank must call it)."""
        finite = torch.stack([p.detach().isfinite().all() for p in self.student.parameters()]).all()
        if not bool(finite):
            raise FloatingPointError(f"step {self.step}: weights are no longer finite; not saving over good checkpoints")
        payload = self.state_payload()
        folder, path = self.run_folder(), None
        if self.dist.is_main:
            folder.write("config.yaml", lambda target: save_config(self.config, target))  # the settings of the latest stretch
            path = save_train_state(self.out_dir / "checkpoints", self.step, payload, self.config.run.keep_checkpoints, folder)
        barrier(self.dist)
        return path

    def load(self, path: str | Path) -> None:
        """Restore models, optimizer, RNG, data counters and the step from a checkpoint."""
        state = load_train_state(path)
        try:
            load_strict(self.encoder, state["encoder"], f"{path} [encoder]")
            load_strict(self.predictor, state["predictor"], f"{path} [predictor]")
            load_strict(self.target, state["target_encoder"], f"{path} [target_encoder]")
            self.optimizer.load_state_dict(state["optimizer"])
            step, rng, skipped = int(state["step"]), state["rng"], int(state["data"]["skipped"])
        except (KeyError, TypeError) as err:
            raise CheckpointError(f"{path}: incomplete pretraining checkpoint ({err})") from None
        except ValueError as err:
            raise CheckpointError(f"{path}: optimizer state does not fit this model ({err})") from None
        if step > self.config.total_steps:
            raise CheckpointError(f"{path}: step {step} is past the {self.config.total_steps} configured steps")
        self.step, self.skipped = step, skipped
        if len(rng) == self.dist.world_size:
            set_rng_state(rng[self.dist.rank])
        else:
            warnings.warn(f"{path} was written by {len(rng)} processes, not {self.dist.world_size}: RNG streams restart")

    def resume(self) -> Path | None:
        """Apply ``run.resume``: auto (latest in out_dir, if any), never, or a checkpoint path."""
        choice, folder = self.config.run.resume, self.run_folder()
        if choice == "never":
            return None
        path = latest_checkpoint(self.out_dir / "checkpoints", folder) if choice == "auto" else Path(choice)
        if path is None:
            return None
        self.load(path)
        return path

    def export(self) -> tuple[Path, Path]:
        """Write the target encoder and the predictor in our format under the output folder."""
        encoder = VisionTransformer(replace(self.encoder.config, activation_checkpointing=False, drop_path_rate=0.0))
        encoder.load_state_dict(self.target.state_dict())
        predictor = Predictor(replace(self.predictor.config, activation_checkpointing=False, drop_path_rate=0.0))
        predictor.load_state_dict(self.predictor.state_dict())
        return (
            self.run_folder().export("encoder", lambda target: save_encoder(encoder.cpu(), target)),
            self.run_folder().export("predictor", lambda target: save_predictor(predictor.cpu(), target)),
        )

    # ------------------------------------------------------------------ the loop

    def _report_skips(self, skipped: list[str]) -> None:
        self.skipped += len(skipped)
        for entry in skipped:
            if entry not in self._reported and len(self._reported) < MAX_SKIP_REPORTS:
                self._reported.add(entry)
                warnings.warn(f"skipped unreadable data: {entry}")

    def fit(self) -> FitResult:
        """Train from the current step to the end of the last phase; export at the end."""
        from tqdm import tqdm

        run = self.config.run
        total = self.config.total_steps
        result = FitResult(steps=0)
        self.run_folder()  # checked before any data is read
        writer = self._writer() if run.tensorboard and self.dist.is_main else None
        loader = make_loader(self.config.data, self.config.phases, run.seed, self.step, self.dist.rank, self.dist.world_size,
                             self.clip_sources)
        bar = tqdm(total=total, initial=self.step, desc="pretrain", unit="step", disable=not (run.progress and self.dist.is_main))
        started, clips = time.perf_counter(), 0
        try:
            for batch in loader:
                step = self.step
                step_result, targets = self.train_step(batch, step)
                self.step += 1
                result.steps += 1
                clips += sum(t.shape[0] for t in (batch.video, batch.image) if t is not None)
                self._report_skips(batch.skipped)
                if self.step % run.log_every == 0 or self.step == total:
                    loss = self._log(writer, bar, step, step_result, clips / (time.perf_counter() - started))
                    result.history.append((step, loss))
                if self.step % run.monitor_every == 0 and self.dist.is_main:
                    stats = collapse_stats(targets[..., -targets.shape[-1] // self.levels :])
                    result.collapse_warnings += check_collapse(stats, run.collapse_min_std, run.collapse_min_rank, step)
                    if writer:
                        writer.add_scalar("collapse/target_feature_std", stats.feature_std, step)
                        writer.add_scalar("collapse/target_effective_rank", stats.effective_rank, step)
                if self.step % run.save_every == 0 or self.step == total:
                    result.checkpoint = self.save()
                bar.update(1)
        finally:
            bar.close()
            if writer:
                writer.close()
        result.skipped = self.skipped
        if self.dist.is_main:
            result.encoder_dir, result.predictor_dir = self.export()
        barrier(self.dist)
        return result

    def _writer(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tensorboard may import TensorFlow: keep it quiet
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.step)

    def _log(self, writer, bar, step: int, r: StepResult, clips_per_s: float) -> float:
        """Average the step's losses over ranks; write TensorBoard scalars and the bar. Returns the loss."""
        local = torch.tensor([r.loss, r.predicted, r.context, *r.per_level, float(self.skipped)], device=self.device)
        values = mean_across(local, self.dist).cpu().tolist()
        loss = values[0]
        if not math.isfinite(loss):
            raise FloatingPointError(f"step {step}: the loss is {loss}; lower the learning rate or check the data")
        skipped = int(round(values[-1] * self.dist.world_size))
        lr = self.lr_schedule(step)
        if writer:
            scalars = {
                "loss/total": loss, "loss/masked": values[1], "loss/context": values[2], "schedule/lr": lr,
                "schedule/context_lambda": self.lambda_schedule(step), "schedule/ema_momentum": self.ema_schedule(step),
                "data/skipped": skipped, "speed/clips_per_s_per_rank": clips_per_s,
            }
            scalars.update({f"loss/level_{i}": v for i, v in enumerate(values[3:-1])})
            for name, value in scalars.items():
                writer.add_scalar(name, value, step)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", skipped=skipped, refresh=False)
        return loss


def pretrain(config: PretrainConfig, clip_sources: ClipSourceRegistry | None = None) -> FitResult:
    """Build a trainer (joining torchrun's group if launched by it), resume if asked, train, export."""
    context, device = init_distributed(config.run.device)
    try:
        trainer = Pretrainer(config, context, device, clip_sources)
        trainer.resume()
        return trainer.fit()
    finally:
        shutdown(context)

