"""Raw DROID (and our sim recordings, which share the layout) as a pretraining clip source.

`vjepa-wm pretrain` takes episode datasets through ``data.episodes: "module:function"`` (see
`world_model.pretrain_data.ClipSource`); this is that function for raw DROID:

    data:
      episodes:
        - {factory: "datasets.droid_clip_source:raw_clip_source", path: data/sim}

Frames are sampled by h5 row stride at DROID's 15 Hz row rate (fps 4 -> every 4th row ~ 3.75 Hz),
never by the MP4's declared frame rate (raw DROID and sim MP4s declare 60 fps).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from datasets.droid_raw_reader import RawEpisode, list_raw_episodes

ROW_HZ = 15.0


class RawClipSource:
    def __init__(self, source: str | Path, camera: str = "left"):
        self.episodes = list_raw_episodes(source)
        self.camera = camera

    def __len__(self) -> int:
        return len(self.episodes)

    def describe(self, index: int) -> str:
        return str(self.episodes[index])

    def clip(self, index: int, num_frames: int, fps: float, generator: torch.Generator) -> np.ndarray:
        """uint8 RGB ``[num_frames, H, W, 3]`` from a random window (a `BadEpisode`/`ValueError` if too short)."""
        episode = RawEpisode(self.episodes[index], self.camera)
        stride = max(1, int(round(ROW_HZ / fps)))
        span = (num_frames - 1) * stride + 1
        if episode.usable < span:
            raise ValueError(f"{episode.dir}: {episode.usable} rows, fewer than the {span} a {num_frames}-frame clip spans")
        start = int(torch.randint(episode.usable - span + 1, (1,), generator=generator))
        return episode.read_frames(start + stride * np.arange(num_frames))


def raw_clip_source(path: str) -> RawClipSource:
    """The `data.episodes` factory for raw DROID folders or episode lists."""
    return RawClipSource(path)
