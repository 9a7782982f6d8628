"""Multiblock 3D masks for V-JEPA pretraining, and the distance weights of the 2.1 context loss.

A mask set hides the union of a few rectangular blocks; every block spans all time steps (a
"tube"), so the predictor cannot copy a hidden patch from a neighbouring frame. The context
(what the encoder sees) is the complement. Two sets per video clip, as in every published
recipe: 8 blocks of 15% of the frame each (short range) and 2 blocks of 70% (long range);
images get one set of 10 blocks of 15%.

Token indices run t -> h -> w over a (frames, rows, cols) token grid, the encoder's order.

Differences from the official generator, on purpose:

* masks are a pure function of ``(seed, step, stream)``: resuming a run, or splitting a global
  batch over ranks, reproduces them exactly without saving generator state;
* samples are brought to the batch's smallest context / target count by dropping a *random*
  subset of the surplus tokens (the official code keeps the lowest indices, which always drops
  the bottom of the last frames);
* a block is at least 1x1 even when the scale rounds to nothing on a tiny grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

Grid = tuple[int, int, int]  # (frames, rows, cols) of tokens

# A mask set whose blocks cover the whole grid is redrawn; past this many tries the spec is unusable.
MAX_DRAWS = 100


class MaskError(ValueError):
    """A mask spec that cannot produce a non-empty context on this grid."""


@dataclass(frozen=True)
class MaskSpec:
    """One mask set: `num_blocks` blocks, each covering `spatial_scale` of a frame."""

    num_blocks: int
    spatial_scale: tuple[float, float]
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    temporal_scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self):
        if self.num_blocks < 1:
            raise MaskError(f"a mask set needs at least one block (got {self.num_blocks})")
        for name in ("spatial_scale", "aspect_ratio", "temporal_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise MaskError(f"{name} must be a range 0 < low <= high, got ({low}, {high})")
        if self.spatial_scale[1] > 1 or self.temporal_scale[1] > 1:
            raise MaskError("spatial_scale and temporal_scale must not exceed 1")


VIDEO_MASKS = (MaskSpec(8, (0.15, 0.15)), MaskSpec(2, (0.7, 0.7)))
IMAGE_MASKS = (MaskSpec(10, (0.15, 0.15)),)


@dataclass
class MaskPair:
    """Sorted kept (context) and target token indices, ``[B, K]`` and ``[B, M]`` long tensors."""

    keep: torch.Tensor
    targets: torch.Tensor

    def slice(self, start: int, stop: int) -> "MaskPair":
        return MaskPair(self.keep[start:stop], self.targets[start:stop])

    def to(self, device) -> "MaskPair":
        return MaskPair(self.keep.to(device), self.targets.to(device))


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + torch.rand(1, generator=generator).item() * (high - low)


def block_shape(spec: MaskSpec, grid: Grid, generator: torch.Generator) -> tuple[int, int, int]:
    """(frames, rows, cols) of the blocks of one batch; draws time, scale, aspect in that order."""
    frames, rows, cols = grid
    t = max(1, int(frames * _uniform(generator, *spec.temporal_scale)))
    area = int(rows * cols * _uniform(generator, *spec.spatial_scale))
    aspect = _uniform(generator, *spec.aspect_ratio)
    h = min(rows, max(1, int(round(math.sqrt(area * aspect)))))
    w = min(cols, max(1, int(round(math.sqrt(area / aspect)))))
    return t, h, w


def _draw_hidden(shape: tuple[int, int, int], spec: MaskSpec, grid: Grid, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Boolean ``[batch, frames, rows, cols]``, True inside one of `spec.num_blocks` random blocks."""
    frames, rows, cols = grid
    t, h, w = shape
    size = (batch, spec.num_blocks, 1)
    top = torch.randint(0, rows - h + 1, size, generator=generator)
    left = torch.randint(0, cols - w + 1, size, generator=generator)
    start = torch.randint(0, frames - t + 1, size, generator=generator)

    def inside(first: torch.Tensor, extent: int, length: int) -> torch.Tensor:  # [batch, blocks, length]
        axis = torch.arange(length)
        return (axis >= first) & (axis < first + extent)

    in_time, in_rows, in_cols = inside(start, t, frames), inside(top, h, rows), inside(left, w, cols)
    blocks = in_time[:, :, :, None, None] & in_rows[:, :, None, :, None] & in_cols[:, :, None, None, :]
    return blocks.any(dim=1)


