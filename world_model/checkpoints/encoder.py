"""Encoder weights in every format: official V-JEPA 2 / 2.1 ``.pt`` files, Hugging Face
``VJEPA2Model`` directories and our own directories; the size is inferred from the weights.

* official V-JEPA 2 ``.pt`` files: a dict with ``encoder`` / ``target_encoder`` (/ ``predictor``)
  state dicts whose keys carry ``module.`` or ``module.backbone.`` prefixes;
* official V-JEPA 2.1 ``.pt`` files: ``target_encoder`` / ``ema_encoder`` with ``norms_block``,
  ``patch_embed_img`` and the modality embeddings;
* Hugging Face ``VJEPA2Model`` directories (``config.json`` + ``model.safetensors``), whose separate
  query/key/value rows are fused into the official ``qkv``;
* our own directories (``config.json`` with ``"format": "vjepa_wm"`` + ``model.safetensors``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..vit import ENCODER_SIZES, EncoderConfig, VisionTransformer
from .hub import resolve_checkpoint
from .io import (
    CheckpointError,
    config_errors,
    detect_format,
    fuse_qkv,
    hf_section,
    load_strict,
    read_hf_weights,
    read_json,
    read_our_checkpoint,
    safe_torch_load,
    save_our_checkpoint,
    select_state,
    strip_prefixes,
    write_directory,
)

# The official evaluations read `target_encoder`; distilled 2.1 files call theirs `ema_encoder`.
ENCODER_KEYS = ("target_encoder", "ema_encoder", "encoder")
# Preset widths -> heads (weights do not record the head count; ViT-g has 22 heads).
HEADS_BY_WIDTH = {dim: heads for dim, _, heads, _ in ENCODER_SIZES.values()}


def infer_encoder_config(state: dict[str, torch.Tensor], num_heads: int | None = None, source: str = "") -> EncoderConfig:
    """Recover the architecture from official-layout encoder weights."""
    patch = state.get("patch_embed.proj.weight")
    if patch is None or patch.dim() != 5:
        raise CheckpointError(f"{source}: not V-JEPA encoder weights (no 5-D patch_embed.proj.weight)")
    dim, in_chans, tubelet, patch_size, _ = patch.shape
    block_ids = {int(k.split(".")[1]) for k in state if k.startswith("blocks.")}
    if not block_ids:
        raise CheckpointError(f"{source}: no transformer blocks in the encoder weights")
    depth = max(block_ids) + 1
    mlp_hidden = state["blocks.0.mlp.fc1.weight"].shape[0] if "blocks.0.mlp.fc1.weight" in state else 4 * dim
    heads = num_heads or HEADS_BY_WIDTH.get(dim)
    if heads is None:
        if dim % 64:
            raise CheckpointError(f"{source}: cannot infer the head count of width {dim}; pass num_heads")
        heads = dim // 64
    is_21 = "norms_block.0.weight" in state
    return EncoderConfig(
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_hidden=mlp_hidden,
        version="2.1" if is_21 else "2",
        patch_size=patch_size,
        tubelet_size=tubelet,
        in_chans=in_chans,
        rope_layout="interleaved" if is_21 else "tiled",
        interpolate_rope=is_21,
        image_tokenizer="patch_embed_img.proj.weight" in state,
        modality_embedding="img_mod_embed" in state,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
    )


def encoder_from_official_state(state: dict, num_heads: int | None = None, source: str = "") -> VisionTransformer:
    state = strip_prefixes(state)
    state = {k: v for k, v in state.items() if k != "pos_embed"}  # unused with RoPE
    with config_errors(source, "encoder"):
        model = VisionTransformer(infer_encoder_config(state, num_heads, source))
    load_strict(model, state, source)
    return model


HF_ENCODER_PREFIX = "encoder."


def hf_to_official_encoder(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename Hugging Face VJEPA2 encoder keys to the official layout (query/key/value -> qkv)."""
    renamed: dict[str, torch.Tensor] = {}
    for key, value in hf_section(state, HF_ENCODER_PREFIX):
        key = key.replace("embeddings.patch_embeddings.", "patch_embed.")
        if key.startswith("layernorm."):
            key = "norm." + key[len("layernorm.") :]
        renamed[key.replace("layer.", "blocks.", 1).replace(".attention.", ".attn.")] = value
    return fuse_qkv(renamed)


