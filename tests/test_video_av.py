"""PyAV video: exact frame access (checked against decoding every frame in order) on AV1 and H.264
files, including files written by PyAV directly with B-frames and long keyframe intervals, and
the H.264 MP4 writer that browsers play."""
from __future__ import annotations

import os
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from test_droid_raw import barcode_frames, read_barcode
from vjepa_wm.datasets.video_av import (
    VideoError,
    decode_all,
    decode_at,
    decode_indices,
    encode_video,
    kept_thread_scheduling,
    probe,
)
from vjepa_wm.datasets.video_io import write_mp4

SIZE = (96, 128)


def write_by_hand(path, frames, fps, encoder, gop, options=None):
    """An MP4 written with PyAV's own API (not our writer): the encoder's defaults, B-frames included."""
    with kept_thread_scheduling(), av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=Fraction(fps))
        stream.height, stream.width, stream.pix_fmt = *frames.shape[1:3], "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = options or {}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def test_the_wheel_has_the_codecs_lerobot_and_browsers_need():
    assert av.Codec("libdav1d", "r").type == "video"  # AV1 decoder
    assert av.Codec("libsvtav1", "w").type == "video"  # AV1 encoder
    assert av.Codec("libx264", "w").type == "video"  # H.264 encoder
    assert av.Codec("h264", "r").type == "video"


@pytest.mark.parametrize("encoder, options", [("libx264", {"bf": "3"}), ("libsvtav1", {"preset": "8"})])
def test_seeking_returns_exactly_the_frames_a_sequential_decode_gives(tmp_path, encoder, options):
    frames = barcode_frames(60, 3, *SIZE)
    path = write_by_hand(tmp_path / "clip.mp4", frames, 15, encoder, gop=12, options=options)
    every, times = decode_all(path)
    assert len(every) == 60 and [read_barcode(f)[0] for f in every] == list(range(60))
    assert np.allclose(times, np.arange(60) / 15)
    rng = np.random.default_rng(0)
    for wanted in ([0], [59], [13, 14, 15, 40], [50, 3, 3, 27, 11], list(rng.choice(60, 9, replace=False))):
        got = decode_indices(path, wanted)
        assert [read_barcode(f)[0] for f in got] == [int(i) for i in wanted]
        assert all(np.array_equal(g, every[i]) for g, i in zip(got, wanted))  # the same decoded pixels, not a neighbour
        assert np.array_equal(decode_at(path, np.asarray(wanted) / 15), got)


def test_a_time_between_frames_or_past_the_end_is_an_error(tmp_path):
    path = encode_video(tmp_path / "clip.mp4", barcode_frames(10, 1, *SIZE), 10, "h264")
    with pytest.raises(VideoError, match="no frame at 0.0500"):
        decode_at(path, [0.05])
    with pytest.raises(VideoError, match="no frame at 1.0000"):
        decode_indices(path, [2, 10])
    with pytest.raises(VideoError, match="cannot be opened"):
        decode_at(tmp_path / "missing.mp4", [0.0])


def test_our_encoders_round_trip_and_declare_what_they_hold(tmp_path):
    frames = barcode_frames(20, 5, *SIZE)
    for codec, decoder in (("h264", "h264"), ("av1", "libdav1d")):
        info = probe(encode_video(tmp_path / f"{codec}.mp4", frames, 15, codec, gop=2))
        assert (info.frames, info.fps, info.codec, info.height, info.width, info.pix_fmt) == (20, 15.0, decoder, *SIZE, "yuv420p")
        decoded, _ = decode_all(tmp_path / f"{codec}.mp4")
        assert [read_barcode(f) for f in decoded] == [(t, 5) for t in range(20)]


def test_write_mp4_makes_browser_playable_h264_and_keeps_mp4v_on_request(tmp_path):
    odd = barcode_frames(6, 2, 75, 99)
    path = write_mp4(tmp_path / "rollout.mp4", odd, fps=4)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.profile) == ("h264", "High")
        assert (stream.codec_context.pix_fmt, stream.height, stream.width) == ("yuv420p", 76, 100)  # even, edge-padded
        assert stream.codec_context.has_b_frames == 0
    first, _ = decode_all(path)
    assert np.abs(first[:, :75, :99].astype(int) - odd).mean() < 4 and [read_barcode(f[:75, :99])[0] for f in first] == list(range(6))
    assert not list(tmp_path.glob(".*partial*"))
    raw = write_mp4(tmp_path / "raw.mp4", barcode_frames(6, 2, *SIZE), fps=60, codec="mp4v")
    assert (probe(raw).codec, probe(raw).frames, probe(raw).fps) == ("mpeg4", 6, 60.0)  # MPEG-4 part 2, as DROID's raw MP4s
    capture = cv2.VideoCapture(str(path))  # the H.264 file reads in OpenCV too (the raw reader's decoder)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 6
    capture.release()
    with pytest.raises(ValueError, match="codec must be"):
        write_mp4(tmp_path / "x.mp4", odd, fps=4, codec="vp9")
    with pytest.raises(VideoError, match="even frame size"):
        encode_video(tmp_path / "odd.mp4", odd, 4, "av1")


def test_encoding_av1_leaves_the_threads_scheduling_policy_alone(tmp_path):
    """SVT-AV1, as root, raises the encoding thread to SCHED_FIFO 99 (real-time) for good; our writer
    puts it back. The raw encoder shows the library's effect where the process may raise it."""
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    encode_video(tmp_path / "ours.mp4", barcode_frames(6, 1, *SIZE), 10, "av1")
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
    with kept_thread_scheduling(), av.open(str(tmp_path / "raw.mp4"), "w") as container:
        stream = container.add_stream("libsvtav1", rate=Fraction(10))
        stream.height, stream.width, stream.pix_fmt = *SIZE, "yuv420p"
        for image in barcode_frames(6, 1, *SIZE):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
        raised = os.sched_getscheduler(0) != before[0]
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
    if os.geteuid() == 0:  # only root may raise itself: there the library does, and the guard undoes it
        assert raised

