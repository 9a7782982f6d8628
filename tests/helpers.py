"""Small helpers shared by the tests."""
from __future__ import annotations

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]  # the checkout
SHIPPED_CONFIGS = ROOT / "vjepa_wm" / "configs"


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| relative to the reference's output scale (max |reference|)."""
    return float((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-12))


def perturb_norms(model: torch.nn.Module, scale: float = 0.1, match: tuple[str, ...] = ("norm",)) -> torch.nn.Module:
    """Move parameters whose names contain `match` off their 1/0 init, so comparisons exercise them."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(m in name for m in match):
                param.add_(scale * torch.randn_like(param))
    return model.eval()
