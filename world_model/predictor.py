"""The masked-latent predictor of V-JEPA 2 and V-JEPA 2.1 pretraining.

It receives the context encoder's tokens at the kept indices, adds one learnable mask token at
every target index, sorts the joint sequence into raster (t -> h -> w) order so RoPE positions
follow the token grid, runs a narrow transformer and projects back to the encoder's width.

* V-JEPA 2 (12 blocks x 384): one Linear in, one projection out for the target tokens, tiled
  RoPE (the released weights need it).
* V-JEPA 2.1: the input is the encoder's four concatenated hierarchical levels, fused by
  Linear(4D -> D) -> GELU -> Linear(D -> 384); the output projections predict all four levels,
  one for the masked tokens and one for the visible (context) tokens; learnable image / video
  modality embeddings are added after sorting; interleaved RoPE with positions interpolated
  onto the 256-px grid, as the 2.1 training configs build it.

Parameter names follow the official checkpoints (``predictor_embed``, ``mask_tokens.{i}``,
``predictor_blocks.{i}.*``, ``predictor_norm``, ``predictor_proj``, ``predictor_proj_context``,
``video_mod_embed``, ``img_mod_embed``) so their state dicts load without renaming.

Call contract: ``predictor(context [B, K, D_in], keep [B, K], targets [B, M], mask_index=1)``
returns ``[B, M, levels * out_dim]`` (V-JEPA 2), or ``(targets, context)`` predictions (2.1,
where ``modality="video" | "image"`` picks the modality embedding). ``grid`` (frames, rows,
cols) maps indices to positions; by default it is the square grid of ``img_size``, which is what
the official predictor uses.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .layers import LAYER_NORM_EPS, Block, init_vit_weights, rescale_residual_branches
from .rope import RopeLayout, video_rope_tables
from .vit import check_model_config

Version = Literal["2", "2.1"]
Modality = Literal["video", "image"]

# The released predictors all use 12 heads; their weights do not record it.
PUBLISHED_HEADS = 12


@dataclass
class PredictorConfig:
    """Architecture of one predictor (see the module docstring for the two forms)."""

    encoder_dim: int = 1024
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = PUBLISHED_HEADS
    mlp_hidden: int = 1536
    version: Version = "2"
    levels: int = 1  # hierarchical encoder levels read and predicted (2.1: 4; distilled files: 1)
    out_dim: int = 0  # width of each predicted level; 0 = encoder_dim (distilled files: teacher width)
    num_mask_tokens: int = 10
    predict_context: bool = False
    modality_embedding: bool = False
    img_size: int = 256  # construction resolution: index -> grid position when no grid is given
    patch_size: int = 16
    rope_layout: RopeLayout = "tiled"
    interpolate_rope: bool = False
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    activation_checkpointing: bool = False

    def __post_init__(self):
        if self.out_dim == 0:
            self.out_dim = self.encoder_dim
        check_model_config(self, ("encoder_dim", "embed_dim", "depth", "num_heads", "mlp_hidden", "levels", "out_dim",
                                  "num_mask_tokens", "img_size", "patch_size"))
        if self.embed_dim % self.num_heads:
            raise ValueError(f"predictor width {self.embed_dim} is not divisible by {self.num_heads} heads")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PredictorConfig":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown predictor config fields: {', '.join(unknown)}")
        return cls(**data)


def predictor_config(version: Version, encoder_dim: int, **overrides) -> PredictorConfig:
    """The published pretraining predictor for an encoder of width `encoder_dim`.

    V-JEPA 2: 12 x 384, 10 mask tokens. V-JEPA 2.1: 24 x 384 over four levels, 8 mask tokens,
    context predictions, modality embeddings, interleaved and interpolated RoPE.
    """
    if version == "2":
        base = PredictorConfig(encoder_dim=encoder_dim)
    elif version == "2.1":
        base = PredictorConfig(
            encoder_dim=encoder_dim, depth=24, version="2.1", levels=4, num_mask_tokens=8, predict_context=True,
            modality_embedding=True, rope_layout="interleaved", interpolate_rope=True,
        )
    else:
        raise ValueError(f"unknown V-JEPA version {version!r} (expected '2' or '2.1')")
    return replace(base, **overrides)


class Predictor(nn.Module):
    """Masked-latent predictor; see the module docstring for the call contract."""

    def __init__(self, config: PredictorConfig):
        super().__init__()
        self.config = c = config
        width_in = c.encoder_dim * c.levels
        if c.levels == 1:
            self.predictor_embed = nn.Linear(width_in, c.embed_dim)
        else:  # 2.1 fuses the four levels with a small MLP (official keys .0 and .2)
            self.predictor_embed = nn.Sequential(
                nn.Linear(width_in, c.encoder_dim), nn.GELU(), nn.Linear(c.encoder_dim, c.embed_dim)
            )
        self.mask_tokens = nn.ParameterList(nn.Parameter(torch.zeros(1, 1, c.embed_dim)) for _ in range(c.num_mask_tokens))
        drop_rates = torch.linspace(0, c.drop_path_rate, c.depth).tolist()
        self.predictor_blocks = nn.ModuleList(
            Block(c.embed_dim, c.num_heads, c.mlp_hidden, c.qkv_bias, drop_rates[i]) for i in range(c.depth)
        )
        self.predictor_norm = nn.LayerNorm(c.embed_dim, eps=LAYER_NORM_EPS)
        self.predictor_proj = nn.Linear(c.embed_dim, c.levels * c.out_dim)
        self.predictor_proj_context = nn.Linear(c.embed_dim, c.levels * c.out_dim) if c.predict_context else None
        init_vit_weights(self)
        rescale_residual_branches(self.predictor_blocks)
        if c.modality_embedding:
            self.video_mod_embed = nn.Parameter(torch.randn(1, 1, c.embed_dim) * 1e-6)
            self.img_mod_embed = nn.Parameter(torch.randn(1, 1, c.embed_dim) * 1e-6)

    def default_grid(self) -> tuple[int, int, int]:
        side = self.config.img_size // self.config.patch_size
        return 1, side, side

    def _check_inputs(self, context, keep, targets, grid) -> None:
        c = self.config
        if context.dim() != 3 or context.shape[-1] != c.encoder_dim * c.levels:
            raise ValueError(f"context must be [B, K, {c.encoder_dim * c.levels}], got {tuple(context.shape)}")
        for name, ids in (("keep", keep), ("targets", targets)):
            if ids.dim() != 2 or ids.shape[0] != context.shape[0]:
                raise ValueError(f"{name} must be a [B, N] index tensor for B={context.shape[0]}, got {tuple(ids.shape)}")
            if ids.dtype not in (torch.int32, torch.int64):
                raise ValueError(f"{name} must hold integer token indices, got {ids.dtype}")
            if ids.numel() and int(ids.min()) < 0:
                raise ValueError(f"{name} holds negative token indices")
        if keep.shape[1] != context.shape[1]:
            raise ValueError(f"keep has {keep.shape[1]} indices for {context.shape[1]} context tokens")
        if targets.shape[1] == 0:
            raise ValueError("targets is empty: nothing to predict")
        if grid is not None and (len(grid) != 3 or min(grid) < 1):
            raise ValueError(f"grid must be (frames, rows, cols) of positive sizes, got {grid}")

    def forward(
        self,
        context: torch.Tensor,
        keep: torch.Tensor,
        targets: torch.Tensor,
        mask_index: int = 1,
        modality: Modality = "video",
        grid: tuple[int, int, int] | None = None,
    ):
        c = self.config
        self._check_inputs(context, keep, targets, grid)
        if modality not in ("video", "image"):
            raise ValueError(f"modality must be 'video' or 'image', got {modality!r}")
        batch, num_context = keep.shape
        x = self.predictor_embed(context)
        token = self.mask_tokens[mask_index % c.num_mask_tokens]
        x = torch.cat([x, token.to(x.dtype).expand(batch, targets.shape[1], -1)], dim=1)
        ids = torch.cat([keep, targets], dim=1).to(x.device).long()
        order = torch.argsort(ids, dim=1, stable=True)
        ids = torch.gather(ids, 1, order)
        x = torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[-1]))
        if c.modality_embedding:
            x = x + (self.img_mod_embed if modality == "image" else self.video_mod_embed)
        rope = video_rope_tables(ids, grid or self.default_grid(), c.head_dim, c.rope_layout, c.interpolate_rope)
        for block in self.predictor_blocks:
            if c.activation_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, rope, use_reentrant=False)
            else:
                x = block(x, rope)
        x = self.predictor_norm(x)
        x = torch.gather(x, 1, torch.argsort(order, dim=1)[..., None].expand(-1, -1, x.shape[-1]))
        predicted = self.predictor_proj(x[:, num_context:])
        if c.version == "2":
            return predicted
        visible = self.predictor_proj_context(x[:, :num_context]) if self.predictor_proj_context is not None else None
        return predicted, visible

    def flops_per_sample(self, num_context: int, num_targets: int) -> float:
        """Multiply-add FLOPs (x2) of one forward pass for one sample with these token counts."""
        c = self.config
        d, n = c.embed_dim, num_context + num_targets
        per_block = 2 * n * d * 3 * d + 2 * n * d * d + 4 * n * d * c.mlp_hidden + 4 * n * n * d
        if c.levels == 1:
            embed = 2 * num_context * c.encoder_dim * d
        else:
            embed = 2 * num_context * (c.levels * c.encoder_dim * c.encoder_dim + c.encoder_dim * d)
        outputs = num_targets + (num_context if c.predict_context else 0)
        return float(c.depth * per_block + embed + 2 * outputs * d * c.levels * c.out_dim)
