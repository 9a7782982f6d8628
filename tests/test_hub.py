"""Hugging Face hub ids, sharded safetensors, hub-ready export and eval provenance.

* hub ids resolve through `huggingface_hub` from a cache the tests write in the real layout
  (``models--owner--name/{blobs, refs/main, snapshots/<commit>/...}``, checked by huggingface_hub's
  own `scan_cache_dir`), offline; `vjepa-wm encode --model owner/name` runs from it in a process
  whose HF_HOME is that cache, and its features match transformers' VJEPA2Model;
* sharded checkpoints written by transformers' ``save_pretrained(max_shard_size=...)`` (the
  independent writer) and one of ours split by hand load exactly as the single file does;
* `export-hub` output reloads, and huggingface_hub's ModelCard parser reads its front matter;
* eval JSONs carry provenance whose model hash follows the weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import perturb_norms
from vjepa_wm.cli import main
from vjepa_wm.embodiments import Franka
from vjepa_wm.world_model.ac_predictor import ACPredictor, ac_predictor_config
from vjepa_wm.world_model.checkpoints import (
    CheckpointError,
    load_encoder,
    load_predictor,
    load_world_model,
    resolve_checkpoint,
    save_encoder,
    save_world_model,
)
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config
from vjepa_wm.world_model.world_model import WorldModel

COMMIT = "0123456789abcdef0123456789abcdef01234567"


# ----------------------------------------------------------------------------- builders


def hf_vjepa2(folder: Path, **save):
    """A random-weight transformers VJEPA2Model (crop 32), saved with `save_pretrained`."""
    from transformers import VJEPA2Config, VJEPA2Model

    config = VJEPA2Config(hidden_size=96, num_hidden_layers=2, num_attention_heads=3, crop_size=32, frames_per_clip=4,
                          pred_hidden_size=32, pred_num_hidden_layers=1, pred_num_attention_heads=2,
                          attn_implementation="eager")
    model = perturb_norms(VJEPA2Model(config))
    model.save_pretrained(folder, **save)
    return model


def write_cache_entry(cache: Path, repo_id: str, source: Path, commit: str = COMMIT, under: str = "") -> Path:
    """Put the files of `source` into a hub cache as huggingface_hub lays it out: content in
    ``blobs/<sha256>``, relative symlinks to them in ``snapshots/<commit>/``, ``refs/main``."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit / under
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / path.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return repo / "snapshots" / commit


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache that huggingface_hub uses in this process, offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def tiny_world_model(seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    encoder = VisionTransformer(encoder_config("micro", "2.1", img_size=32))
    return WorldModel(encoder, ACPredictor(ac_predictor_config("micro", 96, img_size=32)), 32, Franka()).eval()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A tiny world model in our format, written once; tests copy it before changing anything."""
    return save_world_model(tiny_world_model(), tmp_path_factory.mktemp("model") / "wm")


@pytest.fixture
def model_dir(tmp_path, saved_model) -> Path:
    return Path(shutil.copytree(saved_model, tmp_path / "wm"))


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


# ----------------------------------------------------------------------------- hub ids


def test_a_hub_id_resolves_from_the_cache_offline(tmp_path, hub_cache):
    from huggingface_hub import scan_cache_dir

    hf_vjepa2(tmp_path / "hf")
    snapshot = write_cache_entry(hub_cache, "owner/name", tmp_path / "hf")
    write_cache_entry(hub_cache, "owner/multi", tmp_path / "hf", under="encoder")
    cached = {repo.repo_id: [r.commit_hash for r in repo.revisions] for repo in scan_cache_dir(hub_cache).repos}
    assert cached == {"owner/name": [COMMIT], "owner/multi": [COMMIT]}  # huggingface_hub reads the layout as its own
    for text in ("owner/name", "hf://owner/name", f"owner/name@{COMMIT}", "hf://models/owner/name@main"):
        found = resolve_checkpoint(text)
        assert (found.path, found.hub_id, found.revision) == (snapshot, "owner/name", COMMIT), text
    found = resolve_checkpoint("hf://owner/multi/encoder")
    assert found.path == hub_cache / "models--owner--multi" / "snapshots" / COMMIT / "encoder" and found.path_in_repo == "encoder"
    local = load_encoder(tmp_path / "hf")
    assert same_weights(load_encoder("owner/name"), local) and same_weights(load_encoder("hf://owner/multi/encoder"), local)
    assert same_weights(load_predictor("owner/name"), load_predictor(tmp_path / "hf"))


def test_an_existing_local_path_wins_over_the_hub_id_it_looks_like(tmp_path, hub_cache, monkeypatch):
    hf_vjepa2(tmp_path / "hf")
    write_cache_entry(hub_cache, "owner/name", tmp_path / "hf")
    ours = VisionTransformer(encoder_config("micro", "2.1"))
    monkeypatch.chdir(tmp_path)
    save_encoder(ours, Path("owner/name"))
    assert resolve_checkpoint("owner/name").hub_id is None
    assert same_weights(load_encoder("owner/name"), ours)
    assert resolve_checkpoint("hf://owner/name").hub_id == "owner/name"  # hf:// always means the hub


def test_a_miss_offline_names_the_id_what_was_tried_and_how_to_fetch_it(tmp_path, hub_cache, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_encoder("facebook/vjepa2-vitl-fpc64-256")
    message = str(err.value)
    assert message.startswith("facebook/vjepa2-vitl-fpc64-256: no such local file or directory, and hf://facebook/")
    assert "is not in the Hugging Face cache" in message and "HF_HUB_OFFLINE is set" in message
    assert "`hf download facebook/vjepa2-vitl-fpc64-256`" in message and "\n" not in message
    with pytest.raises(CheckpointError, match=r"`hf download owner/name --revision v2`"):
        resolve_checkpoint("hf://owner/name@v2")
    with pytest.raises(CheckpointError, match="names a Hugging Face dataset, not a model repository"):
        resolve_checkpoint("hf://datasets/lerobot/droid_1.0.1")
    with pytest.raises(CheckpointError, match="not a valid Hugging Face model id"):
        resolve_checkpoint("hf://owner/bad--name")
    # Not shaped like an id, or named like a weight file: a plain missing path, never a hub lookup.
    with pytest.raises(CheckpointError, match=r"^runs/a/world_model: no such file or directory$"):
        load_world_model("runs/a/world_model")
    with pytest.raises(CheckpointError, match=r"^ckpt/vitl\.pt: no such file or directory$"):
        load_encoder("ckpt/vitl.pt")


def test_commands_refuse_a_missing_hub_id_in_one_line(tmp_path, hub_cache, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(["plan", "--model", "owner/absent", "--image", "a.png", "--goal", "b.png",
                          "--state", "0.5,0,0.3,3.1,0,0,0"], capsys)
    assert "owner/absent: no such local file or directory" in err and "hf download owner/absent" in err


def test_encode_runs_from_a_hub_id_in_a_fresh_process(tmp_path):
    """The command line in a process of its own, with HF_HOME pointing at the test's cache and
    HF_HUB_OFFLINE set: nothing but the cache can answer. The features match transformers'."""
    import cv2

    from vjepa_wm.world_model.preprocessing import EvalTransform, read_image

    hf = hf_vjepa2(tmp_path / "hf").eval()
    write_cache_entry(tmp_path / "home" / "hub", "owner/name", tmp_path / "hf")
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), image[..., ::-1])
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "VJEPA_WM_DEBUG": ""}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-m", "vjepa_wm", "encode", str(tmp_path / "frame.png"), "--model", "owner/name",
                           "--out", str(tmp_path / "features.npy")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    features = torch.from_numpy(np.load(tmp_path / "features.npy"))
    video = EvalTransform(32)(read_image(tmp_path / "frame.png")[None])  # [C, T, H, W]
    with torch.no_grad():
        reference = hf.get_vision_features(video.permute(1, 0, 2, 3)[None])
    assert features.shape == reference.shape == (1, 4, 96)
    assert torch.allclose(features, reference, atol=1e-5)


