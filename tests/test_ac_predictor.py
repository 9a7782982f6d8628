"""The action-conditioned predictor and `WorldModel` against the official V-JEPA 2-AC code and the
properties the planner relies on (block causality, KV-cache rollouts, strict official loading)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import perturb_norms, relative_error
from vjepa_wm.embodiments import Franka
from vjepa_wm.planner.energy import energy
from vjepa_wm.world_model.ac_predictor import ACPredictor, ACPredictorConfig, ConditioningNorm, KVCache, block_causal_mask
from vjepa_wm.world_model.ac_training.loss import ac_loss
from vjepa_wm.world_model.checkpoints import CheckpointError, load_world_model, save_world_model
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config
from vjepa_wm.world_model.world_model import WorldModel

EMBED = 96


def official_ac(img_size, embed_dim=EMBED, width=96, depth=2, heads=3):
    from vjepa2.models.ac_predictor import vit_ac_predictor

    model = vit_ac_predictor(
        img_size=img_size, patch_size=16, num_frames=16, tubelet_size=2, embed_dim=embed_dim,
        predictor_embed_dim=width, depth=depth, num_heads=heads, use_rope=True,
    )
    return perturb_norms(model)


def ours_from(official, grid):
    c = ACPredictorConfig(embed_dim=EMBED, predictor_dim=96, depth=2, num_heads=3, mlp_hidden=384, grid=grid)
    model = ACPredictor(c).eval()
    model.load_state_dict(official.state_dict(), strict=True)
    return model


@pytest.mark.parametrize("img_size,grid", [((32, 32), (2, 2)), ((32, 48), (2, 3))])
def test_matches_official_ac_predictor(img_size, grid):
    official = official_ac(img_size)
    ours = ours_from(official, grid)
    steps, n = 4, grid[0] * grid[1]
    z, a, s = torch.randn(2, steps * n, EMBED), torch.randn(2, steps, 7), torch.randn(2, steps, 7)
    with torch.no_grad():
        assert relative_error(ours(z, a, s), official(z, a, s)) <= 1e-5


def test_block_causal_mask_pattern():
    mask = block_causal_mask(3, 2)
    expected = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask, expected)


def tiny_predictor(grid=(2, 2)):
    return ACPredictor(ACPredictorConfig(embed_dim=EMBED, predictor_dim=96, depth=2, num_heads=3, mlp_hidden=384, grid=grid)).eval()


def test_changing_a_later_action_never_changes_an_earlier_prediction():
    model = tiny_predictor()
    z, a, s = torch.randn(1, 4 * 4, EMBED), torch.randn(1, 4, 7), torch.randn(1, 4, 7)
    a2, s2, z2 = a.clone(), s.clone(), z.clone()
    a2[:, 2] += 1.0
    s2[:, 3] -= 1.0
    z2[:, 12:] += 1.0
    with torch.no_grad():
        before, after = model(z, a, s), model(z2, a2, s2)
    assert torch.allclose(before[:, :8], after[:, :8], atol=1e-6)  # steps 0, 1 unchanged
    assert not torch.allclose(before[:, 8:12], after[:, 8:12], atol=1e-3)  # step 2 sees its action


def test_conditioning_norm_standardises_inputs_and_keeps_the_published_keys(tmp_path):
    torch.manual_seed(3)
    actions, states = torch.randn(50, 4, 7) * 0.1 + 1.0, torch.randn(50, 4, 7) * 5.0
    norm = ConditioningNorm.from_samples(actions, states)
    assert torch.allclose(torch.tensor(norm.state_std, dtype=torch.float64), states.reshape(-1, 7).std(0).double(), rtol=1e-6)
    plain = tiny_predictor()
    normed = ACPredictor(ACPredictorConfig(**{**plain.config.to_dict(), "conditioning_norm": norm})).eval()
    assert normed.state_dict().keys() == plain.state_dict().keys()  # nothing new in a checkpoint's weights
    normed.load_state_dict(plain.state_dict())
    z, a, s = torch.randn(2, 4 * 4, EMBED), actions[:2], states[:2]
    a_std = (a - torch.tensor(norm.action_mean).float()) / torch.tensor(norm.action_std).float()
    s_std = (s - torch.tensor(norm.state_mean).float()) / torch.tensor(norm.state_std).float()
    with torch.no_grad():
        assert relative_error(normed(z, a, s), plain(z, a_std, s_std)) <= 1e-6
        assert relative_error(normed(z, a, s), plain(z, a, s)) > 1e-2
    model = WorldModel(VisionTransformer(encoder_config("micro", "2.1", depth=2, embed_dim=EMBED)), normed, 32, Franka())
    save_world_model(model, tmp_path / "wm")
    loaded = load_world_model(tmp_path / "wm").predictor
    assert loaded.config.conditioning_norm == norm
    with torch.no_grad():
        assert torch.equal(loaded(z, a, s), normed(z, a, s))


@pytest.mark.parametrize("field,values", [("action_std", [1.0] * 6 + [0.0]), ("state_mean", [1.0] * 6),
                                          ("action_mean", [float("nan")] * 7)])
def test_conditioning_norm_refuses_bad_statistics(field, values):
    good = {"action_mean": [0.0] * 7, "action_std": [1.0] * 7, "state_mean": [0.0] * 7, "state_std": [1.0] * 7}
    with pytest.raises(ValueError, match=f"conditioning_norm.{field}"):
        ConditioningNorm(**{**good, field: values})


def test_kv_cache_steps_equal_full_recomputation():
    model = tiny_predictor()
    z, a, s = torch.randn(3, 5 * 4, EMBED), torch.randn(3, 5, 7), torch.randn(3, 5, 7)
    with torch.no_grad():
        full = model(z, a, s)
        cache = KVCache()
        steps = [model.forward_step(z[:, 4 * t : 4 * t + 4], a[:, t], s[:, t], cache) for t in range(5)]
    assert relative_error(torch.cat(steps, 1), full) <= 1e-5


def tiny_world_model(version="2"):
    encoder = VisionTransformer(encoder_config("micro", version))
    predictor = tiny_predictor(grid=(2, 2))
    return WorldModel(encoder, predictor, 32, Franka()).eval()


def test_rollout_equals_rerunning_the_predictor_on_the_growing_trajectory():
    """The official planner re-runs the predictor on [z_0, z^_1, ...] each step; ours uses a KV cache."""
    from vjepa_wm.embodiments.franka import integrate

    wm = tiny_world_model()
    z0 = F.layer_norm(torch.randn(1, 4, EMBED), (EMBED,))
    state = torch.tensor([[0.4, 0.0, 0.3, 3.1, 0.1, -0.2, 0.0]])
    actions = 0.05 * torch.randn(6, 3, 7)
    with torch.no_grad():
        out = wm.rollout(z0, state, actions)
        trajectory, states = z0.expand(6, -1, -1), [state.expand(6, -1)]
        for t in range(3):
            states.append(integrate(states[-1], actions[:, t]))
            predicted = wm.predict(trajectory, actions[:, : t + 1], torch.stack(states[:-1], 1))[:, -4:]
            trajectory = torch.cat([trajectory, predicted], 1)
    assert relative_error(out.latents.flatten(1, 2), trajectory[:, 4:]) <= 1e-5
    assert torch.allclose(out.states, torch.stack(states, 1), atol=1e-6)


def test_history_cache_then_candidates_broadcast():
    wm = tiny_world_model()
    z = F.layer_norm(torch.randn(1, 2 * 4, EMBED), (EMBED,))
    hist_a, hist_s = torch.randn(1, 1, 7) * 0.05, torch.rand(1, 1, 7)
    state = torch.rand(1, 7)
    candidates = 0.05 * torch.randn(5, 2, 7)
    with torch.no_grad():
        cache = wm.observe_history(z[:, :4], hist_a, hist_s)
        out = wm.rollout(z[:, 4:], state, candidates, cache=cache)
        for i in range(5):  # each candidate alone, with its own history pass
            alone = wm.rollout(z[:, 4:], state, candidates[i : i + 1], cache=wm.observe_history(z[:, :4], hist_a, hist_s))
            assert torch.allclose(out.latents[i], alone.latents[0], atol=1e-5)


def test_energy_is_mean_l1():
    a, b = torch.zeros(2, 4, 3), torch.ones(1, 4, 3)
    b[0, 0, 0] = 4.0
    assert torch.allclose(energy(a, b), torch.tensor([(11 + 4) / 12] * 2))


def reference_ac_loss(predictor, z, actions, states, n, auto_steps):
    """The published training step written out literally (auto_steps as in the official config)."""
    tf = F.layer_norm(predictor(z[:, :-n], actions, states[:, :-1]), (z.shape[-1],))
    ctx = torch.cat([z[:, :n], tf[:, :n]], 1)
    for k in range(1, auto_steps):
        nxt = F.layer_norm(predictor(ctx, actions[:, : k + 1], states[:, : k + 1]), (z.shape[-1],))[:, -n:]
        ctx = torch.cat([ctx, nxt], 1)
    ar = ctx[:, n:]
    jloss = torch.mean(torch.abs(tf - z[:, n : tf.shape[1] + n]))
    sloss = torch.mean(torch.abs(ar - z[:, n : ar.shape[1] + n]))
    return jloss, sloss


@pytest.mark.parametrize("rollout_steps", [1, 2, 3])
def test_loss_matches_the_published_objective_and_gradients_flow_through_rollout(rollout_steps):
    model = tiny_predictor()
    model.train()
    z = F.layer_norm(torch.randn(2, 4 * 4, EMBED), (EMBED,))
    actions, states = torch.randn(2, 3, 7), torch.randn(2, 4, 7)
    loss = ac_loss(model, z, actions, states, rollout_steps=rollout_steps)
    jloss, sloss = reference_ac_loss(model, z, actions, states, 4, rollout_steps)
    assert torch.allclose(loss.teacher_forcing, jloss) and torch.allclose(loss.rollout, sloss)
    assert torch.allclose(loss.total, jloss + sloss)
    # Nothing is detached: the rollout term alone reaches the action encoder through z^_1 and z^_2.
    loss.rollout.backward()
    assert model.action_encoder.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("context", [2, 3])
def test_rollout_from_several_real_frames_imagines_what_a_planner_with_that_context_would(context):
    """With c real frames the rollout's first frame is the prediction of frame c from frames 0..c-1
    alone; each later one extends the imagined context; the loss is L1 over those k frames."""
    model, n = tiny_predictor(), 4
    model.eval()
    z = F.layer_norm(torch.randn(2, 5 * n, EMBED), (EMBED,))
    actions, states = torch.randn(2, 4, 7), torch.randn(2, 5, 7)
    steps = 5 - context
    frames = z[:, : context * n]
    for t in range(context, context + steps):  # one fresh forward per imagined frame, kept only its last frame
        last = F.layer_norm(model(frames, actions[:, :t], states[:, :t]), (EMBED,))[:, -n:]
        frames = torch.cat([frames, last], 1)
    expected = (frames[:, context * n :] - z[:, context * n :]).abs().mean()
    loss = ac_loss(model, z, actions, states, rollout_steps=steps, rollout_context=context)
    assert torch.allclose(loss.rollout, expected, atol=1e-6)
    assert not torch.allclose(loss.rollout, ac_loss(model, z, actions, states, rollout_steps=steps).rollout)
    with pytest.raises(ValueError, match="rollout_steps"):
        ac_loss(model, z, actions, states, rollout_steps=steps + 1, rollout_context=context)


def test_encode_is_per_frame_and_layer_normed():
    wm = tiny_world_model("2.1")
    video = torch.randn(2, 3, 3, 32, 32)
    z = wm.encode(video)
    assert z.shape == (2, 3 * 4, EMBED)
    assert torch.allclose(z.mean(-1), torch.zeros(2, 12), atol=1e-5)
    single = wm.encode(video[:, :, 1:2])
    assert torch.allclose(z[:, 4:8], single, atol=1e-5)


def official_ac_checkpoint(path):
    """A file in the published vjepa2-ac-vitg.pt layout (module. prefixes, unused extrinsics encoder)."""
    from vjepa2.models.vision_transformer import VisionTransformer as OfficialViT

    encoder = OfficialViT(img_size=(32, 32), patch_size=16, num_frames=4, tubelet_size=2, embed_dim=EMBED, depth=2,
                          num_heads=3, use_rope=True).eval()
    predictor = official_ac((32, 32))
    enc = {f"module.{k}": v for k, v in encoder.state_dict().items()}
    torch.save({"encoder": enc, "target_encoder": enc,
                "predictor": {f"module.{k}": v for k, v in predictor.state_dict().items()},
                "opt": {}, "epoch": 315}, path)
    return encoder, predictor


def test_official_ac_checkpoint_loads_strictly_and_runs(tmp_path):
    encoder, predictor = official_ac_checkpoint(tmp_path / "ac.pt")
    wm = load_world_model(tmp_path / "ac.pt", img_size=32)
    assert wm.predictor.config.grid == (2, 2) and wm.predictor.config.depth == 2
    frame = torch.randn(1, 3, 1, 32, 32)
    with torch.no_grad():
        ours = wm.encode(frame)
        theirs = F.layer_norm(encoder(frame.repeat(1, 1, 2, 1, 1)), (EMBED,))
        assert relative_error(ours, theirs) <= 1e-5
        a, s = torch.randn(1, 1, 7), torch.randn(1, 1, 7)
        assert relative_error(wm.predictor(ours, a, s), predictor(theirs, a, s)) <= 1e-5
    # our format round trip keeps img_size and weights
    save_world_model(wm, tmp_path / "wm")
    again = load_world_model(tmp_path / "wm")
    assert again.img_size == 32
    with torch.no_grad():
        assert torch.equal(again.predictor(ours, a, s), wm.predictor(ours, a, s))


def test_ac_checkpoint_with_a_wrong_predictor_is_rejected_by_name(tmp_path):
    official_ac_checkpoint(tmp_path / "ac.pt")
    raw = torch.load(tmp_path / "ac.pt", weights_only=True)
    del raw["predictor"]["module.state_encoder.bias"]
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="missing: state_encoder.bias"):
        load_world_model(tmp_path / "bad.pt", img_size=32)


def test_bad_shapes_are_rejected():
    model = tiny_predictor()
    with pytest.raises(ValueError, match="actions must be"):
        model(torch.randn(1, 8, EMBED), torch.randn(1, 3, 7), torch.randn(1, 2, 7))
    with pytest.raises(ValueError, match="not \\[B, T\\*4"):
        model(torch.randn(1, 7, EMBED), torch.randn(1, 2, 7), torch.randn(1, 2, 7))
