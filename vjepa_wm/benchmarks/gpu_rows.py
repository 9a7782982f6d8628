"""What each row of the GPU suite measures, by calling the benchmark that already times it.

A row function takes the suite's `RowContext` and returns the row's figures: ``seconds`` (the
timed unit: one planned action, one forward pass, one training step, one decode pass, one
matmul), ``figure`` and ``unit`` (the number the issue asks for: s/action, frames/s, clips/s,
TFLOP/s), ``matmul_fraction``, ``peak_gib``, ``dtype`` and ``details`` (the underlying
benchmark's own record). `FULL` holds the published sizes; `DRY` the same rows at tiny sizes,
so that one CPU thread runs every code path in about a minute.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from vjepa_wm.benchmarks import ac, droid, encoder, plan, pretrain
from vjepa_wm.benchmarks.gpu_fastpath import CompiledRollout, reset_compiled, sdpa_math


@dataclass(frozen=True)
class EncoderSize:
    preset: str
    frames: int
    size: int


@dataclass(frozen=True)
class PretrainSize:
    preset: str  # a `benchmarks.pretrain.SETUPS` preset
    frames: int
    size: int
    batches: tuple[int, ...]  # tried in order until one does not fit: the row reports the largest that did


@dataclass(frozen=True)
class DroidSize:
    resolutions: tuple[tuple[int, int], ...]  # (height, width) of the generated raw episodes
    episodes: int
    rows: int
    workers: tuple[int, ...]
    frames: int  # frames per clip: the AC step's clip length, so clips/s compare one for one
    stride: int
    clips_per_episode: int


@dataclass(frozen=True)
class Sizes:
    matmul: int  # side of the square reference matmul
    published: plan.PlanBench
    lean: plan.PlanBench
    sim: plan.PlanBench  # planned with the bundled sim model (its own architecture)
    encoder_g: EncoderSize
    encoder_l: EncoderSize
    pretrain: PretrainSize
    ac: ac.ACBench
    droid: DroidSize


FULL = Sizes(
    matmul=8192,
    published=plan.CONFIGS["published"],
    lean=plan.CONFIGS["lean"],
    sim=plan.CONFIGS["sim"],
    encoder_g=EncoderSize("vit_g", 16, 256),
    encoder_l=EncoderSize("vit_l", 16, 256),
    pretrain=PretrainSize("vit_l", 16, 256, (24, 48, 96)),
    ac=ac.CONFIGS["published"],
    droid=DroidSize(((180, 320), (720, 1280)), 8, 120, (0, 8), ac.CONFIGS["published"].frames, 4, 4),
)

DRY = Sizes(
    matmul=1024,
    published=plan.PlanBench("micro", "2", "micro", 64, 32, 3),
    lean=plan.PlanBench("micro", "2", "micro", 64, 16, 2),
    sim=plan.PlanBench("tiny", "2.1", "sim", 128, 16, 2),
    encoder_g=EncoderSize("micro", 4, 64),
    encoder_l=EncoderSize("tiny", 4, 64),
    pretrain=PretrainSize("tiny", 4, 64, (1, 2)),
    ac=ac.ACBench("micro", 96, 64, 2, frames=3),
    droid=DroidSize(((48, 64), (64, 96)), 2, 24, (0,), 3, 2, 2),
)


class RowContext(Protocol):
    device: torch.device
    sizes: Sizes
    repeats: int
    compile_backend: str
    results: dict[str, dict]  # rows measured so far, by name

    def matmul_rate(self) -> float: ...

    def model(self, key: str, build: Callable[[], object]): ...

    def remaining(self) -> float: ...


def _dtype(device: torch.device) -> str:
    return "bf16" if device.type == "cuda" else "fp32"


# ---------------------------------------------------------------------------- the reference


def matmul(ctx: RowContext) -> dict:
    """The dense matmul rate every fraction is taken of (bf16 on a GPU, fp32 on a CPU)."""
    rate = ctx.matmul_rate()
    return {"seconds": 2.0 * ctx.sizes.matmul**3 / rate, "figure": rate / 1e12, "unit": "TFLOP/s", "matmul_fraction": 1.0,
            "dtype": _dtype(ctx.device), "details": {"size": ctx.sizes.matmul}}


# ---------------------------------------------------------------------------- planning


def _vit_g_planner(ctx: RowContext):
    """The published planning model (shared by every published / lean row while they run in a row)."""
    return ctx.model("plan_vit_g", lambda: plan.build_model(ctx.sizes.published, ctx.device))


def _sim_planner(ctx: RowContext):
    def load():
        from vjepa_wm.sim_model import load_sim_model

        return load_sim_model().to(ctx.device)

    return ctx.model("plan_sim", load)


def _plan_row(ctx: RowContext, name: str, spec: plan.PlanBench, model) -> dict:
    # fold=False: the GPU path on every device, so a CPU dry run compares its variants like with like
    record = plan.bench_plan(name, spec, ctx.device, ctx.matmul_rate(), model, ctx.repeats, fold=False)
    return {"seconds": record["seconds_per_action"], "figure": record["seconds_per_action"], "unit": "s/action",
            "matmul_fraction": record["matmul_fraction"], "peak_gib": record["peak_gib"], "dtype": _dtype(ctx.device),
            "details": record}


def _compiled_plan_row(ctx: RowContext, name: str, spec: plan.PlanBench, model, mode: str | None) -> dict:
    backend = ctx.compile_backend
    try:
        row = _plan_row(ctx, name, spec, CompiledRollout(model, mode if backend == "inductor" else None, backend))
    finally:
        reset_compiled()
    row["details"].update(compile_backend=backend, compile_mode=mode, cuda_graphs=mode == "reduce-overhead" and ctx.device.type == "cuda")
    return row


def plan_published(ctx: RowContext) -> dict:
    return _plan_row(ctx, "published", ctx.sizes.published, _vit_g_planner(ctx))


def plan_lean(ctx: RowContext) -> dict:
    return _plan_row(ctx, "lean", ctx.sizes.lean, _vit_g_planner(ctx))


def plan_sim(ctx: RowContext) -> dict:
    return _plan_row(ctx, "sim", ctx.sizes.sim, _sim_planner(ctx))


def plan_lean_sdpa_math(ctx: RowContext) -> dict:
    with sdpa_math():
        row = _plan_row(ctx, "lean", ctx.sizes.lean, _vit_g_planner(ctx))
    row["details"]["sdpa"] = "math"
    return row


def plan_lean_compile(ctx: RowContext) -> dict:
    return _compiled_plan_row(ctx, "lean", ctx.sizes.lean, _vit_g_planner(ctx), None)


def plan_lean_cudagraphs(ctx: RowContext) -> dict:
    return _compiled_plan_row(ctx, "lean", ctx.sizes.lean, _vit_g_planner(ctx), "reduce-overhead")


def plan_published_compile(ctx: RowContext) -> dict:
    return _compiled_plan_row(ctx, "published", ctx.sizes.published, _vit_g_planner(ctx), None)


# ---------------------------------------------------------------------------- encoder


def _encoder_row(ctx: RowContext, size: EncoderSize) -> dict:
    record = encoder.bench_encoder(size.preset, ctx.device, size.frames, size.size, 1, ctx.repeats, version="2.1",
                                   matmul=ctx.matmul_rate())
    return {"seconds": record["seconds"], "figure": record["frames_per_s"], "unit": "frames/s",
            "matmul_fraction": record["matmul_fraction"], "peak_gib": record["peak_gib"], "dtype": record["dtype"],
            "details": record}


def encoder_vit_g(ctx: RowContext) -> dict:
    return _encoder_row(ctx, ctx.sizes.encoder_g)


def encoder_vit_l(ctx: RowContext) -> dict:
    return _encoder_row(ctx, ctx.sizes.encoder_l)


def encoder_vit_l_sdpa_math(ctx: RowContext) -> dict:
    with sdpa_math():
        row = _encoder_row(ctx, ctx.sizes.encoder_l)
    row["details"]["sdpa"] = "math"
    return row


# ---------------------------------------------------------------------------- training steps


def largest_fitting(try_batch: Callable[[int], dict], batches: tuple[int, ...], remaining: Callable[[], float]) -> dict:
    """The record of the largest of `batches` (ascending) that runs without running out of memory.

    Stops at the first batch that does not fit, or when the time left would not cover another
    try (taken as twice the last one); the first batch failing is the row's error."""
    best, tried, stopped = None, [], "all fitted"
    for batch in batches:
        began = time.perf_counter()
        try:
            record = try_batch(batch)
        except torch.OutOfMemoryError:
            if best is None:
                raise
            stopped = f"out of memory at batch {batch}"
            break
        finally:
            free_device_memory()
        best, last = record, time.perf_counter() - began
        tried.append(batch)
        if batch != batches[-1] and remaining() < 2 * last:
            stopped = "budget"
            break
    return {**best, "batches_fitted": tried, "search_stopped": stopped}


