"""One YAML per deployment: which of our nodes to start, named and namespaced how, with which
parameters, in which ROS environment; checked in full before anything starts.

The file (see config/*.yaml)::

    domain_id: 0               # ROS_DOMAIN_ID of every node (null: the environment's)
    discovery: LOCALHOST       # ROS_AUTOMATIC_DISCOVERY_RANGE (SUBNET on a robot LAN)
    nodes:                     # started in this order, each once the one before is ready
      - executable: sim_node   # one of EXECUTABLES (the console scripts, `ros2 run vjepa_wm <executable>`)
        name: franka_sim       # optional rename; namespace: optional, e.g. the robot's
        parameters:            # a ROS 2 params file: node name -> ros__parameters
          franka_sim:
            ros__parameters: {image_size: 128}

The parameters section is a params file as `ros2 run ... --ros-args --params-file` reads it, so a
section can be copied out and used without the launcher; the launcher and the launch files write
it again with fully qualified node names (a relative key would not match a namespaced node).

Why checked here: a node refuses a bad parameter only once it runs, after the nodes before it
have started moving things. So every key is checked against the dataclass and the parameter
specs the node itself declares (`parameters.Spec`: ranges, choices), every value against the
field's type (ROS parameters are strictly typed: an int given for a float field is written as a
float, a float for an int field is refused), and each dataclass is built so its own checks run;
the first problem is one ValueError naming the file, the node and the key.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from vjepa_wm.world_model.configuration import ConfigError, from_dict

from .parameters import Spec

DISCOVERY_RANGES = ("LOCALHOST", "SUBNET", "OFF", "SYSTEM_DEFAULT")
BUILTIN_PARAMETERS = {"use_sim_time": bool}  # every rclpy node declares it
PARAMS_KEY = "ros__parameters"


@dataclass(frozen=True)
class RosNode:
    """A ROS node an executable runs: its own name and the (config dataclass, parameter specs) it
    declares. All of ours are lifecycle nodes that configure and activate themselves, so a node is
    ready once its ``get_state`` says active."""

    default_name: str
    configs: tuple[tuple[type, dict[str, Spec]], ...]


@dataclass(frozen=True)
class Executable:
    module: ModuleType  # started as `python -m <module>`; its `main` is the console script
    nodes: tuple[RosNode, ...]  # the first is the one an entry's `name` renames


# Each imported when a deployment names it: the planner's process brings torch and the world
# model, the sim's PyBullet, which a deployment without them need not wait for.
def _sim_node() -> Executable:
    from . import sim_faults, sim_node

    return Executable(sim_node, (RosNode("franka_sim", ((sim_node.SimNodeConfig, sim_node.PARAMETERS),
                                                        (sim_faults.SimFaults, sim_faults.PARAMETERS))),))


def _watchdog() -> Executable:
    from . import watchdog_node, watchdog_rules

    return Executable(watchdog_node, (RosNode("watchdog", ((watchdog_rules.WatchdogLimits, watchdog_node.LIMIT_PARAMETERS),
                                                           (watchdog_node.WatchdogTopics, watchdog_node.TOPIC_PARAMETERS))),))


def _camera_bridge() -> Executable:
    from . import camera_bridge

    return Executable(camera_bridge, (RosNode("camera_bridge", ((camera_bridge.CameraBridgeConfig, camera_bridge.PARAMETERS),)),))


def _planner_node() -> Executable:
    """The planner's process also runs the Franka bridge and its camera bridge (the `Robot` it drives)."""
    from . import camera_bridge, franka_bridge, planner_node

    return Executable(planner_node, (
        RosNode("vjepa_wm_planner", ((planner_node.PlannerNodeConfig, planner_node.PARAMETERS),)),
        RosNode("franka_bridge", ((franka_bridge.FrankaBridgeConfig, franka_bridge.PARAMETERS),)),
        RosNode("camera_bridge", ((camera_bridge.CameraBridgeConfig, camera_bridge.PARAMETERS),))))


EXECUTABLES = {"sim_node": _sim_node, "watchdog": _watchdog, "camera_bridge": _camera_bridge, "planner_node": _planner_node}


@dataclass
class NodeEntry:
    """One process of a deployment."""

    executable: str  # sim_node, watchdog, camera_bridge or planner_node (EXECUTABLES)
    name: str | None = None  # the node's name (null: the executable's own)
    namespace: str = ""  # the node's namespace, e.g. the robot's (franka.launch.py namespace:=NS); "" for none
    parameters: dict[str, Any] = field(default_factory=dict)  # a ROS 2 params file: {node name: {ros__parameters: {...}}}
    env: dict[str, str] = field(default_factory=dict)  # extra environment variables of this process
    required: bool = True  # if it exits, the whole deployment stops (non-zero exit)
    ready_timeout_s: float = 60.0  # how long the next node waits for this one to be ready
    ready_topics: list[str] = field(default_factory=list)  # also ready only once each of these has a publisher


