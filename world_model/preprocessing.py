"""Pixels in, normalised tensors out: the evaluation transform, the DROID transform and video reading.

Frames everywhere are numpy ``uint8 [H, W, 3]`` RGB (the project's image contract); tensors come
out as ``[3, T, H, W]`` float, ImageNet-normalised, ready to stack into ``[B, C, T, H, W]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# DROID training crop: full height, width 1.35 x height, squashed to a square.
DROID_ASPECT = 1.35


class ImageError(ValueError):
    """An image or video that does not follow the uint8 [H, W, 3] RGB contract or cannot be read."""


def check_frames(frames: np.ndarray | list) -> np.ndarray:
    """Validate frames as uint8 ``[T, H, W, 3]`` (a single ``[H, W, 3]`` image becomes T = 1)."""
    array = np.asarray(frames)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ImageError(f"expected RGB frames [T, H, W, 3] or an image [H, W, 3], got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ImageError(f"expected uint8 RGB pixels, got {array.dtype} (convert 0..1 floats with (x*255).astype(uint8))")
    if array.shape[1] < 2 or array.shape[2] < 2:
        raise ImageError(f"frames of {array.shape[1]}x{array.shape[2]} pixels are too small")
    return array


def to_float_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float ``[3, T, H, W]`` in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float().div_(255.0)


def normalize(video: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std on a ``[3, T, H, W]`` (or ``[B, 3, T, H, W]``) tensor in 0..1."""
    shape = (3, 1, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=video.dtype, device=video.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=video.dtype, device=video.device).view(shape)
    return (video - mean) / std


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """Undo `normalize`: ``[3, T, H, W]`` normalised tensor -> uint8 ``[T, H, W, 3]`` for display."""
    shape = (3, 1, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(shape)
    pixels = (video.detach().float().cpu() * std + mean).clamp(0, 1)
    return (pixels * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()


def resize(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of ``[3, T, H, W]``."""
    if video.shape[-2:] == (height, width):
        return video
    out = F.interpolate(video.transpose(0, 1), size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return out.transpose(0, 1)


def center_crop(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = max(0, (video.shape[-2] - height) // 2)
    left = max(0, (video.shape[-1] - width) // 2)
    return video[..., top : top + height, left : left + width]


@dataclass(frozen=True)
class EvalTransform:
    """The official evaluation transform: short side to crop*256/224, centre crop, ImageNet norm."""

    crop: int = 256

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        video = to_float_tensor(check_frames(frames))
        short = int(self.crop * 256 / 224)
        height, width = video.shape[-2:]
        scale = short / min(height, width)
        video = resize(video, max(self.crop, round(height * scale)), max(self.crop, round(width * scale)))
        return normalize(center_crop(video, self.crop, self.crop))


@dataclass(frozen=True)
class DroidTransform:
    """The V-JEPA 2-AC training transform, squashed to a square.

    The official config asks for a random resized crop with scale 1.777 (larger than any image),
    so every sample falls back to the deterministic centre crop at the aspect range's edge:
    wider than 1.35 -> full height and width 1.35*height; narrower than 0.75 -> full width;
    in between -> the whole frame. The crop is then resized to `size` x `size` without keeping
    its aspect.
    """

    size: int = 256
    min_aspect: float = 0.75
    max_aspect: float = DROID_ASPECT

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, crop height, crop width) of the fallback centre crop."""
        ratio = width / height
        crop_h, crop_w = height, width
        if ratio < self.min_aspect:
            crop_h = int(round(width / self.min_aspect))
        elif ratio > self.max_aspect:
            crop_w = int(round(height * self.max_aspect))
        return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        video = to_float_tensor(check_frames(frames))
        top, left, crop_h, crop_w = self.crop_box(*video.shape[-2:])
        video = video[..., top : top + crop_h, left : left + crop_w]
        return normalize(resize(video, self.size, self.size))


def frame_step(source_fps: float, target_fps: float | None) -> int:
    """Frames to skip between samples; the official rule ceil(source fps) // target fps, at least 1."""
    if not target_fps or not source_fps or source_fps <= 0:
        return 1
    return max(1, int(math.ceil(source_fps)) // int(round(target_fps)))


def read_video(path: str | Path, fps: float | None = None, max_frames: int | None = None, start: int = 0) -> tuple[np.ndarray, float]:
    """Decode a video with OpenCV into uint8 RGB ``[T, H, W, 3]``, sampled at about `fps`.

    Returns the frames and the effective sampling rate. Raises `ImageError` for unreadable files.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ImageError(f"{path}: OpenCV cannot open this video")
        source_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        step = frame_step(source_fps, fps)
        frames = []
        index = 0
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            if index >= start and (index - start) % step == 0:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
    if not frames:
        raise ImageError(f"{path}: no decodable frames")
    effective = source_fps / step if source_fps else float(fps or 0.0)
    return np.stack(frames), effective


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB ``[H, W, 3]``."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    if _truncated_jpeg(path):  # OpenCV would decode it, grey where the bytes stop, without an error
        raise ImageError(f"{path}: truncated JPEG (no end-of-image marker)")
    if _truncated_png(path):  # some OpenCV builds' libpng print their own line on stderr for these
        raise ImageError(f"{path}: truncated PNG (no IEND chunk)")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _truncated_jpeg(path: Path) -> bool:
    """A JPEG (by its start-of-image marker) whose end-of-image marker is missing."""
    with open(path, "rb") as handle:
        if handle.read(2) != b"\xff\xd8":
            return False
        handle.seek(max(0, path.stat().st_size - 64))
        return not handle.read().rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC, which close every PNG


def _truncated_png(path: Path) -> bool:
    """A PNG (by its signature) without the IEND chunk near its end (trailing padding is tolerated)."""
    with open(path, "rb") as handle:
        if handle.read(8) != PNG_SIGNATURE:
            return False
        handle.seek(max(0, path.stat().st_size - 64))
        return PNG_END not in handle.read()


VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
