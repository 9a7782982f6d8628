"""Bags -> the NWM trajectory format, the way GNM's `process_bags.py` made NWM's TartanDrive data.

Per bag: sample (image, odometry) pairs at 4 Hz by record time (`sampling`), take poses with
TartanDrive's yaw offset of pi/2 and cut the backwards segments (`trajectories`), resize every
frame to 320 x 240 (NWM's size; GNM's default is 160 x 120) with INTER_AREA, no aspect crop, the
bytes taken as BGR (`messages.image_rgb`), and write each segment as trajectory
``<bag folder>_<bag name>_<i>`` (`"_".join(path.split("/")[-2:])[:-4]` + `_<i>` upstream, e.g.
`20210902_heightmaps_3_20210902_91_1`). Then, over every trajectory written so far: the train /
test split and NWM's eval indices (`splits`).

The output folder is NWM's data folder::

    OUT/<traj_name>/{0..T-1}.jpg, traj_data.pkl
    OUT/splits/train/traj_names.txt
    OUT/splits/test/{traj_names.txt, rollout_traj_names.txt, navigation_eval.pkl, rollout.pkl, time.pkl}
    OUT/nav_process.json        the settings the trajectories were made with
    OUT/.nav_process/           bookkeeping: done/<bag>.json per finished bag, claims, staging

Resuming: a bag with a done record is skipped. A bag's trajectories are written complete in
`.nav_process/staging/` and renamed into place, so a folder named like a trajectory is always
whole; before the first rename the bag claims its names (`claims/<bag>.json`), so a run killed
half-way knows on the next run which existing folders it wrote and replaces only those. A folder
it did not write is never replaced (that bag is skipped as `name_taken`), and a non-empty OUT
without `nav_process.json` is refused. Bags run in `workers` processes. A bag that cannot be read
is skipped and counted by reason; so is every message that cannot be decoded or used (the bag
then goes on as if that message had not been recorded).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import numpy as np

from . import nwm_format, splits
from .bags import IMAGE_TOPIC, ODOMETRY_TOPIC, TOPICS, BagError, TartanDriveBag, find_bags
from .messages import MessageError, image_rgb, odometry_pose
from .sampling import sample_pairs
from .trajectories import TARTANDRIVE_ANG_OFFSET, forward_segments, planar_poses

MANIFEST = "nav_process.json"
BOOKKEEPING = ".nav_process"
SPLITS = "splits"

# Why a bag gave nothing this run; each failed bag is counted under one of these.
BAG_FAILURES: dict[str, str] = {
    "unreadable_bag": "the bag cannot be opened, a chunk cannot be read, or a type definition cannot be parsed",
    "missing_topic": "the image or the odometry topic is not in the bag",
    "wrong_type": "the image or odometry topic carries another message type than TartanDrive records",
    "name_taken": "a folder named like one of its trajectories exists and was not written by nav-process",
}
# Why a message was left out; the bag goes on without it.
MESSAGE_SKIPS: dict[str, str] = {
    "corrupt_message": "the message does not deserialize",
    "bad_image": "an image of an unsupported encoding or whose size does not match its data",
    "bad_odometry": "an odometry pose that is not finite",
}


@dataclass
class NavProcessConfig:
    """Settings of `vjepa-wm nav-process` (the bags themselves are its positional arguments)."""

    out: str = "outputs/tartan_drive_nwm"  # NWM data folder: <out>/<traj>/ + <out>/splits/{train,test}/
    workers: int = 1  # parallel processes, one bag each
    sample_rate: float = 4.0  # Hz: a sample once 1/rate s of record time have passed (process_bags --sample-rate)
    ang_offset: float = TARTANDRIVE_ANG_OFFSET  # rad added to the odometry yaw (TartanDrive: pi/2)
    image_width: int = 320  # frames are resized to this width (NWM: 320; GNM default 160)
    image_height: int = 240  # and this height, INTER_AREA, no crop (NWM: 240; GNM default 120)
    channel_order: Literal["published", "encoding"] = "published"  # published: 3-channel bytes read as BGR whatever the encoding; encoding: follow it
    jpeg_quality: int = nwm_format.JPEG_QUALITY  # JPEG quality of the frames (PIL's default, as upstream saved them)
    image_topic: str = IMAGE_TOPIC  # sensor_msgs/Image topic
    odometry_topic: str = ODOMETRY_TOPIC  # nav_msgs/Odometry topic
    split_seed: int = 0  # seed of the train/test shuffle and of the eval-index draws
    train_fraction: float = splits.TRAIN_FRACTION  # share of trajectories in train (int(fraction * n), GNM data_split)
    rollout_trajectories: int = 64  # test trajectories in rollout_traj_names.txt (NWM TartanDrive: 64)
    navigation_eval_entries: int = 100  # planning entries in navigation_eval.pkl (NWM TartanDrive: 100)
    rollout_entries: int = 150  # entries in rollout.pkl (NWM TartanDrive: 150)
    time_entries: int = 500  # entries in time.pkl (NWM TartanDrive: 500)

    def __post_init__(self):
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not 0 < self.sample_rate < math.inf:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {self.sample_rate}")
        if self.image_width < 1 or self.image_height < 1:
            raise ValueError(f"image size must be positive, got {self.image_width}x{self.image_height}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if not 0 <= self.train_fraction <= 1:
            raise ValueError(f"train_fraction must be in [0, 1], got {self.train_fraction}")
        for name in ("rollout_trajectories", "navigation_eval_entries", "rollout_entries", "time_entries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def identity(self) -> dict:
        """The settings that decide the trajectories' contents (a resumed run must match them)."""
        keep = ("sample_rate", "ang_offset", "image_width", "image_height", "channel_order", "jpeg_quality",
                "image_topic", "odometry_topic")
        return {f.name: getattr(self, f.name) for f in fields(NavProcessConfig) if f.name in keep}


