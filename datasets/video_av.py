"""Video through PyAV (FFmpeg): exact frame access by timestamp, and H.264 / AV1 encoding.

Why PyAV rather than OpenCV: LeRobot stores its videos in AV1 (libdav1d decodes it; OpenCV's
wheels cannot), concatenates many episodes into one file and locates an episode by its start
time, and browsers play H.264 (libx264, yuv420p) but not OpenCV's mp4v.

Exact access: a wanted time ``t`` is a presentation timestamp in the stream's time base. We seek
to the keyframe at or before it, decode forward and keep the frame whose timestamp lies within
`tolerance` of ``t``; the tolerance is below half a frame period, so the frame is either the
right one or missing (an error), never a neighbour. Wanted times far apart get a seek each;
close ones share one forward decode.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

Codec = Literal["h264", "av1"]
# Our codec names -> the PyAV encoder and its options. x264 without B-frames keeps decode order
# equal to presentation order, which every seeking decoder (OpenCV's included) handles.
ENCODERS: dict[str, tuple[str, dict[str, str]]] = {
    "h264": ("libx264", {"preset": "veryfast", "crf": "18", "bf": "0"}),
    "av1": ("libsvtav1", {"preset": "8", "crf": "30"}),
}
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per file at its default level; keep errors
# Decoders we rely on (by the names FFmpeg reports for the streams).
DECODERS = {"h264": "h264", "av1": "libdav1d"}
# Beyond this many seconds ahead, a new seek is cheaper than decoding forward.
SEEK_AHEAD_S = 1.0


class VideoError(ValueError):
    """A video that cannot be read or written as asked; the message is one line."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video stream says about itself: frame count and rate as declared, codec, size."""

    frames: int
    fps: float
    codec: str
    width: int
    height: int
    pix_fmt: str
    start_time: float  # seconds of the first frame's presentation timestamp


def _open(path: str | Path):
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise VideoError(f"{path}: cannot be opened as a video ({err})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def probe(path: str | Path) -> VideoInfo:
    """The first video stream's declared properties (no decoding)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.base_rate or 0
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        return VideoInfo(frames=int(stream.frames or 0), fps=float(rate), codec=stream.codec_context.name,
                         width=stream.codec_context.width, height=stream.codec_context.height,
                         pix_fmt=str(stream.codec_context.pix_fmt), start_time=start)


def decode_all(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame in presentation order: (uint8 RGB [N, H, W, 3], float64 timestamps [N] in s)."""
    import av

    frames, times = [], []
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.pts * stream.time_base))
        except av.error.FFmpegError as err:
            raise VideoError(f"{path}: decoding failed after {len(frames)} frames ({err})") from None
    if not frames:
        raise VideoError(f"{path}: no decodable frames")
    return np.stack(frames), np.asarray(times)


def decode_at(path: str | Path, times: Sequence[float], tolerance: float | None = None) -> np.ndarray:
    """uint8 RGB [len(times), H, W, 3]: the frames presented at `times` (seconds, any order, repeats allowed).

    `tolerance` defaults to a quarter of the stream's frame period; a time with no frame that
    close raises `VideoError` naming it.
    """
    import av

    with _open(path) as container:
        try:
            return _decode_times(container, path, np.asarray(times, dtype=np.float64), tolerance)
        except av.error.FFmpegError as err:
            raise VideoError(f"{path}: decoding failed ({err})") from None


def decode_indices(path: str | Path, indices: Sequence[int]) -> np.ndarray:
    """uint8 RGB frames by index: frame i is the one presented at start + i / fps (the stream's
    declared constant rate), found through the stream's time base as `decode_at` finds any time."""
    import av

    wanted = np.asarray(indices)
    if wanted.ndim != 1 or len(wanted) == 0 or (wanted < 0).any():
        raise VideoError(f"{path}: frame indices must be a non-empty 1-D sequence of non-negative integers")
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.base_rate
        if not rate:
            raise VideoError(f"{path}: the stream declares no frame rate, so frame indices have no timestamps")
        start = stream.start_time * stream.time_base if stream.start_time is not None else 0
        times = [float(start + Fraction(int(i)) / rate) for i in wanted]
        try:
            return _decode_times(container, path, np.asarray(times), None)
        except av.error.FFmpegError as err:
            raise VideoError(f"{path}: decoding failed ({err})") from None


