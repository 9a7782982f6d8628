"""Writing DROID-style episodes (ours: the sim's) as a LeRobot v3.0 dataset, with the DROID port's field names.

So the data opens in LeRobot's tools and reads back through `droid.lerobot` like
`lerobot/droid_1.0.1`: ``observation.state.cartesian_position`` (6, float32),
``observation.state.gripper_position`` (1), ``observation.state.joint_position`` (7) and the
port's 8-D ``observation.state`` (joints + gripper) when joints are known, videos
``observation.images.{exterior_1_left, exterior_2_left, wrist_left}``,
``camera_extrinsics.<camera>`` (6), the RLDS flags, ``language_instruction``, ``reward``,
``discount`` and ``is_episode_successful``. Commanded actions keep the port's
``action.<name>`` fields; ``action`` itself is the commanded cartesian pose + gripper (7-D, named
so) because a recording without joint commands cannot fill the port's joint-space ``action``.

`raw_to_lerobot` converts a folder of DROID raw episodes (what `collect-sim` writes): each
episode's MP4 frames are decoded once and re-encoded (AV1 by default, LeRobot's codec), frame i
with h5 row i; an MP4 one frame short of the h5 (droid#54) shortens the episode to its frames.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from vjepa_wm.datasets.droid.common import DroidError
from vjepa_wm.datasets.droid.lerobot import CARTESIAN, EXTRINSICS_KEYS, GRIPPER, LANGUAGE, LEROBOT_CAMERA_KEYS, SUCCESS
from vjepa_wm.datasets.lerobot_writer import LeRobotWriter
from vjepa_wm.embodiments.franka import CONTROL_HZ

POSE_NAMES = ["x", "y", "z", "roll", "pitch", "yaw"]
JOINT_NAMES = [f"joint_{i}" for i in range(7)]
RAW_CAMERAS = {"exterior_1": "ext1_cam_serial", "exterior_2": "ext2_cam_serial", "wrist": "wrist_cam_serial"}
# DROID raw action/ datasets -> their shape in the port.
ACTION_SHAPES = {"cartesian_position": (6, POSE_NAMES), "cartesian_velocity": (6, POSE_NAMES), "gripper_position": (1, ["gripper"]),
                 "gripper_velocity": (1, ["gripper"]), "joint_position": (7, JOINT_NAMES), "joint_velocity": (7, JOINT_NAMES)}


def _vector(size: int, names: list[str]) -> dict:
    return {"dtype": "float32", "shape": [size], "names": {"axes": names}}


def droid_features(cameras: list[str], joints: bool, actions: list[str], extrinsics: list[str]) -> dict:
    """The LeRobot features of DROID episodes with these cameras (exterior_1, exterior_2, wrist),
    joint states or not, these commanded actions and these cameras' extrinsics."""
    flag = {"dtype": "bool", "shape": [1], "names": None}
    scalar = {"dtype": "float32", "shape": [1], "names": None}
    text = {"dtype": "string", "shape": [1], "names": None}
    features = {"is_first": flag, "is_last": flag, "is_terminal": flag, LANGUAGE: text,
                CARTESIAN: _vector(6, POSE_NAMES), GRIPPER: _vector(1, ["gripper"])}
    if joints:
        features["observation.state.joint_position"] = _vector(7, JOINT_NAMES)
        features["observation.state"] = _vector(8, [*JOINT_NAMES, "gripper"])
    for camera in cameras:
        features[LEROBOT_CAMERA_KEYS[camera]] = {"dtype": "video", "shape": None, "names": ["height", "width", "channels"]}
    for name in actions:
        features[f"action.{name}"] = _vector(*ACTION_SHAPES[name])
    if "cartesian_position" in actions and "gripper_position" in actions:
        features["action"] = _vector(7, [*POSE_NAMES, "gripper"])
    features.update({"discount": scalar, "reward": scalar, SUCCESS: flag})
    for camera in extrinsics:
        features[EXTRINSICS_KEYS[camera]] = _vector(6, POSE_NAMES)
    return features