@dataclass
class BagOutcome:
    """What one bag gave: its trajectories (name -> length) or the reason it gave none."""

    bag: str
    base: str
    trajectories: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    duration_s: float = 0.0  # record time the bag spans
    skipped_messages: dict[str, int] = field(default_factory=dict)
    failure: str | None = None  # a key of BAG_FAILURES
    detail: str = ""


@dataclass
class NavProcessReport:
    processed: list[BagOutcome] = field(default_factory=list)
    already_done: int = 0
    failures: list[BagOutcome] = field(default_factory=list)
    skipped_messages: Counter = field(default_factory=Counter)
    split_sizes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> Counter:
        return Counter(outcome.failure for outcome in self.failures)

    @property
    def trajectories(self) -> int:
        return sum(len(outcome.trajectories) for outcome in self.processed)

    @property
    def frames(self) -> int:
        return sum(sum(outcome.trajectories.values()) for outcome in self.processed)

    @property
    def bag_seconds(self) -> float:
        return sum(outcome.duration_s for outcome in self.processed)

    def summary(self) -> str:
        """A few lines for a person: what was written, what was skipped and why."""
        speed = self.bag_seconds / self.seconds if self.seconds > 0 else 0.0
        lines = [f"processed {len(self.processed)} bags ({self.bag_seconds:.1f} s of driving, {speed:.1f} bag s per s) "
                 f"-> {self.trajectories} trajectories, {self.frames} frames; {self.already_done} bags already done"]
        if self.failures:
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.failed.items()))
            lines.append(f"skipped {len(self.failures)} bags ({reasons}); first: {self.failures[0].detail}")
        if self.skipped_messages:
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped_messages.items()))
            lines.append(f"skipped messages: {reasons}")
        if self.split_sizes:
            lines.append("splits: " + ", ".join(f"{name} {size}" for name, size in self.split_sizes.items()))
        return "\n".join(lines)


def trajectory_base(bag: Path) -> str:
    """``<parent folder>_<bag name without .bag>``, the prefix of the bag's trajectory names."""
    bag = bag.resolve()
    stem = bag.name[:-4] if bag.name.endswith(".bag") else bag.name
    return f"{bag.parent.name}_{stem}"


