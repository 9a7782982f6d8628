"""Fault catalog, inputs (README "Fault catalog"): every bad checkpoint, data file, image, video or
setting is one line naming the file or the flag, with exit status 2, through the real `vjepa-wm`
entry point where a user meets it; a malformed episode is skipped and counted by its reason. The
checkpoints and data are written by the tests in the real formats (tiny random models)."""
from __future__ import annotations

import json
import logging
import pickle
import shutil

import cv2
import h5py
import numpy as np
import pytest
import torch
from test_planner_world_model import tiny_model
from test_train_ac import blob_data  # noqa: F401 (a fixture)

from helpers import SHIPPED_CONFIGS
from test_droid_raw import write_episode
from vjepa_wm import cli
from vjepa_wm.cli import main
from vjepa_wm.datasets.droid.common import DroidConfig, DroidError
from vjepa_wm.datasets.droid.raw_reader import DroidRawDataset
from vjepa_wm.datasets.droid.rlds import DroidRLDSDataset
from vjepa_wm.datasets.moving_shapes import moving_shapes_clip
from vjepa_wm.datasets.video_io import write_mp4
from vjepa_wm.world_model.checkpoints import (
    CheckpointError,
    export_encoder,
    load_encoder,
    load_predictor,
    load_world_model,
    save_encoder,
    save_predictor,
    save_world_model,
)
from vjepa_wm.world_model.predictor import Predictor, predictor_config
from vjepa_wm.world_model.training.train_state import FORMAT, load_train_state
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config

STATE = "0.5,0,0.3,3,0,0,0"  # a plausible Franka state for `plan`


def one_line_error(argv: list[str], capsys) -> str:
    """Run the CLI; it must exit 2 with exactly one stderr line ``vjepa-wm CMD: error: ...``; returns it."""
    capsys.readouterr()
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"vjepa-wm {argv[0]}: error: "), lines
    return lines[0]


