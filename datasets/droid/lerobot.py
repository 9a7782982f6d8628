"""DROID in LeRobot form (`lerobot/droid_1.0.1`, v3.0, or a v2.1 port) read into the same clips as raw and RLDS.

The port's `observation.state` and `action` are joint space (8-D), so the Franka state is built
from the cartesian fields instead: ``observation.state.cartesian_position`` (6) +
``observation.state.gripper_position`` (1), and actions are their deltas (`Franka().deltas`),
as for raw and RLDS DROID. Frames and states are taken at the same rows, `row_stride` rows apart
at the dataset's fps (15 for DROID); a row's frame is the one its video shows at the episode's
``from_timestamp`` + the row's ``timestamp``, decoded with PyAV (AV1 or H.264) by exact seeking.
Episodes whose ``is_episode_successful`` is false are filtered when `success_only` (a dataset
without that field is not filtered). Episodes are the units: shuffled per epoch, dealt to ranks,
then workers.

`source` is a local folder, a hub id resolved in the Hugging Face cache (`download=True` to
fetch a missing one), or a `LeRobotSelection` (a dataset and some of its episodes, as
`split_lerobot` makes for held-out episodes).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

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
from vjepa_wm.datasets.lerobot_format import EpisodeLocation, LeRobotDataset, LeRobotError, open_dataset

CARTESIAN = "observation.state.cartesian_position"
GRIPPER = "observation.state.gripper_position"
SUCCESS = "is_episode_successful"
LANGUAGE = "language_instruction"
# Camera choice -> the port's video key and its (episode-constant) extrinsics field.
LEROBOT_CAMERA_KEYS = {"exterior_1": "observation.images.exterior_1_left", "exterior_2": "observation.images.exterior_2_left",
                       "wrist": "observation.images.wrist_left"}
EXTRINSICS_KEYS = {camera: f"camera_extrinsics.{key.rsplit('.', 1)[1]}" for camera, key in LEROBOT_CAMERA_KEYS.items()}


@dataclass
class LeRobotSelection:
    """A LeRobot dataset and the episode indices to read from it (None: all)."""

    dataset: LeRobotDataset
    episodes: list[int] | None = None

    def locations(self) -> list[EpisodeLocation]:
        if self.episodes is None:
            return list(self.dataset.episodes)
        wanted = set(self.episodes)
        return [e for e in self.dataset.episodes if e.index in wanted]


def open_droid_lerobot(source, download: bool = False) -> LeRobotSelection:
    if isinstance(source, LeRobotSelection):
        return source
    try:
        return LeRobotSelection(open_dataset(source, download))
    except LeRobotError as err:
        raise DroidError(str(err)) from None


def split_lerobot(path, val_path=None, fraction: float = 0.0, download: bool = False) -> tuple[LeRobotSelection, LeRobotSelection | None]:
    """(training, held-out) episodes: all of `path` and all of `val_path` when given, else a split
    by a hash of each episode index (stable as the dataset grows), `fraction` held out."""
    train = open_droid_lerobot(path, download)
    if val_path:
        return train, open_droid_lerobot(val_path, download)
    if fraction <= 0:
        return train, None
    indices = [e.index for e in train.dataset.episodes]
    held = [i for i in indices if zlib.crc32(f"episode_{i}".encode()) % 10_000 < fraction * 10_000]
    if not held or len(held) == len(indices):
        return train, None
    kept = sorted(set(indices) - set(held))
    return LeRobotSelection(train.dataset, kept), LeRobotSelection(train.dataset, held)


def _camera_key(dataset: LeRobotDataset, camera: str) -> str:
    if camera not in LEROBOT_CAMERA_KEYS:
        raise DroidError(f"camera {camera!r} does not exist in LeRobot DROID (it has {', '.join(LEROBOT_CAMERA_KEYS)}; "
                         "left/right are raw-format choices)")
    key = LEROBOT_CAMERA_KEYS[camera]
    if key not in dataset.features:
        videos = ", ".join(dataset.video_keys) or "none"
        raise DroidError(f"{dataset.root}: no camera {key} (video features: {videos})")
    if dataset.features[key].get("dtype") != "video":
        raise DroidError(f"{dataset.root}: {key} is stored as {dataset.features[key].get('dtype')}, not video")
    return key


class LeRobotEpisode:
    """One episode's [N, 7] states, language, success flag and where its chosen camera's frames are."""

    def __init__(self, dataset: LeRobotDataset, location: EpisodeLocation, camera: str):
        self.dataset, self.location, self.camera = dataset, location, camera
        self.video_key = LEROBOT_CAMERA_KEYS[camera]
        self.where = f"{dataset.root} episode {location.index}"
        features = dataset.features
        columns = [CARTESIAN, GRIPPER, "timestamp"]
        optional = [name for name in (SUCCESS, LANGUAGE, EXTRINSICS_KEYS[camera]) if name in features]
        try:
            rows = dataset.read_rows(location, columns + optional)
        except LeRobotError as err:
            raise BadEpisode("missing_file", str(err)) from None
        self.success = bool(rows[SUCCESS][0]) if SUCCESS in rows else True
        self.states = droid_states(rows[CARTESIAN], rows[GRIPPER], self.where)
        self.timestamps = rows["timestamp"].astype(np.float64).reshape(-1)
        self.language_instruction = str(rows[LANGUAGE][0]) if LANGUAGE in rows else (location.tasks[0] if location.tasks else "")
        extrinsics = rows.get(EXTRINSICS_KEYS[camera])
        self.extrinsics = extrinsics.astype(np.float64) if extrinsics is not None and extrinsics.shape == (len(self.states), 6) else None
        if self.video_key not in location.videos:
            raise BadEpisode("missing_camera", f"{self.where}: no {self.video_key} video")
        file, self.video_start = location.videos[self.video_key]
        self.video = dataset.root / file

    @property
    def id(self) -> str:
        return f"{self.dataset.root}#episode_{self.location.index:06d}"

    def read_frames(self, indices: np.ndarray) -> np.ndarray:
        from vjepa_wm.datasets.video_av import VideoError, decode_at

        if not self.video.is_file():
            raise BadEpisode("missing_file", f"{self.video} does not exist")
        try:
            return decode_at(self.video, self.video_start + self.timestamps[indices])
        except VideoError as err:
            raise BadEpisode("decode_failed", f"{self.where}: {err}") from None

    def clip(self, indices: np.ndarray) -> DroidClip:
        return make_clip(self.read_frames(indices), self.states, indices, episode_id=self.id, source=str(self.video),
                         camera=self.camera, language_instruction=self.language_instruction,
                         extrinsics=None if self.extrinsics is None else self.extrinsics[indices])


def _check_fields(dataset: LeRobotDataset) -> None:
    missing = [name for name in (CARTESIAN, GRIPPER, "timestamp") if name not in dataset.features]
    if missing:
        raise DroidError(f"{dataset.root}: not LeRobot DROID, features lack {', '.join(missing)} "
                         "(observation.state is joint space; the cartesian fields are needed)")


class DroidLeRobotDataset(DroidClipDataset):
    """Clips from DROID in LeRobot format; camera default exterior_1 (``exterior_1_left``)."""

    kind = "droid-lerobot"

    def __init__(self, source: str | Path | LeRobotSelection, config: DroidConfig | None = None, download: bool = False):
        super().__init__(config)
        self.camera = self.config.camera or "exterior_1"
        self.selection = open_droid_lerobot(source, download)
        self.dataset = self.selection.dataset
        _check_fields(self.dataset)
        _camera_key(self.dataset, self.camera)
        self.episodes = self.selection.locations()
        if not self.episodes:
            raise DroidError(f"{self.dataset.root}: no episodes")

    def _units(self) -> list[EpisodeLocation]:
        return list(self.episodes)

    def _read_unit(self, location: EpisodeLocation, stats: ReadStats) -> Iterator[DroidClip]:
        try:
            episode = LeRobotEpisode(self.dataset, location, self.camera)
            if self.config.success_only and not episode.success:
                stats.filtered += 1
                return
            rng = episode_rng(self.config, self.epoch, episode.id)
            clips = [episode.clip(indices) for indices in sample_windows(rng, len(episode.states), self.config, episode.where)]
        except BadEpisode as err:
            stats.skip(err)
            return
        stats.episodes += 1
        stats.clips += len(clips)
        yield from clips


class LeRobotClipSource:
    """Every episode of a LeRobot dataset as a pretraining clip source (frames only).

    The camera is DROID's exterior_1_left when the dataset has it, else its first video feature.
    Frames are taken `round(dataset fps / fps)` rows apart, as the raw source does at 15 Hz.
    """

    def __init__(self, source: str | Path, camera: str | None = None):
        try:
            self.dataset = open_dataset(source)
        except LeRobotError as err:
            raise DroidError(str(err)) from None
        keys = self.dataset.video_keys
        if not keys:
            raise DroidError(f"{self.dataset.root}: no video features")
        self.key = camera or (LEROBOT_CAMERA_KEYS["exterior_1"] if LEROBOT_CAMERA_KEYS["exterior_1"] in keys else keys[0])
        if self.key not in keys:
            raise DroidError(f"{self.dataset.root}: no video feature {self.key} (has {', '.join(keys)})")

    def __len__(self) -> int:
        return len(self.dataset.episodes)

    def describe(self, index: int) -> str:
        return f"{self.dataset.root}#episode_{self.dataset.episodes[index].index:06d}"

    def clip(self, index: int, num_frames: int, fps: float, generator: torch.Generator) -> np.ndarray:
        """uint8 RGB ``[num_frames, H, W, 3]`` from a random window (`ValueError` if the episode is too short)."""
        from vjepa_wm.datasets.video_av import decode_at

        location = self.dataset.episodes[index]
        stride = max(1, int(round(self.dataset.fps / fps)))
        span = (num_frames - 1) * stride + 1
        if location.length < span:
            raise ValueError(f"{self.describe(index)}: {location.length} rows, fewer than the {span} a {num_frames}-frame clip spans")
        start = int(torch.randint(location.length - span + 1, (1,), generator=generator))
        timestamps = self.dataset.read_rows(location, ["timestamp"])["timestamp"].astype(np.float64).reshape(-1)
        file, offset = location.videos[self.key]
        return decode_at(self.dataset.root / file, offset + timestamps[start + stride * np.arange(num_frames)])


def lerobot_files(selection: LeRobotSelection) -> list[Path]:
    """The files a selection's clips come from (for fingerprints): meta/ and each episode's data and videos."""
    root = selection.dataset.root
    files = {root / "meta"}
    for location in selection.locations():
        files.add(root / location.data_file)
        files.update(root / file for file, _ in location.videos.values())
    return sorted(files)

