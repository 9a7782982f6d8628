"""TartanDrive logs as ROS bags, read through `rosbags` (pure Python: no ROS install).

TartanDrive 1.0 was recorded as ROS 1 bags (`<day>_heightmaps_<n>/<day>_<k>.bag`); the same
topics recorded as a ROS 2 bag (a folder with `metadata.yaml` and `.db3` / `.mcap` files) read
the same way. `TOPICS` lists the 1.0 topics of the README table. Only the topics a caller asks for
are deserialized: `track` reads one topic whole through a converter of `messages` (odometry poses,
`/cmd` throttle and steer), `images` streams the camera, `messages` any topic by name. The others
are listed in `TartanDriveBag.topics` and never touched, so the custom `racepak` message types of
shocks, wheel RPM and pedals need no definitions beyond the ones embedded in the bag.

Times are the bag's record times in nanoseconds, the clock the published processing samples by
(`get_images_and_odom` reads `t` of `bag.read_messages`, not the header stamps), and messages come
in record-time order across topics. Message types come from the definitions stored in the bag
(every ROS 1 bag and ROS 2 bags from Iron on carry them); a ROS 2 bag without them falls back to
the Humble definitions. Bad input raises `BagError` (one line naming the bag); one message that
does not deserialize raises it from `decode`, so a caller can skip that message and go on.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .messages import ChannelOrder, MessageError, image_rgb

IMAGE_TOPIC = "/multisense/left/image_rect_color"
ODOMETRY_TOPIC = "/odometry/filtered_odom"
COMMAND_TOPIC = "/cmd"

# TartanDrive 1.0 (README table; types from rosbag_to_dataset's converters): topic -> (what, type, rate in Hz).
TOPICS: dict[str, tuple[str, str, float]] = {
    ODOMETRY_TOPIC: ("state", "nav_msgs/msg/Odometry", 50.0),
    COMMAND_TOPIC: ("action (throttle, steer)", "geometry_msgs/msg/TwistStamped", 100.0),
    IMAGE_TOPIC: ("RGB, left rectified, 1024x544", "sensor_msgs/msg/Image", 20.0),
    "/local_rgb_map": ("RGB map 501x501", "sensor_msgs/msg/Image", 20.0),
    "/local_height_map": ("heightmap 501x501", "grid_map_msgs/msg/GridMap", 20.0),
    "/multisense/imu/imu_data": ("IMU", "sensor_msgs/msg/Imu", 200.0),
    "/shock_pos": ("shocks", "racepak/msg/rp_shock_sensors", 50.0),
    "/wheel_rpm": ("wheel RPM", "racepak/msg/rp_wheel_encoders", 50.0),
    "/controls": ("pedals", "racepak/msg/rp_controls", 50.0),
}


class BagError(ValueError):
    """A bag that cannot be opened or read, or a message that cannot be decoded; one line."""


@dataclass(frozen=True)
class TopicInfo:
    topic: str
    msgtype: str | None  # None when connections of the topic disagree
    count: int


@dataclass(frozen=True)
class Track:
    """One topic read whole: record times, header stamps (record time where a message has no
    header) and the converted values, row by row."""

    topic: str
    stamps_ns: np.ndarray  # int64 [N], bag record time
    header_ns: np.ndarray  # int64 [N], header.stamp
    values: np.ndarray  # float64 [N, ...]
    skipped: int  # messages that did not decode or convert


def is_bag(path: Path) -> bool:
    """A ROS 1 bag file or a ROS 2 bag folder."""
    return (path.is_file() and path.suffix == ".bag") or (path.is_dir() and (path / "metadata.yaml").is_file())


def find_bags(paths: Collection[str | Path]) -> list[Path]:
    """Bags given directly, and every bag under folders that are not bags themselves (sorted)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if is_bag(path):
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if is_bag(p) and not _inside_bag(p, path) and not _hidden(p, path)))
        else:
            raise BagError(f"{path}: not a ROS bag (a .bag file or a ROS 2 bag folder) nor a folder of them")
    return found


