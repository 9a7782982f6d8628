"""ROS 2 test helpers: one rclpy context per test with its executor spinning in a thread (the
pattern of ../shared/reference/ros2.md §3.6), and the peer processes the tests talk to over DDS.

Every test process and peer uses this process's `DOMAIN_ID` on localhost discovery only, so two
suites running on one machine do not hear each other. Run as a script, this file is a peer:

    python ros_helpers.py camera-publisher TOPIC   # publishes `camera_case(i)` on "send i" lines
    python ros_helpers.py plan-server              # a scripted PlanToGoal action server

The camera cases build their messages here, from numpy, independently of the bridge's converter,
and say what the bridge must make of them.
"""
from __future__ import annotations

import array
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.action import ActionServer, GoalResponse
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vjepa_wm_interfaces.action import PlanToGoal

from vjepa_wm.evaluation.ros_processes import node_arguments

DOMAIN_ID = int(os.environ.get("VJEPA_WM_TEST_ROS_DOMAIN", 1 + os.getpid() % 100))  # Linux DDS domains: 0..101
ROS_ARGS = ["--ros-args", "--disable-external-lib-logs"]  # no log files under ~/.ros
HERE = Path(__file__).resolve()


class BridgeRig:
    """A Franka bridge and its camera bridge under test in `ros`, and a probe node that records the
    measured poses and the target topic and speaks for the watchdog on the hold topic (`word`:
    False "go", True "hold", None silent)."""

    def __init__(self, ros: "Spinning", bridge_parameters: dict, probe_name: str):
        from geometry_msgs.msg import PoseStamped
        from rclpy.parameter import Parameter
        from std_msgs.msg import Bool

        from vjepa_wm.ros_nodes import franka_interface as fi
        from vjepa_wm.ros_nodes.camera_bridge import CameraBridge
        from vjepa_wm.ros_nodes.franka_bridge import FrankaBridge, FrankaBridgeConfig, FrankaBridgeNode
        from vjepa_wm.ros_nodes.watchdog_node import LATCHED

        context = ros.context
        self.node = ros.add(FrankaBridgeNode("franka_bridge", context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in bridge_parameters.items()]))
        self.camera = ros.add(CameraBridge("camera_bridge", context=context, parameter_overrides=[
            Parameter("image_topic", value="camera/image_raw")]))
        self.bridge = FrankaBridge(self.node, self.camera)
        self.probe = ros.add(Node(probe_name, context=context))
        self.lock = threading.Lock()
        self.targets: list = []
        self.poses: list = []
        self.probe.create_subscription(PoseStamped, fi.DEFAULT_TARGET_TOPIC, lambda msg: self._take(self.targets, msg),
                                       fi.COMMAND_QOS)
        self.probe.create_subscription(PoseStamped, fi.CURRENT_POSE_TOPIC, lambda msg: self._take(self.poses, msg),
                                       fi.FROM_ROBOT_QOS)
        self.word: bool | None = False
        self._bool = Bool
        self.hold_publisher = self.probe.create_publisher(Bool, FrankaBridgeConfig().hold_topic, LATCHED)
        self.probe.create_timer(0.02, self._say)

    def _take(self, into: list, msg) -> None:
        with self.lock:
            into.append(msg)

    def _say(self) -> None:
        if self.word is not None:
            self.hold_publisher.publish(self._bool(data=self.word))

    def measured(self) -> np.ndarray:
        """The sim's current pose [6] as the probe receives it (a fresh one)."""
        from vjepa_wm.ros_nodes import franka_interface as fi

        with self.lock:
            seen = len(self.poses)
        eventually(lambda: len(self.poses) > seen, 5, "a fresh current_pose")
        with self.lock:
            return fi.pose_to_state(self.poses[-1].pose, 0.0)[:6]


def ros_env() -> dict[str, str]:
    """The environment of a peer process: this domain, localhost discovery only."""
    return {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "VJEPA_WM_TEST_ROS_DOMAIN": str(DOMAIN_ID), "PYTHONUNBUFFERED": "1"}


