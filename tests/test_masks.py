"""Multiblock masks and the 2.1 context-loss distance weights.

The block-shape rule is checked against the official V-JEPA 2 generator (pip `cc-vjepa2`) with
identically seeded generators, the placement statistics against the same generator, and the
distance weights against a brute-force loop.
"""
from __future__ import annotations

import math

import pytest
import torch

from vjepa_wm.world_model.pretraining.masks import (
    IMAGE_MASKS,
    VIDEO_MASKS,
    MaskError,
    MaskSpec,
    block_shape,
    context_weights,
    multiblock_masks,
    token_coordinates,
)

GRID = (8, 16, 16)  # 16 frames at 256 px


def spatial(ids: torch.Tensor, grid) -> set[int]:
    return {int(i) % (grid[1] * grid[2]) for i in ids}


@pytest.mark.parametrize("specs,grid", [(VIDEO_MASKS, GRID), (VIDEO_MASKS, (2, 4, 4)), (IMAGE_MASKS, (1, 16, 16))])
def test_counts_disjointness_and_tubes(specs, grid):
    tokens = grid[0] * grid[1] * grid[2]
    pairs = multiblock_masks(specs, 6, grid, seed=3, step=7)
    assert len(pairs) == len(specs)
    for pair in pairs:
        assert pair.keep.shape[0] == pair.targets.shape[0] == 6  # one row per sample: equal counts
        assert pair.keep.dtype == pair.targets.dtype == torch.int64
        assert pair.keep.shape[1] > 0 and pair.targets.shape[1] > 0
        for keep, targets in zip(pair.keep, pair.targets):
            assert torch.equal(keep, keep.sort().values) and torch.equal(targets, targets.sort().values)
            assert len(set(keep.tolist())) == len(keep) and len(set(targets.tolist())) == len(targets)
            assert int(keep.min()) >= 0 and int(max(keep.max(), targets.max())) < tokens
            # Blocks span all time steps: no spatial position is both visible and hidden.
            assert not spatial(keep, grid) & spatial(targets, grid)


def test_context_is_the_complement_without_truncation():
    for step in range(20):
        for pair, spec in zip(multiblock_masks(VIDEO_MASKS, 1, GRID, seed=0, step=step), VIDEO_MASKS):
            keep, targets = set(pair.keep[0].tolist()), set(pair.targets[0].tolist())
            assert keep | targets == set(range(8 * 16 * 16)) and not keep & targets
            hidden = spatial(pair.targets[0], GRID)
            assert len(pair.targets[0]) == 8 * len(hidden)  # the same hidden set in every frame
            area = int(256 * spec.spatial_scale[0])
            assert area * 0.7 <= len(hidden) <= spec.num_blocks * area * 1.3


def test_masks_are_a_function_of_seed_step_and_stream():
    a = multiblock_masks(VIDEO_MASKS, 4, GRID, seed=1, step=5)
    b = multiblock_masks(VIDEO_MASKS, 4, GRID, seed=1, step=5)
    c = multiblock_masks(VIDEO_MASKS, 4, GRID, seed=1, step=6)
    d = multiblock_masks(VIDEO_MASKS, 4, GRID, seed=1, step=5, stream=1)
    assert all(torch.equal(x.keep, y.keep) and torch.equal(x.targets, y.targets) for x, y in zip(a, b))
    assert not torch.equal(a[0].targets, c[0].targets) or not torch.equal(a[1].targets, c[1].targets)
    assert not torch.equal(a[0].targets, d[0].targets) or not torch.equal(a[1].targets, d[1].targets)


@pytest.mark.parametrize("spec", list(VIDEO_MASKS) + list(IMAGE_MASKS) + [MaskSpec(3, (0.2, 0.5), (0.5, 2.0), (0.5, 1.0))])
def test_block_shape_matches_the_official_rule(spec):
    from vjepa2.masks.multiseq_multiblock3d import _MaskGenerator

    official = _MaskGenerator(
        crop_size=(256, 256), num_frames=16, spatial_patch_size=(16, 16), temporal_patch_size=2,
        spatial_pred_mask_scale=spec.spatial_scale, temporal_pred_mask_scale=spec.temporal_scale,
        aspect_ratio=spec.aspect_ratio, npred=spec.num_blocks,
    )
    for seed in range(25):
        expected = official._sample_block_size(
            torch.Generator().manual_seed(seed), spec.temporal_scale, spec.spatial_scale, spec.aspect_ratio
        )
        assert block_shape(spec, GRID, torch.Generator().manual_seed(seed)) == expected


