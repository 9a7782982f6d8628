"""3D rotary position embedding (RoPE) as the V-JEPA family uses it.

Each attention head's channels are split into three equal chunks for (time, height, width),
each of size 2*floor(floor(head_dim/3)/2); any leftover channels at the end of the head are
passed through unrotated. Rotation pairs are adjacent channels (2i, 2i+1), frequencies are
omega_j = 10000^(-2j/d) per chunk of size d.

Two frequency layouts exist and both must be reproduced exactly:

* ``"tiled"``: the sin/cos tables of width d/2 are concatenated with themselves, so channel k
  uses omega_{k mod d/2}. This is not a true rotation, but V-JEPA 2 and V-JEPA 2-AC weights were
  trained with it (and the Hugging Face port replicates it).
* ``"interleaved"``: each frequency is repeated for both members of its pair, a true rotation;
  V-JEPA 2.1 uses it.

Tables are built once per forward pass in float32 (the official code builds them per layer in
the activation dtype, which loses precision in bf16) and applied to q and k by `apply_rope`.
They span the whole head: the pass-through channels get cos 1 and sin 0, and the sine carries the
pair's sign, so a rotation is two multiplies, one pair swap and one add, with no slicing or
concatenation (on CPU those copies cost as much as the multiplies). The result is bit-identical
to rotating the leading chunks and appending the untouched rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

RopeLayout = Literal["tiled", "interleaved"]

# The 2.1 models interpolate RoPE positions onto the grid of their 256-px pretraining resolution.
PRETRAINED_GRID = 16


def rope_chunk_size(head_dim: int) -> int:
    """Channels rotated per axis; three such chunks (t, h, w) start each head."""
    return 2 * ((head_dim // 3) // 2)


@dataclass
class RopeTables:
    """Whole-head tables broadcastable to ``[B, heads, N, head_dim]``: ``cos`` (1 on pass-through
    channels) and ``signed_sin`` (-sin on the first, +sin on the second member of each pair, 0 on
    pass-through channels)."""

    cos: torch.Tensor
    signed_sin: torch.Tensor
    # (first step, steps) for tables of whole AC-predictor steps, so a transform that precomputed
    # work for known positions (`world_model.rope_folding`) can recognise them; None otherwise.
    span: tuple[int, int] | None = None

    @property
    def width(self) -> int:
        return self.cos.shape[-1]

    def select(self, index: torch.Tensor) -> "RopeTables":
        """Tables for a subset of tokens (``index`` is ``[N']`` or ``[B, N']``)."""
        return RopeTables(_gather_tokens(self.cos, index), _gather_tokens(self.signed_sin, index))


def _gather_tokens(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    # table: [B|1, 1, N, W]
    if index.dim() == 1:
        return table[:, :, index]
    batch = max(table.shape[0], index.shape[0])
    table = table.expand(batch, -1, -1, -1)
    gather_index = index[:, None, :, None].expand(batch, 1, index.shape[1], table.shape[-1])
    return torch.gather(table, 2, gather_index)


def axis_angles(positions: torch.Tensor, chunk: int, layout: RopeLayout) -> torch.Tensor:
    """Angles for one axis chunk: positions ``[..., N]`` -> ``[..., N, chunk]`` in float32."""
    omega = torch.arange(chunk // 2, dtype=torch.float32, device=positions.device)
    omega = 1.0 / 10000 ** (omega / (chunk / 2.0))
    freq = positions.to(torch.float32)[..., None] * omega
    if layout == "tiled":
        return torch.cat([freq, freq], dim=-1)
    if layout == "interleaved":
        return freq.repeat_interleave(2, dim=-1)
    raise ValueError(f"unknown RoPE layout {layout!r} (expected 'tiled' or 'interleaved')")


def tables_from_angles(angles: torch.Tensor, head_dim: int) -> RopeTables:
    """``angles`` ``[B|1, N, W]`` for the rotated channels -> whole-head tables ``[B|1, 1, N, head_dim]``
    (an odd head's last channel is left out; `apply_rope` passes it through)."""
    width, even = angles.shape[-1], head_dim - head_dim % 2
    if width % 2 or width > even:
        raise ValueError(f"cannot rotate {width} channels of a {head_dim}-channel head")
    angles = angles.unsqueeze(1)
    sign = torch.tensor([-1.0, 1.0], device=angles.device).repeat(width // 2)
    cos = torch.ones(*angles.shape[:-1], even, device=angles.device)
    signed_sin = torch.zeros_like(cos)
    cos[..., :width] = angles.cos()
    signed_sin[..., :width] = angles.sin() * sign
    return RopeTables(cos, signed_sin)


def grid_positions(ids: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """Flat token indices in t->h->w order -> (frame, row, column) as float tensors."""
    per_frame = height * width
    frame = torch.div(ids, per_frame, rounding_mode="floor")
    rest = ids - frame * per_frame
    row = torch.div(rest, width, rounding_mode="floor")
    col = rest - row * width
    return frame.float(), row.float(), col.float()


def video_rope_tables(
    ids: torch.Tensor,
    grid: tuple[int, int, int],
    head_dim: int,
    layout: RopeLayout,
    interpolate: bool = False,
) -> RopeTables:
    """Tables for patch tokens whose flat indices are ``ids`` (``[N]`` or ``[B, N]``).

    ``grid`` is (frames, rows, cols) of the actual input, so non-square inputs get their true
    coordinates. With ``interpolate`` (V-JEPA 2.1) rows/cols are rescaled onto the 16x16 grid of
    the 256-px pretraining resolution; time is never rescaled.
    """
    _, rows, cols = grid
    chunk = rope_chunk_size(head_dim)
    frame, row, col = grid_positions(ids, rows, cols)
    if interpolate:
        row = row * ((PRETRAINED_GRID - 1) / (rows - 1)) if rows > 1 else row
        col = col * ((PRETRAINED_GRID - 1) / (cols - 1)) if cols > 1 else col
    angles = torch.cat(
        [axis_angles(frame, chunk, layout), axis_angles(row, chunk, layout), axis_angles(col, chunk, layout)],
        dim=-1,
    )
    if angles.dim() == 2:
        angles = angles.unsqueeze(0)
    return tables_from_angles(angles, head_dim)


def apply_rope(x: torch.Tensor, tables: RopeTables) -> torch.Tensor:
    """Rotate ``x`` ``[..., heads, N, head_dim]`` (q, k, or both stacked in front) by ``tables``.

    Computed in float32 and cast back, so bf16 activations get accurate rotations. Channel pairs
    (2i, 2i+1) become (x_2i cos - x_2i+1 sin, x_2i+1 cos + x_2i sin); a trailing odd channel, if a
    head has one, passes through.
    """
    head_dim = x.shape[-1]
    even = head_dim - head_dim % 2
    if tables.width != even:
        raise ValueError(f"RoPE tables are {tables.width} wide, heads have {head_dim} channels")
    rotated = x[..., :even].float() if even != head_dim else x.float()
    swapped = rotated.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    out = rotated * tables.cos + swapped * tables.signed_sin
    if even != head_dim:
        return torch.cat([out.to(x.dtype), x[..., even:]], dim=-1)
    return out.to(x.dtype)
