"""Encoder behaviour beyond parity: masks, images, activation checkpointing, bf16, bad inputs."""
from __future__ import annotations

import pytest
import torch

from vjepa_wm.world_model.vit import VisionTransformer, encoder_config, hierarchical_layers


def test_published_presets_have_the_published_sizes():
    expected = {
        "vit_b": (768, 12, 12, 3072), "vit_l": (1024, 24, 16, 4096), "vit_h": (1280, 32, 16, 5120),
        "vit_g": (1408, 40, 22, 6144), "vit_G": (1664, 48, 26, 8192),
    }
    for preset, sizes in expected.items():
        c = encoder_config(preset)
        assert (c.embed_dim, c.depth, c.num_heads, c.mlp_hidden) == sizes
    assert hierarchical_layers(48) == (11, 23, 37, 47) and hierarchical_layers(40) == (9, 19, 29, 39)


def test_masked_forward_equals_full_forward_when_all_tokens_are_kept():
    model = VisionTransformer(encoder_config("micro")).eval()
    video = torch.randn(2, 3, 4, 32, 48)
    keep = torch.arange(12).expand(2, -1)
    with torch.no_grad():
        assert torch.allclose(model(video, masks=keep), model(video), atol=1e-6)


def test_masks_change_context_but_positions_follow_indices():
    model = VisionTransformer(encoder_config("micro", "2.1")).eval()
    video = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        a = model(video, masks=torch.tensor([[0, 1, 2, 3]]))
        b = model(video, masks=torch.tensor([[4, 5, 6, 7]]))
    assert a.shape == (1, 4, 96) and not torch.allclose(a, b)


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = VisionTransformer(encoder_config("micro", "2.1", drop_path_rate=0.0))
    ckpt = VisionTransformer(encoder_config("micro", "2.1", activation_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    video = torch.randn(2, 3, 2, 32, 32)
    for model in (plain, ckpt):
        model.train()
        model(video, levels=True).square().mean().backward()
    for (name, p1), (_, p2) in zip(plain.named_parameters(), ckpt.named_parameters()):
        if p1.grad is None:  # the image tokenizer and image embedding are unused by a video batch
            assert p2.grad is None and "img" in name
            continue
        assert torch.allclose(p1.grad, p2.grad, atol=1e-6), name


def test_bf16_autocast_forward_is_finite_and_close():
    model = VisionTransformer(encoder_config("micro")).eval()
    video = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        exact = model(video)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(video)
    assert torch.isfinite(low).all()
    assert (low.float() - exact).abs().max() < 0.1 * exact.abs().max()


@pytest.mark.parametrize(
    "shape,message",
    [((1, 3, 3, 32, 32), "multiple of the tubelet"), ((1, 3, 2, 30, 32), "multiple of the patch"), ((1, 4, 2, 32, 32), "expected video")],
)
def test_bad_inputs_are_rejected(shape, message):
    model = VisionTransformer(encoder_config("micro"))
    with pytest.raises(ValueError, match=message):
        model(torch.randn(shape))


def test_out_of_range_mask_indices_are_rejected():
    model = VisionTransformer(encoder_config("micro"))
    with pytest.raises(ValueError, match="mask indices"):
        model(torch.randn(1, 3, 2, 32, 32), masks=torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match="levels=True"):
        model(torch.randn(1, 3, 2, 32, 32), levels=True)
