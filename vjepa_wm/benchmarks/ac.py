"""Action-conditioned predictor training speed (steps/s, matmul fraction, peak GPU memory) and
raw-DROID decode speed, for `vjepa-wm bench ac`.

Training is timed on pre-encoded latents (as with the latent cache), one optimisation step =
teacher forcing over T-1 steps + the 2-step rollout + backward + AdamW. FLOPs count the useful
(block-causal) work of the forward passes, times 3 for forward + backward.

* sim: the bundled sim predictor (128 wide, 4 blocks) on 128-px frames, batch 32, on CPU;
* published: the 24 x 1024 V-JEPA 2-AC predictor on ViT-g latents of 256-px frames, 8 per GPU, bf16.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vjepa_wm.benchmarks.common import device_name, matmul_rate, peak_memory_gib, runnable, time_call
from vjepa_wm.world_model.ac_predictor import ACPredictor, ac_predictor_config
from vjepa_wm.world_model.ac_training.loss import ac_loss

COLUMNS = ["config", "device", "dtype", "batch", "frames", "steps_per_s", "clips_per_s", "tflops", "matmul_fraction", "peak_gib"]


@dataclass(frozen=True)
class ACBench:
    predictor: str
    embed_dim: int
    img_size: int
    batch: int
    frames: int = 8
    rollout_steps: int = 2
    gpu_only: bool = False


CONFIGS = {
    "sim": ACBench("sim", 192, 128, 32),
    "published": ACBench("vitg_ac", 1408, 256, 8, gpu_only=True),
}


def forward_flops(predictor: ACPredictor, steps: int) -> float:
    return sum(predictor.flops_per_step(history) for history in range(steps))


def bench_training(name: str, spec: ACBench, device: torch.device, matmul: float, repeats: int = 3) -> dict:
    torch.manual_seed(0)
    predictor = ACPredictor(ac_predictor_config(spec.predictor, spec.embed_dim, spec.img_size)).to(device).train()
    optimizer = torch.optim.AdamW(predictor.parameters(), lr=1e-4)
    n = predictor.config.tokens_per_frame
    z = torch.nn.functional.layer_norm(torch.randn(spec.batch, spec.frames * n, spec.embed_dim, device=device), (spec.embed_dim,))
    width = predictor.config.action_dim
    actions = 0.05 * torch.randn(spec.batch, spec.frames - 1, width, device=device)
    states = torch.rand(spec.batch, spec.frames, width, device=device)
    use_bf16 = device.type == "cuda"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = ac_loss(predictor, z, actions, states, spec.rollout_steps)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()

    seconds = time_call(step, device, repeats=repeats, warmup=1)
    flops = 3 * spec.batch * (forward_flops(predictor, spec.frames - 1) + forward_flops(predictor, spec.rollout_steps))
    return {
        "benchmark": "ac_train",
        "config": name,
        "device": device_name(device),
        "dtype": "bf16" if use_bf16 else "fp32",
        "batch": spec.batch,
        "frames": spec.frames,
        "steps_per_s": 1.0 / seconds,
        "clips_per_s": spec.batch / seconds,
        "tflops": flops / seconds / 1e12,
        "matmul_fraction": flops / seconds / matmul,
        "peak_gib": peak_memory_gib(device),
    }


def run(names: list[str], device: torch.device, repeats: int = 3) -> list[dict]:
    names = runnable(names, CONFIGS, device, "ac")
    matmul = matmul_rate(device)
    records = []
    for name in names:
        records.append(bench_training(name, CONFIGS[name], device, matmul, repeats))
    return records
