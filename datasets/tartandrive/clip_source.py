"""NWM-format trajectories (TartanDrive, our sim drives) as a pretraining clip source.

`vjepa-wm pretrain` takes episode datasets by the name of a registered source (the command line
wires `nwm` to this class; see `world_model.pretraining.data.ClipSource` for the protocol), so
the encoder can be pretrained on driving frames:

    data:
      episodes:
        - {source: nwm, path: data/sim_drive_nwm}

A dataset with a train split (`splits/train/traj_names.txt`, as `nav-process` writes) gives its
train trajectories only, so the held-out drives stay unseen; without one, every trajectory.
Frames are sampled by 4 Hz row stride (fps 4 -> every frame, fps 2 -> every other one).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .clips import SAMPLE_HZ, BadTrajectory, read_frames, read_poses, training_trajectories


class NWMClipSource:
    """The (training) trajectories of an NWM dataset folder as a source of clips."""

    def __init__(self, source: str | Path):
        self.trajectories = training_trajectories(source)

    def __len__(self) -> int:
        return len(self.trajectories)

    def describe(self, index: int) -> str:
        return str(self.trajectories[index])

    def clip(self, index: int, num_frames: int, fps: float, generator: torch.Generator) -> np.ndarray:
        """uint8 RGB ``[num_frames, H, W, 3]`` from a random window (a `ValueError` if unreadable or too short)."""
        trajectory = read_poses(self.trajectories[index])
        stride = max(1, int(round(SAMPLE_HZ / fps)))
        span = (num_frames - 1) * stride + 1
        if len(trajectory) < span:
            raise BadTrajectory("too_short", f"{trajectory.folder}: {len(trajectory)} frames, a {num_frames}-frame clip spans {span}")
        start = int(torch.randint(len(trajectory) - span + 1, (1,), generator=generator))
        return read_frames(trajectory, start + stride * np.arange(num_frames))
