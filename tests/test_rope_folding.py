"""The CPU planning transform: RoPE folded into per-token qkv weights gives the plain model's rollouts."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import relative_error
from vjepa_wm.embodiments import Franka
from vjepa_wm.planner.planning_model import planning_model
from vjepa_wm.world_model.ac_predictor import ACPredictor, ACPredictorConfig
from vjepa_wm.world_model.rope_folding import FoldedRopeAttention, fold_rope
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config
from vjepa_wm.world_model.world_model import WorldModel

EMBED = 96


def world_model() -> WorldModel:
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config("micro", "2.1"))
    predictor = ACPredictor(ACPredictorConfig(embed_dim=EMBED, predictor_dim=128, depth=2, num_heads=4, mlp_hidden=256, grid=(3, 3)))
    return WorldModel(encoder, predictor, 48, Franka()).eval()


def inputs(candidates: int = 5, horizon: int = 3):
    z = F.layer_norm(torch.randn(1, 9, EMBED), (EMBED,))
    state = torch.tensor([[0.4, 0.0, 0.3, 3.1, 0.1, -0.2, 0.0]])
    return z, state, 0.05 * torch.randn(candidates, horizon, 7)


def test_folded_rollouts_match_the_plain_model_and_unfolded_steps_fall_back():
    plain = world_model()
    folded = fold_rope(plain, steps=2)  # a 3-step rollout: steps 0, 1 folded, step 2 rotates as usual
    assert all(isinstance(block.attn, FoldedRopeAttention) for block in folded.predictor.predictor_blocks)
    assert not any(isinstance(block.attn, FoldedRopeAttention) for block in plain.predictor.predictor_blocks)
    z, state, actions = inputs()
    with torch.no_grad():
        ours, reference = folded.rollout(z, state, actions), plain.rollout(z, state, actions)
    assert relative_error(ours.latents, reference.latents) <= 1e-5
    assert not torch.equal(ours.latents[:, :2], reference.latents[:, :2])  # the folded path really ran
    assert torch.equal(ours.states, reference.states)
    assert folded.encoder is plain.encoder  # the encoder is shared, not copied


def test_the_view_shares_the_weights_and_refuses_weights_changed_after_folding():
    plain = world_model()
    folded = fold_rope(plain, steps=1)
    assert folded.predictor.predictor_embed is plain.predictor.predictor_embed  # shared, not copied
    assert folded.predictor.predictor_blocks[0].mlp is plain.predictor.predictor_blocks[0].mlp
    z, state, actions = inputs(horizon=1)
    with torch.no_grad():
        assert torch.equal(folded.predictor.embed(z, actions[:, :1], state.expand(5, -1)[:, None]),
                           plain.predictor.embed(z, actions[:, :1], state.expand(5, -1)[:, None]))
        plain.predictor.predictor_blocks[0].attn.qkv.weight.mul_(1.5)  # the model trained further ...
        with pytest.raises(ValueError, match="fold the trained model again"):
            folded.rollout(z, state, actions)  # ... and the stale folded weights are never used
        fold_rope(plain, steps=1).rollout(z, state, actions)  # a fresh view plans with the new weights


def test_the_planner_folds_only_where_it_pays():
    plain = world_model()
    assert planning_model(plain, "cpu", horizon=1) is not plain
    assert planning_model(plain, "cpu", horizon=1, fold=False) is plain
    double = world_model().to(torch.float64)  # folding is for float32 weights only
    assert planning_model(double, "cpu", horizon=1) is double
    stand_in = object()  # anything that is not a WorldModel (test doubles) is used as it is
    assert planning_model(stand_in, "cpu", horizon=1) is stand_in
    with pytest.raises(ValueError, match="cannot fold RoPE"):
        fold_rope(plain, steps=0)
