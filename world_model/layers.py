"""Transformer building blocks shared by the encoder and both predictors.

Parameter names (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``)
follow the official V-JEPA checkpoints so their state dicts load without renaming.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .rope import RopeTables, apply_rope

LAYER_NORM_EPS = 1e-6


class DropPath(nn.Module):
    """Stochastic depth: drops the residual branch per sample while training."""

    def __init__(self, prob: float = 0.0):
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with RoPE on q and k, computed by SDPA.

    `forward` attends over the whole sequence (``attn_mask``: boolean ``[N, N]``, True = may
    attend, as the block-causal AC predictor needs); `forward_cached` attends also to cached keys
    and values of earlier steps (already rotated) and hands back this call's rotated keys/values
    to cache, for incremental rollouts.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def project(self, x: torch.Tensor, rope: RopeTables | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v ``[B, heads, N, head_dim]`` of ``x`` ``[B, N, dim]``, q and k rotated by `rope`."""
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        if rope is None:
            return qkv.unbind(0)
        q, k = apply_rope(qkv[:2], rope).unbind(0)  # q and k in one pass
        return q, k, qkv[2]

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kv_prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """SDPA of q over ``kv_prefix`` + (k, v), then the output projection: ``[B, N, dim]``."""
        if kv_prefix is not None:
            k = torch.cat([kv_prefix[0], k], dim=2)
            v = torch.cat([kv_prefix[1], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        batch, _, tokens, _ = q.shape
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, self.num_heads * self.head_dim))

    def forward(self, x: torch.Tensor, rope: RopeTables | None, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.attend(*self.project(x, rope), attn_mask=attn_mask)

    def forward_cached(self, x: torch.Tensor, rope: RopeTables | None, kv_prefix) -> tuple[torch.Tensor, tuple]:
        """(output, this call's rotated (k, v)) attending to ``kv_prefix`` (or None) and to ``x`` itself."""
        q, k, v = self.project(x, rope)
        return self.attend(q, k, v, kv_prefix), (k, v)


class Block(nn.Module):
    """Pre-norm transformer block (no LayerScale), LayerNorm eps 1e-6, exact GELU."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool = True, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, rope, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), rope, attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def forward_cached(self, x: torch.Tensor, rope, kv_prefix) -> tuple[torch.Tensor, tuple]:
        """(output, this block's new (k, v)) for an incremental step over cached keys/values."""
        attn, kv = self.attn.forward_cached(self.norm1(x), rope, kv_prefix)
        x = x + self.drop_path(attn)
        return x + self.drop_path(self.mlp(self.norm2(x))), kv


def init_vit_weights(module: nn.Module, std: float = 0.02) -> None:
    """The V-JEPA initialisation: truncated normal for Linear/Conv, zero bias, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv3d, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def rescale_residual_branches(blocks: nn.ModuleList) -> None:
    """Divide each block's output projections by sqrt(2*layer) (1-based), as the official init does."""
    with torch.no_grad():
        for layer, block in enumerate(blocks, start=1):
            block.attn.proj.weight.div_((2.0 * layer) ** 0.5)
            block.mlp.fc2.weight.div_((2.0 * layer) ** 0.5)
