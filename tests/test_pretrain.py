"""Pretraining on a procedurally generated moving-shapes video set, on the CPU, micro-sized.

The loss falls and the targets do not collapse; a run resumed from a mid-run checkpoint (with a
phase change, mixed image batches, stochastic depth and loader workers) ends bit-identical to an
uninterrupted one; checkpoints are atomic, never overwritten and load with weights_only; the
exported encoder and predictor load through the shared loaders; unreadable files are skipped.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import pytest
import torch

from vjepa_wm.datasets.moving_shapes import moving_shapes_clip
from vjepa_wm.datasets.video_io import write_mp4
from vjepa_wm.world_model.checkpoints import load_encoder, load_predictor
from vjepa_wm.world_model.configuration import load_config
from vjepa_wm.world_model.pretraining.collapse import CollapseWarning, check_collapse, collapse_stats
from vjepa_wm.world_model.pretraining.config import PretrainConfig
from vjepa_wm.world_model.pretraining.data import DataError, make_loader
from vjepa_wm.world_model.pretraining.objective import target_features
from vjepa_wm.world_model.pretraining.trainer import Pretrainer, param_groups
from vjepa_wm.world_model.training.run_folder import RunFolder, RunIdentity
from vjepa_wm.world_model.training.schedules import LinearRamp, LinearWarmupHold, WarmupConstantCooldown
from vjepa_wm.world_model.training.train_state import latest_checkpoint, load_train_state, save_train_state


def make_data(root: Path, videos: int = 10, images: int = 4, broken: bool = True) -> dict[str, str]:
    """Moving-shapes MP4s (24 frames at 8 fps, 64 px), PNG frames, and a corrupt video."""
    video_dir, image_dir = root / "videos", root / "images"
    for i in range(videos):
        write_mp4(video_dir / f"shapes_{i:02d}.mp4", moving_shapes_clip(24, 64, 3, seed=i), fps=8)
    if broken:
        (video_dir / "corrupt.mp4").write_bytes(b"\x00not a video")
    image_dir.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        frame = moving_shapes_clip(1, 64, 4, seed=100 + i)[0]
        cv2.imwrite(str(image_dir / f"frame_{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return {"videos": str(video_dir), "images": str(image_dir)}


def micro_overrides(data: dict[str, str], out_dir: Path, **extra) -> dict:
    """A micro V-JEPA 2.1 run: 96-wide 4-block encoder, 2-block 48-wide predictor, 4 frames at 64 px."""
    base = {
        "model.preset": "micro", "model.predictor_depth": 2, "model.predictor_dim": 48, "model.predictor_heads": 4,
        "phases": [{"steps": 6, "frames": 4, "crop": 64, "batch_size": 4}],
        "data.video_dirs": [data["videos"]], "data.fps": 8,
        "optim.warmup_steps": 2, "optim.lr": 1e-3, "optim.start_lr": 1e-4, "optim.ema": [0.99, 0.99],
        "loss.context_lambda_start": 0, "loss.context_lambda_end": 4,
        "run.out_dir": str(out_dir), "run.tensorboard": False, "run.progress": False, "run.resume": "never",
        "run.log_every": 1, "run.save_every": 1000,
    }
    base.update(extra)
    return base


@pytest.fixture(autouse=True)
def one_thread():
    """Micro models gain nothing from intra-op threads, and two threads stall badly when another
    process holds a core; one thread keeps these tests fast on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    return make_data(tmp_path_factory.mktemp("pretrain_data"))


def quiet_fit(trainer: Pretrainer):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="skipped unreadable data")
        return trainer.fit()


def test_loss_falls_and_targets_do_not_collapse(data, tmp_path):
    config = load_config(PretrainConfig, None, micro_overrides(
        data, tmp_path / "run", phases=[{"steps": 150, "frames": 4, "crop": 64, "batch_size": 8}],
        **{"optim.warmup_steps": 15, "loss.context_lambda_end": 40, "run.log_every": 10, "run.monitor_every": 50},
    ))
    trainer = Pretrainer(config)
    probe = next(iter(make_loader(config.data, config.phases, seed=99, start=0, rank=0, world_size=1))).video
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        result = quiet_fit(trainer)
    losses = [loss for _, loss in result.history]
    assert len(losses) == 15 and result.collapse_warnings == 0
    first, last = sum(losses[:2]) / 2, sum(losses[-4:]) / 4
    assert last < 0.93 * first, losses
    stats = collapse_stats(target_features(trainer.target, probe, 4)[..., -96:])
    assert stats.feature_std > 0.3 and stats.effective_rank > 5, stats


