"""The bundled world models (encoder + AC predictor, each trained by its documented pipeline): the
Franka sim model and the sim car's navigation model."""
from __future__ import annotations

from pathlib import Path

BUNDLED_SIM_MODEL = Path(__file__).resolve().parent / "assets" / "sim_model"
BUNDLED_NAV_MODEL = Path(__file__).resolve().parent / "assets" / "nav_model"


def load_sim_model(path: str | Path | None = None):
    """`path` (a folder, an official .pt or a hub id) or the bundled model, in eval mode; a clear
    error if neither exists."""
    from vjepa_wm.world_model.checkpoints import load_world_model, resolve_checkpoint

    source = resolve_checkpoint(path).path if path else BUNDLED_SIM_MODEL
    if not (source / "config.json").exists() and not source.is_file():
        raise ValueError(f"{source}: no world model here (train one with the pipeline in README, or pass --model)")
    return load_world_model(source).eval()