def free_device_memory() -> None:
    """Collect garbage and hand cached GPU memory back, so that what one measurement left behind
    never counts against the next."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def pretrain_vit_l(ctx: RowContext) -> dict:
    s = ctx.sizes.pretrain

    def try_batch(batch: int) -> dict:
        return pretrain.bench_pretrain(s.preset, ctx.device, s.frames, s.size, batch, ctx.repeats, ctx.matmul_rate())

    record = largest_fitting(try_batch, s.batches, ctx.remaining)
    return {"seconds": record["seconds_per_step"], "figure": record["clips_per_s"], "unit": "clips/s",
            "matmul_fraction": record["matmul_fraction"], "peak_gib": record["peak_gib"], "dtype": record["dtype"],
            "details": record}


def ac_published(ctx: RowContext) -> dict:
    record = ac.bench_training("published", ctx.sizes.ac, ctx.device, ctx.matmul_rate(), ctx.repeats)
    return {"seconds": 1.0 / record["steps_per_s"], "figure": record["clips_per_s"], "unit": "clips/s",
            "matmul_fraction": record["matmul_fraction"], "peak_gib": record["peak_gib"], "dtype": record["dtype"],
            "details": {**record, "latents": "pre-encoded (the latent cache): the frozen encoder's cost is the encoder rows'"}}


# ---------------------------------------------------------------------------- data


def _droid_row(ctx: RowContext, resolution: tuple[int, int]) -> dict:
    s = ctx.sizes.droid
    records = droid.run(None, [resolution], s.episodes, s.rows, list(s.workers), s.frames, s.stride, s.clips_per_episode,
                        ctx.repeats)
    best = max(records, key=lambda r: r["clips_per_s"])
    details = {"passes": records, "best_workers": best["workers"]}
    consumed = ctx.results.get("ac_published", {}).get("figure")
    if consumed:  # > 1: the reader outpaces what one GPU's AC step consumes
        details.update(ac_clips_per_s=consumed, loader_margin=best["clips_per_s"] / consumed)
    return {"seconds": best["seconds"], "figure": best["clips_per_s"], "unit": "clips/s", "matmul_fraction": None,
            "peak_gib": None, "dtype": "uint8", "details": details}


def droid_180p(ctx: RowContext) -> dict:
    return _droid_row(ctx, ctx.sizes.droid.resolutions[0])


def droid_720p(ctx: RowContext) -> dict:
    return _droid_row(ctx, ctx.sizes.droid.resolutions[-1])
