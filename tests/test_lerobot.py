"""LeRobot DROID: the reader on v3.0 and v2.1 datasets built here by hand with pyarrow and PyAV
(AV1 and H.264 videos, episodes concatenated over two files), a fake Hugging Face cache entry
resolved offline, our writer's output read back (and by pandas, as LeRobot reads it), the
pretraining clip source, train-ac and collect-sim on the format.

Every frame carries its row and episode as stripes (`test_droid_raw.barcode_frames`), so a test
sees which frame of which episode it got."""
from __future__ import annotations

import json
import shutil
from fractions import Fraction

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from test_droid_raw import barcode_frames, read_barcode, write_episode
from vjepa_wm.cli import main
from vjepa_wm.clip_sources import CLIP_SOURCES
from vjepa_wm.datasets.droid.common import DroidConfig, DroidError
from vjepa_wm.datasets.droid.lerobot import DroidLeRobotDataset, LeRobotClipSource, split_lerobot
from vjepa_wm.datasets.droid.lerobot_writer import raw_to_lerobot
from vjepa_wm.datasets.video_av import kept_thread_scheduling
from vjepa_wm.embodiments.franka import Franka

FPS = 15
LENGTHS = (30, 26, 34)  # episode 1 failed
SUCCESS = (True, False, True)
SIZE = (96, 128)
EXT1, WRIST = "observation.images.exterior_1_left", "observation.images.wrist_left"
CODECS = {EXT1: "libsvtav1", WRIST: "libx264"}  # LeRobot's default codec, and the browsers' one


def hand_states(episode: int, rows: int) -> np.ndarray:
    rng = np.random.default_rng(episode)
    cartesian = np.cumsum(rng.normal(scale=0.02, size=(rows, 6)), axis=0) + [0.4, 0.0, 0.3, 3.0, 0.1, -0.2]
    return np.concatenate([cartesian, np.linspace(0, 1, rows)[:, None]], axis=1).astype(np.float32)


def encode(path, frames, encoder):
    path.parent.mkdir(parents=True, exist_ok=True)
    with kept_thread_scheduling(), av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=Fraction(FPS))
        stream.height, stream.width, stream.pix_fmt = *SIZE, "yuv420p"
        stream.codec_context.gop_size = 8
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def frame_table(episode: int, start: int, rows: int) -> pa.Table:
    states = hand_states(episode, rows)
    cartesian = pa.array(states[:, :6].tolist(), pa.list_(pa.float32()))  # variable lists, as older ports store them
    joint = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(rows * 8, np.float32)), 8)
    return pa.table({
        "observation.state.cartesian_position": cartesian,
        "observation.state.gripper_position": pa.array(states[:, 6]),
        "observation.state": joint,
        "camera_extrinsics.exterior_1_left": pa.array(np.tile(np.arange(6, dtype=np.float32), (rows, 1)).tolist(), pa.list_(pa.float32(), 6)),
        "is_episode_successful": pa.array([SUCCESS[episode]] * rows),
        "language_instruction": pa.array([f"task {episode}"] * rows),
        "timestamp": pa.array(np.arange(rows, dtype=np.float32) / FPS),
        "frame_index": pa.array(np.arange(rows, dtype=np.int64)),
        "episode_index": pa.array(np.full(rows, episode, np.int64)),
        "index": pa.array(start + np.arange(rows, dtype=np.int64)),
        "task_index": pa.array(np.full(rows, episode, np.int64)),
    })


def features() -> dict:
    vector = {"dtype": "float32", "names": None}
    video = {"dtype": "video", "shape": [*SIZE, 3], "names": ["height", "width", "channels"]}
    return {
        "observation.state.cartesian_position": {**vector, "shape": [6]}, "observation.state.gripper_position": {**vector, "shape": [1]},
        "observation.state": {**vector, "shape": [8]}, "camera_extrinsics.exterior_1_left": {**vector, "shape": [6]},
        "is_episode_successful": {"dtype": "bool", "shape": [1], "names": None},
        "language_instruction": {"dtype": "string", "shape": [1], "names": None},
        EXT1: {**video, "info": {"video.codec": "av1"}}, WRIST: {**video, "info": {"video.codec": "h264"}},
        "timestamp": {**vector, "shape": [1]}, **{k: {"dtype": "int64", "shape": [1], "names": None}
                                                  for k in ("frame_index", "episode_index", "index", "task_index")},
    }


