"""Reading raw DROID episodes (trajectory.h5 + metadata JSON + recordings/MP4) into clips, the V-JEPA 2-AC way.

The camera is picked through the metadata JSON (`left_mp4_path` by default, as V-JEPA 2-AC does;
only the file name ``<serial>.mp4`` is used, under the episode's own recordings/MP4). Frames and
states are taken at the same h5 rows, spaced `row_stride` rows apart; the MP4's declared fps (60
for DROID) is never used for timing. An MP4 up to `max_missing_frames` shorter than the h5 is
accepted (droid#54) and the clip window is kept within the frames that exist.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

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

# Camera choice -> metadata key holding that camera's MP4 path.
RAW_CAMERA_KEYS = {"left": "left_mp4_path", "right": "right_mp4_path", "exterior_1": "ext1_mp4_path",
                   "exterior_2": "ext2_mp4_path", "wrist": "wrist_mp4_path"}
LIST_SUFFIXES = (".csv", ".txt", ".lst")
STATE_FIELDS = ("cartesian_position", "gripper_position")  # under observation/robot_state


def list_raw_episodes(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """Episode directories from a folder tree (every folder holding trajectory.h5), an episode-list
    file (one directory per line, first space-separated field, as V-JEPA 2-AC's CSV) or a list of paths.

    Listed directories are not checked here: a missing one is skipped and counted when read.
    """
    if not isinstance(source, (str, Path)):
        return [_episode_path(p) for p in source]
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() not in LIST_SUFFIXES and source.name != "trajectory.h5":
            raise DroidError(f"{source}: an episode list must end in {', '.join(LIST_SUFFIXES)}")
        if source.name == "trajectory.h5":
            return [source.parent]
        episodes = []
        for line in source.read_text().splitlines():
            fields = line.split(" ")
            if fields[0].strip() and not fields[0].startswith("#"):
                path = _episode_path(fields[0].strip())
                episodes.append(path if path.is_absolute() else source.parent / path)
        return episodes
    if source.is_dir():
        return sorted(h5.parent for h5 in source.rglob("trajectory.h5") if not h5.parent.name.startswith("."))
    raise DroidError(f"{source}: no such episode folder or episode list")


def _episode_path(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.name == "trajectory.h5" else path


def load_metadata(episode_dir: Path) -> dict:
    files = sorted(episode_dir.glob("metadata_*.json")) or sorted(episode_dir.glob("*.json"))
    if not files:
        raise BadEpisode("missing_metadata", f"{episode_dir}: no metadata_*.json")
    try:
        metadata = json.loads(files[0].read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadEpisode("bad_metadata", f"{files[0]}: {err}") from None
    if not isinstance(metadata, dict):
        raise BadEpisode("bad_metadata", f"{files[0]}: expected a JSON object, found {type(metadata).__name__}")
    return metadata


def is_success(episode_dir: Path, metadata: dict | None) -> bool:
    """DROID's rule: the episode sits under a success/ folder (…/success/<date>/<time>); without such
    a folder, the metadata's `success` flag decides."""
    outcome = episode_dir.parent.parent.name
    if outcome in ("success", "failure"):
        return outcome == "success"
    return bool((metadata or {}).get("success", False))


class RawEpisode:
    """One validated raw episode: its [N, 7] states, the chosen camera's MP4 and the usable rows."""

    def __init__(self, episode_dir: str | Path, camera: str = "left", max_missing_frames: int = 1,
                 metadata: dict | None = None):
        import h5py

        self.dir = Path(episode_dir)
        self.camera = camera
        if not (self.dir / "trajectory.h5").is_file():
            raise BadEpisode("missing_file", f"{self.dir}: no trajectory.h5")
        self.metadata = load_metadata(self.dir) if metadata is None else metadata
        relative = self.metadata.get(RAW_CAMERA_KEYS[camera])
        if not relative:
            raise BadEpisode("missing_camera", f"{self.dir}: metadata has no {RAW_CAMERA_KEYS[camera]}")
        self.mp4 = self.dir / "recordings" / "MP4" / Path(str(relative)).name
        self.serial = self.mp4.stem
        if not self.mp4.is_file():
            raise BadEpisode("missing_file", f"{self.mp4} does not exist")
        h5_path = self.dir / "trajectory.h5"
        try:
            with h5py.File(h5_path, "r") as h5:
                self.states = _read_states(h5, str(h5_path))
                self.extrinsics = _read_extrinsics(h5, f"observation/camera_extrinsics/{self.serial}_left", len(self.states))
        except OSError as err:
            raise BadEpisode("unreadable_h5", f"{h5_path}: {err}") from None
        self.num_frames = _frame_count(self.mp4)
        missing = len(self.states) - self.num_frames
        if missing > max_missing_frames:
            raise BadEpisode("mp4_too_short", f"{self.mp4}: {self.num_frames} frames for {len(self.states)} h5 rows")
        self.usable = min(len(self.states), self.num_frames)

    @property
    def language_instruction(self) -> str:
        return str(self.metadata.get("current_task") or "")

    def read_frames(self, indices: np.ndarray) -> np.ndarray:
        """uint8 RGB [len(indices), H, W, 3] of the MP4 frames at increasing `indices`."""
        return decode_frames(self.mp4, indices)

    def clip(self, indices: np.ndarray) -> DroidClip:
        return make_clip(self.read_frames(indices), self.states, indices, episode_id=str(self.dir), source=str(self.mp4),
                         camera=self.camera, language_instruction=self.language_instruction,
                         extrinsics=None if self.extrinsics is None else self.extrinsics[indices])


def _read_states(h5, where: str) -> np.ndarray:
    """[N, 7] states from observation/robot_state; `BadEpisode` when the fields are missing or are
    not numeric datasets (a group, strings)."""
    import h5py

    state = h5.get("observation/robot_state")
    nodes = {name: state.get(name) if isinstance(state, h5py.Group) else None for name in STATE_FIELDS}
    if any(node is None for node in nodes.values()):
        raise BadEpisode("missing_fields", f"{where}: no observation/robot_state/{{cartesian,gripper}}_position")
    for name, node in nodes.items():
        if not isinstance(node, h5py.Dataset):
            raise BadEpisode("bad_fields", f"{where}: observation/robot_state/{name} is a {type(node).__name__}, not a dataset")
    return droid_states(nodes["cartesian_position"][()], nodes["gripper_position"][()], where)


def _read_extrinsics(h5, key: str, rows: int) -> np.ndarray | None:
    """[rows, 6] camera poses, or None when absent or malformed: a bad pose must not sink an
    otherwise good episode."""
    import h5py

    node = h5.get(key)
    if not isinstance(node, h5py.Dataset):
        return None
    try:
        values = np.asarray(node[()], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return values if values.shape == (rows, 6) else None


def _frame_count(path: Path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    if count <= 0:
        raise BadEpisode("unreadable_mp4", f"{path}: cannot be opened or reports no frames")
    return count


def decode_frames(path: Path, indices: np.ndarray) -> np.ndarray:
    """Decode the frames at increasing `indices`: one seek to the first, then sequential grabs."""
    import cv2

    wanted = [int(i) for i in indices]
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        position = 0
        if wanted[0] > 0 and capture.set(cv2.CAP_PROP_POS_FRAMES, wanted[0]):
            position = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
        if position != wanted[0]:  # the seek did not land exactly: decode from the start instead
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            position = 0
        for index in wanted:
            while position < index:
                if not capture.grab():
                    break
                position += 1
            ok, bgr = capture.read()
            if not ok or position != index:
                raise BadEpisode("decode_failed", f"{path}: frame {index} could not be decoded")
            position += 1
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return np.stack(frames)


class DroidRawDataset(DroidClipDataset):
    """Clips from raw DROID episodes (a folder tree, an episode-list CSV/text file, or a list of dirs).

    Episodes are split across DDP ranks, then DataLoader workers. Failed episodes are filtered when
    `success_only`; broken ones are skipped and counted in `stats.skipped` by reason.
    """

    kind = "droid-raw"

    def __init__(self, source: str | Path | Sequence[str | Path], config: DroidConfig | None = None):
        super().__init__(config)
        self.camera = self.config.camera or "left"
        self.episodes = list_raw_episodes(source)
        if not self.episodes:
            raise DroidError(f"{source}: no DROID episodes (folders holding trajectory.h5) found")

    def _units(self) -> list[Path]:
        return list(self.episodes)

    def _read_unit(self, episode_dir: Path, stats: ReadStats) -> Iterator[DroidClip]:
        try:
            if not episode_dir.is_dir():
                raise BadEpisode("missing_file", f"{episode_dir}: no such episode directory")
            metadata = None
            if episode_dir.parent.parent.name not in ("success", "failure") or not self.config.success_only:
                metadata = load_metadata(episode_dir)
            if self.config.success_only and not is_success(episode_dir, metadata):
                stats.filtered += 1
                return
            episode = RawEpisode(episode_dir, self.camera, self.config.max_missing_frames, metadata)
            rng = episode_rng(self.config, self.epoch, str(episode_dir))
            clips = [episode.clip(indices) for indices in sample_windows(rng, episode.usable, self.config, str(episode_dir))]
        except BadEpisode as err:
            stats.skip(err)
            return
        stats.episodes += 1
        stats.clips += len(clips)
        yield from clips