def _hidden(path: Path, root: Path) -> bool:
    """Under a dot-named file or folder: a writer's partial output (``.drive_00001.bag.partial-PID/``), never data."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _inside_bag(path: Path, root: Path) -> bool:
    return any((parent / "metadata.yaml").is_file() for parent in path.parents if parent != root and root in parent.parents)


class TartanDriveBag:
    """One ROS 1 or ROS 2 bag, open for reading; use as a context manager."""

    def __init__(self, path: str | Path):
        from rosbags.rosbag1 import Reader as Reader1
        from rosbags.rosbag2 import Reader as Reader2

        self.path = Path(path)
        if not is_bag(self.path):
            raise BagError(f"{self.path}: not a ROS bag (a .bag file or a ROS 2 bag folder)")
        self.ros_version = 1 if self.path.suffix == ".bag" and self.path.is_file() else 2
        try:
            self._reader = (Reader1 if self.ros_version == 1 else Reader2)(self.path)
            self._reader.open()
        except Exception as err:  # rosbags raises its ReaderError, OSError, struct and yaml errors
            raise BagError(f"{self.path}: cannot open bag ({_describe(err)})") from None
        self._typestores: dict[str, object] = {}

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "TartanDriveBag":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def start_ns(self) -> int:
        """Record time of the bag's first message (any topic), as `rosbag.Bag.get_start_time`."""
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    @property
    def topics(self) -> dict[str, TopicInfo]:
        return {name: TopicInfo(name, info.msgtype, int(info.msgcount)) for name, info in self._reader.topics.items()}

    def raw_messages(self, topics: Collection[str]) -> Iterator[tuple[str, int, bytes]]:
        """(topic, record time ns, serialized message) of the given topics, in record-time order."""
        connections = [c for c in self._reader.connections if c.topic in set(topics)]
        for connection in connections:
            self._typestore(connection)
        if not connections:
            return
        try:
            for connection, stamp, raw in self._reader.messages(connections=connections):
                yield connection.topic, int(stamp), raw
        except Exception as err:  # a corrupt chunk, a truncated file, a bad compression frame
            raise BagError(f"{self.path}: unreadable after some messages ({_describe(err)})") from None

    def decode(self, topic: str, raw: bytes):
        """Deserialize one message of `topic` (a `rosbags` message object)."""
        connection = self._connection(topic)
        store = self._typestore(connection)
        try:
            if self.ros_version == 1:
                return store.deserialize_ros1(raw, connection.msgtype)
            return store.deserialize_cdr(raw, connection.msgtype)
        except Exception as err:  # truncated or garbled bytes: struct, index and serde errors
            raise BagError(f"{self.path}: corrupt {topic} message ({_describe(err)})") from None

    def messages(self, topics: Collection[str]) -> Iterator[tuple[str, int, object]]:
        """(topic, record time ns, message) of the given topics, deserialized, in record-time order."""
        for topic, stamp, raw in self.raw_messages(topics):
            yield topic, stamp, self.decode(topic, raw)

    def track(self, topic: str, convert: Callable[[object], np.ndarray]) -> Track:
        """Every message of `topic` through `convert` (e.g. `messages.odometry_pose`, `messages.command`),
        with record and header times; messages that do not decode or convert are counted, not kept."""
        stamps, headers, values, skipped = [], [], [], 0
        for _, stamp, raw in self.raw_messages([topic]):
            try:
                msg = self.decode(topic, raw)
                value = convert(msg)
            except (BagError, MessageError):
                skipped += 1
                continue
            stamps.append(stamp)
            header = getattr(msg, "header", None)
            headers.append(int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec) if header else stamp)
            values.append(value)
        return Track(topic, np.asarray(stamps, dtype=np.int64), np.asarray(headers, dtype=np.int64),
                     np.asarray(values, dtype=np.float64), skipped)

    def images(self, topic: str = IMAGE_TOPIC, channel_order: ChannelOrder = "published") -> Iterator[tuple[int, np.ndarray]]:
        """(record time ns, uint8 [H, W, 3] RGB) of every readable image of `topic`."""
        for _, stamp, raw in self.raw_messages([topic]):
            try:
                yield stamp, image_rgb(self.decode(topic, raw), channel_order)
            except (BagError, MessageError):
                continue

    def _connection(self, topic: str):
        for connection in self._reader.connections:
            if connection.topic == topic:
                return connection
        raise BagError(f"{self.path}: no topic {topic}")

    def _typestore(self, connection):
        """The types of one connection: from its definition in the bag, else the ROS 2 Humble set."""
        from rosbags.interfaces import MessageDefinitionFormat
        from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

        if connection.msgtype in self._typestores:
            return self._typestores[connection.msgtype]
        definition = connection.msgdef
        try:
            if definition.format == MessageDefinitionFormat.NONE or not definition.data:
                store = get_typestore(Stores.ROS1_NOETIC if self.ros_version == 1 else Stores.ROS2_HUMBLE)
                if connection.msgtype not in store.types:
                    raise BagError(f"{self.path}: {connection.topic} has type {connection.msgtype} without a definition")
            else:
                store = get_typestore(Stores.EMPTY)
                if definition.format == MessageDefinitionFormat.MSG:
                    store.register(get_types_from_msg(definition.data, connection.msgtype))
                else:
                    store.register(_idl_types(definition.data, get_types_from_idl))
        except BagError:
            raise
        except Exception as err:  # a definition rosbags cannot parse
            raise BagError(f"{self.path}: cannot read the definition of {connection.msgtype} ({_describe(err)})") from None
        self._typestores[connection.msgtype] = store
        return store


def _idl_types(text: str, parse) -> dict:
    """IDL definitions as ROS 2 bags store them: one block, or several behind `IDL: name` headers."""
    separator = "=" * 80 + "\n"
    if not text.startswith(f"{separator}IDL: "):
        return parse(text)
    types: dict = {}
    for block in text.split(separator)[1:]:
        types.update(parse(block.split("\n", 1)[1]))
    return types


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
