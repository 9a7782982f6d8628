"""Small helpers shared by the tests."""
from __future__ import annotations

import torch


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| relative to the reference's output scale (max |reference|)."""
    return float((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-12))
