"""Training clips from NWM-format trajectory folders: frames, SE(2) poses and car actions.

A clip is `frames_per_clip` frames of one trajectory, `frame_stride` 4 Hz samples apart (1 = 4 Hz,
the rate NWM trains and plans at), with the poses at the same samples as states ``[T, 3]`` (x, y,
yaw from `traj_data.pkl`) and the actions between them from the `Car` embodiment's `deltas`
(local-frame (dx, dy) over the waypoint spacing, wrapped dyaw), the model's own convention, so a
trained model integrates exactly what it was shown. The states are seen from the pose of one
frame of the clip, `origin_frame` (x, y in metres in its frame, yaw wrapped relative to its yaw):
the predictor embeds the state, and raw odometry coordinates (not re-zeroed, hundreds of metres
from the origin in TartanDrive) would tell it where on the map a drive was instead of how it
moved; the actions do not change, since `deltas` is the same in any frame. Navigation replay plans
from (0, 0, 0) at the last context frame, so a model for it trains with that frame as the origin
(`nav_sim`: frame 3 of 4 context + 8 plan steps).

Frames stay as stored (NWM's 320 x 240): the world-model side crops and resizes them, as it does
DROID's, and its 0.75..1.35 aspect crop keeps a 4:3 frame whole before squashing it to the square
img_size, which is what NWM's own CenterCropAR (4:3) + Resize does.

Sampling follows the DROID readers (`datasets.droid.common`): trajectories are shuffled per epoch
with the seed and dealt round-robin to DDP ranks, then to DataLoader workers; the windows of a
trajectory come from an RNG seeded by (seed, epoch, trajectory name), so a clip depends on neither
the number of ranks nor of workers, and an epoch is the same every time it is read (the trainer's
exact resume relies on that). A trajectory that cannot give a clip is skipped and counted by reason.
"""
from __future__ import annotations

import logging
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from vjepa_wm.datasets.droid.common import resolve_rank
from vjepa_wm.embodiments.car import Car

from . import nwm_format
from .safe_pickle import UnsafePickleError

log = logging.getLogger("datasets.tartandrive")

SAMPLE_HZ = 4.0  # NWM's trajectory rate: one frame and pose every 0.25 s
SPLITS = "splits"

# Why a trajectory gave no clip. Each skipped trajectory is counted under exactly one of these.
SKIP_REASONS: dict[str, str] = {
    "missing": "the trajectory folder or its traj_data.pkl does not exist",
    "unsafe_pickle": "traj_data.pkl would run code when unpickled (refused without running it)",
    "bad_traj_data": "traj_data.pkl is unreadable or not {position [T, 2], yaw [T]}",
    "nan_poses": "the poses hold NaN or inf",
    "too_short": "the trajectory is shorter than one clip window",
    "bad_frame": "a sampled frame is missing, not a readable JPEG, or of another size than the others",
}


