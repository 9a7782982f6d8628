"""Raw-DROID decode throughput on CPU: clips/s of `DroidRawDataset` through a DataLoader.

Without `--data`, a dataset is generated first in a temporary folder: `episodes` episodes of
`rows` rows at each resolution, one exterior camera written the way DROID writes it (OpenCV
mp4v, declared 60 fps). Each timed pass reads every episode once and cuts `clips_per_episode`
clips of `frames` frames `stride` rows apart (h5 open, MP4 seek + decode, states, actions).
"""
from __future__ import annotations

import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from vjepa_wm.datasets.droid.common import DroidConfig
from vjepa_wm.datasets.droid.raw_reader import DroidRawDataset
from vjepa_wm.datasets.droid.raw_writer import droid_episode_dir, write_droid_raw_episode

COLUMNS = ["dataset", "resolution", "episodes", "workers", "clips", "seconds", "clips_per_s", "frames_per_s"]


def generate_raw_dataset(root: Path, episodes: int, rows: int, height: int, width: int, seed: int = 0) -> Path:
    """Write `episodes` synthetic raw episodes (moving shapes, a smooth random state walk) under `root`."""
    import cv2

    from vjepa_wm.datasets.moving_shapes import moving_shapes_clip

    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1, 12, 0, 0)
    for episode in range(episodes):
        square = moving_shapes_clip(num_frames=rows, size=128, seed=seed + episode)
        frames = np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR) for frame in square])
        walk = np.cumsum(rng.normal(scale=0.01, size=(rows, 6)), axis=0)
        write_droid_raw_episode(droid_episode_dir(root, success=True, start=start + timedelta(minutes=episode)),
                                exterior_frames={"10000001": frames}, cartesian_position=walk,
                                gripper_position=np.clip(np.linspace(-0.2, 1.2, rows), 0, 1), success=True,
                                language_instruction="benchmark", camera_extrinsics={"10000001": np.zeros(6)})
    return root


def bench_decode(source, workers: int, config: DroidConfig, repeats: int = 3, label: str = "", resolution: str = "") -> dict:
    """Median seconds of one full pass (after a warm-up pass) with `workers` DataLoader workers."""
    from torch.utils.data import DataLoader

    dataset = DroidRawDataset(source, config)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers)
    times, clips = [], 0
    for attempt in range(repeats + 1):
        begin = time.perf_counter()
        clips = sum(1 for _ in loader)
        if attempt:
            times.append(time.perf_counter() - begin)
    if clips == 0:
        raise ValueError(f"{source}: no clips could be read (see the skip summary in the log)")
    seconds = sorted(times)[len(times) // 2]
    return {
        "benchmark": "droid",
        "dataset": label or str(source),
        "resolution": resolution,
        "episodes": len(dataset.episodes),
        "workers": workers,
        "clips": clips,
        "frames_per_clip": config.frames_per_clip,
        "row_stride": config.row_stride,
        "seconds": seconds,
        "clips_per_s": clips / seconds,
        "frames_per_s": clips * config.frames_per_clip / seconds,
    }


def run(data: str | None, sizes: list[tuple[int, int]], episodes: int, rows: int, workers: list[int], frames: int,
        stride: int, clips_per_episode: int, repeats: int) -> list[dict]:
    config = DroidConfig(frames_per_clip=frames, row_stride=stride, clips_per_episode=clips_per_episode, rank=0, world_size=1)
    records = []
    if data:
        for count in workers:
            records.append(bench_decode(data, count, config, repeats, label=Path(data).name))
        return records
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="droid-bench-") as tmp:
        for height, width in tqdm(sizes, desc="bench droid", unit="size"):
            root = generate_raw_dataset(Path(tmp) / f"{height}x{width}", episodes, rows, height, width)
            for count in workers:
                records.append(bench_decode(root, count, config, repeats, label=f"generated {rows} rows",
                                            resolution=f"{width}x{height}"))
    return records


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'180x320,720x1280' (height x width) -> [(180, 320), (720, 1280)]."""
    sizes = []
    for item in text.split(","):
        try:
            height, width = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise ValueError(f"--sizes item {item!r} is not HEIGHTxWIDTH") from None
        if height < 16 or width < 16 or height % 2 or width % 2:
            raise ValueError(f"--sizes item {item!r}: sides must be even and at least 16")
        sizes.append((height, width))
    return sizes

