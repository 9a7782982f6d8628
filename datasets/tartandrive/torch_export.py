"""TartanDrive's `rosbag_to_dataset` export: one `.pt` (or `.npz`) per bag, read as numpy.

`multi_convert_bag.py` with `specs/2021_atv_3.yaml` resamples a bag at dt = 0.1 s and saves
`torch.save(dict)`: `observation` (a dict of float32 tensors with leading dimension T: `state`
[T, 7] x, y, z, qx, qy, qz, qw, smoothed and shifted to start at the origin; `imu` [T, 20, 6];
`image_rgb` [T, 3, 128, 128] in [0, 1], channels in the bag's byte order; `heightmap`
[T, 1, 64, 64]; `rgbmap` [T, 3, 64, 64]; `wheel_rpm` and `shock_travel` [T, 20, 4];
`intervention` [T, 1]), `next_observation` (the same keys one step later), `action` [T, 2]
(throttle, steer in [-1, 1]), `reward` [T], `terminal` bool [T] (last True) and `dt` [T].

With `--torch False` it saves `np.savez(path, **dataset)` of the unconverted result instead:
`observation` (the same dict, before the NaN trim, the smoothing and the zeroing; its arrays may
differ in length by the strided padding), `action` [T, 2] and `dt` (a scalar). `np.savez` stores a
dict as a pickled object array, so those members go through `safe_pickle` (numpy arrays and
dicts only), and every other member is read with ``allow_pickle=False``.

`.pt` files are loaded with ``weights_only=True``: torch's own restricted unpickler, which
rebuilds tensors and containers and runs nothing else.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import safe_pickle
from .messages import quaternion_yaw

STEP_KEYS = ("action", "reward", "terminal", "dt")  # per-step arrays beside the observation dicts


@dataclass(frozen=True)
class TartanDriveExport:
    """One exported bag. `next_observation`, `reward` and `terminal` exist only in `.pt` files."""

    path: Path
    observation: dict[str, np.ndarray]
    action: np.ndarray | None  # [T, 2] throttle, steer
    dt: np.ndarray  # [T] seconds per step (.npz: one value, broadcast)
    next_observation: dict[str, np.ndarray] = field(default_factory=dict)
    reward: np.ndarray | None = None
    terminal: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.dt)

    def planar_poses(self) -> np.ndarray:
        """``[T, 3]`` x, y, yaw of `observation["state"]` (no yaw offset: the export's own frame)."""
        state = self.observation.get("state")
        if state is None or state.ndim != 2 or state.shape[1] < 7:
            raise ValueError(f"{self.path}: no observation 'state' [T, 7] to take poses from")
        state = state.astype(np.float64)
        return np.stack([state[:, 0], state[:, 1], quaternion_yaw(*state[:, 3:7].T)], axis=1)


def read_export(path: str | Path) -> TartanDriveExport:
    """A `.pt` or `.npz` export of one bag; a one-line ValueError for anything else."""
    path = Path(path)
    if path.suffix == ".pt":
        return _from_torch(path)
    if path.suffix == ".npz":
        return _from_numpy(path)
    raise ValueError(f"{path}: not a TartanDrive export (.pt or .npz)")


def _from_torch(path: Path) -> TartanDriveExport:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt zip, a refused global, a truncated file
        message = str(err).strip().splitlines()
        raise ValueError(f"{path}: not a loadable torch export ({type(err).__name__}: {message[0] if message else ''})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict, got {type(data).__name__}")

    def array(value, name: str) -> np.ndarray:
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: {name} must be a tensor, got {type(value).__name__}")
        return value.detach().cpu().numpy()

    observation = _observations(path, data, "observation", array)
    next_observation = _observations(path, data, "next_observation", array) if "next_observation" in data else {}
    steps = {key: array(data[key], key) for key in STEP_KEYS if key in data}
    return _checked(path, observation, next_observation, steps, require_same_length=True)


def _from_numpy(path: Path) -> TartanDriveExport:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:  # not a zip, a truncated member
        raise ValueError(f"{path}: not a readable .npz ({type(err).__name__}: {err})".splitlines()[0]) from None
    data = {}
    with archive:
        for key in archive.files:
            try:
                data[key] = archive[key]
            except ValueError:  # an object member: np.savez pickled a dict
                data[key] = _object_member(path, key)
    observation = _observations(path, data, "observation", lambda v, name: np.asarray(v))
    steps = {key: np.asarray(data[key]) for key in STEP_KEYS if key in data}
    if "dt" in steps and steps["dt"].ndim == 0:
        length = len(steps["action"]) if "action" in steps else len(next(iter(observation.values())))
        steps["dt"] = np.full(length, float(steps["dt"]), dtype=np.float64)
    return _checked(path, observation, {}, steps, require_same_length=False)


def _object_member(path: Path, key: str):
    """One object array of an .npz (a pickle behind a .npy header), read with `safe_pickle`."""
    source = f"{path}[{key}]"
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            if version not in readers:
                raise ValueError(f"{source}: unsupported .npy version {version}")
            _, _, dtype = readers[version](member)
            if dtype != object:
                raise ValueError(f"{source}: unreadable {dtype} member")
            value = safe_pickle.loads(member.read(), source)
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{source}: unreadable member ({type(err).__name__})") from None
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        value = value.item()
    return value


def _observations(path: Path, data: dict, key: str, array) -> dict[str, np.ndarray]:
    value = data.get(key)
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{path}: expected '{key}' to be a non-empty dict of arrays, got {type(value).__name__}")
    return {str(name): array(item, f"{key}/{name}") for name, item in value.items()}


def _checked(path: Path, observation: dict, next_observation: dict, steps: dict, require_same_length: bool) -> TartanDriveExport:
    """Check the published shapes: every per-step array with one leading length; action [T, 2]."""
    if "dt" not in steps:
        raise ValueError(f"{path}: no 'dt'")
    length = len(steps["dt"])
    action = steps.get("action")
    if action is not None and (action.ndim != 2 or action.shape[1] != 2):
        raise ValueError(f"{path}: action must be [T, 2] (throttle, steer), got {list(action.shape)}")
    if require_same_length:
        arrays = {**{f"observation/{k}": v for k, v in observation.items()},
                  **{f"next_observation/{k}": v for k, v in next_observation.items()}, **steps}
        wrong = {name: list(v.shape) for name, v in arrays.items() if v.ndim == 0 or len(v) != length}
        if wrong:
            name, shape = next(iter(wrong.items()))
            raise ValueError(f"{path}: {name} has shape {shape}; every array must have the T = {length} steps of 'dt'")
        if next_observation and set(next_observation) != set(observation):
            raise ValueError(f"{path}: next_observation keys {sorted(next_observation)} differ from observation's")
    state = observation.get("state")
    if state is not None and (state.ndim != 2 or state.shape[1] != 7):
        raise ValueError(f"{path}: observation/state must be [T, 7] (x, y, z, qx, qy, qz, qw), got {list(state.shape)}")
    return TartanDriveExport(path, observation, action, steps["dt"], next_observation, steps.get("reward"),
                             steps.get("terminal"))