def process_bags(inputs: Sequence[str | Path], config: NavProcessConfig, progress: bool = True) -> NavProcessReport:
    """Process every bag in `inputs` (bag files, ROS 2 bag folders, folders of them) into `config.out`."""
    from tqdm import tqdm

    bags = find_bags(inputs)
    if not bags:
        raise ValueError("no bags found in " + ", ".join(map(str, inputs)))
    bases: dict[str, Path] = {}
    for bag in bags:
        other = bases.setdefault(trajectory_base(bag), bag)
        if other != bag:
            raise ValueError(f"{bag} and {other} would both name trajectories {trajectory_base(bag)}_*; process them "
                             "into different --out folders")
    out = Path(config.out)
    _check_manifest(out, config)
    report = NavProcessReport()
    todo = []
    for base, bag in bases.items():
        if _done_path(out, base).is_file():
            report.already_done += 1
        else:
            todo.append((bag, base))
    began = time.perf_counter()
    with tqdm(total=len(todo), desc="nav-process", unit="bag", disable=not progress or not todo) as bar:
        for outcome in _run(todo, config):
            if outcome.failure:
                report.failures.append(outcome)
            else:
                report.processed.append(outcome)
            report.skipped_messages.update(outcome.skipped_messages)
            bar.set_postfix(trajectories=report.trajectories, refresh=False)
            bar.update(1)
    report.split_sizes = write_splits(out, config)
    report.seconds = time.perf_counter() - began
    return report


def _run(todo: list[tuple[Path, str]], config: NavProcessConfig):
    if config.workers == 1 or len(todo) <= 1:
        for bag, base in todo:
            yield process_bag(bag, base, config)
        return
    # forkserver, as sim collection: clean workers that do not re-run the caller's __main__.
    with ProcessPoolExecutor(config.workers, mp_context=get_context("forkserver"), initializer=_init_worker) as pool:
        futures = [pool.submit(process_bag, bag, base, config) for bag, base in todo]
        for future in as_completed(futures):
            yield future.result()


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already


def process_bag(bag: Path, base: str, config: NavProcessConfig) -> BagOutcome:
    """Read one bag, cut it into trajectories and write them into `config.out` (see the module doc)."""
    outcome = BagOutcome(str(bag), base)
    try:
        samples = read_samples(bag, config, outcome)
    except BagError as err:
        return _failed(outcome, "unreadable_bag", str(err))
    if samples is None:
        return outcome
    frames = samples.frames
    outcome.samples = len(frames)
    poses = planar_poses(samples.odometry, config.ang_offset)
    segments = forward_segments(poses)
    names = [f"{base}_{i}" for i in range(len(segments))]
    out = Path(config.out)
    claimed = set(_read_json(_claim_path(out, base), default=[]))
    taken = [name for name in names if (out / name).exists() and name not in claimed]
    if taken:
        return _failed(outcome, "name_taken", f"{out / taken[0]} exists and was not written by nav-process")
    staging = out / BOOKKEEPING / "staging" / base
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, samples_of in zip(names, segments):
        index = list(samples_of)
        nwm_format.write_trajectory(staging / name, [frames[i] for i in index], poses[index, :2], poses[index, 2])
        outcome.trajectories[name] = len(index)
    _write_json(_claim_path(out, base), sorted(claimed | set(names)))
    for name in names:
        if (out / name).exists():  # claimed: a killed earlier run of this bag wrote it
            shutil.rmtree(out / name)
        os.rename(staging / name, out / name)
    _write_json(_done_path(out, base), asdict(outcome))
    _claim_path(out, base).unlink()
    shutil.rmtree(staging, ignore_errors=True)
    return outcome


@dataclass(frozen=True)
class BagSamples:
    """A bag's samples at the published instants, before the backwards cut."""

    stamps_ns: np.ndarray  # int64 [T], record time of the message that triggered each sample
    frames: list[bytes]  # T JPEGs, resized
    odometry: np.ndarray  # float64 [T, 7], x, y, z, qx, qy, qz, qw


