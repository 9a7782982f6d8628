"""Checkpoint formats: round trips through every format, size inference, and clean rejection of bad files."""
from __future__ import annotations

import os
import zipfile

import pytest
import torch

from helpers import perturb_norms
from vjepa_wm.world_model.checkpoints import CheckpointError, export_encoder, load_encoder, save_encoder
from vjepa_wm.world_model.checkpoints.encoder import infer_encoder_config
from vjepa_wm.world_model.checkpoints.io import strip_prefixes
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config

VIDEO = torch.randn(1, 3, 4, 32, 48)


def perturbed(model: VisionTransformer) -> VisionTransformer:
    return perturb_norms(model, match=("norm", "mod_embed"))


@pytest.fixture(params=["2", "2.1"])
def encoder(request):
    return perturbed(VisionTransformer(encoder_config("micro", request.param)))


def same_outputs(a: VisionTransformer, b: VisionTransformer) -> bool:
    with torch.no_grad():
        return torch.equal(a(VIDEO), b(VIDEO)) and torch.equal(a(VIDEO[:, :, :1]), b(VIDEO[:, :, :1]))


def test_our_format_round_trip(tmp_path, encoder):
    save_encoder(encoder, tmp_path / "enc")
    assert sorted(os.listdir(tmp_path / "enc")) == ["config.json", "model.safetensors"]
    loaded = load_encoder(tmp_path / "enc")
    assert loaded.config == encoder.config
    assert same_outputs(encoder, loaded)


def test_official_format_round_trip(tmp_path, encoder):
    export_encoder(encoder, tmp_path / "enc.pt", "official")
    raw = torch.load(tmp_path / "enc.pt", weights_only=True)
    assert all(k.startswith("module.backbone.") for k in raw["target_encoder"])
    loaded = load_encoder(tmp_path / "enc.pt")
    assert loaded.config.version == encoder.config.version
    assert same_outputs(encoder, loaded)


def test_hf_format_round_trip(tmp_path):
    from transformers import VJEPA2Model

    encoder = perturbed(VisionTransformer(encoder_config("micro", "2", img_size=32)))
    export_encoder(encoder, tmp_path / "hf", "hf")
    hf = VJEPA2Model.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    video = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(hf.get_vision_features(video), encoder(video.permute(0, 2, 1, 3, 4)), atol=1e-5)
    assert same_outputs(encoder, load_encoder(tmp_path / "hf"))


def test_hf_export_of_a_v21_encoder_is_refused(tmp_path):
    encoder = VisionTransformer(encoder_config("micro", "2.1"))
    with pytest.raises(CheckpointError, match="no V-JEPA 2.1"):
        export_encoder(encoder, tmp_path / "hf", "hf")


def test_official_21_layout_with_ema_key_and_inferred_size(tmp_path):
    encoder = perturbed(VisionTransformer(encoder_config("micro", "2.1")))
    state = {f"module.backbone.{k}": v for k, v in encoder.state_dict().items()}
    torch.save({"ema_encoder": state, "predictor": {}, "epoch": 3}, tmp_path / "dist.pt")
    loaded = load_encoder(tmp_path / "dist.pt")
    c = loaded.config
    assert (c.embed_dim, c.depth, c.num_heads, c.mlp_hidden) == (96, 4, 3, 384)
    assert c.rope_layout == "interleaved" and c.image_tokenizer and c.modality_embedding and c.levels == (0, 1, 2, 3)
    assert same_outputs(encoder, loaded)


def test_default_key_is_target_encoder(tmp_path):
    context = perturbed(VisionTransformer(encoder_config("micro")))
    target = perturbed(VisionTransformer(encoder_config("micro")))
    torch.save(
        {"encoder": {f"module.{k}": v for k, v in context.state_dict().items()},
         "target_encoder": {f"module.{k}": v for k, v in target.state_dict().items()}},
        tmp_path / "ac.pt",
    )
    assert same_outputs(load_encoder(tmp_path / "ac.pt"), target)
    assert same_outputs(load_encoder(tmp_path / "ac.pt", key="encoder"), context)
    with pytest.raises(CheckpointError, match="no 'ema_encoder'"):
        load_encoder(tmp_path / "ac.pt", key="ema_encoder")