@dataclass
class Deployment:
    """A whole setup started by `launcher` (or `ros2 launch` with launch/*.launch.py)."""

    nodes: list[NodeEntry]
    domain_id: int | None = None  # ROS_DOMAIN_ID of every node (null: as in the environment)
    discovery: str = "LOCALHOST"  # ROS_AUTOMATIC_DISCOVERY_RANGE: LOCALHOST, SUBNET, OFF or SYSTEM_DEFAULT
    static_peers: list[str] = field(default_factory=list)  # ROS_STATIC_PEERS (hosts beyond the discovery range)
    stop_timeout_s: float = 10.0  # after SIGINT a node has this long to exit before it is killed


@dataclass(frozen=True)
class Planned:
    """A checked entry: what the launcher starts and how."""

    entry: NodeEntry
    executable: Executable
    name: str  # the main node's name
    namespace: str  # absolute ("/" for none)
    parameters: dict[str, dict[str, Any]]  # fully qualified node name -> parameters (typed for ROS)
    lifecycle_nodes: tuple[str, ...]  # fully qualified names of its nodes, which must become active

    @property
    def label(self) -> str:
        """What its output lines are prefixed with: the node's name, qualified when namespaced."""
        return self.qualified(self.name).lstrip("/")

    def qualified(self, name: str) -> str:
        return qualify(self.namespace, name)

    def ros_arguments(self, params_file: Path | None) -> list[str]:
        """``--ros-args`` and what follows: the rename (of this node only, so other nodes of the
        process keep theirs), the namespace and the params file."""
        default = self.executable.nodes[0].default_name
        args = ["--ros-args"]
        if self.name != default:
            args += ["-r", f"{default}:__node:={self.name}"]
        if self.namespace != "/":
            args += ["-r", f"__ns:={self.namespace}"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        return args

    def params_document(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The params file: a section for each node given parameters (fully qualified names)."""
        return {name: {PARAMS_KEY: values} for name, values in self.parameters.items() if values}


@dataclass(frozen=True)
class Plan:
    deployment: Deployment
    source: Path
    nodes: tuple[Planned, ...]

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The ROS environment every node gets (the launcher's own, updated)."""
        env = dict(os.environ if base is None else base)
        deployment = self.deployment
        if deployment.domain_id is not None:
            env["ROS_DOMAIN_ID"] = str(deployment.domain_id)
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = deployment.discovery
        if deployment.static_peers:
            env["ROS_STATIC_PEERS"] = ";".join(deployment.static_peers)
        env["PYTHONUNBUFFERED"] = "1"  # lines reach the launcher as they are written
        return env


def load_deployment(path: str | Path, domain_id: int | None = None) -> Plan:
    """Read and check the deployment at `path` (`domain_id`, if given, replaces the file's)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or "nodes" not in data:
        raise ValueError(f"{path}: a deployment is a mapping with a 'nodes' list")
    try:
        deployment = from_dict(Deployment, data)
    except ConfigError as err:
        raise ValueError(f"{path}: {err}") from None
    if domain_id is not None:
        deployment = dataclasses.replace(deployment, domain_id=domain_id)
    try:
        return Plan(deployment, path, check(deployment))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def check(deployment: Deployment) -> tuple[Planned, ...]:
    if deployment.discovery not in DISCOVERY_RANGES:
        raise ValueError(f"discovery must be one of {', '.join(DISCOVERY_RANGES)}, got {deployment.discovery!r}")
    if deployment.domain_id is not None and not 0 <= deployment.domain_id <= 232:
        raise ValueError(f"domain_id must be 0..232, got {deployment.domain_id}")
    if not 0 < deployment.stop_timeout_s <= 600:
        raise ValueError(f"stop_timeout_s must be in (0, 600], got {deployment.stop_timeout_s}")
    if not deployment.nodes:
        raise ValueError("nodes: a deployment starts at least one node")
    planned = [plan_entry(entry, index) for index, entry in enumerate(deployment.nodes)]
    seen: set[str] = set()
    for item in planned:
        for name in item.parameters:
            if name in seen:
                raise ValueError(f"node {name} appears twice")
            seen.add(name)
    return tuple(planned)


def plan_entry(entry: NodeEntry, index: int) -> Planned:
    where = f"nodes[{index}]"
    if entry.executable not in EXECUTABLES:
        raise ValueError(f"{where}: unknown executable {entry.executable!r} (known: {', '.join(EXECUTABLES)})")
    executable = EXECUTABLES[entry.executable]()
    name = entry.name or executable.nodes[0].default_name
    if not valid_name(name):
        raise ValueError(f"{where}: name {name!r} is not a ROS node name (letters, digits, _; not starting with a digit)")
    parts = [part for part in entry.namespace.strip("/").split("/") if part]
    if not all(valid_name(part) for part in parts):
        raise ValueError(f"{where}: namespace {entry.namespace!r} is not a ROS namespace")
    namespace = "/" + "/".join(parts)
    if not 0 < entry.ready_timeout_s <= 3600:
        raise ValueError(f"{where}: ready_timeout_s must be in (0, 3600], got {entry.ready_timeout_s}")
    if not all(topic.strip() for topic in entry.ready_topics):
        raise ValueError(f"{where}: ready_topics must name topics, got {entry.ready_topics!r}")
    main, *others = executable.nodes
    names = {name: main, **{node.default_name: node for node in others}}
    for key in entry.parameters:
        if key not in names:
            raise ValueError(f"{where}: {entry.executable} runs no node {key!r} (its nodes: {', '.join(names)})")
    parameters = {}
    for node_name, ros_node in names.items():
        section = entry.parameters.get(node_name, {PARAMS_KEY: {}})
        if not isinstance(section, dict) or set(section) != {PARAMS_KEY}:
            raise ValueError(f"{where}: parameters.{node_name} must hold only '{PARAMS_KEY}:' (the params file layout)")
        values = section[PARAMS_KEY] or {}
        if not isinstance(values, dict):
            raise ValueError(f"{where}: parameters.{node_name}.{PARAMS_KEY} must be a mapping")
        try:
            parameters[qualify(namespace, node_name)] = checked_parameters(ros_node, values)
        except ValueError as err:
            raise ValueError(f"node {qualify(namespace, node_name)}: {err}") from None
    for key, value in entry.env.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"{where}: env.{key} must be text or a number, got {value!r}")
    entry = dataclasses.replace(entry, env={str(key): str(value) for key, value in entry.env.items()})
    lifecycle = tuple(qualify(namespace, node_name) for node_name in names)
    return Planned(entry, executable, name, namespace, parameters, lifecycle)


def qualify(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"


def valid_name(name: str) -> bool:
    return bool(name) and (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c == "_" for c in name)


def checked_parameters(node: RosNode, values: dict[str, Any]) -> dict[str, Any]:
    """`values` typed as the node declares them; ValueError naming the first bad key."""
    fields = {f.name: (config, specs) for config, specs in node.configs for f in dataclasses.fields(config)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in BUILTIN_PARAMETERS:
            out[key] = typed(value, BUILTIN_PARAMETERS[key], key)
            continue
        if key not in fields:
            known = ", ".join(sorted([*fields, *BUILTIN_PARAMETERS]))
            raise ValueError(f"unknown parameter {key!r} (known: {known})")
        config, specs = fields[key]
        spec = specs[key]
        value = typed(value, typing.get_type_hints(config)[key], key)
        if spec.low is not None and not spec.low <= value <= spec.high:
            raise ValueError(f"{key} = {value} is out of its range {spec.low:g}..{spec.high:g}")
        if spec.choices and value not in spec.choices:
            raise ValueError(f"{key} = {value!r} is not one of {', '.join(spec.choices)}")
        out[key] = value
    for config, _ in node.configs:  # the dataclass's own checks (cross-field ones too)
        config(**{f.name: out[f.name] for f in dataclasses.fields(config) if f.name in out})
    return out


def typed(value: Any, annotation: Any, key: str) -> Any:
    """`value` as a ROS parameter of the field's type (bool, int, float, str, or a list of one)."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ValueError(f"{key} must be a list, got {value!r}")
        (inner, *_) = typing.get_args(annotation)
        return [typed(item, inner, f"{key}[{i}]") for i, item in enumerate(value)]
    if annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as text
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = annotation is str and isinstance(value, str)
    if not ok:
        kind = getattr(annotation, "__name__", str(annotation))
        raise ValueError(f"{key} must be a {kind}, got {value!r}")
    return value


def write_params_file(planned: Planned, folder: Path) -> Path | None:
    """The entry's parameters as a ROS 2 params file in `folder` (fully qualified node names);
    None when it sets none."""
    document = planned.params_document()
    if not document:
        return None
    path = folder / f"{planned.label.replace('/', '__')}.params.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
