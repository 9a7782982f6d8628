"""bench nav at a tiny size: the JSON's rows and fields, the scaling of NWM's forward to its plan,
and both analytic FLOP counts against torch's FLOP counter on the real forward passes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from vjepa_wm.benchmarks.nav import COLUMNS, CDiTSize, CDiTStack, NWMBudget, cdit_flops, cdit_inputs, our_plan_flops, our_planner, situation
from vjepa_wm.cli import main
from vjepa_wm.embodiments import Car
from vjepa_wm.world_model.ac_predictor import ACPredictor, ac_predictor_config
from vjepa_wm.world_model.checkpoints import save_world_model
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config
from vjepa_wm.world_model.world_model import WorldModel

TINY = CDiTSize(depth=1, width=48, heads=4, image_size=32)  # 4 x 4 latents, 4 tokens per frame


def car_model() -> WorldModel:
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config("micro", "2.1"))
    predictor = ACPredictor(ac_predictor_config("micro", 96, img_size=32, action_dim=3))
    return WorldModel(encoder, predictor, 32, Car()).eval()


def counted(fn) -> float:
    """FLOPs torch counts in `fn` (attention through the math kernel, whose matmuls it sees)."""
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


@pytest.mark.parametrize("size", [TINY, CDiTSize(depth=2, width=96, heads=4, image_size=64, context=2)])
def test_the_cdit_flop_formula_agrees_with_a_counted_forward(size):
    model = CDiTStack(size).eval()
    batch = 3
    inputs = cdit_inputs(size, batch, torch.device("cpu"))
    assert model(*inputs).shape == (batch, 2 * size.channels, size.latent, size.latent)
    assert counted(lambda: model(*inputs)) / batch == pytest.approx(cdit_flops(size), rel=0.01)


def test_the_published_size_is_the_xl_model():
    xl = CDiTSize()
    assert xl.tokens == 196 and xl.latent == 28  # 224 px / 8 (SD-VAE) / 2 (patch)
    parameters = 28 * 27 * 1152**2  # per block: qkv + out, cross q, kv, out, MLP, adaLN = 27 d^2 weights
    assert 0.9e9 < parameters < 1.1e9  # "about 1B parameters"
    assert NWMBudget().forwards == 120 * 8 * 250 * 3


def test_our_flop_formula_agrees_with_a_counted_plan():
    model = car_model()
    budget = NWMBudget(samples=8, horizon=3)
    planner = our_planner(model, "free", budget, torch.device("cpu"), 4)
    s = situation(model, 4, np.random.default_rng(0))
    assert counted(lambda: planner.plan(s)) == pytest.approx(our_plan_flops(model, 8, 1, 3, 4), rel=0.03)


def test_bench_nav_writes_both_rows_and_the_ratio(tmp_path, capsys):
    model_dir = save_world_model(car_model(), tmp_path / "model")
    out = tmp_path / "nav.json"
    assert main(["bench", "nav", "--model", str(model_dir), "--samples", "8", "--horizon", "2", "--denoising-steps", "3",
                 "--eval-repeats", "2", "--nwm-depth", "1", "--nwm-width", "48", "--nwm-heads", "4", "--nwm-image-size", "32",
                 "--repeats", "1", "--device", "cpu", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "times_ours" in printed and "NWM's plan costs" in printed
    ours, nwm = json.loads(out.read_text())
    assert (ours["method"], nwm["method"]) == ("ours", "nwm")
    for row in (ours, nwm):
        assert set(COLUMNS) <= set(row) and row["seconds_per_plan"] > 0 and row["samples"] == 8 and row["horizon"] == 2
    assert nwm["forward_batch"] == 1 and nwm["forwards_per_plan"] == 8 * 2 * 3 * 2
    assert nwm["seconds_per_plan"] == pytest.approx(nwm["seconds_per_forward"] * 96)
    assert nwm["tflop_per_plan"] == pytest.approx(cdit_flops(TINY) * 96 / 1e12)
    assert nwm["times_ours"] == pytest.approx(nwm["seconds_per_plan"] / ours["seconds_per_plan"]) and ours["times_ours"] == 1
    assert ours["tflop_per_plan"] == pytest.approx(our_plan_flops(car_model(), 8, 1, 2, 4) / 1e12)
    assert nwm["flop_times_ours"] == pytest.approx(nwm["tflop_per_plan"] / ours["tflop_per_plan"])


def test_bad_settings_are_one_line(capsys):
    assert main(["bench", "nav", "--nwm-width", "50", "--device", "cpu"]) == 2
    assert "width" in capsys.readouterr().err
    assert main(["bench", "nav", "--samples", "0", "--device", "cpu"]) == 2
    assert "samples must be at least 1" in capsys.readouterr().err
