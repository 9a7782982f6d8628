"""What the two DROID readers (raw h5 + MP4, RLDS through TFDS) share.

Both produce the same `DroidClip`, so the world-model side never knows which format a clip came
from. Both sample frames by **row/step stride** (DROID rows are 15 Hz; stride 4 = 3.75 Hz), never
by a video's declared fps, because raw DROID MP4s declare 60 fps (vjepa2 issue #183). Both derive
actions from the sampled states with the Franka embodiment's `deltas` (never DROID's recorded
`action` field), and both skip a broken episode with a counted reason instead of dying on it.

Work is split in two levels: the units (raw episodes, or RLDS shards) are shuffled per epoch with
a seeded RNG and dealt round-robin to DDP ranks, then to the DataLoader workers of each rank.
The window inside an episode is drawn from an RNG seeded by (seed, epoch, episode key), so a clip
does not depend on how many ranks or workers read the data.
"""
from __future__ import annotations

import logging
import os
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from vjepa_wm.embodiments.franka import Franka

log = logging.getLogger("datasets.droid")

FRANKA = Franka()  # DROID's state/action convention
Camera = Literal["left", "right", "exterior_1", "exterior_2", "wrist"]
CAMERAS: tuple[str, ...] = ("left", "right", "exterior_1", "exterior_2", "wrist")

# Why an episode gave no clip. Each skipped episode is counted under exactly one of these.
SKIP_REASONS: dict[str, str] = {
    "missing_file": "trajectory.h5, the episode directory or the camera's MP4 does not exist",
    "missing_metadata": "no metadata_*.json in the episode directory",
    "bad_metadata": "the metadata JSON cannot be parsed or is not an object",
    "missing_camera": "the metadata / dataset has no path or images for the chosen camera",
    "unreadable_h5": "trajectory.h5 cannot be opened",
    "missing_fields": "cartesian_position or gripper_position is missing",
    "bad_fields": "the state fields are not numeric datasets, have wrong shapes or disagree in length",
    "nan_states": "the states hold NaN or inf",
    "unreadable_mp4": "the MP4 cannot be opened or reports no frames",
    "mp4_too_short": "the MP4 has more than max_missing_frames fewer frames than the h5 has rows",
    "too_short": "the episode is shorter than one clip window",
    "decode_failed": "a sampled frame could not be decoded",
    "corrupt_shard": "a TFRecord shard is corrupt; the rest of that shard is skipped",
}


class DroidError(ValueError):
    """Bad input to a DROID reader or writer (config, path, layout); the message is one line."""


