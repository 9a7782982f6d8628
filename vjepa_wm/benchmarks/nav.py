"""Planning cost of one navigation plan, ours against NWM's, on the same device in the same run.

**Ours** (`evaluation.nav.NavPlanner.plan`, what nav-replay times): encode the 4 context frames
and the goal frame, run the 3 earlier context steps once into the predictor's KV cache, then CEM
at NWM's published budget: 120 candidates, top 5, 1 iteration, horizon 8, every candidate rolled
out through the block-causal predictor in one batched pass per step. The model is --model, else
the bundled sim car model (`vjepa_wm/assets/nav_model`) if installed, else random weights of the
`nav_sim` configs' sizes. Timed whole (median of --repeats, after a warm-up).

**NWM** (facebookresearch/nwm `planning_eval.py`, `models.py`, `config/nwm_cdit_xl.yaml`, read for
facts): CDiT-XL/2, depth 28, width 1152, 16 heads, MLP ratio 4, 224 px frames -> SD-VAE latents
4 x 28 x 28 -> patch 2 -> T = 196 tokens per frame, 4 context frames. A CDiT block is adaLN-zero
modulated (11 vectors from the conditioning: diffusion step + action + time shift): self-attention
over the T target tokens, cross-attention from them to the 4T context tokens (embedded once, then
layer-normed and modulated in every block; keys and values carry one extra learned bias key), and
an MLP. `CDiTStack` is our own implementation of that structure (random weights; no NWM code is
used), so it has the same matmuls and FLOPs; its element-wise details may differ. Planning runs
each of 120 samples autoregressively for 8 frames, each frame a 250-step DDPM sample, and repeats
the evaluation 3 times (LPIPS averaged), in batches of 120: 8 x 250 x 3 = 6000 forwards of batch 120
per plan. One forward is timed (median of --nwm-timed; after a warm-up on a GPU) at --nwm-batch (default 120
on a GPU, as NWM runs it; 1 on a CPU, where an XL forward takes seconds) and scaled to the plan:
seconds per plan = seconds per forward / batch x samples x horizon x steps x repeats. Not counted:
the SD-VAE encode and decode around each frame and the LPIPS network, so NWM's figure is a lower bound.

FLOPs (2 per multiply-add; matmuls and attention only, as `torch.utils.flop_counter` counts them).
NWM, one sample, width d, depth L, T tokens per frame, C context frames, p patch, c latent channels:

    block  = 8 T d^2 + 4 T^2 d                      self-attention (qkv + out; scores + values)
           + 4 T d^2 + 4 C T d^2 + 4 T (C T + 1) d  cross-attention (q + out; k, v of the context; scores + values)
           + 16 T d^2                              MLP (ratio 4)
           + 22 d^2                                adaLN (11 d outputs from the conditioning vector)
    embed  = 2 (C + 1) T p^2 c d                    patch embedding of the noisy frame and the context
           + 4 (256 d + d^2) + 2 (256 d + d^2 / 3)  diffusion-step and time-shift embedders (sinusoid 256 -> d -> d),
                                                    action embedders (x, y, yaw: 256 -> d/3 -> d/3 each)
    final  = 4 d^2 + 2 T d p^2 2c                   final adaLN (2 d) and projection (mean and variance)
    forward = L block + embed + final;  plan = samples x horizon x steps x repeats x forward

Ours, predictor depth L, width w, MLP hidden m, N patch tokens + 2 condition tokens per step,
encoder width e: a step with k cached steps costs (`ACPredictor.flops_per_step`)

    step(k) = L [8 (N+2) w^2 + 4 (N+2) w m + 4 (N+2)^2 (k+1) w] + 4 N e w + 4 A w

    plan = 5 encode(N)  +  sum_{k<3} step(k)  +  samples x iterations x sum_{h<8} step(3 + h)

with encode(N) the encoder's forward over one frame (`VisionTransformer.flops_per_clip`, its patch
embedding over one frame where a 2.1 image tokenizer embeds it). Our first imagined step embeds the
shared current frame once for all candidates, so the count errs high by that embedding (< 1%).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vjepa_wm.benchmarks.common import device_name, matmul_rate, synchronize

COLUMNS = ["method", "device", "model", "samples", "horizon", "forward_batch", "forwards_per_plan", "seconds_per_forward",
           "seconds_per_plan", "tflop_per_plan", "tflops", "matmul_fraction", "times_ours"]
FREQUENCIES = 256  # sinusoid features of NWM's scalar embedders


@dataclass(frozen=True)
class CDiTSize:
    """A CDiT's size and token count (defaults: NWM's CDiT-XL/2 on 224 px frames)."""

    depth: int = 28
    width: int = 1152
    heads: int = 16
    image_size: int = 224  # px (config/nwm_cdit_xl.yaml image_size)
    vae_factor: int = 8  # SD-VAE downsampling
    channels: int = 4  # SD-VAE latent channels
    patch: int = 2
    context: int = 4  # context frames

    def __post_init__(self):
        for name in ("depth", "width", "heads", "image_size", "vae_factor", "channels", "patch", "context"):
            if getattr(self, name) < 1:
                raise ValueError(f"the CDiT's {name} must be at least 1, got {getattr(self, name)}")
        if self.width % self.heads or self.width % 3:
            raise ValueError(f"the CDiT width must divide into {self.heads} heads and 3 action embeddings, got {self.width}")
        if self.image_size % (self.vae_factor * self.patch):
            raise ValueError(f"image_size must be a multiple of {self.vae_factor * self.patch}, got {self.image_size}")

    @property
    def latent(self) -> int:
        return self.image_size // self.vae_factor

    @property
    def tokens(self) -> int:
        return (self.latent // self.patch) ** 2


@dataclass(frozen=True)
class NWMBudget:
    """NWM's published planning budget (README command of planning_eval.py)."""

    samples: int = 120
    horizon: int = 8  # autoregressive frames per sample
    steps: int = 250  # DDPM steps per frame
    repeats: int = 3  # stochastic repeats of the evaluation

    def __post_init__(self):
        for name in ("samples", "horizon", "steps", "repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"NWM's budget: {name} must be at least 1, got {getattr(self, name)}")

    @property
    def forwards(self) -> int:
        """Per-sample forwards per plan."""
        return self.samples * self.horizon * self.steps * self.repeats


def cdit_flops(size: CDiTSize) -> float:
    """FLOPs of one CDiT forward for one sample (the module docstring's formula)."""
    d, t, c, L = size.width, size.tokens, size.context, size.depth
    block = 8 * t * d**2 + 4 * t**2 * d + 4 * t * d**2 + 4 * c * t * d**2 + 4 * t * (c * t + 1) * d + 16 * t * d**2 + 22 * d**2
    embed = 2 * (c + 1) * t * size.patch**2 * size.channels * d + 4 * (FREQUENCIES * d + d**2) + 2 * (FREQUENCIES * d + d**2 / 3)
    final = 4 * d**2 + 2 * t * d * size.patch**2 * 2 * size.channels
    return float(L * block + embed + final)


# ---------------------------------------------------------------------------- the CDiT stand-in


def sinusoid(values: torch.Tensor, dim: int = FREQUENCIES) -> torch.Tensor:
    """``[B]`` scalars -> ``[B, dim]`` sin/cos features at geometric frequencies."""
    freqs = torch.exp(-math.log(10_000) * torch.arange(dim // 2, device=values.device, dtype=torch.float32) / (dim // 2))
    angles = values.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], -1)


class ScalarEmbedder(nn.Module):
    """A scalar -> sinusoid features -> MLP to `dim` (the diffusion step, the time shift, one action part)."""

    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(FREQUENCIES, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoid(values))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class CDiTBlock(nn.Module):
    """Self-attention over the frame's tokens, cross-attention to the context tokens, MLP; all adaLN-zero modulated."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.modulation = nn.Linear(dim, 11 * dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.q, self.kv, self.out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.bias_kv = nn.Parameter(torch.zeros(2, 1, 1, dim))  # one learned key and value beside the context's
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, n, d = q.shape
        heads = [x.view(b, -1, self.heads, d // self.heads).transpose(1, 2) for x in (q, k, v)]
        return F.scaled_dot_product_attention(*heads).transpose(1, 2).reshape(b, n, d)

    def forward(self, x: torch.Tensor, c: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        (shift_sa, scale_sa, gate_sa, shift_ctx, scale_ctx, shift_ca, scale_ca, gate_ca,
         shift_mlp, scale_mlp, gate_mlp) = self.modulation(F.silu(c)).chunk(11, -1)
        d = x.shape[-1]
        h = modulate(F.layer_norm(x, (d,)), shift_sa, scale_sa)
        x = x + gate_sa[:, None] * self.proj(self.attend(*self.qkv(h).chunk(3, -1)))
        ctx = modulate(F.layer_norm(context, (d,)), shift_ctx, scale_ctx)
        k, v = self.kv(ctx).chunk(2, -1)
        bias_k, bias_v = (b.expand(x.shape[0], 1, d) for b in self.bias_kv)
        h = modulate(F.layer_norm(x, (d,)), shift_ca, scale_ca)
        x = x + gate_ca[:, None] * self.out(self.attend(self.q(h), torch.cat([k, bias_k], 1), torch.cat([v, bias_v], 1)))
        return x + gate_mlp[:, None] * self.mlp(modulate(F.layer_norm(x, (d,)), shift_mlp, scale_mlp))


class CDiTStack(nn.Module):
    """A CDiT of `size` with random weights: one denoising forward of the next frame's latent,
    conditioned on the context latents, the diffusion step, the action (dx, dy, dyaw) and the time shift."""

    def __init__(self, size: CDiTSize):
        super().__init__()
        d, p = size.width, size.patch
        self.size = size
        self.patchify = nn.Conv2d(size.channels, d, p, stride=p)
        self.position = nn.Parameter(torch.randn(size.context + 1, size.tokens, d) * 0.02)
        self.step_embed, self.shift_embed = ScalarEmbedder(d), ScalarEmbedder(d)
        self.action_embed = nn.ModuleList(ScalarEmbedder(d // 3) for _ in range(3))
        self.blocks = nn.ModuleList(CDiTBlock(d, size.heads) for _ in range(size.depth))
        self.final_modulation = nn.Linear(d, 2 * d)
        self.final = nn.Linear(d, p * p * 2 * size.channels)  # learned sigma: mean and variance per channel

    def tokens(self, latents: torch.Tensor) -> torch.Tensor:
        return self.patchify(latents).flatten(2).transpose(1, 2)

    def forward(self, x, step, action, context, shift) -> torch.Tensor:
        """``x`` ``[B, c, l, l]``, ``step``/``shift`` ``[B]``, ``action`` ``[B, 3]``, ``context`` ``[B, C, c, l, l]``
        -> ``[B, 2c, l, l]``."""
        s = self.size
        b = x.shape[0]
        h = self.tokens(x) + self.position[-1]
        ctx = (self.tokens(context.flatten(0, 1)).view(b, s.context, s.tokens, -1) + self.position[:-1]).flatten(1, 2)
        c = self.step_embed(step) + self.shift_embed(shift) + torch.cat([e(action[:, i]) for i, e in enumerate(self.action_embed)], -1)
        for block in self.blocks:
            h = block(h, c, ctx)
        shift_out, scale_out = self.final_modulation(F.silu(c)).chunk(2, -1)
        h = self.final(modulate(F.layer_norm(h, (h.shape[-1],)), shift_out, scale_out))
        grid = s.latent // s.patch
        h = h.view(b, grid, grid, s.patch, s.patch, 2 * s.channels).permute(0, 5, 1, 3, 2, 4)
        return h.reshape(b, 2 * s.channels, s.latent, s.latent)


def cdit_inputs(size: CDiTSize, batch: int, device: torch.device) -> tuple:
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(batch, size.context + 1, size.channels, size.latent, size.latent, generator=g)
    action = torch.randn(batch, 3, generator=g)
    step = torch.randint(0, 250, (batch,), generator=g).float()
    return tuple(v.to(device) for v in (latents[:, -1], step, action, latents[:, :-1], torch.full((batch,), 1 / 128)))


def time_cdit(size: CDiTSize, batch: int, device: torch.device, repeats: int) -> float:
    """Median seconds of one CDiT forward at `batch` (bf16 autocast on a GPU, as NWM samples). A GPU
    gets a warm-up forward first (kernel selection); a CPU does not: an XL forward there takes tens
    of seconds, against which first-call overheads do not show."""
    torch.manual_seed(0)
    model = CDiTStack(size).to(device).eval()
    inputs = cdit_inputs(size, batch, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    warmup = int(device.type == "cuda")
    times = []
    with torch.no_grad(), autocast:
        for run in range(warmup + repeats):
            synchronize(device)
            start = time.perf_counter()
            model(*inputs)
            synchronize(device)
            if run >= warmup:
                times.append(time.perf_counter() - start)
    del model
    return float(np.median(times))


# ---------------------------------------------------------------------------- ours


def nav_sim_model(device: torch.device):
    """Random weights of the shipped nav_sim configs' sizes (encoder preset, predictor preset, frame size)."""
    import yaml

    from vjepa_wm.config_cli import shipped_folder
    from vjepa_wm.embodiments import Car
    from vjepa_wm.world_model.ac_predictor import ACPredictor, ac_predictor_config
    from vjepa_wm.world_model.vit import VisionTransformer, encoder_config
    from vjepa_wm.world_model.world_model import WorldModel

    encoder_settings = yaml.safe_load((shipped_folder("pretrain") / "nav_sim.yaml").read_text())["model"]
    model_settings = yaml.safe_load((shipped_folder("train_ac") / "nav_sim.yaml").read_text())["model"]
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config(encoder_settings["preset"], str(encoder_settings["version"])))
    size = int(model_settings["img_size"])
    predictor = ACPredictor(ac_predictor_config(model_settings["predictor"], encoder.embed_dim, img_size=size, action_dim=3))
    return WorldModel(encoder, predictor, size, Car()).to(device).eval()


