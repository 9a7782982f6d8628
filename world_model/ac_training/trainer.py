"""Training the action-conditioned predictor (the encoder stays frozen), single process or `torchrun`.

The trainer consumes batches from a `BatchSource` (built by the caller from `datasets/` readers
or a latent cache), so this room never imports the dataset room. A batch is a dict with either
``frames`` uint8 ``[B, T, H, W, 3]`` (encoded here, per frame, with the frozen encoder) or
``latents`` ``[B, T*N, D]`` (pre-encoded), plus ``states`` ``[B, T, S]`` and ``actions``
``[B, T-1, A]`` in the layout of the configured embodiment.

Resuming is exact: the checkpoint holds the predictor, the optimizer, the step, the data
position (epoch and batches consumed in it) and every RNG state; the data stream is
deterministic for a given epoch, so the resumed run sees the same batches in the same order.

``run.out_dir`` belongs to its run (`world_model.training.run_folder`): the run is its settings,
the frozen encoder's fingerprint and the data's, and a folder of another run is refused before
any data is read or anything written. Settings that do not change what is computed are not part
of the run (`NOT_DEFINING`): the device, DataLoader workers, activation checkpointing, logging,
validation and checkpoint frequency, TensorBoard, and the resume flags themselves.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from torch.nn.parallel import DistributedDataParallel

from vjepa_wm.embodiments import get_embodiment
from vjepa_wm.world_model.ac_predictor import ACPredictor, ConditioningNorm, ac_predictor_config
from vjepa_wm.world_model.ac_training.config import ACTrainConfig
from vjepa_wm.world_model.ac_training.latent_cache import encoder_fingerprint
from vjepa_wm.world_model.ac_training.loss import ac_loss
from vjepa_wm.world_model.checkpoints import load_encoder, load_world_model, save_world_model
from vjepa_wm.world_model.checkpoints.io import CheckpointError, load_strict
from vjepa_wm.world_model.configuration import save_config, to_dict
from vjepa_wm.world_model.training.distributed import DistContext, barrier, gather_objects, init_distributed, mean_across, shutdown
from vjepa_wm.world_model.training.run_folder import RunFolder, open_run_folder, run_identity
from vjepa_wm.world_model.training.schedules import WarmupConstantCooldown
from vjepa_wm.world_model.training.train_state import latest_checkpoint, load_train_state, rng_state, save_train_state, set_rng_state
from vjepa_wm.world_model.world_model import WorldModel, normalize_latents

log = logging.getLogger(__name__)

# Config keys that do not change what a run computes: changing them never makes another run.
NOT_DEFINING = ("run.out_dir", "run.device", "run.activation_checkpointing", "run.log_every", "run.val_every", "run.val_batches",
                "run.save_every", "run.keep_checkpoints", "run.resume", "run.resume_changed", "run.tensorboard", "data.workers")
# Files the run writes under fixed names (refused up front if someone else's file holds one).
NEEDS = ("config.yaml", "checkpoints/latest.txt", "world_model/config.json", "world_model/model.safetensors")


@dataclass
class BatchSource:
    """A deterministic, epoch-indexed stream of batches: `make(epoch)` must give the same batches
    in the same order every time it is called with the same epoch."""

    make: Callable[[int], Iterable[dict]]


class BatchStream:
    """Iterates a `BatchSource` across epochs and remembers the position (epoch, batch in epoch)."""

    def __init__(self, source: BatchSource, epoch: int = 0, consumed: int = 0):
        self.source, self.epoch, self.consumed = source, epoch, consumed
        self._iterator: Iterator[dict] | None = None

    def _open(self) -> None:
        self._iterator = iter(self.source.make(self.epoch))
        for _ in range(self.consumed):  # replay to the saved position
            next(self._iterator)

    def next(self) -> dict:
        if self._iterator is None:
            self._open()
        for _ in range(2):
            try:
                batch = next(self._iterator)
                self.consumed += 1
                return batch
            except StopIteration:
                self.epoch, self.consumed = self.epoch + 1, 0
                self._iterator = iter(self.source.make(self.epoch))
        raise ValueError("the training data yields no batches (every episode was skipped or filtered?)")


def build_world_model(config: ACTrainConfig) -> WorldModel:
    m = config.model
    if m.init:
        model = load_world_model(m.init, img_size=m.img_size)
        if model.embodiment.name != m.embodiment:
            raise ValueError(f"model.init {m.init} is a {model.embodiment.name} model, not a {m.embodiment} one (model.embodiment)")
    else:
        embodiment = get_embodiment(m.embodiment)
        encoder = load_encoder(m.encoder, key=m.encoder_key)
        overrides = {"depth": m.predictor_depth} if m.predictor_depth else {}
        predictor = ACPredictor(
            ac_predictor_config(m.predictor, encoder.embed_dim, m.img_size, encoder.config.patch_size,
                                action_dim=embodiment.action_dim, **overrides)
        )
        model = WorldModel(encoder, predictor, m.img_size, embodiment)
    model.predictor.config.activation_checkpointing = config.run.activation_checkpointing
    return model


NORM_BATCHES = 32  # training batches the conditioning norm is measured on


def conditioning_norm_of(source: BatchSource) -> ConditioningNorm:
    """Mean and std of the actions and states of the first `NORM_BATCHES` batches of epoch 0."""
    actions, states = [], []
    for index, batch in enumerate(source.make(0)):
        if index >= NORM_BATCHES:
            break
        actions.append(batch["actions"].float())
        states.append(batch["states"].float())
    if not actions:
        raise ValueError("the training data yields no batches to measure the conditioning norm on")
    return ConditioningNorm.from_samples(torch.cat(actions), torch.cat(states))


def make_optimizer(predictor: torch.nn.Module, config: ACTrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay off for biases and other 1-D parameters (norms)."""
    decay, no_decay = [], []
    for param in predictor.parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)
    o = config.optim
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=o.start_lr, betas=tuple(o.betas), eps=o.eps)


