"""Scripted drives in the sim, recorded as TartanDrive ROS bags (`vjepa-wm collect-drive`).

Each episode is a fresh world and a scripted drive (`scripted`) of `seconds` of sim time, written
through `datasets.tartandrive.bag_writer` with TartanDrive 1.0's topics, types and rates:
`/multisense/left/image_rect_color` (`sensor_msgs/Image`, bgr8 as the Multisense sends it) at
`image_hz`, `/odometry/filtered_odom` (`nav_msgs/Odometry`, TartanDrive's frame convention, see
`env`) at 50 Hz and `/cmd` (`geometry_msgs/TwistStamped`: throttle, steer) at 100 Hz. So the
recordings go through `vjepa-wm nav-process` exactly as the real logs do.

Layout, named the way TartanDrive names its logs (a folder of bags; `nav-process` names the
trajectories ``<folder>_<bag>_<i>``)::

    OUT/collect_drive.json             the settings the episodes were made with
    OUT/sim_seed<S>/drive_<i>.bag      episode i (ROS 1), or a drive_<i>/ folder (ROS 2)

Episode i is deterministic: its world and driver are drawn from (seed, i), and its record times
start at `start_time` + i hours. That makes collection resumable (a bag that exists is complete:
the writer renames a finished bag into place) and the result independent of the number of
workers. A non-empty OUT without the settings file is refused, so data collect-drive did not
write is never touched; a half-written bag of a killed run (a hidden ``.drive_<i>.bag.partial-<pid>``
folder) is removed once its process is gone.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

from vjepa_wm.sim.episode_pool import run_episodes

from .config import CameraConfig, DrivingConfig, RatesConfig, TerrainConfig

MANIFEST = "collect_drive.json"
EPISODE_SPACING_S = 3600  # record-time offset between consecutive episodes
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")


@dataclass
class CollectDriveConfig:
    """Settings of a drive collection run."""

    out: str = "outputs/sim_drive"  # root folder; bags land in out/sim_seed<seed>/drive_<i>.bag
    episodes: int = 20  # how many episodes the folder should hold (indices 0 .. episodes-1)
    workers: int = 1  # parallel processes, one per core
    seed: int = 0  # collection seed: episode i's world and drive are drawn from (seed, i)
    seconds: float = 60.0  # sim time driven per episode (60 s = 240 samples at 4 Hz)
    width: int = 160  # camera frame width, px (nav-process resizes to 320x240)
    height: int = 120  # camera frame height, px
    image_hz: int = 20  # camera frames per second recorded (TartanDrive: 20; 4 = only what nav-process samples)
    ros_version: Literal[1, 2] = 1  # 1: .bag files, as TartanDrive 1.0 was released; 2: ROS 2 bag folders
    start_time: str = "2021-09-01T12:00:00"  # record time (UTC) of episode 0; episode i starts i hours later
    terrain: TerrainConfig = field(default_factory=TerrainConfig)  # the world drawn for each episode

    def validate(self) -> "CollectDriveConfig":
        if self.episodes < 0:
            raise ValueError(f"episodes must be >= 0, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not 1.0 <= self.seconds <= EPISODE_SPACING_S - 60:
            raise ValueError(f"seconds must be 1 .. {EPISODE_SPACING_S - 60}, got {self.seconds}")
        if self.ros_version not in (1, 2):
            raise ValueError(f"ros_version must be 1 or 2, got {self.ros_version}")
        physics_hz = RatesConfig().physics_hz
        if self.image_hz < 1 or physics_hz % self.image_hz:
            raise ValueError(f"image_hz must divide the physics rate, {physics_hz} Hz (e.g. 20, 10, 5, 4), got {self.image_hz}")
        if not (16 <= self.width <= 2048 and 16 <= self.height <= 2048):
            raise ValueError(f"width and height must be 16..2048 px, got {self.width}x{self.height}")
        self.origin_ns(0)
        self.driving_config()
        return self

    def driving_config(self) -> DrivingConfig:
        return DrivingConfig(terrain=self.terrain, camera=CameraConfig(width=self.width, height=self.height),
                             rates=RatesConfig(image_hz=self.image_hz))

    def origin_ns(self, index: int) -> int:
        """Record time (ns since the epoch) of episode `index`'s first message."""
        try:
            start = datetime.fromisoformat(self.start_time)
        except ValueError:
            raise ValueError(f"start_time must be an ISO date-time, got {self.start_time!r}") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        return (round(start.timestamp()) + index * EPISODE_SPACING_S) * 1_000_000_000

    def bag_path(self, index: int) -> Path:
        name = f"drive_{index:05d}" + (".bag" if self.ros_version == 1 else "")
        return Path(self.out) / f"sim_seed{self.seed}" / name

    def identity(self) -> dict:
        """The settings that decide episode contents (a resumed run must match them); a subclass's
        own fields (a command line's progress bar, say) never count."""
        skip = {"out", "episodes", "workers"}
        return {f.name: _plain(getattr(self, f.name)) for f in fields(CollectDriveConfig) if f.name not in skip}


