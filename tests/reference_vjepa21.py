"""An independent, deliberately plain re-derivation of the V-JEPA 2.1 encoder forward pass.

There is no installable V-JEPA 2.1 implementation to test against (the Hugging Face port covers
V-JEPA 2 only), so this module recomputes the published 2.1 architecture from the paper's and
the official code's definitions in a different way from `world_model`: explicit per-position
2x2 rotation matrices for RoPE (true rotations of adjacent channel pairs), per-axis Python loops,
hand-written attention softmax and layer norm, reading an official-layout state dict directly.
"""
from __future__ import annotations

import math

import torch


def layer_norm(x, weight, bias, eps=1e-6):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def rotate_pairs(x, positions):
    """True RoPE on x [heads, N, d] with per-token positions [N]: pair (2i, 2i+1) turns by pos*w_i."""
    heads, tokens, d = x.shape
    out = torch.empty_like(x)
    for i in range(d // 2):
        w = 1.0 / (10000 ** (i / (d / 2)))
        angle = positions * w
        c, s = torch.cos(angle), torch.sin(angle)
        a, b = x[..., 2 * i], x[..., 2 * i + 1]
        out[..., 2 * i] = a * c - b * s
        out[..., 2 * i + 1] = a * s + b * c
    return out


def token_coordinates(ids, rows, cols, interpolate):
    frame = torch.tensor([float(i // (rows * cols)) for i in ids.tolist()])
    row = torch.tensor([float((i % (rows * cols)) // cols) for i in ids.tolist()])
    col = torch.tensor([float(i % cols) for i in ids.tolist()])
    if interpolate:
        row = row * 15.0 / (rows - 1)
        col = col * 15.0 / (cols - 1)
    return frame, row, col


def reference_forward(state, num_heads, video, tubelet=2, patch=16, keep=None, levels=None, interpolate=True):
    """Forward one sample video [C, T, H, W]; returns [N, D] (or the concatenated levels)."""
    channels, frames, height, width = video.shape
    image = frames == 1
    kernel = state["patch_embed_img.proj.weight"] if image else state["patch_embed.proj.weight"]
    bias = state["patch_embed_img.proj.bias"] if image else state["patch_embed.proj.bias"]
    t_step = 1 if image else tubelet
    grid_t, rows, cols = frames // t_step, height // patch, width // patch
    tokens = []
    for t in range(grid_t):
        for r in range(rows):
            for c in range(cols):
                cube = video[:, t * t_step : (t + 1) * t_step, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch]
                tokens.append((kernel * cube).flatten(1).sum(1) + bias)
    x = torch.stack(tokens)
    x = x + (state["img_mod_embed"] if image else state["video_mod_embed"]).reshape(-1)
    ids = torch.arange(x.shape[0]) if keep is None else keep
    x = x[ids]
    frame, row, col = token_coordinates(ids, rows, cols, interpolate)
    dim = x.shape[1]
    head_dim = dim // num_heads
    chunk = 2 * ((head_dim // 3) // 2)
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    taps = []
    for layer in range(depth):
        p = f"blocks.{layer}."
        h = layer_norm(x, state[p + "norm1.weight"], state[p + "norm1.bias"])
        qkv = h @ state[p + "attn.qkv.weight"].T + state[p + "attn.qkv.bias"]
        q, k, v = (qkv[:, i * dim : (i + 1) * dim].reshape(-1, num_heads, head_dim).transpose(0, 1) for i in range(3))

        def rope(z):
            parts = [rotate_pairs(z[..., a * chunk : (a + 1) * chunk], pos) for a, pos in enumerate((frame, row, col))]
            return torch.cat(parts + [z[..., 3 * chunk :]], dim=-1)

        q, k = rope(q), rope(k)
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        scores = torch.exp(scores - scores.max(-1, keepdim=True).values)
        attn = (scores / scores.sum(-1, keepdim=True)) @ v
        attn = attn.transpose(0, 1).reshape(-1, dim)
        x = x + attn @ state[p + "attn.proj.weight"].T + state[p + "attn.proj.bias"]
        h = layer_norm(x, state[p + "norm2.weight"], state[p + "norm2.bias"])
        h = h @ state[p + "mlp.fc1.weight"].T + state[p + "mlp.fc1.bias"]
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
        x = x + h @ state[p + "mlp.fc2.weight"].T + state[p + "mlp.fc2.bias"]
        if levels is not None and layer in levels:
            n = levels.index(layer)
            taps.append(layer_norm(x, state[f"norms_block.{n}.weight"], state[f"norms_block.{n}.bias"]))
    if levels is not None:
        return torch.cat(taps, dim=-1)
    last = sum(1 for k in state if k.startswith("norms_block.") and k.endswith(".weight")) - 1
    return layer_norm(x, state[f"norms_block.{last}.weight"], state[f"norms_block.{last}.bias"])