class Spinning:
    """An rclpy context of its own, a SingleThreadedExecutor spinning in a thread, and its nodes;
    `close` takes them down in the one order that never aborts the process (§3.5)."""

    def __init__(self):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = Context()
        rclpy.init(args=ROS_ARGS, context=self.context, domain_id=DOMAIN_ID)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list[Node] = []
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=10)
        for node in self.nodes:
            node.destroy_node()
        rclpy.shutdown(context=self.context)
        assert not self.thread.is_alive(), "the executor thread did not stop"


def eventually(predicate, timeout_s: float = 10.0, what: str = "the condition"):
    """Poll `predicate` until it returns something truthy (returned) or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


SCHEDULING_SLACK_S = 0.5
"""What a shared, loaded test machine may add to one trip over DDS (a descheduled process, a
collection pause). Hold latencies are figures for `vjepa-wm bench ros`, which measures their
distribution; a test holds the median of many trips to the budget and each single trip to the
budget plus this slack, so a late hold still fails it and one unlucky scheduler tick does not."""


def assert_latencies_within(latencies: list[float], budget_s: float, report: str) -> None:
    """Never before the limit (negative), median within `budget_s`, each within it plus the slack."""
    assert min(latencies) >= 0, f"held before an input passed its limit: {report}"
    ordered = sorted(latencies)
    median = ordered[len(ordered) // 2]
    assert median <= budget_s, f"the median hold came later than {budget_s} s past the limit: {report}"
    assert ordered[-1] <= budget_s + SCHEDULING_SLACK_S, \
        f"a hold came later than {budget_s} s + {SCHEDULING_SLACK_S} s slack past the limit: {report}"


class Peer:
    """A peer process (this file as a script) talked to by lines on stdin and stdout."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen([sys.executable, str(HERE), *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ros_env())

    def expect(self, line: str, timeout_s: float = 20.0) -> None:
        """Wait for the peer to print `line` (its other output is skipped)."""
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.extend(self._read_until(line)), daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not result or result[-1] != line:
            self.process.kill()
            raise AssertionError(f"the peer did not print {line!r} in {timeout_s} s; "
                                 f"stdout {result}, stderr {self.process.stderr.read()[-2000:]!r}")

    def _read_until(self, line: str):
        for got in self.process.stdout:
            yield got.rstrip("\n")
            if got.rstrip("\n") == line:
                return

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close(self, timeout_s: float = 10.0) -> int:
        """Close its stdin (the peer's signal to stop) and wait; kill it if it does not stop."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                return self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("the peer did not stop when its stdin closed") from None
        return self.process.returncode


# --- camera cases ----------------------------------------------------------------------------------
@dataclass
class CameraCase:
    name: str
    msg: Image | CompressedImage
    expected: np.ndarray | None  # the RGB image the bridge must hold; None: it must refuse the frame
    kind: str | None = None  # the rejection kind, when refused
    tolerance: float = 0.0  # mean absolute error allowed (lossy JPEG); 0: bit-exact


def _raw(encoding: str, pixels: np.ndarray, pad: int = 0, step: int | None = None, extra_bytes: int = 0) -> Image:
    """An Image holding `pixels` row by row, each row followed by `pad` bytes of padding."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, width * int(np.prod(pixels.shape[2:]))).view(np.uint8)
    rows = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    data = rows.tobytes()
    data = data[:len(data) + extra_bytes] if extra_bytes < 0 else data + bytes(extra_bytes)
    return Image(height=height, width=width, encoding=encoding, is_bigendian=0,
                 step=rows.shape[1] if step is None else step, data=array.array("B", data))


def _compressed(image_format: str, data: bytes) -> CompressedImage:
    return CompressedImage(format=image_format, data=array.array("B", data))


def _encode(extension: str, pixels: np.ndarray, *params: int) -> bytes:
    ok, encoded = cv2.imencode(extension, pixels, list(params))
    assert ok, extension
    return encoded.tobytes()


