"""`vjepa-wm train-ac` end to end on a generated DROID-raw dataset: the loss falls (a tiny model
overfits a tiny dataset), resuming is bit-exact, the latent cache gives the same training signal."""
from __future__ import annotations

import shutil
from datetime import datetime

import numpy as np
import pytest
import torch

from vjepa_wm.cli import main
from vjepa_wm.datasets.droid.raw_writer import droid_episode_dir, write_droid_raw_episode
from vjepa_wm.world_model.checkpoints import load_world_model, save_encoder
from vjepa_wm.world_model.training.train_state import load_train_state
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config

ROWS = 33


def blob_episode(seed: int):
    """A disk whose image position follows the end effector's xy: what actions do is visible."""
    import cv2

    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=0.01, size=(ROWS, 3))
    xyz = np.cumsum(steps, axis=0) + [0.0, 0.0, 0.3]
    cartesian = np.concatenate([xyz, np.tile([3.1, 0.0, 0.0], (ROWS, 1))], axis=1)
    gripper = (np.arange(ROWS) > ROWS // 2).astype(float)
    frames = np.zeros((ROWS, 48, 64, 3), np.uint8)
    for t in range(ROWS):
        cx, cy = int(32 + 200 * xyz[t, 0]), int(24 + 200 * xyz[t, 1])
        colour = (255, 255, 255) if gripper[t] < 0.5 else (255, 60, 60)
        cv2.circle(frames[t], (cx, cy), 7, colour, -1)
    return frames, cartesian, gripper


def write_blob_data(root):
    """Four blob episodes in the DROID raw layout, and a micro 2.1 encoder in ``root/encoder``."""
    for seed in range(4):
        frames, cartesian, gripper = blob_episode(seed)
        write_droid_raw_episode(
            droid_episode_dir(root, success=True, start=datetime(2024, 5, 1, 9, seed)),
            exterior_frames={"10000001": frames}, cartesian_position=cartesian, gripper_position=gripper, success=True,
        )
    torch.manual_seed(0)
    save_encoder(VisionTransformer(encoder_config("micro", "2.1", depth=2)), root / "encoder")
    return root


@pytest.fixture(scope="module")
def blob_data(tmp_path_factory):
    return write_blob_data(tmp_path_factory.mktemp("droid"))


def train_args(data, out, steps, extra=()):
    return ["train-ac", f"--data.path={data}", f"--model.encoder={data / 'encoder'}", "--model.predictor=micro",
            "--model.img_size=32", "--data.frames_per_clip=4", "--data.clips_per_episode=4", "--data.workers=0",
            "--data.val_fraction=0.0", f"--run.out_dir={out}", f"--run.steps={steps}", "--run.batch_size=4",
            "--run.log_every=5", "--run.save_every=10", "--optim.warmup_steps=5", "--optim.decay_steps=5",
            "--optim.lr=2e-3", "--optim.start_lr=2e-4", "--run.tensorboard=false", *extra]


def predictor_weights(out):
    return load_world_model(out / "world_model").predictor.state_dict()


def test_tiny_world_model_trains_end_to_end_and_the_loss_falls(blob_data, tmp_path):
    assert main(train_args(blob_data, tmp_path / "run", 60)) == 0
    model = load_world_model(tmp_path / "run" / "world_model")
    assert model.img_size == 32 and model.predictor.config.depth == 2
    first = load_train_state(tmp_path / "run" / "checkpoints" / "step_00000060.pt")
    assert first["step"] == 60
    # loss at the start vs the end, measured on the same batches with the initial and final weights
    from vjepa_wm.world_model.ac_training.loss import ac_loss

    torch.manual_seed(1)
    fresh = load_world_model(tmp_path / "run" / "world_model")
    from vjepa_wm.world_model.ac_predictor import ACPredictor

    initial = ACPredictor(fresh.predictor.config)
    torch.manual_seed(0)
    frames, cartesian, gripper = blob_episode(0)
    states = np.concatenate([cartesian, gripper[:, None]], 1)[0:13:4]
    from vjepa_wm.embodiments.franka import states_to_actions

    z = fresh.encode_clips(frames[None, 0:13:4])
    s = torch.tensor(states, dtype=torch.float32)[None]
    a = torch.tensor(states_to_actions(states), dtype=torch.float32)[None]
    with torch.no_grad():
        trained_loss = ac_loss(fresh.predictor, z, a, s).total
        initial_loss = ac_loss(initial, z, a, s).total
    assert trained_loss < 0.7 * initial_loss


@pytest.mark.parametrize("extra", [[], ["--model.normalize_conditioning=true"]], ids=["raw", "normalized"])
def test_resume_continues_bit_identically(blob_data, tmp_path, extra):
    assert main(train_args(blob_data, tmp_path / "straight", 20, extra)) == 0
    assert main(train_args(blob_data, tmp_path / "cut", 20, extra)) == 0
    # cut the second run back to its step-10 checkpoint, then resume to 20
    checkpoints = tmp_path / "cut" / "checkpoints"
    (checkpoints / "step_00000020.pt").unlink()
    (checkpoints / "latest.txt").write_text("step_00000010.pt\n")
    shutil.rmtree(tmp_path / "cut" / "world_model")
    assert main(train_args(blob_data, tmp_path / "cut", 20, extra)) == 0
    straight, resumed = predictor_weights(tmp_path / "straight"), predictor_weights(tmp_path / "cut")
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    norms = [load_world_model(tmp_path / run / "world_model").predictor.config.conditioning_norm for run in ("straight", "cut")]
    assert norms[0] == norms[1]
    if extra:  # measured on the blob episodes (a spread never below the floor)
        assert norms[0] is not None and min(norms[0].state_std) >= 1e-3 and max(norms[0].state_std) > 1e-2
    else:
        assert norms[0] is None


def test_latent_cache_trains_and_refuses_another_encoder(blob_data, tmp_path):
    cache = tmp_path / "cache"
    assert main(train_args(blob_data, tmp_path / "cached", 10, [f"--data.cache_dir={cache}"])) == 0
    assert sorted(p.name for p in (cache / "train").glob("shard_*")) == ["shard_000_00000.safetensors"]
    torch.manual_seed(5)
    save_encoder(VisionTransformer(encoder_config("micro", "2.1", depth=2)), tmp_path / "other")
    code = main(train_args(blob_data, tmp_path / "cached2", 10, [f"--data.cache_dir={cache}", f"--model.encoder={tmp_path / 'other'}"]))
    assert code == 2  # one-line error: cache built with a different encoder


def test_bad_config_is_a_one_line_error(tmp_path, capsys):
    assert main(["train-ac", "--data.path=x", "--model.encoder=y", "--run.rollout_steps=9"]) == 2
    assert "rollout_steps" in capsys.readouterr().err
    assert main(["train-ac", "--data.pth=x"]) == 2


@pytest.mark.parametrize("name", ["sim.yaml", "droid_vitg.yaml"])
def test_shipped_configs_load_and_validate(name):
    from helpers import SHIPPED_CONFIGS
    from vjepa_wm.world_model.ac_training.config import ACTrainConfig
    from vjepa_wm.world_model.configuration import load_config

    config = load_config(ACTrainConfig, SHIPPED_CONFIGS / "train_ac" / name).validate()
    if name == "droid_vitg.yaml":  # the published recipe
        assert (config.run.steps, config.optim.lr, config.optim.start_lr, config.optim.warmup_steps) == (94500, 4.25e-4, 7.5e-5, 4500)
        assert (config.data.frames_per_clip, config.data.row_stride, config.run.rollout_steps) == (8, 4, 2)
