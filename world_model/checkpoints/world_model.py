"""World models (frozen encoder + action-conditioned predictor) in our format and the official
V-JEPA 2-AC ``.pt`` (``vjepa2-ac-vitg.pt``: ``encoder`` / ``target_encoder`` + ``predictor``).

Our directories record the embodiment the model was trained for; directories written before it
was recorded (format version 1 without the key) and the official file hold Franka models, the
only embodiment V-JEPA 2-AC and this project had then.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from vjepa_wm.embodiments import Franka, embodiment_from_dict

from ..ac_predictor import ACPredictor, ACPredictorConfig, heads_for_width
from ..vit import EncoderConfig, VisionTransformer
from ..world_model import WorldModel
from .encoder import ENCODER_KEYS, encoder_from_official_state
from .hub import resolve_checkpoint
from .io import (
    CheckpointError,
    config_errors,
    detect_format,
    load_strict,
    read_our_checkpoint,
    safe_torch_load,
    save_our_checkpoint,
    select_state,
    strip_prefixes,
)


def infer_ac_config(state: dict[str, torch.Tensor], img_size: int, patch_size: int, source: str = "") -> ACPredictorConfig:
    """Recover the architecture from official-layout AC predictor weights (heads from the preset table)."""
    try:
        width, embed_dim = state["predictor_embed.weight"].shape
        action_dim = state["action_encoder.weight"].shape[1]
        mlp_hidden = state["predictor_blocks.0.mlp.fc1.weight"].shape[0]
    except KeyError as err:
        raise CheckpointError(f"{source}: not a V-JEPA 2-AC predictor (missing {err.args[0]})") from None
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("predictor_blocks."))
    grid = (img_size // patch_size, img_size // patch_size)
    return ACPredictorConfig(
        embed_dim=embed_dim, predictor_dim=width, depth=depth, num_heads=heads_for_width(width), mlp_hidden=mlp_hidden,
        action_dim=action_dim, grid=grid,
    )


def load_world_model(source: str | os.PathLike, img_size: int = 256) -> WorldModel:
    """Our ``world_model`` directory (or its hub id, `hub.resolve_checkpoint`), or the official
    V-JEPA 2-AC ``.pt`` (``img_size`` is the frame resolution, which the published file does not
    record; ours records it)."""
    path = resolve_checkpoint(source).path
    if detect_format(path) == "ours":
        meta, weights = read_our_checkpoint(path, "world_model")
        config = meta["config"]
        with config_errors(path / "config.json", "world-model"):
            encoder = VisionTransformer(EncoderConfig.from_dict(config["encoder"]))
            predictor = ACPredictor(ACPredictorConfig.from_dict(config["predictor"]))
            record = config.get("embodiment")
            embodiment = Franka() if record is None else embodiment_from_dict(record)
            model = WorldModel(encoder, predictor, int(config["img_size"]), embodiment)
        load_strict(encoder, {k[8:]: v for k, v in weights.items() if k.startswith("encoder.")}, f"{path} (encoder)")
        load_strict(predictor, {k[10:]: v for k, v in weights.items() if k.startswith("predictor.")}, f"{path} (predictor)")
        return model.eval()
    if path.is_dir():
        raise CheckpointError(f"{path}: a Hugging Face directory holds no action-conditioned predictor")
    checkpoint = safe_torch_load(path)
    encoder = encoder_from_official_state(select_state(checkpoint, None, ENCODER_KEYS, path, "encoder"), source=str(path))
    predictor_state = strip_prefixes(select_state(checkpoint, "predictor", (), path, "predictor"))
    with config_errors(path, "V-JEPA 2-AC predictor"):
        predictor = ACPredictor(infer_ac_config(predictor_state, img_size, encoder.config.patch_size, str(path)))
        model = WorldModel(encoder, predictor, img_size, Franka())
    load_strict(predictor, predictor_state, f"{path} (predictor)")
    return model.eval()


def save_world_model(model: WorldModel, target: str | os.PathLike, overwrite: bool = False) -> Path:
    config = {
        "encoder": model.encoder.config.to_dict(),
        "predictor": model.predictor.config.to_dict(),
        "img_size": model.img_size,
        "embodiment": model.embodiment.to_dict(),
    }
    state = {f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}
    state.update({f"predictor.{k}": v for k, v in model.predictor.state_dict().items()})
    return save_our_checkpoint(target, "world_model", config, state, overwrite)