@dataclass
class CollectDriveReport:
    written: list[Path] = field(default_factory=list)
    skipped: int = 0
    drive_seconds: float = 0.0  # sim time recorded
    frames: int = 0  # camera frames recorded
    seconds: float = 0.0  # wall time

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def collect(config: CollectDriveConfig, progress: bool = True) -> CollectDriveReport:
    """Make sure `config.out` holds episodes 0 .. episodes-1; record the missing ones."""
    from tqdm import tqdm

    config.validate()
    _check_manifest(config)
    _remove_dead_partials(config.bag_path(0).parent)
    report = CollectDriveReport()
    todo = []
    for index in range(config.episodes):
        if config.bag_path(index).exists():
            report.skipped += 1
        else:
            todo.append(index)
    began = time.perf_counter()
    with tqdm(total=len(todo), desc="collect-drive", unit="episode", disable=not progress or not todo) as bar:
        for path, frames in _run(config, todo):
            report.written.append(path)
            report.frames += frames
            report.drive_seconds += config.seconds
            bar.update(1)
    report.seconds = time.perf_counter() - began
    return report


def _run(config: CollectDriveConfig, indices: list[int]):
    """Yield (path, frames) per episode, inline or from `workers` processes."""
    from vjepa_wm.sim.driving.env import DrivingEnv

    return run_episodes(partial(DrivingEnv, config.driving_config()), record_episode, config, indices, config.workers)


def record_episode(env, config: CollectDriveConfig, index: int) -> tuple[Path, int]:
    """Drive scripted episode `index` in `env` and write its bag; returns (path, camera frames)."""
    from vjepa_wm.datasets.tartandrive.bag_writer import TartanDriveBagWriter
    from vjepa_wm.sim.driving.scripted import ScriptedDriver

    rng = np.random.default_rng([config.seed, index])
    env.set_world(rng)
    driver = ScriptedDriver(env, rng, config.seconds)
    path = config.bag_path(index)
    path.parent.mkdir(parents=True, exist_ok=True)
    with TartanDriveBagWriter(path, ros_version=config.ros_version) as bag:
        env.start_recording(bag, config.origin_ns(index))
        env.drive(driver, config.seconds)
        env.stop_recording()
    return path, 1 + round(config.seconds * config.image_hz)


def _check_manifest(config: CollectDriveConfig) -> None:
    """Record the settings beside the episodes; refuse folders made otherwise or by others."""
    root = Path(config.out)
    manifest = root / MANIFEST
    identity = config.identity()
    if manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{manifest}: unreadable settings file ({err})") from None
        if recorded != identity:
            changed = sorted(k for k in set(recorded) | set(identity) if recorded.get(k) != identity.get(k))
            raise ValueError(f"{root} holds drives collected with other settings ({', '.join(changed)} differ); "
                             "use another --out")
        return
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"{root} exists and was not written by collect-drive; use an empty or new --out")
    root.mkdir(parents=True, exist_ok=True)
    partial = manifest.with_name(f".{MANIFEST}.partial-{os.getpid()}")
    partial.write_text(json.dumps(identity, indent=2) + "\n")
    os.replace(partial, manifest)


def _remove_dead_partials(folder: Path) -> None:
    """Drop the half-written bags (the writer's hidden staging folders) of processes that are gone."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        match = _PARTIAL.match(entry.name)
        if match and not _alive(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _plain(value):
    return asdict(value) if hasattr(value, "__dataclass_fields__") else value