class Exploit:
    """Unpickling this would create a marker file: a stand-in for arbitrary code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A micro encoder and world model in our format, a malicious .pt and two 32 px images."""
    folder = tmp_path_factory.mktemp("faults")
    torch.manual_seed(0)
    save_encoder(VisionTransformer(encoder_config("micro", "2.1", img_size=32)), folder / "encoder")
    save_world_model(tiny_model(), folder / "wm")
    torch.save({"target_encoder": {"x": Exploit(str(folder / "pwned"))}}, folder / "evil.pt")
    for name in ("now", "goal"):
        cv2.imwrite(str(folder / f"{name}.png"), np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return folder


# ----------------------------------------------------------------------------- malicious and foreign checkpoints


@pytest.mark.parametrize("flags", [
    ["encode", "{f}/now.png", "--model", "{evil}", "--out", "{f}/x.npy"],
    ["convert", "{evil}", "{f}/converted"],
    ["plan", "--model", "{evil}", "--image", "{f}/now.png", "--goal", "{f}/goal.png", "--state", STATE],
    ["eval-sim", "--model", "{evil}", "--episodes", "1"],
    ["train-ac", "--data.path={data}", "--model.encoder={evil}", "--run.out_dir={f}/run_encoder"],
    ["train-ac", "--data.path={data}", "--model.init={evil}", "--run.out_dir={f}/run_init"],
], ids=["encode --model", "convert", "plan --model", "eval-sim --model", "train-ac --model.encoder", "train-ac --model.init"])
def test_a_pickle_that_would_run_code_is_refused_through_every_checkpoint_flag(flags, files, blob_data, capsys):  # noqa: F811
    argv = [flag.format(f=files, evil=files / "evil.pt", data=blob_data) for flag in flags]
    err = one_line_error(argv, capsys)
    assert f"{files / 'evil.pt'}: refused: its pickle asks for" in err and "would run code" in err
    assert not (files / "pwned").exists()


@pytest.mark.parametrize("loader", [load_encoder, load_predictor, load_world_model, load_train_state],
                         ids=lambda f: f.__name__)
def test_a_pickle_that_would_run_code_is_refused_by_every_loader(loader, files):
    with pytest.raises(CheckpointError, match="refused: its pickle asks for .*open"):
        loader(files / "evil.pt")
    assert not (files / "pwned").exists()


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_a_pickle_that_would_run_code_is_refused_whatever_its_protocol(protocol, tmp_path):
    """torch names the refused global for protocols 1-3 only; at 0, 4 and 5 it stops at an opcode it
    does not read, so the refusal must come from probing the pickle itself."""
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"target_encoder": Exploit(str(tmp_path / "pwned"))}, handle, protocol=protocol)
    with pytest.raises(CheckpointError, match="refused: its pickle asks for io.open"):
        load_encoder(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_random_bytes_named_pt_are_not_a_checkpoint_rather_than_a_malicious_pickle(files, tmp_path, capsys):
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    err = one_line_error(["encode", str(files / "now.png"), "--model", str(tmp_path / "random.pt"), "--out", str(tmp_path / "x.npy")],
                         capsys)
    assert f"{tmp_path / 'random.pt'}: not a PyTorch checkpoint" in err and "refused" not in err


# ----------------------------------------------------------------------------- nonsense in our checkpoints


def edited_copy(source, target, edit):
    """A copy of checkpoint directory `source` whose config.json went through `edit(meta)`."""
    shutil.copytree(source, target)
    meta = json.loads((target / "config.json").read_text())
    edit(meta)
    (target / "config.json").write_text(json.dumps(meta))
    return target


@pytest.mark.parametrize("command,checkpoint,where,value,message", [
    ("encode", "encoder", ["depth"], -1, "depth must be a positive integer, got -1"),
    ("encode", "encoder", ["num_heads"], 0, "num_heads must be a positive integer, got 0"),
    ("encode", "encoder", ["embed_dim"], 97, "embed_dim 97 is not divisible by num_heads 3"),
    ("encode", "encoder", ["depth"], "four", "depth must be a positive integer, got 'four'"),
    ("encode", "encoder", ["version"], "3", "version '3' is not one of '2', '2.1'"),
    ("eval-sim", "wm", ["predictor", "depth"], -1, "depth must be a positive integer, got -1"),
    ("eval-sim", "wm", ["encoder", "num_heads"], 0, "num_heads must be a positive integer, got 0"),
    ("eval-sim", "wm", ["predictor", "grid"], [0, 2], "grid must be two positive integers"),
    ("eval-sim", "wm", ["img_size"], "big", "bad world-model config"),
    ("eval-sim", "wm", ["embodiment"], {"name": "boat"}, "bad world-model config"),
], ids=lambda v: str(v) if not isinstance(v, list) else ".".join(map(str, v)))
def test_nonsense_in_a_checkpoint_config_json_is_one_line_naming_the_file(command, checkpoint, where, value, message, files,
                                                                          tmp_path, capsys):
    def edit(meta):
        node = meta["config"]
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value

    bad = edited_copy(files / checkpoint, tmp_path / "bad", edit)
    argv = (["encode", str(files / "now.png"), "--model", str(bad), "--out", str(tmp_path / "x.npy")] if command == "encode"
            else ["eval-sim", "--model", str(bad), "--episodes", "1"])
    err = one_line_error(argv, capsys)
    assert f"{bad / 'config.json'}: bad " in err and message in err


def test_nonsense_in_a_predictor_config_json_is_named(tmp_path):
    save_predictor(Predictor(predictor_config("2", 96, embed_dim=48, num_heads=4, depth=1)), tmp_path / "pred")
    bad = edited_copy(tmp_path / "pred", tmp_path / "bad", lambda meta: meta["config"].update(num_mask_tokens=0))
    with pytest.raises(CheckpointError, match=r"bad/config.json: bad predictor config \(num_mask_tokens must be a positive"):
        load_predictor(bad)


@pytest.mark.parametrize("version,message", [("abc", "format_version 'abc' is not a non-negative integer"),
                                             (None, "format_version None is not a non-negative integer"),
                                             (99, "written by a newer vjepa_wm (format 99")])
def test_an_unreadable_or_newer_format_version_is_named(version, message, files, tmp_path, capsys):
    bad = edited_copy(files / "encoder", tmp_path / "bad", lambda meta: meta.update(format_version=version))
    err = one_line_error(["encode", str(files / "now.png"), "--model", str(bad), "--out", str(tmp_path / "x.npy")], capsys)
    assert f"{bad / 'config.json'}: {message}" in err


def test_an_unreadable_training_state_format_version_is_named(tmp_path):
    torch.save({"format": FORMAT, "format_version": "abc", "step": 1}, tmp_path / "step_00000001.pt")
    with pytest.raises(CheckpointError, match="step_00000001.pt: format_version 'abc'"):
        load_train_state(tmp_path / "step_00000001.pt")


# ----------------------------------------------------------------------------- non-finite weights


def poisoned_encoder() -> VisionTransformer:
    encoder = VisionTransformer(encoder_config("micro", "2", img_size=32))
    with torch.no_grad():
        encoder.blocks[1].attn.proj.weight[0, 3] = float("nan")
    return encoder


def official_ac_file(path):
    """A V-JEPA 2-AC .pt as published (module. prefixes) whose predictor holds an inf."""
    model = tiny_model()
    with torch.no_grad():
        model.predictor.predictor_blocks[0].mlp.fc1.bias[2] = float("inf")
    encoder = {f"module.backbone.{k}": v for k, v in model.encoder.state_dict().items()}
    torch.save({"encoder": encoder, "target_encoder": encoder,
                "predictor": {f"module.{k}": v for k, v in model.predictor.state_dict().items()}}, path)
    return path


def ours_world_model(path):
    model = tiny_model()
    with torch.no_grad():
        model.encoder.blocks[0].norm1.weight[5] = float("nan")
    return save_world_model(model, path)


@pytest.mark.parametrize("make,argv,tensor", [
    (lambda p: save_encoder(poisoned_encoder(), p / "enc"), ["encode", "{now}", "--model", "{ckpt}", "--out", "{tmp}/x.npy"],
     "blocks.1.attn.proj.weight"),
    (lambda p: export_encoder(poisoned_encoder(), p / "hf", "hf"), ["encode", "{now}", "--model", "{ckpt}", "--out", "{tmp}/x.npy"],
     "blocks.1.attn.proj.weight"),  # named in the official layout the Hugging Face keys are renamed to
    (lambda p: export_encoder(poisoned_encoder(), p / "enc.pt", "official"), ["convert", "{ckpt}", "{tmp}/out"],
     "blocks.1.attn.proj.weight"),
    (lambda p: ours_world_model(p / "wm"), ["eval-sim", "--model", "{ckpt}", "--episodes", "1"], "blocks.0.norm1.weight"),
    (lambda p: official_ac_file(p / "ac.pt"), ["eval-sim", "--model", "{ckpt}", "--episodes", "1"],
     "predictor_blocks.0.mlp.fc1.bias"),
], ids=["ours encoder", "hf encoder", "official encoder", "ours world model", "official 2-AC"])
def test_non_finite_weights_are_refused_at_load_naming_the_file_and_the_first_bad_tensor(make, argv, tensor, files, tmp_path,
                                                                                        capsys):
    checkpoint = make(tmp_path)
    err = one_line_error([a.format(now=files / "now.png", ckpt=checkpoint, tmp=tmp_path) for a in argv], capsys)
    assert f"{checkpoint}" in err and "weights are not finite" in err and tensor in err.split("not finite:")[1]


def test_non_finite_predictor_weights_are_refused_at_load(tmp_path):
    predictor = Predictor(predictor_config("2", 96, embed_dim=48, num_heads=4, depth=1))
    with torch.no_grad():
        predictor.predictor_proj.weight[0, 0] = float("-inf")
    save_predictor(predictor, tmp_path / "pred")
    with pytest.raises(CheckpointError, match="pred: weights are not finite: predictor_proj.weight holds 1 NaN/inf"):
        load_predictor(tmp_path / "pred")


# ----------------------------------------------------------------------------- images and videos


def broken_file(kind: str, folder):
    """A file of `kind` as a user might hand it over: cut short, or not what its name says."""
    path = folder / {"truncated png": "x.png", "truncated jpeg": "x.jpg", "text named png": "notes.png",
                     "random bytes mp4": "noise.mp4", "truncated mp4": "clip.mp4"}[kind]
    if kind in ("truncated png", "truncated jpeg"):
        cv2.imwrite(str(path), moving_shapes_clip(num_frames=1, size=48)[0])
    elif kind == "truncated mp4":
        write_mp4(path, moving_shapes_clip(num_frames=8, size=48), fps=4)
    elif kind == "text named png":
        path.write_text("not an image")
    else:
        path.write_bytes(np.random.default_rng(0).bytes(3000))
    if kind.startswith("truncated"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("kind,message", [("truncated png", "truncated PNG (no IEND chunk)"), ("truncated jpeg", "truncated JPEG"),
                                          ("text named png", "not a readable image"),
                                          ("random bytes mp4", "cannot open this video"),
                                          ("truncated mp4", "cannot open this video")])
def test_a_broken_image_or_video_is_one_line_naming_the_file(kind, message, files, tmp_path, capfd):
    """capfd, not capsys: what OpenCV's C libraries print (FFmpeg, libjpeg) must not add lines either."""
    broken = broken_file(kind, tmp_path)
    capfd.readouterr()
    assert main(["encode", str(broken), "--model", str(files / "encoder"), "--frames", "2", "--out", str(tmp_path / "x.npy")]) == 2
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"vjepa-wm encode: error: {broken}: ") and message in lines[0], lines


# ----------------------------------------------------------------------------- episodes


def test_malformed_raw_episodes_are_skipped_and_counted_by_reason(tmp_path, caplog):
    good, _ = write_episode(tmp_path, 0)
    broken = {}
    for seed, (reason, label) in enumerate([("bad_metadata", "list"), ("bad_metadata", "string"), ("bad_fields", "strings"),
                                            ("bad_fields", "group")], start=1):
        path, _ = write_episode(tmp_path, seed)
        broken[label] = path
        if label in ("list", "string"):
            next(path.glob("metadata_*.json")).write_text(json.dumps([1, 2] if label == "list" else "hello"))
            continue
        with h5py.File(path / "trajectory.h5", "r+") as h5:
            rows = len(h5["observation/robot_state/cartesian_position"])
            if label == "strings":
                del h5["observation/robot_state/cartesian_position"]
                h5["observation/robot_state/cartesian_position"] = np.array([b"0.1 0.2"] * rows)
            else:
                del h5["observation/robot_state/gripper_position"]
                h5.create_group("observation/robot_state/gripper_position")
    dataset = DroidRawDataset([good, *broken.values()], DroidConfig(shuffle=False, success_only=False))
    with caplog.at_level(logging.DEBUG, logger="datasets.droid"):
        clips = list(dataset)
    assert [clip.episode_id for clip in clips] == [str(good)]
    assert dict(dataset.stats.skipped) == {"bad_metadata": 2, "bad_fields": 2}
    skipped = "\n".join(r.getMessage() for r in caplog.records if "skipped episode" in r.getMessage())
    for label, path in broken.items():  # every skip names the file that is broken
        assert str(next(path.glob("metadata_*.json")) if label in ("list", "string") else path / "trajectory.h5") in skipped


@pytest.mark.parametrize("info", ["[1, 2]", '{"splits": "train"}', '{"splits": [{"name": "train", "shardLengths": ["many"]}]}'],
                         ids=["a list", "splits as text", "shard lengths as text"])
def test_malformed_rlds_metadata_is_one_line_naming_the_folder(info, tmp_path):
    (tmp_path / "dataset_info.json").write_text(info)
    (tmp_path / "features.json").write_text("{}")
    with pytest.raises(DroidError, match=f"^{tmp_path}: ") as err:
        DroidRLDSDataset(tmp_path)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize("flag,message", [
    ("--run.save_every=0", "run.save_every must be a positive integer, got 0"),
    ("--run.log_every=0", "run.log_every must be a positive integer"),
    ("--run.val_every=0", "run.val_every must be a positive integer"),
    ("--run.val_batches=0", "run.val_batches must be a positive integer"),
    ("--run.keep_checkpoints=0", "run.keep_checkpoints must be a positive integer"),
    ("--run.batch_size=0", "run.batch_size must be a positive integer"),
    ("--run.steps=0", "run.steps must be a positive integer"),
    ("--data.workers=-1", "data.workers must be an integer of at least 0"),
    ("--optim.lr=nan", "optim.lr must be a finite number, got nan"),
    ("--optim.start_lr=.inf", "optim.start_lr must be a finite number, got inf"),
    ("--optim.final_lr=-1e-4", "optim.final_lr must be at least 0"),
    ("--optim.betas=[0.9,1.0]", "optim.betas must be two numbers in [0, 1)"),
    ("--optim.eps=0", "optim.eps must be above 0"),
    ("--model.img_size=0", "model.img_size must be a positive integer, got 0"),
    ("--model.img_size=100", "model.img_size must be a multiple of the patch size 16"),
    ("--run.device=banana", "run.device: 'banana' is not a device"),
])
def test_bad_train_ac_settings_are_one_line_naming_the_flag(flag, message, tmp_path, capsys):
    err = one_line_error(["train-ac", "--data.path=unused", "--model.encoder=unused", f"--run.out_dir={tmp_path}", flag], capsys)
    assert message in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize("flag,message", [
    ("--optim.lr=nan", "optim.lr must be a finite number, got nan"),
    ("--optim.betas=[1.5,0.9]", "optim.betas must be two numbers in [0, 1)"),
    ("--optim.ema=[0.99,1.5]", "optim.ema must be momenta in [0, 1]"),
    ("--run.device=banana", "run.device: 'banana' is not a device"),
])
def test_bad_pretrain_settings_are_one_line_naming_the_flag(flag, message, tmp_path, capsys):
    err = one_line_error(["pretrain", "--config", "tiny_sim", f"--run.out_dir={tmp_path}", flag], capsys)
    assert message in err


@pytest.mark.parametrize("how", ["flag", "yaml"])
@pytest.mark.parametrize("entry", ["{factory: 'os:system', path: 'touch PWNED'}", "{source: 'os:system', path: 'touch PWNED'}"])
def test_a_config_that_names_code_to_run_runs_nothing(entry, how, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if how == "yaml":
        import yaml

        recipe = yaml.safe_load((SHIPPED_CONFIGS / "pretrain" / "tiny_sim.yaml").read_text())
        recipe["data"]["episodes"] = [yaml.safe_load(entry)]
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(recipe))
        args = ["pretrain", "--config", str(tmp_path / "run.yaml")]
    else:
        args = ["pretrain", "--config", "tiny_sim", f"--data.episodes=[{entry}]"]
    err = one_line_error([*args, f"--run.out_dir={tmp_path / 'run'}"], capsys)
    assert ("unknown config key data.episodes[0].factory" in err) if "factory" in entry else ("unknown clip source 'os:system'" in err)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("flags,message", [
    (["--crop", "-16"], "--crop must be a positive integer, got -16"),
    (["--crop", "20"], "--crop 20 is not a multiple of the encoder's patch size 16"),
    (["--frames", "0"], "--frames must be a positive integer, got 0"),
    (["--fps", "0"], "--fps must be a positive number"),
    (["--fps", "nan"], "--fps must be a positive number"),
    (["--max-clips", "0"], "--max-clips must be a positive integer"),
    (["--device", "banana"], "--device: 'banana' is not a device"),
])
def test_bad_encode_settings_are_one_line_naming_the_flag(flags, message, files, tmp_path, capsys):
    err = one_line_error(["encode", str(files / "now.png"), "--model", str(files / "encoder"), "--out", str(tmp_path / "x.npy"),
                          *flags], capsys)
    assert message in err


@pytest.mark.parametrize("command", ["demo", "eval-sim"])
def test_zero_episodes_is_one_line_naming_the_flag(command, tmp_path, capsys):
    assert "episodes must be at least 1, got 0" in one_line_error([command, "--episodes", "0", "--out", str(tmp_path)], capsys)


@pytest.mark.parametrize("argv,message", [(["--bogus"], "unrecognized arguments: --bogus"), ([], "a command is required"),
                                          (["nosuchcommand"], "invalid choice: 'nosuchcommand'")],
                         ids=["unknown option", "no command", "unknown command"])
def test_an_unknown_option_or_command_is_usage_and_one_error_line(argv, message, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and lines[0].startswith("usage: vjepa-wm") and lines[-1].startswith("vjepa-wm: error: ")
    assert message in lines[-1] and len(lines) <= 3  # argparse wraps a long usage line at most once


def test_an_arithmetic_error_escaping_a_command_is_one_line(monkeypatch, files, tmp_path, capsys):
    def overflow(*args, **kwargs):
        raise FloatingPointError("overflow encountered in exp")

    monkeypatch.setattr(cli.convert, "run", overflow)
    err = one_line_error(["convert", str(files / "encoder"), str(tmp_path / "out")], capsys)
    assert err == "vjepa-wm convert: error: FloatingPointError: overflow encountered in exp"
