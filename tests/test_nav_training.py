"""`train-ac` on NWM-format drives: the clip dataset (rows, actions, seeded windows, rank and worker
sharding, skips by reason), the `nwm` pretraining clip source, the car/nwm settings checks, and
sim drives -> `nav-process` -> `train-ac --config nav_sim` -> a car world model, end to end."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vjepa_wm.cli import main
from vjepa_wm.datasets.tartandrive import nwm_format
from vjepa_wm.datasets.tartandrive.clip_source import NWMClipSource
from vjepa_wm.datasets.tartandrive.clips import NavClipConfig, NWMClipDataset, relative_poses, trajectory_folders
from vjepa_wm.embodiments.car import Car
from vjepa_wm.world_model.ac_training.config import ACTrainConfig

GOOD = {"a_long": 30, "b_mid": 20, "c_short": 12}
CONFIG = dict(frames_per_clip=4, frame_stride=2, clips_per_trajectory=3, origin_frame=1)  # windows span 7 samples


def poses(seed: int, length: int) -> np.ndarray:
    """A drive far from the odometry origin, turning through the yaw wrap."""
    rng = np.random.default_rng(seed)
    yaw = 3.0 + np.cumsum(rng.normal(0.0, 0.3, length))
    step = rng.uniform(0.3, 1.0, length)
    x = 500.0 + np.cumsum(step * np.cos(yaw))
    y = -300.0 + np.cumsum(step * np.sin(yaw))
    return np.stack([x, y, yaw], axis=1)


def frames(length: int) -> list[np.ndarray]:
    """Frame t is flat grey 8 t: its index survives JPEG."""
    return [np.full((24, 32, 3), 8 * t, np.uint8) for t in range(length)]


def frame_index(frame: np.ndarray) -> int:
    return int(round(frame.mean() / 8))


class RunsCode:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("nwm")
    for seed, (name, length) in enumerate(GOOD.items()):
        p = poses(seed, length)
        nwm_format.write_trajectory(root / name, frames(length), p[:, :2], p[:, 2])
    p = poses(9, 7)
    nwm_format.write_trajectory(root / "too_short", frames(5), p[:5, :2], p[:5, 2])
    nwm_format.write_trajectory(root / "hole", frames(7), p[:, :2], p[:, 2])
    (root / "hole" / "4.jpg").unlink()  # its only window samples frames 0, 2, 4, 6
    nan = p.copy()
    nan[3, 0] = np.nan
    nwm_format.write_trajectory(root / "nan", frames(7), nan[:, :2], nan[:, 2])
    nwm_format.write_trajectory(root / "evil", frames(7), p[:, :2], p[:, 2])
    bomb = RunsCode()
    bomb.marker = root / "ran"
    (root / "evil" / nwm_format.TRAJ_DATA).write_bytes(pickle.dumps(bomb))
    nwm_format.write_traj_names(root / "splits" / "train" / "traj_names.txt", ["a_long", "b_mid"])
    nwm_format.write_traj_names(root / "splits" / "test" / "traj_names.txt", ["c_short"])
    return root


def read(root, names, **changes):
    dataset = NWMClipDataset([root / n for n in names], NavClipConfig(**{**CONFIG, **changes}))
    return list(dataset), dataset.stats


def windows(clips) -> dict:
    out = {}
    for clip in clips:
        out.setdefault(clip.trajectory, []).append(clip.indices.tolist())
    return out


def test_frames_states_and_actions_come_from_the_same_rows(tiny):
    clips, stats = read(tiny, GOOD)
    assert stats.clips == len(clips) == 9 and stats.trajectories == 3 and not stats.skipped
    car = Car()
    for clip in clips:
        length = GOOD[clip.trajectory]
        assert np.array_equal(np.diff(clip.indices), [2, 2, 2]) and 0 <= clip.indices[0] and clip.indices[-1] < length
        assert [frame_index(f) for f in clip.frames] == clip.indices.tolist()
        assert clip.frames.shape == (4, 24, 32, 3) and clip.frames.dtype == np.uint8
        recorded = poses(list(GOOD).index(clip.trajectory), length)[clip.indices]
        np.testing.assert_allclose(clip.actions, car.deltas(recorded), atol=1e-12)
        # states are the poses seen from the origin frame's: same actions, that pose at (0, 0, 0)
        np.testing.assert_allclose(clip.states, relative_poses(recorded, 1), atol=1e-12)
        np.testing.assert_allclose(clip.states[1], 0.0, atol=1e-12)
        np.testing.assert_allclose(car.deltas(clip.states), clip.actions, atol=1e-9)
        np.testing.assert_allclose(np.hypot(*clip.states[:, :2].T), np.hypot(*(recorded[:, :2] - recorded[1, :2]).T))
        assert np.all(np.abs(clip.states[:, 2]) <= np.pi)
    spacing = Car(waypoint_spacing=0.36)
    clip = next(iter(NWMClipDataset([tiny / "a_long"], NavClipConfig(**CONFIG), spacing)))
    recorded = poses(0, 30)[clip.indices]
    np.testing.assert_allclose(clip.actions, spacing.deltas(recorded), atol=1e-12)


def test_windows_follow_seed_and_epoch_not_ranks(tiny):
    first, again = windows(read(tiny, GOOD)[0]), windows(read(tiny, GOOD)[0])
    assert first == again
    dataset = NWMClipDataset([tiny / n for n in GOOD], NavClipConfig(**CONFIG))
    dataset.set_epoch(1)
    assert windows(dataset) != first
    assert windows(read(tiny, GOOD, seed=1)[0]) != first
    assert all(len({tuple(w) for w in ws}) == 3 for ws in first.values())  # distinct windows where there are enough
    ranks = [windows(read(tiny, GOOD, rank=r, world_size=2)[0]) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1]) and {**ranks[0], **ranks[1]} == first
    assert [len(r) for r in ranks] == [2, 1]


def test_dataloader_workers_split_the_trajectories(tiny):
    from torch.utils.data import DataLoader

    from vjepa_wm.datasets.tartandrive.clips import collate_nav_clips

    dataset = NWMClipDataset([tiny / n for n in GOOD], NavClipConfig(**CONFIG))
    batches = list(DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=collate_nav_clips))
    seen = {}
    for batch in batches:
        assert batch["frames"].shape == (3, 4, 24, 32, 3) and batch["actions"].shape == (3, 3, 3)
        assert batch["states"].dtype == torch.float32
        for name, indices in zip(batch["trajectory"], batch["indices"].tolist()):
            seen.setdefault(name, []).append(indices)
    assert seen == windows(read(tiny, GOOD)[0])


def test_broken_trajectories_are_skipped_and_counted_by_reason(tiny):
    clips, stats = read(tiny, ["a_long", "too_short", "hole", "nan", "evil", "ghost"])
    assert {c.trajectory for c in clips} == {"a_long"} and stats.trajectories == 1
    assert stats.skipped == {"too_short": 1, "bad_frame": 1, "nan_poses": 1, "unsafe_pickle": 1, "missing": 1}
    assert not (tiny / "ran").exists()  # the pickle's os.system was refused, not run
    assert "skipped 5 (bad_frame 1, missing 1, nan_poses 1, too_short 1, unsafe_pickle 1)" in stats.summary()
    with pytest.raises(ValueError, match="frames_per_clip"):
        NWMClipDataset([tiny / "a_long"], NavClipConfig(frames_per_clip=1))
    with pytest.raises(ValueError, match="origin_frame"):
        NWMClipDataset([tiny / "a_long"], NavClipConfig(frames_per_clip=4, origin_frame=4))
    with pytest.raises(ValueError, match="no such NWM dataset folder"):
        trajectory_folders(tiny / "nowhere")


def test_pretraining_clip_source_reads_the_train_split_at_4_hz_strides(tiny):
    from vjepa_wm.clip_sources import CLIP_SOURCES

    source = CLIP_SOURCES["nwm"](str(tiny))
    assert isinstance(source, NWMClipSource) and len(source) == 2 and source.describe(1).endswith("b_mid")
    clip = source.clip(0, 5, 2.0, torch.Generator().manual_seed(0))  # 2 fps = every other 4 Hz frame
    assert clip.shape == (5, 24, 32, 3)
    assert np.array_equal(np.diff([frame_index(f) for f in clip]), [2, 2, 2, 2])
    with pytest.raises(ValueError, match="too_short"):
        source.clip(0, 20, 2.0, torch.Generator().manual_seed(0))


def _config(**changes) -> ACTrainConfig:
    config = ACTrainConfig()
    config.data.path, config.model.encoder = "data", "encoder"
    config.data.format, config.model.embodiment = "nwm", "car"
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    return config


def test_settings_pair_the_car_with_nwm_data():
    _config().validate()
    with pytest.raises(ValueError, match="model.embodiment must be car, not 'franka'"):
        _config(model__embodiment="franka").validate()
    with pytest.raises(ValueError, match="data.format raw is DROID.*data.format nwm"):
        _config(data__format="raw").validate()
    with pytest.raises(ValueError, match="data.camera"):
        _config(data__camera="left").validate()
    with pytest.raises(ValueError, match="data.state_origin"):
        _config(data__state_origin=8).validate()


def test_train_ac_holds_out_the_test_split_or_what_val_path_names(tiny, tmp_path):
    from vjepa_wm.commands.train_ac import nav_trajectories

    def names(data):
        return [[p.name for p in part] for part in nav_trajectories(data)]

    data = _config(data__path=str(tiny)).data
    assert names(data) == [["a_long", "b_mid"], ["c_short"]]
    data.val_path = str(tiny / "splits" / "train" / "traj_names.txt")
    assert names(data) == [["a_long", "b_mid"], ["a_long", "b_mid"]]
    other = tmp_path / "other"
    nwm_format.write_trajectory(other / "z", frames(7), poses(0, 7)[:, :2], poses(0, 7)[:, 2])
    data.val_path = str(other)
    assert names(data) == [["a_long", "b_mid"], ["z"]]
    data.path, data.val_path, data.val_fraction = str(other), None, 0.0  # no splits: every trajectory trains
    assert names(data) == [["z"], []]
    data.val_path = str(tmp_path / "gone")
    with pytest.raises(ValueError, match="data.val_path"):
        nav_trajectories(data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="data.path .*no trajectories"):
        nav_trajectories(_config(data__path=str(tmp_path / "empty")).data)


def test_shipped_nav_config_covers_context_and_plan_horizon():
    from helpers import SHIPPED_CONFIGS
    from vjepa_wm.world_model.configuration import load_config
    from vjepa_wm.world_model.pretraining.config import PretrainConfig

    config = load_config(ACTrainConfig, SHIPPED_CONFIGS / "train_ac" / "nav_sim.yaml").validate()
    assert (config.data.format, config.model.embodiment, config.data.row_stride) == ("nwm", "car", 1)
    assert config.data.frames_per_clip == 4 + 8 and config.run.rollout_steps == 8  # 4 context frames, 8-step plans
    assert config.data.state_origin == 3  # plans start at (0, 0, 0) on the last context frame
    pretrain = load_config(PretrainConfig, SHIPPED_CONFIGS / "pretrain" / "nav_sim.yaml")
    assert [e.source for e in pretrain.data.episodes] == ["nwm"] and pretrain.data.fps == 4.0
    assert {phase.crop for phase in pretrain.phases} == {config.model.img_size}


def test_sim_drives_train_a_car_world_model_end_to_end(tmp_path, capsys):
    from vjepa_wm.world_model.checkpoints import load_world_model, save_encoder
    from vjepa_wm.world_model.vit import VisionTransformer, encoder_config

    bags, data, cache = tmp_path / "bags", tmp_path / "nwm", tmp_path / "cache"
    tiny_world = ["--terrain.grid", "17", "--terrain.texture-size", "32", "--no-progress"]
    assert main(["collect-drive", "--out", str(bags), "--episodes", "2", "--seconds", "20", "--width", "32", "--height", "24",
                 *tiny_world]) == 0
    assert main(["nav-process", str(bags), "--out", str(data), "--image-width", "32", "--image-height", "24",
                 "--train-fraction", "0.5", "--no-progress"]) == 0
    torch.manual_seed(0)
    save_encoder(VisionTransformer(encoder_config("micro", "2.1", depth=2)), tmp_path / "encoder")
    args = ["train-ac", "--config", "nav_sim", f"--data.path={data}", f"--model.encoder={tmp_path / 'encoder'}",
            "--model.predictor=micro", "--model.img_size=32", f"--data.cache_dir={cache}", "--data.workers=0",
            "--data.cache_shard_size=64", f"--run.out_dir={tmp_path / 'run'}", "--run.steps=3", "--run.batch_size=2",
            "--run.val_every=3", "--run.val_batches=1", "--optim.warmup_steps=1", "--optim.decay_steps=1",
            "--run.tensorboard=false"]
    assert main(args) == 0
    assert "2 training and 2 held-out trajectories" in capsys.readouterr().out
    model = load_world_model(tmp_path / "run" / "world_model")
    assert isinstance(model.embodiment, Car) and model.embodiment.waypoint_spacing == 0.72
    assert model.predictor.config.action_dim == 3 and model.img_size == 32
    manifest = json.loads((cache / "train" / "cache.json").read_text())
    assert manifest["key"]["data.format"] == "nwm" and manifest["key"]["embodiment"]["name"] == "car"
    assert manifest["key"]["data.state_origin"] == 3
    shard = load_file(next((cache / "train").glob("shard_*.safetensors")))
    assert shard["states"].shape[1:] == (12, 3) and shard["actions"].shape[1:] == (11, 3)
    assert shard["states"][:, 3].abs().max() == 0 and shard["states"][:, 0, 0].max() < 0  # seen from the last context frame
    forward = shard["actions"][..., 0]
    assert forward.abs().max() < Car().max_forward and forward.mean() > 0.1  # the sim car drives forward, ~1 unit per step
