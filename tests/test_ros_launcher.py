"""The launcher, the deployment YAMLs and the launch files.

The shipped deployments (config/*.yaml) are checked against the nodes' own dataclasses and
parameter specs; a bad key, value or type is refused with one line naming the node and the key,
before anything starts. Then real launches over DDS on localhost (watchdog nodes: the lightest of
ours): the params file reaches the renamed, namespaced node (asked over ROS, not read back from
the file), output comes prefixed, SIGINT stops every node with status 0, a required node dying or
a node not getting ready stops the rest with status 1, and a launcher killed outright leaves no
node behind. The launch files for `ros2 launch` run here against stand-ins for `launch` and
`launch_ros` (no wheels), which record the actions they are given.
"""
from __future__ import annotations

import ast
import os
import re
import runpy
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import yaml
from rcl_interfaces.srv import GetParameters
from ros_helpers import Spinning, eventually, ros_env

from vjepa_wm.cli import main
from vjepa_wm.ros_nodes import launch_description, node_process
from vjepa_wm.ros_nodes.launch_config import EXECUTABLES, load_deployment

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = sorted((ROOT / "config").glob("*.yaml"))
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
START_S = 240  # a launcher and its nodes up, on a 2-core machine shared with other jobs (usually 10-20 s)


@pytest.fixture
def gpu(monkeypatch):
    """The real-arm deployments plan on CUDA, which the planner's config checks exists."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


# --- the deployments -------------------------------------------------------------------------------
def test_every_shipped_deployment_is_valid_and_names_only_known_executables(gpu):
    assert {path.stem for path in DEPLOYMENTS} >= {"sim", "franka_cartesian", "franka_ptp"}
    for path in DEPLOYMENTS:
        plan = load_deployment(path)
        assert [planned.entry.executable for planned in plan.nodes][-1] == "planner_node", path
        bridge = next(values for planned in plan.nodes for name, values in planned.parameters.items()
                      if name.endswith("/franka_bridge"))
        expected = {"sim": "pose", "franka_cartesian": "pose", "franka_ptp": "ptp"}.get(path.stem)
        assert bridge.get("command_path") == expected, path
        watchdog = next(values for planned in plan.nodes for name, values in planned.parameters.items()
                        if name.endswith("/watchdog"))
        camera = next(values for planned in plan.nodes for name, values in planned.parameters.items()
                      if name.endswith("/camera_bridge"))
        assert watchdog["image_topic"] == camera["image_topic"], f"{path}: the watchdog must watch the planner's camera"


def test_the_console_scripts_of_the_executables_exist_in_setup_py():
    scripts = dict(re.findall(r'"(\w+) = (vjepa_wm\.ros_nodes\.\w+):main"', (ROOT / "setup.py").read_text()))
    for name, load in EXECUTABLES.items():
        executable = load()
        assert scripts.get(name) == executable.module.__name__, f"setup.py lacks '{name} = {executable.module.__name__}:main'"
        assert callable(executable.module.main)


def write(tmp_path: Path, text: str, name: str = "deployment") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


WATCHDOG = """
nodes:
  - executable: watchdog
    name: wd
    namespace: arm
    parameters:
      wd:
        ros__parameters:
          {line}