def test_collapse_monitor_warns_on_collapsed_features():
    collapsed = torch.ones(2, 64, 96) + 1e-4 * torch.randn(2, 64, 96)
    with pytest.warns(CollapseWarning, match="collapsing"):
        assert check_collapse(collapse_stats(collapsed), 0.05, 2.0, step=7)
    healthy = collapse_stats(torch.randn(2, 64, 96))
    assert healthy.effective_rank > 50 and not check_collapse(healthy, 0.05, 2.0, step=7)


def resume_config(data, out_dir, **extra):
    return load_config(PretrainConfig, None, micro_overrides(
        data, out_dir,
        phases=[
            {"steps": 3, "frames": 4, "crop": 64, "batch_size": 4, "image_batch_size": 2},
            {"steps": 3, "frames": 8, "crop": 48, "batch_size": 2, "image_batch_size": 2},
        ],
        **{"data.image_dirs": [data["images"]], "model.drop_path_rate": 0.1, "run.save_every": 2, "run.keep_checkpoints": 5,
           "optim.cooldown_steps": 2},
        **extra,
    ))


def states(trainer: Pretrainer) -> dict[str, torch.Tensor]:
    out = {f"encoder.{k}": v for k, v in trainer.encoder.state_dict().items()}
    out.update({f"predictor.{k}": v for k, v in trainer.predictor.state_dict().items()})
    out.update({f"target.{k}": v for k, v in trainer.target.state_dict().items()})
    for index, state in trainer.optimizer.state_dict()["state"].items():
        out.update({f"opt.{index}.{k}": v for k, v in state.items()})
    return out


