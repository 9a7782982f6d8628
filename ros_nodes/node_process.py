"""One lifecycle node as its own process: configure, activate, spin until SIGINT or SIGTERM, shut
down in the order rclpy needs (executor, node, context).

The signals only set a flag that the spin loop reads at least every `STOP_POLL_S`. rclpy's own
handlers are not used: they shut the context down from inside the signal, which races the
executor (building a wait set on a context just shut down raises), and the KeyboardInterrupt they
pass on, raised while a message is being converted (often, at 1 kHz of robot state), comes out of
pybind11 as a RuntimeError; either way a node would die with a traceback instead of stopping.

A node started by our launcher (`LAUNCHER_PID` in its environment) also stops when the launcher
is gone (its parent process changed): the kernel's parent-death signal the launcher asks for is
the quick way, this is the way that holds where that request is refused (some sandboxes).
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

STOP_POLL_S = 0.05  # how long a SIGINT may wait for the spin loop to notice it
LAUNCHER_PID = "VJEPA_WM_LAUNCHER_PID"  # set by our launcher: the process id a node's parent must have


def _orphaned() -> bool:
    """Whether this node was started by our launcher and the launcher is gone."""
    launcher = os.environ.get(LAUNCHER_PID)
    return launcher is not None and os.getppid() != int(launcher)


def run_node(make_node: Callable[[], LifecycleNode], args: list[str] | None = None,
             on_stop: Callable[[LifecycleNode], object] | None = None,
             release: Callable[[LifecycleNode], object] | None = None) -> int:
    """Run the node `make_node()` builds; exit status 1 if configuring or activating it is refused
    (its parameters). `on_stop` runs after a signal while the node still spins (e.g. a last word on a
    topic); `release` always runs before the node is destroyed (e.g. a simulator's client)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, frame: stop.set())
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = make_node()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    status = 0
    try:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS or \
                node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            status = 1
        else:
            while not stop.is_set():
                executor.spin_once(timeout_sec=STOP_POLL_S)
                if _orphaned():
                    node.get_logger().warning("the launcher that started this node is gone: stopping")
                    break
            if on_stop is not None:
                on_stop(node)
    finally:
        executor.shutdown()
        if release is not None:
            release(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return status
