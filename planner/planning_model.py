"""The view of a world model that the planner searches with.

On a CPU, a float32 `WorldModel` whose predictor is small enough gets RoPE folded into per-token
projection weights for the horizon's steps (`world_model.rope_folding`): the same numbers to
float32 rounding, about a fifth less time per planned action for the bundled sim model
(`vjepa-wm bench plan` measures both). Anything else (a GPU, bf16, a large predictor, a stand-in
model in tests) is planned with as it is.
"""
from __future__ import annotations

import torch

from vjepa_wm.world_model.rope_folding import fold_problem, fold_rope
from vjepa_wm.world_model.world_model import WorldModel


def planning_model(world_model, device: torch.device | str, horizon: int, fold: bool = True):
    """`world_model` ready for CEM on `device` (folded where that is faster, see the module docstring)."""
    if not fold or not isinstance(world_model, WorldModel) or torch.device(device).type != "cpu":
        return world_model
    if fold_problem(world_model, horizon) is not None:
        return world_model
    return fold_rope(world_model, horizon)
