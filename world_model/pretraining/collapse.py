"""Representation-collapse monitor for self-distillation training.

A JEPA can fall into a trivial solution where the target encoder maps every token to (nearly)
the same vector: the loss then drops while the features carry no information. Two cheap
statistics of the target features catch it: the per-channel standard deviation across tokens
(-> 0 when all tokens agree) and the effective rank, exp(entropy of the normalised singular
values) of the centred token x channel matrix (-> 1 when tokens vary along one direction).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

# Enough tokens for a stable estimate while keeping the SVD cheap.
MAX_TOKENS = 2048


class CollapseWarning(UserWarning):
    """The target features look collapsed."""


@dataclass
class CollapseStats:
    feature_std: float
    effective_rank: float


def collapse_stats(features: torch.Tensor, generator: torch.Generator | None = None) -> CollapseStats:
    """Statistics of features ``[..., D]`` (all leading dims are tokens), on a token sample."""
    tokens = features.detach().reshape(-1, features.shape[-1]).float()
    if tokens.shape[0] > MAX_TOKENS:
        pick = torch.randperm(tokens.shape[0], generator=generator)[:MAX_TOKENS].to(tokens.device)
        tokens = tokens[pick]
    if tokens.shape[0] < 2:
        raise ValueError("collapse statistics need at least two tokens")
    std = tokens.std(dim=0).mean()
    singular = torch.linalg.svdvals(tokens - tokens.mean(dim=0, keepdim=True))
    total = singular.sum()
    if float(total) == 0.0:
        return CollapseStats(float(std), 0.0)
    p = singular / total
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return CollapseStats(float(std), float(torch.exp(entropy)))


def check_collapse(stats: CollapseStats, min_std: float, min_rank: float, step: int) -> bool:
    """Warn (CollapseWarning) and return True when either statistic is below its floor."""
    if stats.feature_std < min_std or stats.effective_rank < min_rank:
        warnings.warn(
            f"step {step}: target features may be collapsing (feature std {stats.feature_std:.4g} vs floor {min_std}, "
            f"effective rank {stats.effective_rank:.3g} vs floor {min_rank}); consider a lower LR or higher EMA momentum",
            CollapseWarning,
            stacklevel=2,
        )
        return True
    return False