"""


@pytest.mark.parametrize("line, message", [
    ("max_image_age: 0.2", "node /arm/wd: unknown parameter 'max_image_age' (known: check_period_s, clock_skew_s"),
    ("max_image_age_s: 100.0", "node /arm/wd: max_image_age_s = 100.0 is out of its range 0.001..60"),
    ("check_period_s: 0.2", "node /arm/wd: check_period_s = 0.2 is out of its range 0.001..0.125"),
    ("max_image_age_s: fast", "node /arm/wd: max_image_age_s must be a float, got 'fast'"),
    ("image_topic: 3", "node /arm/wd: image_topic must be a str, got 3"),
    ("image_topic: ' '", "node /arm/wd: image_topic must name a topic or action"),
])
def test_a_bad_parameter_is_one_line_naming_the_node_and_the_key(tmp_path, capsys, line, message):
    path = write(tmp_path, WATCHDOG.format(line=line))
    assert main(["ros-launch", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"vjepa-wm ros-launch: error: {path}: {message}" or err.startswith(
        f"vjepa-wm ros-launch: error: {path}: {message}"), err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("text, message", [
    ("nodes:\n  - executable: planner\n", "nodes[0]: unknown executable 'planner'"),
    ("nodes:\n  - executable: watchdog\n    nmae: x\n", "unknown config key nodes[0].nmae"),
    ("nodes:\n  - executable: watchdog\n    parameters: {franka_sim: {ros__parameters: {}}}\n",
     "nodes[0]: watchdog runs no node 'franka_sim' (its nodes: watchdog)"),
    ("nodes:\n  - executable: watchdog\n    parameters: {watchdog: {max_image_age_s: 1.0}}\n",
     "nodes[0]: parameters.watchdog must hold only 'ros__parameters:'"),
    ("nodes:\n  - executable: watchdog\n  - executable: watchdog\n", "node /watchdog appears twice"),
    ("nodes:\n  - executable: watchdog\n    name: 2wd\n", "nodes[0]: name '2wd' is not a ROS node name"),
    ("discovery: LAN\nnodes:\n  - executable: watchdog\n", "discovery must be one of LOCALHOST, SUBNET, OFF"),
    ("nodes: []\n", "nodes: a deployment starts at least one node"),
    ("nodes:\n  - executable: sim_node\n    parameters: {franka_sim: {ros__parameters: {seed: 1.5}}}\n",
     "node /franka_sim: seed must be a int, got 1.5"),
    ("nodes:\n  - executable: sim_node\n    parameters: {franka_sim: {ros__parameters: {task: fly}}}\n",
     "node /franka_sim: task = 'fly' is not one of reach"),
    ("nodes:\n  - executable: planner_node\n    parameters:\n      franka_bridge: {ros__parameters: {command_path: joint}}\n",
     "node /franka_bridge: command_path = 'joint' is not one of pose, ptp"),
    ("nodes:\n  - executable: planner_node\n    parameters:\n      vjepa_wm_planner: {ros__parameters: {workspace_low: [0.1, 0.2]}}\n",
     "node /vjepa_wm_planner: workspace_low and workspace_high need 3 numbers"),
])
def test_a_bad_deployment_is_refused_before_anything_starts(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    assert main(["ros-launch", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vjepa-wm ros-launch: error: {path}: {message}"), err
    assert len(err.splitlines()) == 1


def test_check_prints_each_nodes_command_with_its_rename_namespace_and_typed_params_file(tmp_path, capsys):
    path = write(tmp_path, """
domain_id: 7
nodes:
  - executable: planner_node
    name: arm_planner
    namespace: /left/
    parameters:
      arm_planner: {ros__parameters: {cem_samples: 32, stop_energy: 1, workspace_low: [0.3, -0.2, 0]}}
      camera_bridge: {ros__parameters: {image_topic: /cam/image_raw}}
