"""Does a car world model's energy rank paths the way their errors do? (`nav-replay --landscape`)

A plan can only be as good as the energy's ranking of candidate paths near the answer. Per plan,
the model's energy (L1 of the last imagined latent to the goal latent, as the CEM minimises it)
scores the replay's random straight lines, the driven actions and constant velocity:

- `energy_ate_spearman`: Spearman rank correlation of energy and ATE over the lines (1: the
  energy orders them as their errors do; 0: no relation);
- `lines_below_driven`: share of lines the energy prefers to the driven path (0 for an energy
  whose minimum is the truth);
- `driven_below_constant_velocity`: 1 when the driven path scores below constant velocity, the
  model-free baseline a planner has to beat;
- `encoder_distance_spearman`: no prediction at all: Spearman of the encoder's L1 from each recorded
  frame of the drive (the context, then the driven frames up to the goal) to the goal latent against
  that frame's distance to the goal pose. High here and low over the lines: the predictor fails,
  not the encoder's goal energy.

Means over the plans make the `landscape` record of the report. Reading them before a replay's
table says whether a model's losses come from its energy or from the search, and from which part.
"""
from __future__ import annotations

import numpy as np
import torch

from vjepa_wm.planner.energy import ScoreFn, energy

FIGURES = ("energy_ate_spearman", "lines_below_driven", "driven_below_constant_velocity", "encoder_distance_spearman")


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, tied values sharing their mean rank (what Spearman's correlation needs)."""
    ranked = np.empty(len(values), dtype=np.float64)
    ranked[np.argsort(values, kind="stable")] = np.arange(len(values), dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranked) / counts)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation; 0 when either side is constant (no ordering to agree with)."""
    ra, rb = ranks(np.asarray(a, dtype=np.float64)), ranks(np.asarray(b, dtype=np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    scale = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / scale) if scale > 0 else 0.0


def landscape_figures(score: ScoreFn, lines, line_ates: np.ndarray, driven, constant_velocity, device="cpu") -> dict[str, float]:
    """One plan's figures: `lines` ``[L, H, A]`` with their ATEs ``[L]``, `driven` and
    `constant_velocity` ``[H, A]`` (arrays or CPU tensors), all scored in one batch on `device`."""
    actions = np.concatenate([np.asarray(lines), np.asarray(driven)[None], np.asarray(constant_velocity)[None]])
    batch = torch.as_tensor(actions, dtype=torch.float32, device=device)
    energies = score(batch).detach().cpu().double().numpy()
    lines_e, driven_e, cv_e = energies[:-2], energies[-2], energies[-1]
    return {"energy_ate_spearman": spearman(lines_e, line_ates), "lines_below_driven": float((lines_e < driven_e).mean()),
            "driven_below_constant_velocity": float(driven_e < cv_e)}


def encoder_ranking(model, frames: np.ndarray, goal_image: np.ndarray, distances: np.ndarray) -> float:
    """Spearman of the energy of each recorded frame ``[T, H, W, 3]`` (its latent's L1 to the goal
    image's) against its distance to the goal ``[T]``."""
    n = model.tokens_per_frame
    with torch.no_grad():
        z = model.encode_images(frames).reshape(len(frames), n, -1)
        z_goal = model.encode_images(goal_image[None]).reshape(1, n, -1)
    return spearman(energy(z, z_goal).cpu().double().numpy(), distances)


def landscape_summary(rows: list[dict[str, float]]) -> dict[str, float]:
    return {"plans": len(rows), **{name: float(np.mean([r[name] for r in rows])) for name in FIGURES}}