class BadEpisode(DroidError):
    """One episode that cannot give a clip; `reason` is a key of `SKIP_REASONS`."""

    def __init__(self, reason: str, detail: str):
        if reason not in SKIP_REASONS:
            raise KeyError(f"unknown skip reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class DroidConfig:
    """How clips are cut from DROID episodes (raw or RLDS) and split across ranks."""

    frames_per_clip: int = 8
    # Rows (15 Hz, `embodiments.franka.CONTROL_HZ`) between sampled frames: 4 rows = 3.75 Hz, V-JEPA 2-AC's rate on 15 Hz data.
    row_stride: int = 4
    clips_per_episode: int = 1
    # None picks the reader's default: "left" (left_mp4_path) for raw, "exterior_1" for RLDS.
    camera: Camera | None = None
    # Keep only successful episodes ("/success/" in the original path), as DROID consumers do.
    success_only: bool = True
    shuffle: bool = True
    seed: int = 0
    # None: from torch.distributed when initialised, else the RANK / WORLD_SIZE variables, else 0 / 1.
    rank: int | None = None
    world_size: int | None = None
    # Raw MP4s may hold one frame fewer than trajectory.h5 has rows (droid#54); more is "mp4_too_short".
    max_missing_frames: int = 1
    # RLDS split to read.
    split: str = "train"

    def validate(self) -> "DroidConfig":
        if self.frames_per_clip < 2:
            raise DroidError(f"frames_per_clip must be at least 2 (actions need two states), got {self.frames_per_clip}")
        if self.row_stride < 1:
            raise DroidError(f"row_stride must be at least 1, got {self.row_stride}")
        if self.clips_per_episode < 1:
            raise DroidError(f"clips_per_episode must be at least 1, got {self.clips_per_episode}")
        if self.camera is not None and self.camera not in CAMERAS:
            raise DroidError(f"camera {self.camera!r} is not one of {', '.join(CAMERAS)}")
        if self.max_missing_frames < 0:
            raise DroidError(f"max_missing_frames must be >= 0, got {self.max_missing_frames}")
        resolve_rank(self)
        return self

    @property
    def window(self) -> int:
        """Rows one clip spans, first to last sampled row inclusive."""
        return (self.frames_per_clip - 1) * self.row_stride + 1


def resolve_rank(config: DroidConfig) -> tuple[int, int]:
    """(rank, world_size) from the config, else torch.distributed, else RANK / WORLD_SIZE, else (0, 1)."""
    rank, world = config.rank, config.world_size
    if rank is None or world is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            auto_rank, auto_world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            auto_rank, auto_world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        rank = auto_rank if rank is None else rank
        world = auto_world if world is None else world
    if world < 1 or not 0 <= rank < world:
        raise DroidError(f"rank {rank} is not in 0..world_size-1 (world_size {world})")
    return rank, world


@dataclass
class DroidClip:
    """One training clip: frames and the robot states at the same rows, and the actions between them.

    frames: uint8 [T, H, W, 3] RGB (uncropped; the world-model side crops and normalises).
    states: float64 [T, 7] = end-effector xyz (m), extrinsic xyz Euler (rad), gripper (0 open, 1 closed).
    actions: float64 [T-1, 7] = `Franka().deltas(states)`.
    indices: int64 [T], the h5 rows / RLDS steps the frames and states were taken at.
    extrinsics: float64 [T, 6] camera pose (xyz + Euler, base frame) when the source records it.
    """

    frames: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    indices: np.ndarray
    episode_id: str
    source: str
    camera: str
    language_instruction: str = ""
    extrinsics: np.ndarray | None = None


def make_clip(frames: np.ndarray, all_states: np.ndarray, indices: np.ndarray, **fields) -> DroidClip:
    """Build a clip from frames already decoded at `indices` and the episode's full [N, 7] states."""
    states = np.ascontiguousarray(all_states[indices], dtype=np.float64)
    return DroidClip(frames=frames, states=states, actions=FRANKA.deltas(states), indices=indices.astype(np.int64), **fields)


def droid_states(cartesian: np.ndarray, gripper: np.ndarray, where: str) -> np.ndarray:
    """[N, 6] cartesian_position + [N] or [N, 1] gripper_position -> [N, 7] float64; `BadEpisode` if malformed."""
    try:
        cartesian = np.asarray(cartesian, dtype=np.float64)
        gripper = np.asarray(gripper, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BadEpisode("bad_fields", f"{where}: cartesian_position / gripper_position are not numbers ({err})") from None
    if gripper.ndim == 2 and gripper.shape[1] == 1:
        gripper = gripper[:, 0]
    if cartesian.ndim != 2 or cartesian.shape[1] != 6 or gripper.ndim != 1 or len(gripper) != len(cartesian):
        raise BadEpisode("bad_fields", f"{where}: cartesian_position {cartesian.shape} and gripper_position {gripper.shape} are not [N, 6] and [N]")
    states = np.concatenate([cartesian, gripper[:, None]], axis=1)
    if not np.isfinite(states).all():
        bad = int((~np.isfinite(states)).any(axis=1).sum())
        raise BadEpisode("nan_states", f"{where}: {bad} of {len(states)} state rows are not finite")
    return states


def episode_rng(config: DroidConfig, epoch: int, key: str) -> np.random.Generator:
    """The window RNG of one episode: depends on (seed, epoch, episode), not on ranks or workers."""
    return np.random.default_rng([config.seed, epoch, zlib.crc32(key.encode())])


def sample_windows(rng: np.random.Generator, usable: int, config: DroidConfig, where: str) -> list[np.ndarray]:
    """`clips_per_episode` random windows of `frames_per_clip` rows, `row_stride` apart, within `usable` rows."""
    if usable < config.window:
        raise BadEpisode("too_short", f"{where}: {usable} usable rows, a clip needs {config.window}")
    choices = usable - config.window + 1
    starts = rng.choice(choices, size=config.clips_per_episode, replace=config.clips_per_episode > choices)
    return [start + config.row_stride * np.arange(config.frames_per_clip, dtype=np.int64) for start in starts]


@dataclass
class ReadStats:
    """Counts of one pass of one reader process: clips given, failures filtered, episodes skipped by reason."""

    episodes: int = 0
    clips: int = 0
    filtered: int = 0
    skipped: Counter = field(default_factory=Counter)

    def skip(self, error: BadEpisode) -> None:
        self.skipped[error.reason] += 1
        log.debug("droid: skipped episode (%s)", error)

    def summary(self) -> str:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items())) or "none"
        return (f"{self.clips} clips from {self.episodes} episodes; {self.filtered} failed episodes filtered; "
                f"skipped {sum(self.skipped.values())} ({reasons})")


