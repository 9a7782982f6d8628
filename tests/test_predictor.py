"""The V-JEPA 2 predictor against the official code (pip `cc-vjepa2`) and `transformers`, loaded
through `load_predictor`, plus our own format and input checking. Random weights, fp32."""
from __future__ import annotations

import pytest
import torch

from helpers import relative_error
from vjepa_wm.world_model.checkpoints import CheckpointError, load_predictor, save_encoder, save_predictor
from vjepa_wm.world_model.predictor import Predictor, predictor_config
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config

TOLERANCE = 1e-5


def perturb_norms(model) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "mask_tokens" in name or "mod_embed" in name:
                param.add_(0.1 * torch.randn_like(param))


def random_masks(batch: int, tokens: int, kept: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.stack([torch.randperm(tokens) for _ in range(batch)])
    return order[:, :kept].sort(1).values, order[:, kept:].sort(1).values


def official_predictor(img_size=64, heads=4):
    from vjepa2.models.predictor import vit_predictor

    model = vit_predictor(
        img_size=(img_size, img_size), patch_size=16, num_frames=4, tubelet_size=2, embed_dim=96,
        predictor_embed_dim=48, depth=2, num_heads=heads, use_mask_tokens=True, num_mask_tokens=10,
        zero_init_mask_tokens=False, use_rope=True,
    ).eval()
    perturb_norms(model)
    return model


@pytest.fixture
def official_file(tmp_path):
    model = official_predictor()
    state = {f"module.backbone.{k}": v for k, v in model.state_dict().items()}
    torch.save({"encoder": {}, "predictor": state, "epoch": 2}, tmp_path / "vitl.pt")
    return model, tmp_path / "vitl.pt"


@pytest.mark.parametrize("mask_index", [0, 1, 13])
def test_matches_official_v2_predictor(official_file, mask_index):
    official, path = official_file
    ours = load_predictor(path, img_size=64, num_heads=4)
    assert ours.config.version == "2" and ours.config.rope_layout == "tiled" and ours.config.num_mask_tokens == 10
    keep, targets = random_masks(3, 2 * 4 * 4, 11)
    context = torch.randn(3, 11, 96)
    with torch.no_grad():
        reference = official(context, keep, targets, mask_index=mask_index)
        out = ours(context, keep, targets, mask_index=mask_index)
    assert out.shape == reference.shape == (3, 21, 96)
    assert relative_error(out, reference) <= TOLERANCE


def test_grid_at_call_time_equals_building_at_that_size(official_file):
    """A predictor built for 256 px, given the 64-px grid, computes what one built at 64 px does."""
    official, path = official_file
    ours = load_predictor(path, num_heads=4)  # official files: 256 px by default
    assert ours.config.img_size == 256
    keep, targets = random_masks(2, 32, 9)
    context = torch.randn(2, 9, 96)
    with torch.no_grad():
        reference = official(context, keep, targets)
        assert relative_error(ours(context, keep, targets, grid=(2, 4, 4)), reference) <= TOLERANCE
        assert relative_error(ours(context, keep, targets), reference) > 20 * TOLERANCE  # positions on the 16x16 grid differ


def test_matches_transformers_predictor(tmp_path):
    from transformers import VJEPA2Config, VJEPA2Model

    config = VJEPA2Config(
        hidden_size=96, num_hidden_layers=1, num_attention_heads=3, crop_size=64, frames_per_clip=4,
        pred_hidden_size=48, pred_num_hidden_layers=2, pred_num_attention_heads=4, attn_implementation="eager",
    )
    hf = VJEPA2Model(config).eval()
    perturb_norms(hf)
    hf.save_pretrained(tmp_path / "hf")
    ours = load_predictor(tmp_path / "hf")
    assert ours.config.img_size == 64 and ours.config.num_heads == 4
    keep, targets = random_masks(2, 32, 12)
    features = torch.randn(2, 32, 96)
    with torch.no_grad():
        reference = hf.predictor(features, [keep], [targets]).last_hidden_state  # HF masks the full sequence itself
        out = ours(torch.gather(features, 1, keep[..., None].expand(-1, -1, 96)), keep, targets)
    assert relative_error(out, reference) <= TOLERANCE


@pytest.mark.parametrize("version", ["2", "2.1"])
def test_our_format_round_trip(tmp_path, version):
    model = Predictor(predictor_config(version, 96, embed_dim=48, depth=2, num_heads=4, img_size=64, **({"levels": 4} if version == "2.1" else {}))).eval()
    perturb_norms(model)
    save_predictor(model, tmp_path / "pred")
    loaded = load_predictor(tmp_path / "pred")
    assert loaded.config == model.config
    keep, targets = random_masks(2, 32, 10)
    context = torch.randn(2, 10, 96 * model.config.levels)
    with torch.no_grad():
        a, b = model(context, keep, targets), loaded(context, keep, targets)
    for x, y in zip(a if version == "2.1" else [a], b if version == "2.1" else [b]):
        assert torch.equal(x, y)
    with pytest.raises(CheckpointError, match="already exists"):
        save_predictor(model, tmp_path / "pred")


def test_loading_the_wrong_thing_fails_with_one_line(tmp_path):
    save_encoder(VisionTransformer(encoder_config("micro")), tmp_path / "enc")
    with pytest.raises(CheckpointError, match="not a 'predictor'"):
        load_predictor(tmp_path / "enc")
    torch.save({"encoder": {"x": torch.zeros(1)}}, tmp_path / "enc_only.pt")
    with pytest.raises(CheckpointError, match="no predictor weights"):
        load_predictor(tmp_path / "enc_only.pt")
    torch.save({"predictor": {"predictor_embed.weight": torch.zeros(4, 8)}}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="not V-JEPA predictor weights"):
        load_predictor(tmp_path / "odd.pt")


def test_bad_inputs_are_value_errors():
    model = Predictor(predictor_config("2", 96, embed_dim=48, depth=1, num_heads=4))
    keep, targets = random_masks(2, 32, 10)
    with pytest.raises(ValueError, match="context must be"):
        model(torch.randn(2, 10, 95), keep, targets)
    with pytest.raises(ValueError, match="keep has"):
        model(torch.randn(2, 9, 96), keep, targets)
    with pytest.raises(ValueError, match="empty"):
        model(torch.randn(2, 10, 96), keep, targets[:, :0])
    with pytest.raises(ValueError, match="integer"):
        model(torch.randn(2, 10, 96), keep.float(), targets)


def test_activation_checkpointing_changes_nothing_but_memory():
    torch.manual_seed(1)
    plain = Predictor(predictor_config("2.1", 96, embed_dim=48, depth=2, num_heads=4, levels=4))
    checkpointed = Predictor(predictor_config("2.1", 96, embed_dim=48, depth=2, num_heads=4, levels=4, activation_checkpointing=True))
    checkpointed.load_state_dict(plain.state_dict())
    keep, targets = random_masks(2, 32, 10)
    context = torch.randn(2, 10, 384)
    grads = []
    for model in (plain, checkpointed):
        model.train()
        predicted, visible = model(context, keep, targets, modality="image")
        (predicted.square().mean() + visible.abs().mean()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