def _decode_times(container, path, wanted: np.ndarray, tolerance: float | None) -> np.ndarray:
    if wanted.ndim != 1 or len(wanted) == 0 or not np.isfinite(wanted).all():
        raise VideoError(f"{path}: times must be a non-empty 1-D sequence of finite seconds")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    base = stream.time_base
    rate = stream.average_rate or stream.base_rate
    if tolerance is None:
        tolerance = 0.25 / float(rate) if rate else 1e-3
    out: list[np.ndarray | None] = [None] * len(wanted)
    frames = None  # the forward decode since the latest seek
    position = float("-inf")  # presentation time of the latest decoded frame
    current: np.ndarray | None = None  # that frame, when it was one we wanted
    for slot in np.argsort(wanted, kind="stable"):
        target = float(wanted[slot])
        if current is not None and abs(position - target) <= tolerance:
            out[slot] = current  # the same time asked for again
            continue
        if frames is None or target < position or target > position + SEEK_AHEAD_S:
            offset = int((Fraction(target) - Fraction(tolerance)) / base)
            container.seek(max(0, offset), stream=stream, backward=True, any_frame=False)
            frames, position, current = container.decode(stream), float("-inf"), None
        current = None
        for frame in frames:
            if frame.pts is None:
                raise VideoError(f"{path}: a frame has no presentation timestamp, so it cannot be located")
            position = float(frame.pts * base)
            if position > target + tolerance:
                break
            if position >= target - tolerance:
                current = frame.to_ndarray(format="rgb24")
                break
        if current is None:
            raise VideoError(f"{path}: no frame at {target:.4f} s (within {tolerance:.4f} s)")
        out[slot] = current
    return np.stack(out)


def _rate(fps: float) -> Fraction:
    if not np.isfinite(fps) or fps <= 0:
        raise VideoError(f"fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(1001)


@contextlib.contextmanager
def kept_thread_scheduling():
    """Restore the calling thread's scheduling policy after the block.

    Why: SVT-AV1 (PyAV's AV1 encoder), run as root, raises the thread that opens it to SCHED_FIFO
    at priority 99 and leaves it there. Every thread that thread starts later (DDS, data loaders)
    inherits real-time priority; on a robot PC or a 2-core CI machine two such busy threads starve
    every other process (seen here: ROS 2 peers never ran again and a test suite hung). Lowering
    one's own priority back needs no privilege."""
    if not hasattr(os, "sched_getscheduler"):  # not Linux: nothing to keep
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            os.sched_setscheduler(0, policy, param)


class VideoWriter:
    """An MP4 written frame by frame (episodes appended one after another, as LeRobot v3.0 does).

    Frames are uint8 RGB [H, W, 3] of one size, encoded as yuv420p at `fps` with timestamps
    counted from 0. yuv420p needs even sizes: with `pad_odd` an odd height or width gets one
    repeated edge row or column, otherwise it is refused. `gop` is the keyframe interval
    (None: the encoder's default); short ones make random access cheaper.
    """

    def __init__(self, path: str | Path, fps: float, codec: Codec = "h264", gop: int | None = None, pad_odd: bool = False):
        import av

        if codec not in ENCODERS:
            raise VideoError(f"codec {codec!r} is not one of {', '.join(ENCODERS)}")
        name, options = ENCODERS[codec]
        try:
            av.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            raise VideoError(f"this PyAV build has no {name} encoder for {codec}") from None
        self.path, self.codec, self.pad_odd, self.gop = Path(path), codec, pad_odd, gop
        self.rate = _rate(fps)
        self.frames = 0
        self._options = dict(options)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w", format="mp4")
        self._name = name
        self._stream = None

    def _start(self, height: int, width: int) -> None:
        if (height % 2 or width % 2) and not self.pad_odd:
            raise VideoError(f"{self.path}: yuv420p needs an even frame size, got {height}x{width}")
        stream = self._container.add_stream(self._name, rate=self.rate)
        stream.height, stream.width = height + height % 2, width + width % 2
        stream.pix_fmt = "yuv420p"
        stream.options = dict(self._options)
        if self.gop is not None:
            stream.codec_context.gop_size = int(self.gop)
        self._stream = stream

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 RGB [T, H, W, 3] (or one [H, W, 3]) frames."""
        import av

        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise VideoError(f"{self.path}: expected uint8 RGB frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
        if self._stream is None:
            self._start(*frames.shape[1:3])
        height, width = self._stream.height, self._stream.width
        if frames.shape[1] + frames.shape[1] % 2 != height or frames.shape[2] + frames.shape[2] % 2 != width:
            raise VideoError(f"{self.path}: frames of {frames.shape[1]}x{frames.shape[2]} after frames of another size")
        if frames.shape[1:3] != (height, width):
            frames = np.pad(frames, ((0, 0), (0, height - frames.shape[1]), (0, width - frames.shape[2]), (0, 0)), mode="edge")
        with kept_thread_scheduling():
            for image in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts = self.frames
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
                self.frames += 1

    def close(self) -> Path:
        if self._stream is None:
            self._container.close()
            raise VideoError(f"{self.path}: no frames were written")
        with kept_thread_scheduling():
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        return self.path

    def abort(self) -> None:
        """Close without finishing (after an error); the caller removes the file."""
        try:
            with kept_thread_scheduling():
                self._container.close()
        except Exception:  # noqa: BLE001 - the file is being discarded; the original error matters
            pass


def encode_video(path: str | Path, frames: np.ndarray, fps: float, codec: Codec = "h264", gop: int | None = None,
                 pad_odd: bool = False) -> Path:
    """Write `frames` (uint8 RGB [T, H, W, 3]) to one MP4 with `VideoWriter`."""
    writer = VideoWriter(path, fps, codec, gop, pad_odd)
    try:
        writer.write(frames)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
