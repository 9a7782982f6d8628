"""The camera bridge: the latest good camera frame as RGB ``uint8 [H, W, 3]``, with the stamp the
camera gave it and the steady-clock time it arrived, from `sensor_msgs/Image` or `CompressedImage`.

A lifecycle node, as hardware bridges are: configure reads and checks the parameters, activate
subscribes, deactivate unsubscribes and forgets the frame (one from before must not be served
after). Every frame goes through `images`; a refused one is counted by kind and never replaces
the latest good frame, and the log gets at most one line per kind every `reject_log_period_s`, so
a camera stuck on the wrong encoding is said once, not thirty times a second. The subscription
is best effort and volatile (the sensor-data QoS), which receives from best-effort and reliable
camera drivers alike and never makes a driver wait for a slow reader. The receive time is on the
steady clock, immune to wall-clock jumps, for the watchdog's staleness checks.

Run alone: ``python -m vjepa_wm.ros_nodes.camera_bridge --ros-args -p image_topic:=/camera/color/image_raw``.
"""
from __future__ import annotations

import sys
import threading
from collections import Counter
from dataclasses import dataclass

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from .images import ImageRejected, compressed_to_rgb, image_to_rgb
from .node_process import run_node
from .parameters import Spec, declare, read

TRANSPORTS = ("raw", "compressed")


@dataclass(frozen=True)
class CameraBridgeConfig:
    image_topic: str = "image_raw"  # the raw image topic; compressed frames come on <image_topic>/compressed
    transport: str = "raw"  # "raw": sensor_msgs/Image; "compressed": CompressedImage (JPEG or PNG)
    queue_depth: int = 2  # frames the subscription may buffer; only the latest is kept
    reject_log_period_s: float = 5.0  # at most one log line per kind of refused frame in this time

    def __post_init__(self):
        if not self.image_topic.strip():
            raise ValueError("image_topic must name a topic")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {self.transport!r}")
        if not 1 <= self.queue_depth <= 100:
            raise ValueError(f"queue_depth must be 1..100, got {self.queue_depth}")
        if not 0.01 <= self.reject_log_period_s <= 3600:
            raise ValueError(f"reject_log_period_s must be 0.01..3600, got {self.reject_log_period_s}")

    @property
    def topic(self) -> str:
        return self.image_topic if self.transport == "raw" else f"{self.image_topic.rstrip('/')}/compressed"


PARAMETERS = {
    "image_topic": Spec("raw image topic; the compressed transport subscribes <image_topic>/compressed", read_only=True),
    "transport": Spec("which message type to subscribe", choices=TRANSPORTS, read_only=True),
    "queue_depth": Spec("frames the subscription may buffer (read at configure)", low=1, high=100),
    "reject_log_period_s": Spec("seconds between log lines about one kind of refused frame (read at configure)",
                                low=0.01, high=3600.0),
}


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # RGB uint8 [H, W, 3]
    stamp: float  # header stamp, seconds on the camera's clock (when the image was taken)
    received_ns: int  # steady clock (rclpy STEADY_TIME), when the bridge took it
    frame_id: str


@dataclass(frozen=True)
class FrameCounts:
    accepted: int
    rejected: dict[str, int]  # kind (images.REJECTION_KINDS) -> frames refused


def sensor_qos(depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)


class CameraBridge(LifecycleNode):
    def __init__(self, node_name: str = "camera_bridge", **kwargs):
        super().__init__(node_name, **kwargs)
        declare(self, CameraBridgeConfig(), PARAMETERS)
        self.config: CameraBridgeConfig | None = None
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._subscription = None
        self._changed = threading.Condition()  # guards the frame and the counts below
        self._latest: Frame | None = None
        self._accepted = 0
        self._rejected: Counter[str] = Counter()
        self._last_logged_ns: dict[str, int] = {}
        self._log_period_ns = int(CameraBridgeConfig().reject_log_period_s * 1e9)  # kept past cleanup: a late callback reads it

    # --- lifecycle -------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = read(self, CameraBridgeConfig)
        except ValueError as err:
            self.get_logger().error(f"camera bridge not configured: {err}")
            return TransitionCallbackReturn.FAILURE
        self._log_period_ns = int(self.config.reject_log_period_s * 1e9)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        config = self.config
        message_type, convert = (Image, image_to_rgb) if config.transport == "raw" else (CompressedImage, compressed_to_rgb)
        self._subscription = self.create_subscription(
            message_type, config.topic, lambda msg: self._take(msg, convert), sensor_qos(config.queue_depth))
        self.get_logger().info(f"camera bridge taking {message_type.__name__} from {self.resolve_topic_name(config.topic)}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        with self._changed:
            self._latest = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._changed:
            self._accepted, self._rejected, self._last_logged_ns = 0, Counter(), {}
        self.config = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        return TransitionCallbackReturn.SUCCESS

    def _unsubscribe(self) -> None:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None

    # --- frames ----------------------------------------------------------------------------------
    def _take(self, msg, convert) -> None:
        received_ns = self.steady.now().nanoseconds
        try:
            image = convert(msg)
        except ImageRejected as rejection:
            self._refuse(rejection, received_ns)
            return
        stamp = msg.header.stamp
        frame = Frame(image, stamp.sec + stamp.nanosec * 1e-9, received_ns, msg.header.frame_id)
        with self._changed:
            self._latest = frame
            self._accepted += 1
            self._changed.notify_all()

    def _refuse(self, rejection: ImageRejected, now_ns: int) -> None:
        with self._changed:
            self._rejected[rejection.kind] += 1
            count = self._rejected[rejection.kind]
            last = self._last_logged_ns.get(rejection.kind)
            due = last is None or now_ns - last >= self._log_period_ns
            if due:
                self._last_logged_ns[rejection.kind] = now_ns
        if due:
            self.get_logger().warning(f"camera frame refused ({rejection.kind}; {count} so far): {rejection}")

    def latest(self) -> Frame | None:
        """The latest good frame (None before the first, and after deactivation)."""
        with self._changed:
            return self._latest

    def wait_for_frame(self, received_after_ns: int, timeout_s: float) -> Frame | None:
        """The latest good frame once one has arrived after `received_after_ns` (steady clock), or
        None after `timeout_s`; for a caller that needs a view newer than its last action."""
        with self._changed:
            self._changed.wait_for(lambda: self._latest is not None and self._latest.received_ns > received_after_ns,
                                   timeout_s)
            latest = self._latest
        return latest if latest is not None and latest.received_ns > received_after_ns else None

    def counts(self) -> FrameCounts:
        with self._changed:
            return FrameCounts(self._accepted, dict(self._rejected))


def main(args: list[str] | None = None) -> int:
    """Configure, activate and spin until SIGINT or SIGTERM; exit status 1 if the parameters are refused."""
    return run_node(CameraBridge, args)


if __name__ == "__main__":
    sys.exit(main())
