"""Transformer building blocks shared by the encoder and both predictors.

Parameter names (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``)
follow the official V-JEPA checkpoints so their state dicts load without renaming.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from world_model.rope import RopeTables, apply_rope, fold_into_projection

# Largest per-layer folded qkv weight (tokens x in x 3*dim floats) worth keeping; see `fold_into_projection`.
FOLDED_QKV_MAX_BYTES = 64 * 1024 * 1024
FOLDED_ENTRIES_PER_TABLE = 64

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

    ``attn_mask`` is a boolean ``[N, N]`` (True = may attend) used by the block-causal AC
    predictor; ``kv_prefix`` prepends cached keys/values (already rotated) for incremental
    rollouts and ``return_kv`` hands back this call's rotated keys/values to cache.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeTables | None,
        attn_mask: torch.Tensor | None = None,
        kv_prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_kv: bool = False,
    ):
        batch, tokens, dim = x.shape
        if rope is not None and self._fold_rope(x, rope):
            q, k, v = self._folded_qkv(x, rope)
        else:
            qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
            if rope is not None:
                q, k = apply_rope(qkv[:2], rope).unbind(0)  # q and k in one pass
                v = qkv[2]
            else:
                q, k, v = qkv.unbind(0)
        new_kv = (k, v)
        if kv_prefix is not None:
            k = torch.cat([kv_prefix[0], k], dim=2)
            v = torch.cat([kv_prefix[1], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))
        return (out, new_kv) if return_kv else out

    def _fold_rope(self, x: torch.Tensor, rope: RopeTables) -> bool:
        """Fold RoPE into the projection for CPU float32 inference with reused, batch-shared tables
        (the planner's case). On a GPU the rotation is nearly free and bf16 would round the folded
        weights; in training the weights change every step."""
        tokens = x.shape[1]
        return (
            rope.reusable
            and not torch.is_grad_enabled()
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.head_dim % 2 == 0
            and rope.cos.shape[0] == 1
            and rope.cos.shape[-2] == tokens
            and tokens * self.qkv.weight.numel() * 4 <= FOLDED_QKV_MAX_BYTES
        )

    def _folded_qkv(self, x: torch.Tensor, rope: RopeTables):
        weight, bias = self.qkv.weight, self.qkv.bias
        # The key changes whenever the weights do (in-place updates bump `_version`).
        key = (id(self), weight.data_ptr(), weight._version, None if bias is None else bias._version)
        if key not in rope.folded:
            if len(rope.folded) >= FOLDED_ENTRIES_PER_TABLE:  # stale entries from weights since updated
                rope.folded.clear()
            rope.folded[key] = fold_into_projection(weight, bias, rope, self.num_heads)
        folded_weight, folded_bias = rope.folded[key]
        tokens_first = x.transpose(0, 1)  # [N, B, in]: one small matmul per token position
        if folded_bias is None:
            qkv = torch.bmm(tokens_first, folded_weight)
        else:
            qkv = torch.baddbmm(folded_bias, tokens_first, folded_weight)
        batch = x.shape[0]
        return qkv.view(x.shape[1], batch, 3, self.num_heads, self.head_dim).permute(2, 1, 3, 0, 4).unbind(0)


class Block(nn.Module):
    """Pre-norm transformer block (no LayerScale), LayerNorm eps 1e-6, exact GELU."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool = True, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x, rope, attn_mask=None, kv_prefix=None, return_kv=False):
        attn = self.attn(self.norm1(x), rope, attn_mask, kv_prefix, return_kv)
        if return_kv:
            attn, kv = attn
        x = x + self.drop_path(attn)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return (x, kv) if return_kv else x


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
