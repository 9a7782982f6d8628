"""Pretraining throughput: training clips/s of one full step (EMA targets, context encoder and
predictor over both mask sets, backward, AdamW, EMA update) on random clips, the model FLOP/s
it reaches as a fraction of the dense matmul rate, and the peak memory per GPU.

Model FLOPs count the forward passes (target encoder once, context encoder and predictor once
per mask set) and twice that for the backward; recomputation by activation checkpointing is
not counted, as is usual for model-FLOP utilisation.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from vjepa_wm.benchmarks.common import device_name, matmul_rate, peak_memory_gib, time_call
from vjepa_wm.config_cli import shipped_folder
from vjepa_wm.world_model.configuration import load_config
from vjepa_wm.world_model.pretraining.config import PretrainConfig
from vjepa_wm.world_model.pretraining.data import Batch
from vjepa_wm.world_model.pretraining.masks import multiblock_masks
from vjepa_wm.world_model.pretraining.trainer import Pretrainer
from vjepa_wm.world_model.training.distributed import DistContext

COLUMNS = ["preset", "device", "dtype", "frames", "size", "batch", "clips_per_s", "tflops", "matmul_tflops", "matmul_fraction", "peak_gib"]
# preset -> (shipped config whose model is measured, clips per step on one device)
SETUPS = {"tiny": ("tiny_sim.yaml", 8), "vit_l": ("vitl16.yaml", 24), "vit_g": ("vitg16.yaml", 24)}


def step_flops(trainer: Pretrainer, frames: int, size: int, batch: int) -> float:
    """Model FLOPs of one training step over `batch` clips (masks of step 0)."""
    encoder, predictor = trainer.encoder, trainer.predictor
    grid = encoder.grid((batch, 3, frames, size, size))
    tokens = grid[0] * grid[1] * grid[2]
    total = encoder.flops_per_clip(tokens)  # EMA targets: forward only
    for pair in multiblock_masks(tuple(trainer.config.masks.video), batch, grid, trainer.config.run.seed, 0):
        kept, hidden = pair.keep.shape[1], pair.targets.shape[1]
        total += 3 * (encoder.flops_per_clip(kept) + predictor.flops_per_sample(kept, hidden))
    return batch * total


def bench_pretrain(preset: str, device: torch.device, frames: int | None, size: int | None, batch: int | None,
                   repeats: int, matmul: float, config_path: Path | None = None) -> dict:
    name, default_batch = SETUPS[preset]
    config_path = config_path or shipped_folder("pretrain") / name
    if not config_path.is_file():
        raise ValueError(f"{config_path}: benchmark config not found (pass --config)")
    base = load_config(PretrainConfig, config_path)
    frames = frames or base.phases[0].frames
    size = size or base.phases[0].crop
    batch = batch or default_batch
    with tempfile.TemporaryDirectory() as scratch:
        config = load_config(PretrainConfig, config_path, {
            "phases": [{"steps": 1_000_000, "frames": frames, "crop": size, "batch_size": batch, "image_batch_size": 0}],
            "run.out_dir": scratch, "run.device": str(device), "run.tensorboard": False, "run.progress": False,
            "optim.warmup_steps": 0, "optim.cooldown_steps": 0, "data.video_dirs": ["(random clips)"], "data.image_dirs": [],
        })
        trainer = Pretrainer(config, DistContext(), device)
        clips = Batch(torch.randn(batch, 3, frames, size, size, device=device), None, [])
        counter = iter(range(1_000_000))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = time_call(lambda: trainer.train_step(clips, next(counter)), device, repeats=repeats, warmup=2)
        flops = step_flops(trainer, frames, size, batch)
    return {
        "benchmark": "pretrain",
        "preset": preset,
        "device": device_name(device),
        "dtype": "bf16" if trainer.bf16 else "fp32",
        "frames": frames,
        "size": size,
        "batch": batch,
        "seconds_per_step": seconds,
        "clips_per_s": batch / seconds,
        "tflops": flops / seconds / 1e12,
        "matmul_tflops": matmul / 1e12,
        "matmul_fraction": flops / seconds / matmul,
        "peak_gib": peak_memory_gib(device),
    }


def run(presets: list[str], device: torch.device, frames: int | None, size: int | None, batch: int | None,
        repeats: int, config_path: Path | None = None) -> list[dict]:
    from tqdm import tqdm

    unknown = sorted(set(presets) - set(SETUPS))
    if unknown:
        raise ValueError(f"no pretraining benchmark for {unknown[0]!r}; choose from {', '.join(SETUPS)}")
    matmul = matmul_rate(device)
    return [
        bench_pretrain(p, device, frames, size, batch, repeats, matmul, config_path)
        for p in tqdm(presets, desc="bench pretrain", unit="preset")
    ]
