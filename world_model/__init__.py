"""World-model room: the V-JEPA encoder (video + image tokenizers, 3D RoPE), the masked and the
action-conditioned predictors, masks, losses, trainers, checkpoint import/export, preprocessing
and `WorldModel`.

Heavy submodules are imported on use; the names most users need are re-exported here lazily.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "VisionTransformer": "world_model.vit",
    "EncoderConfig": "world_model.vit",
    "encoder_config": "world_model.vit",
    "load_encoder": "world_model.checkpoints",
    "save_encoder": "world_model.checkpoints",
    "ACPredictor": "world_model.ac_predictor",
    "ACPredictorConfig": "world_model.ac_predictor",
    "WorldModel": "world_model.world_model",
    "load_world_model": "world_model.world_model",
    "save_world_model": "world_model.world_model",
    "ac_loss": "world_model.losses",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'world_model' has no attribute {name!r}")
