"""Pictures a person would rather look at than read: feature PCA maps beside their frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def save_pca_figure(rows: list[tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "") -> Path:
    """Each row pairs frames ``[T, H, W, 3]`` with PCA maps ``[T', h, w, 3]`` (T' columns shown).

    The frames shown are the first of each tubelet, so the two rows line up column by column.
    """
    from vjepa_wm.planner.plots import pyplot, save_figure

    plt = pyplot()
    columns = max(len(maps) for _, maps in rows)
    columns = min(columns, 8)
    figure, axes = plt.subplots(2 * len(rows), columns, figsize=(2.0 * columns, 4.2 * len(rows)), squeeze=False)
    for r, (frames, maps) in enumerate(rows):
        stride = max(1, len(frames) // max(1, len(maps)))
        for c in range(columns):
            top, bottom = axes[2 * r, c], axes[2 * r + 1, c]
            for ax in (top, bottom):
                ax.axis("off")
            if c < len(maps):
                top.imshow(frames[min(c * stride, len(frames) - 1)])
                bottom.imshow(maps[c], interpolation="nearest")
                if r == 0:
                    top.set_title(f"t={c}", fontsize=8)
        axes[2 * r, 0].text(-0.1, 0.5, "input", transform=axes[2 * r, 0].transAxes, rotation=90, va="center", ha="right")
        axes[2 * r + 1, 0].text(
            -0.1, 0.5, "PCA 1-3", transform=axes[2 * r + 1, 0].transAxes, rotation=90, va="center", ha="right"
        )
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)