def test_hidden_fraction_matches_the_official_generator():
    """Placement statistics: the mean hidden share of a frame agrees with the official code."""
    from vjepa2.masks.multiseq_multiblock3d import _MaskGenerator

    torch.manual_seed(0)
    for spec in VIDEO_MASKS:
        official = _MaskGenerator(
            crop_size=(256, 256), num_frames=16, spatial_patch_size=(16, 16), temporal_patch_size=2,
            spatial_pred_mask_scale=spec.spatial_scale, temporal_pred_mask_scale=spec.temporal_scale,
            aspect_ratio=spec.aspect_ratio, npred=spec.num_blocks,
        )
        theirs = [len(official(1)[1][0]) / 2048 for _ in range(300)]
        ours = [pair.targets.shape[1] / 2048 for step in range(300) for pair in multiblock_masks((spec,), 1, GRID, 0, step)]
        assert abs(sum(ours) / len(ours) - sum(theirs) / len(theirs)) < 0.02


def test_a_spec_that_hides_everything_is_refused():
    with pytest.raises(MaskError, match="whole"):
        multiblock_masks((MaskSpec(1, (1.0, 1.0)),), 2, (2, 4, 4), 0, 0)
    with pytest.raises(MaskError):
        MaskSpec(0, (0.15, 0.15))
    with pytest.raises(MaskError):
        MaskSpec(2, (0.5, 1.5))


def brute_force_weights(keep, targets, grid):
    rows, cols = grid[1], grid[2]

    def coords(i):
        return i // (rows * cols), (i % (rows * cols)) // cols, i % cols

    out = []
    for b in range(keep.shape[0]):
        row = []
        for k in keep[b].tolist():
            d = min(math.dist(coords(k), coords(t)) for t in targets[b].tolist())
            row.append(1 / math.sqrt(d))
        out.append(row)
    return torch.tensor(out)


def test_context_weights_against_brute_force():
    grid = (3, 5, 6)
    for pair in multiblock_masks(VIDEO_MASKS, 3, grid, seed=2, step=1):
        assert torch.allclose(context_weights(pair.keep, pair.targets, grid), brute_force_weights(pair.keep, pair.targets, grid), atol=1e-6)


def test_a_token_next_to_the_mask_weighs_one():
    # one row of five tokens, the middle one hidden
    weights = context_weights(torch.tensor([[0, 1, 3, 4]]), torch.tensor([[2]]), (1, 1, 5))
    assert weights[0, 1].item() == 1.0 and weights[0, 2].item() == 1.0
    assert weights[0, 0].item() == pytest.approx(1 / math.sqrt(2))
    # time is an axis too: two frames from the hidden token, diagonal neighbours at sqrt(2)
    weights = context_weights(torch.tensor([[4, 8, 5]]), torch.tensor([[0]]), (3, 2, 2))
    assert weights[0].tolist() == pytest.approx([1.0, 1 / math.sqrt(2), 1 / math.sqrt(math.sqrt(2))])


def test_context_weights_reject_bad_input():
    with pytest.raises(MaskError, match="disjoint"):
        context_weights(torch.tensor([[0, 1]]), torch.tensor([[1]]), (1, 1, 4))
    with pytest.raises(MaskError, match="at least one"):
        context_weights(torch.tensor([[0, 1]]), torch.zeros(1, 0, dtype=torch.long), (1, 1, 4))


def test_token_coordinates_follow_t_h_w_order():
    ids = torch.tensor([0, 1, 5, 6, 12, 23])
    assert token_coordinates(ids, (2, 3, 4)).tolist() == [
        [0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 2], [1, 0, 0], [1, 2, 3]
    ]
