"""Reading DROID in RLDS form (`droid` 1.0.0 / 1.0.1, `droid_100`) through tensorflow-datasets.

TensorFlow is imported only when a pass starts (in the DataLoader worker that reads), never at
module import, so the rest of the project does not pay its seconds of import time or its memory;
TF is also told to leave any GPU alone. Construction reads only dataset_info.json and
features.json, to check the layout and count the shards without TF.

Each TFRecord shard is one unit of work: shards are shuffled per epoch and dealt to DDP ranks,
then to workers. An episode is one record; its metadata is checked first (success filter on
"/success/" in `episode_metadata/file_path`), then its steps are batched and only the chosen
camera's JPEGs at the sampled steps are decoded. States are `observation/cartesian_position` +
`gripper_position`; the recorded `action` field is never used. Note that RLDS stores float64
fields as 32-bit floats, so states carry about 7 significant digits.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from vjepa_wm.datasets.droid.common import (
    BadEpisode,
    DroidClip,
    DroidClipDataset,
    DroidConfig,
    DroidError,
    ReadStats,
    droid_states,
    episode_rng,
    make_clip,
    sample_windows,
)

RLDS_VERSIONS = ("1.0.0", "1.0.1")
# Camera choice -> observation image feature; RLDS has no left/right assignment.
RLDS_CAMERA_KEYS = {"exterior_1": "exterior_image_1_left", "exterior_2": "exterior_image_2_left", "wrist": "wrist_image_left"}
# Camera choice -> 1.0.1 episode_metadata extrinsics of that camera.
RLDS_EXTRINSICS_KEYS = {"exterior_1": "extrinsics_exterior_cam_1", "exterior_2": "extrinsics_exterior_cam_2"}
REQUIRED_FEATURES = ("steps/observation/cartesian_position", "steps/observation/gripper_position", "episode_metadata/file_path")
IMAGE_SHAPE = (180, 320, 3)


def import_tfds():
    """(tf, tfds), imported on first use; TF's C++ info logs are quietened and GPUs hidden from TF."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DroidError(f"DROID RLDS needs tensorflow-cpu and tensorflow-datasets ({err}); pip install 'vjepa_wm[rlds]'") from None
    try:
        tf.config.set_visible_devices([], "GPU")
    except (RuntimeError, ValueError):
        pass  # TF already initialised its devices in this process
    return tf, tfds


def droid_rlds_features(version: str = "1.0.1", image_shape: tuple[int, int, int] = IMAGE_SHAPE):
    """The published DROID RLDS `FeaturesDict` (steps + episode_metadata) of `version`.

    1.0.1 adds building, collector_id, date, task_category, the three camera extrinsics and
    scene_id to episode_metadata (their dtypes follow LeRobot's port; not checked on the bucket).
    """
    if version not in RLDS_VERSIONS:
        raise DroidError(f"DROID RLDS version {version!r} is not one of {', '.join(RLDS_VERSIONS)}")
    _, tfds = import_tfds()
    F = tfds.features

    def image(doc):
        return F.Image(shape=tuple(image_shape), dtype=np.uint8, encoding_format="jpeg", doc=doc)

    def vector(size, doc):
        return F.Tensor(shape=(size,), dtype=np.float64, doc=doc)

    observation = {
        "exterior_image_1_left": image("Exterior camera 1 left viewpoint"),
        "exterior_image_2_left": image("Exterior camera 2 left viewpoint"),
        "wrist_image_left": image("Wrist camera RGB left viewpoint"),
        "cartesian_position": vector(6, "Robot Cartesian state"),
        "gripper_position": vector(1, "Gripper position state"),
        "joint_position": vector(7, "Joint position state"),
    }
    action_dict = {
        "cartesian_position": vector(6, "Commanded Cartesian position"),
        "cartesian_velocity": vector(6, "Commanded Cartesian velocity"),
        "gripper_position": vector(1, "Commanded gripper position"),
        "gripper_velocity": vector(1, "Commanded gripper velocity"),
        "joint_position": vector(7, "Commanded joint position"),
        "joint_velocity": vector(7, "Commanded joint velocity"),
    }
    step = {
        "observation": F.FeaturesDict(observation),
        "action_dict": F.FeaturesDict(action_dict),
        "action": vector(7, "Robot action, consists of [6x joint velocities, 1x gripper position]."),
        "discount": F.Scalar(dtype=np.float32, doc="Discount if provided, default to 1."),
        "reward": F.Scalar(dtype=np.float32, doc="Reward if provided, 1 on final step for demos."),
        "is_first": F.Scalar(dtype=np.bool_, doc="True on first step of the episode."),
        "is_last": F.Scalar(dtype=np.bool_, doc="True on last step of the episode."),
        "is_terminal": F.Scalar(dtype=np.bool_, doc="True on last step of the episode if it is a terminal step, True for demos."),
        "language_instruction": F.Text(doc="Language Instruction."),
        "language_instruction_2": F.Text(doc="Alternative Language Instruction."),
        "language_instruction_3": F.Text(doc="Alternative Language Instruction."),
    }
    metadata = {
        "file_path": F.Text(doc="Path to the original data file."),
        "recording_folderpath": F.Text(doc="Path to the folder of recordings."),
    }
    if version == "1.0.1":
        metadata.update({
            "building": F.Text(doc="Building name."),
            "collector_id": F.Text(doc="Data collector ID."),
            "date": F.Text(doc="Date of collection."),
            "task_category": F.Text(doc="Task category."),
            "extrinsics_wrist_cam": vector(6, "Wrist camera extrinsics."),
            "extrinsics_exterior_cam_1": vector(6, "Exterior camera 1 extrinsics."),
            "extrinsics_exterior_cam_2": vector(6, "Exterior camera 2 extrinsics."),
            "scene_id": F.Scalar(dtype=np.int64, doc="Scene ID."),
        })
    return F.FeaturesDict({"steps": F.Dataset(step), "episode_metadata": F.FeaturesDict(metadata)})


