"""The V-JEPA 2 / 2.1 video encoder: one `VisionTransformer` for every published size.

Call contract (users and tests rely on it):

* ``encoder(video)`` with ``video`` float ``[B, C, T, H, W]`` returns ``[B, N, D]``, tokens in
  t -> h -> w order, N = T/tubelet * H/16 * W/16 (a 4-D ``[B, C, H, W]`` image is T = 1);
* ``encoder(video, masks=keep)`` with ``keep`` a ``[B, K]`` LongTensor of kept token indices
  returns ``[B, K, D]``; every kept token keeps the RoPE position of its index;
* a V-JEPA 2.1 encoder takes an image as T = 1 through its image tokenizer and returns the
  concatenated, separately normalised four hierarchical levels with ``levels=True``.

V-JEPA 2 encoders have no image tokenizer: a single frame is duplicated into one tubelet, as
V-JEPA 2-AC and the Hugging Face port do.
"""
from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vjepa_wm.world_model.layers import LAYER_NORM_EPS, Block, init_vit_weights, rescale_residual_branches
from vjepa_wm.world_model.rope import RopeLayout, video_rope_tables

Version = Literal["2", "2.1"]

# name -> (width, depth, heads, MLP hidden). The published sizes are exact; note ViT-g's 22 heads.
ENCODER_SIZES: dict[str, tuple[int, int, int, int]] = {
    "vit_tiny": (192, 12, 3, 768),
    "vit_small": (384, 12, 6, 1536),
    "vit_b": (768, 12, 12, 3072),
    "vit_l": (1024, 24, 16, 4096),
    "vit_h": (1280, 32, 16, 5120),
    "vit_g": (1408, 40, 22, 6144),
    "vit_G": (1664, 48, 26, 8192),
    # Small presets for tests and the bundled sim model.
    "tiny": (192, 4, 3, 768),
    "micro": (96, 4, 3, 384),
}

# Blocks whose outputs form the four V-JEPA 2.1 hierarchical levels, per published depth.
_PUBLISHED_LEVELS = {12: (2, 5, 8, 11), 24: (5, 11, 17, 23), 40: (9, 19, 29, 39), 48: (11, 23, 37, 47)}


def hierarchical_layers(depth: int) -> tuple[int, ...]:
    """The four 0-based block indices tapped for 2.1's deep supervision at this depth."""
    if depth in _PUBLISHED_LEVELS:
        return _PUBLISHED_LEVELS[depth]
    if depth < 4 or depth % 4:
        raise ValueError(f"a V-JEPA 2.1 encoder needs a depth divisible by 4 (got {depth})")
    step = depth // 4
    return tuple(step * (k + 1) - 1 for k in range(4))


@lru_cache(maxsize=None)
def _field_types(cls: type) -> dict:
    return typing.get_type_hints(cls)


def check_model_config(config, sizes: tuple[str, ...]) -> None:
    """The checks every model config shares, so a checkpoint's nonsense (``depth: -1``, ``num_heads:
    0``, ``version: "3"``) fails here with the field's name instead of deep inside torch: the
    named `sizes` are positive integers, every Literal field holds one of its choices, every bool
    field is a bool and ``drop_path_rate`` lies in [0, 1)."""
    for name in sizes:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, annotation in _field_types(type(config)).items():
        value = getattr(config, name)
        if typing.get_origin(annotation) is Literal and value not in typing.get_args(annotation):
            raise ValueError(f"{name} {value!r} is not one of {', '.join(map(repr, typing.get_args(annotation)))}")
        if annotation is bool and not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    rate = config.drop_path_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and 0 <= rate < 1):
        raise ValueError(f"drop_path_rate must be in [0, 1), got {rate!r}")