def test_published_sizes_are_inferred_from_weight_shapes():
    """ViT-g must come back with 22 heads and MLP 6144, ViT-G with 26 heads and MLP 8192."""
    for preset, expected in {"vit_g": (1408, 40, 22, 6144), "vit_G": (1664, 48, 26, 8192), "vit_h": (1280, 32, 16, 5120)}.items():
        config = encoder_config(preset)
        shapes = {
            "patch_embed.proj.weight": torch.empty(config.embed_dim, 3, 2, 16, 16),
            f"blocks.{config.depth - 1}.norm1.weight": torch.empty(config.embed_dim),
            "blocks.0.mlp.fc1.weight": torch.empty(config.mlp_hidden, config.embed_dim),
            "blocks.0.attn.qkv.bias": torch.empty(3 * config.embed_dim),
        }
        inferred = infer_encoder_config(shapes)
        assert (inferred.embed_dim, inferred.depth, inferred.num_heads, inferred.mlp_hidden) == expected


def test_prefixes_are_stripped():
    state = {"module.backbone.blocks.0.norm1.weight": 1, "module.norm.bias": 2, "backbone.x": 3}
    assert strip_prefixes(state) == {"blocks.0.norm1.weight": 1, "norm.bias": 2, "x": 3}


def test_mismatch_names_missing_unexpected_and_misshaped_keys(tmp_path):
    state = {f"module.backbone.{k}": v for k, v in VisionTransformer(encoder_config("micro")).state_dict().items()}
    del state["module.backbone.blocks.1.attn.proj.bias"]
    state["module.backbone.extra_head.weight"] = torch.zeros(3)
    state["module.backbone.norm.weight"] = torch.zeros(7)
    torch.save({"target_encoder": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        load_encoder(tmp_path / "bad.pt")
    message = str(err.value)
    assert "missing: blocks.1.attn.proj.bias" in message
    assert "unexpected: extra_head.weight" in message
    assert "mis-shaped: norm.weight (7,) vs (96,)" in message
    assert "\n" not in message


def test_truncated_empty_and_foreign_files_are_rejected(tmp_path):
    encoder = VisionTransformer(encoder_config("micro"))
    export_encoder(encoder, tmp_path / "good.pt", "official")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("this is not a checkpoint\n")
    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    for name, pattern in [
        ("truncated.pt", "truncated or corrupt"),
        ("empty.pt", "empty file"),
        ("text.pt", "not a"),
        ("list.pt", "expected a dict"),
        ("missing.pt", "no such file"),
    ]:
        with pytest.raises(CheckpointError, match=pattern) as err:
            load_encoder(tmp_path / name)
        assert "\n" not in str(err.value)
    (tmp_path / "noconfig").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_encoder(tmp_path / "noconfig")


def test_saving_never_overwrites_an_existing_checkpoint(tmp_path):
    first = perturbed(VisionTransformer(encoder_config("micro")))
    second = perturbed(VisionTransformer(encoder_config("micro")))
    save_encoder(first, tmp_path / "enc")
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        save_encoder(second, tmp_path / "enc")
    assert same_outputs(load_encoder(tmp_path / "enc"), first)
    save_encoder(second, tmp_path / "enc", overwrite=True)
    assert same_outputs(load_encoder(tmp_path / "enc"), second)
    assert [p.name for p in tmp_path.iterdir()] == ["enc"]  # no staging leftovers


def test_corrupt_safetensors_in_our_directory(tmp_path):
    save_encoder(VisionTransformer(encoder_config("micro")), tmp_path / "enc")
    weights = tmp_path / "enc" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="safetensors"):
        load_encoder(tmp_path / "enc")


def test_zip_without_torch_data_is_rejected(tmp_path):
    with zipfile.ZipFile(tmp_path / "fake.pt", "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(CheckpointError):
        load_encoder(tmp_path / "fake.pt")
