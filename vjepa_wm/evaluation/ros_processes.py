"""ROS 2 nodes as the deployment runs them: each `python -m vjepa_wm.ros_nodes.<module>` in a process
of its own, named, with ``-p`` parameters, on one DDS domain with localhost discovery only, its
output in a log file; stopped with SIGINT (what a launcher sends), killed only if it does not stop.

For `eval-sim --ros` and `demo --ros`; a deployment starts the same modules from its own launcher.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

STOP_TIMEOUT_S = 10.0  # after SIGINT, how long a node may take to exit before it is killed


def ros_environment(domain: int) -> dict[str, str]:
    """This process's environment for a node on `domain`, discovering peers on this host only."""
    if not 0 <= domain <= 101:
        raise ValueError(f"ROS domain id must be 0..101, got {domain}")
    return {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "PYTHONUNBUFFERED": "1"}


def default_domain() -> int:
    """ROS_DOMAIN_ID if set, else one derived from this process id (apart from domain 0, where a robot
    setup usually lives)."""
    return int(os.environ.get("ROS_DOMAIN_ID") or 1 + os.getpid() % 100)


def node_arguments(name: str, parameters: dict[str, object]) -> list[str]:
    settings = [item for key, value in parameters.items() for item in ("-p", f"{key}:={value}")]
    return ["--ros-args", "--disable-external-lib-logs", "-r", f"__node:={name}", *settings]


@dataclass
class NodeProcesses:
    """Named node processes on one domain; logs go to `log_dir`/<name>.log."""

    domain: int
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, module: str, parameters: dict[str, object]) -> subprocess.Popen:
        if name in self.processes and self.processes[name].poll() is None:
            raise ValueError(f"node {name} is already running")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log(name), "w") as log:
            process = subprocess.Popen([sys.executable, "-m", f"vjepa_wm.ros_nodes.{module}",
                                        *node_arguments(name, parameters)],
                                       env=ros_environment(self.domain), stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def check_running(self) -> None:
        """ChildProcessError naming a node that has exited, with the end of its log."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log(name).read_text(errors="replace")[-1500:]
                raise ChildProcessError(f"node {name} exited with status {process.returncode}; the end of its log "
                                   f"({self.log(name)}):\n{tail}")

    def stop(self, name: str) -> int:
        """SIGINT the node and wait for it (killed after STOP_TIMEOUT_S): its exit status."""
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop_all(self) -> dict[str, int]:
        """Stop the nodes in the reverse order of their start."""
        return {name: self.stop(name) for name in reversed(list(self.processes))}

    def __enter__(self) -> "NodeProcesses":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()