def batch_latents(model: WorldModel, batch: dict, device: torch.device) -> torch.Tensor:
    if "latents" in batch:
        return normalize_latents(batch["latents"].to(device).float())
    return model.encode_clips(batch["frames"])


def evaluate(model: WorldModel, predictor, batches: Iterable[dict], config: ACTrainConfig, device, autocast) -> dict | None:
    """Mean validation losses over up to `run.val_batches` batches (None without validation data)."""
    totals, count = torch.zeros(3, device=device), 0
    predictor.eval()
    with torch.no_grad(), autocast:
        for index, batch in enumerate(batches):
            if index >= config.run.val_batches:
                break
            z = batch_latents(model, batch, device)
            loss = ac_loss(model.predictor, z, batch["actions"].to(device), batch["states"].to(device), config.run.rollout_steps,
                           config.run.rollout_context)
            totals += torch.stack([loss.total, loss.teacher_forcing, loss.rollout]).float()
            count += 1
    predictor.train()
    if count == 0:
        return None
    values = (totals / count).tolist()
    return {"val/loss": values[0], "val/teacher_forcing": values[1], "val/rollout": values[2]}


Sources = Callable[[WorldModel, dict], tuple[BatchSource, BatchSource | None]]


def train_ac(config: ACTrainConfig, sources: Sources, data: dict, progress: bool = True) -> Path:
    """Train; returns the exported world model directory (``<out_dir>/world_model``).

    `data` fingerprints what the batches are read from (`world_model.training.fingerprint`): a
    resumed run must read the same. `sources(model, encoder)` gives the training and validation
    batch sources (`encoder`: the frozen encoder's fingerprint, computed once here, which keys a
    latent cache too); it is called once the run folder is checked, so a refused run never spends
    time on it (it may fill a latent cache with the model's frozen encoder).
    """
    config.validate()
    run = config.run
    context, device = init_distributed(run.device)
    try:
        return _train(config, sources, data, context, device, progress)
    finally:
        shutdown(context)


