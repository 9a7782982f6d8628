"""A node's typed config as ROS 2 parameters: every field declared with a descriptor (what it means,
its range or choices, whether it may change after start), and read back into the dataclass.

The dataclass stays the one place the settings and their checks live (as elsewhere in the house);
ROS adds the descriptors, so `--ros-args -p`, params files and a remote parameter client see the
same names, defaults and ranges, and an out-of-range value is refused by rclpy before the node
reads it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

Config = TypeVar("Config")


@dataclass(frozen=True)
class Spec:
    """How one config field appears as a parameter. `low`/`high` bound a number (both or neither);
    `choices` lists a string's allowed values (rclpy has no such descriptor, so they go into the
    description and the dataclass checks them); `read_only` marks settings that name hardware or
    wiring and so must not change while the node runs."""

    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False


def descriptor(spec: Spec, default: Any) -> ParameterDescriptor:
    text = spec.description + (f" (one of: {', '.join(spec.choices)})" if spec.choices else "")
    described = ParameterDescriptor(description=text, read_only=spec.read_only)
    if (spec.low is None) != (spec.high is None):
        raise ValueError(f"a parameter range needs both ends, got low={spec.low}, high={spec.high}")
    if spec.low is not None:
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise ValueError(f"a range bounds a number, not {default!r}")
        if isinstance(default, int):
            described.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
        else:
            described.floating_point_range = [FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
    return described


def declare(node: Node, defaults: Any, specs: dict[str, Spec]) -> None:
    """Declare every field of the config instance `defaults` (its values are the defaults)."""
    fields = [field.name for field in dataclasses.fields(defaults)]
    if sorted(fields) != sorted(specs):
        raise ValueError(f"parameter specs {sorted(specs)} do not match the config's fields {sorted(fields)}")
    for name in fields:
        default = getattr(defaults, name)
        node.declare_parameter(name, default, descriptor(specs[name], default))


def read(node: Node, config_type: type[Config]) -> Config:
    """The config the node's parameters describe now; the dataclass's own checks raise ValueError."""
    return config_type(**{field.name: node.get_parameter(field.name).value for field in dataclasses.fields(config_type)})
