"""Writing episodes in the DROID raw layout, so our own recordings (sim/collect.py) read exactly like DROID.

One episode is a directory ``<root>/<LAB>/<success|failure>/<YYYY-MM-DD>/<Day_Mon_DD_HH:MM:SS_YYYY>/``:

    trajectory.h5                      one row per 15 Hz control step (key tree below)
    metadata_<LAB>+<user_id>+<YYYY-MM-DD-HHh-MMm-SSs>.json
    recordings/MP4/<serial>.mp4        left view of each camera, written with OpenCV's mp4v at the
                                       camera's configured fps (60), as DROID's svo2mp4 does; frame i
                                       belongs to h5 row i, whatever the declared fps says

trajectory.h5 (every dataset has leading dimension T):

    observation/robot_state/cartesian_position   (T, 6) float64  xyz + extrinsic xyz Euler
    observation/robot_state/gripper_position     (T,)   float64  0 open .. 1 closed
    observation/robot_state/joint_positions      (T, 7) float64  (only when given)
    observation/camera_extrinsics/<serial>_left  (T, 6) float64  (only when given)
    observation/camera_type/<serial>             (T,)   int64    0 wrist, 1 exterior ("varied")
    observation/controller_info/{movement_enabled, controller_on, success, failure}  (T,) bool
    observation/timestamp/cameras/<serial>_{frame_received, estimated_capture}       (T,) int64 ms
    observation/timestamp/robot_state/robot_timestamp_{seconds, nanos}               (T,) int64
    observation/timestamp/control/{step_start, step_end}                             (T,) int64 ms
    observation/timestamp/skip_action                                               (T,) bool
    action/<name>                                 the commanded actions, when given
    attrs: user, building, scene_id, success, robot_serial_number, version_number, current_task

Fields we cannot know (joint torques, ZED clock latencies, stereo right views, SVO files) are not
invented: they are left out. Timestamps default to the nominal 15 Hz clock from the start time.
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Mapping

import numpy as np

from vjepa_wm.datasets.droid.common import DroidError
from vjepa_wm.datasets.video_io import write_mp4
from vjepa_wm.embodiments.franka import CONTROL_HZ

# The ZED trajectory-mode configuration fps that DROID's MP4s declare; not the physical rate.
DROID_MP4_FPS = 60.0
# Folder names DROID uses for an episode's start time (parse_timestamp accepts these variants).
EPISODE_NAME_FORMATS = ("%a_%b__%d_%H:%M:%S_%Y", "%a_%b_%d_%H:%M:%S_%Y", "%a_%b__%d_%H_%M_%S_%Y", "%a_%b_%d_%H_%M_%S_%Y")
# Commanded-action datasets that DROID's action/ group holds.
ACTION_NAMES = ("cartesian_position", "cartesian_velocity", "gripper_position", "gripper_velocity", "gripper_delta",
                "joint_position", "joint_velocity", "target_cartesian_position", "target_gripper_position")
OUTCOME_FOLDERS = ("success", "failure")


def episode_folder_name(start: datetime) -> str:
    """DROID's folder name for an episode started at `start`: ``time.asctime`` with '_' for spaces."""
    return start.strftime("%a_%b_") + f"{start.day:2d}".replace(" ", "_") + start.strftime("_%H:%M:%S_%Y")


def parse_episode_folder_name(name: str) -> datetime | None:
    for pattern in EPISODE_NAME_FORMATS:
        try:
            return datetime.strptime(name, pattern)
        except ValueError:
            continue
    return None


def droid_episode_dir(root: str | Path, *, success: bool, start: datetime, lab: str = "SIM", unique: bool = True) -> Path:
    """``root/<lab>/<success|failure>/<YYYY-MM-DD>/<Day_Mon_DD_HH:MM:SS_YYYY>`` for an episode started at `start`.

    The folder name holds whole seconds only, so episodes recorded faster than one per second (a
    sim) would collide; with `unique` the start is moved on by a second until the folder is free.
    """
    base = Path(root) / lab / OUTCOME_FOLDERS[0 if success else 1]
    start = start.replace(microsecond=0)
    while True:
        path = base / start.strftime("%Y-%m-%d") / episode_folder_name(start)
        if not unique or not path.exists():
            return path
        start += timedelta(seconds=1)