def read_samples(bag_path: Path, config: NavProcessConfig, outcome: BagOutcome) -> BagSamples | None:
    """The bag's samples, or None when it lacks a topic (`outcome` then says why); skipped messages
    are counted in `outcome`. Raises `BagError` for a bag that cannot be read."""
    import cv2

    skipped: Counter = Counter()
    image_topic, odometry_topic = config.image_topic, config.odometry_topic
    with TartanDriveBag(bag_path) as bag:
        outcome.duration_s = max(bag.end_ns - bag.start_ns, 0) / 1e9
        topics = bag.topics
        for topic, expected in ((image_topic, TOPICS[IMAGE_TOPIC][1]), (odometry_topic, TOPICS[ODOMETRY_TOPIC][1])):
            if topic not in topics or topics[topic].count == 0:
                _failed(outcome, "missing_topic", f"{bag_path}: no messages on {topic}")
                return None
            if topics[topic].msgtype != expected:
                _failed(outcome, "wrong_type", f"{bag_path}: {topic} carries {topics[topic].msgtype}, not {expected}")
                return None
        convert: dict[str, tuple[str, Callable, str]] = {
            image_topic: ("image", lambda msg: image_rgb(msg, config.channel_order), "bad_image"),
            odometry_topic: ("odometry", odometry_pose, "bad_odometry"),
        }

        def events():
            for topic, stamp, raw in bag.raw_messages([image_topic, odometry_topic]):
                kind, to_value, reason = convert[topic]
                try:
                    yield kind, stamp, to_value(bag.decode(topic, raw))
                except BagError:
                    skipped["corrupt_message"] += 1
                except MessageError:
                    skipped[reason] += 1

        stamps, frames, odometry = [], [], []
        size = (config.image_width, config.image_height)
        for stamp, rgb, pose in sample_pairs(events(), bag.start_ns, config.sample_rate):
            frame = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
            stamps.append(stamp)
            frames.append(nwm_format.encode_jpeg(frame, config.jpeg_quality))
            odometry.append(pose)
    outcome.skipped_messages = dict(skipped)
    return BagSamples(np.asarray(stamps, dtype=np.int64), frames, np.asarray(odometry, dtype=np.float64).reshape(-1, 7))


def write_splits(out: Path, config: NavProcessConfig) -> dict[str, int]:
    """Split every trajectory of the finished bags and write the split lists and eval indices."""
    lengths: dict[str, int] = {}
    done = out / BOOKKEEPING / "done"
    for record in sorted(done.glob("*.json")) if done.is_dir() else []:
        lengths.update(_read_json(record, default={}).get("trajectories", {}))
    train, test = splits.split_names(list(lengths), config.split_seed, config.train_fraction)
    rollout = splits.rollout_names(lengths, test, config.rollout_trajectories, config.split_seed)
    folder = out / SPLITS
    nwm_format.write_traj_names(folder / "train" / nwm_format.TRAJ_NAMES, train)
    nwm_format.write_traj_names(folder / "test" / nwm_format.TRAJ_NAMES, test)
    nwm_format.write_traj_names(folder / "test" / "rollout_traj_names.txt", rollout)
    sizes = {"train": len(train), "test": len(test), "rollout": len(rollout)}
    for rule, count in ((splits.NAVIGATION_EVAL, config.navigation_eval_entries), (splits.ROLLOUT, config.rollout_entries),
                        (splits.TIME, config.time_entries)):
        names = rollout if rule.over == "rollout" else test
        entries = splits.sample_entries(splits.build_index(lengths, names, rule), count, config.split_seed)
        nwm_format.write_eval_index(folder / "test" / rule.file, entries)
        sizes[rule.file] = len(entries)
    return sizes


def _failed(outcome: BagOutcome, reason: str, detail: str) -> BagOutcome:
    outcome.failure, outcome.detail = reason, detail
    return outcome


def _check_manifest(out: Path, config: NavProcessConfig) -> None:
    """Record the settings beside the trajectories; refuse folders made otherwise or by others."""
    manifest = out / MANIFEST
    identity = config.identity()
    if manifest.is_file():
        recorded = _read_json(manifest, default=None)
        if recorded != identity:
            changed = sorted(k for k in set(recorded or {}) | set(identity) if (recorded or {}).get(k) != identity.get(k))
            raise ValueError(f"{out} holds trajectories made with other settings ({', '.join(changed)} differ); "
                             "use another --out")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and was not written by nav-process; use an empty or new --out")
    _write_json(manifest, identity)


def _done_path(out: Path, base: str) -> Path:
    return out / BOOKKEEPING / "done" / f"{base}.json"


def _claim_path(out: Path, base: str) -> Path:
    return out / BOOKKEEPING / "claims" / f"{base}.json"


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable bookkeeping file ({err})") from None


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(partial, path)
