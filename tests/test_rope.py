"""RoPE layouts: the interleaved (2.1) one is a true rotation, the tiled (V-JEPA 2) one is not."""
from __future__ import annotations

import pytest
import torch

from vjepa_wm.world_model.rope import apply_rope, rope_chunk_size, video_rope_tables


@pytest.mark.parametrize("head_dim,chunk", [(64, 20), (80, 26), (32, 10), (128, 42)])
def test_chunk_sizes_match_the_published_rule(head_dim, chunk):
    assert rope_chunk_size(head_dim) == chunk


def scores(layout, offset):
    """q.k for two tokens in the same frame/row whose columns differ by 2, shifted by `offset` columns."""
    torch.manual_seed(0)
    q = torch.randn(1, 1, 1, 64)
    k = torch.randn(1, 1, 1, 64)
    ids_q = torch.tensor([offset + 2])
    ids_k = torch.tensor([offset])
    tq = video_rope_tables(ids_q, (1, 1, 32), 64, layout)
    tk = video_rope_tables(ids_k, (1, 1, 32), 64, layout)
    return float((apply_rope(q, tq) * apply_rope(k, tk)).sum())


def test_interleaved_scores_depend_only_on_relative_position():
    assert scores("interleaved", 0) == pytest.approx(scores("interleaved", 7), abs=1e-5)


def test_tiled_layout_is_not_relative():
    """The V-JEPA 2 'bug': pairs use two different frequencies, so shifting both tokens changes q.k."""
    assert abs(scores("tiled", 0) - scores("tiled", 7)) > 1e-3


def test_interleaved_preserves_norm_and_leaves_rest_untouched():
    x = torch.randn(2, 3, 12, 64)
    tables = video_rope_tables(torch.arange(12), (3, 2, 2), 64, "interleaved")
    y = apply_rope(x, tables)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.equal(y[..., 60:], x[..., 60:])


def test_interpolation_maps_the_grid_edges_onto_the_256px_grid():
    ids = torch.tensor([0, 4, 5 * 5 - 1])  # first row start, first row end, last token of a 5x5 grid
    plain = video_rope_tables(ids, (1, 5, 5), 64, "interleaved", interpolate=False)
    interp = video_rope_tables(ids, (1, 5, 5), 64, "interleaved", interpolate=True)
    reference = video_rope_tables(torch.tensor([0, 15, 16 * 16 - 1]), (1, 16, 16), 64, "interleaved")
    assert torch.allclose(interp.cos, reference.cos, atol=1e-6)
    assert not torch.allclose(plain.cos, reference.cos, atol=1e-3)


def test_bf16_inputs_are_rotated_in_float32():
    x = torch.randn(1, 1, 64, 64)
    tables = video_rope_tables(torch.arange(64), (4, 4, 4), 64, "tiled")
    exact = apply_rope(x, tables)
    low = apply_rope(x.bfloat16(), tables)
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), exact, atol=3e-2)