class BadTrajectory(ValueError):
    """One trajectory that cannot give a clip; `reason` is a key of `SKIP_REASONS`."""

    def __init__(self, reason: str, detail: str):
        if reason not in SKIP_REASONS:
            raise KeyError(f"unknown skip reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass
class NavClipConfig:
    """How clips are cut from NWM trajectories and split across ranks."""

    frames_per_clip: int = 12  # frames per clip: NWM plans from 4 context frames 8 steps ahead
    frame_stride: int = 1  # 4 Hz samples between clip frames (1 = 4 Hz, NWM's rate)
    clips_per_trajectory: int = 1  # random windows per trajectory per pass
    origin_frame: int = 0  # clip frame whose pose the states are seen from (a planner's "now": the last context frame)
    shuffle: bool = True  # shuffle the trajectory order per epoch
    seed: int = 0  # seed of the order and the windows
    rank: int | None = None  # None: from torch.distributed, else RANK, else 0
    world_size: int | None = None  # None: from torch.distributed, else WORLD_SIZE, else 1

    def validate(self) -> "NavClipConfig":
        if self.frames_per_clip < 2:
            raise ValueError(f"frames_per_clip must be at least 2 (actions need two poses), got {self.frames_per_clip}")
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride must be at least 1, got {self.frame_stride}")
        if self.clips_per_trajectory < 1:
            raise ValueError(f"clips_per_trajectory must be at least 1, got {self.clips_per_trajectory}")
        if not 0 <= self.origin_frame < self.frames_per_clip:
            raise ValueError(f"origin_frame must be a frame of the clip, 0..{self.frames_per_clip - 1}, got {self.origin_frame}")
        resolve_rank(self)
        return self

    @property
    def window(self) -> int:
        """4 Hz samples one clip spans, first to last frame inclusive."""
        return (self.frames_per_clip - 1) * self.frame_stride + 1


@dataclass
class NavClip:
    """One clip: frames and the poses at the same samples, and the car actions between them.

    frames: uint8 [T, H, W, 3] RGB as stored. states: float64 [T, 3] x, y (m), yaw (rad), seen from the origin frame's pose.
    actions: float64 [T-1, 3] = `Car.deltas(states)`. indices: int64 [T], the frame numbers.
    """

    frames: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    indices: np.ndarray
    trajectory: str


def trajectory_folders(root: str | Path, names_file: str | Path | None = None) -> list[Path]:
    """The trajectory folders of an NWM dataset: those a `traj_names.txt` (or a split folder holding
    one) lists, resolved under `root`, else every trajectory folder in `root`. Listed folders are
    not checked here: a missing one is skipped and counted when read."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such NWM dataset folder")
    if names_file is None:
        return [root / name for name in nwm_format.list_trajectories(root)]
    return [root / name for name in nwm_format.read_traj_names(names_file)]


def split_file(root: str | Path, split: str) -> Path | None:
    """``root/splits/<split>/traj_names.txt`` (as `nav-process` writes it) when it exists."""
    path = Path(root) / SPLITS / split / nwm_format.TRAJ_NAMES
    return path if path.is_file() else None


def training_trajectories(root: str | Path) -> list[Path]:
    """The train split when the dataset has one (the test split stays held out), else every trajectory."""
    return trajectory_folders(root, split_file(root, "train"))


def read_poses(folder: Path) -> nwm_format.NWMTrajectory:
    """A trajectory's poses (frames are read on demand), or `BadTrajectory`."""
    if not (folder / nwm_format.TRAJ_DATA).is_file():
        raise BadTrajectory("missing", f"{folder}: no {nwm_format.TRAJ_DATA}")
    try:
        position, yaw = nwm_format.read_traj_data(folder / nwm_format.TRAJ_DATA)
    except UnsafePickleError as err:
        raise BadTrajectory("unsafe_pickle", str(err)) from None
    except ValueError as err:
        raise BadTrajectory("bad_traj_data", str(err)) from None
    trajectory = nwm_format.NWMTrajectory(folder, position, yaw)
    if not np.isfinite(trajectory.poses).all():
        raise BadTrajectory("nan_poses", f"{folder}: poses hold NaN or inf")
    return trajectory


def read_frames(trajectory: nwm_format.NWMTrajectory, indices: np.ndarray) -> np.ndarray:
    """uint8 ``[len(indices), H, W, 3]``, or `BadTrajectory` ("bad_frame")."""
    try:
        frames = [trajectory.image(int(i)) for i in indices]
    except ValueError as err:
        raise BadTrajectory("bad_frame", str(err)) from None
    if len({frame.shape for frame in frames}) != 1:
        raise BadTrajectory("bad_frame", f"{trajectory.folder}: frames of different sizes {sorted({f.shape for f in frames})}")
    return np.stack(frames)


def relative_poses(poses: np.ndarray, origin: int = 0) -> np.ndarray:
    """``[T, 3]`` poses seen from pose `origin`: positions rotated into its frame, yaw differences wrapped."""
    yaw0 = poses[origin, 2]
    cos, sin = np.cos(yaw0), np.sin(yaw0)
    dx, dy = poses[:, 0] - poses[origin, 0], poses[:, 1] - poses[origin, 1]
    dyaw = np.mod(poses[:, 2] - yaw0 + np.pi, 2 * np.pi) - np.pi
    return np.stack([cos * dx + sin * dy, -sin * dx + cos * dy, dyaw], axis=1)


def window_starts(rng: np.random.Generator, length: int, config: NavClipConfig, where: str) -> np.ndarray:
    """`clips_per_trajectory` window starts (distinct while there are enough)."""
    if length < config.window:
        raise BadTrajectory("too_short", f"{where}: {length} frames, a clip spans {config.window}")
    choices = length - config.window + 1
    return rng.choice(choices, size=config.clips_per_trajectory, replace=config.clips_per_trajectory > choices)


@dataclass
class NavReadStats:
    """Counts of one pass of one reader process: clips given and trajectories read or skipped by reason."""

    trajectories: int = 0
    clips: int = 0
    skipped: Counter = field(default_factory=Counter)

    def skip(self, error: BadTrajectory) -> None:
        self.skipped[error.reason] += 1
        log.debug("nwm: skipped trajectory (%s)", error)

    def summary(self) -> str:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items())) or "none"
        return f"{self.clips} clips from {self.trajectories} trajectories; skipped {sum(self.skipped.values())} ({reasons})"


