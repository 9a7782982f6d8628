"""Fault catalog, runs and latent caches: one test per fault, each through the real `vjepa-wm` entry
point where the user would meet it. A run folder holds one run (``run.json``); what the run did not
write is never deleted or overwritten; a latent cache built for other clips is never reused; a run
killed with SIGKILL resumes to bit-identical weights."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from datetime import datetime

import pytest
import torch
from test_train_ac import blob_episode, predictor_weights, train_args, write_blob_data

from test_pretrain import make_data, micro_overrides
from vjepa_wm.cli import main
from vjepa_wm.datasets.droid.raw_writer import droid_episode_dir, write_droid_raw_episode
from vjepa_wm.world_model.checkpoints import load_encoder, load_world_model, save_encoder
from vjepa_wm.world_model.configuration import load_config
from vjepa_wm.world_model.pretraining.config import PretrainConfig
from vjepa_wm.world_model.pretraining.trainer import Pretrainer
from vjepa_wm.world_model.training.train_state import load_train_state
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config


def snapshot(root) -> dict[str, bytes]:
    """Every file under `root`, by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def refused(args, capsys) -> str:
    """Run the CLI, expect the one-line error (exit 2); return the line."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vjepa-wm train-ac: error: "), err
    return err


@pytest.fixture(scope="module")
def blob_data(tmp_path_factory):
    return write_blob_data(tmp_path_factory.mktemp("droid"))


# ----------------------------------------------------------------------------- run folders


def test_resume_into_a_folder_of_another_run_is_refused(blob_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(blob_data, out, 10)) == 0
    before = snapshot(out)
    torch.manual_seed(7)
    save_encoder(VisionTransformer(encoder_config("micro", "2.1", depth=2)), tmp_path / "other_encoder")
    err = refused(train_args(blob_data, out, 10, [f"--model.encoder={tmp_path / 'other_encoder'}"]), capsys)
    assert "holds another run (encoder, model.encoder" in err and "--run.out_dir" in err and "--run.resume_changed" in err
    assert snapshot(out) == before  # checkpoints, config.yaml, world_model/ and run.json untouched


def test_a_changed_learning_rate_is_refused_unless_resume_changed_lists_it(blob_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(blob_data, out, 10)) == 0
    before = snapshot(out)
    longer = ["--run.steps=20", "--optim.lr=1e-3"]
    err = refused(train_args(blob_data, out, 10, longer), capsys)
    assert "optim.lr 0.002 -> 0.001, run.steps 10 -> 20" in err and "--run.resume_changed='[optim.lr, run.steps]'" in err
    err = refused(train_args(blob_data, out, 10, [*longer, "--run.resume_changed=[optim.lr]"]), capsys)  # not all it changed
    assert "is not what changed" in err
    assert snapshot(out) == before
    assert main(train_args(blob_data, out, 10, [*longer, "--run.resume_changed=[optim.lr, run.steps]"])) == 0
    resumed = load_train_state(out / "checkpoints" / "step_00000020.pt")
    assert resumed["config"]["optim"]["lr"] == 1e-3  # continued from step 10 with the new rate, on purpose
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == ["step_00000010.pt", "step_00000020.pt"]
    assert main(train_args(blob_data, out, 10, longer)) == 0  # the accepted change is now the run's record


def test_settings_that_do_not_change_what_is_computed_do_not_make_another_run(blob_data, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(blob_data, out, 10)) == 0
    bookkeeping = ["--run.log_every=1", "--run.save_every=3", "--run.keep_checkpoints=5", "--run.device=cpu", "--run.val_every=2",
                   "--run.val_batches=1", "--run.activation_checkpointing=true", "--data.workers=1", "--run.resume_changed=[]"]
    assert main(train_args(blob_data, out, 10, bookkeeping)) == 0  # resumed at its end: nothing refused, nothing trained
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == ["step_00000010.pt"]


def test_a_config_key_added_since_the_run_began_counts_only_when_set(blob_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(blob_data, out, 10)) == 0
    record = json.loads((out / "run.json").read_text())
    del record["settings"]["optim.grad_clip"]  # as if the run began before the key existed
    (out / "run.json").write_text(json.dumps(record))
    assert main(train_args(blob_data, out, 10)) == 0  # left at its default: the same run
    assert "optim.grad_clip 0.0 -> 1.0" in refused(train_args(blob_data, out, 10, ["--optim.grad_clip=1.0"]), capsys)


def test_a_foreign_config_yaml_is_refused_and_kept(blob_data, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("my own notes, not a run's config\n")
    err = refused(train_args(blob_data, out, 10), capsys)
    assert f"{out / 'config.yaml'}: not written by this run" in err
    assert snapshot(out) == {"config.yaml": b"my own notes, not a run's config\n"}  # nothing written beside it either


def test_foreign_files_inside_world_model_are_kept(blob_data, tmp_path):
    out = tmp_path / "run"
    (out / "world_model").mkdir(parents=True)
    (out / "world_model" / "NOTES.md").write_text("why this model exists\n")
    (out / "notes.txt").write_text("a user's file\n")
    assert main(train_args(blob_data, out, 10)) == 0
    assert main(train_args(blob_data, out, 10)) == 0  # resumed at the end: the export is written again
    assert (out / "world_model" / "NOTES.md").read_text() == "why this model exists\n"
    assert (out / "notes.txt").read_text() == "a user's file\n"
    assert load_world_model(out / "world_model").img_size == 32


def test_a_foreign_file_where_the_export_writes_is_refused_before_training(blob_data, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "world_model").mkdir(parents=True)
    (out / "world_model" / "model.safetensors").write_bytes(b"someone's weights")
    err = refused(train_args(blob_data, out, 10), capsys)
    assert f"{out / 'world_model' / 'model.safetensors'}: not written by this run" in err
    assert snapshot(out) == {"world_model/model.safetensors": b"someone's weights"}


def test_pretrain_keeps_foreign_files_in_encoder_and_predictor(tmp_path):
    data = make_data(tmp_path / "data", videos=2, images=0, broken=False)
    out = tmp_path / "run"
    for name in ("encoder", "predictor"):
        (out / name).mkdir(parents=True)
        (out / name / "NOTES.md").write_text(f"notes on the {name}\n")
    config = load_config(PretrainConfig, None, micro_overrides(data, out, phases=[{"steps": 2, "frames": 4, "crop": 64, "batch_size": 2}]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Pretrainer(config).fit()
    for name in ("encoder", "predictor"):
        assert (out / name / "NOTES.md").read_text() == f"notes on the {name}\n"
    assert load_encoder(result.encoder_dir).config.version == "2.1"


def test_pruning_never_deletes_foreign_checkpoint_named_files(blob_data, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "step_00000001.pt").write_bytes(b"not ours")
    (out / "checkpoints" / "step_00000010.pt").write_bytes(b"not ours either")
    assert main(train_args(blob_data, out, 20, ["--run.save_every=5", "--run.keep_checkpoints=1"])) == 0
    checkpoints = out / "checkpoints"
    assert (checkpoints / "step_00000001.pt").read_bytes() == b"not ours"
    assert (checkpoints / "step_00000010.pt").read_bytes() == b"not ours either"
    assert sorted(p.name for p in checkpoints.glob("*.pt")) == ["step_00000001.pt", "step_00000010.pt", "step_00000020.pt"]
    assert main(train_args(blob_data, out, 20, ["--run.save_every=5", "--run.keep_checkpoints=1"])) == 0  # resumes from its own


def test_a_training_checkpoint_with_nan_weights_is_refused_at_resume(blob_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(blob_data, out, 10)) == 0
    path = out / "checkpoints" / "step_00000010.pt"
    state = torch.load(path, weights_only=True)
    name = next(iter(state["predictor"]))
    state["predictor"][name] = torch.full_like(state["predictor"][name], float("nan"))
    torch.save(state, path)
    before = snapshot(out)
    err = refused(train_args(blob_data, out, 10, ["--run.steps=20", "--run.resume_changed=[run.steps]"]), capsys)
    assert f"step_00000010.pt [predictor]: weights are not finite: {name}" in err
    assert snapshot(out) == before


# ----------------------------------------------------------------------------- latent caches


@pytest.fixture(scope="module")
def built_cache(blob_data, tmp_path_factory):
    """A latent cache filled from the four blob episodes (frames_per_clip 4, row_stride 4)."""
    cache = tmp_path_factory.mktemp("cache") / "latents"
    assert main(train_args(blob_data, tmp_path_factory.mktemp("cached_run"), 2, [f"--data.cache_dir={cache}", "--run.save_every=2",
                                                                                 "--optim.warmup_steps=1", "--optim.decay_steps=1"])) == 0
    return cache


def cache_refusal(data, cache, tmp_path, capsys, extra) -> str:
    before = snapshot(cache)
    err = refused(train_args(data, tmp_path / "run", 10, [f"--data.cache_dir={cache}", *extra]), capsys)
    assert "built for other clips" in err and "use another data.cache_dir" in err
    assert snapshot(cache) == before  # never rebuilt in place, never deleted
    return err


def test_a_latent_cache_of_other_episodes_is_refused(blob_data, built_cache, tmp_path, capsys):
    fewer = tmp_path / "one_episode"
    frames, cartesian, gripper = blob_episode(0)
    write_droid_raw_episode(droid_episode_dir(fewer, success=True, start=datetime(2024, 5, 1, 9, 0)),
                            exterior_frames={"10000001": frames}, cartesian_position=cartesian, gripper_position=gripper, success=True)
    err = cache_refusal(fewer, built_cache, tmp_path, capsys, [f"--model.encoder={blob_data / 'encoder'}"])
    assert "episodes (4 -> 1 paths)" in err


def test_a_latent_cache_of_another_clip_length_is_refused(blob_data, built_cache, tmp_path, capsys):
    assert "data.frames_per_clip 4 -> 3" in cache_refusal(blob_data, built_cache, tmp_path, capsys, ["--data.frames_per_clip=3"])


def test_a_latent_cache_of_another_row_stride_is_refused(blob_data, built_cache, tmp_path, capsys):
    assert "data.row_stride 4 -> 2" in cache_refusal(blob_data, built_cache, tmp_path, capsys, ["--data.row_stride=2"])


def test_a_truncated_cache_shard_is_named(blob_data, built_cache, tmp_path, capsys):
    cache = tmp_path / "copy"
    shutil.copytree(built_cache, cache)
    shard = cache / "train" / "shard_000_00000.safetensors"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    err = refused(train_args(blob_data, tmp_path / "run", 10, [f"--data.cache_dir={cache}"]), capsys)
    assert f"{shard}: unreadable cache shard" in err


# ----------------------------------------------------------------------------- exact resume


@pytest.fixture
def one_thread():
    """The killed run is another process: both sides compute on one thread, so their sums agree bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_kill_9_mid_run_then_resume_is_bit_identical(blob_data, tmp_path, one_thread):
    args = lambda out: train_args(blob_data, out, 20, ["--run.save_every=5"])  # noqa: E731
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "vjepa_wm", *args(killed)], stdout=log, stderr=log, env=env, cwd=tmp_path)
    first = killed / "checkpoints" / "step_00000005.pt"
    deadline = time.monotonic() + 120
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    assert first.exists() and not (killed / "world_model").exists()  # killed mid-run, after its first checkpoint
    assert main(args(killed)) == 0
    assert main(args(tmp_path / "straight")) == 0
    straight, resumed = predictor_weights(tmp_path / "straight"), predictor_weights(killed)
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[name], resumed[name]) for name in straight), [n for n in straight if not torch.equal(straight[n], resumed[n])]
