"""Writing MP4 files: H.264 through PyAV for anything a person opens (rollout and demo videos play
in a browser), or OpenCV's mp4v, the codec DROID's raw recordings use (see `droid.raw_writer`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

Mp4Codec = Literal["h264", "mp4v"]


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, codec: Mp4Codec = "h264") -> Path:
    """Write uint8 RGB ``[T, H, W, 3]`` frames to an MP4 (written to a temp name, then renamed).

    h264: libx264, yuv420p, no B-frames (browsers play it); an odd height or width
    gets one repeated edge row or column, as yuv420p needs even sizes. mp4v: OpenCV, any size.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if codec not in ("h264", "mp4v"):
        raise ValueError(f"codec must be h264 or mp4v, got {codec!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        if codec == "h264":
            from vjepa_wm.datasets.video_av import encode_video

            encode_video(partial, frames, fps, "h264", pad_odd=True)
        else:
            _write_mp4v(partial, frames, fps)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return path


def _write_mp4v(path: Path, frames: np.ndarray, fps: float) -> None:
    import cv2

    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write MP4 files here")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
