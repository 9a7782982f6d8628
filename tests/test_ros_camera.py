"""The camera bridge: sensor_msgs/Image and CompressedImage -> RGB uint8, over real DDS on localhost.

A camera driver in its own process (as deployed) sends frames in every accepted encoding and in
many refused ones; accepted frames must arrive bit-exact as RGB (JPEG: within its loss), refused
ones must be counted by kind, logged once per kind per period, and never become the latest frame.
The frames are built in ros_helpers from numpy, not with the converter under test.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
from rclpy.exceptions import InvalidParameterValueException
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import ROS_ARGS, Peer, Spinning, camera_cases, eventually, ros_env
from sensor_msgs.msg import CompressedImage, Image

from vjepa_wm.ros_nodes.camera_bridge import CameraBridge
from vjepa_wm.ros_nodes.images import REJECTION_KINDS, ImageRejected, compressed_to_rgb, image_to_rgb

TOPIC = "/test_camera/image_raw"


@pytest.fixture
def ros():
    spinning = Spinning()
    yield spinning
    spinning.close()


def assert_image(got: np.ndarray, case) -> None:
    assert got.dtype == np.uint8 and got.shape == case.expected.shape and got.flags.c_contiguous, case.name
    error = np.abs(got.astype(int) - case.expected).mean()
    assert error <= case.tolerance, f"{case.name}: mean error {error}"
    if case.tolerance:  # lossy: still far closer than the same picture with red and blue swapped
        assert np.abs(got.astype(int) - case.expected[..., ::-1]).mean() > 20 * max(error, 1), case.name


def test_the_converter_takes_each_accepted_frame_and_refuses_the_rest_with_a_reason():
    for case in camera_cases():
        convert = image_to_rgb if isinstance(case.msg, Image) else compressed_to_rgb
        if case.expected is not None:
            assert_image(convert(case.msg), case)
            continue
        with pytest.raises(ImageRejected) as refused:
            convert(case.msg)
        assert refused.value.kind == case.kind and refused.value.kind in REJECTION_KINDS, case.name
        reason = str(refused.value)
        assert reason and "\n" not in reason, case.name
        if case.kind == "encoding":
            assert repr(case.msg.encoding) in reason and "rgb8, bgr8, rgba8, bgra8" in reason


def bridge(ros: Spinning, name: str, transport: str, log_period_s: float) -> CameraBridge:
    node = CameraBridge(name, context=ros.context, parameter_overrides=[
        Parameter("image_topic", value=TOPIC), Parameter("transport", value=transport),
        Parameter("reject_log_period_s", value=log_period_s)])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    return ros.add(node)


def test_frames_from_a_camera_process_arrive_exact_and_refused_ones_are_counted_never_kept(ros, capfd):
    raw, compressed = bridge(ros, "camera_raw", "raw", 60.0), bridge(ros, "camera_compressed", "compressed", 60.0)
    peer = Peer("camera-publisher", TOPIC)
    try:
        peer.expect("ready")
        eventually(lambda: raw.count_publishers(TOPIC) and compressed.count_publishers(f"{TOPIC}/compressed"),
                   what="the camera process in the graph")
        refused = {raw: Counter(), compressed: Counter()}
        for index, case in enumerate(camera_cases()):
            target = raw if isinstance(case.msg, Image) else compressed
            before, counted = target.latest(), target.counts()
            peer.send(f"send {index}")
            if case.expected is not None:
                frame = target.wait_for_frame(-1 if before is None else before.received_ns, timeout_s=10)
                assert frame is not None, f"{case.name} did not arrive"
                assert (frame.stamp, frame.frame_id) == (index + 1, "camera_optical_frame"), case.name
                assert frame.received_ns <= target.steady.now().nanoseconds
                assert_image(frame.image, case)
            else:
                eventually(lambda: target.counts().rejected.get(case.kind, 0) > counted.rejected.get(case.kind, 0),
                           what=f"{case.name} to be refused")
                assert target.latest() is before, f"{case.name} replaced the latest frame"
                refused[target][case.kind] += 1
        cases = camera_cases()
        for target, kind in ((raw, Image), (compressed, CompressedImage)):
            accepted = sum(c.expected is not None and isinstance(c.msg, kind) for c in cases)
            assert target.counts().accepted == accepted and target.counts().rejected == refused[target]
    finally:
        assert peer.close() == 0
    logged = capfd.readouterr().err.splitlines()
    for target in (raw, compressed):
        for kind in refused[target]:
            lines = [line for line in logged if f"[{target.get_name()}]" in line and f"refused ({kind};" in line]
            assert len(lines) == 1, (target.get_name(), kind, lines)  # throttled: once per kind in the period


def test_refusals_are_logged_once_per_kind_per_period_and_deactivation_forgets_the_frame(ros, capfd):
    camera = bridge(ros, "camera_throttle", "raw", 0.4)
    node = ros.add(Node("camera_driver", context=ros.context))
    publisher = node.create_publisher(Image, TOPIC, QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
    eventually(lambda: publisher.get_subscription_count() and camera.count_publishers(TOPIC), what="discovery")
    cases = {case.name: case.msg for case in camera_cases()}

    def send(name: str, kind: str | None) -> None:
        before = camera.counts()
        publisher.publish(cases[name])
        if kind is None:
            eventually(lambda: camera.counts().accepted > before.accepted, what=name)
        else:
            eventually(lambda: camera.counts().rejected.get(kind, 0) > before.rejected.get(kind, 0), what=name)

    for name in ("mono8", "mono16", "bayer_rggb8"):
        send(name, "encoding")
    send("step shorter than a row", "step")
    time.sleep(0.45)
    send("16UC1", "encoding")
    send("rgb8", None)
    logged = [line for line in capfd.readouterr().err.splitlines() if "[camera_throttle]" in line]
    assert sum("refused (encoding; 1 so far)" in line for line in logged) == 1
    assert sum("refused (encoding; 4 so far)" in line and "'16UC1'" in line for line in logged) == 1
    assert sum("refused (encoding;" in line for line in logged) == 2
    assert sum("refused (step; 1 so far)" in line for line in logged) == 1

    assert camera.latest() is not None
    assert camera.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert camera.latest() is None and camera.counts().accepted == 1


def test_parameters_are_checked_at_declaration_and_at_configure(ros):
    with pytest.raises(InvalidParameterValueException):
        CameraBridge("camera_bad_depth", context=ros.context, parameter_overrides=[Parameter("queue_depth", value=0)])
    wrong = ros.add(CameraBridge("camera_bad_transport", context=ros.context,
                                 parameter_overrides=[Parameter("transport", value="theora")]))
    assert wrong.trigger_configure() == TransitionCallbackReturn.FAILURE
    described = wrong.describe_parameter("queue_depth")
    assert described.integer_range[0].from_value == 1 and described.integer_range[0].to_value == 100
    assert wrong.describe_parameter("image_topic").read_only


def test_the_node_runs_alone_and_stops_cleanly_on_sigint(ros, tmp_path):
    command = [sys.executable, "-m", "vjepa_wm.ros_nodes.camera_bridge", *ROS_ARGS, "-r", "__node:=camera_alone",
               "-p", f"image_topic:={TOPIC}"]
    process = subprocess.Popen(command, cwd=tmp_path, env=ros_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        probe = ros.add(Node("probe", context=ros.context))
        eventually(lambda: probe.count_subscribers(TOPIC) > 0, timeout_s=20, what="the bridge's subscription")
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0, process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