def _train(config: ACTrainConfig, sources: Sources, data: dict, context: DistContext, device, progress: bool) -> Path:
    from tqdm import tqdm

    run = config.run
    out = Path(run.out_dir)
    checkpoints = out / "checkpoints"
    torch.manual_seed(run.seed + context.rank)
    model = build_world_model(config).to(device)
    encoder = encoder_fingerprint(model)  # hashes every weight: once per start
    identity = run_identity("train-ac", config, NOT_DEFINING, {"encoder": encoder, "data": data})
    folder = open_run_folder(out, identity, NEEDS, run.resume_changed, context)
    with torch.random.fork_rng(devices=[]):  # filling a cache draws DataLoader seeds: keep them off the training's stream
        train, val = sources(model, encoder)
    model.train()
    predictor = model.predictor
    resume_from = latest_checkpoint(checkpoints, folder) if run.resume else None
    if config.model.normalize_conditioning and not config.model.init and resume_from is None:
        with torch.random.fork_rng(devices=[]):
            norm = conditioning_norm_of(train)
        predictor.set_conditioning_norm(gather_objects(norm, context)[0])  # rank 0's, so every rank trains one model
        log.info("conditioning norm from the training data: %s", predictor.config.conditioning_norm)
    optimizer = make_optimizer(predictor, config)
    o = config.optim
    schedule = WarmupConstantCooldown(lr=o.lr, total_steps=run.steps, warmup_steps=o.warmup_steps, start_lr=o.start_lr,
                                      cooldown_steps=o.decay_steps, final_lr=o.final_lr)
    step, epoch, consumed = 0, 0, 0
    if resume_from is not None:
        state = load_train_state(resume_from)
        try:
            norm = state.get("conditioning_norm")
            predictor.set_conditioning_norm(None if norm is None else ConditioningNorm(**norm))
            load_strict(predictor, state["predictor"], f"{resume_from} [predictor]")  # all weights, all finite
            optimizer.load_state_dict(state["optimizer"])
            step, epoch, consumed = int(state["step"]), int(state["epoch"]), int(state["consumed"])
            rng = state["rng"][min(context.rank, len(state["rng"]) - 1)]
        except CheckpointError:
            raise
        except (KeyError, TypeError, IndexError) as err:
            raise CheckpointError(f"{resume_from}: incomplete train-ac checkpoint ({err})") from None
        except ValueError as err:
            raise CheckpointError(f"{resume_from}: optimizer state does not fit this model ({err})") from None
        set_rng_state(rng)
        log.info("resumed from %s at step %d", resume_from, step)
    trained = DistributedDataParallel(predictor, device_ids=[device.index] if device.type == "cuda" else None) if context.active else predictor
    stream = BatchStream(train, epoch, consumed)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and run.bf16)
    writer = None
    if context.is_main and run.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
    bar = tqdm(total=run.steps, initial=step, desc="train-ac", unit="step", disable=not (progress and context.is_main))
    last_log = time.perf_counter()
    while step < run.steps:
        batch = stream.next()
        lr = schedule(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.no_grad():
            z = batch_latents(model, batch, device)
        actions, states = batch["actions"].to(device), batch["states"].to(device)
        with autocast:
            loss = ac_loss(trained, z, actions, states, run.rollout_steps, run.rollout_context)
        if not torch.isfinite(loss.total):
            raise FloatingPointError(f"non-finite loss at step {step}; lower optim.lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(predictor.parameters(), o.grad_clip if o.grad_clip > 0 else math.inf)
        optimizer.step()
        step += 1
        bar.update(1)
        if step % run.log_every == 0 or step == run.steps:
            values = mean_across(torch.stack([loss.total, loss.teacher_forcing, loss.rollout]).detach().float(), context).tolist()
            bar.set_postfix(loss=f"{values[0]:.4f}", lr=f"{lr:.2e}")
            if writer is not None:
                now = time.perf_counter()
                for name, value in zip(("train/loss", "train/teacher_forcing", "train/rollout"), values):
                    writer.add_scalar(name, value, step)
                writer.add_scalar("train/lr", lr, step)
                writer.add_scalar("train/grad_norm", float(grad_norm), step)
                writer.add_scalar("train/steps_per_s", run.log_every / max(now - last_log, 1e-9), step)
                last_log = now
        if val is not None and (step % run.val_every == 0 or step == run.steps):
            metrics = evaluate(model, predictor, val.make(0), config, device, autocast)
            if metrics is not None:
                metrics = dict(zip(metrics, mean_across(torch.tensor(list(metrics.values()), device=device), context).tolist()))
                if context.is_main:
                    log.info("step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                    if writer is not None:
                        for name, value in metrics.items():
                            writer.add_scalar(name, value, step)
        if step % run.save_every == 0 or step == run.steps:
            _save(folder, checkpoints, step, stream, predictor, optimizer, config, context)
    bar.close()
    if writer is not None:
        writer.close()
    target = out / "world_model"
    if context.is_main:
        folder.export("world_model", lambda path: save_world_model(model.to("cpu"), path))
    barrier(context)
    return target


def _save(folder: RunFolder, directory: Path, step: int, stream: BatchStream, predictor, optimizer, config: ACTrainConfig,
          context: DistContext) -> None:
    rngs = gather_objects(rng_state(), context)  # every rank's RNG, restored per rank on resume
    norm = predictor.config.conditioning_norm
    if context.is_main:
        payload = {
            "predictor": predictor.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": stream.epoch,
            "consumed": stream.consumed,
            "rng": rngs,
            "config": to_dict(config),
            "conditioning_norm": None if norm is None else asdict(norm),
        }
        folder.write("config.yaml", lambda path: save_config(config, path))  # the settings of the run's latest stretch
        save_train_state(directory, step, payload, config.run.keep_checkpoints, folder)
    barrier(context)
