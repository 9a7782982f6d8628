"""Checkpoints: safe loading and atomic writing (`io`), hub ids as sources (`hub`), and one
converter per model it fills: encoders (`encoder`), masked predictors (`predictor`), world models
(`world_model`)."""
from .encoder import export_encoder, load_encoder, save_encoder
from .hub import CheckpointSource, resolve_checkpoint
from .io import CheckpointError
from .predictor import load_predictor, save_predictor
from .world_model import load_world_model, save_world_model

__all__ = ["CheckpointError", "CheckpointSource", "export_encoder", "load_encoder", "load_predictor", "load_world_model", "resolve_checkpoint",
           "save_encoder", "save_predictor", "save_world_model"]