# ----------------------------------------------------------------------------- sharded safetensors


def test_transformers_shards_load_as_the_single_file_does(tmp_path):
    hf_vjepa2(tmp_path / "single")
    torch.manual_seed(0)  # the same random weights again, written in shards
    hf_vjepa2(tmp_path / "sharded", max_shard_size="60KB")
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2 and not (tmp_path / "sharded" / "model.safetensors").exists()
    assert same_weights(load_encoder(tmp_path / "sharded"), load_encoder(tmp_path / "single"))
    assert same_weights(load_predictor(tmp_path / "sharded"), load_predictor(tmp_path / "single"))


def shard_by_hand(folder: Path, parts: int = 3) -> dict:
    """Split our model.safetensors into `parts` shards plus an index in transformers' layout."""
    state = load_file(str(folder / "model.safetensors"))
    names = sorted(state)
    weight_map = {}
    for part in range(parts):
        shard = f"model-{part + 1:05d}-of-{parts:05d}.safetensors"
        chunk = {name: state[name] for name in names[part::parts]}
        save_file(chunk, str(folder / shard))
        weight_map.update(dict.fromkeys(chunk, shard))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "model.safetensors").unlink()
    return index


def test_our_world_model_split_by_hand_loads_identically(model_dir):
    model = load_world_model(model_dir)
    shard_by_hand(model_dir)
    loaded = load_world_model(model_dir)
    assert same_weights(loaded.encoder, model.encoder) and same_weights(loaded.predictor, model.predictor)


