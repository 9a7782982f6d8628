"""Masked-predictor weights (V-JEPA 2 / 2.1 pretraining) in every format: official ``.pt`` files,
Hugging Face ``VJEPA2Model`` directories (its ``predictor.*`` part) and our own directories."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from ..predictor import PUBLISHED_HEADS, Predictor, PredictorConfig
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
)


def infer_predictor_config(state: dict[str, torch.Tensor], img_size: int, num_heads: int | None, source: str) -> PredictorConfig:
    """Recover the architecture from official-layout predictor weights."""
    block_ids = {int(k.split(".")[1]) for k in state if k.startswith("predictor_blocks.")}
    token_ids = {int(k.split(".")[1]) for k in state if k.startswith("mask_tokens.")}
    if not block_ids or not token_ids or "predictor_proj.weight" not in state:
        raise CheckpointError(f"{source}: not V-JEPA predictor weights (no predictor_blocks / mask_tokens / predictor_proj)")
    if "predictor_embed.0.weight" in state:
        fuse = state["predictor_embed.0.weight"]
        encoder_dim, levels = fuse.shape[0], fuse.shape[1] // fuse.shape[0]
    elif "predictor_embed.weight" in state:
        encoder_dim, levels = state["predictor_embed.weight"].shape[1], 1
    else:
        raise CheckpointError(f"{source}: no predictor_embed weights")
    is_21 = "predictor_embed.0.weight" in state or "video_mod_embed" in state or "predictor_proj_context.weight" in state
    embed_dim = state["mask_tokens.0"].shape[-1]
    return PredictorConfig(
        encoder_dim=encoder_dim,
        embed_dim=embed_dim,
        depth=max(block_ids) + 1,
        num_heads=num_heads or PUBLISHED_HEADS,
        mlp_hidden=state["predictor_blocks.0.mlp.fc1.weight"].shape[0],
        version="2.1" if is_21 else "2",
        levels=levels,
        out_dim=state["predictor_proj.weight"].shape[0] // levels,
        num_mask_tokens=max(token_ids) + 1,
        predict_context="predictor_proj_context.weight" in state,
        modality_embedding="video_mod_embed" in state,
        img_size=img_size,
        rope_layout="interleaved" if is_21 else "tiled",
        interpolate_rope=is_21,
        qkv_bias="predictor_blocks.0.attn.qkv.bias" in state,
    )


def predictor_from_official_state(state: dict, img_size: int = 256, num_heads: int | None = None, source: str = "") -> Predictor:
    state = {k: v for k, v in strip_prefixes(state).items() if k != "predictor_pos_embed"}  # unused with RoPE
    with config_errors(source, "predictor"):
        model = Predictor(infer_predictor_config(state, img_size, num_heads, source))
    load_strict(model, state, source)
    return model


HF_PREDICTOR_PREFIX = "predictor."


def hf_to_official_predictor(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename Hugging Face VJEPA2 predictor keys to the official layout."""
    renamed: dict[str, torch.Tensor] = {}
    for key, value in hf_section(state, HF_PREDICTOR_PREFIX):
        if key == "embeddings.mask_tokens":
            for index, token in enumerate(value):
                renamed[f"mask_tokens.{index}"] = token.reshape(1, 1, -1)
            continue
        key = key.replace("embeddings.predictor_embeddings.", "predictor_embed.")
        key = key.replace("layernorm.", "predictor_norm.", 1) if key.startswith("layernorm.") else key
        key = "predictor_proj." + key[len("proj.") :] if key.startswith("proj.") else key
        renamed[key.replace("layer.", "predictor_blocks.", 1).replace(".attention.", ".attn.")] = value
    return fuse_qkv(renamed)


def load_predictor(source: str | os.PathLike, img_size: int | None = None, num_heads: int | None = None, key: str | None = None) -> Predictor:
    """Load a predictor from our directory, a Hugging Face VJEPA2Model directory (or its hub id,
    `hub.resolve_checkpoint`) or an official .pt.

    `img_size` is the construction resolution that maps token indices to grid positions when no
    grid is passed at call time. Official .pt files do not record it (default 256, the
    pretraining crop); Hugging Face configs record it as ``crop_size`` and our directories store
    it; an explicit value overrides either. `num_heads` defaults to the published 12.
    Returns the predictor in eval mode.
    """
    path = resolve_checkpoint(source).path
    fmt = detect_format(path)
    if fmt == "ours":
        meta, state = read_our_checkpoint(path, "predictor")
        with config_errors(path / "config.json", "predictor"):
            config = PredictorConfig.from_dict(meta["config"])
            model = Predictor(config if img_size is None else replace(config, img_size=img_size))
        load_strict(model, state, str(path))
    elif fmt == "hf":
        hf = read_json(path / "config.json")
        with config_errors(path / "config.json", "Hugging Face predictor"):
            embed = int(hf["pred_hidden_size"])
            config = PredictorConfig(
                encoder_dim=int(hf["hidden_size"]),
                embed_dim=embed,
                depth=int(hf["pred_num_hidden_layers"]),
                num_heads=num_heads or int(hf["pred_num_attention_heads"]),
                mlp_hidden=int(embed * float(hf.get("pred_mlp_ratio", 4.0))),
                num_mask_tokens=int(hf.get("pred_num_mask_tokens", 10)),
                img_size=img_size or int(hf.get("crop_size", 256)),
                patch_size=int(hf.get("patch_size", 16)),
                qkv_bias=bool(hf.get("qkv_bias", True)),
            )
            model = Predictor(config)
        load_strict(model, hf_to_official_predictor(read_hf_weights(path)), str(path))
    else:
        checkpoint_obj = safe_torch_load(path)
        state = select_state(checkpoint_obj, key, ("predictor",), path, "predictor")
        model = predictor_from_official_state(state, img_size or 256, num_heads, str(path))
    return model.eval()


def save_predictor(model: Predictor, target: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save to our format (kind "predictor"): ``config.json`` + ``model.safetensors``."""
    return save_our_checkpoint(target, "predictor", model.config.to_dict(), model.state_dict(), overwrite)