def our_model(model_dir: str | None, device: torch.device):
    """(model, what it is): --model, the bundled sim car model if installed, else random nav_sim-sized weights."""
    from vjepa_wm.world_model.checkpoints import load_world_model

    if model_dir:
        if not Path(model_dir).is_dir():
            raise ValueError(f"--model {model_dir}: not a world model directory")
        return load_world_model(model_dir).eval().to(device), str(model_dir)
    from vjepa_wm.sim_model import BUNDLED_NAV_MODEL

    if (BUNDLED_NAV_MODEL / "config.json").is_file():
        return load_world_model(BUNDLED_NAV_MODEL).eval().to(device), "bundled nav_model"
    return nav_sim_model(device), "nav_sim size, random weights"


def frame_flops(encoder, tokens: int) -> float:
    """FLOPs of encoding one frame: `flops_per_clip`, whose patch embedding spans a tubelet, less
    the tubelet's extra frames where a 2.1 image tokenizer embeds the frame alone."""
    c = encoder.config
    tubelet = 1 if c.image_tokenizer else c.tubelet_size
    return encoder.flops_per_clip(tokens) - 2 * tokens * c.embed_dim * c.in_chans * (c.tubelet_size - tubelet) * c.patch_size**2


def our_plan_flops(model, samples: int, iterations: int, horizon: int, context: int) -> float:
    """FLOPs of one plan (the module docstring's formula)."""
    step = model.predictor.flops_per_step
    encode = (context + 1) * frame_flops(model.encoder, model.tokens_per_frame)
    history = sum(step(k) for k in range(context - 1))
    return float(encode + history + samples * iterations * sum(step(context - 1 + h) for h in range(horizon)))