def write_v3_by_hand(root):
    """Episodes 0 and 1 in data/video file 000, episode 2 in file 001 (v3.0 layout, LeRobot's names)."""
    info = {"codebase_version": "v3.0", "robot_type": "Franka", "fps": FPS, "chunks_size": 1000, "total_episodes": 3,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4", "features": features()}
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info))
    files = {0: [0, 1], 1: [2]}
    episodes, start = [], 0
    for file, members in files.items():
        tables, offset = [], 0
        for episode in members:
            rows = LENGTHS[episode]
            tables.append(frame_table(episode, start, rows))
            record = {"episode_index": episode, "tasks": [f"task {episode}"], "length": rows, "data/chunk_index": 0,
                      "data/file_index": file, "dataset_from_index": start, "dataset_to_index": start + rows}
            for key in CODECS:
                record.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": file,
                               f"videos/{key}/from_timestamp": offset / FPS, f"videos/{key}/to_timestamp": (offset + rows) / FPS})
            episodes.append(record)
            start, offset = start + rows, offset + rows
        (root / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(tables), root / f"data/chunk-000/file-{file:03d}.parquet", row_group_size=16)
        for key, encoder in CODECS.items():
            camera = 1 if key == EXT1 else 3
            frames = np.concatenate([barcode_frames(LENGTHS[e], camera + 4 * e, *SIZE) for e in members])
            encode(root / f"videos/{key}/chunk-000/file-{file:03d}.mp4", frames, encoder)
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(episodes), root / "meta/episodes/chunk-000/file-000.parquet")
    return root


def write_v21_by_hand(root):
    info = {"codebase_version": "v2.1", "fps": FPS, "chunks_size": 2, "total_episodes": 3,  # two chunks
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4", "features": features()}
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info))
    lines, start = [], 0
    for episode, rows in enumerate(LENGTHS):
        chunk = episode // 2
        (root / f"data/chunk-{chunk:03d}").mkdir(parents=True, exist_ok=True)
        pq.write_table(frame_table(episode, start, rows), root / f"data/chunk-{chunk:03d}/episode_{episode:06d}.parquet")
        for key, encoder in CODECS.items():
            encode(root / f"videos/chunk-{chunk:03d}/{key}/episode_{episode:06d}.mp4",
                   barcode_frames(rows, (1 if key == EXT1 else 3) + 4 * episode, *SIZE), encoder)
        lines.append(json.dumps({"episode_index": episode, "tasks": [f"task {episode}"], "length": rows}))
        start += rows
    (root / "meta/episodes.jsonl").write_text("\n".join(lines) + "\n")
    (root / "meta/tasks.jsonl").write_text("".join(json.dumps({"task_index": e, "task": f"task {e}"}) + "\n" for e in range(3)))
    return root


@pytest.fixture(scope="module")
def v3(tmp_path_factory):
    return write_v3_by_hand(tmp_path_factory.mktemp("lerobot") / "droid_v3")


@pytest.fixture(scope="module")
def v21(tmp_path_factory):
    return write_v21_by_hand(tmp_path_factory.mktemp("lerobot") / "droid_v21")


def check_clip(clip, camera_number: int):
    episode = int(clip.episode_id.rsplit("_", 1)[1])
    assert [read_barcode(f) for f in clip.frames] == [(int(i), camera_number + 4 * episode) for i in clip.indices]
    expected = hand_states(episode, LENGTHS[episode])[clip.indices].astype(np.float64)
    assert np.array_equal(clip.states, expected)
    assert np.allclose(clip.actions, Franka().deltas(expected))
    assert clip.language_instruction == f"task {episode}"
    return episode


@pytest.mark.parametrize("layout", ["v3", "v21"])
def test_clips_follow_rows_with_row_stride_and_failures_are_filtered(layout, request):
    root = request.getfixturevalue(layout)
    dataset = DroidLeRobotDataset(root, DroidConfig(clips_per_episode=3, seed=1))
    clips = list(dataset)
    assert dataset.stats.filtered == 1 and dataset.stats.episodes == 2 and len(clips) == 6
    for clip in clips:
        assert np.array_equal(np.diff(clip.indices), np.full(7, 4)) and clip.frames.shape == (8, *SIZE, 3)
        assert check_clip(clip, 1) in (0, 2)
        assert np.array_equal(clip.extrinsics, np.tile(np.arange(6.0), (8, 1)))
    wrist = list(DroidLeRobotDataset(root, DroidConfig(camera="wrist", success_only=False, frames_per_clip=3, row_stride=2)))
    assert sorted(check_clip(clip, 3) for clip in wrist) == [0, 1, 2]  # the H.264 camera; the failed episode kept
    assert all(clip.extrinsics is None for clip in wrist)


