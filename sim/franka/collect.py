"""Scripted data collection in the simulator, written in the DROID raw format.

What one row is: 1/15 s of simulated time (DROID's 15 Hz control and camera rate), i.e.
`physics_hz / 15` physics substeps. Each scripted action is held for exactly 4 rows (the
collection env runs with `max_settle_rows = 0`, a fixed control period like a real 15 Hz
controller), and every row is recorded: measured state, joints, the command in force and the
camera frames. So an episode of N actions has 4N + 1 rows; rows 0, 4, 8, ... are the states
between actions, and the standard reader with its default stride of 4 rows yields 3.75 Hz clips
whose state differences are actions of the size the planner issues (exactly the executed actions
when the window starts on a multiple of 4, equally valid 4-row deltas otherwise).

Episodes go through `datasets.droid.raw_writer.write_droid_raw_episode`, so `datasets/` reads sim data
exactly as it reads real DROID (success/failure folders, metadata JSON, MP4 per camera). Episode i
is deterministic: its RNG is seeded by (seed, i) and its start time, which names its folder, is
`start_time + i` seconds. That makes collection resumable (an episode whose folder exists, under
success/ or failure/, is complete: the writer renames a finished episode into place) and the result
independent of the number of worker processes.

With ``format: lerobot`` the same episodes are also written as one LeRobot v3.0 dataset in
``out/lerobot`` (the DROID port's field names, AV1 or H.264 videos at 15 fps), rebuilt from the
raw episodes whenever a run added some: raw stays the resumable record, LeRobot the shareable one.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

from vjepa_wm.sim.episode_pool import run_episodes
from vjepa_wm.sim.franka.config import SimConfig

EXTERIOR_SERIAL = "sim-ext1"
WRIST_SERIAL = "sim-wrist"
MANIFEST = "collect_sim.json"
LEROBOT_FOLDER = "lerobot"  # under out/, with format lerobot


@dataclass
class CollectConfig:
    """Settings of a collection run (the sim settings are those of `SimConfig`)."""

    out: str = "outputs/sim_droid"  # root folder; episodes land in out/<lab>/<success|failure>/<date>/<time>/
    episodes: int = 100  # how many episodes the folder should hold (indices 0 .. episodes-1)
    workers: int = 1  # parallel processes, one per core
    seed: int = 0  # collection seed: episode i is seeded by (seed, i)
    actions_per_episode: int = 40  # scripted actions per episode (40 actions = 161 rows = 10.7 s)
    image_size: int = 128  # square camera images, pixels
    low_poly: bool = True  # draw the Panda with its collision meshes (several times faster to render)
    wrist_camera: bool = False  # also record the wrist camera
    renderer: Literal["tiny", "egl", "auto"] = "tiny"  # tiny: CPU TinyRenderer; egl: the EGL plugin; auto: EGL with an NVIDIA driver
    lab: str = "SIM"  # the <LAB> folder and metadata lab name
    start_time: str = "2025-01-01T00:00:00"  # ISO time of episode 0; episode i starts i seconds later (names its folder)
    format: Literal["raw", "lerobot"] = "raw"  # raw: DROID raw only; lerobot: also a LeRobot v3.0 dataset of all episodes in out/lerobot
    lerobot_codec: Literal["av1", "h264"] = "av1"  # video codec of the LeRobot dataset (av1: LeRobot's default)

    def validate(self) -> "CollectConfig":
        if self.episodes < 0:
            raise ValueError(f"episodes must be >= 0, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.actions_per_episode < 2:
            raise ValueError(f"actions_per_episode must be >= 2, got {self.actions_per_episode}")
        if not self.lab or not self.lab.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"lab must be letters, digits, '-' or '_', got {self.lab!r}")
        self.start()
        self.sim_config()
        return self

    def start(self) -> datetime:
        try:
            return datetime.fromisoformat(self.start_time)
        except ValueError:
            raise ValueError(f"start_time must be an ISO date-time, got {self.start_time!r}") from None

    def sim_config(self) -> SimConfig:
        # Fixed control period: every action lasts exactly 4 rows, so rows stay aligned with actions.
        return SimConfig(image_size=self.image_size, low_poly=self.low_poly, wrist_camera=self.wrist_camera,
                         renderer=self.renderer, max_settle_rows=0)

    def identity(self) -> dict:
        """The settings that decide episode contents (a resumed run must match them); a subclass's
        own fields (a command line's progress bar, say) never count."""
        skip = {"out", "episodes", "workers", "format", "lerobot_codec"}  # how episodes are stored, not what they hold
        return {f.name: getattr(self, f.name) for f in fields(CollectConfig) if f.name not in skip}


@dataclass
class CollectReport:
    written: list[Path] = field(default_factory=list)
    skipped: int = 0
    successes: int = 0
    rows: int = 0
    seconds: float = 0.0
    lerobot: Path | None = None  # the LeRobot dataset, when one was (re)built

    @property
    def episodes_per_minute(self) -> float:
        return 60.0 * len(self.written) / self.seconds if self.seconds > 0 else 0.0


def episode_start(config: CollectConfig, index: int) -> datetime:
    return config.start() + timedelta(seconds=index)


def existing_episode(config: CollectConfig, index: int) -> Path | None:
    """The folder of episode `index` if it was already written (under success/ or failure/)."""
    from vjepa_wm.datasets.droid.raw_writer import droid_episode_dir

    for success in (True, False):
        path = droid_episode_dir(config.out, success=success, start=episode_start(config, index), lab=config.lab, unique=False)
        if path.is_dir():
            return path
    return None


def collect(config: CollectConfig, progress: bool = True) -> CollectReport:
    """Make sure `config.out` holds episodes 0 .. episodes-1; write the missing ones."""
    from tqdm import tqdm

    config.validate()
    _check_manifest(config)
    report = CollectReport()
    todo = []
    for index in range(config.episodes):
        if existing_episode(config, index) is None:
            todo.append(index)
        else:
            report.skipped += 1
    began = time.perf_counter()
    with tqdm(total=len(todo), desc="collect-sim", unit="episode", disable=not progress or not todo) as bar:
        for path, success, rows in _run(config, todo):
            report.written.append(path)
            report.successes += int(success)
            report.rows += rows
            bar.update(1)
    if config.format == "lerobot" and (report.written or not (Path(config.out) / LEROBOT_FOLDER).is_dir()):
        report.lerobot = write_lerobot(config, progress)
    report.seconds = time.perf_counter() - began
    return report


def write_lerobot(config: CollectConfig, progress: bool = False) -> Path:
    """(Re)build ``out/lerobot``, a LeRobot v3.0 dataset of every episode in `out` (episode order:
    failure/ then success/ folders, by start time). A previous one is replaced only once the new
    one is complete."""
    import shutil

    from vjepa_wm.datasets.droid.lerobot_writer import raw_to_lerobot

    target = Path(config.out) / LEROBOT_FOLDER
    fresh = target.with_name(f".{LEROBOT_FOLDER}-next")
    if fresh.exists():
        shutil.rmtree(fresh)  # left by an interrupted rebuild of this collection
    raw_to_lerobot(config.out, fresh, codec=config.lerobot_codec, progress=progress)
    if target.exists():
        retired = target.with_name(f".{LEROBOT_FOLDER}-old")
        os.rename(target, retired)
        os.rename(fresh, target)
        shutil.rmtree(retired)
    else:
        os.rename(fresh, target)
    return target


def _run(config: CollectConfig, indices: list[int]):
    """Yield (path, success, rows) per episode, inline or from `workers` processes."""
    from vjepa_wm.sim.franka.env import FrankaEnv

    return run_episodes(partial(FrankaEnv, config.sim_config()), collect_episode, config, indices, config.workers)


def collect_episode(env, config: CollectConfig, index: int) -> tuple[Path, bool, int]:
    """Run scripted episode `index` in `env` and write it; returns (folder, success, rows)."""
    from vjepa_wm.datasets.droid.raw_writer import droid_episode_dir, write_droid_raw_episode
    from vjepa_wm.sim.franka.scripted import Explorer
    from vjepa_wm.sim.franka.tasks import START_HIGH, START_LOW, Configuration, sample_free_position, sample_objects

    rng = np.random.default_rng([config.seed, index])
    objects = sample_objects(rng)
    start = sample_free_position(rng, START_LOW, START_HIGH, objects)
    env.set_configuration(Configuration(tuple(float(v) for v in start), objects=objects))
    env.start_recording()
    outcome = Explorer(env, rng, config.actions_per_episode).run()
    rows = env.stop_recording()

    states = np.stack([row.state for row in rows])
    # DROID's action at row r is the command issued at row r, i.e. the one in force during the next row.
    commands = np.stack([row.command for row in rows[1:]] + [rows[-1].command])
    extrinsics = {EXTERIOR_SERIAL: env.cameras.exterior_pose}
    wrist = None
    if config.wrist_camera:
        wrist = {WRIST_SERIAL: np.stack([row.wrist for row in rows])}
        extrinsics[WRIST_SERIAL] = np.stack([row.wrist_pose for row in rows])
    begin = episode_start(config, index)
    path = droid_episode_dir(config.out, success=outcome.success, start=begin, lab=config.lab, unique=False)
    write_droid_raw_episode(
        path,
        exterior_frames={EXTERIOR_SERIAL: np.stack([row.exterior for row in rows])},
        wrist_frames=wrist,
        cartesian_position=states[:, :6],
        gripper_position=states[:, 6],
        joint_position=np.stack([row.arm for row in rows]),
        success=outcome.success,
        language_instruction=outcome.instruction,
        camera_extrinsics=extrinsics,
        actions={"cartesian_position": commands[:, :6], "gripper_position": commands[:, 6]},
        start=begin,
        scene_id=index,
    )
    return path, outcome.success, len(rows)


def _check_manifest(config: CollectConfig) -> None:
    """Record the settings beside the episodes; refuse to mix episodes made with other settings."""
    root = Path(config.out)
    manifest = root / MANIFEST
    identity = config.identity()
    if manifest.is_file():
        recorded = json.loads(manifest.read_text())
        if recorded != identity:
            changed = sorted(k for k in set(recorded) | set(identity) if recorded.get(k) != identity.get(k))
            raise ValueError(f"{root} holds episodes collected with other settings ({', '.join(changed)} differ); use another --out")
        return
    root.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(identity, indent=2) + "\n")