def camera_cases() -> list[CameraCase]:
    """Frames for the raw and the compressed bridge, accepted ones between refused ones (so a refused
    frame can be seen not to replace the latest good one). Deterministic: both processes build them."""
    rng = np.random.default_rng(7)
    colour = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)  # RGB
    alpha = rng.integers(0, 256, (24, 32, 1), dtype=np.uint8)
    grey = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    deep = rng.integers(0, 65536, (24, 32), dtype=np.uint16)
    y, x = np.mgrid[0:48, 0:64]
    smooth = np.stack([4 * x, 5 * y, np.full_like(x, 40)], axis=-1).astype(np.uint8)  # RGB, JPEG-friendly
    bgr = colour[..., ::-1]
    rgba = np.concatenate([colour, alpha], axis=-1)
    bgra = np.concatenate([bgr, alpha], axis=-1)
    return [
        CameraCase("rgb8", _raw("rgb8", colour), colour),
        CameraCase("mono8", _raw("mono8", grey), None, "encoding"),
        CameraCase("mono16", _raw("mono16", deep), None, "encoding"),
        CameraCase("16UC1", _raw("16UC1", deep), None, "encoding"),
        CameraCase("bgr8", _raw("bgr8", bgr), colour),
        CameraCase("32FC1", _raw("32FC1", deep.astype(np.float32)), None, "encoding"),
        CameraCase("bayer_rggb8", _raw("bayer_rggb8", grey), None, "encoding"),
        CameraCase("8UC3 (no channel order)", _raw("8UC3", colour), None, "encoding"),
        CameraCase("rgb16", _raw("rgb16", np.repeat(deep[..., None], 3, axis=-1)), None, "encoding"),
        CameraCase("rgba8", _raw("rgba8", rgba), colour),
        CameraCase("yuv422", _raw("yuv422", np.repeat(grey[..., None], 2, axis=-1)), None, "encoding"),
        CameraCase("step shorter than a row", _raw("rgb8", colour, step=32 * 3 - 1), None, "step"),
        CameraCase("data short of step * height", _raw("rgb8", colour, extra_bytes=-1), None, "size"),
        CameraCase("data beyond step * height", _raw("rgb8", colour, extra_bytes=96), None, "size"),
        CameraCase("bgra8", _raw("bgra8", bgra), colour),
        CameraCase("empty", _raw("rgb8", colour[:0]), None, "size"),
        CameraCase("rgb8, padded rows", _raw("rgb8", colour, pad=5), colour),
        CameraCase("bgra8, padded rows", _raw("bgra8", bgra, pad=3), colour),
        CameraCase("png", _compressed("png", _encode(".png", bgr)), colour),
        CameraCase("png, 16-bit", _compressed("png", _encode(".png", np.repeat(deep[..., None], 3, axis=-1))),
                   None, "pixels"),
        CameraCase("png, grey", _compressed("png", _encode(".png", grey)), None, "pixels"),
        CameraCase("jpeg (image_transport format)",
                   _compressed("bgr8; jpeg compressed bgr8", _encode(".jpg", smooth[..., ::-1], cv2.IMWRITE_JPEG_QUALITY, 95)),
                   smooth, tolerance=2.0),
        CameraCase("jpeg of a grey original", _compressed("mono8; jpeg compressed mono8", _encode(".jpg", grey)),
                   None, "format"),
        CameraCase("compressed depth", _compressed("16UC1; compressedDepth png", _encode(".png", deep)), None, "format"),
        CameraCase("tiff", _compressed("tiff", _encode(".tiff", bgr)), None, "format"),
        CameraCase("png data under a jpeg format", _compressed("jpeg", _encode(".png", bgr)), None, "format"),
        CameraCase("broken jpeg", _compressed("jpeg", b"\xff\xd8\xff" + rng.bytes(200)), None, "decode"),
        CameraCase("png with alpha", _compressed("rgba8; png compressed bgra8", _encode(".png", bgra)), colour),
    ]


