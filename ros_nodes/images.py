"""Camera messages to the house's image contract, RGB ``uint8 [H, W, 3]``, in numpy (no cv_bridge:
none exists for ROS 2 as a wheel).

The world model sees colour at 8 bits per channel, so only encodings that say exactly that, with
a known channel order, are accepted: `ACCEPTED_ENCODINGS` for `sensor_msgs/Image`, JPEG and PNG
(`ACCEPTED_CODECS`) for `sensor_msgs/CompressedImage`. Anything else (grey, depth, 16-bit, raw
Bayer, packed YUV, a channel count without an order, a step or data size that contradicts the
header, bytes that do not decode) raises `ImageRejected` with its kind, for counting, and a
one-line reason; a guessed conversion would hand the planner a picture it was never trained on.
Messages are read through their fields only, so anything shaped like them converts.
"""
from __future__ import annotations

import re

import cv2
import numpy as np

# encoding -> (channels per pixel, the channel indices that give R, G, B)
ACCEPTED_ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
}
ACCEPTED_CODECS: dict[str, bytes] = {  # codec -> how its data starts
    "jpeg": b"\xff\xd8\xff",
    "png": b"\x89PNG\r\n\x1a\n",
}
# Why a frame was refused: "encoding" (Image encoding not accepted), "step" (row length shorter
# than a row of pixels), "size" (empty, or data length != step * height), "format"
# (CompressedImage format names no accepted codec or colour encoding, or the data is another
# codec), "decode" (the data does not decode), "pixels" (it decodes to grey or to 16 bits).
REJECTION_KINDS = ("encoding", "step", "size", "format", "decode", "pixels")


class ImageRejected(ValueError):
    """A frame that is not an image the planner may see; `kind` is one of `REJECTION_KINDS`."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


def _accepted() -> str:
    return ", ".join(ACCEPTED_ENCODINGS)


def _why_not(encoding: str) -> str:
    """What an encoding the bridge refuses is, so the log says what to ask the camera driver for."""
    lowered = encoding.lower()
    if lowered.startswith("bayer_"):
        return "raw Bayer, not demosaiced"
    if re.search(r"16|32|64", lowered):
        return "more than 8 bits per channel"
    if lowered in ("mono8", "8uc1", "8sc1"):
        return "one channel, grey"
    if re.fullmatch(r"8[us]c[234]", lowered):
        return "channels without a colour order"
    if lowered in ("yuv422", "yuv422_yuy2", "uyvy", "yuyv", "nv12", "nv21", "nv24"):
        return "YUV, needs a colour conversion"
    return "unknown"


def image_to_rgb(msg) -> np.ndarray:
    """`sensor_msgs/Image` -> a new RGB ``uint8 [H, W, 3]`` array (row padding and alpha dropped)."""
    encoding = msg.encoding
    if encoding not in ACCEPTED_ENCODINGS:
        raise ImageRejected("encoding", f"encoding {encoding!r} ({_why_not(encoding)}) is not accepted; "
                                        f"publish one of {_accepted()}")
    channels, rgb = ACCEPTED_ENCODINGS[encoding]
    height, width, step = msg.height, msg.width, msg.step
    if height == 0 or width == 0:
        raise ImageRejected("size", f"empty {width}x{height} image")
    row = width * channels
    if step < row:
        raise ImageRejected("step", f"step {step} is shorter than a row of {width} {encoding} pixels ({row} bytes)")
    size = len(msg.data)
    if size != step * height:
        raise ImageRejected("size", f"{size} bytes of data for {height} rows of step {step} (expected {step * height})")
    rows = np.frombuffer(msg.data, np.uint8).reshape(height, step)
    return np.ascontiguousarray(rows[:, :row].reshape(height, width, channels)[..., list(rgb)])


def codec_of(image_format: str) -> str:
    """The codec a `CompressedImage.format` names: a bare ``jpeg``/``png``, or image_transport's
    ``"<original encoding>; <codec> compressed <encoding>"``, whose original encoding must be one
    the raw path accepts (a compressed grey or depth image is still not colour)."""
    original, separator, rest = image_format.partition(";")
    if separator:
        if "compresseddepth" in rest.lower():
            raise ImageRejected("format", f"format {image_format!r} is a compressed depth image, not colour")
        if original.strip() not in ACCEPTED_ENCODINGS:
            raise ImageRejected("format", f"format {image_format!r}: original encoding {original.strip()!r} is not "
                                          f"accepted; publish one of {_accepted()}")
        words = rest.split()
        codec = words[0].lower() if words else ""
    else:
        codec = original.strip().lower()
    codec = "jpeg" if codec == "jpg" else codec
    if codec not in ACCEPTED_CODECS:
        raise ImageRejected("format", f"format {image_format!r} names no accepted codec ({', '.join(ACCEPTED_CODECS)})")
    return codec


def compressed_to_rgb(msg) -> np.ndarray:
    """`sensor_msgs/CompressedImage` (JPEG or PNG of 8-bit colour) -> a new RGB ``uint8 [H, W, 3]`` array."""
    codec = codec_of(msg.format)
    data = np.frombuffer(msg.data, np.uint8)
    signature = ACCEPTED_CODECS[codec]
    if data[: len(signature)].tobytes() != signature:
        raise ImageRejected("format", f"format says {codec}, but the {data.size} bytes of data are not a {codec} stream")
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # unchanged: grey and 16-bit stay visible
    if decoded is None:
        raise ImageRejected("decode", f"the {data.size} bytes of {codec} data do not decode")
    if decoded.dtype != np.uint8:
        raise ImageRejected("pixels", f"the {codec} image has {8 * decoded.dtype.itemsize}-bit channels, not 8")
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    if channels not in (3, 4):
        raise ImageRejected("pixels", f"the {codec} image has {channels} channel(s), not colour")
    return np.ascontiguousarray(decoded[..., 2::-1])  # OpenCV decodes to BGR(A)
