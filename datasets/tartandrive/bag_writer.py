"""Writing logs as TartanDrive bags (ROS 1, as released, or ROS 2), through `rosbags`' writers.

The topics and message types are the real ones (`bags.TOPICS`): `sensor_msgs/Image` on
`/multisense/left/image_rect_color`, `nav_msgs/Odometry` on `/odometry/filtered_odom`,
`geometry_msgs/TwistStamped` (twist.linear.x = throttle, twist.angular.z = steer) on `/cmd`, with
the message definitions embedded as a recorder embeds them, so a recorded drive (the sim car's, a
test's) goes through the same readers and `nav-process` as the real logs. Images are stored as
`bgr8`, the Multisense camera's byte order, unless told otherwise; header stamps equal the record
time unless given. The bag is written under a hidden sibling name and renamed into place when
closed, so a bag that exists is complete.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

import numpy as np

from .bags import COMMAND_TOPIC, IMAGE_TOPIC, ODOMETRY_TOPIC, TOPICS


class TartanDriveBagWriter:
    """Use as a context manager; `image`, `odometry` and `command` add one message each."""

    def __init__(self, path: str | Path, ros_version: Literal[1, 2] = 1, odometry_frame: str = "odom",
                 base_frame: str = "base_link", camera_frame: str = "multisense/left_camera_optical_frame"):
        from rosbags.rosbag1 import Writer as Writer1
        from rosbags.rosbag2 import Writer as Writer2
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        if ros_version not in (1, 2):
            raise ValueError(f"ros_version must be 1 or 2, got {ros_version}")
        if ros_version == 1 and self.path.suffix != ".bag":
            raise ValueError(f"{self.path}: a ROS 1 bag's name ends in .bag")
        if self.path.exists():
            raise ValueError(f"{self.path} already exists; not overwriting it")
        self.ros_version = ros_version
        self.frames = (odometry_frame, base_frame, camera_frame)
        self.store = get_typestore(Stores.ROS1_NOETIC if ros_version == 1 else Stores.ROS2_HUMBLE)
        # Written as <parent>/.<name>.partial-<pid>/<name>, so a ROS 2 bag's files keep the bag's name.
        self._partial = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        self._discard_partial()
        self._partial.mkdir(parents=True)
        staged = self._partial / self.path.name
        self._writer = Writer1(staged) if ros_version == 1 else Writer2(staged, version=9)
        self._writer.open()
        self._connections = {topic: self._writer.add_connection(topic, TOPICS[topic][1], typestore=self.store)
                             for topic in (IMAGE_TOPIC, ODOMETRY_TOPIC, COMMAND_TOPIC)}
        self._sequence = {topic: 0 for topic in self._connections}

    def __enter__(self) -> "TartanDriveBagWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> Path:
        """Finish the bag and move it into place."""
        self._writer.close()
        os.rename(self._partial / self.path.name, self.path)
        self._partial.rmdir()
        return self.path

    def abort(self) -> None:
        """Drop the bag being written."""
        try:
            self._writer.close()
        finally:
            self._discard_partial()

    def image(self, stamp_ns: int, rgb: np.ndarray, encoding: Literal["bgr8", "rgb8", "mono8"] = "bgr8",
              header_ns: int | None = None) -> None:
        """One camera frame, uint8 [H, W, 3] RGB (or [H, W] for mono8)."""
        rgb = np.asarray(rgb, dtype=np.uint8)
        if encoding == "mono8":
            pixels = rgb if rgb.ndim == 2 else rgb[..., 0]
        elif rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"an image must be [H, W, 3] RGB, got {rgb.shape}")
        else:
            pixels = rgb[..., ::-1] if encoding == "bgr8" else rgb
        pixels = np.ascontiguousarray(pixels)
        types = self.store.types
        msg = types["sensor_msgs/msg/Image"](
            header=self._header(IMAGE_TOPIC, stamp_ns if header_ns is None else header_ns, self.frames[2]),
            height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=0,
            step=pixels.shape[1] * (1 if encoding == "mono8" else 3), data=pixels.reshape(-1))
        self._write(IMAGE_TOPIC, stamp_ns, msg)

    def odometry(self, stamp_ns: int, position, orientation, linear=(0.0, 0.0, 0.0), angular=(0.0, 0.0, 0.0),
                 header_ns: int | None = None) -> None:
        """One pose: position (x, y, z) m, orientation quaternion (x, y, z, w), body velocities."""
        t = self.store.types
        point, quat = t["geometry_msgs/msg/Point"], t["geometry_msgs/msg/Quaternion"]
        vector = t["geometry_msgs/msg/Vector3"]
        pose = t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](position=point(*map(float, position)), orientation=quat(*map(float, orientation))),
            covariance=np.zeros(36))
        twist = t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=vector(*map(float, linear)), angular=vector(*map(float, angular))),
            covariance=np.zeros(36))
        msg = t["nav_msgs/msg/Odometry"](
            header=self._header(ODOMETRY_TOPIC, stamp_ns if header_ns is None else header_ns, self.frames[0]),
            child_frame_id=self.frames[1], pose=pose, twist=twist)
        self._write(ODOMETRY_TOPIC, stamp_ns, msg)

    def command(self, stamp_ns: int, throttle: float, steer: float, header_ns: int | None = None) -> None:
        """One /cmd: throttle and steer in [-1, 1]."""
        t = self.store.types
        vector = t["geometry_msgs/msg/Vector3"]
        msg = t["geometry_msgs/msg/TwistStamped"](
            header=self._header(COMMAND_TOPIC, stamp_ns if header_ns is None else header_ns, self.frames[1]),
            twist=t["geometry_msgs/msg/Twist"](linear=vector(float(throttle), 0.0, 0.0), angular=vector(0.0, 0.0, float(steer))))
        self._write(COMMAND_TOPIC, stamp_ns, msg)

    def _header(self, topic: str, stamp_ns: int, frame: str):
        t = self.store.types
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        stamp = t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
        if self.ros_version == 1:
            self._sequence[topic] += 1
            return t["std_msgs/msg/Header"](seq=self._sequence[topic], stamp=stamp, frame_id=frame)
        return t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    def _write(self, topic: str, stamp_ns: int, msg) -> None:
        serialize = self.store.serialize_ros1 if self.ros_version == 1 else self.store.serialize_cdr
        self._writer.write(self._connections[topic], int(stamp_ns), serialize(msg, msg.__msgtype__))

    def _discard_partial(self) -> None:
        shutil.rmtree(self._partial, ignore_errors=True)