def situation(model, context: int, rng: np.random.Generator):
    """Random frames at the model's size and a straight context drive (the cost does not depend on them)."""
    from vjepa_wm.evaluation.nav import Situation

    s = model.img_size
    frames = rng.integers(0, 256, (context + 1, s, s, 3), dtype=np.uint8)
    poses = np.stack([np.arange(-context + 1, 1) * 0.72, np.zeros(context), np.zeros(context)], 1)
    return Situation(frames[:-1], frames[-1], poses, np.zeros((8, 3)), np.zeros(3))


def our_planner(model, mode: str, budget: NWMBudget, device: torch.device, context: int):
    from vjepa_wm.evaluation.nav import NavPlanner, NavReplayConfig, nwm_cem_config

    cem = replace(nwm_cem_config(), samples=budget.samples, horizon=budget.horizon)
    return NavPlanner(model, NavReplayConfig(mode=mode, context=context, cem=cem, device=str(device)))


def time_ours(planner, s, repeats: int) -> float:
    planner.plan(s)  # warm-up
    return float(np.median([planner.plan(s)[1] for _ in range(repeats)]))


def run(model_dir: str | None, device: torch.device, mode: str = "nwm", repeats: int = 3, nwm: CDiTSize | None = None,
        budget: NWMBudget | None = None, nwm_batch: int | None = None, nwm_timed: int = 1) -> list[dict]:
    """Both rows (ours, NWM), each with its seconds and FLOPs per plan and NWM's multiple of ours."""
    nwm, budget = nwm or CDiTSize(), budget or NWMBudget()
    batch = nwm_batch or (budget.samples if device.type == "cuda" else 1)
    if batch < 1 or repeats < 1 or nwm_timed < 1:
        raise ValueError("--nwm-batch, --repeats and --nwm-timed must be at least 1")
    matmul = matmul_rate(device)
    model, described = our_model(model_dir, device)
    context = nwm.context
    planner = our_planner(model, mode, budget, device, context)
    ours_seconds = time_ours(planner, situation(model, context, np.random.default_rng(0)), repeats)
    ours_flops = our_plan_flops(model, budget.samples, 1, budget.horizon, context)
    forward_seconds = time_cdit(nwm, batch, device, nwm_timed)
    forwards = budget.forwards / batch
    nwm_seconds = forward_seconds * forwards
    nwm_flops = cdit_flops(nwm) * budget.forwards
    where = device_name(device)

    def row(method, what, forward_batch, n, per_forward, seconds, flops):
        return {"benchmark": "nav", "method": method, "device": where, "model": what, "samples": budget.samples,
                "horizon": budget.horizon, "forward_batch": forward_batch, "forwards_per_plan": n,
                "seconds_per_forward": per_forward, "seconds_per_plan": seconds, "tflop_per_plan": flops / 1e12,
                "tflops": flops / seconds / 1e12, "matmul_tflops": matmul / 1e12, "matmul_fraction": flops / seconds / matmul,
                "times_ours": seconds / ours_seconds, "flop_times_ours": flops / ours_flops}

    s = nwm
    return [
        {**row("ours", described, budget.samples, budget.horizon, None, ours_seconds, ours_flops), "mode": mode,
         "iterations": 1, "context": context},
        {**row("nwm", f"CDiT d{s.depth} w{s.width}, {s.tokens} tokens/frame x {s.context} context, random weights", batch,
               forwards, forward_seconds, nwm_seconds, nwm_flops),
         "denoising_steps": budget.steps, "repeats": budget.repeats, "scaled_from_batch": batch,
         "flop_per_sample_forward": cdit_flops(nwm)},
    ]