def droid_columns(features: Mapping[str, dict], *, cartesian: np.ndarray, gripper: np.ndarray, success: bool,
                  language_instruction: str = "", joint_position: np.ndarray | None = None,
                  actions: Mapping[str, np.ndarray] | None = None,
                  camera_extrinsics: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One episode's per-frame columns for `features` (as `droid_features` made them)."""
    rows = len(cartesian)
    gripper = np.asarray(gripper, dtype=np.float64).reshape(rows, 1)
    last = np.arange(rows) == rows - 1
    columns = {"is_first": np.arange(rows) == 0, "is_last": last, "is_terminal": last & success,
               LANGUAGE: np.array([language_instruction] * rows, dtype=object), CARTESIAN: cartesian, GRIPPER: gripper,
               "discount": np.ones(rows), "reward": (last & success).astype(np.float64),
               SUCCESS: np.full(rows, bool(success))}
    if "observation.state" in features:
        if joint_position is None:
            raise DroidError("these episodes record joint positions, but one of them has none")
        columns["observation.state.joint_position"] = joint_position
        columns["observation.state"] = np.concatenate([joint_position, gripper], axis=1)
    actions = actions or {}
    for name in (n[len("action."):] for n in features if n.startswith("action.")):
        if name not in actions:
            raise DroidError(f"these episodes record action/{name}, but one of them has none")
        columns[f"action.{name}"] = np.asarray(actions[name], dtype=np.float64).reshape(rows, -1)
    if "action" in features:
        columns["action"] = np.concatenate([columns["action.cartesian_position"], columns["action.gripper_position"]], axis=1)
    for camera, key in EXTRINSICS_KEYS.items():
        if key in features:
            pose = np.asarray((camera_extrinsics or {}).get(camera), dtype=np.float64)
            columns[key] = np.broadcast_to(pose, (rows, 6)) if pose.shape in ((6,), (rows, 6)) else None
            if columns[key] is None:
                raise DroidError(f"camera {camera}: extrinsics must be [6] or [{rows}, 6]")
    return columns


def raw_to_lerobot(source, out: str | Path, codec: str = "av1", progress: bool = False) -> Path:
    """Write the DROID raw episodes of `source` (a folder tree or an episode list) as a LeRobot
    v3.0 dataset in the new folder `out`, in the order `list_raw_episodes` gives them."""
    from tqdm import tqdm

    from vjepa_wm.datasets.droid.raw_reader import list_raw_episodes

    episodes = list_raw_episodes(source)
    if not episodes:
        raise DroidError(f"{source}: no DROID raw episodes to convert")
    writer = None
    try:
        for episode_dir in tqdm(episodes, desc="lerobot", unit="episode", disable=not progress):
            episode = _read_raw(episode_dir)
            if writer is None:
                features = droid_features(list(episode["frames"]), episode["joints"] is not None, list(episode["actions"]),
                                          list(episode["extrinsics"]))
                writer = LeRobotWriter(out, fps=CONTROL_HZ, features=features, robot_type="Franka", codec=codec)
            videos = {LEROBOT_CAMERA_KEYS[camera]: frames for camera, frames in episode["frames"].items()}
            columns = droid_columns(writer.features, cartesian=episode["cartesian"], gripper=episode["gripper"],
                                    success=episode["success"], language_instruction=episode["language"],
                                    joint_position=episode["joints"], actions=episode["actions"],
                                    camera_extrinsics=episode["extrinsics"])
            writer.add_episode(columns, videos, task=episode["language"])
        return writer.finish()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise


def _read_raw(episode_dir: Path) -> dict:
    """Everything of one raw episode the LeRobot fields need, frames decoded, cut to the rows that have frames."""
    from vjepa_wm.datasets.droid.raw_reader import load_metadata

    try:
        return _read_raw_fields(episode_dir, load_metadata(episode_dir))
    except DroidError:
        raise
    except (KeyError, OSError, ValueError) as err:  # a missing h5 field or MP4, an undecodable video
        raise DroidError(f"{episode_dir}: cannot be converted ({type(err).__name__}: {err})") from None


def _read_raw_fields(episode_dir: Path, metadata: dict) -> dict:
    import h5py

    from vjepa_wm.datasets.droid.raw_reader import is_success
    from vjepa_wm.datasets.video_av import decode_all

    frames = {}
    for camera, key in RAW_CAMERAS.items():
        serial = metadata.get(key)
        if serial:
            frames[camera] = decode_all(episode_dir / "recordings" / "MP4" / f"{serial}.mp4")[0]
    if "exterior_1" not in frames:
        raise DroidError(f"{episode_dir}: no exterior camera 1 recording")
    with h5py.File(episode_dir / "trajectory.h5", "r") as h5:
        state = h5["observation/robot_state"]
        rows = min(len(state["cartesian_position"]), *(len(f) for f in frames.values()))
        joints = state["joint_positions"][:rows] if "joint_positions" in state else None
        actions = {name: h5[f"action/{name}"][:rows] for name in ACTION_SHAPES if f"action/{name}" in h5}
        extrinsics = {camera: h5[f"observation/camera_extrinsics/{metadata[RAW_CAMERAS[camera]]}_left"][:rows]
                      for camera in frames if f"observation/camera_extrinsics/{metadata[RAW_CAMERAS[camera]]}_left" in h5}
        episode = {"cartesian": state["cartesian_position"][:rows], "gripper": state["gripper_position"][:rows],
                   "joints": joints, "actions": actions, "extrinsics": extrinsics}
    episode.update(frames={camera: f[:rows] for camera, f in frames.items()}, success=is_success(episode_dir, metadata),
                   language=str(metadata.get("current_task") or ""))
    return episode
