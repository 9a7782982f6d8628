"""CPU planning speed-up: RoPE folded into per-token qkv weights, as an explicit transform.

The rotation is linear, so rotating ``x @ W_q.T + b_q`` at token n equals projecting with
``W_q.T`` and ``b_q`` rotated at n. A batched matmul over tokens then yields rotated q and k
directly: on a CPU that removes the rotation's four passes over the q/k activations, which for
the planner's small predictor cost as much as the projection itself. It pays only when the same
positions are used again and again (every CEM iteration imagines the same steps) and the
per-token weights stay small; on a GPU the rotation is nearly free and bf16 would round the
folded weights, and in training the weights change every step.

`fold_rope(world_model, steps)` returns a planning view of a `WorldModel`: the same encoder and
predictor weights (shared, not copied, so everything but the q/k/v projection computes exactly
what the model computes), with the predictor's attention layers carrying folded weights for the
first `steps` rollout steps (positions it has not folded fall back to the plain rotation). The
folded weights are a snapshot: a view whose model was trained further refuses to run rather than
mix old and new weights. The planner applies it (`planner.planning_model`); everything else runs
the plain `Attention`.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .layers import Attention
from .rope import RopeTables, apply_rope
from .world_model import WorldModel

# Largest per-layer folded qkv weight (tokens x in x 3*dim float32 values) worth building.
FOLDED_QKV_MAX_BYTES = 64 * 1024 * 1024


def fold_into_projection(weight: torch.Tensor, bias: torch.Tensor | None, tables: RopeTables, heads: int):
    """Per-token qkv weights with the rotation built in: ``[N, in, 3*dim]`` and bias ``[N, 1, 3*dim]``."""
    out_dim, in_dim = weight.shape
    dim = out_dim // 3
    head_dim = dim // heads
    tokens = tables.cos.shape[-2]
    columns = weight.t().reshape(in_dim, 3, heads, 1, head_dim)
    rotated = apply_rope(columns[:, :2], tables)  # [in, 2, heads, N, head_dim]
    values = columns[:, 2:].expand(-1, -1, -1, tokens, -1)
    folded_weight = torch.cat([rotated, values], dim=1).permute(3, 0, 1, 2, 4).reshape(tokens, in_dim, out_dim)
    if bias is None:
        return folded_weight.contiguous(), None
    b = bias.reshape(3, heads, 1, head_dim)
    folded_bias = torch.cat([apply_rope(b[:2], tables), b[2:].expand(-1, -1, tokens, -1)], dim=0)
    return folded_weight.contiguous(), folded_bias.permute(2, 0, 1, 3).reshape(tokens, 1, out_dim)


class FoldedRopeAttention(nn.Module):
    """An `Attention` (weights shared) whose q/k/v projection for known RoPE spans uses folded weights."""

    def __init__(self, attention: Attention, tables: list[RopeTables]):
        super().__init__()
        self.attention = attention
        self.folded_versions = self._versions()
        with torch.no_grad():
            self.folded = {
                t.span: fold_into_projection(attention.qkv.weight, attention.qkv.bias, t, attention.num_heads) for t in tables
            }

    def _versions(self) -> tuple[int, ...]:
        """In-place update counters of the projection the folded weights were made from."""
        qkv = self.attention.qkv
        return tuple(p._version for p in (qkv.weight, qkv.bias) if p is not None)

    def forward(self, x: torch.Tensor, rope, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.attention(x, rope, attn_mask)

    def forward_cached(self, x: torch.Tensor, rope, kv_prefix) -> tuple[torch.Tensor, tuple]:
        if self._versions() != self.folded_versions:
            raise ValueError("the predictor's weights changed after fold_rope: fold the trained model again to plan with it")
        folded = self.folded.get(getattr(rope, "span", None))
        if folded is None or folded[0].shape[0] != x.shape[1] or rope.cos.shape[0] != 1:
            return self.attention.forward_cached(x, rope, kv_prefix)
        q, k, v = self._project(x, *folded)
        return self.attention.attend(q, k, v, kv_prefix), (k, v)

    def _project(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        heads, head_dim = self.attention.num_heads, self.attention.head_dim
        tokens_first = x.transpose(0, 1)  # [N, B, in]: one small matmul per token position
        qkv = torch.bmm(tokens_first, weight) if bias is None else torch.baddbmm(bias, tokens_first, weight)
        return qkv.view(x.shape[1], x.shape[0], 3, heads, head_dim).permute(2, 1, 3, 0, 4).unbind(0)


def fold_problem(world_model: WorldModel, steps: int) -> str | None:
    """Why `fold_rope` does not apply to this model, or None."""
    predictor = world_model.predictor
    weight = predictor.predictor_blocks[0].attn.qkv.weight
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return f"folding is for float32 models on a CPU (this one is {weight.dtype} on {weight.device.type})"
    if predictor.config.head_dim % 2:
        return f"heads of {predictor.config.head_dim} channels have an odd channel"
    tokens = predictor.config.tokens_per_frame + 2
    if tokens * weight.numel() * 4 > FOLDED_QKV_MAX_BYTES:
        return f"per-token qkv weights of {tokens * weight.numel() * 4 / 2**20:.0f} MiB per layer are too large"
    if steps < 1:
        return "steps must be positive"
    return None


def _view(module: nn.Module) -> nn.Module:
    """A new module object sharing `module`'s parameters, buffers and children (its own child table)."""
    view = copy.copy(module)
    view._modules = dict(module._modules)
    return view


def fold_rope(world_model: WorldModel, steps: int) -> WorldModel:
    """A planning view of `world_model` with RoPE folded for rollout steps ``0 .. steps-1``."""
    problem = fold_problem(world_model, steps)
    if problem is not None:
        raise ValueError(f"cannot fold RoPE: {problem}")
    original = world_model.predictor
    predictor = _view(original)
    predictor._rope_tables = {}
    device = original.predictor_blocks[0].attn.qkv.weight.device
    tables = [predictor.step_rope(step, 1, device) for step in range(steps)]
    blocks = []
    for block in original.predictor_blocks:
        folded = _view(block)
        folded.attn = FoldedRopeAttention(block.attn, tables)
        blocks.append(folded)
    predictor.predictor_blocks = nn.ModuleList(blocks)
    return WorldModel(world_model.encoder, predictor, world_model.img_size, world_model.embodiment).eval()