def camera_publisher(topic: str) -> None:
    """Peer: publish camera case i (stamped i + 1 s) when a line "send i" comes; stop at end of input.
    Raw frames go best effort, compressed ones reliable: the bridge must take both."""
    rclpy.init(args=ROS_ARGS)
    node = Node("test_camera")
    raw = node.create_publisher(Image, topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    compressed = node.create_publisher(CompressedImage, f"{topic}/compressed",
                                       QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    cases = camera_cases()
    deadline = time.monotonic() + 20
    while (raw.get_subscription_count() == 0 or compressed.get_subscription_count() == 0) and time.monotonic() < deadline:
        time.sleep(0.01)
    print("ready", flush=True)
    for line in sys.stdin:
        index = int(line.split()[1])
        msg = cases[index].msg
        msg.header.stamp.sec, msg.header.frame_id = index + 1, "camera_optical_frame"
        (raw if isinstance(msg, Image) else compressed).publish(msg)
        print(f"sent {index}", flush=True)
    node.destroy_node()
    rclpy.shutdown()


# --- a scripted planner ------------------------------------------------------------------------------
def plan_server() -> None:
    """Peer: a PlanToGoal server that walks the goals without a robot. Per goal it spends its
    `max_steps_per_goal` steps; feedback energy = the goal image's mean byte / 255 over the step
    number, the action = [goal index, step, pinned values of that goal at their dimensions]; it
    rejects a goal without images or without one step budget (> 0) per image. Stops at end of input."""

    def accept(goal) -> GoalResponse:
        budgets = goal.max_steps_per_goal
        ok = goal.goal_images and len(budgets) == len(goal.goal_images) and all(steps > 0 for steps in budgets)
        return GoalResponse.ACCEPT if ok else GoalResponse.REJECT

    def execute(handle):
        # Feedback goes out at once here (a real planner takes a while per step): wait until this
        # process has discovered the client's feedback subscription, or the first messages are lost.
        deadline = time.monotonic() + 10
        while node.count_subscribers("/plan_to_goal/_action/feedback") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        goal = handle.request
        step, energy = 0, float("nan")
        for index, (image, steps) in enumerate(zip(goal.goal_images, goal.max_steps_per_goal)):
            mean = float(np.frombuffer(image.data, np.uint8).mean()) / 255
            for on_goal in range(steps):
                step += 1
                action = [float(index), float(step)] + [0.0] * 5
                for pin in goal.pinned:
                    if pin.goal_index == index:
                        action[pin.dimension] = pin.value
                energy = mean / step
                handle.publish_feedback(PlanToGoal.Feedback(step=step, goal_index=index, switched_goal=on_goal == 0,
                                                            observed_energy=energy, planned_energy=energy / 2,
                                                            action=action))
        handle.succeed()
        return PlanToGoal.Result(outcome=PlanToGoal.Result.OUTCOME_BUDGET, stop_reason="step budget", steps=step,
                                 goal_index=len(goal.goal_images) - 1, final_energy=energy)

    rclpy.init(args=ROS_ARGS)
    node = Node("test_planner")
    server = ActionServer(node, PlanToGoal, "plan_to_goal", execute_callback=execute, goal_callback=accept)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin)
    spinner.start()
    print("ready", flush=True)
    sys.stdin.read()
    executor.shutdown()
    spinner.join()
    server.destroy()
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    {"camera-publisher": lambda: camera_publisher(sys.argv[2]), "plan-server": plan_server}[sys.argv[1]]()


# --- a node in a process of its own ------------------------------------------------------------------
def node_process(module: str, node_name: str, parameters: dict[str, object], cwd: Path,
                 namespace: str | None = None) -> subprocess.Popen:
    """Start `python -m <module>` as node `node_name` (in `namespace`) with `-p name:=value` for each
    parameter, in this domain; stdout and stderr together into a log file of its own in `cwd` (`output` reads it).
    A file, not a pipe: a pipe nobody reads while the node runs fills up, and the node then blocks
    on its next log line."""
    log_path = cwd / f"{node_name}.{time.monotonic_ns()}.log"
    renamed = [] if namespace is None else ["-r", f"__ns:={namespace}"]
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", module, *node_arguments(node_name, parameters), *renamed],
                                   cwd=cwd, env=ros_env(), stdout=log, stderr=subprocess.STDOUT)
    process.log_path = log_path
    return process


def output(process: subprocess.Popen, last_chars: int | None = None) -> str:
    """What a `node_process` has printed so far (its last `last_chars`)."""
    text = process.log_path.read_text(errors="replace")
    return text if last_chars is None else text[-last_chars:]


def interrupt(process: subprocess.Popen, timeout_s: float = 10.0) -> tuple[int, str]:
    """SIGINT the process and wait: (exit status, its output); killed (and reported) if it hangs."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{process.args} did not stop on SIGINT: {output(process, 3000)}") from None
    return process.returncode, output(process)