class DroidClipDataset(IterableDataset):
    """Iterable of `DroidClip`s over units (episodes or shards) split by rank, then DataLoader worker.

    One pass (`iter`) reads every unit of this rank and worker once, in an order shuffled per epoch;
    call `set_epoch` before each pass, as with `DistributedSampler`. `stats` holds the counts of the
    latest pass in this process (with workers, each worker logs its own summary line).
    """

    kind = "droid"

    def __init__(self, config: DroidConfig | None):
        self.config = (config or DroidConfig()).validate()
        self.rank, self.world_size = resolve_rank(self.config)
        self.epoch = 0
        self.stats = ReadStats()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _units(self) -> list:
        raise NotImplementedError

    def _read_unit(self, unit, stats: ReadStats) -> Iterator[DroidClip]:
        raise NotImplementedError

    def rank_units(self, epoch: int | None = None) -> list:
        """This rank's units for `epoch` (shuffled with the seed, then dealt round-robin to ranks)."""
        units = self._units()
        epoch = self.epoch if epoch is None else epoch
        if self.config.shuffle:
            order = np.random.default_rng([self.config.seed, epoch]).permutation(len(units))
            units = [units[i] for i in order]
        return units[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[DroidClip]:
        units = self.rank_units()
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        stats = self.stats = ReadStats()
        try:
            for unit in units[worker_id::workers]:
                yield from self._read_unit(unit, stats)
        finally:
            log.info("%s rank %d/%d worker %d/%d epoch %d: %s", self.kind, self.rank, self.world_size,
                     worker_id, workers, self.epoch, stats.summary())


def collate_clips(clips: list[DroidClip]) -> dict:
    """DataLoader `collate_fn`: frames uint8 [B, T, H, W, 3], states / actions float32, ids as lists."""
    shapes = {clip.frames.shape for clip in clips}
    if len(shapes) != 1:
        raise DroidError(f"clips of different frame shapes cannot be batched: {sorted(shapes)}")
    batch = {
        "frames": torch.from_numpy(np.stack([clip.frames for clip in clips])),
        "states": torch.from_numpy(np.stack([clip.states for clip in clips])).float(),
        "actions": torch.from_numpy(np.stack([clip.actions for clip in clips])).float(),
        "indices": torch.from_numpy(np.stack([clip.indices for clip in clips])),
        "episode_id": [clip.episode_id for clip in clips],
        "source": [clip.source for clip in clips],
        "camera": [clip.camera for clip in clips],
        "language_instruction": [clip.language_instruction for clip in clips],
    }
    if all(clip.extrinsics is not None for clip in clips):
        batch["extrinsics"] = torch.from_numpy(np.stack([clip.extrinsics for clip in clips])).float()
    return batch
