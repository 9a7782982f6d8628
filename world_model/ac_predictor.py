"""The V-JEPA 2-AC action-conditioned predictor: block-causal attention over [action, state, patches].

Per time step t the sequence holds ``[a_t, s_t, patch_1 .. patch_N of frame t]``; action and state
each go through their own Linear into the predictor width. A token attends to every token of its
own step and of all earlier steps (block-causal). Patch tokens get 3D RoPE on (t, row, col);
action and state tokens get only the temporal chunk rotated (by t), their other channels pass
through. Optionally (`ConditioningNorm`, not in the published model) actions and states are
standardised before their Linear. Output at step t is the prediction of frame t+1, returned raw
(the caller layer-norms, as the published training and planning code do).

The parameter names match the official checkpoint (``predictor_embed``, ``action_encoder``,
``state_encoder``, ``extrinsics_encoder`` (present but unused, as published),
``predictor_blocks.*``, ``predictor_norm``, ``predictor_proj``), so `vjepa2-ac-vitg.pt` loads strictly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vjepa_wm.embodiments.franka import Franka

from .layers import LAYER_NORM_EPS, Block, init_vit_weights, rescale_residual_branches
from .rope import RopeLayout, RopeTables, axis_angles, grid_positions, rope_chunk_size, tables_from_angles
from .vit import check_model_config

COND_TOKENS = 2  # action, state
ROPE_TABLES_KEPT = 8  # step ranges whose RoPE tables stay cached

# name -> (predictor width, depth, heads, MLP hidden): the one table of AC predictor sizes and head counts
AC_SIZES: dict[str, tuple[int, int, int, int]] = {
    "vitg_ac": (1024, 24, 16, 4096),  # the published V-JEPA 2-AC predictor (~300M)
    "small": (384, 12, 6, 1536),
    "sim": (128, 4, 4, 512),  # the bundled sim model: plans 64 x 5 in well under 0.3 s on 2 CPU cores
    "tiny": (192, 4, 3, 768),
    "micro": (96, 2, 3, 384),
}


@dataclass(frozen=True)
class ConditioningNorm:
    """Per-dimension mean and std of the actions and states a predictor was trained on; they are
    standardised before their Linear. Why: the weights start at std 0.02 with zero bias, so the
    first LayerNorm sees an action token that is a fixed direction scaled by the action, and keeps
    only the ratios of its components: a car's dx (about 1.2 waypoints a step) drowns its dy and
    dyaw (a few hundredths), and a state in metres keeps little more than the sign of x. The
    published Franka model uses raw values (no norm)."""

    action_mean: tuple[float, ...]
    action_std: tuple[float, ...]
    state_mean: tuple[float, ...]
    state_std: tuple[float, ...]

    def __post_init__(self):
        width = len(self.action_mean)
        for name in ("action_mean", "action_std", "state_mean", "state_std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != width or not all(abs(v) < float("inf") for v in values):
                raise ValueError(f"conditioning_norm.{name} must be {width} finite numbers, got {list(values)}")
            if name.endswith("_std") and not all(v > 0 for v in values):
                raise ValueError(f"conditioning_norm.{name} must be positive, got {list(values)}")
            object.__setattr__(self, name, values)

    @classmethod
    def from_samples(cls, actions: torch.Tensor, states: torch.Tensor, floor: float = 1e-3) -> "ConditioningNorm":
        """From ``[..., A]`` samples; a spread below `floor` (a dimension that never moves) counts as `floor`."""
        a, s = actions.reshape(-1, actions.shape[-1]).double(), states.reshape(-1, states.shape[-1]).double()
        return cls(tuple(a.mean(0).tolist()), tuple(a.std(0).clamp_min(floor).tolist()),
                   tuple(s.mean(0).tolist()), tuple(s.std(0).clamp_min(floor).tolist()))


@dataclass
class ACPredictorConfig:
    embed_dim: int = 1408  # encoder width (ViT-g)
    predictor_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_hidden: int = 4096
    action_dim: int = Franka().action_dim  # the published model: Franka end-effector deltas (also its state width)
    grid: tuple[int, int] = (16, 16)  # patch rows, cols per frame (frame size / 16)
    rope_layout: RopeLayout = "tiled"
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    activation_checkpointing: bool = False
    conditioning_norm: ConditioningNorm | None = None  # standardise actions and states first (None: raw, as published)

    def __post_init__(self):
        self.grid = tuple(self.grid)
        if isinstance(self.conditioning_norm, dict):
            self.conditioning_norm = ConditioningNorm(**self.conditioning_norm)
        if self.conditioning_norm is not None and len(self.conditioning_norm.action_mean) != self.action_dim:
            raise ValueError(f"conditioning_norm has {len(self.conditioning_norm.action_mean)} dimensions, "
                             f"the predictor's actions {self.action_dim}")
        check_model_config(self, ("embed_dim", "predictor_dim", "depth", "num_heads", "mlp_hidden", "action_dim"))
        if len(self.grid) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in self.grid):
            raise ValueError(f"grid must be two positive integers (patch rows, cols), got {list(self.grid)}")
        if self.predictor_dim % self.num_heads:
            raise ValueError(f"predictor_dim {self.predictor_dim} is not divisible by {self.num_heads} heads")

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def head_dim(self) -> int:
        return self.predictor_dim // self.num_heads

    def to_dict(self) -> dict:
        out = asdict(self)
        out["grid"] = list(self.grid)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "ACPredictorConfig":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown AC predictor config fields: {', '.join(unknown)}")
        return cls(**data)


def heads_for_width(width: int) -> int:
    """Head count of the preset of this width (weights do not record it); else one head per 64 channels."""
    by_width = {w: heads for w, _, heads, _ in AC_SIZES.values()}
    return by_width.get(width, max(1, width // 64))


def ac_predictor_config(preset: str, embed_dim: int, img_size: int = 256, patch_size: int = 16, **overrides) -> ACPredictorConfig:
    if preset not in AC_SIZES:
        raise ValueError(f"unknown AC predictor preset {preset!r}; choose from {', '.join(AC_SIZES)}")
    width, depth, heads, hidden = AC_SIZES[preset]
    grid = (img_size // patch_size, img_size // patch_size)
    return replace(
        ACPredictorConfig(embed_dim=embed_dim, predictor_dim=width, depth=depth, num_heads=heads, mlp_hidden=hidden, grid=grid),
        **overrides,
    )


def block_causal_mask(steps: int, tokens_per_step: int, device=None) -> torch.Tensor:
    """Boolean ``[L, L]`` (True = may attend): full inside a step, causal across steps."""
    step_of = torch.arange(steps, device=device).repeat_interleave(tokens_per_step)
    return step_of[None, :] <= step_of[:, None]


class ACPredictor(nn.Module):
    def __init__(self, config: ACPredictorConfig):
        super().__init__()
        self.config = c = config
        self.predictor_embed = nn.Linear(c.embed_dim, c.predictor_dim)
        self.action_encoder = nn.Linear(c.action_dim, c.predictor_dim)
        self.state_encoder = nn.Linear(c.action_dim, c.predictor_dim)
        # Built (and saved) as published; never used: the released model has use_extrinsics=False.
        self.extrinsics_encoder = nn.Linear(c.action_dim - 1, c.predictor_dim)
        rates = torch.linspace(0, c.drop_path_rate, c.depth).tolist()
        self.predictor_blocks = nn.ModuleList(
            Block(c.predictor_dim, c.num_heads, c.mlp_hidden, c.qkv_bias, rates[i]) for i in range(c.depth)
        )
        self.predictor_norm = nn.LayerNorm(c.predictor_dim, eps=LAYER_NORM_EPS)
        self.predictor_proj = nn.Linear(c.predictor_dim, c.embed_dim)
        init_vit_weights(self)
        rescale_residual_branches(self.predictor_blocks)
        self._rope_tables: dict[tuple, RopeTables] = {}
        self.set_conditioning_norm(c.conditioning_norm)

    def set_conditioning_norm(self, norm: ConditioningNorm | None) -> None:
        """Standardise actions and states with `norm` from now on (None: raw). Kept in the config (so
        checkpoints record it) and as non-persistent buffers (so the state dict keeps the published keys)."""
        self.config.conditioning_norm = norm
        shift = torch.zeros(2, self.config.action_dim) if norm is None else torch.tensor([norm.action_mean, norm.state_mean])
        scale = torch.ones(2, self.config.action_dim) if norm is None else torch.tensor([norm.action_std, norm.state_std])
        device = self.action_encoder.weight.device
        self.register_buffer("conditioning_shift", shift.to(device), persistent=False)
        self.register_buffer("conditioning_scale", scale.to(device), persistent=False)

    # ------------------------------------------------------------------ positions

    def step_rope(self, first_step: int, steps: int, device) -> RopeTables:
        """RoPE tables for steps ``first_step .. first_step+steps-1`` in [a, s, patches] order.

        Patch positions are (step, row, col). As in the published predictor, rows and columns are
        rescaled by grid_rows / rows and grid_rows / cols; this is the identity on the square
        16x16 grid of 256-px frames, and squeezes columns on non-square grids. Tables depend only
        on the step range, so they are built once and reused (the planner asks for the same ones
        every CEM iteration).
        """
        key = (first_step, steps, str(device))
        tables = self._rope_tables.pop(key, None)
        if tables is None:
            tables = self._build_step_rope(first_step, steps, device)
            tables.span = (first_step, steps)
        self._rope_tables[key] = tables  # most recently used last
        while len(self._rope_tables) > ROPE_TABLES_KEPT:
            self._rope_tables.pop(next(iter(self._rope_tables)))
        return tables

    def _build_step_rope(self, first_step: int, steps: int, device) -> RopeTables:
        c = self.config
        rows, cols = c.grid
        per_frame = c.tokens_per_frame
        chunk = rope_chunk_size(c.head_dim)
        ids = torch.arange(first_step * per_frame, (first_step + steps) * per_frame, device=device)
        frame, row, col = grid_positions(ids, rows, cols)
        col = col * (rows / cols)
        patch_angles = torch.cat(
            [axis_angles(p, chunk, c.rope_layout) for p in (frame, row, col)], dim=-1
        ).view(steps, per_frame, 3 * chunk)
        times = torch.arange(first_step, first_step + steps, device=device, dtype=torch.float32)
        temporal = axis_angles(times, chunk, c.rope_layout)
        # Action/state tokens: only the temporal chunk turns; angle 0 leaves the h/w chunks as they are.
        cond_angles = torch.cat([temporal, temporal.new_zeros(steps, 2 * chunk)], dim=-1)
        cond_angles = cond_angles[:, None].expand(-1, COND_TOKENS, -1)
        return tables_from_angles(torch.cat([cond_angles, patch_angles], dim=1).flatten(0, 1)[None], c.head_dim)

    # ------------------------------------------------------------------ forward

    def embed(self, z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``z`` ``[B|1, T*N, D]``, ``actions``/``states`` ``[B, T, A]`` -> tokens ``[B, T*(N+2), W]``.

        A batch-1 ``z`` is shared by all B rows (the planner's candidates all start from the same
        observed frame): it is embedded once and broadcast.
        """
        c = self.config
        batch = actions.shape[0]
        latent_batch, length, dim = z.shape
        steps = length // c.tokens_per_frame
        if latent_batch not in (1, batch) or length != steps * c.tokens_per_frame or dim != c.embed_dim:
            raise ValueError(
                f"latents {tuple(z.shape)} are not [B, T*{c.tokens_per_frame}, {c.embed_dim}] for this predictor"
            )
        for name, value in (("actions", actions), ("states", states)):
            if value.shape != (batch, steps, c.action_dim):
                raise ValueError(f"{name} must be [B={batch}, T={steps}, {c.action_dim}], got {tuple(value.shape)}")
        x = self.predictor_embed(z).view(latent_batch, steps, c.tokens_per_frame, -1).expand(batch, -1, -1, -1)
        if c.conditioning_norm is not None:
            actions = (actions - self.conditioning_shift[0]) / self.conditioning_scale[0]
            states = (states - self.conditioning_shift[1]) / self.conditioning_scale[1]
        a = self.action_encoder(actions.to(x.dtype)).unsqueeze(2)
        s = self.state_encoder(states.to(x.dtype)).unsqueeze(2)
        return torch.cat([a, s, x], dim=2).flatten(1, 2)

    def head(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Drop the action/state tokens, then norm and project the patch tokens back to encoder width."""
        c = self.config
        x = x.view(x.shape[0], steps, COND_TOKENS + c.tokens_per_frame, -1)[:, :, COND_TOKENS:].flatten(1, 2)
        return self.predictor_proj(self.predictor_norm(x))

    def forward(self, z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Raw predictions ``[B, T*N, D]``: the output at step t predicts frame t+1."""
        c = self.config
        x = self.embed(z, actions, states)
        steps = actions.shape[1]
        rope = self.step_rope(0, steps, x.device)
        mask = block_causal_mask(steps, COND_TOKENS + c.tokens_per_frame, x.device)
        for block in self.predictor_blocks:
            if c.activation_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, rope, mask, use_reentrant=False)
            else:
                x = block(x, rope, mask)
        return self.head(x, steps)

    def flops_per_step(self, history_steps: int = 0) -> float:
        """FLOPs (2 per multiply-add) to predict one step that attends to `history_steps` cached steps."""
        c = self.config
        n, w = c.tokens_per_frame, c.predictor_dim
        tokens = n + COND_TOKENS
        keys = tokens * (history_steps + 1)
        per_layer = 2 * tokens * w * 4 * w + 4 * tokens * w * c.mlp_hidden + 4 * tokens * keys * w
        io = 2 * n * c.embed_dim * w * 2 + 4 * c.action_dim * w
        return float(c.depth * per_layer + io)

    # ------------------------------------------------------------------ incremental rollout

    def forward_step(self, z_t, action_t, state_t, cache: "KVCache") -> torch.Tensor:
        """Predict frame t+1 from step t alone, attending to the cached keys/values of steps < t.

        ``z_t`` ``[B|1, N, D]``, ``action_t``/``state_t`` ``[B, A]``. Because attention is block-causal,
        this gives the same numbers as `forward` over the whole sequence (earlier steps never see
        later ones), at the cost of one step instead of all. The cache is extended in place.
        """
        x = self.embed(z_t, action_t[:, None], state_t[:, None])
        rope = self.step_rope(cache.steps, 1, x.device)
        new_layers = []
        for index, block in enumerate(self.predictor_blocks):
            x, kv = block.forward_cached(x, rope, cache.layer(index, x.shape[0]))
            new_layers.append(kv)
        cache.append(new_layers)
        return self.head(x, 1)


class KVCache:
    """Rotated keys/values per layer for the steps processed so far (batch may broadcast from 1)."""

    def __init__(self):
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.steps = 0

    def layer(self, index: int, batch: int):
        if self.layers is None:
            return None
        k, v = self.layers[index]
        if k.shape[0] != batch:
            k, v = k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)
        return k, v

    def append(self, new_layers) -> None:
        if self.layers is None:
            self.layers = list(new_layers)
        else:
            merged = []
            for (k, v), (nk, nv) in zip(self.layers, new_layers):
                if k.shape[0] != nk.shape[0]:
                    k, v = k.expand(nk.shape[0], -1, -1, -1), v.expand(nk.shape[0], -1, -1, -1)
                merged.append((torch.cat([k, nk], dim=2), torch.cat([v, nv], dim=2)))
            self.layers = merged
        self.steps += 1

    def expand(self, batch: int) -> "KVCache":
        """A cache for `batch` candidates sharing this (batch-1) history, without copying."""
        out = KVCache()
        out.steps = self.steps
        if self.layers is not None:
            out.layers = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in self.layers]
        return out