@dataclass(frozen=True)
class RLDSInfo:
    """What a TFDS version directory says about itself (read from its JSON files, without TF)."""

    path: Path
    name: str
    version: str
    split: str
    shard_lengths: tuple[int, ...]
    features: frozenset[str]

    @property
    def num_shards(self) -> int:
        return len(self.shard_lengths)

    def shard_file(self, shard: int) -> Path:
        return self.path / f"{self.name}-{self.split}.tfrecord-{shard:05d}-of-{self.num_shards:05d}"


def read_rlds_info(path: str | Path, split: str = "train") -> RLDSInfo:
    """Parse ``<root>/<name>/<version>/{dataset_info,features}.json``; `DroidError` if it is not TFDS RLDS."""
    path = Path(path)
    try:
        info = json.loads((path / "dataset_info.json").read_text())
        features = json.loads((path / "features.json").read_text())
    except FileNotFoundError:
        raise DroidError(f"{path}: no dataset_info.json / features.json (pass the version folder, e.g. <root>/droid/1.0.1)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DroidError(f"{path}: unreadable TFDS metadata ({err})") from None
    try:  # hand-edited or foreign JSON: wrong shapes anywhere become one line naming the folder
        splits = {s.get("name"): s for s in info.get("splits", [])}
        if split not in splits:
            raise DroidError(f"{path}: no split {split!r} (splits: {', '.join(map(str, splits)) or 'none'})")
        if info.get("fileFormat", "tfrecord") != "tfrecord":
            raise DroidError(f"{path}: file format {info.get('fileFormat')!r} is not tfrecord")
        paths = frozenset(_feature_paths(features))
        lengths = tuple(int(n) for n in splits[split].get("shardLengths", []))
    except DroidError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise DroidError(f"{path}: malformed dataset_info.json / features.json ({type(err).__name__}: {err})") from None
    missing = [key for key in REQUIRED_FEATURES if key not in paths]
    if missing:
        raise DroidError(f"{path}: not a DROID RLDS dataset, features.json lacks {', '.join(missing)}")
    return RLDSInfo(path, str(info.get("name")), str(info.get("version")), split, lengths, paths)


def _feature_paths(node: dict, prefix: str = "") -> Iterator[str]:
    """Flattened feature names of a serialized FeaturesDict ('steps/observation/...')."""
    if "featuresDict" in node:
        for key, child in node["featuresDict"]["features"].items():
            yield from _feature_paths(child, f"{prefix}{key}/")
    elif "sequence" in node:
        yield from _feature_paths(node["sequence"]["feature"], prefix)
    else:
        yield prefix.rstrip("/")


class DroidRLDSDataset(DroidClipDataset):
    """Clips from a DROID RLDS version folder (e.g. ``<root>/droid/1.0.1`` or ``<root>/droid_100/1.0.0``).

    TFRecord shards are split across DDP ranks (round-robin after a per-epoch shuffle), then across
    DataLoader workers. Every rank must get at least one shard.
    """

    kind = "droid-rlds"

    def __init__(self, path: str | Path, config: DroidConfig | None = None):
        super().__init__(config)
        self.camera = self.config.camera or "exterior_1"
        if self.camera not in RLDS_CAMERA_KEYS:
            raise DroidError(f"camera {self.camera!r} does not exist in RLDS (it has {', '.join(RLDS_CAMERA_KEYS)}; "
                             "left/right are raw-format choices)")
        self.info = read_rlds_info(path, self.config.split)
        self.image_key = RLDS_CAMERA_KEYS[self.camera]
        if f"steps/observation/{self.image_key}" not in self.info.features:
            raise DroidError(f"{path}: features.json has no steps/observation/{self.image_key}")
        if self.info.num_shards < self.world_size:
            raise DroidError(f"{path}: {self.info.num_shards} shards cannot be split over {self.world_size} ranks")
        self._builder = None

    def __getstate__(self) -> dict:
        # The TFDS builder stays in the process that made it; spawned workers open their own.
        return {**self.__dict__, "_builder": None}

    def _units(self) -> list[int]:
        return list(range(self.info.num_shards))

    def _open_shard(self, shard: int):
        tf, tfds = import_tfds()
        if self._builder is None:
            self._builder = tfds.builder_from_directory(str(self.info.path))
        images = {key.rsplit("/", 1)[1]: tfds.decode.SkipDecoding() for key in self.info.features
                  if key.startswith("steps/observation/") and key.endswith(("_left", "_right"))}
        return tf, self._builder.as_dataset(split=f"{self.config.split}[{shard}shard]", shuffle_files=False,
                                            decoders={"steps": {"observation": images}})

    def _read_unit(self, shard: int, stats: ReadStats) -> Iterator[DroidClip]:
        tf, episodes = self._open_shard(shard)
        source = str(self.info.shard_file(shard))
        iterator = iter(episodes)
        while True:
            try:
                episode = next(iterator)
            except StopIteration:
                return
            except tf.errors.OpError as err:
                stats.skip(BadEpisode("corrupt_shard", f"{source}: {err.message.splitlines()[0]}"))
                return
            file_path = episode["episode_metadata"]["file_path"].numpy().decode("utf-8", "replace")
            if self.config.success_only and "/success/" not in file_path:
                stats.filtered += 1
                continue
            try:
                clips = self._clips(episode, file_path, source)
            except BadEpisode as err:
                stats.skip(err)
                continue
            stats.episodes += 1
            stats.clips += len(clips)
            yield from clips

    def _clips(self, episode, file_path: str, source: str) -> list[DroidClip]:
        """All clips of one episode record: batch its steps, then decode only the sampled JPEGs."""
        where = f"{source} ({file_path})"
        steps = next(iter(episode["steps"].batch(1 << 20)), None)
        if steps is None:
            raise BadEpisode("too_short", f"{where}: the episode has no steps")
        observation = steps["observation"]
        states = droid_states(observation["cartesian_position"].numpy(), observation["gripper_position"].numpy(), where)
        jpegs = observation[self.image_key].numpy()
        language = steps["language_instruction"].numpy()[0].decode("utf-8", "replace") if "language_instruction" in steps else ""
        extrinsics = None
        key = RLDS_EXTRINSICS_KEYS.get(self.camera)
        if key in episode["episode_metadata"]:
            extrinsics = np.tile(episode["episode_metadata"][key].numpy().astype(np.float64), (len(states), 1))
        rng = episode_rng(self.config, self.epoch, file_path)
        clips = []
        for indices in sample_windows(rng, len(states), self.config, where):
            frames = np.stack([_decode_jpeg(jpegs[i], where, int(i)) for i in indices])
            clips.append(make_clip(frames, states, indices, episode_id=os.path.dirname(file_path), source=source,
                                   camera=self.camera, language_instruction=language,
                                   extrinsics=None if extrinsics is None else extrinsics[indices]))
        return clips


def _decode_jpeg(data: bytes, where: str, index: int) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        raise BadEpisode("decode_failed", f"{where}: step {index} image is not a decodable JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