""")
    assert main(["ros-launch", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert ("left/arm_planner: -P -m vjepa_wm.ros_nodes.planner_node --ros-args -r vjepa_wm_planner:__node:=arm_planner "
            "-r __ns:=/left --params-file PARAMS.yaml") in out
    plan = load_deployment(path)
    (planned,) = plan.nodes
    document = planned.params_document()
    assert document == {"/left/arm_planner": {"ros__parameters": {"cem_samples": 32, "stop_energy": 1.0,
                                                                  "workspace_low": [0.3, -0.2, 0.0]}},
                        "/left/camera_bridge": {"ros__parameters": {"image_topic": "/cam/image_raw"}}}
    assert isinstance(document["/left/arm_planner"]["ros__parameters"]["stop_energy"], float)  # ROS types are strict
    assert planned.lifecycle_nodes == ("/left/arm_planner", "/left/franka_bridge", "/left/camera_bridge")
    env = plan.environment({})
    assert env["ROS_DOMAIN_ID"] == "7" and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


# --- real launches ---------------------------------------------------------------------------------
def launch(tmp_path: Path, text: str, name: str = "deployment") -> tuple[subprocess.Popen, list[str]]:
    """The launcher as a user starts it (its output collected line by line in the background)."""
    path = write(tmp_path, text, name)
    env = {**ros_env(), "ROS_LOG_DIR": str(tmp_path / "log")}
    process = subprocess.Popen([sys.executable, "-P", "-m", "vjepa_wm", "ros-launch", str(path)], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout), daemon=True).start()
    return process, lines


def children(pid: int) -> dict[str, int]:
    """The launcher's child processes by node name (from their command lines)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            argv = Path(f"/proc/{child}/cmdline").read_text().split("\0")
            renamed = [arg.rpartition("__node:=")[2] for arg in argv if "__node:=" in arg]
            found[renamed[0] if renamed else argv[argv.index("-m") + 1].rpartition(".")[2]] = int(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def finish(process: subprocess.Popen, lines: list[str], timeout_s: float = 60.0) -> int:
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("the launcher did not stop:\n" + "\n".join(lines[-30:])) from None


TWO_WATCHDOGS = """
nodes:
  - executable: watchdog
    name: first
    namespace: launch_test
    ready_timeout_s: 200
    {first}
    parameters:
      first: {{ros__parameters: {{max_image_age_s: 0.25, image_topic: camera_a}}}}
  - executable: watchdog
    name: second
    namespace: launch_test
    ready_timeout_s: 200
    parameters:
      second: {{ros__parameters: {{heartbeat_timeout_s: 0.75}}}}
"""


def test_a_launch_reaches_renamed_namespaced_nodes_with_their_params_and_sigint_stops_all(tmp_path):
    process, lines = launch(tmp_path, TWO_WATCHDOGS.format(first="required: false"))
    eventually(lambda: "[launch] all 2 nodes ready" in lines, START_S, "both nodes ready")
    assert lines.index("[launch] launch_test/first ready") < next(
        i for i, line in enumerate(lines) if line.startswith("[launch] starting launch_test/second"))  # in order
    assert any(line.startswith("[launch_test/first] ") and "HOLD" in line for line in lines), lines  # prefixed
    nodes = children(process.pid)
    assert set(nodes) == {"first", "second"}
    ros = Spinning()
    try:
        probe = ros.add(ros_probe(ros))
        assert parameters(probe, "/launch_test/first", ["max_image_age_s", "image_topic", "heartbeat_timeout_s"]) == \
            [0.25, "camera_a", 0.5]
        assert parameters(probe, "/launch_test/second", ["heartbeat_timeout_s", "max_image_age_s"]) == [0.75, 0.2]
    finally:
        ros.close()
    os.kill(nodes["first"], signal.SIGKILL)  # not required: said, and the rest runs on
    eventually(lambda: "[launch] launch_test/first (not required) exited with status -9" in lines, 10,
               "the optional node's exit reported")
    time.sleep(0.3)
    assert process.poll() is None and alive(nodes["second"])
    process.send_signal(signal.SIGINT)
    assert finish(process, lines) == 0, "\n".join(lines[-20:])
    assert not any(alive(pid) for pid in nodes.values())
    assert not any("Traceback" in line for line in lines), "\n".join(lines)


def ros_probe(ros: Spinning):
    from rclpy.node import Node

    return Node("launch_test_probe", context=ros.context)


def parameters(node, target: str, names: list[str]) -> list:
    client = node.create_client(GetParameters, f"{target}/get_parameters")
    assert client.wait_for_service(timeout_sec=20), target
    future = client.call_async(GetParameters.Request(names=names))
    eventually(future.done, 10, f"{target}'s parameters")
    values = future.result().values
    return [value.double_value if value.type == 3 else value.string_value for value in values]


def test_a_required_node_dying_stops_the_rest_with_status_1(tmp_path):
    process, lines = launch(tmp_path, TWO_WATCHDOGS.format(first=""))
    eventually(lambda: "[launch] all 2 nodes ready" in lines, START_S, "both nodes ready")
    nodes = children(process.pid)
    os.kill(nodes["second"], signal.SIGKILL)
    assert finish(process, lines) == 1
    assert "[launch] stopping: required node launch_test/second exited with status -9" in lines, lines
    assert not alive(nodes["first"])


def test_a_node_not_ready_in_time_stops_the_launch_and_a_killed_launcher_leaves_no_node(tmp_path):
    # Two launches at once (their nodes in namespaces of their own), to share the start-up time.
    waiting, waited = launch(tmp_path, """
nodes:
  - executable: watchdog
    namespace: slow
    ready_topics: [nobody/publishes/this]
    ready_timeout_s: 1.0
""", "waiting")
    killed, lines = launch(tmp_path, "nodes:\n  - executable: watchdog\n    namespace: killed\n    ready_timeout_s: 200\n",
                           "killed")
    assert finish(waiting, waited, START_S) == 1
    stopped = next(line for line in waited if line.startswith("[launch] stopping: "))
    # What it still waited for: the topic, and the node's activation too if it had not started yet.
    assert stopped.startswith("[launch] stopping: slow/watchdog not ready in 1 s (waiting for ") and \
        stopped.endswith("topic /slow/nobody/publishes/this)"), stopped
    assert any(line.startswith("[launch] starting slow/watchdog") for line in waited)

    eventually(lambda: "[launch] all 1 nodes ready" in lines, START_S, "the node ready")
    (node,) = children(killed.pid).values()
    killed.kill()  # no chance to stop anything: the kernel tells the node (PR_SET_PDEATHSIG)
    killed.wait()
    try:
        eventually(lambda: not alive(node), 30, "the node to stop with its launcher gone")
    except AssertionError as err:
        os.kill(node, signal.SIGKILL)
        raise AssertionError(f"{err}; {where(node)}") from None


def where(pid: int) -> str:
    """What a process that would not stop was doing: its state and each thread's kernel wait."""
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State"))
        waits = [(task / "wchan").read_text() for task in Path(f"/proc/{pid}/task").iterdir()]
    except FileNotFoundError:
        return "it is gone now"
    return f"{state}; its threads wait in {sorted(set(waits))}; its signals: " + ", ".join(
        line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(("SigPnd", "ShdPnd", "SigBlk", "SigCgt")))


def test_a_node_of_ours_knows_when_the_launcher_that_started_it_is_gone(monkeypatch):
    """The fallback where the kernel's parent-death signal is refused: the parent process changed."""
    monkeypatch.delenv(node_process.LAUNCHER_PID, raising=False)
    assert not node_process._orphaned()  # not started by our launcher (ros2 run, a shell): never
    monkeypatch.setenv(node_process.LAUNCHER_PID, str(os.getppid()))
    assert not node_process._orphaned()
    monkeypatch.setenv(node_process.LAUNCHER_PID, str(os.getppid() + 1))
    assert node_process._orphaned()


# --- the launch files ------------------------------------------------------------------------------
class Recorded:
    """A stand-in for a `launch` / `launch_ros` action: what it was given."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def stand_ins(monkeypatch, prefix: Path) -> None:
    modules = {name: types.ModuleType(name) for name in ("launch", "launch.actions", "launch.substitutions",
                                                         "launch_ros", "launch_ros.actions")}
    modules["launch"].LaunchDescription = lambda actions: actions
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable", "Shutdown"):
        setattr(modules["launch.actions"], name, type(name, (Recorded,), {}))
    modules["launch_ros.actions"].Node = type("Node", (Recorded,), {})

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    # An install prefix as colcon or pip leave it: the ament index marker and share/vjepa_wm/config.
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "vjepa_wm").touch()
    (prefix / "share" / "vjepa_wm").mkdir()
    (prefix / "share" / "vjepa_wm" / "config").symlink_to(ROOT / "config")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))


def test_each_launch_file_starts_its_deployments_executables_with_the_launchers_arguments(monkeypatch, gpu, tmp_path):
    assert {path.name for path in LAUNCH_FILES} == {f"{path.stem}.launch.py" for path in DEPLOYMENTS}
    stand_ins(monkeypatch, tmp_path)
    assert launch_description.deployment_path("sim") == tmp_path / "share" / "vjepa_wm" / "config" / "sim.yaml"
    assert launch_description.deployment_path("~/arm.yaml") == Path.home() / "arm.yaml"
    for path in LAUNCH_FILES:
        ast.parse(path.read_text(), str(path))  # compiles
        description = runpy.run_path(str(path))["generate_launch_description"]()
        argument, function = description
        default = argument.kwargs["default_value"]
        assert (ROOT / "config" / f"{default}.yaml").is_file() and default == path.name.removesuffix(".launch.py")
        actions = function.kwargs["function"]({"deployment": default})
        plan = load_deployment(ROOT / "config" / f"{default}.yaml")
        environment = {action.args[0]: action.args[1] for action in actions if type(action).__name__ == "SetEnvironmentVariable"}
        assert environment["ROS_AUTOMATIC_DISCOVERY_RANGE"] == plan.deployment.discovery
        nodes = [action.kwargs for action in actions if type(action).__name__ == "Node"]
        assert [node["executable"] for node in nodes] == [planned.entry.executable for planned in plan.nodes]
        for node, planned in zip(nodes, plan.nodes):
            assert node["package"] == "vjepa_wm" and node["executable"] in EXECUTABLES
            arguments = node["ros_arguments"]
            params = Path(arguments[arguments.index("--params-file") + 1])
            assert yaml.safe_load(params.read_text()) == planned.params_document()
            assert arguments[:arguments.index("--params-file")] == planned.ros_arguments(None)[1:]
            assert type(node["on_exit"]).__name__ == "Shutdown"  # every shipped node is required
