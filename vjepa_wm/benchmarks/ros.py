"""What the ROS 2 path costs per MPC step against the in-process sim, and how fast the watchdog
holds; measured side by side in one run, over real DDS on localhost, each peer a process of its
own as deployed.

* **in-process step**: `FrankaEnv.observe()` + `apply(delta)` of the same sim (image size, meshes,
  task, seed), a 1 cm move out and back along x: the baseline every ROS figure is divided by.
* **image transport**: a sim camera frame (rendered by the sim's `SimArm`, turned into a
  `sensor_msgs/Image` by the sim node's own `rgb8_message`) published best effort by a peer
  process, until the `CameraBridge` here holds it as RGB. Timed on CLOCK_MONOTONIC, which both
  processes read (the peer writes it into the header stamp just before converting): conversion
  both ways and DDS delivery. Rendering is left out: both paths render.
* **command round trip**: `FrankaBridge.apply(delta)` (PoseStamped target → the sim node process
  → reached within the bridge's tolerances, told by ``current_pose``), the same 1 cm moves. The sim
  node runs ahead of the wall clock (`real_time_factor`) so that its rows are paced by compute,
  as in-process ones are, not by simulated time.
* **ROS step**: `observe()` (which waits for a camera frame newer than the last apply: up to a
  camera period, 1/15 s from the sim node) + `apply()` through the bridge: what one MPC step pays for being on ROS instead of in-process (the planning itself,
  the same on both paths, is left out).
* **watchdog hold**: the watchdog node process with its deployed limits, fed every input at 100 Hz
  from here; one input is stopped (the planner heartbeat, or the camera) at a random phase of the
  watchdog's checks; the latency runs from the last publish of that input plus its limit (the
  earliest moment a hold is due) to the hold word's arrival here, DDS both ways included. Its
  bound is `watchdog_rules.HOLD_BUDGET_S`.

Each part has a namespace of its own, so the bench's stand-in hold word ("go", for the bridge)
never meets the real watchdog's.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import deque

import numpy as np

COLUMNS = ["measure", "path", "n", "p50_ms", "p95_ms", "max_ms", "ratio", "bound_ms", "within_bound"]
NAMESPACES = {"arm": "/bench_arm", "camera": "/bench_camera", "watchdog": "/bench_watchdog"}
FEED_PERIOD_S = 0.01  # the watchdog's inputs at 100 Hz
STEP = 0.01  # m along x, out and back
ROS_ARGS = ["--ros-args", "--disable-external-lib-logs"]
START_TIMEOUT_S = 240.0  # the peers' start (PyBullet, rclpy) on a loaded machine


def check(steps: int, frames: int, trips: int, image_size: int, real_time_factor: float,
          domain_id: int | None) -> None:
    for name, value in (("steps", steps), ("frames", frames), ("trips", trips)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if not 16 <= image_size <= 1024:
        raise ValueError(f"image_size must be 16..1024, got {image_size}")
    if not 0.1 <= real_time_factor <= 20.0:
        raise ValueError(f"real_time_factor must be 0.1..20 (the sim node's range), got {real_time_factor}")
    if domain_id is not None and not 0 <= domain_id <= 101:
        raise ValueError(f"domain_id must be 0..101, got {domain_id}")


def summary(measure: str, path: str, seconds: list[float], baseline_s: float | None = None,
            bound_s: float | None = None) -> dict:
    ms = np.asarray(seconds) * 1e3
    p50 = float(np.percentile(ms, 50))
    record = {"benchmark": "ros", "measure": measure, "path": path, "n": len(ms), "p50_ms": p50,
              "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()), "min_ms": float(ms.min()),
              "ratio": None if baseline_s is None else p50 / (baseline_s * 1e3),
              "bound_ms": None if bound_s is None else bound_s * 1e3,
              "within_bound": None if bound_s is None else bool(ms.max() <= bound_s * 1e3)}
    return record


def moves(steps: int) -> list[np.ndarray]:
    deltas = []
    for index in range(steps):
        delta = np.zeros(7)
        delta[0] = STEP if index % 2 == 0 else -STEP
        deltas.append(delta)
    return deltas


def in_process_steps(steps: int, image_size: int) -> list[float]:
    """Seconds of `observe()` + `apply()` on the sim in this process."""
    from vjepa_wm.ros_nodes.sim_node import SimNodeConfig
    from vjepa_wm.sim.franka.config import SimConfig
    from vjepa_wm.sim.franka.env import FrankaEnv

    env = FrankaEnv(SimConfig(image_size=image_size, low_poly=SimNodeConfig().low_poly), task="reach")  # as the sim node
    try:
        env.reset(seed=0)
        env.observe()
        seconds = []
        for delta in moves(steps):
            started = time.perf_counter()
            env.observe()
            env.apply(delta)
            seconds.append(time.perf_counter() - started)
    finally:
        env.close()
    return seconds


# --- peers ---------------------------------------------------------------------------------------
def ros_env(domain_id: int) -> dict[str, str]:
    return {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "PYTHONUNBUFFERED": "1"}


class Peer:
    """A peer process; its output is drained (a full pipe would stall it), the last lines kept for errors."""

    def __init__(self, args: list[str], domain_id: int):
        self.name = args[0].rpartition(".")[2]
        self.process = subprocess.Popen([sys.executable, "-P", "-m", *args], env=ros_env(domain_id), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.tail: deque[str] = deque(maxlen=20)
        self._drain = threading.Thread(target=lambda: self.tail.extend(self.process.stdout), daemon=True)
        self._drain.start()

    def check(self, what: str) -> None:
        if self.process.poll() is not None:
            self._drain.join(timeout=2)
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}) while waiting for {what}: "
                               f"{''.join(self.tail)[-600:]}")

    def stop(self) -> None:
        """Close its stdin, SIGINT it, kill its process group if it does not stop."""
        self.process.stdin.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def camera_peer(size: int, rate_hz: float) -> None:
    """Peer: publish the sim camera's frame, stamped with CLOCK_MONOTONIC just before conversion,
    best effort at `rate_hz`, until stdin closes."""
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from vjepa_wm.ros_nodes.image_messages import rgb8_message
    from vjepa_wm.ros_nodes.sim_arm import SimArm
    from vjepa_wm.ros_nodes.sim_node import CAMERA_QOS, SimNodeConfig
    from vjepa_wm.sim.franka.config import SimConfig

    arm = SimArm(SimConfig(image_size=size, low_poly=SimNodeConfig().low_poly), "reach", 0)
    image = arm.image()
    rclpy.init(args=ROS_ARGS)
    node = Node("bench_camera", namespace=NAMESPACES["camera"])
    publisher = node.create_publisher(Image, "image_raw", CAMERA_QOS)
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    while not closed.wait(1 / rate_hz):
        publisher.publish(rgb8_message(image, time.monotonic(), "camera_color_optical_frame"))
    node.destroy_node()
    rclpy.shutdown()
    arm.close()


# --- the ROS side in this process ----------------------------------------------------------------
class Side:
    """An rclpy context of the bench's own, its nodes spun by one SingleThreadedExecutor in a thread.
    The thread spins in short turns and is joined before the executor shuts down: rclpy 7.1.6's
    `Executor.shutdown` does not wait for a callback under way in another thread, which then
    finds the executor's guard condition gone (AttributeError in the spinning thread)."""

    def __init__(self, domain_id: int):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = Context()
        rclpy.init(args=ROS_ARGS, context=self.context, domain_id=domain_id)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while not self.stopping.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def close(self) -> None:
        import rclpy

        self.stopping.set()
        self.thread.join(timeout=10)
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        rclpy.shutdown(context=self.context)


