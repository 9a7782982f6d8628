"""The planner on a real (tiny, random) `WorldModel`: batched KV-cache scoring, landscape, CLI, benchmark."""
from __future__ import annotations

import json

import cv2
import numpy as np
import torch

from vjepa_wm.cli import main
from vjepa_wm.embodiments import Franka
from vjepa_wm.planner.cem import CEM, CEMConfig
from vjepa_wm.planner.energy import rollout_energy
from vjepa_wm.planner.landscape import energy_landscape
from vjepa_wm.planner.mpc import warm_up
from vjepa_wm.world_model.ac_predictor import ACPredictor, ac_predictor_config
from vjepa_wm.world_model.checkpoints import save_world_model
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config
from vjepa_wm.world_model.world_model import WorldModel


def tiny_model():
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config("micro", "2.1"))
    return WorldModel(encoder, ACPredictor(ac_predictor_config("micro", 96, img_size=32)), 32, FRANKA).eval()


FRANKA = Franka()


def random_score(model, seed: int):
    """The CEM objective from a random view toward a random goal image, at a mid-workspace state."""
    rng = np.random.default_rng(seed)
    z = model.encode_images(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    goal = model.encode_images(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return rollout_energy(model, z, torch.tensor([[0.5, 0.0, 0.3, 3.1, 0.0, 0.0, 0.5]]), goal)


def test_batched_scores_equal_one_candidate_at_a_time():
    score = random_score(tiny_model(), 0)
    actions = 0.05 * torch.randn(6, 3, 7)
    with torch.no_grad():
        batched = score(actions)
        single = torch.cat([score(actions[i : i + 1]) for i in range(6)])
    assert torch.allclose(batched, single, atol=1e-5)
    plan = CEM(CEMConfig(samples=16, iterations=2, elites=4, horizon=3), FRANKA).search(score)
    assert plan.actions.shape == (3, 7) and torch.isfinite(plan.actions).all()


def test_warm_up_searches_once_and_leaves_the_next_plan_as_it_would_have_been():
    model = tiny_model()
    config = CEMConfig(samples=16, iterations=2, elites=4, horizon=2, seed=3)
    cold = CEM(config, FRANKA).search(random_score(model, 1))
    assert warm_up(model, CEM(config, FRANKA)) > 0
    warm = CEM(config, FRANKA).search(random_score(model, 1))
    torch.testing.assert_close(warm.actions, cold.actions, rtol=0, atol=0)
    assert warm.energy == cold.energy


def test_landscape_grid_matches_direct_rollouts():
    model = tiny_model()
    z = torch.nn.functional.layer_norm(torch.randn(1, 4, 96), (96,))
    goal = torch.nn.functional.layer_norm(torch.randn(1, 4, 96), (96,))
    state = torch.zeros(1, 7)
    landscape = energy_landscape(model, FRANKA, z, state, goal, radius=0.06, points=3)
    action = torch.zeros(1, 1, 7)
    action[0, 0, :3] = torch.tensor([0.06, -0.06, 0.0])
    with torch.no_grad():
        direct = (model.rollout(z, state, action).latents[:, -1] - goal).abs().mean()
    assert torch.allclose(landscape.energies[2, 0, 1], direct, atol=1e-5)


def test_plan_command_prints_an_action_and_writes_the_landscape(tmp_path, capsys):
    save_world_model(tiny_model(), tmp_path / "wm")
    rng = np.random.default_rng(0)
    for name in ("now.png", "goal.png"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    code = main(["plan", "--model", str(tmp_path / "wm"), "--image", str(tmp_path / "now.png"), "--goal",
                 str(tmp_path / "goal.png"), "--state", "0.5,0,0.3,3.1,0,0,0", "--cem.samples", "16", "--cem.iterations", "2",
                 "--landscape", str(tmp_path / "land.png"), "--json", str(tmp_path / "plan.json"), "--device", "cpu"])
    assert code == 0
    out = capsys.readouterr().out
    assert "action (dx dy dz droll dpitch dyaw dgripper)" in out
    record = json.loads((tmp_path / "plan.json").read_text())
    assert len(record["action"]) == 7 and max(abs(v) for v in record["action"][:3]) <= 0.05 + 1e-6
    assert (tmp_path / "land.png").stat().st_size > 1000


def test_plan_command_rejects_a_bad_state(tmp_path, capsys):
    code = main(["plan", "--model", str(tmp_path / "none"), "--image", "a.png", "--goal", "b.png", "--state", "1,2,3"])
    assert code == 2
    assert "--state must be 7" in capsys.readouterr().err


def test_bench_plan_sim_record(tmp_path):
    save_world_model(tiny_model(), tmp_path / "wm")
    code = main(["bench", "plan", "--configs", "sim", "--model", str(tmp_path / "wm"), "--repeats", "1",
                 "--device", "cpu", "--json", str(tmp_path / "p.json")])
    assert code == 0
    record = json.loads((tmp_path / "p.json").read_text())[0]
    for key in ("config", "device", "samples", "iterations", "horizon", "seconds_per_action", "matmul_fraction"):
        assert key in record
    assert record["samples"] == 64 and record["iterations"] == 5 and record["seconds_per_action"] > 0
