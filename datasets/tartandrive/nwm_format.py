"""The NWM / GNM trajectory format: read, write, and the split and eval-index files beside it.

A dataset folder holds one folder per trajectory, ``<traj_name>/{0.jpg, ..., (T-1).jpg,
traj_data.pkl}``; `traj_data.pkl` is a pickled dict ``{"position": float [T, 2] (x, y in the
odometry frame, metres), "yaw": float [T] (rad)}`` aligned 1:1 with the JPEGs (NWM's
`BaseDataset._get_trajectory` casts both to float; it tolerates yaw ``[T, 1]`` and so do we).
Splits are ``<split>/traj_names.txt``, one name per line; eval indices are pickled lists of
``(traj_name, curr_time, min_goal_offset, max_goal_offset)``.

Reading never runs code from a pickle: `traj_data.pkl` and the indices go through
`safe_pickle`, which accepts numpy arrays, dicts, lists, tuples, strings and numbers and refuses
anything else with a one-line error naming the file. Writing pickles the same plain dict of
float64 arrays GNM's `process_bags` writes (`pickle.dump`, default protocol), so upstream code
reads our folders unchanged. A trajectory is written into a hidden sibling folder and renamed
into place, so a folder named like a trajectory is always complete.
"""
from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import safe_pickle

TRAJ_DATA = "traj_data.pkl"
TRAJ_NAMES = "traj_names.txt"
JPEG_QUALITY = 75  # PIL's default, which GNM's `img.save(...jpg)` wrote with

EvalEntry = tuple[str, int, int, int]  # (traj_name, curr_time, min_goal_offset, max_goal_offset)


@dataclass(frozen=True)
class NWMTrajectory:
    """One trajectory folder: poses in memory, frames read on demand."""

    folder: Path
    position: np.ndarray  # float64 [T, 2]
    yaw: np.ndarray  # float64 [T]

    @property
    def name(self) -> str:
        return self.folder.name

    def __len__(self) -> int:
        return len(self.yaw)

    @property
    def poses(self) -> np.ndarray:
        """float64 ``[T, 3]``: x, y, yaw (the `embodiments.Car` state)."""
        return np.concatenate([self.position, self.yaw[:, None]], axis=1)

    def image(self, index: int) -> np.ndarray:
        """Frame `index` as uint8 ``[H, W, 3]`` RGB."""
        if not 0 <= index < len(self):
            raise IndexError(f"{self.folder}: frame {index} outside 0..{len(self) - 1}")
        path = self.folder / f"{index}.jpg"
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError(f"{path}: missing or not a readable JPEG")
        return frame[..., ::-1].copy()


def read_traj_data(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """`traj_data.pkl` -> (position float64 [T, 2], yaw float64 [T]), read without running code."""
    path = Path(path)
    data = safe_pickle.load(path)
    if not isinstance(data, dict) or "position" not in data or "yaw" not in data:
        raise ValueError(f"{path}: expected a dict with 'position' and 'yaw', got {_kind(data)}")
    try:
        position = np.asarray(data["position"], dtype=np.float64)
        yaw = np.asarray(data["yaw"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: 'position' and 'yaw' must be numeric arrays") from None
    if yaw.ndim == 2 and yaw.shape[1] == 1:
        yaw = yaw[:, 0]
    if position.ndim != 2 or position.shape[1] != 2 or yaw.shape != (len(position),):
        raise ValueError(f"{path}: expected position [T, 2] and yaw [T], got {position.shape} and {yaw.shape}")
    return position, yaw


def read_trajectory(folder: str | Path) -> NWMTrajectory:
    """One trajectory folder; checks that every frame 0..T-1 is there."""
    folder = Path(folder)
    position, yaw = read_traj_data(folder / TRAJ_DATA)
    present = {p.name for p in folder.iterdir()}
    missing = [f"{i}.jpg" for i in range(len(yaw)) if f"{i}.jpg" not in present]
    if missing:
        raise ValueError(f"{folder}: {len(missing)} of {len(yaw)} frames missing (first: {missing[0]})")
    return NWMTrajectory(folder, position, yaw)


def list_trajectories(data_folder: str | Path) -> list[str]:
    """Names of the trajectory folders (those holding traj_data.pkl, as GNM's data_split finds them), sorted;
    hidden folders (a writer's unfinished `.<name>.partial-*`) are not trajectories."""
    data_folder = Path(data_folder)
    return sorted(p.name for p in data_folder.iterdir()
                  if not p.name.startswith(".") and p.is_dir() and (p / TRAJ_DATA).is_file())


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """uint8 ``[H, W, 3]`` RGB -> JPEG bytes."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"frames must be uint8 [H, W, 3] RGB, got {rgb.dtype} {rgb.shape}")
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def write_trajectory(folder: str | Path, frames: Sequence[np.ndarray | bytes], position, yaw,
                     quality: int = JPEG_QUALITY) -> Path:
    """Write one trajectory folder (frames as RGB arrays or ready JPEG bytes); refuses an existing one."""
    folder = Path(folder)
    position = np.asarray(position, dtype=np.float64)
    yaw = np.asarray(yaw, dtype=np.float64)
    if position.ndim != 2 or position.shape[1] != 2 or yaw.shape != (len(position),) or len(frames) != len(yaw):
        raise ValueError(f"{folder}: need position [T, 2], yaw [T] and T frames, got {position.shape}, {yaw.shape}, "
                         f"{len(frames)} frames")
    if len(yaw) == 0:
        raise ValueError(f"{folder}: a trajectory needs at least one frame")
    if folder.exists():
        raise ValueError(f"{folder} already exists; not overwriting it")
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        for index, frame in enumerate(frames):
            data = frame if isinstance(frame, bytes) else encode_jpeg(frame, quality)
            (partial / f"{index}.jpg").write_bytes(data)
        with open(partial / TRAJ_DATA, "wb") as f:
            pickle.dump({"position": position, "yaw": yaw}, f)
        os.rename(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder


def read_traj_names(path: str | Path) -> list[str]:
    """A `traj_names.txt` (or a split folder holding one) -> the names, blank lines dropped as NWM does."""
    path = Path(path)
    if path.is_dir():
        path = path / TRAJ_NAMES
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read trajectory names ({err})") from None


def write_traj_names(path: str | Path, names: Iterable[str]) -> Path:
    """One name per line, newline-terminated (GNM's data_split writes them so)."""
    return _replace(Path(path), "".join(f"{name}\n" for name in names).encode())


def read_eval_index(path: str | Path) -> list[EvalEntry]:
    """A pickled eval index (e.g. `navigation_eval.pkl`), read without running code and checked."""
    path = Path(path)
    entries = safe_pickle.load(path)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of (traj_name, curr_time, min_goal, max_goal), got {_kind(entries)}")
    for entry in entries:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 4 and isinstance(entry[0], str)
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in entry[1:])):
            raise ValueError(f"{path}: bad entry {entry!r}; expected (traj_name, curr_time, min_goal, max_goal)")
    return [(str(e[0]), int(e[1]), int(e[2]), int(e[3])) for e in entries]


def write_eval_index(path: str | Path, entries: Iterable[EvalEntry]) -> Path:
    """Pickle a list of (str, int, int, int) tuples, as NWM's `data_splits/*/test/*.pkl` are."""
    entries = [(str(n), int(t), int(lo), int(hi)) for n, t, lo, hi in entries]
    return _replace(Path(path), pickle.dumps(entries))


def _replace(path: Path, data: bytes) -> Path:
    """Write a small file atomically (a temporary sibling renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)
    return path


def _kind(value) -> str:
    return type(value).__name__
