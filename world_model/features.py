"""Feature maps for people: the first principal components of patch features as RGB.

As in the V-JEPA 2.1 paper's figures, one PCA is fitted over all tokens of a clip, so colours are
comparable across frames; each of the three components is min-max scaled to 0..255.
"""
from __future__ import annotations

import numpy as np
import torch


def pca_rgb(features: torch.Tensor, grid: tuple[int, int, int]) -> np.ndarray:
    """``features`` ``[N, D]`` for a (frames, rows, cols) token grid -> uint8 ``[frames, rows, cols, 3]``."""
    frames, rows, cols = grid
    if features.dim() != 2 or features.shape[0] != frames * rows * cols:
        raise ValueError(f"features {tuple(features.shape)} do not match the token grid {grid}")
    x = features.detach().float()
    x = x - x.mean(dim=0, keepdim=True)
    components = min(3, x.shape[1], x.shape[0])
    # Right singular vectors = principal axes; sign fixed so colours are reproducible.
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    axes = vh[:components]
    axes = axes * torch.sign(axes[:, axes.abs().argmax(dim=1)].diagonal())[:, None]
    projected = x @ axes.T
    if components < 3:
        projected = torch.cat([projected, projected.new_zeros(x.shape[0], 3 - components)], dim=1)
    low = projected.min(dim=0).values
    span = (projected.max(dim=0).values - low).clamp_min(1e-12)
    scaled = ((projected - low) / span * 255.0).round().clamp(0, 255).to(torch.uint8)
    return scaled.reshape(frames, rows, cols, 3).numpy()
