"""The encoder against independent implementations, on random weights, in fp32.

* Hugging Face `transformers` VJEPA2Model (V-JEPA 2), imported through our HF loader;
* the official V-JEPA 2 model code (pip `cc-vjepa2`), imported through our official .pt loader,
  including non-square inputs (the official code takes the RoPE grid from the input) and kept-token
  masks (the Hugging Face encoder cannot run on masked inputs: it masks after encoding);
* an independent plain re-derivation of V-JEPA 2.1 (tests/reference_vjepa21.py) for the image
  tokenizer, interleaved + interpolated RoPE and the hierarchical outputs.
"""
from __future__ import annotations

import pytest
import torch

from helpers import perturb_norms, relative_error
from reference_vjepa21 import reference_forward
from vjepa_wm.world_model.checkpoints import load_encoder
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config

TOLERANCE = 1e-5

HF_CONFIGS = {
    # head_dim 32: RoPE chunks of 10 with 2 channels left unrotated.
    "hd32_crop64": dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=3, crop_size=64, frames_per_clip=4),
    # head_dim 64 (as ViT-L/g): chunks of 20, 4 left over; MLP ratio of ViT-g.
    "hd64_crop48": dict(hidden_size=128, num_hidden_layers=3, num_attention_heads=2, crop_size=48, frames_per_clip=4, mlp_ratio=48 / 11),
}


def hf_model(tmp_path, **fields):
    from transformers import VJEPA2Config, VJEPA2Model

    config = VJEPA2Config(
        pred_hidden_size=32, pred_num_hidden_layers=1, pred_num_attention_heads=2, attn_implementation="eager", **fields
    )
    model = perturb_norms(VJEPA2Model(config))
    model.save_pretrained(tmp_path / "hf")
    return model, load_encoder(tmp_path / "hf")


@pytest.mark.parametrize("name", sorted(HF_CONFIGS))
def test_matches_transformers_on_video(tmp_path, name):
    hf, ours = hf_model(tmp_path, **HF_CONFIGS[name])
    crop = HF_CONFIGS[name]["crop_size"]
    video = torch.randn(2, 4, 3, crop, crop)  # HF layout [B, T, C, H, W]
    with torch.no_grad():
        reference = hf.get_vision_features(video)
        out = ours(video.permute(0, 2, 1, 3, 4))
    assert out.shape == reference.shape == (2, 2 * (crop // 16) ** 2, HF_CONFIGS[name]["hidden_size"])
    assert relative_error(out, reference) <= TOLERANCE


def test_matches_transformers_on_an_image(tmp_path):
    hf, ours = hf_model(tmp_path, **HF_CONFIGS["hd32_crop64"])
    image = torch.randn(1, 1, 3, 64, 64)
    with torch.no_grad():
        reference = hf.get_vision_features(image)  # HF repeats T=1 into one tubelet
        out = ours(image[:, 0])  # a 4-D image goes in as T=1 and is duplicated the same way
    assert relative_error(out, reference) <= TOLERANCE


def official_v2_encoder(img_size, frames, dim=96, depth=2, heads=3):
    from vjepa2.models.vision_transformer import VisionTransformer as OfficialViT

    model = OfficialViT(
        img_size=img_size, patch_size=16, num_frames=frames, tubelet_size=2, embed_dim=dim, depth=depth,
        num_heads=heads, mlp_ratio=4.0, use_rope=True, use_sdpa=True, handle_nonsquare_inputs=True,
    )
    return perturb_norms(model)


@pytest.mark.parametrize("height,width", [(64, 64), (48, 80)])
def test_matches_official_v2_code_square_and_nonsquare(tmp_path, height, width):
    official = official_v2_encoder((64, 64), 4)
    state = {f"module.backbone.{k}": v for k, v in official.state_dict().items()}
    torch.save({"encoder": state, "target_encoder": state, "epoch": 1}, tmp_path / "vitl.pt")
    ours = load_encoder(tmp_path / "vitl.pt")
    video = torch.randn(2, 3, 4, height, width)
    keep = torch.stack([torch.randperm(2 * (height // 16) * (width // 16))[:9].sort().values for _ in range(2)])
    with torch.no_grad():
        assert relative_error(ours(video), official(video)) <= TOLERANCE
        assert relative_error(ours(video, masks=keep), official(video, masks=keep)) <= TOLERANCE


def official_21_state(model: VisionTransformer) -> dict:
    perturb_norms(model, match=("norm", "mod_embed"))
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("height,width,frames", [(64, 64, 1), (48, 80, 1), (64, 64, 4), (48, 80, 4)])
def test_v21_matches_independent_reference(tmp_path, height, width, frames):
    model = VisionTransformer(encoder_config("micro", "2.1", depth=4)).eval()
    state = official_21_state(model)
    torch.save({"target_encoder": {f"module.backbone.{k}": v for k, v in state.items()}}, tmp_path / "v21.pt")
    ours = load_encoder(tmp_path / "v21.pt")
    assert ours.config.version == "2.1" and ours.config.image_tokenizer and ours.config.interpolate_rope
    video = torch.randn(1, 3, frames, height, width)
    with torch.no_grad():
        out = ours(video)[0]
        levels = ours(video, levels=True)[0]
        reference = reference_forward(state, 3, video[0])
        reference_levels = reference_forward(state, 3, video[0], levels=list(ours.config.levels))
    tokens = (frames if frames == 1 else frames // 2) * (height // 16) * (width // 16)
    assert out.shape == (tokens, 96) and levels.shape == (tokens, 4 * 96)
    assert relative_error(out, reference) <= TOLERANCE
    assert relative_error(levels, reference_levels) <= TOLERANCE
    # The inference output is the last level.
    assert torch.allclose(levels[:, -96:], out, atol=1e-6)


def test_v21_masked_tokens_keep_their_positions():
    model = VisionTransformer(encoder_config("micro", "2.1", depth=4)).eval()
    state = official_21_state(model)
    video = torch.randn(1, 3, 4, 48, 80)
    keep = torch.tensor([[0, 3, 7, 8, 14, 20, 29]])
    with torch.no_grad():
        out = model(video, masks=keep)[0]
        reference = reference_forward(state, 3, video[0], keep=keep[0])
    assert relative_error(out, reference) <= TOLERANCE


def test_v21_image_and_video_paths_differ():
    """T = 1 goes through the image tokenizer and image modality embedding, not the video path."""
    model = VisionTransformer(encoder_config("micro", "2.1", depth=4)).eval()
    image = torch.randn(1, 3, 1, 32, 32)
    with torch.no_grad():
        as_image = model(image)
        as_video = model(image.expand(-1, -1, 2, -1, -1))
    assert as_image.shape == as_video.shape == (1, 4, 96)
    assert not torch.allclose(as_image, as_video, atol=1e-3)
