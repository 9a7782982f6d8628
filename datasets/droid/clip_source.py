"""Raw DROID (and our sim recordings, which share the layout) as a pretraining clip source.

`vjepa-wm pretrain` takes episode datasets by the name of a registered source (the command line
wires `droid_raw` to this class; see `world_model.pretraining.data.ClipSource` for the protocol):

    data:
      episodes:
        - {source: droid_raw, path: data/sim}

Frames are sampled by h5 row stride at DROID's 15 Hz row rate (fps 4 -> every 4th row ~ 3.75 Hz),
never by the MP4's declared frame rate (raw DROID and sim MP4s declare 60 fps).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vjepa_wm.datasets.droid.raw_reader import RawEpisode, list_raw_episodes
from vjepa_wm.embodiments.franka import CONTROL_HZ


class RawClipSource:
    """Every raw episode under a folder (or in an episode list) as a source of clips of one camera."""

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
        stride = max(1, int(round(CONTROL_HZ / fps)))
        span = (num_frames - 1) * stride + 1
        if episode.usable < span:
            raise ValueError(f"{episode.dir}: {episode.usable} rows, fewer than the {span} a {num_frames}-frame clip spans")
        start = int(torch.randint(episode.usable - span + 1, (1,), generator=generator))
        return episode.read_frames(start + stride * np.arange(num_frames))

