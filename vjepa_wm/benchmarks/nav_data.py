"""The navigation data pipeline's speed on this machine: sim driving and `nav-process`.

sim-drive: scripted drives of the PyBullet car recorded as TartanDrive bags (`collect-drive`:
world building, physics, camera frames at the recorded rate, bag writing), in camera frames per
wall second and sim seconds per wall second. nav-process: those bags (or the real ones given as
`data`) processed into the NWM format (4 Hz sampling, backwards cut, 320x240 JPEGs, splits), in
bag seconds per wall second, the figure `nav-process` prints, and NWM frames per second. Each
timed pass writes into a fresh temporary folder; the median pass is reported.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from vjepa_wm.datasets.tartandrive.processing import NavProcessConfig, process_bags
from vjepa_wm.sim.driving.collect import CollectDriveConfig, collect

COLUMNS = ["stage", "resolution", "workers", "bags", "bag_seconds", "frames", "seconds", "frames_per_s", "bag_s_per_s"]


def bench_drive(root: Path, episodes: int, seconds: float, width: int, height: int, image_hz: int, workers: int) -> dict:
    """One collect-drive pass into `root`."""
    config = CollectDriveConfig(out=str(root), episodes=episodes, workers=workers, seconds=seconds, width=width,
                                height=height, image_hz=image_hz)
    began = time.perf_counter()
    report = collect(config, progress=False)
    wall = time.perf_counter() - began
    return _record("sim-drive", f"{width}x{height}", workers, len(report.written), report.drive_seconds, report.frames, wall)


def bench_process(bags: list[str], out: Path, workers: int) -> dict:
    """One nav-process pass of `bags` into `out`."""
    config = NavProcessConfig(out=str(out), workers=workers)
    began = time.perf_counter()
    report = process_bags(bags, config, progress=False)
    wall = time.perf_counter() - began
    if not report.processed:
        raise ValueError(f"no bag could be processed ({', '.join(sorted(report.failed))}); see nav-process for details")
    return _record("nav-process", f"{config.image_width}x{config.image_height}", workers, len(report.processed),
                   report.bag_seconds, report.frames, wall)


def run(data: str | None, episodes: int, seconds: float, width: int, height: int, image_hz: int, workers: list[int],
        repeats: int) -> list[dict]:
    from tqdm import tqdm

    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}")
    if not workers or min(workers) < 1:
        raise ValueError(f"--workers must list process counts >= 1, got {workers}")
    if data is not None and not Path(data).exists():
        raise ValueError(f"--data {data}: no such bag or folder")
    records = []
    with tempfile.TemporaryDirectory(prefix="nav-data-bench-") as tmp, \
            tqdm(total=2 * len(workers) * repeats, desc="bench nav-data", unit="pass") as bar:
        for count in workers:
            drives, processed = [], []
            for attempt in range(repeats):
                root = Path(tmp) / f"w{count}_{attempt}"
                drives.append(bench_drive(root / "bags", episodes, seconds, width, height, image_hz, count))
                bar.update(1)
                processed.append(bench_process([data or str(root / "bags")], root / "nwm", count))
                bar.update(1)
            records += [_median(drives), _median(processed)]
    return records


def _record(stage: str, resolution: str, workers: int, bags: int, bag_seconds: float, frames: int, wall: float) -> dict:
    return {"benchmark": "nav-data", "stage": stage, "resolution": resolution, "workers": workers, "bags": bags,
            "bag_seconds": bag_seconds, "frames": frames, "seconds": wall, "frames_per_s": frames / wall,
            "bag_s_per_s": bag_seconds / wall}


def _median(passes: list[dict]) -> dict:
    return sorted(passes, key=lambda record: record["seconds"])[len(passes) // 2]
