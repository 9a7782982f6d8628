"""The V-JEPA 2 / 2.1 objective: predict the EMA target encoder's features of hidden tokens.

* Targets: the target (EMA) encoder sees the whole clip; each of its hierarchical levels (four
  in 2.1, one in V-JEPA 2) is layer-normed separately without affine, which is V-JEPA 2.1's
  deep supervision: the predictor is graded on every level, not just the last.
* Masked loss: L1 (mean over tokens and channels) between the predictions at the target
  indices and the targets there.
* Context loss (2.1): the predictor also reproduces the targets at the visible tokens, L1
  weighted per token by 1/sqrt(distance to the nearest hidden token), times a weight λ that
  the trainer warms up.

Each term is averaged over the mask sets, and the loss over the modality groups of a batch
(video clips, images), as the official image/video rank split at ratio 0.5 does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vjepa_wm.world_model.predictor import Predictor
from vjepa_wm.world_model.pretraining.masks import Grid, MaskPair, context_weights
from vjepa_wm.world_model.vit import VisionTransformer


@dataclass
class Group:
    """One modality's share of a batch with its mask sets."""

    modality: str  # "video" | "image"
    clips: torch.Tensor  # [B, C, T, H, W]
    masks: list[MaskPair]
    grid: Grid


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, N, D]`` at indices ``ids`` ``[B, K]`` -> ``[B, K, D]``."""
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


def normalize_levels(features: torch.Tensor, levels: int) -> torch.Tensor:
    """Layer-norm (no affine) each of the `levels` equal channel chunks separately, in float32."""
    chunks = features.float().chunk(levels, dim=-1)
    return torch.cat([F.layer_norm(c, (c.shape[-1],)) for c in chunks], dim=-1)


class JepaStudent(nn.Module):
    """Context encoder + predictor: everything that gets gradients, in one module for DDP.

    One forward call covers all groups and mask sets of a step, so DDP sees one forward per
    backward. Returns, per group and mask set, ``(predictions at targets, predictions at the
    context or None)``.
    """

    def __init__(self, encoder: VisionTransformer, predictor: Predictor, mask_index: int = 0):
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor
        # The official trainer passes the clip-length group index (0 with one clip length per run).
        self.mask_index = mask_index

    def forward(self, groups: list[Group]) -> list[list[tuple[torch.Tensor, torch.Tensor | None]]]:
        hierarchical = self.predictor.config.version == "2.1"
        outputs = []
        for group in groups:
            per_mask = []
            for pair in group.masks:
                context = self.encoder(group.clips, masks=pair.keep, levels=hierarchical)
                if hierarchical:
                    predicted, visible = self.predictor(
                        context, pair.keep, pair.targets, self.mask_index, modality=group.modality, grid=group.grid
                    )
                else:
                    predicted = self.predictor(context, pair.keep, pair.targets, self.mask_index, grid=group.grid)
                    visible = None
                per_mask.append((predicted, visible))
            outputs.append(per_mask)
        return outputs


@torch.no_grad()
def target_features(target_encoder: VisionTransformer, clips: torch.Tensor, levels: int) -> torch.Tensor:
    """The EMA encoder's per-level normalised features of the whole clip ``[B, N, levels * D]``."""
    return normalize_levels(target_encoder(clips, levels=levels > 1), levels)


@dataclass
class LossTerms:
    total: torch.Tensor
    predicted: torch.Tensor  # masked-token L1 (detached)
    context: torch.Tensor  # unweighted-by-λ context L1 (detached; 0 without context predictions)
    per_level: torch.Tensor  # masked-token L1 of each level (detached)


def jepa_loss(
    outputs: list[list[tuple[torch.Tensor, torch.Tensor | None]]],
    targets: list[torch.Tensor],
    groups: list[Group],
    levels: int,
    context_lambda: float,
    distance_weighting: bool,
) -> LossTerms:
    """Combine the predictions of `JepaStudent` with the normalised targets of each group."""
    group_totals, predicted_terms, context_terms, level_terms = [], [], [], []
    for group, per_mask, features in zip(groups, outputs, targets):
        pred_losses, ctx_losses = [], []
        for pair, (predicted, visible) in zip(group.masks, per_mask):
            error = (predicted.float() - gather_tokens(features, pair.targets)).abs()
            pred_losses.append(error.mean())
            level_terms.append(torch.stack([chunk.mean() for chunk in error.detach().chunk(levels, dim=-1)]))
            if visible is not None:
                visible_error = (visible.float() - gather_tokens(features, pair.keep)).abs()
                if distance_weighting:
                    visible_error = visible_error * context_weights(pair.keep, pair.targets, group.grid)[..., None]
                ctx_losses.append(visible_error.mean())
        pred_loss = torch.stack(pred_losses).mean()
        ctx_loss = torch.stack(ctx_losses).mean() if ctx_losses else pred_loss.new_zeros(())
        group_totals.append(pred_loss + context_lambda * ctx_loss)
        predicted_terms.append(pred_loss.detach())
        context_terms.append(ctx_loss.detach())
    return LossTerms(
        total=torch.stack(group_totals).mean(),
        predicted=torch.stack(predicted_terms).mean(),
        context=torch.stack(context_terms).mean(),
        per_level=torch.stack(level_terms).mean(dim=0),
    )
