"""Planning speed: seconds per planned action (encode the current image + the CEM search) and the
fraction of the dense matmul rate it reaches, for three configurations:

* published: ViT-g encoder + the 24 x 1024 AC predictor, 800 samples x 10 iterations, horizon 1
  (V-JEPA 2-AC: 16 s per action on an RTX 4090), random weights, GPU only;
* lean: the same model, 256 x 5;
* sim: the small simulation model (the bundled one when it exists, or --model), 64 x 5, on CPU.

On a CPU each configuration is measured with the planner's RoPE folding (`planner.planning_model`)
and without it, side by side in the same run (column `rope_folded`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vjepa_wm.benchmarks.common import device_name, matmul_rate, peak_memory_gib, runnable, synchronize
from vjepa_wm.embodiments import Franka
from vjepa_wm.planner.cem import CEM, CEMConfig
from vjepa_wm.planner.energy import rollout_energy
from vjepa_wm.planner.planning_model import planning_model
from vjepa_wm.world_model.ac_predictor import ACPredictor, ac_predictor_config
from vjepa_wm.world_model.checkpoints import load_world_model
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config
from vjepa_wm.world_model.world_model import WorldModel

COLUMNS = ["config", "device", "rope_folded", "samples", "iterations", "horizon", "seconds_per_action", "tflops", "matmul_tflops",
           "matmul_fraction", "peak_gib"]


@dataclass(frozen=True)
class PlanBench:
    encoder: str
    version: str
    predictor: str
    img_size: int
    samples: int
    iterations: int
    horizon: int = 1
    gpu_only: bool = False


CONFIGS = {
    "published": PlanBench("vit_g", "2", "vitg_ac", 256, 800, 10, gpu_only=True),
    "lean": PlanBench("vit_g", "2", "vitg_ac", 256, 256, 5, gpu_only=True),
    "sim": PlanBench("tiny", "2.1", "sim", 128, 64, 5),  # the bundled sim model's architecture
}


def build_model(spec: PlanBench, device: torch.device) -> WorldModel:
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config(spec.encoder, spec.version))
    predictor = ACPredictor(ac_predictor_config(spec.predictor, encoder.embed_dim, spec.img_size))
    return WorldModel(encoder, predictor, spec.img_size, Franka()).to(device).eval()


def action_flops(model: WorldModel, samples: int, iterations: int, horizon: int) -> float:
    per_candidate = sum(model.predictor.flops_per_step(h) for h in range(horizon))
    encode = model.encoder.flops_per_clip(model.tokens_per_frame)
    return samples * iterations * per_candidate + encode


def bench_plan(name: str, spec: PlanBench, device: torch.device, matmul: float, model: WorldModel, repeats: int = 3,
               fold: bool = True) -> dict:
    planned = planning_model(model, device, spec.horizon, fold=fold)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (model.img_size, model.img_size, 3), dtype=np.uint8)
    goal = rng.integers(0, 256, (model.img_size, model.img_size, 3), dtype=np.uint8)
    state = torch.zeros(1, model.embodiment.state_dim, device=device)  # where it starts does not change the cost
    cem = CEM(CEMConfig(samples=spec.samples, iterations=spec.iterations, horizon=spec.horizon), model.embodiment, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    with torch.no_grad(), autocast:
        z_goal = model.encode_images(goal)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def one_action():
        import time

        start = time.perf_counter()
        with torch.no_grad(), autocast:
            z = model.encode_images(image)
            plan = cem.search(rollout_energy(planned, z, state, z_goal))
        plan.first_action.cpu()
        synchronize(device)
        return time.perf_counter() - start

    one_action()  # warm-up
    seconds = float(np.median([one_action() for _ in range(repeats)]))
    flops = action_flops(model, spec.samples, spec.iterations, spec.horizon)
    return {
        "benchmark": "plan",
        "config": name,
        "device": device_name(device),
        "rope_folded": planned is not model,
        "samples": spec.samples,
        "iterations": spec.iterations,
        "horizon": spec.horizon,
        "img_size": model.img_size,
        "seconds_per_action": seconds,
        "tflops": flops / seconds / 1e12,
        "matmul_tflops": matmul / 1e12,
        "matmul_fraction": flops / seconds / matmul,
        "peak_gib": peak_memory_gib(device),
    }


def run(names: list[str], device: torch.device, model_dir: str | None = None, repeats: int = 3,
        folding: tuple[bool, ...] = (True, False)) -> list[dict]:
    matmul = matmul_rate(device)
    records = []
    for name in runnable(names, CONFIGS, device, "plan"):
        spec = CONFIGS[name]
        model = None
        if name == "sim":
            from vjepa_wm.sim_model import BUNDLED_SIM_MODEL

            source = model_dir or (BUNDLED_SIM_MODEL if (BUNDLED_SIM_MODEL / "config.json").exists() else None)
            model = load_world_model(source).to(device) if source else None
        model = model or build_model(spec, device)
        for fold in folding if device.type == "cpu" else (False,):
            records.append(bench_plan(name, spec, device, matmul, model, repeats, fold))
    return records