def test_episodes_are_dealt_to_ranks_and_split_off_for_validation(v3):
    def ids(rank, world):
        return {clip.episode_id for clip in DroidLeRobotDataset(v3, DroidConfig(rank=rank, world_size=world, success_only=False, frames_per_clip=3))}

    everything = ids(0, 1)
    parts = [ids(r, 2) for r in (0, 1)]
    assert len(everything) == 3 and parts[0] | parts[1] == everything and not parts[0] & parts[1]
    train, val = split_lerobot(v3, fraction=0.3)
    held = {e.index for e in val.locations()}
    assert held and {e.index for e in train.locations()} == {0, 1, 2} - held
    assert {c.episode_id for c in DroidLeRobotDataset(val, DroidConfig(success_only=False, frames_per_clip=3))} == {f"{v3}#episode_{i:06d}" for i in held}


def test_bad_datasets_are_one_line_errors(v3, tmp_path):
    with pytest.raises(DroidError, match="not a LeRobot dataset"):
        DroidLeRobotDataset(tmp_path)
    old = shutil.copytree(v3 / "meta", tmp_path / "old/meta")
    info = json.loads((old / "info.json").read_text())
    (old / "info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    with pytest.raises(DroidError, match="codebase_version 'v1.6' is not supported"):
        DroidLeRobotDataset(tmp_path / "old")
    no_cartesian = {k: v for k, v in info["features"].items() if k != "observation.state.cartesian_position"}
    (old / "info.json").write_text(json.dumps({**info, "features": no_cartesian}))
    with pytest.raises(DroidError, match="lack observation.state.cartesian_position"):
        DroidLeRobotDataset(tmp_path / "old")
    with pytest.raises(DroidError, match="no camera observation.images.exterior_2_left"):
        DroidLeRobotDataset(v3, DroidConfig(camera="exterior_2"))
    with pytest.raises(DroidError, match="left/right are raw-format choices"):
        DroidLeRobotDataset(v3, DroidConfig(camera="left"))
    with pytest.raises(DroidError, match="not a hub dataset id"):
        DroidLeRobotDataset(tmp_path / "missing")


def test_a_hub_id_resolves_from_the_local_cache_without_network(v3, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    cache = tmp_path / "hub"
    entry = cache / "datasets--lerobot--tiny_droid"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(v3, entry / "snapshots" / commit)
    (entry / "refs").mkdir()
    (entry / "refs/main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))  # read once at import; the variable alone is too late here
    for name in ("lerobot/tiny_droid", "hf://datasets/lerobot/tiny_droid"):
        dataset = DroidLeRobotDataset(name, DroidConfig(success_only=False, frames_per_clip=3))
        assert dataset.dataset.root == entry / "snapshots" / commit and len(list(dataset)) == 3
    with pytest.raises(DroidError, match="not in the local Hugging Face cache"):
        DroidLeRobotDataset("lerobot/not_downloaded")


def test_our_writer_round_trips_raw_episodes_in_the_layout_lerobot_reads(tmp_path):
    import pandas as pd

    states = {seed: write_episode(tmp_path / "raw", seed=seed, rows=24, success=seed != 1)[1] for seed in range(3)}
    root = raw_to_lerobot(tmp_path / "raw", tmp_path / "lerobot", codec="h264")
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 3 and info["total_frames"] == 72 and info["fps"] == 15
    for key in ("observation.images.exterior_1_left", "observation.images.exterior_2_left", "observation.images.wrist_left"):
        assert info["features"][key]["shape"] == [96, 128, 3] and info["features"][key]["info"]["video.codec"] == "h264"
        assert (root / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)).is_file()
    assert info["features"]["observation.state"]["shape"] == [8]  # the port's joint space state: joints + gripper
    tasks = pd.read_parquet(root / "meta/tasks.parquet")  # as LeRobot reads it: task strings are the index
    assert tasks.index.name == "task" and sorted(tasks.index) == ["task 0", "task 1", "task 2"]
    episodes = pd.read_parquet(root / "meta/episodes/chunk-000/file-000.parquet")
    assert list(episodes["dataset_to_index"] - episodes["dataset_from_index"]) == [24, 24, 24]
    assert np.allclose(episodes["videos/observation.images.wrist_left/from_timestamp"], [0, 24 / 15, 48 / 15])
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.array(stats["observation.images.wrist_left"]["mean"]).shape == (3, 1, 1)
    assert stats["observation.state.cartesian_position"]["count"] == [72]
    clips = list(DroidLeRobotDataset(root, DroidConfig(camera="exterior_2", frames_per_clip=4, clips_per_episode=2)))
    assert len(clips) == 4  # the failed episode is filtered through is_episode_successful
    for clip in clips:
        seed = int(clip.language_instruction.split()[1])
        assert [read_barcode(f) for f in clip.frames] == [(int(i), 2) for i in clip.indices]  # ext2 = serial LEFT
        assert np.allclose(clip.states, states[seed][clip.indices], atol=1e-6)  # float32 storage
        assert np.allclose(clip.extrinsics[0], [0.5, 0.4, 0.4, 0.0, 0.6, -0.1])


def test_the_lerobot_clip_source_samples_by_row_stride(v3):
    source = CLIP_SOURCES["lerobot"](str(v3))
    assert isinstance(source, LeRobotClipSource) and len(source) == 3
    frames = source.clip(1, 5, 4.0, torch.Generator().manual_seed(0))  # 15 Hz rows at 4 fps: every 4th row
    rows = [read_barcode(f) for f in frames]
    assert [r for r, _ in rows] == list(range(rows[0][0], rows[0][0] + 20, 4)) and {c for _, c in rows} == {1 + 4}
    with pytest.raises(ValueError, match="fewer than"):
        source.clip(1, 12, 4.0, torch.Generator())


def test_train_ac_trains_on_the_lerobot_format(tmp_path):
    from test_train_ac import write_blob_data

    blobs = write_blob_data(tmp_path / "raw")
    root = raw_to_lerobot(blobs, tmp_path / "lerobot")
    args = ["train-ac", "--data.format=lerobot", f"--data.path={root}", f"--model.encoder={blobs / 'encoder'}",
            "--model.predictor=micro", "--model.img_size=32", "--data.frames_per_clip=4", "--data.clips_per_episode=2",
            "--data.workers=0", "--data.val_fraction=0.0", f"--run.out_dir={tmp_path / 'run'}", "--run.steps=3",
            "--run.batch_size=2", "--run.log_every=1", "--run.save_every=3", "--optim.warmup_steps=1",
            "--optim.decay_steps=1", "--run.tensorboard=false"]
    assert main(args) == 0
    assert (tmp_path / "run/world_model/model.safetensors").is_file()
    assert main([*args[:1], "--data.format=lerobot", "--model.embodiment=car", *args[2:]]) == 2  # DROID is Franka data


def test_collect_sim_writes_a_lerobot_dataset_beside_the_raw_episodes(tmp_path, capsys):
    code = main(["collect-sim", "--out", str(tmp_path), "--episodes", "1", "--image-size", "32", "--actions-per-episode", "2",
                 "--format", "lerobot", "--no-progress"])
    assert code == 0 and "LeRobot v3.0 dataset" in capsys.readouterr().out
    dataset = DroidLeRobotDataset(tmp_path / "lerobot", DroidConfig(success_only=False, frames_per_clip=3))
    (clip,) = list(dataset)
    assert clip.frames.shape == (3, 32, 32, 3) and dataset.dataset.features[EXT1]["info"]["video.codec"] == "av1"
    assert json.loads((tmp_path / "collect_sim.json").read_text()).get("format") is None  # storage is not identity
    stamp = (tmp_path / "lerobot/meta/info.json").stat().st_mtime_ns
    assert main(["collect-sim", "--out", str(tmp_path), "--episodes", "1", "--image-size", "32", "--actions-per-episode", "2",
                 "--format", "lerobot", "--no-progress"]) == 0
    assert (tmp_path / "lerobot/meta/info.json").stat().st_mtime_ns == stamp  # nothing new: not rebuilt