def write_droid_raw_episode(
    episode_dir: str | Path,
    *,
    exterior_frames: Mapping[str, np.ndarray],
    wrist_frames: Mapping[str, np.ndarray] | None = None,
    cartesian_position: np.ndarray,
    gripper_position: np.ndarray,
    joint_position: np.ndarray | None = None,
    success: bool,
    language_instruction: str = "",
    camera_extrinsics: Mapping[str, np.ndarray] | None = None,
    actions: Mapping[str, np.ndarray] | None = None,
    timestamps_ms: np.ndarray | None = None,
    start: datetime | None = None,
    user: str = "sim",
    user_id: str = "sim",
    building: str = "sim",
    scene_id: int = -1,
    robot_serial: str = "sim",
    droid_version: str = "1.0.1",
    mp4_fps: float = DROID_MP4_FPS,
    overwrite: bool = False,
) -> Path:
    """Write one episode in the DROID raw layout into `episode_dir` and return it.

    exterior_frames: {serial: uint8 [T, H, W, 3] RGB}, one or two exterior cameras. As in DROID,
        ext1 / ext2 are the serials in sorted order, and `left_mp4_path` is the camera with the
        larger base-frame y in `camera_extrinsics` (ext1 when no extrinsics are given).
    wrist_frames: {serial: uint8 [T, H, W, 3]} for the wrist camera, or None.
    cartesian_position [T, 6] (xyz m + extrinsic xyz Euler rad), gripper_position [T] (0 open .. 1
        closed), joint_position [T, 7] or None: the measured robot state of each 15 Hz row.
    success: the episode's outcome; it must agree with a success/failure folder in the path.
    camera_extrinsics: {serial: [6] or [T, 6]} camera poses (the official V-JEPA 2-AC loader reads
        the chosen camera's ``<serial>_left``; pass them for full compatibility).
    actions: {name: [T, ...]} commanded actions for the ``action/`` group (names in ACTION_NAMES).
    timestamps_ms: int [T] step times in ms since the epoch; default the 15 Hz clock from `start`.
    start: the start time; default parsed from a DROID-style folder name, else now.

    Use `droid_episode_dir` for the published folder naming. The episode is built in a temporary
    sibling folder and renamed into place, so a crash never leaves half an episode; an existing
    `episode_dir` is refused unless `overwrite` (then it is replaced only once the new one is complete).
    """
    episode_dir = Path(episode_dir)
    rows = _check_states(cartesian_position, gripper_position, joint_position)
    cameras = _check_cameras(exterior_frames, wrist_frames, rows)
    extrinsics = _check_extrinsics(camera_extrinsics, cameras, rows)
    actions = _check_actions(actions, rows)
    outcome = episode_dir.parent.parent.name
    if outcome in OUTCOME_FOLDERS and (outcome == "success") != bool(success):
        raise DroidError(f"{episode_dir}: success={success} disagrees with the '{outcome}' folder in the path")
    if episode_dir.exists() and not overwrite:
        raise DroidError(f"{episode_dir} already exists; pass overwrite=True to replace it")
    start = start or parse_episode_folder_name(episode_dir.name) or datetime.now()
    if timestamps_ms is None:
        start_ms = int(start.timestamp() * 1000)
        timestamps_ms = start_ms + np.round(np.arange(rows) * 1000.0 / CONTROL_HZ).astype(np.int64)
    timestamps_ms = np.asarray(timestamps_ms, dtype=np.int64)
    if timestamps_ms.shape != (rows,):
        raise DroidError(f"timestamps_ms must have shape ({rows},), got {timestamps_ms.shape}")

    # Paths in the metadata are relative to the <LAB> folder, as in DROID (or to the parent folder
    # when the episode does not sit in a <success|failure>/<date>/ tree).
    lab_dir = episode_dir.parents[2] if outcome in OUTCOME_FOLDERS else episode_dir.parent
    relative = episode_dir.relative_to(lab_dir)
    attrs = {"user": user, "building": building, "scene_id": int(scene_id), "success": bool(success),
             "robot_serial_number": robot_serial, "version_number": droid_version, "current_task": language_instruction}
    metadata = _metadata(relative, lab_dir.name, start, attrs, user_id, cameras, extrinsics, rows)

    episode_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = episode_dir.with_name(f".{episode_dir.name}.partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir()
    try:
        for serial, (_, frames) in cameras.items():
            write_mp4(partial / "recordings" / "MP4" / f"{serial}.mp4", frames, mp4_fps, codec="mp4v")
        _write_h5(partial / "trajectory.h5", cartesian_position, gripper_position, joint_position, cameras,
                  extrinsics, actions, timestamps_ms, bool(success), attrs)
        (partial / f"metadata_{metadata['uuid']}.json").write_text(json.dumps(metadata, indent=2) + "\n")
        _move_into_place(partial, episode_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return episode_dir


def write_episode_list(path: str | Path, episode_dirs, overwrite: bool = False) -> Path:
    """The V-JEPA 2-AC episode list: one trajectory directory per line (read with delimiter ' ')."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DroidError(f"{path} already exists; pass overwrite=True to replace it")
    lines = [str(Path(d)) for d in episode_dirs]
    if any(" " in line for line in lines):
        raise DroidError("episode directories in an episode list cannot contain spaces (the list is space-delimited)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _check_states(cartesian, gripper, joints) -> int:
    cartesian, gripper = np.asarray(cartesian), np.asarray(gripper)
    if cartesian.ndim != 2 or cartesian.shape[1] != 6:
        raise DroidError(f"cartesian_position must be [T, 6], got {cartesian.shape}")
    rows = len(cartesian)
    if rows < 1:
        raise DroidError("an episode needs at least one row")
    if gripper.shape not in ((rows,), (rows, 1)):
        raise DroidError(f"gripper_position must be [{rows}], got {gripper.shape}")
    if joints is not None and np.asarray(joints).shape != (rows, 7):
        raise DroidError(f"joint_position must be [{rows}, 7], got {np.asarray(joints).shape}")
    return rows


def _check_cameras(exterior, wrist, rows) -> dict[str, tuple[str, np.ndarray]]:
    """{serial: (kind, frames)} with kind "exterior" or "wrist", serials sorted as DROID sorts them."""
    if not exterior or len(exterior) > 2:
        raise DroidError(f"exterior_frames needs one or two cameras, got {len(exterior or {})}")
    if wrist is not None and len(wrist) != 1:
        raise DroidError(f"wrist_frames needs exactly one camera, got {len(wrist)}")
    cameras = {}
    for kind, group in (("exterior", exterior), ("wrist", wrist or {})):
        for serial, frames in group.items():
            serial = str(serial)
            if not serial or not all(c.isalnum() or c in "-_" for c in serial):
                raise DroidError(f"camera serial {serial!r} must be letters, digits, '-' or '_' (it names files)")
            if serial in cameras:
                raise DroidError(f"camera serial {serial} is used twice")
            frames = np.asarray(frames)
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
                raise DroidError(f"camera {serial}: frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
            if len(frames) != rows:
                raise DroidError(f"camera {serial}: {len(frames)} frames for {rows} state rows (one frame per row)")
            cameras[serial] = (kind, frames)
    return dict(sorted(cameras.items()))


def _check_extrinsics(extrinsics, cameras, rows) -> dict[str, np.ndarray]:
    out = {}
    for serial, pose in (extrinsics or {}).items():
        serial = str(serial)
        if serial not in cameras:
            raise DroidError(f"camera_extrinsics names camera {serial}, which has no frames")
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape == (6,):
            pose = np.tile(pose, (rows, 1))
        if pose.shape != (rows, 6):
            raise DroidError(f"camera_extrinsics[{serial}] must be [6] or [{rows}, 6], got {pose.shape}")
        out[serial] = pose
    return out


def _check_actions(actions, rows) -> dict[str, np.ndarray]:
    out = {}
    for name, values in (actions or {}).items():
        if name not in ACTION_NAMES:
            raise DroidError(f"action {name!r} is not a DROID action name ({', '.join(ACTION_NAMES)})")
        values = np.asarray(values, dtype=np.float64)
        if values.ndim < 1 or len(values) != rows:
            raise DroidError(f"action {name} must have {rows} rows, got shape {values.shape}")
        out[name] = values
    return out


def _metadata(relative: Path, lab: str, start: datetime, attrs: dict, user_id: str, cameras, extrinsics, rows) -> dict:
    """The metadata JSON with the keys of DROID's postprocessing schema."""
    stamp = start.strftime("%Y-%m-%d-%Hh-%Mm-%Ss")
    exterior = [serial for serial, (kind, _) in cameras.items() if kind == "exterior"]
    wrist = next((serial for serial, (kind, _) in cameras.items() if kind == "wrist"), None)
    ext1, ext2 = exterior[0], exterior[1] if len(exterior) > 1 else None
    left, right = ext1, ext2
    if ext2 is not None and ext1 in extrinsics and ext2 in extrinsics and extrinsics[ext2][0, 1] > extrinsics[ext1][0, 1]:
        left, right = ext2, ext1  # +y is the robot's left

    def mp4(serial):
        return None if serial is None else str(relative / "recordings" / "MP4" / f"{serial}.mp4")

    def pose(serial):
        return None if serial not in extrinsics else extrinsics[serial][0].tolist()

    return {
        "uuid": f"{lab}+{user_id}+{stamp}",
        "lab": lab,
        "user": attrs["user"],
        "user_id": user_id,
        "date": stamp[:10],
        "timestamp": stamp,
        "hdf5_path": str(relative / "trajectory.h5"),
        "building": attrs["building"],
        "scene_id": attrs["scene_id"],
        "success": attrs["success"],
        "robot_serial": attrs["robot_serial_number"],
        "droid_version": attrs["version_number"],
        "current_task": attrs["current_task"],
        "trajectory_length": rows,
        "wrist_cam_serial": wrist,
        "ext1_cam_serial": ext1,
        "ext2_cam_serial": ext2,
        "wrist_cam_extrinsics": pose(wrist),
        "ext1_cam_extrinsics": pose(ext1),
        "ext2_cam_extrinsics": pose(ext2),
        "wrist_svo_path": None,
        "wrist_mp4_path": mp4(wrist),
        "ext1_svo_path": None,
        "ext1_mp4_path": mp4(ext1),
        "ext2_svo_path": None,
        "ext2_mp4_path": mp4(ext2),
        "left_mp4_path": mp4(left),
        "right_mp4_path": mp4(right),
    }


def _write_h5(path, cartesian, gripper, joints, cameras, extrinsics, actions, stamps_ms, success, attrs) -> None:
    import h5py

    rows = len(stamps_ms)
    last = np.arange(rows) == rows - 1
    with h5py.File(path, "w") as h5:
        state = h5.create_group("observation/robot_state")
        state["cartesian_position"] = np.asarray(cartesian, dtype=np.float64)
        state["gripper_position"] = np.asarray(gripper, dtype=np.float64).reshape(rows)
        if joints is not None:
            state["joint_positions"] = np.asarray(joints, dtype=np.float64)
        for serial, pose in extrinsics.items():
            h5[f"observation/camera_extrinsics/{serial}_left"] = pose
        for serial, (kind, _) in cameras.items():
            h5[f"observation/camera_type/{serial}"] = np.full(rows, 0 if kind == "wrist" else 1, dtype=np.int64)
            h5[f"observation/timestamp/cameras/{serial}_frame_received"] = stamps_ms
            h5[f"observation/timestamp/cameras/{serial}_estimated_capture"] = stamps_ms
        info = h5.create_group("observation/controller_info")
        info["movement_enabled"] = np.ones(rows, dtype=bool)
        info["controller_on"] = np.ones(rows, dtype=bool)
        info["success"] = last & success
        info["failure"] = last & (not success)
        clock = h5.require_group("observation/timestamp")
        clock["robot_state/robot_timestamp_seconds"] = stamps_ms // 1000
        clock["robot_state/robot_timestamp_nanos"] = (stamps_ms % 1000) * 1_000_000
        clock["control/step_start"] = stamps_ms
        clock["control/step_end"] = np.append(stamps_ms[1:], stamps_ms[-1] + round(1000 / CONTROL_HZ))
        clock["skip_action"] = np.zeros(rows, dtype=bool)
        for name, values in actions.items():
            h5[f"action/{name}"] = values
        for key, value in attrs.items():
            h5.attrs[key] = value


def _move_into_place(partial: Path, episode_dir: Path) -> None:
    if not episode_dir.exists():
        os.rename(partial, episode_dir)
        return
    retired = episode_dir.with_name(f".{episode_dir.name}.replaced-{os.getpid()}")
    os.rename(episode_dir, retired)
    os.rename(partial, episode_dir)
    shutil.rmtree(retired)
