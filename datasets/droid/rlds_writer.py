"""Writing small DROID RLDS datasets in the real TFDS on-disk layout, for tests and benchmarks.

The files are made by tensorflow-datasets itself: the DROID `FeaturesDict` serializes each
episode into one `tf.train.Example`, `tf.io.TFRecordWriter` writes the shards
(``<name>-train.tfrecord-0000i-of-0000n``), and `tfds.folder_dataset.write_metadata` writes
dataset_info.json and features.json. Episodes go to shards in order (contiguous runs), so a test
knows which shard holds which episode. The result reads with `tfds.builder_from_directory`.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from vjepa_wm.datasets.droid.common import DroidError
from vjepa_wm.datasets.droid.rlds import IMAGE_SHAPE, RLDS_VERSIONS, droid_rlds_features, import_tfds

RLDS_CAMERA_FIELDS = ("exterior_image_1_left", "exterior_image_2_left", "wrist_image_left")


def rlds_episode(
    *,
    cartesian_position: np.ndarray,
    gripper_position: np.ndarray,
    file_path: str,
    images: Mapping[str, np.ndarray],
    joint_position: np.ndarray | None = None,
    action: np.ndarray | None = None,
    language_instruction: str = "",
    recording_folderpath: str | None = None,
    metadata: Mapping[str, object] | None = None,
    version: str = "1.0.1",
    image_shape: tuple[int, int, int] = IMAGE_SHAPE,
) -> dict:
    """One episode as the nested dict the DROID `FeaturesDict` serializes.

    images: {"exterior_image_1_left" | "exterior_image_2_left" | "wrist_image_left": uint8 [T, H, W, 3]};
        a camera left out is filled with black frames (every DROID step has all three).
    file_path: the original ``.../<success|failure>/<date>/<time>/trajectory.h5`` path.
    action: the recorded [T, 7] `action` field (zeros if None); readers must not rely on it.
    metadata: 1.0.1 episode_metadata extras (building, collector_id, date, task_category,
        extrinsics_*_cam, scene_id); unset ones are empty / zero / -1.
    `action_dict`, `joint_position` (when None), reward 0 and discount 1 are placeholders.
    """
    cartesian = np.asarray(cartesian_position, dtype=np.float64)
    if cartesian.ndim != 2 or cartesian.shape[1] != 6 or len(cartesian) < 1:
        raise DroidError(f"cartesian_position must be [T, 6] with T >= 1, got {cartesian.shape}")
    steps = len(cartesian)
    gripper = np.asarray(gripper_position, dtype=np.float64).reshape(steps, 1)
    joints = np.zeros((steps, 7)) if joint_position is None else np.asarray(joint_position, dtype=np.float64)
    action = np.zeros((steps, 7)) if action is None else np.asarray(action, dtype=np.float64)
    if joints.shape != (steps, 7) or action.shape != (steps, 7):
        raise DroidError(f"joint_position and action must be [{steps}, 7], got {joints.shape} and {action.shape}")
    unknown = set(images) - set(RLDS_CAMERA_FIELDS)
    if unknown:
        raise DroidError(f"unknown RLDS image fields {sorted(unknown)} (use {', '.join(RLDS_CAMERA_FIELDS)})")
    black = np.zeros((steps, *image_shape), dtype=np.uint8)
    frames = {key: np.asarray(images.get(key, black)) for key in RLDS_CAMERA_FIELDS}
    for key, value in frames.items():
        if value.dtype != np.uint8 or value.shape != (steps, *image_shape):
            raise DroidError(f"{key}: expected uint8 {(steps, *image_shape)}, got {value.dtype} {value.shape}")
    zeros1, zeros6, zeros7 = np.zeros(1), np.zeros(6), np.zeros(7)
    episode_steps = [
        {
            "observation": {**{key: frames[key][t] for key in RLDS_CAMERA_FIELDS},
                            "cartesian_position": cartesian[t], "gripper_position": gripper[t], "joint_position": joints[t]},
            "action_dict": {"cartesian_position": zeros6, "cartesian_velocity": zeros6, "gripper_position": zeros1,
                            "gripper_velocity": zeros1, "joint_position": zeros7, "joint_velocity": zeros7},
            "action": action[t],
            "discount": 1.0,
            "reward": 0.0,
            "is_first": t == 0,
            "is_last": t == steps - 1,
            "is_terminal": t == steps - 1,
            "language_instruction": language_instruction,
            "language_instruction_2": "",
            "language_instruction_3": "",
        }
        for t in range(steps)
    ]
    episode_metadata = {"file_path": file_path,
                        "recording_folderpath": recording_folderpath or str(Path(file_path).parent / "recordings" / "MP4")}
    if version == "1.0.1":
        extras = {"building": "", "collector_id": "", "date": "", "task_category": "", "scene_id": -1,
                  "extrinsics_wrist_cam": zeros6, "extrinsics_exterior_cam_1": zeros6, "extrinsics_exterior_cam_2": zeros6}
        unknown = set(metadata or {}) - set(extras)
        if unknown:
            raise DroidError(f"unknown 1.0.1 episode_metadata fields {sorted(unknown)}")
        episode_metadata.update({**extras, **(metadata or {})})
    elif metadata:
        raise DroidError("DROID RLDS 1.0.0 has no episode_metadata beyond file_path and recording_folderpath")
    return {"steps": episode_steps, "episode_metadata": episode_metadata}


def write_droid_rlds(
    root: str | Path,
    episodes: Sequence[dict],
    *,
    name: str = "droid",
    version: str = "1.0.1",
    num_shards: int = 1,
    image_shape: tuple[int, int, int] = IMAGE_SHAPE,
    overwrite: bool = False,
) -> Path:
    """Write `episodes` (from `rlds_episode`) as ``root/<name>/<version>/`` and return that folder.

    `name` is "droid" or "droid_100" (any identifier works); episodes fill the shards in order.
    The folder is built beside its final place and renamed in when complete; an existing one is
    refused unless `overwrite`.
    """
    if version not in RLDS_VERSIONS:
        raise DroidError(f"DROID RLDS version {version!r} is not one of {', '.join(RLDS_VERSIONS)}")
    if not name.isidentifier() or name != name.lower():
        raise DroidError(f"dataset name {name!r} must be a lower-case identifier such as droid or droid_100")
    if not 1 <= num_shards <= len(episodes):
        raise DroidError(f"num_shards must be in 1..{len(episodes)} (one episode per shard at least), got {num_shards}")
    target = Path(root) / name / version
    if target.exists() and not overwrite:
        raise DroidError(f"{target} already exists; pass overwrite=True to replace it")
    tf, tfds = import_tfds()
    features = droid_rlds_features(version, image_shape)
    # TFDS takes the dataset name and version from the folder path, so build under the same names.
    staging_root = Path(root) / f".{name}-{version}.partial"
    staging = staging_root / name / version
    shutil.rmtree(staging_root, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        template = tfds.core.ShardedFileTemplate(data_dir=staging, dataset_name=name, split="train", filetype_suffix="tfrecord")
        lengths, total = [], 0
        for shard, members in enumerate(np.array_split(np.arange(len(episodes)), num_shards)):
            path = template.sharded_filepath(shard_index=shard, num_shards=num_shards)
            with tf.io.TFRecordWriter(str(path)) as writer:
                for index in members:
                    record = features.serialize_example(episodes[index])
                    writer.write(record)
                    total += len(record)
            lengths.append(len(members))
        split = tfds.core.SplitInfo(name="train", shard_lengths=lengths, num_bytes=total, filename_template=template)
        tfds.folder_dataset.write_metadata(data_dir=staging, features=features, split_infos=[split], version=version,
                                           check_data=True)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    return target