def wait_until(predicate, timeout_s: float, what: str, peer: Peer):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        peer.check(what)
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.01)


def transport_latencies(side: Side, frames: int, camera: Peer) -> list[float]:
    from rclpy.parameter import Parameter

    from vjepa_wm.ros_nodes.camera_bridge import CameraBridge

    bridge = side.add(CameraBridge("bench_camera_bridge", namespace=NAMESPACES["camera"], context=side.context,
                                   parameter_overrides=[Parameter("image_topic", value="image_raw")]))
    bridge.trigger_configure()
    bridge.trigger_activate()
    wait_until(lambda: bridge.latest() is not None, START_TIMEOUT_S, "the first camera frame", camera)
    seconds, last = [], bridge.latest().received_ns
    while len(seconds) < frames:
        frame = bridge.wait_for_frame(last, 5.0)
        if frame is None:
            raise RuntimeError("the camera peer stopped sending")
        last = frame.received_ns
        seconds.append(frame.received_ns * 1e-9 - frame.stamp)
    bridge.trigger_deactivate()
    return seconds


def bridge_steps(side: Side, steps: int, sim: Peer) -> tuple[list[float], list[float]]:
    """(seconds of observe() + apply(), seconds of apply() alone) through the Franka bridge."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool

    from vjepa_wm.ros_nodes.camera_bridge import CameraBridge
    from vjepa_wm.ros_nodes.franka_bridge import FrankaBridge, FrankaBridgeConfig, FrankaBridgeNode
    from vjepa_wm.ros_nodes.watchdog_node import LATCHED

    namespace, context = NAMESPACES["arm"], side.context
    node = side.add(FrankaBridgeNode("franka_bridge", namespace=namespace, context=context))
    camera = side.add(CameraBridge("camera_bridge", namespace=namespace, context=context,
                                   parameter_overrides=[Parameter("image_topic", value="camera/image_raw")]))
    go = side.add(Node("bench_go", namespace=namespace, context=context))  # the watchdog's word: go
    word = go.create_publisher(Bool, FrankaBridgeConfig().hold_topic, LATCHED)
    go.create_timer(0.02, lambda: word.publish(Bool(data=False)))
    bridge = FrankaBridge(node, camera)
    bridge.activate()
    wait_until(lambda: camera.latest() is not None and node.pose is not None and node.width is not None
               and node.hold_reason() is None and node.robot_reason() is None, START_TIMEOUT_S,
               "the sim's first state and image at the bridge", sim)
    whole, applies = [], []
    try:
        for delta in moves(steps):
            started = time.perf_counter()
            bridge.observe()
            applied = time.perf_counter()
            bridge.apply(delta)
            ended = time.perf_counter()
            if not bridge.last_apply.settled:
                raise RuntimeError(f"the sim arm did not reach a 1 cm step: {bridge.last_apply}")
            whole.append(ended - started)
            applies.append(ended - applied)
    finally:
        bridge.deactivate()
    return whole, applies


class Feeder:
    """The watchdog's world, fed from here at 100 Hz; records every change of the hold word."""

    def __init__(self, side: Side):
        from franka_msgs.msg import FrankaRobotState
        from geometry_msgs.msg import PoseStamped
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import Bool, String

        from vjepa_wm.ros_nodes import franka_interface as fi
        from vjepa_wm.ros_nodes.watchdog_node import LATCHED, WatchdogTopics

        topics = WatchdogTopics()
        node = self.node = side.add(Node("bench_feeder", namespace=NAMESPACES["watchdog"], context=side.context))
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.out = {
            "camera": node.create_publisher(Image, topics.image_topic,
                                            QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)),
            "state": node.create_publisher(FrankaRobotState, topics.robot_state_topic, reliable),
            "heartbeat": node.create_publisher(String, topics.heartbeat_topic, reliable),
            "command": node.create_publisher(PoseStamped, topics.command_topic, fi.COMMAND_QOS),
        }
        self.messages = {"camera": Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12)),
                         "state": FrankaRobotState(robot_mode=FrankaRobotState.ROBOT_MODE_MOVE),
                         "heartbeat": String(data="bench-plan"), "command": PoseStamped()}
        self.lock = threading.Lock()
        self.stopped: set[str] = set()
        self.sent: dict[str, float] = {}
        self.holds: list[tuple[float, bool]] = []
        node.create_subscription(Bool, topics.hold_topic, self._hold, LATCHED)
        node.create_timer(FEED_PERIOD_S, self._feed)

    def _hold(self, msg) -> None:
        with self.lock:
            if not self.holds or self.holds[-1][1] != msg.data:
                self.holds.append((time.monotonic(), bool(msg.data)))

    def _feed(self) -> None:
        stamp = self.node.get_clock().now().to_msg()
        for name, publisher in self.out.items():
            if name in self.stopped:
                continue
            msg = self.messages[name]
            if hasattr(msg, "header"):
                msg.header.stamp = stamp
            self.sent[name] = time.monotonic()
            publisher.publish(msg)

    def hold_after(self, value: bool, after: float) -> float | None:
        with self.lock:
            return next((t for t, held in self.holds if t > after and held == value), None)

    def held(self) -> bool | None:
        with self.lock:
            return self.holds[-1][1] if self.holds else None