def official_to_hf_encoder(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `hf_to_official_encoder` (qkv split into thirds)."""
    out = {}
    for key, value in state.items():
        if key.endswith(("attn.qkv.weight", "attn.qkv.bias")):
            stem, kind = key.rsplit(".attn.qkv.", 1)
            for part, chunk in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                out[f"{stem}.attn.{part}.{kind}"] = chunk.contiguous()
            continue
        out[key] = value
    renamed = {}
    for key, value in out.items():
        key = key.replace("patch_embed.", "embeddings.patch_embeddings.")
        if key.startswith("norm."):
            key = "layernorm." + key[len("norm.") :]
        key = key.replace("blocks.", "layer.", 1).replace(".attn.", ".attention.")
        renamed[HF_ENCODER_PREFIX + key] = value
    return renamed


def hf_config_to_encoder(hf: dict) -> EncoderConfig:
    dim = int(hf["hidden_size"])
    return EncoderConfig(
        embed_dim=dim,
        depth=int(hf["num_hidden_layers"]),
        num_heads=int(hf["num_attention_heads"]),
        mlp_hidden=int(dim * float(hf.get("mlp_ratio", 4.0))),
        patch_size=int(hf.get("patch_size", 16)),
        tubelet_size=int(hf.get("tubelet_size", 2)),
        in_chans=int(hf.get("in_chans", 3)),
        img_size=int(hf.get("crop_size", 256)),
        qkv_bias=bool(hf.get("qkv_bias", True)),
    )


def encoder_to_hf_config(config: EncoderConfig) -> dict:
    if config.version != "2":
        raise CheckpointError("the Hugging Face VJEPA2 format has no V-JEPA 2.1 encoder")
    return {
        "model_type": "vjepa2",
        "architectures": ["VJEPA2Model"],
        "hidden_size": config.embed_dim,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.num_heads,
        "mlp_ratio": config.mlp_hidden / config.embed_dim,
        "patch_size": config.patch_size,
        "tubelet_size": config.tubelet_size,
        "in_chans": config.in_chans,
        "crop_size": config.img_size,
        "qkv_bias": config.qkv_bias,
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
    }


def load_encoder(source: str | os.PathLike, key: str | None = None, num_heads: int | None = None) -> VisionTransformer:
    """Load an encoder from any supported format, inferring its size; returns it in eval mode.
    `source` is a local path or a Hugging Face hub id (`hub.resolve_checkpoint`)."""
    path = resolve_checkpoint(source).path
    fmt = detect_format(path)
    if fmt == "ours":
        meta, state = read_our_checkpoint(path, "encoder")
        with config_errors(path / "config.json", "encoder"):
            model = VisionTransformer(EncoderConfig.from_dict(meta["config"]))
        load_strict(model, state, str(path))
    elif fmt == "hf":
        hf = read_json(path / "config.json")
        with config_errors(path / "config.json", "Hugging Face encoder"):
            model = VisionTransformer(hf_config_to_encoder(hf))
        load_strict(model, hf_to_official_encoder(read_hf_weights(path)), str(path))
    else:
        checkpoint = safe_torch_load(path)
        state = select_state(checkpoint, key, ENCODER_KEYS, path, "encoder")
        model = encoder_from_official_state(state, num_heads, str(path))
    return model.eval()


def save_encoder(model: VisionTransformer, target: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save to our format: ``config.json`` + ``model.safetensors``."""
    return save_our_checkpoint(target, "encoder", model.config.to_dict(), model.state_dict(), overwrite)


def export_encoder(model: VisionTransformer, target: str | os.PathLike, fmt: str, overwrite: bool = False) -> Path:
    """Write an encoder as ``ours``, ``hf`` (a VJEPA2Model directory) or ``official`` (a .pt file)."""
    target = Path(target)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if fmt == "ours":
        return save_encoder(model, target, overwrite)
    if fmt == "hf":
        hf_config = encoder_to_hf_config(model.config)

        def write(folder: Path) -> None:
            (folder / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
            save_file({k: v.contiguous() for k, v in official_to_hf_encoder(state).items()}, str(folder / "model.safetensors"))

        return write_directory(target, write, overwrite)
    if fmt == "official":
        if target.exists() and not overwrite:
            raise CheckpointError(f"{target}: already exists; refusing to overwrite (pass --force)")
        wrapped = {f"module.backbone.{k}": v for k, v in state.items()}
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        torch.save({"encoder": wrapped, "target_encoder": wrapped}, partial)
        os.replace(partial, target)
        return target
    raise CheckpointError(f"unknown checkpoint format {fmt!r} (choose ours, hf or official)")