@dataclass
class EncoderConfig:
    """Architecture of one encoder. `version` "2" = V-JEPA 2 (tiled RoPE, final norm);
    "2.1" = image tokenizer, modality embeddings, interleaved RoPE, four hierarchical norms."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_hidden: int = 4096
    version: Version = "2"
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    img_size: int = 256  # native resolution: the default crop of the preprocessing
    rope_layout: RopeLayout = "tiled"
    interpolate_rope: bool = False
    image_tokenizer: bool = False
    modality_embedding: bool = False
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    activation_checkpointing: bool = False
    levels: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self):
        check_model_config(self, ("embed_dim", "depth", "num_heads", "mlp_hidden", "patch_size", "tubelet_size",
                                  "in_chans", "img_size"))
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of the patch size {self.patch_size}")
        self.levels = tuple(self.levels)
        if self.version == "2.1" and not self.levels:
            self.levels = hierarchical_layers(self.depth)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def to_dict(self) -> dict:
        out = asdict(self)
        out["levels"] = list(self.levels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "EncoderConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown encoder config fields: {', '.join(unknown)}")
        return cls(**data)


def encoder_config(preset: str, version: Version = "2", **overrides) -> EncoderConfig:
    """A named size as a V-JEPA 2 (tiled RoPE) or 2.1 (interleaved, interpolated, multimodal) encoder."""
    if preset not in ENCODER_SIZES:
        raise ValueError(f"unknown encoder preset {preset!r}; choose from {', '.join(ENCODER_SIZES)}")
    dim, depth, heads, hidden = ENCODER_SIZES[preset]
    base = EncoderConfig(embed_dim=dim, depth=depth, num_heads=heads, mlp_hidden=hidden, version=version)
    if version == "2.1":
        base = replace(
            base, rope_layout="interleaved", interpolate_rope=True, image_tokenizer=True, modality_embedding=True
        )
    return replace(base, **overrides)


class PatchEmbed3D(nn.Module):
    """Conv3d tokenizer (kernel = stride = tubelet x patch x patch), tokens flattened t -> h -> w."""

    def __init__(self, in_chans: int, dim: int, patch: int, tubelet: int):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """V-JEPA encoder (no CLS token, no absolute position embedding: 3D RoPE in every block)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        c = config
        self.patch_embed = PatchEmbed3D(c.in_chans, c.embed_dim, c.patch_size, c.tubelet_size)
        self.patch_embed_img = PatchEmbed3D(c.in_chans, c.embed_dim, c.patch_size, 1) if c.image_tokenizer else None
        drop_rates = torch.linspace(0, c.drop_path_rate, c.depth).tolist()
        self.blocks = nn.ModuleList(
            Block(c.embed_dim, c.num_heads, c.mlp_hidden, c.qkv_bias, drop_rates[i]) for i in range(c.depth)
        )
        if c.levels:
            self.norms_block = nn.ModuleList(nn.LayerNorm(c.embed_dim, eps=LAYER_NORM_EPS) for _ in c.levels)
            self.norm = None
        else:
            self.norms_block = None
            self.norm = nn.LayerNorm(c.embed_dim, eps=LAYER_NORM_EPS)
        init_vit_weights(self)
        rescale_residual_branches(self.blocks)
        if c.modality_embedding:
            self.img_mod_embed = nn.Parameter(torch.randn(1, 1, c.embed_dim) * 1e-6)
            self.video_mod_embed = nn.Parameter(torch.randn(1, 1, c.embed_dim) * 1e-6)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def grid(self, video_shape: torch.Size) -> tuple[int, int, int]:
        """(frames, rows, cols) of the token grid for an input of this shape."""
        _, _, frames, height, width = video_shape
        c = self.config
        if frames == 1 and c.image_tokenizer:
            return 1, height // c.patch_size, width // c.patch_size
        frames = c.tubelet_size if frames == 1 else frames
        return frames // c.tubelet_size, height // c.patch_size, width // c.patch_size

    def tokenize(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Pixels -> tokens ``[B, N, D]`` plus the token grid; checks the input shape."""
        c = self.config
        if video.dim() == 4:
            video = video.unsqueeze(2)
        if video.dim() != 5 or video.shape[1] != c.in_chans:
            raise ValueError(f"expected video [B, {c.in_chans}, T, H, W], got {tuple(video.shape)}")
        _, _, frames, height, width = video.shape
        if height % c.patch_size or width % c.patch_size:
            raise ValueError(f"frame size {height}x{width} is not a multiple of the patch size {c.patch_size}")
        grid = self.grid(video.shape)
        if frames == 1 and c.image_tokenizer:
            tokens = self.patch_embed_img(video)
            if c.modality_embedding:
                tokens = tokens + self.img_mod_embed
            return tokens, grid
        if frames == 1:  # an image into a video-only path: duplicate it into one tubelet
            video = video.expand(-1, -1, c.tubelet_size, -1, -1)
        elif frames % c.tubelet_size:
            raise ValueError(f"{frames} frames is not a multiple of the tubelet size {c.tubelet_size}")
        tokens = self.patch_embed(video)
        if c.modality_embedding:
            tokens = tokens + self.video_mod_embed
        return tokens, grid

    def forward(self, video: torch.Tensor, masks: torch.Tensor | None = None, levels: bool = False) -> torch.Tensor:
        c = self.config
        if levels and not c.levels:
            raise ValueError("levels=True needs a V-JEPA 2.1 encoder (this one has no hierarchical outputs)")
        x, grid = self.tokenize(video)
        num_tokens = x.shape[1]
        if masks is None:
            ids = torch.arange(num_tokens, device=x.device)
        else:
            ids = masks.to(x.device).long()
            if ids.dim() != 2 or ids.shape[0] != x.shape[0]:
                raise ValueError(f"masks must be [B, K] kept-token indices for B={x.shape[0]}, got {tuple(ids.shape)}")
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_tokens):
                raise ValueError(f"mask indices must lie in [0, {num_tokens}) for this input")
            x = torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))
        rope = video_rope_tables(ids, grid, c.head_dim, c.rope_layout, c.interpolate_rope)
        taps = []
        for index, block in enumerate(self.blocks):
            if c.activation_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, rope, use_reentrant=False)
            else:
                x = block(x, rope)
            if levels and index in c.levels:
                taps.append(self.norms_block[c.levels.index(index)](x))
        if levels:
            return torch.cat(taps, dim=-1)
        if c.levels:  # 2.1 inference output: the last hierarchical norm on the final block
            return self.norms_block[-1](x)
        return self.norm(x)

    def flops_per_clip(self, num_tokens: int) -> float:
        """Multiply-add FLOPs (x2) of one forward pass over `num_tokens` tokens."""
        c = self.config
        d, n = c.embed_dim, num_tokens
        per_block = 2 * n * d * 3 * d + 2 * n * d * d + 4 * n * d * c.mlp_hidden + 4 * n * n * d
        embed = 2 * n * d * c.in_chans * c.tubelet_size * c.patch_size**2
        return float(c.depth * per_block + embed)