def hold_latencies(side: Side, trips: int, watchdog: Peer) -> dict[str, list[float]]:
    from vjepa_wm.ros_nodes.watchdog_rules import WatchdogLimits

    limits = WatchdogLimits()
    limit_of = {"heartbeat": limits.heartbeat_timeout_s, "camera": limits.max_image_age_s}
    feeder = Feeder(side)
    phases = random.Random(0)
    latencies: dict[str, list[float]] = {"heartbeat": [], "camera": []}
    wait_until(lambda: feeder.held() is False, START_TIMEOUT_S, "the watchdog's first go", watchdog)
    for trip in range(trips):
        kind = ("heartbeat", "camera")[trip % 2]
        wait_until(lambda: feeder.held() is False, 20, "the watchdog to release the hold", watchdog)
        time.sleep(0.05 + phases.uniform(0, limits.check_period_s))  # any phase of the watchdog's checks
        stopped_at = time.monotonic()
        feeder.stopped = {kind}
        held = wait_until(lambda: feeder.hold_after(True, stopped_at), 10, f"a hold after the {kind} stopped",
                          watchdog)
        latencies[kind].append(held - (feeder.sent[kind] + limit_of[kind]))
        feeder.stopped = set()
    return latencies


def run(steps: int = 20, frames: int = 60, trips: int = 40, image_size: int = 128, real_time_factor: float = 20.0,
        domain_id: int | None = None) -> list[dict]:
    """Every figure of the module doc, one record each (a table's rows)."""
    from vjepa_wm.ros_nodes.watchdog_rules import HOLD_BUDGET_S

    check(steps, frames, trips, image_size, real_time_factor, domain_id)
    domain_id = 1 + os.getpid() % 100 if domain_id is None else domain_id
    # The peers first: they take seconds to start, while the in-process baseline runs.
    peers = [Peer(["vjepa_wm.ros_nodes.sim_node", *ROS_ARGS, "-r", f"__ns:={NAMESPACES['arm']}",
                   "-p", f"image_size:={image_size}", "-p", f"real_time_factor:={float(real_time_factor)}"], domain_id),
             Peer([__name__, "camera-peer", str(image_size)], domain_id),
             Peer(["vjepa_wm.ros_nodes.watchdog_node", *ROS_ARGS, "-r", f"__ns:={NAMESPACES['watchdog']}"], domain_id)]
    sim, camera, watchdog = peers
    side = None
    try:
        baseline = in_process_steps(steps, image_size)
        base = float(np.median(baseline))
        side = Side(domain_id)
        transport = transport_latencies(side, frames, camera)
        whole, applies = bridge_steps(side, steps, sim)
        holds = hold_latencies(side, trips, watchdog)
    finally:
        if side is not None:
            side.close()
        for peer in peers:
            peer.stop()
    every = [value for values in holds.values() for value in values]
    return [
        summary("step (observe + apply)", "in-process", baseline, base),
        summary("image transport", "ros", transport, base),
        summary("command round trip (apply)", "ros", applies, base),
        summary("step (observe + apply)", "ros", whole, base),
        *(summary(f"watchdog hold: {kind} stopped", "ros", values, None, HOLD_BUDGET_S)
          for kind, values in holds.items() if values),
        summary("watchdog hold: all trips", "ros", every, None, HOLD_BUDGET_S),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["camera-peer"]:
        camera_peer(int(sys.argv[2]), 30.0)
