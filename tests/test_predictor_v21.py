"""The V-JEPA 2.1 predictor, loaded from official-layout weights, against an independent plain
re-derivation (no installable 2.1 implementation exists).

The reference below recomputes the published 2.1 predictor one sample at a time, reading the
state dict directly: fusion MLP (or one Linear for distilled files) with an erf GELU, a Python
dict keyed by token index for the mask tokens and the raster-order sort, the modality
embedding, true pair rotations with positions interpolated onto the 16x16 grid (helpers of
tests/reference_vjepa21.py), hand-written softmax attention and layer norm, and the two output
projections.
"""
from __future__ import annotations

import math

import pytest
import torch

from helpers import relative_error
from reference_vjepa21 import layer_norm, rotate_pairs, token_coordinates
from vjepa_wm.world_model.checkpoints import load_predictor
from vjepa_wm.world_model.predictor import Predictor, predictor_config

TOLERANCE = 1e-5


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def reference_predictor(state, heads, context, keep, targets, grid_side, modality, mask_index):
    """One sample: context [K, D_in], keep [K], targets [M] -> (predictions [M, .], context [K, .])."""
    if "predictor_embed.0.weight" in state:
        h = gelu(context @ state["predictor_embed.0.weight"].T + state["predictor_embed.0.bias"])
        h = h @ state["predictor_embed.2.weight"].T + state["predictor_embed.2.bias"]
    else:
        h = context @ state["predictor_embed.weight"].T + state["predictor_embed.bias"]
    count = sum(1 for k in state if k.startswith("mask_tokens."))
    token = state[f"mask_tokens.{mask_index % count}"].reshape(-1)
    by_index = {int(i): h[j] for j, i in enumerate(keep)}
    by_index.update({int(i): token for i in targets})
    order = sorted(by_index)
    x = torch.stack([by_index[i] for i in order])
    x = x + state["img_mod_embed" if modality == "image" else "video_mod_embed"].reshape(-1)
    frame, row, col = token_coordinates(torch.tensor(order), grid_side, grid_side, interpolate=True)
    dim = x.shape[1]
    head_dim = dim // heads
    chunk = 2 * ((head_dim // 3) // 2)
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("predictor_blocks."))
    for layer in range(depth):
        p = f"predictor_blocks.{layer}."
        y = layer_norm(x, state[p + "norm1.weight"], state[p + "norm1.bias"])
        qkv = y @ state[p + "attn.qkv.weight"].T + state[p + "attn.qkv.bias"]
        q, k, v = (qkv[:, i * dim : (i + 1) * dim].reshape(-1, heads, head_dim).transpose(0, 1) for i in range(3))

        def rope(z):
            parts = [rotate_pairs(z[..., a * chunk : (a + 1) * chunk], pos) for a, pos in enumerate((frame, row, col))]
            return torch.cat(parts + [z[..., 3 * chunk :]], dim=-1)

        scores = rope(q) @ rope(k).transpose(-1, -2) / math.sqrt(head_dim)
        scores = torch.exp(scores - scores.max(-1, keepdim=True).values)
        attended = ((scores / scores.sum(-1, keepdim=True)) @ v).transpose(0, 1).reshape(-1, dim)
        x = x + attended @ state[p + "attn.proj.weight"].T + state[p + "attn.proj.bias"]
        y = layer_norm(x, state[p + "norm2.weight"], state[p + "norm2.bias"])
        y = gelu(y @ state[p + "mlp.fc1.weight"].T + state[p + "mlp.fc1.bias"])
        x = x + y @ state[p + "mlp.fc2.weight"].T + state[p + "mlp.fc2.bias"]
    x = layer_norm(x, state["predictor_norm.weight"], state["predictor_norm.bias"])
    out = dict(zip(order, x))
    predicted = torch.stack([out[int(i)] for i in targets]) @ state["predictor_proj.weight"].T + state["predictor_proj.bias"]
    visible = torch.stack([out[int(i)] for i in keep]) @ state["predictor_proj_context.weight"].T + state["predictor_proj_context.bias"]
    return predicted, visible


def official_21_file(tmp_path, **overrides):
    """A 2.1 predictor state dict in the official file layout (prefixes, 'predictor' key)."""
    model = Predictor(predictor_config("2.1", 96, embed_dim=48, depth=3, num_heads=4, num_mask_tokens=8, **overrides))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "mask_tokens" in name or "mod_embed" in name:
                param.add_(0.1 * torch.randn_like(param))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"predictor": {f"module.backbone.{k}": v for k, v in state.items()}, "target_encoder": {}}, tmp_path / "v21.pt")
    return state, tmp_path / "v21.pt"


@pytest.mark.parametrize("modality,frames", [("video", 2), ("image", 1)])
@pytest.mark.parametrize("mask_index", [0, 9])
def test_four_level_predictor_matches_reference(tmp_path, modality, frames, mask_index):
    state, path = official_21_file(tmp_path)
    ours = load_predictor(path, img_size=64, num_heads=4)
    c = ours.config
    assert (c.version, c.levels, c.out_dim, c.predict_context, c.modality_embedding) == ("2.1", 4, 96, True, True)
    assert c.rope_layout == "interleaved" and c.interpolate_rope and c.num_mask_tokens == 8
    tokens = frames * 16
    order = torch.randperm(tokens)
    keep, targets = order[:7].sort().values, order[7:].sort().values
    context = torch.randn(1, 7, 4 * 96)
    with torch.no_grad():
        predicted, visible = ours(context, keep[None], targets[None], mask_index=mask_index, modality=modality)
    ref_predicted, ref_visible = reference_predictor(state, 4, context[0], keep, targets, 4, modality, mask_index)
    assert predicted.shape == (1, tokens - 7, 4 * 96) and visible.shape == (1, 7, 4 * 96)
    assert relative_error(predicted[0], ref_predicted) <= TOLERANCE
    assert relative_error(visible[0], ref_visible) <= TOLERANCE


def test_distilled_single_level_layout(tmp_path):
    """Distilled 2.1 files: one level in, teacher-width predictions out (here 160)."""
    state, path = official_21_file(tmp_path, levels=1, out_dim=160)
    ours = load_predictor(path, img_size=64, num_heads=4)
    assert ours.config.levels == 1 and ours.config.out_dim == 160 and ours.config.version == "2.1"
    keep, targets = torch.tensor([1, 4, 6, 9, 15, 20, 30]), torch.tensor([0, 2, 3, 5, 7, 8, 31])
    context = torch.randn(1, 7, 96)
    with torch.no_grad():
        predicted, visible = ours(context, keep[None], targets[None])
    ref_predicted, ref_visible = reference_predictor(state, 4, context[0], keep, targets, 4, "video", 1)
    assert relative_error(predicted[0], ref_predicted) <= TOLERANCE
    assert relative_error(visible[0], ref_visible) <= TOLERANCE


def test_modality_embedding_matters():
    model = Predictor(predictor_config("2.1", 96, embed_dim=48, depth=1, num_heads=4, levels=4)).eval()
    with torch.no_grad():
        model.img_mod_embed.fill_(0.5)
        keep, targets = torch.tensor([[0, 1, 2]]), torch.tensor([[3, 4]])
        context = torch.randn(1, 3, 384)
        a, _ = model(context, keep, targets, modality="video")
        b, _ = model(context, keep, targets, modality="image")
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="modality"):
        model(context, keep, targets, modality="audio")