class NWMClipDataset(IterableDataset):
    """Iterable of `NavClip`s over trajectory folders, split by rank, then by DataLoader worker.

    One pass reads every trajectory of this rank and worker once; call `set_epoch` before each
    pass. `stats` holds the counts of the latest pass in this process.
    """

    def __init__(self, trajectories: Sequence[str | Path], config: NavClipConfig | None = None, car: Car | None = None):
        self.config = (config or NavClipConfig()).validate()
        self.rank, self.world_size = resolve_rank(self.config)
        self.trajectories = [Path(t) for t in trajectories]
        if not self.trajectories:
            raise ValueError("no NWM trajectories to read (folders holding traj_data.pkl)")
        self.car = car or Car()
        self.epoch = 0
        self.stats = NavReadStats()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rank_trajectories(self, epoch: int | None = None) -> list[Path]:
        """This rank's trajectories for `epoch` (shuffled with the seed, then dealt round-robin)."""
        folders = self.trajectories
        epoch = self.epoch if epoch is None else epoch
        if self.config.shuffle:
            order = np.random.default_rng([self.config.seed, epoch]).permutation(len(folders))
            folders = [folders[i] for i in order]
        return folders[self.rank :: self.world_size]

    def clips(self, folder: Path, epoch: int) -> list[NavClip]:
        """The clips of one trajectory for `epoch`, or `BadTrajectory`."""
        if not folder.is_dir():
            raise BadTrajectory("missing", f"{folder}: no such trajectory folder")
        trajectory = read_poses(folder)
        rng = np.random.default_rng([self.config.seed, epoch, zlib.crc32(folder.name.encode())])
        all_poses, clips = trajectory.poses, []
        for start in window_starts(rng, len(trajectory), self.config, str(folder)):
            indices = start + self.config.frame_stride * np.arange(self.config.frames_per_clip, dtype=np.int64)
            poses = all_poses[indices]
            states = relative_poses(poses, self.config.origin_frame)
            clips.append(NavClip(read_frames(trajectory, indices), states, self.car.deltas(poses), indices, folder.name))
        return clips

    def __iter__(self) -> Iterator[NavClip]:
        folders = self.rank_trajectories()
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        stats = self.stats = NavReadStats()
        try:
            for folder in folders[worker_id::workers]:
                try:
                    clips = self.clips(folder, self.epoch)
                except BadTrajectory as err:
                    stats.skip(err)
                    continue
                stats.trajectories += 1
                stats.clips += len(clips)
                yield from clips
        finally:
            log.info("nwm rank %d/%d worker %d/%d epoch %d: %s", self.rank, self.world_size, worker_id, workers,
                     self.epoch, stats.summary())


def collate_nav_clips(clips: list[NavClip]) -> dict:
    """DataLoader `collate_fn`: frames uint8 [B, T, H, W, 3], states / actions float32, names as a list."""
    shapes = {clip.frames.shape for clip in clips}
    if len(shapes) != 1:
        raise ValueError(f"clips of different frame shapes cannot be batched: {sorted(shapes)}")
    return {
        "frames": torch.from_numpy(np.stack([clip.frames for clip in clips])),
        "states": torch.from_numpy(np.stack([clip.states for clip in clips])).float(),
        "actions": torch.from_numpy(np.stack([clip.actions for clip in clips])).float(),
        "indices": torch.from_numpy(np.stack([clip.indices for clip in clips])),
        "trajectory": [clip.trajectory for clip in clips],
    }
