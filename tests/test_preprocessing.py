"""Preprocessing: evaluation transform, DROID crop, video reading by fps, and input checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa_wm.datasets.video_io import write_mp4
from vjepa_wm.world_model.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DroidTransform,
    EvalTransform,
    ImageError,
    frame_step,
    read_video,
    to_uint8_frames,
)


def test_eval_transform_resizes_short_side_then_centre_crops():
    frames = np.zeros((2, 300, 600, 3), dtype=np.uint8)
    frames[:, :, 280:320] = 255  # a white vertical bar in the middle
    out = EvalTransform(crop=224)(frames)
    assert out.shape == (3, 2, 224, 224)
    # short side 300 -> 256, long side 600 -> 512: the bar (40 px wide) becomes ~34 px, centred.
    white = (torch.tensor([1.0, 1.0, 1.0]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    centre_column = out[:, 0, 100, 112]
    assert torch.allclose(centre_column, white, atol=1e-3)
    assert torch.allclose(out[:, 0, 100, 60], -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD), atol=1e-3)


def test_droid_crop_geometry_follows_the_aspect_fallback():
    transform = DroidTransform()
    assert transform.crop_box(720, 1280) == (0, 154, 720, 972)  # wide: full height, width 1.35 h
    assert transform.crop_box(180, 320) == (0, 38, 180, 243)
    assert transform.crop_box(400, 400) == (0, 0, 400, 400)  # within the aspect range: whole frame
    assert transform.crop_box(800, 300) == (200, 0, 400, 300)  # tall: full width, height w / 0.75


def test_droid_transform_output_and_round_trip_to_pixels():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 180, 243, 3), dtype=np.uint8)  # already at aspect 1.35
    out = DroidTransform(size=64)(frames)
    assert out.shape == (3, 3, 64, 64)
    back = to_uint8_frames(DroidTransform(size=243)(frames[:, :, :243]))
    assert back.shape == (3, 243, 243, 3)


def test_frames_must_be_uint8_rgb():
    with pytest.raises(ImageError, match="uint8"):
        EvalTransform()(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ImageError, match="RGB"):
        EvalTransform()(np.zeros((10, 10), dtype=np.uint8))


def test_frame_step_rule():
    assert frame_step(30, 4) == 7 and frame_step(29.97, 4) == 7 and frame_step(15, 4) == 3
    assert frame_step(0, 4) == 1 and frame_step(30, None) == 1


def test_read_video_samples_by_requested_fps(tmp_path):
    frames = np.zeros((40, 32, 48, 3), dtype=np.uint8)
    for i in range(40):
        frames[i, :, :, 0] = 6 * i  # frame index encoded in the red channel
    path = write_mp4(tmp_path / "clip.mp4", frames, fps=16)
    decoded, effective = read_video(path, fps=4)
    assert decoded.shape == (10, 32, 48, 3) and effective == pytest.approx(4.0)
    red = decoded[:, 16, 24, 0].astype(int)
    assert np.all(np.abs(red - 6 * np.arange(0, 40, 4)) <= 6)


def test_unreadable_video_is_a_clear_error(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(ImageError, match="bad.mp4"):
        read_video(tmp_path / "bad.mp4")
    with pytest.raises(ImageError, match="no such video"):
        read_video(tmp_path / "missing.mp4")
