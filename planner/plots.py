"""Pictures of a planning run: energy per control step, and energy-landscape slices."""
from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib's pyplot on the headless Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | Path) -> Path:
    """Lay out, write (creating folders) and close a figure."""
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot().close(figure)
    return path


def save_energy_plot(records, path: str | Path, title: str = "") -> Path:
    """Observed energy (current view vs goal) and the plan's predicted energy per control step."""
    plt = pyplot()
    steps = [r.step for r in records]
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(steps, [r.observed_energy for r in records], "o-", label="observed (view vs goal)")
    axis.plot(steps, [r.planned_energy for r in records], "s--", label="planned (imagined vs goal)")
    switches = [r.step for r in records if r.switched_goal]
    for s in switches:
        axis.axvline(s, color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("control step")
    axis.set_ylabel("L1 energy")
    axis.legend(fontsize=8)
    if title:
        axis.set_title(title, fontsize=10)
    return save_figure(figure, path)


def save_landscape_plot(landscape, path: str | Path, title: str = "") -> Path:
    """Three slices through the minimum of the xyz energy grid (x-y, x-z, y-z), in centimetres."""
    import torch

    plt = pyplot()
    energies, offsets = landscape.energies, landscape.offsets * 100
    flat = int(torch.argmin(energies))
    p = len(offsets)
    i, j, k = flat // (p * p), (flat // p) % p, flat % p
    slices = [(energies[:, :, k].T, "dx (cm)", "dy (cm)"), (energies[:, j, :].T, "dx (cm)", "dz (cm)"), (energies[i, :, :].T, "dy (cm)", "dz (cm)")]
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    extent = [float(offsets[0]), float(offsets[-1]), float(offsets[0]), float(offsets[-1])]
    for axis, (values, xlabel, ylabel) in zip(axes, slices):
        image = axis.imshow(values.numpy(), origin="lower", extent=extent, cmap="viridis")
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        figure.colorbar(image, ax=axis, fraction=0.046)
    best = landscape.argmin()
    figure.suptitle(title or f"energy landscape; minimum at ({best[0]*100:.1f}, {best[1]*100:.1f}, {best[2]*100:.1f}) cm", fontsize=10)
    return save_figure(figure, path)