def test_resume_continues_bit_identically(data, tmp_path):
    straight = Pretrainer(resume_config(data, tmp_path / "a"))
    straight_result = quiet_fit(straight)
    assert straight.step == 6 and sorted(p.name for p in (tmp_path / "a" / "checkpoints").glob("*.pt")) == [
        "step_00000002.pt", "step_00000004.pt", "step_00000006.pt"
    ]
    # Resume mid-phase from step 2 (crossing the phase change at 3), with loader workers this time.
    resumed = Pretrainer(resume_config(
        data, tmp_path / "b", **{"run.resume": str(tmp_path / "a" / "checkpoints" / "step_00000002.pt"), "data.num_workers": 2}
    ))
    resumed.resume()
    assert resumed.step == 2
    resumed_result = quiet_fit(resumed)
    assert resumed_result.steps == 4
    a, b = states(straight), states(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    assert straight_result.history[-4:] == resumed_result.history
    # Without restoring the checkpoint the same steps give different weights (the test can fail).
    fresh = Pretrainer(resume_config(data, tmp_path / "c"))
    fresh.step = 2
    quiet_fit(fresh)
    assert not torch.equal(states(fresh)["encoder.blocks.0.attn.qkv.weight"], a["encoder.blocks.0.attn.qkv.weight"])


def test_checkpoints_are_atomic_plain_and_never_overwritten(tmp_path):
    directory = tmp_path / "ckpt"
    owner = RunFolder(tmp_path, RunIdentity("test", {}, {}, {}))
    first = save_train_state(directory, 10, {"w": torch.ones(2), "rng": [torch.get_rng_state()]}, 2, owner)
    again = save_train_state(directory, 10, {"w": torch.zeros(2), "rng": []}, 2, owner)
    assert first.name == "step_00000010.pt" and again.name == "step_00000010.r1.pt"
    assert torch.equal(torch.load(first, weights_only=True)["w"], torch.ones(2))  # the first is untouched
    assert latest_checkpoint(directory, owner) == again
    save_train_state(directory, 20, {"w": torch.ones(1)}, 2, owner)
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["latest.txt", "step_00000010.r1.pt", "step_00000020.pt"]  # pruned, no partial files
    assert owner.record["written"] == ["ckpt/latest.txt", "ckpt/step_00000010.r1.pt", "ckpt/step_00000020.pt"]
    assert load_train_state(directory / "step_00000020.pt")["step"] == 20
    torch.save({"format": "something else"}, directory / "other.pt")
    with pytest.raises(ValueError, match="not a vjepa_wm training checkpoint"):
        load_train_state(directory / "other.pt")


def test_run_checkpoint_loads_with_weights_only_and_exports_load(data, tmp_path):
    config = load_config(PretrainConfig, None, micro_overrides(
        data, tmp_path / "run", **{"run.save_every": 3, "run.tensorboard": True, "run.monitor_every": 3}
    ))
    trainer = Pretrainer(config)
    result = quiet_fit(trainer)
    events = b"".join(p.read_bytes() for p in (tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    for tag in (b"loss/total", b"loss/context", b"loss/level_3", b"schedule/lr", b"collapse/target_effective_rank", b"data/skipped"):
        assert tag in events
    raw = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert raw["step"] == 6 and set(raw) >= {"encoder", "predictor", "target_encoder", "optimizer", "rng", "config", "data"}
    assert raw["data"]["skipped"] == result.skipped
    encoder = load_encoder(result.encoder_dir)
    predictor = load_predictor(result.predictor_dir)
    assert encoder.config.version == "2.1" and predictor.config.levels == 4 and predictor.config.img_size == 64
    video = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(encoder(video), trainer.target.eval()(video))  # the export is the EMA target
    # A second run in the same folder resumes at the end and trains no further.
    again = Pretrainer(load_config(PretrainConfig, None, micro_overrides(data, tmp_path / "run", **{"run.resume": "auto"})))
    assert again.resume() == result.checkpoint and again.step == 6
    assert quiet_fit(again).steps == 0


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    paths = make_data(tmp_path, videos=1, images=0)
    (Path(paths["videos"]) / "empty.mp4").write_bytes(b"")
    write_mp4(Path(paths["videos"]) / "too_short.mp4", moving_shapes_clip(2, 64, 1), fps=8)
    config = load_config(PretrainConfig, None, micro_overrides(paths, tmp_path / "run", **{"phases": [{"steps": 2, "frames": 4, "crop": 64, "batch_size": 4}]}))
    with pytest.warns(UserWarning, match="skipped unreadable data") as caught:
        result = Pretrainer(config).fit()
    assert result.steps == 2 and result.skipped >= 3  # 8 samples from 1 good file of 4: each bad one met
    reported = " ".join(str(w.message) for w in caught)
    assert all(name in reported for name in ("corrupt.mp4", "empty.mp4", "too_short.mp4"))
    assert "shapes_00.mp4" not in reported
    (Path(paths["videos"]) / "shapes_00.mp4").unlink()
    config = load_config(PretrainConfig, None, micro_overrides(paths, tmp_path / "run2"))
    with pytest.raises(DataError, match="none of the 3 items could be read"):
        Pretrainer(config).fit()


class ShapeEpisodes:
    """A stand-in episode dataset: the ClipSource protocol over generated episodes."""

    def __init__(self, path: str):
        self.path = path

    def __len__(self) -> int:
        return 3

    def describe(self, index: int) -> str:
        return f"{self.path}#episode{index}"

    def clip(self, index, num_frames, fps, generator):
        if index == 2:
            raise OSError("episode 2 has no camera stream")
        return moving_shapes_clip(num_frames, 48, 2, seed=index)


def test_episode_datasets_plug_in_by_name(tmp_path):
    overrides = micro_overrides({"videos": ""}, tmp_path / "run", **{
        "data.video_dirs": [], "data.episodes": [{"source": "shapes", "path": "sim://demo"}],
        "phases": [{"steps": 2, "frames": 4, "crop": 32, "batch_size": 3}],
    })
    registry = {"shapes": ShapeEpisodes}
    with pytest.warns(UserWarning, match="sim://demo#episode2: episode 2 has no camera stream"):
        result = Pretrainer(load_config(PretrainConfig, None, overrides), clip_sources=registry).fit()
    assert result.steps == 2 and result.skipped >= 1
    overrides["data.episodes"] = [{"source": "os:system", "path": "touch PWNED"}]  # names only what the registry has
    overrides["run.out_dir"] = str(tmp_path / "run2")
    with pytest.raises(DataError, match="unknown clip source 'os:system' \\(known: shapes\\)"):
        Pretrainer(load_config(PretrainConfig, None, overrides), clip_sources=registry).fit()
    assert not Path("PWNED").exists()


def test_schedules():
    lr = WarmupConstantCooldown(lr=1.0, total_steps=10, warmup_steps=4, start_lr=0.2, cooldown_steps=3, final_lr=0.1)
    assert [round(lr(s), 4) for s in range(10)] == [0.4, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0, 0.7, 0.4, 0.1]
    weight = LinearWarmupHold(0.5, start=10, end=20)
    assert [weight(s) for s in (0, 9, 10, 15, 20, 1000)] == [0.0, 0.0, 0.0, 0.25, 0.5, 0.5]
    assert LinearRamp(0.99, 1.0, 100)(50) == pytest.approx(0.995)
    with pytest.raises(ValueError):
        WarmupConstantCooldown(lr=1.0, total_steps=5, warmup_steps=4, cooldown_steps=2)


def test_weight_decay_is_off_for_biases_and_norms(data, tmp_path):
    trainer = Pretrainer(load_config(PretrainConfig, None, micro_overrides(data, tmp_path)))
    decay, no_decay = param_groups(trainer.student, 0.04)
    names = {id(p): n for n, p in trainer.student.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.04 and no_decay["weight_decay"] == 0.0
    assert "encoder.blocks.0.attn.qkv.weight" in decayed and "predictor.mask_tokens.0" in decayed
    assert not any(n.endswith(".bias") or "norm" in n for n in decayed)
    assert {names[id(p)] for p in no_decay["params"]} >= {"encoder.blocks.0.norm1.weight", "predictor.predictor_proj.bias"}
