"""DROID RLDS: tiny datasets written by tensorflow-datasets in the real on-disk layout, read back through
`tfds.builder_from_directory` by `DroidRLDSDataset`. The datasets are written once per module
(TensorFlow's import and the writes take seconds)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from torch.utils.data import DataLoader

from test_droid_raw import barcode_frames, episode_states, read_barcode
from vjepa_wm.datasets.droid.common import DroidConfig, DroidError, collate_clips
from vjepa_wm.datasets.droid.rlds import DroidRLDSDataset, import_tfds, read_rlds_info
from vjepa_wm.datasets.droid.rlds_writer import rlds_episode, write_droid_rlds
from vjepa_wm.embodiments.franka import states_to_actions

STEPS = 36
SHAPE = (180, 320, 3)
CAMERAS = {"exterior_image_1_left": 1, "exterior_image_2_left": 2, "wrist_image_left": 3}
SENTINEL_ACTION = 9.0  # the recorded `action` field; a reader that used it would return 9s


def droid_path(index: int, success: bool) -> str:
    return f"/droid_raw/1.0.1/LAB/{'success' if success else 'failure'}/2023-11-18/episode_{index:02d}/trajectory.h5"


def make_episode(index: int, success: bool = True, steps: int = STEPS, version: str = "1.0.1", states=None):
    states = episode_states(100 + index, steps) if states is None else states
    images = {key: barcode_frames(steps, number, *SHAPE[:2]) for key, number in CAMERAS.items()}
    metadata = {"extrinsics_exterior_cam_1": np.arange(6.0) + index, "building": "B1", "scene_id": index}
    return rlds_episode(cartesian_position=states[:, :6], gripper_position=states[:, 6], file_path=droid_path(index, success),
                        images=images, action=np.full((steps, 7), SENTINEL_ACTION), language_instruction=f"put block {index}",
                        metadata=metadata if version == "1.0.1" else None, version=version), states


@pytest.fixture(scope="module")
def rlds(tmp_path_factory):
    """droid/1.0.1 in 4 shards of 2 episodes (one failure, one NaN, one too short), and droid_100/1.0.0."""
    root = tmp_path_factory.mktemp("droid_rlds")
    episodes, good = [], {}
    for index in range(8):
        states = episode_states(100 + index, STEPS)
        kind = {2: "failure", 5: "nan", 6: "short"}.get(index, "good")
        if kind == "nan":
            states[3, 4] = np.inf
        episode, states = make_episode(index, success=kind != "failure", steps=10 if kind == "short" else STEPS, states=None
                                       if kind == "short" else states)
        episodes.append(episode)
        if kind == "good":
            good[droid_path(index, True).rsplit("/", 1)[0]] = states
    droid = write_droid_rlds(root, episodes, name="droid", version="1.0.1", num_shards=4)
    small = [make_episode(index, version="1.0.0")[0] for index in (20, 21)]
    droid_100 = write_droid_rlds(root, small, name="droid_100", version="1.0.0", num_shards=1)
    return {"root": root, "droid": droid, "droid_100": droid_100, "good": good}


def test_on_disk_layout_is_tfds(rlds):
    droid = rlds["droid"]
    assert droid == rlds["root"] / "droid" / "1.0.1"
    assert sorted(p.name for p in droid.iterdir()) == [
        "dataset_info.json", *[f"droid-train.tfrecord-{i:05d}-of-00004" for i in range(4)], "features.json"]
    info = json.loads((droid / "dataset_info.json").read_text())
    assert info["name"] == "droid" and info["version"] == "1.0.1" and info["fileFormat"] == "tfrecord"
    assert info["splits"][0]["shardLengths"] == ["2", "2", "2", "2"]
    features = read_rlds_info(droid).features
    expected = {f"steps/observation/{k}" for k in ("exterior_image_1_left", "exterior_image_2_left", "wrist_image_left",
                                                    "cartesian_position", "gripper_position", "joint_position")}
    expected |= {f"steps/action_dict/{k}" for k in ("cartesian_position", "cartesian_velocity", "gripper_position",
                                                     "gripper_velocity", "joint_position", "joint_velocity")}
    expected |= {f"steps/{k}" for k in ("action", "discount", "reward", "is_first", "is_last", "is_terminal",
                                        "language_instruction", "language_instruction_2", "language_instruction_3")}
    metadata_100 = {"episode_metadata/file_path", "episode_metadata/recording_folderpath"}
    metadata_101 = metadata_100 | {f"episode_metadata/{k}" for k in (
        "building", "collector_id", "date", "task_category", "extrinsics_wrist_cam", "extrinsics_exterior_cam_1",
        "extrinsics_exterior_cam_2", "scene_id")}
    assert features == expected | metadata_101
    assert read_rlds_info(rlds["droid_100"]).features == expected | metadata_100
    node = json.loads((droid / "features.json").read_text())["featuresDict"]["features"]["steps"]
    observation = node["sequence"]["feature"]["featuresDict"]["features"]["observation"]["featuresDict"]["features"]
    assert observation["exterior_image_1_left"]["image"]["encodingFormat"] == "jpeg"
    assert observation["exterior_image_1_left"]["image"]["shape"]["dimensions"] == ["180", "320", "3"]
    assert observation["cartesian_position"]["tensor"]["dtype"] == "float64"
    _, tfds = import_tfds()
    builder = tfds.builder_from_directory(str(droid))
    assert (builder.info.name, str(builder.info.version), builder.info.splits["train"].num_examples) == ("droid", "1.0.1", 8)


def test_clips_have_the_right_frames_states_and_actions(rlds):
    dataset = DroidRLDSDataset(rlds["droid"], DroidConfig(shuffle=False, clips_per_episode=2))
    clips = list(dataset)
    assert {clip.episode_id for clip in clips} == set(rlds["good"]) and len(clips) == 10
    assert dataset.stats.filtered == 1 and dict(dataset.stats.skipped) == {"nan_states": 1, "too_short": 1}
    for clip in clips:
        written = rlds["good"][clip.episode_id]
        assert clip.frames.dtype == np.uint8 and clip.frames.shape == (8, *SHAPE)
        assert [read_barcode(frame) for frame in clip.frames] == [(int(i), 1) for i in clip.indices]
        assert np.all(np.diff(clip.indices) == 4)
        # RLDS keeps float64 fields as 32-bit floats.
        np.testing.assert_allclose(clip.states, written[clip.indices], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(clip.actions, states_to_actions(clip.states), atol=1e-12)
        assert not np.any(clip.actions == SENTINEL_ACTION)
        index = int(clip.episode_id.rsplit("_", 1)[1])
        assert clip.language_instruction == f"put block {index}"
        np.testing.assert_array_equal(clip.extrinsics, np.tile(np.arange(6.0) + index, (8, 1)))
        assert clip.source.startswith(str(rlds["droid"] / "droid-train.tfrecord-"))


@pytest.mark.parametrize("camera, number", [("exterior_2", 2), ("wrist", 3)])
def test_camera_choice(rlds, camera, number):
    clip = next(iter(DroidRLDSDataset(rlds["droid"], DroidConfig(camera=camera, shuffle=False))))
    assert {read_barcode(frame)[1] for frame in clip.frames} == {number}
    assert clip.camera == camera and (clip.extrinsics is None) == (camera == "wrist")


def test_success_filter_reads_the_failure_when_off(rlds):
    ids = {clip.episode_id for clip in DroidRLDSDataset(rlds["droid"], DroidConfig(success_only=False))}
    assert droid_path(2, False).rsplit("/", 1)[0] in ids and len(ids) == 6


def test_shards_are_split_across_ranks(rlds):
    def keys(dataset):
        return {(clip.episode_id, tuple(clip.indices.tolist())) for clip in dataset}

    everything = keys(DroidRLDSDataset(rlds["droid"], DroidConfig(rank=0, world_size=1)))
    ranks = [DroidRLDSDataset(rlds["droid"], DroidConfig(rank=r, world_size=2)) for r in (0, 1)]
    shards = [set(d.rank_units()) for d in ranks]
    assert shards[0].isdisjoint(shards[1]) and shards[0] | shards[1] == {0, 1, 2, 3} and len(shards[0]) == 2
    per_rank = [keys(d) for d in ranks]
    assert per_rank[0].isdisjoint(per_rank[1]) and per_rank[0] | per_rank[1] == everything
    with pytest.raises(DroidError, match="4 shards cannot be split over 5 ranks"):
        DroidRLDSDataset(rlds["droid"], DroidConfig(rank=0, world_size=5))


def test_dataloader_workers(rlds):
    config = DroidConfig(seed=7)
    single = sorted((c.episode_id, tuple(c.indices.tolist())) for c in DroidRLDSDataset(rlds["droid"], config))
    loader = DataLoader(DroidRLDSDataset(rlds["droid"], config), batch_size=2, num_workers=2, collate_fn=collate_clips)
    batched = []
    for batch in loader:
        assert batch["frames"].shape[1:] == (8, *SHAPE) and batch["actions"].shape[1:] == (7, 7)
        batched += [(e, tuple(i)) for e, i in zip(batch["episode_id"], batch["indices"].tolist())]
    assert sorted(batched) == single and len(single) == 5


def test_droid_100_version_1_0_0(rlds):
    clips = list(DroidRLDSDataset(rlds["droid_100"], DroidConfig(shuffle=False)))
    assert len(clips) == 2 and all(clip.extrinsics is None for clip in clips)
    assert [read_barcode(frame)[0] for frame in clips[0].frames] == clips[0].indices.tolist()


def test_corrupt_shard_is_counted_and_the_others_still_read(rlds, tmp_path):
    copy = shutil.copytree(rlds["droid"], tmp_path / "droid" / "1.0.1")
    shard = copy / "droid-train.tfrecord-00001-of-00004"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    shard.write_bytes(bytes(data))
    dataset = DroidRLDSDataset(copy, DroidConfig(shuffle=False))
    ids = {clip.episode_id for clip in dataset}
    assert dataset.stats.skipped["corrupt_shard"] == 1
    assert ids == set(rlds["good"]) - {droid_path(i, True).rsplit("/", 1)[0] for i in (2, 3)}


def test_bad_layouts_are_refused(rlds, tmp_path):
    with pytest.raises(DroidError, match="dataset_info.json"):
        DroidRLDSDataset(rlds["root"] / "droid")
    with pytest.raises(DroidError, match="left/right"):
        DroidRLDSDataset(rlds["droid"], DroidConfig(camera="left"))
    copy = shutil.copytree(rlds["droid_100"], tmp_path / "droid_100" / "1.0.0")
    features = json.loads((copy / "features.json").read_text())
    steps = features["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]
    del steps["observation"]["featuresDict"]["features"]["wrist_image_left"]
    (copy / "features.json").write_text(json.dumps(features))
    with pytest.raises(DroidError, match="wrist_image_left"):
        DroidRLDSDataset(copy, DroidConfig(camera="wrist"))
    with pytest.raises(DroidError, match="already exists"):
        write_droid_rlds(rlds["root"], [make_episode(0)[0]], name="droid", version="1.0.1")
