"""Start a whole deployment (`launch_config`) from one YAML and keep it whole: ours, because there
are no pip wheels of ROS 2's `launch` (../shared/reference/ros2.md §3.3).

What it does, in order:

* checks the whole file first (`launch_config.load_deployment`): a bad key or value stops it
  before any node has started;
* starts the nodes in the file's order, each as ``python -m <module> --ros-args ...`` with the
  rename, the namespace and a params file it writes (fully qualified node names), in the
  deployment's ROS environment (domain, discovery range), and waits until the node is ready
  before starting the next: every lifecycle node of the process reports *active* through its
  ``get_state`` service, and every ``ready_topics`` topic has a publisher; asked through a probe
  node in the deployment's domain;
* prefixes every line a node prints with its name;
* stops everything when SIGINT or SIGTERM arrives, when `duration_s` has passed, when a node
  does not get ready in its `ready_timeout_s`, or when a required node exits: SIGINT to each
  node (our nodes' `node_process` then shuts down in order), SIGKILL to the process group of any
  still there after `stop_timeout_s`.

Exit status: 0 when it was asked to stop and every node stopped cleanly; 1 otherwise (a node not
ready, a required node gone, a node that failed or had to be killed on the way down). A node
marked ``required: false`` may exit on its own: that is said, and the rest runs on.

No orphans: each node runs in a process group of its own (so a kill reaches whatever it started)
and has the kernel send it SIGTERM should the launcher itself die without stopping it (Linux
``PR_SET_PDEATHSIG``); where that request is refused, the node sees its parent change
(`node_process.LAUNCHER_PID`) and stops within a spin.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import rclpy
from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from .launch_config import Plan, Planned, qualify, write_params_file
from .node_process import LAUNCHER_PID

POLL_S = 0.05
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the child between fork and exec: SIGTERM when the launcher's thread that started it (the
    main thread) ends."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def command(planned: Planned, params_file: Path | None) -> list[str]:
    return [sys.executable, "-P", "-m", planned.executable.module.__name__, *planned.ros_arguments(params_file)]


@dataclass
class Running:
    planned: Planned
    process: subprocess.Popen
    reader: threading.Thread
    reported: bool = False  # its exit was noticed while the deployment ran


class Probe:
    """A node of the launcher's own in the deployment's domain, asking the graph whether a node is ready."""

    def __init__(self, plan: Plan):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = plan.deployment.discovery  # read when the context starts
        if plan.deployment.static_peers:
            os.environ["ROS_STATIC_PEERS"] = ";".join(plan.deployment.static_peers)
        self.context = Context()
        options = {} if plan.deployment.domain_id is None else {"domain_id": plan.deployment.domain_id}
        rclpy.init(args=["--ros-args", "--disable-external-lib-logs"], context=self.context,
                   signal_handler_options=SignalHandlerOptions.NO, **options)
        self.node = Node(f"vjepa_wm_launcher_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._clients: dict[str, object] = {}

    def active(self, node: str) -> bool:
        """Whether lifecycle node `node` (fully qualified) says it is active now."""
        client = self._clients.get(node)
        if client is None:
            client = self._clients[node] = self.node.create_client(GetState, f"{node}/get_state")
        if not client.service_is_ready():
            self.executor.spin_once(timeout_sec=POLL_S)
            return False
        future = client.call_async(GetState.Request())
        self.executor.spin_until_future_complete(future, timeout_sec=1.0)
        return future.done() and future.result().current_state.id == State.PRIMARY_STATE_ACTIVE

    def published(self, topic: str) -> bool:
        self.executor.spin_once(timeout_sec=POLL_S)
        return bool(self.node.get_publishers_info_by_topic(topic))

    def close(self) -> None:
        self.executor.shutdown()
        for client in self._clients.values():
            self.node.destroy_client(client)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class Launcher:
    """Runs one checked deployment; `run` returns the exit status (see the module doc)."""

    def __init__(self, plan: Plan, out: TextIO | None = None, duration_s: float | None = None):
        self.plan, self.out, self.duration_s = plan, out or sys.stdout, duration_s
        self.running: list[Running] = []
        self.stop_requested = threading.Event()
        self._write = threading.Lock()

    def say(self, label: str, line: str) -> None:
        with self._write:
            self.out.write(f"[{label}] {line}\n")
            self.out.flush()

    def _request_stop(self, signum, frame) -> None:
        self.stop_requested.set()

    def run(self) -> int:
        previous = {signum: signal.signal(signum, self._request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
        probe = Probe(self.plan)
        failure, clean = None, False
        try:
            with tempfile.TemporaryDirectory(prefix="vjepa_wm_launch_") as folder:
                try:
                    failure = self._start_all(probe, Path(folder)) or self._watch()
                    if failure is not None:
                        self.say("launch", f"stopping: {failure}")
                finally:  # whatever happened, no node outlives the launch
                    clean = self._stop_all()
        finally:
            probe.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0 if failure is None and clean else 1

    # --- starting --------------------------------------------------------------------------------
    def _start_all(self, probe: Probe, folder: Path) -> str | None:
        """Start the nodes in order, each once the one before is ready; why it gave up, or None."""
        environment = self.plan.environment()
        for planned in self.plan.nodes:
            if self.stop_requested.is_set():
                return None
            running = self._start(planned, folder, environment)
            failure = self._wait_ready(probe, running)
            if failure is not None:
                return failure
            self.say("launch", f"{planned.label} ready")
        self.say("launch", f"all {len(self.plan.nodes)} nodes ready")
        return None

    def _start(self, planned: Planned, folder: Path, environment: dict[str, str]) -> Running:
        argv = command(planned, write_params_file(planned, folder))
        self.say("launch", f"starting {planned.label}: {' '.join(argv[1:])}")
        env = {**environment, **planned.entry.env, LAUNCHER_PID: str(os.getpid())}
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                   start_new_session=True, preexec_fn=_die_with_parent)
        reader = threading.Thread(target=self._relay, args=(planned.label, process), daemon=True)
        reader.start()
        running = Running(planned, process, reader)
        self.running.append(running)
        return running

    def _relay(self, label: str, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.say(label, line.rstrip("\n"))

    def _wait_ready(self, probe: Probe, running: Running) -> str | None:
        planned = running.planned
        pending = [("lifecycle", name) for name in planned.lifecycle_nodes]
        pending += [("topic", qualify(planned.namespace, topic) if not topic.startswith("/") else topic)
                    for topic in planned.entry.ready_topics]
        deadline = time.monotonic() + planned.entry.ready_timeout_s
        while pending:
            if self.stop_requested.is_set():
                return None
            status = running.process.poll()
            if status is not None:
                return f"{planned.label} exited with status {status} before it was ready"
            if time.monotonic() > deadline:
                waiting = ", ".join(f"{kind} {name}" for kind, name in pending)
                return f"{planned.label} not ready in {planned.entry.ready_timeout_s:g} s (waiting for {waiting})"
            kind, name = pending[0]
            if probe.active(name) if kind == "lifecycle" else probe.published(name):
                pending.pop(0)
        return None

    # --- running and stopping --------------------------------------------------------------------
    def _watch(self) -> str | None:
        """Until asked to stop (signal or duration): why the deployment must stop otherwise, or None."""
        ends = None if self.duration_s is None else time.monotonic() + self.duration_s
        while not self.stop_requested.is_set() and (ends is None or time.monotonic() < ends):
            for running in self.running:
                status = running.process.poll()
                if status is None or running.reported:
                    continue
                running.reported = True
                if running.planned.entry.required:
                    return f"required node {running.planned.label} exited with status {status}"
                self.say("launch", f"{running.planned.label} (not required) exited with status {status}")
            if all(running.process.poll() is not None for running in self.running):
                return None
            time.sleep(POLL_S)
        return None

    def _stop_all(self) -> bool:
        """SIGINT every node still running, kill what is left after the stop timeout; whether all
        stopped cleanly (status 0, not killed; a node not required that exited earlier is not counted)."""
        for running in reversed(self.running):
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + self.plan.deployment.stop_timeout_s
        clean = True
        for running in reversed(self.running):
            process, label = running.process, running.planned.label
            try:
                status = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("launch", f"{label} did not stop in {self.plan.deployment.stop_timeout_s:g} s: killed")
                _kill_group(process.pid)
                status = process.wait()
                clean = False
            _kill_group(process.pid)  # anything it started and left behind
            running.reader.join(timeout=2.0)
            if status != 0 and not running.reported:  # an optional node's earlier exit was said and forgiven
                clean = False
                self.say("launch", f"{label} exited with status {status}")
        return clean


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