def _equal_count_subset(chosen: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of `count` random True entries per row of ``chosen`` ``[B, N]``."""
    scores = torch.rand(chosen.shape, generator=generator).masked_fill(~chosen, 2.0)
    return scores.topk(count, dim=1, largest=False).indices.sort(dim=1).values


def sample_mask_pair(spec: MaskSpec, batch: int, grid: Grid, generator: torch.Generator) -> MaskPair:
    """One mask set for `batch` samples with equal context and target counts across the batch."""
    shape = block_shape(spec, grid, generator)
    hidden = _draw_hidden(shape, spec, grid, batch, generator).flatten(1)
    for _ in range(MAX_DRAWS):
        full = hidden.all(dim=1)
        if not bool(full.any()):
            break
        hidden[full] = _draw_hidden(shape, spec, grid, int(full.sum()), generator).flatten(1)
    else:
        raise MaskError(f"{spec} hides the whole {grid} token grid in {MAX_DRAWS} draws; use smaller blocks")
    num_keep = int((~hidden).sum(dim=1).min())
    num_targets = int(hidden.sum(dim=1).min())
    return MaskPair(_equal_count_subset(~hidden, num_keep, generator), _equal_count_subset(hidden, num_targets, generator))


def seeded_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A generator determined by (seed, step, stream) alone, so every rank and every resume agree."""
    state = np.random.SeedSequence([seed, step, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def multiblock_masks(specs: tuple[MaskSpec, ...], batch: int, grid: Grid, seed: int, step: int, stream: int = 0) -> list[MaskPair]:
    """One `MaskPair` per spec for a whole (global) batch; `stream` separates e.g. video from images."""
    if batch < 1:
        raise MaskError(f"batch size must be positive (got {batch})")
    if min(grid) < 1:
        raise MaskError(f"token grid {grid} is empty")
    generator = seeded_generator(seed, step, stream)
    return [sample_mask_pair(spec, batch, grid, generator) for spec in specs]


def token_coordinates(ids: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Flat t->h->w token indices ``[..., N]`` -> float (t, h, w) grid coordinates ``[..., N, 3]``."""
    _, rows, cols = grid
    frame = torch.div(ids, rows * cols, rounding_mode="floor")
    rest = ids - frame * rows * cols
    row = torch.div(rest, cols, rounding_mode="floor")
    return torch.stack([frame, row, rest - row * cols], dim=-1).float()


def context_weights(keep: torch.Tensor, targets: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Per context token, 1/sqrt(d) with d the Euclidean (t, h, w) distance to the nearest target.

    V-JEPA 2.1 weights its context loss this way so visible tokens next to the hole, whose
    features say most about it, count most; a token adjacent to the mask gets weight 1.
    ``keep`` ``[B, K]``, ``targets`` ``[B, M]`` (disjoint) -> ``[B, K]`` float32.
    """
    if keep.dim() != 2 or targets.dim() != 2 or keep.shape[0] != targets.shape[0]:
        raise MaskError(f"keep and targets must be [B, K] and [B, M] index tensors, got {tuple(keep.shape)} and {tuple(targets.shape)}")
    if targets.shape[1] == 0:
        raise MaskError("context weights need at least one target token")
    distance = torch.cdist(
        token_coordinates(keep, grid), token_coordinates(targets, grid), compute_mode="donot_use_mm_for_euclid_dist"
    ).amin(dim=-1)
    if bool((distance == 0).any()):
        raise MaskError("a context token is also a target token; keep and targets must be disjoint")
    return distance.rsqrt()
