"""Encoder forward throughput: frames/s and the fraction of the matmul rate it reaches."""
from __future__ import annotations

import torch

from vjepa_wm.benchmarks.common import device_name, matmul_rate, peak_memory_gib, time_call
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config

COLUMNS = ["preset", "device", "dtype", "frames", "size", "frames_per_s", "tflops", "matmul_tflops", "matmul_fraction", "peak_gib"]


def bench_encoder(preset: str, device: torch.device, frames: int = 16, size: int = 256, batch: int = 1, repeats: int = 3, version: str = "2.1", matmul: float | None = None) -> dict:
    torch.manual_seed(0)
    model = VisionTransformer(encoder_config(preset, version)).to(device).eval()
    video = torch.randn(batch, 3, frames, size, size, device=device)
    use_bf16 = device.type == "cuda"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def forward():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return model(video)

    seconds = time_call(forward, device, repeats=repeats, warmup=1)
    tokens = (frames // model.config.tubelet_size) * (size // 16) ** 2
    flops = model.flops_per_clip(tokens) * batch
    matmul = matmul or matmul_rate(device)
    return {
        "benchmark": "encoder",
        "preset": preset,
        "device": device_name(device),
        "dtype": "bf16" if use_bf16 else "fp32",
        "frames": frames,
        "size": size,
        "batch": batch,
        "seconds": seconds,
        "frames_per_s": batch * frames / seconds,
        "tflops": flops / seconds / 1e12,
        "matmul_tflops": matmul / 1e12,
        "matmul_fraction": flops / seconds / matmul,
        "peak_gib": peak_memory_gib(device),
    }


def run(presets: list[str], device: torch.device, frames: int, size: int, batch: int, repeats: int) -> list[dict]:
    from tqdm import tqdm

    matmul = matmul_rate(device)
    records = []
    for preset in tqdm(presets, desc="bench encoder", unit="preset"):
        records.append(bench_encoder(preset, device, frames, size, batch, repeats, matmul=matmul))
    return records
