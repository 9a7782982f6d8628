"""Raw DROID: the writer's layout, and the reader on episodes written by it (good, failed and broken ones).

Every frame carries its h5 row index and its camera number as black/white stripes (robust to MP4
compression) plus a red | blue band that catches BGR/RGB swaps, so a test can read back which
frame of which camera it got.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from torch.utils.data import DataLoader

from vjepa_wm.datasets.droid.common import DroidConfig, DroidError, collate_clips
from vjepa_wm.datasets.droid.raw_reader import DroidRawDataset, list_raw_episodes
from vjepa_wm.datasets.droid.raw_writer import droid_episode_dir, episode_folder_name, write_droid_raw_episode, write_episode_list
from vjepa_wm.datasets.video_io import write_mp4
from vjepa_wm.embodiments.franka import integrate, states_to_actions

ROWS = 40
SIZE = (96, 128)
LEFT, RIGHT, WRIST = "22222222", "11111111", "33333333"  # LEFT has the larger y, though it sorts second
CAMERA_NUMBER = {RIGHT: 1, LEFT: 2, WRIST: 3}
EXTRINSICS = {RIGHT: [0.5, -0.4, 0.4, 0.0, 0.6, 0.1], LEFT: [0.5, 0.4, 0.4, 0.0, 0.6, -0.1]}


def barcode_frames(rows: int, camera: int, height: int, width: int) -> np.ndarray:
    """Top half: 8 stripes with the bits of the row index; next quarter: camera bits; last: red | blue."""
    frames = np.zeros((rows, height, width, 3), np.uint8)
    stripe = width // 8
    for t in range(rows):
        for bit in range(8):
            if (t >> bit) & 1:
                frames[t, : height // 2, bit * stripe : (bit + 1) * stripe] = 255
            if (camera >> bit) & 1:
                frames[t, height // 2 : 3 * height // 4, bit * stripe : (bit + 1) * stripe] = 255
    frames[:, 3 * height // 4 :, : width // 2] = (255, 0, 0)
    frames[:, 3 * height // 4 :, width // 2 :] = (0, 0, 255)
    return frames


def read_barcode(frame: np.ndarray) -> tuple[int, int]:
    """(row index, camera number) from a decoded frame; asserts the red | blue band is RGB-ordered."""
    height, width = frame.shape[:2]
    stripe = width // 8

    def bits(top, bottom):
        return sum(1 << b for b in range(8)
                   if frame[top + 4 : bottom - 4, b * stripe + 4 : (b + 1) * stripe - 4].mean() > 127)

    band = frame[3 * height // 4 + 4 : -4]
    red, blue = band[:, 4 : width // 2 - 4].mean(axis=(0, 1)), band[:, width // 2 + 4 : -4].mean(axis=(0, 1))
    assert red[0] > 180 and red[2] < 80 and blue[2] > 180 and blue[0] < 80, (red, blue)
    return bits(0, height // 2), bits(height // 2, 3 * height // 4)


def episode_states(seed: int, rows: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cartesian = np.cumsum(rng.normal(scale=0.02, size=(rows, 6)), axis=0) + [0.4, 0.0, 0.3, 3.0, 0.1, -0.2]
    gripper = np.clip(np.linspace(-0.3, 1.3, rows), 0, 1)
    return np.concatenate([cartesian, gripper[:, None]], axis=1)


def write_episode(root, seed: int, rows: int = ROWS, success: bool = True, states=None):
    states = episode_states(seed, rows) if states is None else states
    frames = {serial: barcode_frames(rows, number, *SIZE) for serial, number in CAMERA_NUMBER.items()}
    path = write_droid_raw_episode(
        droid_episode_dir(root, success=success, start=datetime(2024, 1, 1, 10, seed), lab="TEST"),
        exterior_frames={RIGHT: frames[RIGHT], LEFT: frames[LEFT]}, wrist_frames={WRIST: frames[WRIST]},
        cartesian_position=states[:, :6], gripper_position=states[:, 6],
        joint_position=np.tile(np.linspace(-1, 1, 7), (rows, 1)), success=success,
        language_instruction=f"task {seed}", camera_extrinsics=EXTRINSICS,
        actions={"cartesian_position": states[:, :6], "gripper_position": states[:, 6]})
    return path, states


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """Three good episodes, one failure and eight broken ones, plus an episode list naming them all."""
    root = tmp_path_factory.mktemp("droid_raw")
    good = {}
    for seed in (0, 1):
        path, states = write_episode(root, seed)
        good[str(path)] = states
    # droid#54: the MP4 holds one frame fewer than the h5 has rows; 30 rows leave exactly one window.
    path, states = write_episode(root, 2, rows=30)
    write_mp4(path / "recordings/MP4" / f"{LEFT}.mp4", barcode_frames(29, 2, *SIZE), 60)
    good[str(path)] = states
    failure, _ = write_episode(root, 3, success=False)
    broken = {}
    path, _ = write_episode(root, 4)
    write_mp4(path / "recordings/MP4" / f"{LEFT}.mp4", barcode_frames(ROWS - 10, 2, *SIZE), 60)
    broken["mp4_too_short"] = path
    path, _ = write_episode(root, 5)
    (path / "trajectory.h5").write_bytes(b"this is not an HDF5 file")
    broken["unreadable_h5"] = path
    path, _ = write_episode(root, 6)
    with h5py.File(path / "trajectory.h5", "r+") as h5:
        del h5["observation/robot_state/gripper_position"]
    broken["missing_fields"] = path
    states = episode_states(7, ROWS)
    states[17, 2] = np.nan
    broken["nan_states"], _ = write_episode(root, 7, states=states)
    path, _ = write_episode(root, 8)
    next(path.glob("metadata_*.json")).unlink()
    broken["missing_metadata"] = path
    broken["too_short"], _ = write_episode(root, 9, rows=10)
    path, _ = write_episode(root, 10)
    (path / "recordings/MP4" / f"{LEFT}.mp4").write_bytes(b"\x00" * 1000)
    broken["unreadable_mp4"] = path
    broken["missing_file"] = root / "TEST/success/2024-01-01/Mon_Jan__1_11:00:00_2024"
    episode_list = write_episode_list(root / "episodes.csv", [*good, failure, *broken.values()])
    return {"root": root, "good": good, "failure": failure, "broken": broken, "list": episode_list}


def clips_by_episode(dataset) -> dict:
    return {clip.episode_id: clip for clip in dataset}


def test_reads_good_episodes_and_counts_every_broken_one(raw, caplog):
    dataset = DroidRawDataset(raw["list"], DroidConfig(shuffle=False))
    with caplog.at_level(logging.INFO, logger="datasets.droid"):
        clips = clips_by_episode(dataset)
    assert set(clips) == set(raw["good"])
    assert dataset.stats.filtered == 1
    assert dict(dataset.stats.skipped) == {reason: 1 for reason in raw["broken"]}
    assert dataset.stats.episodes == 3 and dataset.stats.clips == 3
    summary = [r.getMessage() for r in caplog.records if "droid-raw" in r.getMessage()]
    assert len(summary) == 1 and "skipped 8" in summary[0] and "mp4_too_short 1" in summary[0]


def test_frames_states_and_actions_come_from_the_same_rows(raw):
    dataset = DroidRawDataset(list(raw["good"]), DroidConfig(shuffle=False, clips_per_episode=3))
    clips = list(dataset)
    assert len(clips) == 9
    for clip in clips:
        written = raw["good"][clip.episode_id]
        assert clip.frames.dtype == np.uint8 and clip.frames.shape == (8, *SIZE, 3)
        assert [read_barcode(frame) for frame in clip.frames] == [(int(i), 2) for i in clip.indices]
        np.testing.assert_array_equal(clip.states, written[clip.indices])
        assert clip.actions.shape == (7, 7)
        np.testing.assert_allclose(clip.actions, states_to_actions(written[clip.indices]), atol=1e-12)
        np.testing.assert_allclose(clip.actions[:, :3], np.diff(written[clip.indices, :3], axis=0), atol=1e-12)
        np.testing.assert_allclose(integrate(clip.states[:-1], clip.actions), clip.states[1:], atol=1e-9)
        np.testing.assert_allclose(clip.extrinsics, np.tile(EXTRINSICS[LEFT], (8, 1)))
        assert clip.camera == "left" and clip.source.endswith(f"{LEFT}.mp4")
        assert clip.language_instruction.startswith("task ")


def test_sampling_uses_h5_row_stride_not_the_declared_60_fps(raw):
    path = next(iter(raw["good"]))
    capture = cv2.VideoCapture(str(path) + f"/recordings/MP4/{LEFT}.mp4")
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(60.0)
    capture.release()
    for stride in (4, 2):
        clip = next(iter(DroidRawDataset([path], DroidConfig(row_stride=stride, shuffle=False))))
        assert np.all(np.diff(clip.indices) == stride)
        assert [read_barcode(frame)[0] for frame in clip.frames] == clip.indices.tolist()


def test_mp4_one_frame_shorter_than_h5_is_read_up_to_its_last_frame(raw):
    path = [p for p, states in raw["good"].items() if len(states) == 30][0]
    capture = cv2.VideoCapture(path + f"/recordings/MP4/{LEFT}.mp4")
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 29
    capture.release()
    clip = next(iter(DroidRawDataset([path], DroidConfig(shuffle=False))))
    assert clip.indices.tolist() == list(range(0, 29, 4))
    assert read_barcode(clip.frames[-1])[0] == 28
    dataset = DroidRawDataset([path], DroidConfig(shuffle=False, max_missing_frames=0))
    assert list(dataset) == [] and dict(dataset.stats.skipped) == {"mp4_too_short": 1}


@pytest.mark.parametrize("camera, number", [("left", 2), ("right", 1), ("exterior_1", 1), ("exterior_2", 2), ("wrist", 3)])
def test_camera_choice_goes_through_the_metadata(raw, camera, number):
    path = next(iter(raw["good"]))
    clip = next(iter(DroidRawDataset([path], DroidConfig(camera=camera, shuffle=False))))
    assert {read_barcode(frame)[1] for frame in clip.frames} == {number}
    assert clip.camera == camera


def test_success_filter_can_be_turned_off(raw):
    paths = [*raw["good"], raw["failure"]]
    assert str(raw["failure"]) not in clips_by_episode(DroidRawDataset(paths))
    clips = clips_by_episode(DroidRawDataset(paths, DroidConfig(success_only=False)))
    assert str(raw["failure"]) in clips and "/failure/" in str(raw["failure"])


def test_episodes_are_split_across_ranks_without_overlap(raw):
    def keys(dataset):
        return {(clip.episode_id, tuple(clip.indices)) for clip in dataset}

    everything = keys(DroidRawDataset(raw["root"], DroidConfig(rank=0, world_size=1)))
    ranks = [DroidRawDataset(raw["root"], DroidConfig(rank=r, world_size=2)) for r in (0, 1)]
    units = [set(map(str, d.rank_units())) for d in ranks]
    assert units[0].isdisjoint(units[1]) and units[0] | units[1] == set(map(str, ranks[0].episodes))
    per_rank = [keys(d) for d in ranks]
    assert per_rank[0] and per_rank[1] and per_rank[0].isdisjoint(per_rank[1])
    assert per_rank[0] | per_rank[1] == everything


def test_dataloader_workers_give_the_same_clips_as_one_process(raw):
    config = DroidConfig(clips_per_episode=2, seed=3)
    single = sorted((c.episode_id, tuple(c.indices.tolist())) for c in DroidRawDataset(raw["list"], config))
    loader = DataLoader(DroidRawDataset(raw["list"], config), batch_size=2, num_workers=2, collate_fn=collate_clips)
    batched = []
    for batch in loader:
        assert batch["frames"].shape[1:] == (8, *SIZE, 3) and batch["states"].shape[1:] == (8, 7)
        assert batch["actions"].shape[1:] == (7, 7) and batch["extrinsics"].shape[1:] == (8, 6)
        batched += [(e, tuple(i)) for e, i in zip(batch["episode_id"], batch["indices"].tolist())]
    assert sorted(batched) == single and len(single) == 6  # 3 good episodes x 2 clips


def test_windows_follow_the_seed_and_the_epoch(raw):
    def windows(seed, epoch):
        dataset = DroidRawDataset(list(raw["good"]), DroidConfig(seed=seed, clips_per_episode=4))
        dataset.set_epoch(epoch)
        return sorted((c.episode_id, tuple(c.indices)) for c in dataset)

    assert windows(0, 0) == windows(0, 0)
    assert windows(0, 0) != windows(0, 1)
    assert windows(0, 0) != windows(1, 0)


def test_writer_layout_matches_droid(raw):
    path = Path(next(iter(raw["good"])))
    assert path.parent.parent.name == "success" and path.parent.name == "2024-01-01"
    assert path.name == "Mon_Jan__1_10:00:00_2024" == episode_folder_name(datetime(2024, 1, 1, 10, 0))
    assert sorted(p.name for p in (path / "recordings/MP4").iterdir()) == [f"{s}.mp4" for s in sorted(CAMERA_NUMBER)]
    metadata_files = list(path.glob("metadata_*.json"))
    assert [p.name for p in metadata_files] == ["metadata_TEST+sim+2024-01-01-10h-00m-00s.json"]
    metadata = json.loads(metadata_files[0].read_text())
    schema = {"uuid", "lab", "user", "user_id", "date", "timestamp", "hdf5_path", "building", "scene_id", "success",
              "robot_serial", "droid_version", "current_task", "trajectory_length", "wrist_cam_serial",
              "ext1_cam_serial", "ext2_cam_serial", "wrist_cam_extrinsics", "ext1_cam_extrinsics",
              "ext2_cam_extrinsics", "wrist_svo_path", "wrist_mp4_path", "ext1_svo_path", "ext1_mp4_path",
              "ext2_svo_path", "ext2_mp4_path", "left_mp4_path", "right_mp4_path"}
    assert set(metadata) == schema
    relative = "success/2024-01-01/Mon_Jan__1_10:00:00_2024"
    assert metadata["hdf5_path"] == f"{relative}/trajectory.h5" and metadata["lab"] == "TEST"
    assert (metadata["ext1_cam_serial"], metadata["ext2_cam_serial"], metadata["wrist_cam_serial"]) == (RIGHT, LEFT, WRIST)
    assert metadata["left_mp4_path"] == f"{relative}/recordings/MP4/{LEFT}.mp4"
    assert metadata["right_mp4_path"] == f"{relative}/recordings/MP4/{RIGHT}.mp4"
    assert metadata["trajectory_length"] == ROWS and metadata["success"] is True and metadata["current_task"] == "task 0"
    with h5py.File(path / "trajectory.h5", "r") as h5:
        state = h5["observation/robot_state"]
        assert state["cartesian_position"].shape == (ROWS, 6) and state["cartesian_position"].dtype == np.float64
        assert state["gripper_position"].shape == (ROWS,) and state["joint_positions"].shape == (ROWS, 7)
        assert h5[f"observation/camera_extrinsics/{LEFT}_left"].shape == (ROWS, 6)
        assert h5[f"observation/camera_type/{WRIST}"][0] == 0 and h5[f"observation/camera_type/{LEFT}"][0] == 1
        stamps = h5[f"observation/timestamp/cameras/{LEFT}_frame_received"][()]
        assert stamps.dtype == np.int64 and np.allclose(np.diff(stamps), 1000 / 15, atol=1)
        assert h5["observation/controller_info/success"][-1] and not h5["observation/controller_info/success"][0]
        assert h5["action/cartesian_position"].shape == (ROWS, 6)
        assert bool(h5.attrs["success"]) and h5.attrs["current_task"] == "task 0"


def test_writer_refuses_to_overwrite_and_bad_input(tmp_path):
    states = episode_states(0, 12)
    frames = {LEFT: barcode_frames(12, 2, *SIZE)}
    kwargs = dict(exterior_frames=frames, cartesian_position=states[:, :6], gripper_position=states[:, 6], success=True)
    target = droid_episode_dir(tmp_path, success=True, start=datetime(2024, 5, 6, 7, 8, 9))
    write_droid_raw_episode(target, **kwargs)
    before = (target / "trajectory.h5").read_bytes()
    with pytest.raises(DroidError, match="already exists"):
        write_droid_raw_episode(target, **kwargs)
    assert (target / "trajectory.h5").read_bytes() == before
    bumped = droid_episode_dir(tmp_path, success=True, start=datetime(2024, 5, 6, 7, 8, 9))
    assert bumped.name == "Mon_May__6_07:08:10_2024"
    write_droid_raw_episode(target, **{**kwargs, "language_instruction": "new"}, overwrite=True)
    assert json.loads(next(target.glob("metadata_*.json")).read_text())["current_task"] == "new"
    with pytest.raises(DroidError, match="disagrees"):
        write_droid_raw_episode(droid_episode_dir(tmp_path, success=False, start=datetime(2024, 5, 6)), **kwargs)
    with pytest.raises(DroidError, match="uint8"):
        write_droid_raw_episode(tmp_path / "a", **{**kwargs, "exterior_frames": {LEFT: frames[LEFT].astype(float)}})
    with pytest.raises(DroidError, match="11 frames for 12"):
        write_droid_raw_episode(tmp_path / "b", **{**kwargs, "exterior_frames": {LEFT: frames[LEFT][:11]}})
    with pytest.raises(DroidError, match="cartesian_position"):
        write_droid_raw_episode(tmp_path / "c", **{**kwargs, "cartesian_position": states[:, :3]})
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name.startswith(".")) == []
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_episode_sources_and_config_errors(raw, tmp_path):
    found = list_raw_episodes(raw["root"])
    assert len(found) == 11 and all((p / "trajectory.h5").exists() for p in found)
    good = sorted(raw["good"])
    listing = tmp_path / "list.txt"
    listing.write_text(f"{good[0]}/trajectory.h5\n\n{good[1]} extra-column\n")
    assert [str(p) for p in list_raw_episodes(listing)] == good[:2]
    with pytest.raises(DroidError, match="frames_per_clip"):
        DroidConfig(frames_per_clip=1).validate()
    with pytest.raises(DroidError, match="camera"):
        DroidRawDataset(raw["root"], DroidConfig(camera="top"))
    with pytest.raises(DroidError, match="rank 2"):
        DroidRawDataset(raw["root"], DroidConfig(rank=2, world_size=2))
    with pytest.raises(DroidError, match="no DROID episodes"):
        DroidRawDataset(tmp_path)