def bad_index(folder: Path, edit) -> Path:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    edit(index, folder)
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def copy_into_last_shard(index: dict, folder: Path) -> None:
    """A tensor of the first shard written into the last one as well."""
    first = load_file(str(folder / "model-00001-of-00003.safetensors"))
    last = folder / "model-00003-of-00003.safetensors"
    name = sorted(first)[0]
    save_file({name: first[name], **load_file(str(last))}, str(last))


CASES = {
    "missing shard": (lambda i, f: (f / "model-00002-of-00003.safetensors").unlink(),
                      "names shard model-00002-of-00003.safetensors, which does not exist"),
    "shard outside its folder": (lambda i, f: i["weight_map"].update(dict.fromkeys(list(i["weight_map"])[:1], "../x.safetensors")),
                                 "shard '../x.safetensors' is not a file name beside the index"),
    "tensor in two shards": (copy_into_last_shard,
                             "model-00003-of-00003.safetensors: holds .*, which model.safetensors.index.json places in "
                             "model-00001-of-00003.safetensors"),
    "tensor in no shard": (lambda i, f: i["weight_map"].update({"encoder.extra": "model-00001-of-00003.safetensors"}),
                           "lacks encoder.extra, which model.safetensors.index.json places in it"),
    "no weight_map": (lambda i, f: i.pop("weight_map"), "not a shard index"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_shard_index_is_one_line(model_dir, case):
    edit, pattern = CASES[case]
    shard_by_hand(model_dir)
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_world_model(bad_index(model_dir, edit))
    assert "\n" not in str(err.value)


def test_a_tensor_listed_twice_in_the_index_is_refused(model_dir):
    index = shard_by_hand(model_dir)
    name = next(iter(index["weight_map"]))
    text = json.dumps(index).replace("\"weight_map\": {", f"\"weight_map\": {{\"{name}\": \"model-00002-of-00003.safetensors\", ", 1)
    (model_dir / "model.safetensors.index.json").write_text(text)
    with pytest.raises(CheckpointError, match=f"lists {name} more than once"):
        load_world_model(model_dir)


# ----------------------------------------------------------------------------- export-hub


def trained_run(tmp_path: Path) -> Path:
    """A world model exported by a run folder with a train-ac run record, as train-ac leaves them."""
    from vjepa_wm.world_model.ac_training.config import ACTrainConfig
    from vjepa_wm.world_model.configuration import load_config
    from vjepa_wm.world_model.training.run_folder import RunFolder, run_identity

    config = load_config(ACTrainConfig, None, ["--data.path=lerobot/droid_1.0.1", "--run.steps=5", "--model.predictor=micro"])
    identity = run_identity("train-ac", config, ["run.device"], {"data": {"digest": "0" * 16, "paths": 1, "files": 3, "bytes": 12}})
    folder = RunFolder(tmp_path / "run", identity)
    folder.export("world_model", lambda path: save_world_model(tiny_world_model(), path))
    return tmp_path / "run" / "world_model"


def test_export_hub_writes_a_folder_that_reloads_with_a_model_card(tmp_path, capsys):
    from huggingface_hub import ModelCard

    from vjepa_wm.evaluation.sim import SimEvalConfig
    from vjepa_wm.provenance import provenance

    model_dir = trained_run(tmp_path)
    evaluation = {"task": "reach", "episodes": 2, "success_rate": 0.5, "results": [{"seed": 1}],
                  "provenance": provenance("eval-sim", SimEvalConfig(episodes=2), model_dir)}
    (tmp_path / "eval.json").write_text(json.dumps(evaluation))
    out = tmp_path / "hub"
    argv = ["export-hub", "--model", str(model_dir), "--out", str(out), "--eval-json", str(tmp_path / "eval.json"),
            "--license", "mit"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [".vjepa_wm-export.json", "README.md", "config.json", "model.safetensors"]
    reloaded, original = load_world_model(out), load_world_model(model_dir)
    assert same_weights(reloaded.encoder, original.encoder) and same_weights(reloaded.predictor, original.predictor)
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "vjepa_wm" and card.data.license == "mit"
    assert card.data.datasets == ["lerobot/droid_1.0.1"] and {"vjepa_wm", "franka"} <= set(card.data.tags)
    text = card.text
    assert "--data.path=lerobot/droid_1.0.1" in text and "--run.steps=5" in text and "--model.predictor=micro" in text
    assert "| task | episodes | success_rate |" in text and "| reach | 2 | 0.5 |" in text
    assert "Scored these weights" in text and "vjepa-wm eval-sim --episodes=2" in text
    assert f"Exported from `{model_dir}`, sha256 `{evaluation['provenance']['model']['sha256']}`" in text

    # Run again into the same folder: its own files are replaced. A file changed by hand is not.
    assert main(argv) == 0
    (out / "README.md").write_text("my own words\n")
    err = one_line_error(argv, capsys)
    assert "README.md: not written by an earlier export-hub (or changed since); refusing to replace it" in err
    assert (out / "README.md").read_text() == "my own words\n"


def test_export_hub_never_replaces_a_file_it_did_not_write(tmp_path, model_dir, capsys):
    out = tmp_path / "clone"
    out.mkdir()
    (out / "config.json").write_text("{}\n")
    (out / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    err = one_line_error(["export-hub", "--model", str(model_dir), "--out", str(out)], capsys)
    assert f"{out / 'config.json'}: not written by an earlier export-hub" in err
    assert sorted(p.name for p in out.iterdir()) == [".gitattributes", "config.json"] and (out / "config.json").read_text() == "{}\n"
    (out / "config.json").unlink()
    assert main(["export-hub", "--model", str(model_dir), "--out", str(out)]) == 0
    assert (out / ".gitattributes").read_text() == "*.safetensors filter=lfs\n"
    assert "Not recorded" in (out / "README.md").read_text()  # no run record beside the model


# ----------------------------------------------------------------------------- provenance


def test_eval_sim_json_records_the_model_code_and_command(tmp_path, model_dir):
    flags = ["eval-sim", "--task", "reach", "--episodes", "1", "--max-steps", "1", "--image-size", "32", "--cem.samples", "4",
             "--cem.elites", "2", "--cem.iterations", "1", "--model", str(model_dir), "--json", str(tmp_path / "eval.json")]
    assert main(flags) == 0
    record = json.loads((tmp_path / "eval.json").read_text())["provenance"]
    import vjepa_wm
    from vjepa_wm.provenance import sha256_file

    assert record["vjepa_wm_version"] == vjepa_wm.__version__
    assert record["git_commit"] is None or len(record["git_commit"]) == 40
    assert record["command"].startswith("vjepa-wm eval-sim --episodes=1 --max_steps=1 ")
    assert f"--model={model_dir}" in record["command"] and "--cem.samples=4" in record["command"]
    model = record["model"]
    assert model["path"] == str(model_dir) and model["hub_id"] is None
    assert model["files"]["model.safetensors"] == sha256_file(model_dir / "model.safetensors")
    assert model["files"]["model.safetensors"] == hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()


def test_the_model_hash_follows_the_weights_not_the_card(model_dir, hub_cache):
    from vjepa_wm.provenance import model_record

    model = load_world_model(model_dir)
    before = model_record(model_dir)
    (model_dir / "README.md").write_text("a card beside the weights\n")
    assert model_record(model_dir)["sha256"] == before["sha256"]
    with torch.no_grad():
        model.predictor.predictor_proj.bias[0] += 1e-3
    save_world_model(model, model_dir, overwrite=True)
    after = model_record(model_dir)
    assert after["sha256"] != before["sha256"] and after["files"]["config.json"] == before["files"]["config.json"]
    assert after["files"]["model.safetensors"] != before["files"]["model.safetensors"]
    shard_by_hand(model_dir)
    sharded = model_record(model_dir)
    assert sorted(sharded["files"]) == ["config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                        "model-00003-of-00003.safetensors", "model.safetensors.index.json"]
    write_cache_entry(hub_cache, "owner/wm", model_dir)
    hub = model_record("owner/wm")
    assert (hub["hub_id"], hub["revision"], hub["sha256"]) == ("owner/wm", COMMIT, sharded["sha256"])


def test_the_command_line_rebuilt_from_a_config_parses_back_to_it():
    import shlex

    from vjepa_wm.evaluation.sim import SimEvalConfig
    from vjepa_wm.provenance import command_line
    from vjepa_wm.world_model.configuration import load_config

    flags = ["--episodes=3", "--cem.samples=8", "--cem.elites=4", "--model=a folder/wm", "--stop-energy=0.1",
             "--cem.pinned={6: 0.5}", "--low_poly=false"]
    config = load_config(SimEvalConfig, None, flags)
    line = command_line("eval-sim", config)
    assert line.startswith("vjepa-wm eval-sim ") and "--cem.iterations" not in line  # defaults are left out
    assert load_config(SimEvalConfig, None, shlex.split(line)[2:]) == config


def test_export_hub_converts_the_official_ac_file_and_pushes_only_its_own_files(tmp_path, monkeypatch):
    import huggingface_hub

    model = tiny_world_model()
    encoder = {f"module.{k}": v for k, v in model.encoder.state_dict().items()}
    predictor = {f"module.{k}": v for k, v in model.predictor.state_dict().items()}
    torch.save({"encoder": encoder, "target_encoder": encoder, "predictor": predictor, "epoch": 3}, tmp_path / "ac.pt")
    out = tmp_path / "hub"
    out.mkdir()
    (out / "NOTES.md").write_text("mine\n")
    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo_id, **kw: calls.append(("create", repo_id, kw)) or "url")
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kw: calls.append(("upload", kw)))
    assert main(["export-hub", "--model", str(tmp_path / "ac.pt"), "--img-size", "32", "--out", str(out),
                 "--push", "me/wm"]) == 0
    loaded = load_world_model(out)
    assert loaded.img_size == 32 and same_weights(loaded.predictor, model.predictor) and same_weights(loaded.encoder, model.encoder)
    assert calls[0] == ("create", "me/wm", {"private": False, "exist_ok": True})
    upload = calls[1][1]
    assert upload["repo_id"] == "me/wm" and upload["folder_path"] == str(out)
    assert upload["allow_patterns"] == ["README.md", "config.json", "model.safetensors"]  # not NOTES.md, not the record
    assert "`--model me/wm`" in (out / "README.md").read_text()


def test_the_git_commit_is_read_from_the_work_tree_without_git(tmp_path):
    from vjepa_wm.provenance import git_commit

    packed, loose, detached = "a" * 40, "b" * 40, "c" * 40
    gitdir = tmp_path / "repo" / ".git"
    (gitdir / "refs" / "heads").mkdir(parents=True)
    (gitdir / "HEAD").write_text("ref: refs/heads/main\n")
    (gitdir / "packed-refs").write_text(f"# pack-refs with: peeled fully-peeled sorted\n{packed} refs/heads/main\n")
    module = tmp_path / "repo" / "pkg" / "mod.py"
    module.parent.mkdir()
    module.write_text("")
    assert git_commit(module) == packed
    (gitdir / "refs" / "heads" / "main").write_text(loose + "\n")
    assert git_commit(module) == loose
    worktree = gitdir / "worktrees" / "wt"  # a linked worktree: .git is a file, refs live in the common dir
    worktree.mkdir(parents=True)
    (worktree / "HEAD").write_text("ref: refs/heads/main\n")
    (worktree / "commondir").write_text("../..\n")
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text(f"gitdir: {worktree}\n")
    assert git_commit(tmp_path / "wt" / "x.py") == loose
    (gitdir / "HEAD").write_text(detached + "\n")
    assert git_commit(module) == detached
    (gitdir / "HEAD").write_text("ref: refs/heads/gone\n")
    assert git_commit(module) is None
    assert git_commit(tmp_path / "elsewhere" / "x.py") is None
