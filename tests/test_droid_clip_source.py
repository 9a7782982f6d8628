"""Raw DROID as a pretraining clip source: frames by h5 row stride, never by the MP4's declared fps."""
from __future__ import annotations

import pytest
import torch

from test_droid_raw import read_barcode, write_episode
from vjepa_wm.clip_sources import CLIP_SOURCES
from vjepa_wm.datasets.droid.clip_source import RawClipSource
from vjepa_wm.world_model.pretraining.config import DataConfig, EpisodeSourceConfig
from vjepa_wm.world_model.pretraining.data import build_pools


def test_clips_are_sampled_every_fourth_row_at_4_fps(tmp_path):
    write_episode(tmp_path, seed=1, rows=40)  # the MP4 declares 60 fps, as raw DROID does
    source = RawClipSource(str(tmp_path))
    assert len(source) == 1
    frames = source.clip(0, 6, 4.0, torch.Generator().manual_seed(3))
    rows = [read_barcode(frame)[0] for frame in frames]
    assert rows == list(range(rows[0], rows[0] + 24, 4))
    with pytest.raises(ValueError, match="fewer than"):
        source.clip(0, 12, 4.0, torch.Generator())


def test_episode_frames_feed_the_image_pool_when_asked(tmp_path):
    write_episode(tmp_path, seed=2, rows=20)
    episodes = [EpisodeSourceConfig("droid_raw", str(tmp_path))]  # the command line's registry names it
    videos, images = build_pools(DataConfig(episodes=episodes, episode_images=True), CLIP_SOURCES)
    assert len(videos) == 1 and len(images) == 1
    _, no_images = build_pools(DataConfig(episodes=episodes), CLIP_SOURCES)
    assert len(no_images) == 0
    source, index = images.locate(0)
    frame = source.clip(index, 1, 4.0, torch.Generator().manual_seed(0))
    assert frame.shape == (1, 96, 128, 3)
