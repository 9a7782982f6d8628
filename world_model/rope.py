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
    """cos/sin for the rotated part of a head, broadcastable to ``[B, heads, N, 3*chunk]``."""

    cos: torch.Tensor
    sin: torch.Tensor

    @property
    def width(self) -> int:
        return self.cos.shape[-1]

    def select(self, index: torch.Tensor) -> "RopeTables":
        """Tables for a subset of tokens (``index`` is ``[N']`` or ``[B, N']``)."""
        return RopeTables(_gather_tokens(self.cos, index), _gather_tokens(self.sin, index))


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


def tables_from_angles(angles: torch.Tensor) -> RopeTables:
    """``angles`` ``[B|1, N, W]`` -> tables shaped ``[B|1, 1, N, W]`` (a head axis added)."""
    angles = angles.unsqueeze(1)
    return RopeTables(angles.cos(), angles.sin())


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
    return tables_from_angles(angles)


def apply_rope(x: torch.Tensor, tables: RopeTables) -> torch.Tensor:
    """Rotate the leading ``tables.width`` channels of each head of ``x`` ``[B, heads, N, hd]``.

    Computed in float32 and cast back, so bf16 activations get accurate rotations.
    """
    width = tables.width
    rotated = x[..., :width].float()
    pairs = rotated.unflatten(-1, (-1, 2))
    companion = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    out = rotated * tables.cos + companion * tables.sin
    if width == x.shape[-1]:
        return out.to(x.dtype)
    return torch.cat([out.to(x.dtype), x[..., width:]], dim=-1)
